#!/bin/bash
# Benchmark: the instructions an HTTP probe takes in the checker's own code
# (user space: its probe thread and its loop), counted by valgrind's
# callgrind, free of the VM's and the host's noise. In the lab VM most of a
# probe's CPU is the kernel's TCP path, which is the floor's too; what the
# checker adds is user space, and this counts it (lab/bench/README.md).
#
# Runs on this machine, not in the lab VM: `probe-cost` runs the daemon
# (its probe threads, probe tasks, loop and state) over a table in memory,
# so it needs no IPVS. As root: N (BENCH_SERVERS, 100) real servers on
# 127.0.1.1-N port 18080 in a network namespace of its own, served by one
# nginx worker (GET / answers "healthy"), checked by `http` every second;
# the counting is turned on after W0 s (BENCH_WARMUP, 12: valgrind's start
# is slow) and dumped W s later (BENCH_WINDOW, 20). Run from the
# repository root:
#
#   cargo build --release -p ipvs-checker --example probe-cost
#   lab/bench/probe-instructions.sh
#
# BENCH_PROBE_COST names another build of probe-cost (an A/B: run it for
# each). Prints the instructions a probe (the probes counted are the
# requests nginx logged while counting) and the functions taking the most,
# inclusive and by themselves; the callgrind file stays in the work
# directory printed.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
n=${BENCH_SERVERS:-100}
warmup=${BENCH_WARMUP:-12}
window=${BENCH_WINDOW:-20}
cost=${BENCH_PROBE_COST:-$PWD/target/release/examples/probe-cost}
for tool in valgrind callgrind_control callgrind_annotate nginx ip; do
	command -v "$tool" >/dev/null || {
		echo "needs $tool (valgrind, nginx, iproute2)" >&2
		exit 1
	}
done
[[ -x $cost ]] || {
	echo "no probe-cost at $cost: cargo build --release -p ipvs-checker --example probe-cost" >&2
	exit 1
}
work=$(mktemp -d /tmp/probe-instructions.XXXXXX)
ns=probe-instructions-$$
ip netns add "$ns"
cleanup() {
	[[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
	pkill -f "valgrind.*$work/checker.yaml" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip -n "$ns" link set lo up
mkdir -p "$work/tmp"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log $work/access.log;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  server { listen 18080; location / { return 200 "healthy\n"; } }
}
EOF
ip netns exec "$ns" nginx -c "$work/nginx.conf"
{
	echo "defaults: {interval: 1s, timeout: 1s, rise: 1, fall: 1}"
	echo "services:"
	echo "  - address: 198.18.0.10:80"
	echo "    check: {type: http, path: /, body: healthy}"
	echo "    real_servers:"
	for ((i = 1; i <= n; i++)); do echo "      - {address: '127.0.1.$i:18080', weight: 1}"; done
} >"$work/checker.yaml"
(cd "$work" && exec ip netns exec "$ns" valgrind --tool=callgrind --instr-atstart=no \
	"$cost" "$work/checker.yaml" $((warmup + window + 10)) >"$work/probe-cost.log" 2>&1) &
sleep "$warmup"
pid=$(pgrep -f "valgrind.*$work/checker.yaml" | head -1 || true)
[[ -n $pid ]] || {
	echo "probe-cost under valgrind is not running: see $work/probe-cost.log" >&2
	exit 1
}
callgrind_control -i on "$pid" >/dev/null 2>&1
from=$(wc -l <"$work/access.log")
sleep "$window"
callgrind_control -d "$pid" >/dev/null 2>&1
to=$(wc -l <"$work/access.log")
callgrind_control -i off "$pid" >/dev/null 2>&1
wait
probes=$((to - from))
file=$(ls "$work"/callgrind.out.*.1)
total=$(callgrind_annotate "$file" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$probes probes counted in ${window} s ($n real servers, every second): $((total / probes)) instructions a probe"
echo
echo "Inclusive, the most:"
callgrind_annotate --inclusive=yes "$file" | grep -E '^ *[0-9,]+ \(' | sed -n 2,31p | cut -c1-200
echo
echo "By themselves, the most:"
callgrind_annotate "$file" | grep -E '^ *[0-9,]+ \(' | sed -n 2,31p | cut -c1-200
echo
echo "callgrind file: $file"
