#!/bin/bash
# Benchmark: ipvs-exporter beside node_exporter's ipvs collector, in one lab
# run, in the lab director's namespace. Run from the repository root:
#
#   cargo build --release -p ipvs-exporter -p ipvs --examples
#   lab/run -- lab/bench/exporter.sh [SERVICES] [DESTS] [CONNECTIONS]
#
# 1. Full scrape on SERVICES x DESTS (default 1,000 x 10, built with
#    ipvsadm -R as in dump.sh), connection table empty: interleaved timings of
#    `curl` of ipvs-exporter's /metrics and of node_exporter's (Debian's
#    prometheus-node-exporter with only its ipvs collector), gzipped (as
#    Prometheus asks) then plain; series counts of both; VmHWM/VmRSS of
#    both after each; CPU time per scrape of both.
# 2. Connection table of at least CONNECTIONS entries (default 20,000):
#    hping3 in lab-client sends SYNs, one source port each, to a persistent
#    LVS-NAT VIP (198.18.0.10:81); the real servers drop them, so every
#    entry stays in SYN_RECV for the kernel's 60 s. Within that minute:
#    interleaved timings of `cat /proc/net/ip_vs_conn` and `curl` of a second
#    ipvs-exporter that runs only the connections collector (both whole
#    commands: one process start and the kernel printing the whole table),
#    the same two in one process (ipvs/examples/conncost.rs: no process
#    start), and the exporter's own ipvs_scrape_collector_duration_seconds
#    for that collector; RSS of both exporters against their empty-table
#    figures.
#
# A/B: with BENCH_BASELINE=PATH (another build of ipvs-exporter, e.g. of an
# earlier commit), that binary runs beside ours with the same flags and
# takes part in every full-scrape timing, CPU and memory figure of part 1,
# interleaved with the others (a change measured against the tree before it
# in the same lab run).
#
# All traffic stays in the lab namespaces (198.18.0.0/15). Results go to
# stdout and, as Markdown, to $LAB_OUT/bench-exporter.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
services=${1:-1000}
dests=${2:-10}
want_conns=${3:-20000}
runs=${BENCH_RUNS:-10}
conn_runs=${BENCH_CONN_RUNS:-5}
out=${LAB_OUT:-/tmp}
md=$out/bench-exporter.md
bin=$PWD/target/release/ipvs-exporter
conncost=$PWD/target/release/examples/conncost
node=/usr/bin/prometheus-node-exporter
vip=198.18.0.10

baseline=${BENCH_BASELINE:-}
[[ -z $baseline || -x $baseline ]] || { echo "BENCH_BASELINE=$baseline is not an executable" >&2; exit 1; }
[[ -x $bin && -x $conncost ]] || {
	echo "build first: cargo build --release -p ipvs-exporter -p ipvs --examples" >&2
	exit 1
}
for tool in hping3 curl "$node"; do
	command -v "$tool" >/dev/null || { echo "missing $tool (lab/setup installs lab/packages.txt)" >&2; exit 1; }
done

# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh
# VmHWM and VmRSS of a process, in MB.
memory() {
	awk '/^VmHWM|^VmRSS/ { printf "%s %.1f MB  ", $1, $2 / 1024 }' "/proc/$1/status"
}
mem_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
conn_entries() { in_dir sh -c 'tail -n +2 /proc/net/ip_vs_conn | wc -l'; }

# Times whole commands in the director's namespace, interleaved: each of
# ROUNDS rounds runs every command once, in turn (plus a first round not
# counted), so that a machine whose load drifts (other VMs share its cores)
# weighs on every command alike. hyperfine would run all of one command's
# runs, then all of the next's. Writes a Markdown table to FILE.
#   interleaved FILE ROUNDS NAME COMMAND [NAME COMMAND]...
# With CLOCK=curl, each COMMAND is a curl that prints its own
# %{time_total} (the scrape, from connecting to the last byte, without
# curl's own start), and that is the time taken.
interleaved() {
	local file=$1 rounds=$2
	shift 2
	ip netns exec "$director" env CLOCK="${CLOCK:-}" bash -c '
		rounds=$1
		shift
		for ((r = 0; r <= rounds; r++)); do
			for ((i = 1; i < $#; i += 2)); do
				j=$((i + 1))
				if [[ $CLOCK == curl ]]; then
					t0=0
					t1=$(eval "${!j}" 2>/dev/null) || { echo "failed: ${!j}" >&2; exit 1; }
				else
					t0=$EPOCHREALTIME
					eval "${!j}" >/dev/null 2>&1 || { echo "failed: ${!j}" >&2; exit 1; }
					t1=$EPOCHREALTIME
				fi
				((r == 0)) || printf "%s\t%s\t%s\n" "${!i}" "$t0" "$t1"
			done
		done' timing "$rounds" "$@" |
		awk -F '\t' '
			{ t = $3 - $2; if (!($1 in n)) order[++names] = $1
			  n[$1]++; sum[$1] += t; sq[$1] += t * t
			  if (!($1 in min) || t < min[$1]) min[$1] = t
			  if (t > max[$1]) max[$1] = t }
			END {
				print "| Command | Mean [s] | Min [s] | Max [s] | Relative |"
				print "|:---|---:|---:|---:|---:|"
				first = sum[order[1]] / n[order[1]]
				for (k = 1; k <= names; k++) {
					c = order[k]; mean = sum[c] / n[c]
					sd = sqrt(sq[c] / n[c] - mean * mean)
					printf "| %s | %.3f ± %.3f | %.3f | %.3f | %.2f |\n", c, mean, sd, min[c], max[c], mean / first
				}
			}' >"$file"
	cat "$file"
}

lab/topology.sh up 2 >/dev/null
lab/topology.sh vip "$vip" >/dev/null

# The benchmarks' table (lab/bench/table.py: SERVICES x DESTS), and the
# persistent NAT service for the connection table.
{
	lab/bench/table.py "$services" "$dests"
	printf '%s\n' "-A -t $vip:81 -s rr -p 600" \
		"-a -t $vip:81 -r 198.18.1.11:81 -m -w 1" \
		"-a -t $vip:81 -r 198.18.1.12:81 -m -w 1"
} >"$out/bench-exporter-table.txt"
in_dir ipvsadm -R <"$out/bench-exporter-table.txt"
echo "table: $services services x $dests destinations (+1 persistent NAT service), $(in_dir ipvsadm -Ln | wc -l) lines of ipvsadm -Ln"
echo "kernel: $(uname -r), CPUs: $(nproc), $($node --version 2>&1 | head -1)"
echo "ipvs-exporter: $($bin --version)"

# Started by `ip netns exec` itself (not through a function: $! must be
# the exporter's own PID, which `ip netns exec` keeps when it execs it).
ip netns exec "$director" "$bin" --web.listen-address=127.0.0.1:10310 --log.level=warn &
pids+=($!)
ours=$!
ip netns exec "$director" "$bin" --web.listen-address=127.0.0.1:10312 --log.level=warn \
	--no-collector.services --no-collector.stats &
pids+=($!)
ours_conn=$!
if [[ -n $baseline ]]; then
	echo "baseline: $baseline ($("$baseline" --version 2>&1 | head -1))"
	ip netns exec "$director" "$baseline" --web.listen-address=127.0.0.1:10313 --log.level=warn &
	pids+=($!)
	base=$!
	wait_port 10313
fi
ip netns exec "$director" "$node" --web.listen-address=127.0.0.1:9100 --log.level=warn \
	--collector.disable-defaults --collector.ipvs &
pids+=($!)
theirs=$!
wait_port 10310
wait_port 10312
wait_port 9100

# --- 1. full scrape, connection table empty --------------------------------
# Compressed, as Prometheus asks: a plain scrape now would set ipvs-exporter's
# VmHWM to the plain-text peak before the compressed figures are read.
in_dir curl -sf --compressed http://127.0.0.1:10310/metrics >"$out/bench-exporter-ours.prom"
in_dir curl -sf --compressed http://127.0.0.1:9100/metrics >"$out/bench-exporter-node.prom"
our_series=$(grep -c '^ipvs_' "$out/bench-exporter-ours.prom")
node_series=$(grep -c '^node_ipvs_' "$out/bench-exporter-node.prom")
node_all=$(grep -vc '^#' "$out/bench-exporter-node.prom")
grep -q '^ipvs_up 1' "$out/bench-exporter-ours.prom" || { echo "ipvs_up is not 1" >&2; exit 1; }
echo "series: ipvs-exporter $our_series ipvs_*; node_exporter $node_series node_ipvs_* ($node_all in all)"

# As Prometheus scrapes (it asks for gzip, and both exporters then send it),
# then plain text (curl without --compressed). Memory after each: a
# process's VmHWM is its peak so far, so the first figure is the peak of
# compressed scrapes alone.
ours_url=http://127.0.0.1:10310/metrics
node_url=http://127.0.0.1:9100/metrics
base_url=http://127.0.0.1:10313/metrics
# The baseline's name and command for each table (none without a baseline).
base_of() {
	[[ -n $baseline ]] || return 0
	printf '%s\0%s\0' "baseline ipvs-exporter, $1" "$2"
}
mapfile -d '' base_gzip < <(base_of gzip "curl -sf --compressed -o /dev/null $base_url")
mapfile -d '' base_plain < <(base_of "plain text" "curl -sf -o /dev/null $base_url")
mapfile -d '' base_gzip_clock < <(base_of gzip "curl -sf --compressed -o /dev/null -w %{time_total} $base_url")
mapfile -d '' base_plain_clock < <(base_of "plain text" "curl -sf -o /dev/null -w %{time_total} $base_url")
ours_cpu_before=$(cpu_seconds "$ours")
theirs_cpu_before=$(cpu_seconds "$theirs")
[[ -z $baseline ]] || base_cpu_before=$(cpu_seconds "$base")
interleaved "$out/bench-exporter-scrape-gzip.md" "$runs" \
	"ipvs-exporter, gzip ($our_series series)" "curl -sf --compressed -o /dev/null $ours_url" \
	"node_exporter ipvs, gzip ($node_series series)" "curl -sf --compressed -o /dev/null $node_url" \
	"${base_gzip[@]}"
ours_mem_gzip=$(memory "$ours")
theirs_mem_gzip=$(memory "$theirs")
interleaved "$out/bench-exporter-scrape.md" "$runs" \
	"ipvs-exporter, plain text ($our_series series)" "curl -sf -o /dev/null $ours_url" \
	"node_exporter ipvs, plain text ($node_series series)" "curl -sf -o /dev/null $node_url" \
	"${base_plain[@]}"
ours_mem_full=$(memory "$ours")
theirs_mem=$(memory "$theirs")
# The same scrapes by curl's clock: the scrape itself, without the start of
# a curl process (a tenth of a second in the VM) that the whole commands
# above include for both.
clock='-o /dev/null -w %{time_total}'
CLOCK=curl interleaved "$out/bench-exporter-scrape-gzip-clock.md" "$runs" \
	"ipvs-exporter, gzip" "curl -sf --compressed $clock $ours_url" \
	"node_exporter ipvs, gzip" "curl -sf --compressed $clock $node_url" \
	"${base_gzip_clock[@]}"
CLOCK=curl interleaved "$out/bench-exporter-scrape-clock.md" "$runs" \
	"ipvs-exporter, plain text" "curl -sf $clock $ours_url" \
	"node_exporter ipvs, plain text" "curl -sf $clock $node_url" \
	"${base_plain_clock[@]}"
# CPU per scrape over the four series of rounds above (the uncounted first
# rounds too).
scrapes=$((4 * (runs + 1)))
per_scrape() { awk -v a="$1" -v b="$2" -v n="$scrapes" 'BEGIN { printf "%.3f", (b - a) / n }'; }
ours_cpu=$(per_scrape "$ours_cpu_before" "$(cpu_seconds "$ours")")
theirs_cpu=$(per_scrape "$theirs_cpu_before" "$(cpu_seconds "$theirs")")
base_line=
if [[ -n $baseline ]]; then
	base_line="Baseline ($("$baseline" --version 2>&1 | head -1)): CPU per scrape $(per_scrape "$base_cpu_before" "$(cpu_seconds "$base")") s, memory after all $(memory "$base"), $(in_dir curl -sf "$base_url" | grep -c '^ipvs_') \`ipvs_*\` series."
fi
ours_rss_empty=$(mem_kb "$ours" VmRSS)
# Where a scrape's time goes (curl's own clock): until the first byte
# (collection and encoding), then the transfer; bytes on the wire.
timing() {
	in_dir curl -sf -o /dev/null -w '%{time_starttransfer} s to the first byte, %{time_total} s in all, %{size_download} bytes' "$@"
}
ours_timing_gzip=$(timing --compressed "$ours_url")
ours_timing=$(timing "$ours_url")
node_timing_gzip=$(timing --compressed "$node_url")
node_timing=$(timing "$node_url")
services_seconds=$(in_dir curl -sf "$ours_url" |
	awk '/^ipvs_scrape_collector_duration_seconds\{collector="services"/ { print $2 }')

# The connections-only exporter on the empty table.
for _ in 1 2 3; do in_dir curl -sf -o /dev/null http://127.0.0.1:10312/metrics; done
conn_rss_empty=$(mem_kb "$ours_conn" VmRSS)
conn_mem_empty=$(memory "$ours_conn")

# --- 2. connection table -----------------------------------------------------
# The real servers drop the SYNs: no SYN-ACK, no RST, entries stay SYN_RECV.
for rs in lab-rs1 lab-rs2; do
	ip netns exec "$rs" iptables -A INPUT -p tcp --dport 81 -j DROP
done
((want_conns < 60000)) || { echo "at most ~60,000 connections from one source address" >&2; exit 1; }
# A counted burst (not --flood with the table polled: reading a large
# table takes seconds on a loaded machine, the flood overshoots, and the
# entries start to expire before the timings begin). SYN_RECV entries
# live 60 s from their SYN: the timings below must fit in that minute.
sent=$((want_conns + want_conns / 10))
started=$SECONDS
timeout 40 ip netns exec lab-client hping3 -q -S -p 81 -s 1025 -i u50 -c "$sent" "$vip" \
	>/dev/null 2>&1 || true
burst=$((SECONDS - started))
entries=$(conn_entries)
echo "connection table: $entries entries after a $burst s burst of $sent SYNs"
((entries >= want_conns)) || { echo "only $entries entries (wanted $want_conns)" >&2; exit 1; }

interleaved "$out/bench-exporter-conn.md" "$conn_runs" \
	"cat /proc/net/ip_vs_conn" "cat /proc/net/ip_vs_conn" \
	"ipvs-exporter, connections collector only" "curl -sf -o /dev/null http://127.0.0.1:10312/metrics"
# The same comparison without process start-ups (curl's is heavier than
# cat's): both in one process, interleaved.
in_dir "$conncost" "$conn_runs" >"$out/bench-exporter-conncost.md"
own=()
for _ in 1 2 3 4 5; do
	own+=("$(in_dir curl -sf http://127.0.0.1:10312/metrics |
		awk '/^ipvs_scrape_collector_duration_seconds\{collector="connections"/ { print $2 }')")
done
in_dir curl -sf http://127.0.0.1:10310/metrics >"$out/bench-exporter-ours-conn.prom"
entries_after=$(conn_entries)
conn_rss_full=$(mem_kb "$ours_conn" VmRSS)
ours_rss_conn=$(mem_kb "$ours" VmRSS)
elapsed=$((SECONDS - started))
counted=$(awk '/^ipvs_backend_connection_states\{/ { s += $2 } END { print s + 0 }' \
	"$out/bench-exporter-ours-conn.prom")

{
	echo "### Full scrape, $services services x $dests destinations, connection table empty"
	echo
	echo "Series: ipvs-exporter $our_series \`ipvs_*\`; node_exporter $node_series \`node_ipvs_*\` ($node_all lines in all)."
	echo
	echo "As Prometheus scrapes (\`Accept-Encoding: gzip\`):"
	echo
	cat "$out/bench-exporter-scrape-gzip.md"
	echo
	echo "Memory after these: ipvs-exporter $ours_mem_gzip; node_exporter $theirs_mem_gzip."
	echo
	echo "Plain text:"
	echo
	cat "$out/bench-exporter-scrape.md"
	echo
	echo "Memory after both: ipvs-exporter $ours_mem_full; node_exporter $theirs_mem."
	echo
	echo "CPU (user + system) per scrape, over these $scrapes scrapes each: ipvs-exporter $ours_cpu s, node_exporter $theirs_cpu s."
	echo
	echo "The same scrapes by curl's clock (\`%{time_total}\`: connecting to the last byte, without curl's start), gzip then plain:"
	echo
	cat "$out/bench-exporter-scrape-gzip-clock.md"
	echo
	cat "$out/bench-exporter-scrape-clock.md"
	echo
	[[ -z $base_line ]] || printf '%s\n\n' "$base_line"
	echo "One scrape each (curl's clock): ipvs-exporter gzip $ours_timing_gzip; plain $ours_timing"
	echo "(services collector: $services_seconds s); node_exporter gzip $node_timing_gzip; plain $node_timing."
	echo
	echo "### Connection table: $entries entries ($entries_after at the end; ${elapsed} s after the burst began)"
	echo
	cat "$out/bench-exporter-conn.md"
	echo
	echo "In one process (\`conncost\`, ipvs/examples): reading the file to the end as cat does, and counting it as the exporter does:"
	echo
	tail -n +3 "$out/bench-exporter-conncost.md"
	echo
	echo "The exporter's own \`ipvs_scrape_collector_duration_seconds{collector=\"connections\"}\` over 5 scrapes: ${own[*]} s;"
	echo "Connection states counted by the full exporter: $counted."
	echo
	echo "RSS, connections-only exporter: $((conn_rss_empty / 1024)).$((conn_rss_empty % 1024 * 10 / 1024)) MB empty ($conn_mem_empty), $((conn_rss_full / 1024)).$((conn_rss_full % 1024 * 10 / 1024)) MB at $entries entries (delta $(((conn_rss_full - conn_rss_empty))) kB);"
	echo "full exporter: VmRSS $ours_rss_empty kB empty, $ours_rss_conn kB after a full scrape at $entries entries (delta $((ours_rss_conn - ours_rss_empty)) kB)."
} >"$md"
echo
cat "$md"
