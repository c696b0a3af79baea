# shellcheck shell=bash
# Shared paths and helpers for the lab scripts (sourced, never executed).
# shellcheck disable=SC2034 # the variables are used by the sourcing scripts

LAB_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LAB_CACHE="$LAB_DIR/.cache"
# Extracted Debian kernel: vmlinuz, lib/modules/<kver>/ and a file naming kver.
LAB_KERNEL_DIR="$LAB_CACHE/kernel"
LAB_INITRAMFS="$LAB_CACHE/initramfs.cpio.gz"
LAB_LOG_DIR="$LAB_CACHE/logs"

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() {
	printf 'lab: error: %s\n' "$*" >&2
	exit 125
}

# The guest kernel's release string ("6.1.0-56-amd64"), empty if not set up.
lab_kver() {
	if [[ -f $LAB_KERNEL_DIR/kver ]]; then cat -- "$LAB_KERNEL_DIR/kver"; fi
}

# Package names from packages.txt, comments and blank lines dropped.
lab_packages() {
	sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$LAB_DIR/packages.txt"
}

# True when this kernel can do IPVS right here and we may use it: root and
# either ip_vs is already there or modprobe can load it. Inside the lab VM this
# is true too, so lab/run nested inside lab/run simply runs the command.
lab_host_has_ipvs() {
	[[ $(id -u) == 0 ]] || return 1
	[[ -e /proc/net/ip_vs ]] && return 0
	command -v modprobe >/dev/null 2>&1 || return 1
	modprobe -q ip_vs 2>/dev/null && [[ -e /proc/net/ip_vs ]]
}
