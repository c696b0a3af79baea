#!/bin/bash
# Profile: where the lab VM's CPU goes while ipvs-checker probes N (default
# 500, BENCH_SERVERS) HTTPS real servers every second (HTTP with
# BENCH_CHECK=http), and while the floor
# (checker/examples/probe-floor/main.rs) probes the same ones: each in turn,
# the whole VM sampled (perf record -a) for W seconds (BENCH_WINDOW, 15)
# of its steady state (over HTTPS once every real server's TLS session
# is made, see servers.sh's sessions_made; then 5 s), nginx's share too.
# Run from the repository root:
#
#   cargo build --release -p ipvs-checker --bin ipvs-checker --example probe-floor
#   lab/run -- lab/bench/checker-profile.sh
#
# perf's sampling takes its own share of the VM's CPU, so each tool is
# later under it than alone: the milliseconds a probe are the profiled
# run's, to set the parts and the tools beside each other.
# BENCH_CHECKER and BENCH_FLOOR name other builds; BENCH_CHECKER_ARGS adds
# flags to ipvs-checker's (for example "--checker.max-concurrency 48");
# BENCH_TOOLS (default "ipvs-checker floor") profiles fewer tools.
# Results on stdout and, as Markdown, in $LAB_OUT/bench-checker-profile.md
# (each tool's samples by process and object, the probes nginx saw, and
# the milliseconds of CPU a probe that each part took); the perf data and
# the reports by symbol in $LAB_OUT/profile-*.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
n=${BENCH_SERVERS:-500}
check=${BENCH_CHECK:-https}
window=${BENCH_WINDOW:-15}
checker=${BENCH_CHECKER:-$PWD/target/release/ipvs-checker}
floor=${BENCH_FLOOR:-$PWD/target/release/examples/probe-floor}
read -ra checker_args <<<"${BENCH_CHECKER_ARGS:-}"
tools=" ${BENCH_TOOLS:-ipvs-checker floor} "
out=${LAB_OUT:-/tmp}
work=$(mktemp -d /tmp/bench-checker-profile.XXXXXX)
# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh
# shellcheck source=lab/bench/servers.sh
source lab/bench/servers.sh
servers_for_tools perf python3
case $check in
https)
	port=443
	checker_config 443 "{type: https, path: /, body: healthy, ca_file: $work/ca.pem, server_name: rs.lab.test}" >"$work/checker.yaml"
	floor_args=(https "$work/addresses.txt" 443 "$work/ca.pem" rs.lab.test)
	;;
http)
	port=80
	checker_config 80 "{type: http, path: /, body: healthy}" >"$work/checker.yaml"
	floor_args=(http "$work/addresses.txt" 80)
	;;
*) echo "BENCH_CHECK: http or https, not $check" >&2; exit 1 ;;
esac
log=$work/$check.log
table "$port"
for ((i = 1; i <= n; i++)); do addr "$i"; done >"$work/addresses.txt"

# Samples NAME's steady state: NAME CMD...
profile() {
	local name=$1 from pid probes
	shift
	from=$(wc -l <"$log")
	ip netns exec "$D" "$@" >"$out/profile-$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	[[ $name == ipvs-checker && $check == https ]] && echo "ipvs-checker: $(sessions_made "$from") full handshakes before its warm-up"
	sleep 5
	perf record -a -F 499 -o "$out/profile-$name.data" -- sleep "$window" 2>/dev/null &
	local sampling=$!
	from=$(wc -l <"$log")
	sleep "$window"
	probes=$(($(wc -l <"$log") - from))
	wait "$sampling"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	perf report -i "$out/profile-$name.data" --no-children --sort comm,dso --stdio 2>/dev/null |
		awk -v name="$name" -v probes="$probes" '$1 ~ /%$/ { print name "\t" probes "\t" $1 "\t" $2 "\t" $3 }' >>"$work/shares.tsv"
	perf report -i "$out/profile-$name.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null |
		grep '%' >"$out/profile-$name-symbols.txt" || true
}
: >"$work/shares.tsv"
if [[ $tools == *" ipvs-checker "* ]]; then
	profile ipvs-checker "$checker" --config.file "$work/checker.yaml" --web.listen-address 127.0.0.1:10311 --log.level warn "${checker_args[@]}"
fi
if [[ $tools == *" floor "* ]]; then profile floor "$floor" "${floor_args[@]}"; fi

python3 - "$work/shares.tsv" "$window" "$(nproc)" "$n" "${check^^}" <<'PY' | tee "$out/bench-checker-profile.md"
import collections, sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
window, cpus, n, check = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"{n} {check} real servers every second; the whole VM ({cpus} vCPUs) sampled for {window:.0f} s of each tool's steady state.\n")
print("| tool | process | object | share of the samples | ms of CPU a probe |")
print("|:---|:---|:---|---:|---:|")
probes = {}
for tool, seen, share, comm, dso in rows:
    probes[tool] = int(seen)
    pct = float(share.rstrip("%"))
    if pct < 0.5:
        continue
    per_probe = pct / 100 * window * cpus * 1000 / int(seen) if int(seen) else float("inf")
    print(f"| {tool} | {comm} | {dso} | {pct:.2f} % | {per_probe:.3f} |")
print()
for tool, seen in probes.items():
    print(f"- {tool}: {seen} probes seen by nginx in the {window:.0f} s ({seen / (n * window) * 100:.1f} % of those due)")
PY
if ((${#checker_args[@]})); then echo "- ipvs-checker run with: ${checker_args[*]}." | tee -a "$out/bench-checker-profile.md"; fi
