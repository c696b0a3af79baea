#!/bin/bash
# Benchmark: A/B of the release ipvs-exporter at an earlier revision (A)
# against the working tree's (B), both with their default collectors, on
# the benchmarks' 1,000 x 10 table, in one lab run. Run from the
# repository root:
#
#   lab/bench/ab.sh --build OLD_REV      # outside the lab: build A and B
#   lab/run -- lab/bench/ab.sh OLD_REV [SERVICES] [DESTS]
#
# --build builds A in a temporary git worktree of OLD_REV and B in
# target/release, both under nice (lab/bench/ab-build.sh: A's binary is
# kept as lab/.cache/ab/ipvs-exporter-SHA and not built again). The lab
# only measures.
#
# In the lab director's namespace, on one table (lab/bench/table.py):
# 1. Wall-clock and CPU, interleaved: in each of ROUNDS rounds (default 30,
#    after one not counted) A is scraped, then B (gzip, as Prometheus
#    asks); per scrape curl's %{time_total}, and the exporter's user +
#    system CPU and minor page faults (/proc/PID/stat). Medians with the
#    quartiles, and the median of the rounds' B/A ratios: the drift of the
#    host shows beside the result.
# 2. Syscalls: strace -f -c attached to each exporter over SCRAPES scrapes
#    (default 5).
# 3. Instructions: each exporter started again under valgrind's callgrind,
#    a warm-up scrape, counters zeroed (callgrind_control -z), SCRAPES
#    scrapes, a dump (callgrind_control -d): the user-space instructions of
#    those scrapes alone, on every thread, and where A and B differ, by
#    crate and by function (each function's own instructions, as
#    callgrind_annotate --inclusive=no counts them; the dumps stay in
#    $LAB_OUT for callgrind_annotate or kcachegrind). Deterministic, unlike
#    the above, up to the kernel's answers being split differently between
#    reads. perf stat cannot count instructions in the VM: TCG emulates
#    no performance counters.
#
# Env: BENCH_ROUNDS (30), BENCH_SCRAPES (5). All traffic is loopback in the
# director's namespace. Results go to stdout and, as Markdown, to
# $LAB_OUT/bench-ab.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."

usage() {
	echo "usage: $0 --build OLD_REV | $0 OLD_REV [SERVICES] [DESTS]" >&2
	exit 2
}
if [[ ${1:-} == --build ]]; then
	(($# == 2)) || usage
	exec lab/bench/ab-build.sh "$2" ipvs-exporter
fi
(($# >= 1)) || usage
old_sha=$(git rev-parse --verify --quiet "$1^{commit}") || {
	echo "$1 is not a revision of this repository" >&2
	exit 2
}
old_sha=${old_sha:0:12}
old_bin=$PWD/lab/.cache/ab/ipvs-exporter-$old_sha
new_bin=$PWD/target/release/ipvs-exporter

# --- In the lab: measure ------------------------------------------------------
services=${2:-1000}
dests=${3:-10}
rounds=${BENCH_ROUNDS:-30}
scrapes=${BENCH_SCRAPES:-5}
out=${LAB_OUT:-/tmp}
md=$out/bench-ab.md
[[ -x $old_bin && -x $new_bin ]] || { echo "build first: lab/bench/ab.sh --build $1" >&2; exit 1; }
newer=$(find exporter ipvs web common Cargo.lock -newer "$new_bin" -type f -name '*.rs' -print -quit)
[[ -z $newer ]] || { echo "$new_bin is older than $newer: lab/bench/ab.sh --build $1" >&2; exit 1; }
for tool in valgrind callgrind_control strace curl python3; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh

lab/topology.sh up 1 >/dev/null
lab/bench/table.py "$services" "$dests" | in_dir ipvsadm -R
old_version=$("$old_bin" --version 2>&1 | head -1)
new_version="$("$new_bin" --version 2>&1 | head -1), $(git describe --always --dirty)"
echo "table: $services x $dests; kernel $(uname -r), $(nproc) CPUs, $(valgrind --version), strace $(strace -V | awk 'NR == 1 { print $4 }')"
echo "A: $old_sha ($old_version); B: working tree ($new_version)"

names=(A B)
bins=("$old_bin" "$new_bin")
gzip=(-H 'Accept-Encoding: gzip')
url() { echo "http://127.0.0.1:$1/metrics"; }
# Starts exporter I (0 = A, 1 = B) on PORT, under WRAPPER (start_exporter).
start() { # I PORT [WRAPPER...]
	local i=$1 port=$2
	shift 2
	start_exporter "${bins[$i]}" "$port" "$@"
}
# The ipvs_* series in a gzipped scrape in FILE.
series() { gzip -dc "$1" | grep -c '^ipvs_'; }

ports=(10330 10331)
native=()
for i in 0 1; do
	start "$i" "${ports[$i]}"
	native+=("$started")
done
for i in 0 1; do wait_port "${ports[$i]}"; done
expected=()
for i in 0 1; do
	in_dir curl -sf "${gzip[@]}" -o "$out/ab-${names[$i]}.prom.gz" "$(url "${ports[$i]}")"
	# Not grep -q: it stops reading at the match, and gzip, still writing,
	# dies of SIGPIPE (a failure under pipefail).
	gzip -dc "$out/ab-${names[$i]}.prom.gz" | grep "^ipvs_up 1$" >/dev/null || { echo "${names[$i]}: ipvs_up is not 1" >&2; exit 1; }
	expected+=("$(series "$out/ab-${names[$i]}.prom.gz")")
done
echo "series: A ${expected[0]} ipvs_*, B ${expected[1]}"

# --- 1. wall-clock, CPU and faults, interleaved ---------------------------------
# One line per scrape: round, exporter, curl's time, CPU ticks, minor faults.
hz=$(getconf CLK_TCK)
: >"$out/ab-rounds.tsv"
for ((r = 0; r <= rounds; r++)); do
	for i in 0 1; do
		read -r c0 f0 < <(ticks_faults "${native[$i]}")
		t=$(in_dir curl -sf "${gzip[@]}" -o /dev/null -w '%{time_total}' "$(url "${ports[$i]}")")
		read -r c1 f1 < <(ticks_faults "${native[$i]}")
		((r == 0)) || printf '%d\t%s\t%s\t%d\t%d\n' "$r" "${names[$i]}" "$t" "$((c1 - c0))" "$((f1 - f0))" >>"$out/ab-rounds.tsv"
	done
done

# --- 2. syscalls ----------------------------------------------------------------
for i in 0 1; do
	trace=$out/ab-strace-${names[$i]}.txt
	strace -f -c -o "$trace" -p "${native[$i]}" 2>/dev/null &
	tracer=$!
	sleep 2 # attached to every thread
	for _ in $(seq "$scrapes"); do in_dir curl -sf "${gzip[@]}" -o /dev/null "$(url "${ports[$i]}")"; done
	kill -INT "$tracer"
	wait "$tracer" || true
done
for pid in "${native[@]}"; do kill "$pid"; done

# --- 3. instructions under callgrind ------------------------------------------------
ports=(10332 10333)
grinds=()
for i in 0 1; do
	start "$i" "${ports[$i]}" valgrind --tool=callgrind --dump-instr=no \
		--callgrind-out-file="$out/ab-callgrind-${names[$i]}.%p" --log-file="$out/ab-valgrind-${names[$i]}.log"
	grinds+=("$started")
done
for i in 0 1; do
	wait_port "${ports[$i]}" 6000 # up to 10 minutes: valgrind's start under emulation
	pid=${grinds[$i]} u=$(url "${ports[$i]}")
	in_dir curl -sf "${gzip[@]}" -o "$out/ab-grind-${names[$i]}-0.prom.gz" "$u" # warm-up
	callgrind_control -z "$pid" >/dev/null 2>&1
	for s in $(seq "$scrapes"); do
		in_dir curl -sf "${gzip[@]}" -o "$out/ab-grind-${names[$i]}-$s.prom.gz" "$u"
	done
	callgrind_control -d "$pid" >/dev/null 2>&1
	for s in $(seq 0 "$scrapes"); do
		got=$(series "$out/ab-grind-${names[$i]}-$s.prom.gz")
		[[ $got == "${expected[$i]}" ]] || {
			echo "${names[$i]} under callgrind, scrape $s: $got series, not ${expected[$i]}" >&2
			exit 1
		}
	done
	dump=$out/ab-callgrind-${names[$i]}.$pid.1
	for _ in $(seq 100); do [[ -s $dump ]] && grep -q '^totals:' "$dump" && break; sleep 0.2; done
	grep -q '^totals:' "$dump" || { echo "${names[$i]}: no callgrind dump $dump" >&2; exit 1; }
	kill "$pid"
done

python3 - "$out" "$rounds" "$scrapes" "$hz" "$services x $dests" "$old_sha ($old_version)" \
	"working tree ($new_version)" "${expected[@]}" "${grinds[@]}" >"$md" <<'PY'
import sys

sys.path.insert(0, "lab/bench")
from ab_stats import by_crate, differences, ratios, self_costs, spread, strace_calls, syscall_rows

out, rounds, scrapes, hz, table, a_name, b_name = sys.argv[1:8]
rounds, scrapes, hz = int(rounds), int(scrapes), int(hz)
series = sys.argv[8:10]
grinds = sys.argv[10:12]

# Per round and exporter: wall-clock [ms], CPU [ms], minor faults.
runs = {"A": {}, "B": {}}
for line in open(f"{out}/ab-rounds.tsv"):
    r, who, wall, ticks, faults = line.split("\t")
    runs[who][int(r)] = (float(wall) * 1000, int(ticks) * 1000 / hz, int(faults))

print(f"Table: {table} (table.py); every scrape gzipped, as Prometheus asks.")
print(f"A: {a_name}, {series[0]} `ipvs_*` series; B: {b_name}, {series[1]}.")
print()
fa, fb = (self_costs(f"{out}/ab-callgrind-{w}.{p}.1") for w, p in zip("AB", grinds))
ia, ib = sum(fa.values()), sum(fb.values())
print(f"| per scrape | A | B | B / A |")
print("|:---|---:|---:|---:|")
print(f"| instructions (callgrind, {scrapes} scrapes after a warm-up) | {ia / scrapes:,.0f} | {ib / scrapes:,.0f} | {ib / ia:.4f} |")
(sa, ca), (sb, cb) = (strace_calls(f"{out}/ab-strace-{w}.txt") for w in "AB")
print(f"| syscalls (strace -f -c, {scrapes} scrapes) | {sa / scrapes:,.1f} | {sb / scrapes:,.1f} | {sb / sa:.3f} |")
syscall_rows(ca, cb, scrapes, 8, 1)
for k, what, digits in ((0, "scrape, curl's clock [ms]", 1), (1, "CPU, user + system [ms]", 0), (2, "minor page faults", 0)):
    a = [runs["A"][r][k] for r in runs["A"]]
    b = [runs["B"][r][k] for r in runs["B"]]
    pairs = [(runs["A"][r][k], runs["B"][r][k]) for r in runs["A"]]
    print(f"| {what}, median [quartiles] of {len(a)} rounds | {spread(a, digits)} | {spread(b, digits)} | {ratios(pairs)} |")
a = sum(runs["A"][r][1] for r in runs["A"]) / len(runs["A"])
b = sum(runs["B"][r][1] for r in runs["B"]) / len(runs["B"])
print(f"| CPU, mean of the rounds [ms] | {a:.1f} | {b:.1f} | {b / a:.3f} |")
print()
print("B / A of the interleaved figures: the median and quartiles of the rounds' own ratios (each round scrapes A, then B).")
print()
print(f"Where the instructions per scrape differ (callgrind, each function's own; the dumps are in {out}):")
differences("crate", by_crate(fa), by_crate(fb), scrapes, 12)
differences("function", fa, fb, scrapes, 15)
PY
echo
cat "$md"
