#!/bin/bash
# The floor's ways of running its HTTP checks, interleaved in one boot:
# which I/O path a prober could take, told apart from the VM's drift
# (its speed moves 20 % and more between boots of one hour, more than
# the ways differ). checker/examples/probe-floor/main.rs checks N real
# servers (BENCH_SERVERS, 500) every BENCH_INTERVAL_MS (1000), groups of
# ipvs-checker's size, in each way of BENCH_FLOORS (default "poll set
# tasks tokio": the poll loop, FLOOR_TOKIO=set, FLOOR_TOKIO=tasks,
# FLOOR_TOKIO=1; "reuse" and "setreuse", FLOOR_TOKIO=reuse and set-reuse,
# are not in the default) in turn, for
# BENCH_ROUNDS (6) rounds after a round not counted; each run a warm-up
# of BENCH_WARMUP (3) s and a window of BENCH_WINDOW (10) s. Run from the
# repository root:
#
#   cargo build --release -p ipvs-checker --bin ipvs-checker --example probe-floor
#   lab/run -- lab/bench/floor-ab.sh
#
# Per way: the floor's CPU (user + system, /proc/PID/stat) per check nginx
# saw, the median and quartiles of the rounds, and of each round's ratio to
# the first way's; the share of the checks due that nginx saw. Markdown on
# stdout and in $LAB_OUT/bench-floor-ab.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
n=${BENCH_SERVERS:-500}
every=${BENCH_INTERVAL_MS:-1000}
read -ra ways <<<"${BENCH_FLOORS:-poll set tasks tokio}"
rounds=${BENCH_ROUNDS:-6}
warmup=${BENCH_WARMUP:-3}
window=${BENCH_WINDOW:-10}
checker=${BENCH_CHECKER:-$PWD/target/release/ipvs-checker}
floor=${BENCH_FLOOR:-$PWD/target/release/examples/probe-floor}
out=${LAB_OUT:-/tmp}
work=$(mktemp -d /tmp/bench-floor-ab.XXXXXX)
# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh
# shellcheck source=lab/bench/servers.sh
source lab/bench/servers.sh
servers_for_tools python3
for way in "${ways[@]}"; do
	case $way in
	poll | set | tasks | tokio | reuse | setreuse) ;;
	*) echo "BENCH_FLOORS: poll, set, tasks, tokio, reuse or setreuse, not $way" >&2; exit 2 ;;
	esac
done
for ((i = 1; i <= n; i++)); do addr "$i"; done >"$work/addresses.txt"
echo "servers: $n every $every ms; kernel $(uname -r), $(nproc) CPUs; ways: ${ways[*]}; $rounds rounds"

# One line per window: round, way, checks seen, seconds, CPU ticks.
: >"$work/rounds.tsv"
for ((r = 0; r <= rounds; r++)); do
	for way in "${ways[@]}"; do
		case $way in
		poll) mode=() ;;
		set) mode=(FLOOR_TOKIO=set) ;;
		tasks) mode=(FLOOR_TOKIO=tasks) ;;
		tokio) mode=(FLOOR_TOKIO=1) ;;
		reuse) mode=(FLOOR_TOKIO=reuse) ;;
		setreuse) mode=(FLOOR_TOKIO=set-reuse) ;;
		esac
		ip netns exec "$D" env "${mode[@]}" FLOOR_INTERVAL_MS="$every" \
			"$floor" http "$work/addresses.txt" 80 >"$work/floor-$way-$r.log" 2>&1 &
		pid=$!
		pids+=("$pid")
		sleep "$warmup"
		read -r c0 _ < <(ticks_faults "$pid")
		p0=$(wc -l <"$work/http.log") t0=$EPOCHREALTIME
		sleep "$window"
		read -r c1 _ < <(ticks_faults "$pid")
		p1=$(wc -l <"$work/http.log") t1=$EPOCHREALTIME
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		((r == 0)) || printf '%d\t%s\t%d\t%s\t%d\n' "$r" "$way" "$((p1 - p0))" \
			"$(python3 -c "print($t1 - $t0)")" "$((c1 - c0))" >>"$work/rounds.tsv"
	done
done

python3 - "$work/rounds.tsv" "$(getconf CLK_TCK)" "$n" "$every" "${ways[@]}" <<'PY' | tee "$out/bench-floor-ab.md"
import statistics, sys

path, hz, n, every, ways = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
rows = [line.split("\t") for line in open(path)]
ms = {}  # (round, way) -> ms of CPU a check
seen = {}
for r, way, checks, seconds, ticks in rows:
    checks, seconds, ticks = int(checks), float(seconds), int(ticks)
    ms[(int(r), way)] = ticks * 1000 / hz / checks if checks else float("inf")
    seen.setdefault(way, []).append(checks / (n * seconds * 1000 / every) * 100)

def spread(values):
    values = sorted(values)
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{statistics.median(values):.3f} [{q[0]:.3f}-{q[2]:.3f}]"

rounds = sorted({r for r, _ in ms})
print(f"{n} HTTP real servers every {every} ms, one nginx; the floor's CPU (user + system) per check nginx saw, {len(rounds)} rounds, the ways in turn in each.\n")
print(f"| way | ms a check, median [quartiles] | x {ways[0]}, median [quartiles] of the rounds' ratios | checks seen / due, median |")
print("|:---|---:|---:|---:|")
for way in ways:
    own = [ms[(r, way)] for r in rounds]
    ratio = [ms[(r, way)] / ms[(r, ways[0])] for r in rounds]
    print(f"| {way} | {spread(own)} | {spread(ratio)} | {statistics.median(seen[way]):.1f} % |")
PY
