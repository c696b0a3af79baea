#!/bin/bash
# Benchmark: what a probe costs on the wire and in wake-ups, ipvs-checker
# beside the floor (checker/examples/probe-floor/main.rs), over HTTP and HTTPS:
# the TCP segments a probe in each direction (nstat in the director's
# namespace) and the context switches a probe of each thread of the tool
# and of nginx's workers (/proc/PID/task/*/status), with the whole VM's
# (/proc/stat). N (BENCH_SERVERS, 500) real servers of servers.sh, every
# second, each tool alone for W s (BENCH_WINDOW, 10) after 5 s (the
# checker over HTTPS: after every real server's TLS session is made). Run
# from the repository root:
#
#   cargo build --release -p ipvs-checker --bin ipvs-checker --example probe-floor
#   lab/run -- lab/bench/checker-wire.sh
#
# BENCH_CHECKER and BENCH_FLOOR name other builds. Results on stdout and,
# as Markdown, in $LAB_OUT/bench-checker-wire.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
n=${BENCH_SERVERS:-500}
window=${BENCH_WINDOW:-10}
checker=${BENCH_CHECKER:-$PWD/target/release/ipvs-checker}
floor=${BENCH_FLOOR:-$PWD/target/release/examples/probe-floor}
out=${LAB_OUT:-/tmp}
work=$(mktemp -d /tmp/bench-checker-wire.XXXXXX)
# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh
# shellcheck source=lab/bench/servers.sh
source lab/bench/servers.sh
servers_for_tools nstat
table 80 443
for ((i = 1; i <= n; i++)); do addr "$i"; done >"$work/addresses.txt"
checker_config 80 "{type: http, path: /, body: healthy}" >"$work/http.yaml"
checker_config 443 "{type: https, path: /, body: healthy, ca_file: $work/ca.pem, server_name: rs.lab.test}" >"$work/https.yaml"

# "name tid voluntary involuntary" for each thread of PIDS.
switches() { # PIDS...
	local p t
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			awk -v comm="$(cat "$t/comm" 2>/dev/null)" -v tid="${t##*/}" \
				'/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { i = $2 } END { print comm, tid, v, i }' \
				"$t/status" 2>/dev/null || true
		done
	done
}

# Measures TOOL over CHECK (http or https): TOOL CHECK CMD...
measure() {
	local tool=$1 check=$2 pid from probes c0 c1 workers
	shift 2
	local log=$work/$check.log
	from=$(wc -l <"$log")
	ip netns exec "$D" "$@" >"$out/wire-$tool-$check.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	# The floor shares one session among all (one name): only the
	# checker makes one a real server.
	if [[ $check == https && $tool == ipvs-checker ]]; then
		echo "$tool: $(sessions_made "$from") of $n TLS sessions made" >&2
	fi
	sleep 5
	workers=$(pgrep -f "nginx: worker" | tr '\n' ' ')
	# shellcheck disable=SC2086 # one pid a word
	switches "$pid" $workers >"$work/switches-before"
	ip netns exec "$D" nstat -n
	c0=$(awk '$1 == "ctxt" { print $2 }' /proc/stat)
	from=$(wc -l <"$log")
	sleep "$window"
	probes=$(($(wc -l <"$log") - from))
	c1=$(awk '$1 == "ctxt" { print $2 }' /proc/stat)
	ip netns exec "$D" nstat >"$work/nstat"
	# shellcheck disable=SC2086
	switches "$pid" $workers >"$work/switches-after"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	((probes > 0)) || { echo "$tool $check: no probe reached nginx" >&2; exit 1; }
	awk -v p="$probes" -v tool="$tool" -v check="$check" -v vm=$((c1 - c0)) '
		$1 == "TcpOutSegs" { o = $2 } $1 == "TcpInSegs" { i = $2 } $1 == "TcpExtTCPPureAcks" { a = $2 }
		END { printf "| %s | %s | %d | %.2f | %.2f | %.2f | %.2f |\n", tool, check, p, o / p, i / p, a / p, vm / p }
	' "$work/nstat" >>"$work/segments.md"
	join -1 2 -2 2 <(sort -k2 "$work/switches-before") <(sort -k2 "$work/switches-after") |
		awk -v p="$probes" -v tool="$tool" -v check="$check" '
			{ v = $6 - $3; i = $7 - $4; if (v + i > 0) printf "| %s | %s | %s (%s) | %.3f | %.3f |\n", tool, check, $2, $1, v / p, i / p }
		' >>"$work/threads.md"
}
: >"$work/segments.md"
: >"$work/threads.md"
for check in http https; do
	measure ipvs-checker "$check" "$checker" --config.file "$work/$check.yaml" --web.listen-address 127.0.0.1:10311 --log.level warn
	if [[ $check == https ]]; then
		measure floor https "$floor" https "$work/addresses.txt" 443 "$work/ca.pem" rs.lab.test
	else
		measure floor http "$floor" http "$work/addresses.txt" 80
	fi
done
{
	echo "$n real servers every second, each tool alone for $window s; $(nproc) vCPUs."
	echo
	echo "| tool | check | probes | segments out a probe | segments in | of them pure ACKs | the VM's context switches a probe |"
	echo "|:---|:---|---:|---:|---:|---:|---:|"
	cat "$work/segments.md"
	echo
	echo "| tool | check | thread (id) | voluntary switches a probe | involuntary |"
	echo "|:---|:---|:---|---:|---:|"
	cat "$work/threads.md"
} | tee "$out/bench-checker-wire.md"
rm -rf "$work"
