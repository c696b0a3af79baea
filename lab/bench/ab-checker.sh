#!/bin/bash
# Benchmark: A/B of the release ipvs-checker at an earlier revision (A)
# against the working tree's (B), probing the same real servers with the
# same config, in one lab run. Run from the repository root:
#
#   lab/bench/ab-checker.sh --build OLD_REV   # outside the lab (ab-build.sh)
#   lab/run -- lab/bench/ab-checker.sh OLD_REV
#   lab/run -- lab/bench/ab-checker.sh floor   # A: the floor
#
# With "floor" for OLD_REV, A is checker.sh's floor instead
# (checker/examples/probe-floor, target/release/examples/probe-floor: the
# same checks of the same real servers with only their own system calls,
# on one thread, on the checker's schedule): the checker's CPU a probe and
# its share of the probes due against the least a check costs in this
# VM, interleaved in one boot, where checker.sh's one window each moves
# with the VM's speed from minute to minute.
#
# The real servers are checker.sh's (lab/bench/servers.sh): N addresses
# (BENCH_SERVERS, default 200) served by one nginx, checked over HTTP (GET
# /, body "healthy", a new connection per probe: the default) every
# second, timeout 1 s, rise 1, fall 1, each the real server of one IPVS
# service in the director's namespace. With BENCH_AB_CHECK=dns they are
# checked by `dns` instead (www.lab.test A, over UDP), the real servers of
# the UDP service 198.18.0.10:53, answered by one dnsmasq on all their
# addresses as in checker.sh's dns phase; with BENCH_AB_CHECK=https, by
# `https` on :443 (the chain verified against servers.sh's private CA,
# sessions resumed), the share of the probes due that nginx saw being
# the figure to watch where the checker is short of CPU (500 servers).
# Each checker is started alone
# on a table made anew, its probes counted in nginx's access log (dns:
# the queries dnsmasq answered, from its statistics):
# 1. CPU, interleaved: in each of ROUNDS rounds (BENCH_ROUNDS, default 8,
#    after one not counted) A runs, then B: started, WARMUP s (BENCH_WARMUP,
#    5) not counted (HTTPS: from when every real server's session is made,
#    the start-up's full handshakes not counted), then a window of W s
#    (BENCH_WINDOW, 10); user + system
#    CPU and minor faults of the checker (/proc/PID/stat) per 1,000 probes
#    of that window. Medians with quartiles, and of the rounds' B/A ratios.
# 2. Syscalls: strace -f -c attached to each checker for W s, per probe.
# 3. Instructions: each started under valgrind's callgrind, the counters
#    zeroed after a warm-up of BENCH_GRIND_WARMUP s (30: valgrind's start
#    under emulation is slow), a window of BENCH_GRIND_WINDOW s (30), a
#    dump: user-space instructions per 1,000 probes, and where A and B
#    differ. Under callgrind a checker runs tens of times slower on one
#    thread at a time, so it checks the first BENCH_GRIND_SERVERS (20) of
#    the servers only (the same config for both): the share of the window's
#    probes nginx saw is reported beside, to show it kept up.
# BENCH_AB_A_ARGS and BENCH_AB_B_ARGS add flags to A's or B's command
# line: the same build twice with different flags (for example
# `--checker.probe-threads 1` against the default) is an A/B of a flag.
# BENCH_SERVERS_CPUS confines nginx to those CPUs (servers.sh).
# Results on stdout and, as Markdown, in $LAB_OUT/bench-ab-checker.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."

usage() {
	echo "usage: $0 --build OLD_REV | $0 OLD_REV" >&2
	exit 2
}
if [[ ${1:-} == --build ]]; then
	(($# == 2)) || usage
	exec lab/bench/ab-build.sh "$2" ipvs-checker
fi
(($# == 1)) || usage
floor=$PWD/target/release/examples/probe-floor
if [[ $1 == floor ]]; then
	old_sha=floor
	bins=("$floor" "$PWD/target/release/ipvs-checker")
	build_floor="cargo build --release -p ipvs-checker --example probe-floor"
	[[ -z ${BENCH_AB_A_ARGS:-} ]] || { echo "BENCH_AB_A_ARGS: the floor takes no flags" >&2; exit 2; }
	[[ -x $floor ]] || { echo "no floor at $floor: $build_floor" >&2; exit 1; }
	newer=$(find checker/examples/probe-floor -newer "$floor" -type f -print -quit)
	[[ -z $newer ]] || { echo "$floor is older than $newer: $build_floor" >&2; exit 1; }
else
	old_sha=$(git rev-parse --verify --quiet "$1^{commit}") || {
		echo "$1 is not a revision of this repository" >&2
		exit 2
	}
	old_sha=${old_sha:0:12}
	bins=("$PWD/lab/.cache/ab/ipvs-checker-$old_sha" "$PWD/target/release/ipvs-checker")
fi
names=(A B)
# Whether side I (0 = A, 1 = B) is the floor.
is_floor() { [[ $old_sha == floor && $1 == 0 ]]; } # I
side_args=("${BENCH_AB_A_ARGS:-}" "${BENCH_AB_B_ARGS:-}")
[[ -x ${bins[0]} && -x ${bins[1]} ]] || { echo "build first: lab/bench/ab-checker.sh --build $1" >&2; exit 1; }
newer=$(find checker ipvs web common Cargo.lock -newer "${bins[1]}" -type f -name '*.rs' -print -quit)
[[ -z $newer ]] || { echo "${bins[1]} is older than $newer: lab/bench/ab-checker.sh --build $1" >&2; exit 1; }
for tool in valgrind callgrind_control strace curl nginx python3; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

n=${BENCH_SERVERS:-200}
rounds=${BENCH_ROUNDS:-8}
warmup=${BENCH_WARMUP:-5}
window=${BENCH_WINDOW:-10}
grind_n=${BENCH_GRIND_SERVERS:-20}
grind_warmup=${BENCH_GRIND_WARMUP:-30}
grind_window=${BENCH_GRIND_WINDOW:-30}
kind=${BENCH_AB_CHECK:-http}
out=${LAB_OUT:-/tmp}
work=$(mktemp -d /tmp/bench-ab-checker.XXXXXX)
# shellcheck source=lab/bench/lib.sh
source lab/bench/lib.sh
# shellcheck source=lab/bench/servers.sh
source lab/bench/servers.sh
# shellcheck source=lab/bench/checker-checks.sh
source lab/bench/checker-checks.sh # dnsmasq_start, dnsmasq_stop, checks_count
checker_cleanup() {
	bench_cleanup
	mkdir -p "$out/bench-ab-checker-logs"
	cp "$work"/*.log "$out/bench-ab-checker-logs/" 2>/dev/null || true
	servers_down
}
trap checker_cleanup EXIT
servers_down
servers_up

case $kind in
http) check="{type: http, path: /, body: healthy}" port=80 proto= ;;
https) check="{type: https, path: /, body: healthy, ca_file: $work/ca.pem, server_name: rs.lab.test}" port=443 proto= ;;
dns)
	check="{type: dns, name: www.lab.test, query_type: A}" port=53 proto=udp
	dnsmasq_start
	;;
*) echo "BENCH_AB_CHECK is http, https or dns, not $kind" >&2 && exit 2 ;;
esac
checker_config "$port" "$check" $proto >"$work/checker.yaml"
n=$grind_n checker_config "$port" "$check" $proto >"$work/checker-grind.yaml"
for i in 0 1; do
	is_floor "$i" && continue
	"${bins[$i]}" --config.file "$work/checker.yaml" --config.check >/dev/null ||
		{ echo "${names[$i]} refuses the config" >&2; exit 1; }
done
if [[ $old_sha == floor ]]; then
	old_version="probe-floor of $(git describe --always --dirty)"
else
	old_version=$("${bins[0]}" --version 2>&1 | head -1)
fi
new_version="$("${bins[1]}" --version 2>&1 | head -1), $(git describe --always --dirty)"
echo "servers: $n (callgrind: $grind_n); kernel $(uname -r), $(nproc) CPUs, clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null), $(valgrind --version), strace $(strace -V | awk 'NR == 1 { print $4 }'), nginx $(nginx -v 2>&1 | cut -d/ -f2)${BENCH_SERVERS_CPUS:+ on CPUs $BENCH_SERVERS_CPUS}"
a_label="$old_sha ($old_version)${side_args[0]:+, ${side_args[0]}}"
b_label="working tree ($new_version)${side_args[1]:+, ${side_args[1]}}"
echo "A: $a_label; B: $b_label"

# Probes seen by the servers so far.
lines() {
	case $kind in
	dns) checks_count dns ;;
	https) wc -l <"$work/https.log" ;;
	*) wc -l <"$work/http.log" ;;
	esac
}
# Starts checker I (0 = A, 1 = B) with CONFIG, its servers SERVERS, after
# the words of WRAPPER, on a table made anew; its log is LOG. Sets
# `started` to its PID (`ip netns exec`, env and valgrind exec it). The
# floor as A checks the first SERVERS addresses every second (CONFIG's
# real servers).
start() { # I CONFIG SERVERS LOG [WRAPPER...]
	local i=$1 config=$2 servers=$3 log=$4 extra
	shift 4
	read -ra extra <<<"${side_args[$i]}"
	n=$servers table "${proto:+$proto/}$port"
	if is_floor "$i"; then
		floor_command "$kind" "$servers" "$port"
		ip netns exec "$D" env "${floor_env[@]}" "$@" "${bins[$i]}" "${floor_args[@]}" >"$log" 2>&1 &
		pids+=($!)
		started=$!
		return
	fi
	ip netns exec "$D" "$@" "${bins[$i]}" --config.file "$config" \
		--web.listen-address "127.0.0.1:$((10311 + i))" --log.level warn "${extra[@]}" >"$log" 2>&1 &
	pids+=($!)
	started=$!
}
# HTTPS: the warm-up starts once every real server's session is made
# (the steady state; see sessions_made), FROM being lines before the start.
# The floor makes one session for all (their name is the same): its
# warm-up starts at once.
settled() { # I FROM
	[[ $kind == https ]] || return 0
	is_floor "$1" && return 0
	sessions_made "$2" >/dev/null
}
stop() { # PID
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# --- 1. CPU and faults, interleaved -------------------------------------------
# One line per window: round, checker, probes, seconds, CPU ticks, faults.
: >"$work/rounds.tsv"
for ((r = 0; r <= rounds; r++)); do
	for i in 0 1; do
		l0=$(lines)
		start "$i" "$work/checker.yaml" "$n" "$work/${names[$i]}-$r.log"
		pid=$started
		settled "$i" "$l0"
		sleep "$warmup"
		read -r c0 f0 < <(ticks_faults "$pid")
		p0=$(lines) t0=$EPOCHREALTIME
		sleep "$window"
		read -r c1 f1 < <(ticks_faults "$pid")
		p1=$(lines) t1=$EPOCHREALTIME
		stop "$pid"
		((r == 0)) || printf '%d\t%s\t%d\t%s\t%d\t%d\n' "$r" "${names[$i]}" "$((p1 - p0))" \
			"$(python3 -c "print($t1 - $t0)")" "$((c1 - c0))" "$((f1 - f0))" >>"$work/rounds.tsv"
	done
done

# --- 2. syscalls ----------------------------------------------------------------
: >"$work/strace.tsv"
for i in 0 1; do
	l0=$(lines)
	start "$i" "$work/checker.yaml" "$n" "$work/${names[$i]}-strace.log"
	pid=$started
	settled "$i" "$l0"
	sleep "$warmup"
	p0=$(lines)
	strace -f -c -o "$out/ab-checker-strace-${names[$i]}.txt" -p "$pid" 2>/dev/null &
	tracer=$!
	sleep "$window"
	kill -INT "$tracer"
	wait "$tracer" || true
	printf '%s\t%d\n' "${names[$i]}" "$(($(lines) - p0))" >>"$work/strace.tsv"
	stop "$pid"
done

# --- 3. instructions under callgrind ------------------------------------------------
: >"$work/grind.tsv"
for i in 0 1; do
	start "$i" "$work/checker-grind.yaml" "$grind_n" "$work/${names[$i]}-grind.log" \
		valgrind --tool=callgrind --dump-instr=no \
		--callgrind-out-file="$out/ab-checker-callgrind-${names[$i]}.%p" --log-file="$work/${names[$i]}-valgrind.log"
	pid=$started
	sleep "$grind_warmup"
	callgrind_control -z "$pid" >/dev/null
	p0=$(lines) t0=$EPOCHREALTIME
	sleep "$grind_window"
	callgrind_control -d "$pid" >/dev/null
	p1=$(lines) t1=$EPOCHREALTIME
	dump=$out/ab-checker-callgrind-${names[$i]}.$pid.1
	for _ in $(seq 100); do [[ -s $dump ]] && grep -q '^totals:' "$dump" && break; sleep 0.2; done
	grep -q '^totals:' "$dump" || { echo "${names[$i]}: no callgrind dump $dump" >&2; exit 1; }
	printf '%s\t%d\t%s\t%d\n' "${names[$i]}" "$((p1 - p0))" "$(python3 -c "print($t1 - $t0)")" "$pid" >>"$work/grind.tsv"
	stop "$pid"
done

[[ $kind == dns ]] && dnsmasq_stop
python3 - "$work" "$out" "$n" "$grind_n" "$(getconf CLK_TCK)" "$a_label" \
	"$b_label" "$kind" >"$out/bench-ab-checker.md" <<'PY'
import sys

sys.path.insert(0, "lab/bench")
from ab_stats import by_crate, differences, ratios, self_costs, spread, strace_calls, syscall_rows

work, out, n, grind_n, hz, a_name, b_name, kind = sys.argv[1:9]
n, grind_n, hz = int(n), int(grind_n), int(hz)

# Per round and checker: CPU [ms] and minor faults per 1,000 probes, and
# the share of the probes due that nginx saw.
runs = {"A": {}, "B": {}}
for line in open(f"{work}/rounds.tsv"):
    r, who, probes, seconds, ticks, faults = line.split("\t")
    probes, seconds = int(probes), float(seconds)
    runs[who][int(r)] = (int(ticks) * 1000 / hz / probes * 1000, int(faults) / probes * 1000, probes / (n * seconds) * 100)
traced = {who: int(p) for who, p in (l.split("\t") for l in open(f"{work}/strace.tsv"))}
grind = {}
for line in open(f"{work}/grind.tsv"):
    who, probes, seconds, pid = line.split("\t")
    grind[who] = (int(probes), float(seconds), self_costs(f"{out}/ab-checker-callgrind-{who}.{pid.strip()}.1"))

if kind == "dns":
    print(f"{n} dns real servers (one dnsmasq; www.lab.test A over UDP), every second, timeout 1 s; probes counted as the queries dnsmasq answered.")
elif kind == "https":
    print(f"{n} HTTPS real servers (one nginx; the chain verified against the private CA, TLS sessions resumed), every second, timeout 1 s, a new connection per probe; probes counted in nginx's access log.")
else:
    print(f"{n} HTTP real servers (one nginx), every second, timeout 1 s, a new connection per probe; probes counted in nginx's access log.")
print(f"A: {a_name}; B: {b_name}.")
print()
print("| per 1,000 probes | A | B | B / A |")
print("|:---|---:|---:|---:|")
(pa, _, fa), (pb, _, fb) = grind["A"], grind["B"]
ia, ib = sum(fa.values()) / pa * 1000, sum(fb.values()) / pb * 1000
print(f"| instructions (callgrind, {grind_n} servers) | {ia:,.0f} | {ib:,.0f} | {ib / ia:.4f} |")
(sa, ca), (sb, cb) = (strace_calls(f"{out}/ab-checker-strace-{w}.txt") for w in "AB")
print(f"| syscalls (strace -f -c) per probe | {sa / traced['A']:,.2f} | {sb / traced['B']:,.2f} | {sb / traced['B'] / (sa / traced['A']):.3f} |")
syscall_rows(ca, cb, traced["A"], 8, 2, per_b=traced["B"])
for k, what, digits in ((0, "CPU, user + system [ms]", 1), (1, "minor page faults", 0)):
    a = [runs["A"][r][k] for r in runs["A"]]
    b = [runs["B"][r][k] for r in runs["B"]]
    pairs = [(runs["A"][r][k], runs["B"][r][k]) for r in runs["A"]]
    print(f"| {what}, median [quartiles] of {len(a)} rounds | {spread(a, digits)} | {spread(b, digits)} | {ratios(pairs)} |")
a = [runs["A"][r][2] for r in runs["A"]]
b = [runs["B"][r][2] for r in runs["B"]]
print(f"| (probes seen / due, median [quartiles] [%]) | {spread(a, 1)} | {spread(b, 1)} | |")
print(f"| (under callgrind: probes seen / due [%]) | {pa / (grind_n * grind['A'][1]) * 100:.1f} | {pb / (grind_n * grind['B'][1]) * 100:.1f} | |")
print(f"| (probes in the strace windows) | {traced['A']} | {traced['B']} | |")
print()
print("B / A of the interleaved figures: the median and quartiles of the rounds' own ratios (each round runs A, then B).")
print()
print(f"Where the instructions per 1,000 probes differ (callgrind, each function's own; the dumps are in {out}):")
differences("crate", by_crate(fa), by_crate(fb), pa / 1000, 12, per_b=pb / 1000)
differences("function", fa, fb, pa / 1000, 15, per_b=pb / 1000)
PY
echo
cat "$out/bench-ab-checker.md"
