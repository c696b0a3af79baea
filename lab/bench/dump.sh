#!/bin/bash
# Benchmark: a full dump of the IPVS table with statistics through the ipvs
# crate (the ipvsdump example) beside `ipvsadm -Ln --stats --exact` and
# `cat /proc/net/ip_vs`, on the same table of SERVICES x DESTS (default
# 1,000 x 10) in the same lab run. Run from the repository root:
#
#   lab/run -- lab/bench/dump.sh [SERVICES] [DESTS]
#
# The table lives in a namespace of its own. hyperfine times each command
# (whole process, like an operator or a script would run it: start-up, the
# netlink dumps and printing the table to /dev/null). Results go to stdout
# and, as Markdown, to $LAB_OUT/bench-dump.md. Then BENCH_PASSES (20) reads
# of each service's destinations in one process, with their counters or
# only their settings (ipvs-checker's read every second), in
# bench-dump-settings.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
services=${1:-1000}
dests=${2:-10}
runs=${BENCH_RUNS:-10}
ns=bench-dump
out=${LAB_OUT:-/tmp}

[[ -x target/release/examples/ipvsdump ]] ||
	{ echo "build first: cargo build --release -p ipvs --examples" >&2; exit 1; }

ip netns del "$ns" 2>/dev/null || true
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
# The kernel refuses real servers it cannot class as unicast, which needs
# loopback up.
ip netns exec "$ns" ip link set lo up

lab/bench/table.py "$services" "$dests" >"$out/bench-table.txt"
ip netns exec "$ns" ipvsadm -R <"$out/bench-table.txt"
lines=$(ip netns exec "$ns" ipvsadm -Ln | wc -l)
echo "table: $services services x $dests destinations ($lines lines of ipvsadm -Ln)"
echo "kernel: $(uname -r), CPUs: $(nproc), ipvsadm: $(ipvsadm --version 2>&1 | head -1)"

# Same answer from both, in numbers: every destination's connection counter.
ours=$(ip netns exec "$ns" target/release/examples/ipvsdump | grep -c '^  -> [0-9]')
theirs=$(ip netns exec "$ns" ipvsadm -Ln --stats --exact | grep -c '^  -> [0-9]')
[[ $ours == "$theirs" ]] || { echo "destinations: ipvsdump $ours, ipvsadm $theirs" >&2; exit 1; }

ip netns exec "$ns" hyperfine --shell=none --warmup 2 --runs "$runs" \
	--export-markdown "$out/bench-dump.md" \
	--command-name 'ipvsadm -Ln --stats --exact' 'ipvsadm -Ln --stats --exact' \
	--command-name 'ipvsdump (1 socket)' 'target/release/examples/ipvsdump' \
	--command-name 'ipvsdump --sockets 2' 'target/release/examples/ipvsdump --sockets 2' \
	--command-name 'cat /proc/net/ip_vs' 'cat /proc/net/ip_vs'
cat "$out/bench-dump.md"

# ipvs-checker's read of the table, every second: each service's
# destinations, with their counters decoded (before) or without
# (Ipvs::destination_settings); PASSES reads in one process.
passes=${BENCH_PASSES:-20}
settings=$(ip netns exec "$ns" target/release/examples/ipvsdump --settings | grep -c '^  -> [0-9]')
[[ $settings == "$theirs" ]] || { echo "destinations: ipvsdump --settings $settings, ipvsadm $theirs" >&2; exit 1; }
ip netns exec "$ns" hyperfine --shell=none --warmup 1 --runs "$runs" \
	--export-markdown "$out/bench-dump-settings.md" \
	--command-name "$passes reads, counters decoded" "target/release/examples/ipvsdump --passes $passes" \
	--command-name "$passes reads, settings only" "target/release/examples/ipvsdump --passes $passes --settings"
cat "$out/bench-dump-settings.md"
