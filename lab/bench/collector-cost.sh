#!/bin/bash
# Benchmark: what each ipvs-exporter collector costs per scrape, alone.
# Run from the repository root:
#
#   cargo build --release -p ipvs-exporter
#   lab/run -- lab/bench/collector-cost.sh [SERVICES] [DESTS] [ROUNDS]
#
# On SERVICES x DESTS (default 1,000 x 10, built with ipvsadm -R as in
# exporter.sh), one exporter per row below, all at once in the lab
# director's namespace: none of the IPVS collectors (what every scrape
# costs: HTTP, the build and process collectors), each collector alone,
# and all of them (the defaults). In each of ROUNDS rounds (default 3)
# each exporter is scraped in turn (gzip, as Prometheus asks), 20 times
# for those that read the table, 200 for the others; a row is the user +
# system CPU and the minor page faults of that exporter per scrape, from
# /proc/PID/stat. A collector's cost is its row less the first.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
services=${1:-1000}
dests=${2:-10}
rounds=${3:-3}
bin=$PWD/target/release/ipvs-exporter
[[ -x $bin ]] || { echo "build first: cargo build --release -p ipvs-exporter" >&2; exit 1; }
# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh

lab/topology.sh up 1 >/dev/null
lab/bench/table.py "$services" "$dests" | in_dir ipvsadm -R
echo "table: $services x $dests; kernel $(uname -r), $(nproc) CPUs; $($bin --version 2>&1 | head -1)"

none=(--no-collector.stats --no-collector.services --no-collector.connections --no-collector.director)
names=(none stats services connections director all)
flags=(
	"${none[*]}"
	"--collector.stats ${none[*]:1}"
	"--no-collector.stats --collector.services --no-collector.connections --no-collector.director"
	"--no-collector.stats --no-collector.services --collector.connections --no-collector.director"
	"--no-collector.stats --no-collector.services --no-collector.connections --collector.director"
	""
)
ports=()
for i in "${!names[@]}"; do
	port=$((10320 + i))
	# shellcheck disable=SC2086 # the flags are words
	ip netns exec "$director" "$bin" --web.listen-address=127.0.0.1:$port --log.level=warn ${flags[$i]} &
	pids+=($!)
	ports+=("$port")
done
# Each answers, and has made its first collection before the rounds.
for port in "${ports[@]}"; do
	wait_port "$port"
	in_dir curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"
done

declare -A cpu flt n
for ((r = 1; r <= rounds; r++)); do
	for i in "${!names[@]}"; do
		pid=${pids[$i]} port=${ports[$i]}
		scrapes=200
		[[ ${names[$i]} == services || ${names[$i]} == all ]] && scrapes=20
		c0=$(cpu_ms "$pid") f0=$(faults "$pid")
		for _ in $(seq "$scrapes"); do
			in_dir curl -sf -H 'Accept-Encoding: gzip' -o /dev/null "http://127.0.0.1:$port/metrics"
		done
		cpu[$i]=$((${cpu[$i]:-0} + $(cpu_ms "$pid") - c0))
		flt[$i]=$((${flt[$i]:-0} + $(faults "$pid") - f0))
		n[$i]=$((${n[$i]:-0} + scrapes))
	done
done
echo
echo "| collectors | scrapes | CPU per scrape [ms] | minor faults per scrape |"
echo "|:---|---:|---:|---:|"
for i in "${!names[@]}"; do
	awk -v name="${names[$i]}" -v n="${n[$i]}" -v c="${cpu[$i]}" -v f="${flt[$i]}" \
		'BEGIN { printf "| %s | %d | %.2f | %.0f |\n", name, n, c / n, f / n }'
done
