#!/bin/bash
# Benchmark: hostile HTTP clients against the daemons' web endpoint, and
# what they cost each daemon (RSS, descriptors, connections held) while a
# normal scraper asks for /metrics beside them. No kernel IPVS needed for
# the exporter (it serves `ipvs_up 0` without the module); the checker
# needs IPVS to start (it resolves the netlink family first), so where
# there is none (the build machine) it is skipped and says why. Figures,
# not pass/fail.
#
#   cargo build --release -p ipvs-exporter -p ipvs-checker
#   lab/bench/web-limits.sh [SECONDS]     (default 30 per attack)
#
# Each daemon runs on 127.0.0.1 with `ulimit -n 256` (soft and hard, so
# its raise of the soft limit at start stays at 256), first with the
# default --web.max-connections (512: the descriptors run out first),
# then the connection flood again with --web.max-connections 64 (the
# limit comes first). The attacks (lab/bench/web_limits.py): request
# heads of 1 MB in 1,024 headers, of 10,000 headers, of one 1 MB line (8
# clients in a loop); 2,000 silent connections at once, each opened
# again as soon as the daemon closes it; 200 request heads a byte a
# second; 200 POST bodies a byte a second after their head (to /metrics;
# to the checker's admin API too, which it runs with
# --web.enable-admin-api: the one body a daemon reads).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
seconds=${1:-30}
release=$PWD/target/release
for bin in ipvs-exporter ipvs-checker; do
	[[ -x $release/$bin ]] || { echo "web-limits: $release/$bin not built (cargo build --release -p $bin)" >&2; exit 1; }
done
dir=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

# start NAME PORT COMMAND...: the daemon with 256 descriptors at most,
# on 127.0.0.1:PORT; waits until /metrics answers. Its pid in $daemon.
start() {
	local name=$1 port=$2
	shift 2
	(ulimit -n 256 && exec "$@" --web.listen-address "127.0.0.1:$port") >"$dir/$name.log" 2>&1 &
	daemon=$!
	pids+=("$daemon")
	for _ in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$port/metrics" && return 0
		kill -0 "$daemon" 2>/dev/null || break
		sleep 0.1
	done
	echo "$name did not start: $(tail -1 "$dir/$name.log")"
	return 1
}

# run NAME PORT ATTACKS...: the attacks against the daemon started last,
# then what it logged (warnings and errors, each kind once, counted) and
# whether it is still there.
run() {
	local name=$1 port=$2
	shift 2
	echo "== $name: open files limit $(awk '/Max open files/ {print $4}' "/proc/$daemon/limits"), $(grep -c '' "$dir/$name.log") log lines at start"
	python3 lab/bench/web_limits.py "$daemon" "$port" "$seconds" "$@"
	echo "-- $name logged:"
	grep -E 'level=(warn|error)' "$dir/$name.log" | sed -E 's/^ts=[^ ]+ //; s/times=[0-9]+ //' | sort | uniq -c | sed 's/^/   /' || echo "   no warning"
	kill -0 "$daemon" && echo "-- $name still running"
	kill "$daemon"
	wait "$daemon" 2>/dev/null || true
}

echo "kernel $(uname -r), $(nproc) CPUs; $("$release/ipvs-exporter" --version 2>&1 | head -1); $seconds s per attack"
if start exporter 19310 "$release/ipvs-exporter"; then
	run exporter 19310
fi
if start exporter-64 19312 "$release/ipvs-exporter" --web.max-connections 64; then
	run exporter-64 19312 2000-silent-connections
fi

cat >"$dir/checker.yml" <<'YAML'
defaults: {interval: 1s, timeout: 500ms, check: {type: tcp}}
services:
  - address: 127.0.0.1:19399
    real_servers:
      - {address: 127.0.0.1:19398}
YAML
if start checker 19311 "$release/ipvs-checker" --dry-run --config.file "$dir/checker.yml" --web.enable-admin-api; then
	run checker 19311 head-1MB-of-headers head-10000-headers head-one-1MB-line 2000-silent-connections \
		200-heads-a-byte-a-second 200-bodies-a-byte-a-second 200-admin-bodies-a-byte-a-second
	start checker-64 19313 "$release/ipvs-checker" --dry-run --config.file "$dir/checker.yml" --web.max-connections 64 &&
		run checker-64 19313 2000-silent-connections
else
	echo "checker: not measured here (it needs IPVS to start); run this in the lab: lab/run -- lab/bench/web-limits.sh"
fi
