#!/bin/bash
# lab/topology.sh: the standard LVS test network, built from network
# namespaces. Run it as root inside the lab (lab/run -- lab/topology.sh up).
#
#   up [N]      build it with N real servers (default 3; rebuilds if present)
#   down        remove everything (servers, namespaces); fine to run twice
#   vip ADDR    add a VIP (IPv4 -> /32, IPv6 -> /128) on vip0 in lab-director
#   unvip ADDR  remove it
#   serve       make each lab-rsK serve HTTP on port 80 (index.html says
#               "rsK") and answer UDP on port 53 ("rsK\n"): a server still
#               running is kept, a stopped or killed one started again
#               (lab/lib/rs-server.py, one Python process per server; a
#               Python start costs seconds under emulation, and tests call
#               this before each case)
#   status      show namespaces, addresses, routes, servers, IPVS table
#
# Layout (only 198.18.0.0/15, RFC 2544, and 2001:db8::/32, documentation):
#
#   lab-client  eth0 198.18.0.2/24 2001:db8::2/64      default via director
#        |
#   lab-director cl0 198.18.0.1/24 2001:db8::1/64      forwarding on
#                rsbr0 (bridge) 198.18.1.1/24 2001:db8:1::1/64
#                vip0 (dummy): the VIPs
#        |  rsbr0 ports rs1..rsN
#   lab-rsK     eth0 198.18.1.(10+K)/24 2001:db8:1::(10+K)/64
#               default via 198.18.1.1 / 2001:db8:1::1 (so LVS-NAT works)
#
# IPv6 VIPs inside the client's on-link prefix 2001:db8::/64 get a proxy-NDP
# entry on cl0 so the client can resolve them; VIPs elsewhere (e.g.
# 2001:db8:100::10, 198.18.100.10) are reached via the client's default route.
set -euo pipefail

LAB_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
STATE=/run/lab-topology # N, per-server web roots, pid files, logs
DIR=lab-director
CLIENT=lab-client
PY=/usr/bin/python3 # Debian's, whatever python3 PATH finds first

# Under software emulation every program started costs a few hundred ms, so
# this script starts as few as it can: one `ip -batch` per namespace, bash
# builtins for sysctls, one Python per real server.

die() {
	echo "topology: error: $*" >&2
	exit 1
}
ns_ours() {
	local ns
	for ns in /run/netns/lab-*; do
		ns=${ns##*/}
		[[ $ns =~ ^lab-(client|director|rs[0-9]+)$ ]] && echo "$ns"
	done
	return 0
}
servers() {
	if [[ -f $STATE/n ]]; then cat "$STATE/n"; else ns_ours | grep -c '^lab-rs' || true; fi
}

# Refuse any address outside the two ranges the lab may use: 198.18.0.0/15
# and 2001:db8::/32 (ip itself rejects malformed ones).
check_addr() {
	local a=${1,,}
	if [[ $a == *:* ]]; then
		[[ $a == 2001:db8:* || $a == 2001:0db8:* ]] && return 0
	elif [[ $a =~ ^198\.1[89]\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
		((10#${BASH_REMATCH[1]} <= 255 && 10#${BASH_REMATCH[2]} <= 255)) && return 0
	fi
	die "$1 is not in 198.18.0.0/15 or 2001:db8::/32"
}

# End every process inside our namespaces (servers, whatever tests left).
# Compares network-namespace inodes: one stat for all processes.
kill_lab_procs() {
	local -A inos=()
	local line pids=() i
	while read -r line; do inos[$line]=1; done < <(stat -L -c %i /run/netns/lab-* 2>/dev/null || true)
	((${#inos[@]})) || return 0
	for i in 1 2 3; do
		pids=()
		while read -r line; do
			[[ -n ${inos[${line#* }]:-} ]] || continue
			line=${line%% *}
			line=${line#/proc/}
			pids+=("${line%%/*}")
		done < <(stat -L -c '%n %i' /proc/[0-9]*/ns/net 2>/dev/null || true)
		((${#pids[@]})) || return 0
		if ((i < 3)); then kill "${pids[@]}" 2>/dev/null || true; else kill -9 "${pids[@]}" 2>/dev/null || true; fi
		sleep 0.3
	done
}

cmd_down() {
	local ns batch=
	[[ -n $(ns_ours) ]] || {
		rm -rf -- "$STATE"
		return 0
	}
	kill_lab_procs
	for ns in $(ns_ours); do batch+="netns del $ns"$'\n'; done
	ip -batch - <<<"$batch"
	rm -rf -- "$STATE"
}

# Per-namespace sysctls, written with bash builtins inside the namespace.
# accept_dad=0 before any link exists there: no duplicate address detection,
# addresses (link-local ones too) are usable at once; nodad on each address.
ns_sysctl() {
	local ns=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner bash
	ip netns exec "$ns" bash -c '
		for kv in net/ipv6/conf/all/accept_dad=0 net/ipv6/conf/default/accept_dad=0 "$@"; do
			echo "${kv#*=}" >"/proc/sys/${kv%%=*}"
		done' sysctl "$@"
}

cmd_up() {
	local n=${1:-3} k ns batch
	[[ $n =~ ^[1-9][0-9]?$ ]] || die "N must be 1..99"
	[[ $(id -u) == 0 ]] || die "must run as root"
	cmd_down
	mkdir -p "$STATE"

	local all=("$CLIENT" "$DIR")
	for ((k = 1; k <= n; k++)); do all+=("lab-rs$k"); done
	batch=
	for ns in "${all[@]}"; do batch+="netns add $ns"$'\n'; done
	ip -batch - <<<"$batch"
	for ns in "${all[@]}"; do
		if [[ $ns == "$DIR" ]]; then
			ns_sysctl "$ns" net/ipv4/ip_forward=1 net/ipv6/conf/all/forwarding=1
		else
			ns_sysctl "$ns"
		fi
	done

	# The director: client link, real-server bridge (no STP, no forwarding
	# delay: ports pass traffic at once), a veth port per server, vip0.
	batch="link set lo up
link add cl0 type veth peer name eth0 netns $CLIENT
addr add 198.18.0.1/24 dev cl0
addr add 2001:db8::1/64 dev cl0 nodad
link set cl0 up
link add rsbr0 type bridge stp_state 0 forward_delay 0
addr add 198.18.1.1/24 dev rsbr0
addr add 2001:db8:1::1/64 dev rsbr0 nodad
link set rsbr0 up
link add vip0 type dummy
link set vip0 up
"
	for ((k = 1; k <= n; k++)); do
		batch+="link add rs$k type veth peer name eth0 netns lab-rs$k
link set rs$k master rsbr0
link set rs$k up
"
	done
	ip -n "$DIR" -batch - <<<"$batch"

	ip -n "$CLIENT" -batch - <<<"link set lo up
addr add 198.18.0.2/24 dev eth0
addr add 2001:db8::2/64 dev eth0 nodad
link set eth0 up
route add default via 198.18.0.1
route add default via 2001:db8::1"

	# Real servers route back through the director, as LVS-NAT needs.
	for ((k = 1; k <= n; k++)); do
		ip -n "lab-rs$k" -batch - <<<"link set lo up
addr add 198.18.1.$((10 + k))/24 dev eth0
addr add 2001:db8:1::$((10 + k))/64 dev eth0 nodad
link set eth0 up
route add default via 198.18.1.1
route add default via 2001:db8:1::1"
	done
	echo "$n" >"$STATE/n"
	echo "topology: up: $CLIENT, $DIR, lab-rs1..lab-rs$n"
}

cmd_vip() {
	local del=$1 addr=${2:-}
	[[ -n $addr ]] || die "usage: topology.sh vip|unvip ADDR"
	check_addr "$addr"
	[[ -e /run/netns/$DIR ]] || die "no $DIR: run 'topology.sh up' first"
	if [[ $addr == *:* ]]; then
		if ((del)); then
			ip -n "$DIR" -batch - <<<"neigh del proxy $addr dev cl0
addr del $addr/128 dev vip0"
		else
			# proxy_ndp lets the client resolve a VIP inside its on-link
			# prefix 2001:db8::/64 (IPv6 only answers for addresses on the
			# receiving interface otherwise).
			ns_sysctl "$DIR" net/ipv6/conf/cl0/proxy_ndp=1
			ip -n "$DIR" -batch - <<<"addr replace $addr/128 dev vip0 nodad
neigh replace proxy $addr dev cl0"
		fi
	elif ((del)); then
		ip -n "$DIR" addr del "$addr/32" dev vip0
	else
		ip -n "$DIR" addr replace "$addr/32" dev vip0
	fi
}

stop_servers() {
	local f
	for f in "$STATE"/rs*/server.pid; do
		[[ -f $f ]] || continue
		kill "$(<"$f")" 2>/dev/null || true
		rm -f -- "$f"
	done
}

# Whether the server of lab-rsK (its state directory $1) is up: started,
# ready, and its process still there.
serving() {
	[[ -e $1/ready && -f $1/server.pid ]] && kill -0 "$(<"$1/server.pid")" 2>/dev/null
}

cmd_serve() {
	local n k d i
	n=$(servers)
	((n > 0)) || die "no real servers: run 'topology.sh up' first"
	for ((k = 1; k <= n; k++)); do
		d=$STATE/rs$k
		mkdir -p "$d/www"
		echo "rs$k" >"$d/www/index.html"
		serving "$d" && continue
		[[ -f $d/server.pid ]] && kill "$(<"$d/server.pid")" 2>/dev/null || true
		rm -f -- "$d/ready" "$d/server.pid"
		# Output to a log file: the servers must not hold the caller's
		# stdout/stderr open (lab/run and pipes wait for those to close).
		ip netns exec "lab-rs$k" "$PY" "$LAB_DIR/lib/rs-server.py" "rs$k" "$d/www" "$d/ready" \
			</dev/null >"$d/server.log" 2>&1 &
		echo $! >"$d/server.pid"
	done
	for ((k = 1; k <= n; k++)); do
		d=$STATE/rs$k
		for ((i = 0; ; i++)); do
			[[ -e $d/ready ]] && break
			kill -0 "$(<"$d/server.pid")" 2>/dev/null ||
				die "the server in lab-rs$k died: $(tail -n 5 "$d/server.log")"
			((i < 600)) || die "the server in lab-rs$k is not ready after 60 s"
			sleep 0.1
		done
	done
	echo "topology: serving: http/80 and udp/53 in lab-rs1..lab-rs$n"
}

cmd_status() {
	local ns k f
	if [[ -z $(ns_ours) ]]; then
		echo "topology: down (no lab namespaces)"
		return 0
	fi
	for ns in $(ns_ours); do
		echo "== $ns"
		ip -n "$ns" -br addr show | sed 's/^/  /'
		ip -n "$ns" route show default | sed 's/^/  v4 /'
		ip -n "$ns" -6 route show default | sed 's/^/  v6 /'
	done
	echo "== servers"
	for ((k = 1; k <= $(servers); k++)); do
		f=$STATE/rs$k/server.pid
		if [[ -f $f ]] && kill -0 "$(<"$f")" 2>/dev/null; then
			echo "  lab-rs$k http/80 udp/53 running (pid $(<"$f"))"
		else
			echo "  lab-rs$k not serving"
		fi
	done
	echo "== IPVS in $DIR"
	ip netns exec "$DIR" ipvsadm -Ln 2>&1 | sed 's/^/  /' || true
}

case "${1:-}" in
up) cmd_up "${2:-3}" ;;
down) cmd_down ;;
vip) cmd_vip 0 "${2:-}" ;;
unvip) cmd_vip 1 "${2:-}" ;;
serve) cmd_serve ;;
status) cmd_status ;;
*)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
	;;
esac
