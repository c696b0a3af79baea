#!/bin/bash
# Benchmark: the minor page faults and CPU per scrape of the release
# ipvs-exporter at several revisions and of the working tree's, in one lab
# run (a bisection of a change in faults costs one run, not one per
# revision). Run from the repository root:
#
#   lab/bench/ab-faults.sh --build REV...     # outside the lab (ab-build.sh)
#   lab/run -- lab/bench/ab-faults.sh REV...
#
# A REV may also be the path of an exporter binary (a variant built by
# hand), and may be given more than once: each is its own process, named
# with #2, #3... (A/A: how far two processes of one build differ).
# All the exporters run at once on the benchmarks' 1,000 x 10 table
# (table.py; SERVICES and DESTS in BENCH_TABLE, "1000 10"), each with its
# defaults. 1. In each of ROUNDS rounds (BENCH_ROUNDS, default 15, after one
# not counted) each is scraped once in turn (gzip, as Prometheus asks);
# minor faults and user + system CPU per scrape from /proc/PID/stat, as
# medians with quartiles. 2. How each maps and hands back memory: strace
# -f of the memory syscalls (mmap, munmap, mremap, brk, madvise) over
# SCRAPES scrapes (BENCH_SCRAPES, default 3): per scrape, the calls and the
# bytes mapped anonymously, unmapped, and advised away (MADV_DONTNEED,
# what malloc_trim does to free pages inside the heap); each such byte
# is faulted in again when used. Results on stdout and, as Markdown, in
# $LAB_OUT/bench-ab-faults.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."

usage() {
	echo "usage: $0 [--build] REV..." >&2
	exit 2
}
build=0
if [[ ${1:-} == --build ]]; then
	build=1
	shift
fi
(($# >= 1)) || usage
names=() bins=() revs=()
declare -A seen
# Adds the process NAME running BIN, NAME#2... if NAME is there already.
add() { # NAME BIN
	local name=$1
	seen[$1]=$((${seen[$1]:-0} + 1))
	((${seen[$1]} == 1)) || name+="#${seen[$1]}"
	names+=("$name")
	bins+=("$2")
}
for rev in "$@"; do
	if [[ -f $rev && -x $rev ]]; then
		add "$(basename -- "$rev")" "$(realpath -- "$rev")"
		continue
	fi
	sha=$(git rev-parse --verify --quiet "$rev^{commit}") || {
		echo "$rev is neither a revision of this repository nor an executable" >&2
		exit 2
	}
	revs+=("${sha:0:12}")
	add "${sha:0:12}" "$PWD/lab/.cache/ab/ipvs-exporter-${sha:0:12}"
done
if ((build)); then
	for sha in "${revs[@]}"; do lab/bench/ab-build.sh --old-only "$sha" ipvs-exporter; done
	exec nice cargo build --release -p ipvs-exporter
fi
add "$(git describe --always --dirty)" "$PWD/target/release/ipvs-exporter"

read -r services dests <<<"${BENCH_TABLE:-1000 10}"
rounds=${BENCH_ROUNDS:-15}
scrapes=${BENCH_SCRAPES:-3}
out=${LAB_OUT:-/tmp}
for bin in "${bins[@]}"; do
	[[ -x $bin ]] || { echo "build first: lab/bench/ab-faults.sh --build $*" >&2; exit 1; }
done
command -v strace >/dev/null || { echo "missing strace" >&2; exit 1; }
# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh

lab/topology.sh up 1 >/dev/null
lab/bench/table.py "$services" "$dests" | in_dir ipvsadm -R
echo "table: $services x $dests; kernel $(uname -r), $(nproc) CPUs"
gzip=(-H 'Accept-Encoding: gzip')
url() { echo "http://127.0.0.1:$((10340 + $1))/metrics"; }
exporters=()
for i in "${!bins[@]}"; do
	start_exporter "${bins[$i]}" $((10340 + i))
	exporters+=("$started")
done
for i in "${!bins[@]}"; do wait_port $((10340 + i)); done

: >"$out/ab-faults-rounds.tsv"
for ((r = 0; r <= rounds; r++)); do
	for i in "${!bins[@]}"; do
		read -r c0 f0 < <(ticks_faults "${exporters[$i]}")
		in_dir curl -sf "${gzip[@]}" -o /dev/null "$(url "$i")"
		read -r c1 f1 < <(ticks_faults "${exporters[$i]}")
		((r == 0)) || printf '%s\t%d\t%d\n' "${names[$i]}" "$((c1 - c0))" "$((f1 - f0))" >>"$out/ab-faults-rounds.tsv"
	done
done

# Resident memory between scrapes, and the peak.
for i in "${!bins[@]}"; do
	awk '/^Vm(RSS|HWM):/ { printf "%s ", $2 }' "/proc/${exporters[$i]}/status"
	echo
done >"$out/ab-faults-memory.txt"

for i in "${!bins[@]}"; do
	trace=$out/ab-faults-strace-$i.txt
	strace -f -e trace=mmap,munmap,mremap,brk,madvise -o "$trace" -p "${exporters[$i]}" 2>/dev/null &
	tracer=$!
	sleep 2 # attached to every thread
	for _ in $(seq "$scrapes"); do in_dir curl -sf "${gzip[@]}" -o /dev/null "$(url "$i")"; done
	kill -INT "$tracer"
	wait "$tracer" || true
done

python3 - "$out" "$scrapes" "$(getconf CLK_TCK)" "${names[@]}" >"$out/bench-ab-faults.md" <<'PY'
import collections
import re
import sys

sys.path.insert(0, "lab/bench")
from ab_stats import spread

out, scrapes, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = sys.argv[4:]
cpu, faults = collections.defaultdict(list), collections.defaultdict(list)
for line in open(f"{out}/ab-faults-rounds.tsv"):
    name, ticks, f = line.split("\t")
    cpu[name].append(int(ticks) * 1000 / hz)
    faults[name].append(int(f))


def memory_calls(path):
    """Per scrape: calls of each memory syscall, and MiB mapped
    anonymously, unmapped, grown by brk, and advised away."""
    calls, mib = collections.Counter(), collections.Counter()
    brk = None
    for line in open(path):
        m = re.match(r"^(?:\d+\s+)?(\w+)\((.*)\)\s+=\s+(\S+)", line)
        if not m:
            continue
        call, args, result = m.group(1), m.group(2).split(", "), m.group(3)
        calls[call] += 1
        if call == "mmap" and "MAP_ANONYMOUS" in m.group(2) and not result.startswith("-"):
            mib["mapped"] += int(args[1])
        elif call == "munmap":
            mib["unmapped"] += int(args[1])
        elif call == "madvise" and "MADV_DONTNEED" in m.group(2):
            mib["advised away"] += int(args[1])
        elif call == "brk" and not result.startswith("-"):
            top = int(result, 16)
            if brk is not None and top > brk:
                mib["brk grown"] += top - brk
            brk = top
    return calls, {k: v / scrapes / 2**20 for k, v in mib.items()}


memory = [line.split() for line in open(f"{out}/ab-faults-memory.txt")]
print("| build | minor faults per scrape, median [quartiles] | CPU per scrape [ms] | memory syscalls per scrape | MiB per scrape: mapped, unmapped, brk grown, advised away | VmHWM, VmRSS after [MB] |")
print("|:---|---:|---:|:---|---:|---:|")
for i, name in enumerate(names):
    calls, mib = memory_calls(f"{out}/ab-faults-strace-{i}.txt")
    said = ", ".join(f"{c} {n / scrapes:.1f}" for c, n in sorted(calls.items()))
    sizes = ", ".join(f"{mib.get(k, 0):.1f}" for k in ("mapped", "unmapped", "brk grown", "advised away"))
    hwm, rss = (int(kb) / 1024 for kb in memory[i])
    print(f"| {name} | {spread(faults[name], 0)} | {spread(cpu[name], 0)} | {said} | {sizes} | {hwm:.1f}, {rss:.1f} |")
print()
print(f"{len(faults[names[0]])} rounds, each scraping every build once in the order above; memory syscalls from strace -f over {scrapes} scrapes.")
PY
echo
cat "$out/bench-ab-faults.md"
