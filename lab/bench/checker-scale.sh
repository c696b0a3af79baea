# shellcheck shell=bash
# The `scale` phase of checker.sh (issue #16). Sourced by checker.sh, never
# executed, after checker-checks.sh (its cgroups) and before its functions
# are called.
#
# HTTP real servers (the check of checker.sh's HTTP window) in 10 services,
# 198.18.0.20...29:80, each with a tenth of them, for each size S of
# BENCH_SCALE_SIZES (default "100 500 2000 5000"):
#   - at one probe rate (BENCH_SCALE_RATE, default 500 a second: every real
#     server every S / rate seconds, at least 1 s), so that CPU per probe
#     and RSS are compared across sizes and not across loads;
#   - then the largest size every BENCH_SCALE_INTERVAL (default 2) seconds,
#     as issue 16 asks, whether the VM keeps up or not; in that run, a
#     rack, the first service's real servers (500 of 5,000), refuses
#     connections (one iptables rule over their address range, in
#     bench-rs): the time from the rule until all of them are at weight 0
#     (ipvsadm -Ln polled), against interval x fall + 1 s.
# Both tools one at a time, with the same settings: timeout 1 s, rise 1,
# fall 1 (keepalived: delay_loop = the interval, connect_timeout 1, retry
# 0, inhibit_on_failure). The warm-up is at least an interval and 2 s, the
# window at least two intervals. CPU: the tool's cgroup over the window
# (user + system, every process); probes: nginx's access log lines whose
# time ($msec) falls in the window, and for each figure a probe, those
# logged between the middles of its two readings (timed_read); on time:
# probes / (S x window / interval), and the probes of each whole second of
# the window as a share of those due a second (the least, the median, the
# most); RSS: the tool's processes at the end; down at end: real servers
# at weight 0 then; whole VM: the busy CPU of both vCPUs over the window,
# every process and the kernel's softirqs included, the real servers'
# nginx's CPU (both in timer ticks, coarser than the cgroups' figures: not
# to be subtracted from them), and the context switches, per probe;
# ipvs-checker's own counts over the window (probes ended, late) and its
# concurrency limit at the end, from its /metrics, and its passes over the
# table in the window (how many, their CPU a pass, the wait the last set;
# none from a build before those metrics); for ipvs-checker and the floor,
# each of their threads' CPU and context switches (waited, preempted) a
# probe, and nginx's workers' beside them; the VM's interrupts (by kind:
# LOC, RES, CAL...) and softirqs a probe, every vCPU; the VM's speed over
# the window (scale_speed). BENCH_SCALE_PARTS (default "rate overload")
# runs only the one-rate sizes ("rate") or the largest size's overload;
# BENCH_SCALE_RATE_TOOLS (default "ipvs-checker keepalived") names the
# tools the one-rate sizes run (the floor too, if named).
# The overload also runs checker.sh's floor (the same HTTP checks at the
# same interval, its own system calls only; no table, no rack): whether
# any checker could be on time there. BENCH_SCALE_TOOLS (default
# "ipvs-checker keepalived floor") names the tools the overload runs.
# BENCH_SCALE_ROUNDS=R (default 1) runs the overload's tools in turn R
# times in the one boot (the rack in the last round only), then each
# tool's on-time share and CPU a probe over the rounds (median, quartiles)
# and, round by round, each tool's against the last tool's of its round
# (the floor, by default): one run of the VM is as fast as it happens to
# be, and a tool's figures beside another's from minutes apart move with
# it, where those of one round do not as much.
# "ipvs-checker-a" in BENCH_SCALE_TOOLS runs the ipvs-checker binary
# BENCH_SCALE_CHECKER_A (another build) as a tool of its own: with
# BENCH_SCALE_ROUNDS, an A/B of two builds in one boot ("ipvs-checker
# ipvs-checker-a" puts each round's build against A's).
# BENCH_SCALE_SCRAPE_EVERY=N scrapes ipvs-checker's /metrics every N
# seconds over its windows, as Prometheus would, and reports each
# scrape's time. Every window's probes seen a second, second by second,
# go to $LAB_OUT/scale-seconds.txt.
# BENCH_SCALE_PERF=1 samples the whole VM (perf record -a) over each
# overload window (with rounds, the last round's), enabled only there
# through perf's control fifo (its own start-up, seconds under TCG, falls
# before the warm-up); the reports, by
# process, by process and object, then by symbol, in
# $LAB_OUT/scale-perf-TOOL.txt. perf takes its own share of the VM: that
# run's figures are not to be compared.
# shellcheck disable=SC2154 # the settings and helpers are checker.sh's

read -ra scale_sizes <<<"${BENCH_SCALE_SIZES:-100 500 2000 5000}"
scale_rate=${BENCH_SCALE_RATE:-500}
scale_interval=${BENCH_SCALE_INTERVAL:-2}
scale_rounds=${BENCH_SCALE_ROUNDS:-1}
scale_checker_a=${BENCH_SCALE_CHECKER_A:-}
if [[ " ${BENCH_SCALE_TOOLS:-} " == *" ipvs-checker-a "* ]]; then
	[[ -x $scale_checker_a ]] || { echo "BENCH_SCALE_TOOLS has ipvs-checker-a: BENCH_SCALE_CHECKER_A must name an ipvs-checker binary" >&2; exit 2; }
fi
read -ra scale_parts <<<"${BENCH_SCALE_PARTS:-rate overload}"
scale_services=10
scale_top=0
for scale_size in "${scale_sizes[@]}"; do
	if ((scale_size > scale_top)); then scale_top=$scale_size; fi
done

# The addresses past checker.sh's N, up to the largest size, and the
# routes to them (servers.sh routes 198.18.4.0/23, the first 510).
scale_up() {
	local i
	ip -n "$D" route add 198.18.6.0/23 via 198.18.1.2
	ip -n "$D" route add 198.18.8.0/21 via 198.18.1.2
	ip -n "$D" route add 198.18.16.0/20 via 198.18.1.2
	for ((i = n + 1; i <= scale_top; i++)); do echo "addr add $(addr $i)/32 dev dummy0"; done |
		ip -n "$R" -batch -
}

scale_vip() { echo "198.18.0.$((20 + $1))"; } # SERVICE (0-based)

# The real servers of service K of S: the K-th tenth, in address order.
scale_members() { # S K
	local per=$(($1 / scale_services)) i
	for ((i = $2 * per + 1; i <= ($2 + 1) * per; i++)); do echo "$i"; done
}

scale_configs() { # S INTERVAL
	local s=$1 every=$2 k i check
	# Made once: a process per real server is minutes under TCG at 5,000.
	check=$(http_get HTTP_GET | sed 's/^/  /')
	{
		echo "defaults: {interval: ${every}s, timeout: 1s, rise: 1, fall: 1}"
		echo "services:"
		for ((k = 0; k < scale_services; k++)); do
			echo "  - address: $(scale_vip $k):80"
			echo "    check: {type: http, path: /, body: healthy}"
			echo "    real_servers:"
			for i in $(scale_members "$s" $k); do echo "      - {address: '$(addr "$i"):80', weight: 1}"; done
		done
	} >"$work/checker-scale.yaml"
	{
		printf '%s\n' "global_defs {" "  router_id bench" "}"
		for ((k = 0; k < scale_services; k++)); do
			printf '%s\n' "virtual_server $(scale_vip $k) 80 {" "  delay_loop $every" "  lb_algo wrr" "  lb_kind NAT" "  protocol TCP"
			for i in $(scale_members "$s" $k); do
				printf '  %s\n' "real_server $(addr "$i") 80 {" "  weight 1" "  inhibit_on_failure"
				echo "$check"
				echo "  }"
			done
			echo "}"
		done
	} >"$work/keepalived-scale.conf"
	{
		echo "-C"
		for ((k = 0; k < scale_services; k++)); do
			echo "-A -t $(scale_vip $k):80 -s wrr"
			for i in $(scale_members "$s" $k); do echo "-a -t $(scale_vip $k):80 -r $(addr "$i"):80 -m -w 1"; done
		done
	} >"$work/table-scale.txt"
}

scale_start() { # NAME S INTERVAL: started in its cgroup, prints its pid
	local log=$work/$1-scale-$scale_label.log
	case $1 in
	floor) floor_start http "$log" "$2" 80 "$3" ;;
	ipvs-checker | ipvs-checker-a)
		local bin=$checker
		[[ $1 == ipvs-checker-a ]] && bin=$scale_checker_a
		ip netns exec "$D" ipvsadm -R <"$work/table-scale.txt"
		checker=$bin checker_start "$1" "$work/checker-scale.yaml" "$log"
		;;
	keepalived) keepalived_start "$work/keepalived-scale.conf" "$log" ;;
	esac
	echo $!
}

# Real servers with a weight other than 0, in every scale service or in
# service K only.
scale_weighted() { # [K]
	local list
	if [[ -n ${1:-} ]]; then list=(-t "$(scale_vip "$1"):80"); else list=(); fi
	ip netns exec "$D" ipvsadm -Ln "${list[@]}" |
		awk -v c=0 '$1 == "->" && $2 ~ /:80$/ && $4 ~ /^[0-9]+$/ && $4 != 0 { c++ } END { print c }'
}

# The rack, the first service's S/10 real servers, refuses connections;
# prints the seconds until all of them are at 0, or ">LIMIT", and keeps
# the rule's time for TOOL's log (scale_rack_log).
scale_rack_fails() { # S TOOL
	local rule before t0 r
	rule=(INPUT -p tcp --dport 80 -m iprange --dst-range "$(addr 1)-$(addr $(($1 / scale_services)))" -j REJECT --reject-with tcp-reset)
	before=$EPOCHREALTIME
	ip netns exec "$R" iptables -I "${rule[@]}"
	t0=$EPOCHREALTIME
	echo "$before $t0" >"$work/$2-scale-$scale_label-rack-rule.txt"
	r=">$rack_limit"
	while ((${EPOCHREALTIME%.*} - ${t0%.*} <= rack_limit)); do
		if (($(scale_weighted 0) == 0)); then
			r=$(elapsed "$t0" "$EPOCHREALTIME")
			break
		fi
	done
	ip netns exec "$R" iptables -D "${rule[@]}"
	echo "$r"
}

# What ipvs-checker's log says of the rack's failure, timed from the
# rule in place (iptables returned, as the table's time; the rule may
# take hold before: a time from -(the insertion's time)): when its first
# failures hurried the others (see checker/README.md, "A rack failing"),
# and its last weight set to 0 there; ipvsadm's polls, a few processes
# each under TCG, add to the table's time.
scale_rack_log() { # LABEL (S-INTERVAL)
	local log=$work/ipvs-checker-scale-$1.log file=$work/ipvs-checker-scale-$1-rack-rule.txt times
	[[ -f $log && -f $file ]] || return 0
	read -ra times <"$file"
	python3 - "$log" "${times[@]}" "$(scale_vip 0):80" <<'PY'
import re, sys
from datetime import datetime
log, before, rule, vip = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def at(line):
    ts = re.match(r"ts=(\S+)Z ", line)
    return datetime.fromisoformat(ts.group(1) + "+00:00").timestamp() - rule if ts else None
hurry, last = None, None
for line in open(log, errors="replace"):
    if f'service="TCP {vip}"' not in line:
        continue
    t = at(line)
    if t is None or t < before - rule:
        continue
    if hurry is None and "began to fail" in line:
        hurry = t
    if "weight set" in line and " to=0 " in line:
        last = t
say = lambda t: "none" if t is None else f"{t:.2f} s"
print(f"ipvs-checker's log, from the rule in place (inserted in {rule - before:.2f} s): the rack's first failures hurried the others at {say(hurry)}, its last weight set to 0 at {say(last)}.")
PY
}

# ipvs-checker's own counts, from its /metrics: probes ended (those that
# reached their connect phase), probes late, and its probe threads'
# concurrency limits summed; then its passes over the table, their CPU
# seconds and the wait the last set.
scale_counts() {
	ip netns exec "$D" curl -s http://127.0.0.1:10311/metrics | awk '
		/^ipvs_checker_probe_duration_seconds_count\{.*phase="connect"/ { ended += $NF }
		/^ipvs_checker_probes_late_total/ { late += $NF }
		/^ipvs_checker_probe_concurrency_limit/ { limit += $NF }
		/^ipvs_checker_table_passes_total / { passes = $NF }
		/^ipvs_checker_table_pass_cpu_seconds_total / { pass_cpu = $NF }
		/^ipvs_checker_table_pass_interval_seconds / { wait = $NF }
		END { print ended + 0, late + 0, limit + 0, passes + 0, pass_cpu + 0, wait + 0 }'
}

# Starts perf (its pid in scale_perf_pid), its sampling off until
# `scale_perf enable`.
scale_perf_start() { # NAME
	rm -f "$work/perf-ctl" "$work/perf-ack"
	mkfifo "$work/perf-ctl" "$work/perf-ack"
	perf record -a -F 299 -D -1 --control "fifo:$work/perf-ctl,$work/perf-ack" \
		-o "$out/scale-perf-$1.data" -- sleep 3600 >"$work/perf-$1.log" 2>&1 &
	scale_perf_pid=$!
	# Opened for reading and writing, neither open waits for perf's (a
	# perf that failed would hold it for ever); its answer to a ping says
	# it is up, before the tool starts.
	exec {scale_perf_ctl}<>"$work/perf-ctl" {scale_perf_ack}<>"$work/perf-ack"
	scale_perf ping || { echo "perf did not start: $(cat "$work/perf-$1.log")" >&2; exit 1; }
}

scale_perf() { # enable|disable|ping: fails without perf's answer in 60 s
	echo "$1" >&"$scale_perf_ctl"
	local ack
	read -r -t 60 ack <&"$scale_perf_ack"
}

scale_perf_end() { # NAME PID
	kill -INT "$2"
	wait "$2" 2>/dev/null || true
	exec {scale_perf_ctl}>&- {scale_perf_ack}<&-
	{
		perf report -i "$out/scale-perf-$1.data" --no-children --sort comm --stdio 2>/dev/null | grep '%' | head -20
		perf report -i "$out/scale-perf-$1.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep '%' | head -30
		perf report -i "$out/scale-perf-$1.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null | grep '%' | head -300
	} >"$out/scale-perf-$1.txt" || true
}

# Scrapes ipvs-checker's /metrics every BENCH_SCALE_SCRAPE_EVERY seconds
# from FROM (seconds since the epoch) until killed, as Prometheus would:
# each scrape's start and its time. One scraper process for all of them,
# started before FROM: under TCG a process's start costs the VM seconds.
scale_scrapes() { # FROM
	exec ip netns exec "$D" python3 - "$1" "$BENCH_SCALE_SCRAPE_EVERY" <<'PY'
import sys, time, urllib.request
begin, every = map(float, sys.argv[1:3])
time.sleep(max(0.0, begin - time.time()))
while True:
    at = time.time()
    try:
        with urllib.request.urlopen("http://127.0.0.1:10311/metrics", timeout=30) as answer:
            while answer.read(65536):
                pass
        took = f"{time.time() - at:.3f}"
    except OSError as e:
        took = f"failed ({e})"
    print(f"{at:.3f} {took}", flush=True)
    time.sleep(every)
PY
}

# A fixed piece of work timed by its own CPU time every 2 s until killed,
# one figure (ms) a line: how fast the VM runs at the moment. Its speed
# follows the host's, which moves from minute to minute
# (lab/bench/README.md, "2026-12-08, small hours"), and a window's
# figures are read beside it. About 1 % of a vCPU, for every tool alike.
# Run as `python3 -c "$scale_speed" &`, so that $! is the process to kill.
scale_speed='
import time
while True:
    began = time.process_time()
    x = 0
    for i in range(20000):
        x = (x * 31 + i) & 0xFFFFFFFF
    print(f"{(time.process_time() - began) * 1000:.2f}", flush=True)
    time.sleep(2)
'

# Runs COMMAND..., with its output in read_out and the time it ran in
# read_span ("START END", EPOCHREALTIME). A reading stands for the middle
# of its run: in a VM short of CPU a reader takes a good part of a second
# to start, and a time taken before or after it would count the probes
# of a window that is not the one read.
timed_read() { # COMMAND...
	local start=$EPOCHREALTIME
	read_out=$("$@")
	read_span="$start $EPOCHREALTIME"
}

# The probes the real servers logged (nginx's $msec, each line's first
# field), from line SKIP on, over each span given as four times: from the
# middle of the first two to the middle of the last two (the two readings'
# timed_read spans). One count a line.
seen_between() { # LOG SKIP "A0 B0 A1 B1"...
	local log=$1 skip=$2
	shift 2
	awk -v skip="$skip" -v spans="$*" '
		BEGIN {
			n = split(spans, t, " ") / 4
			for (i = 1; i <= n; i++) {
				from[i] = (t[4 * i - 3] + t[4 * i - 2]) / 2
				to[i] = (t[4 * i - 1] + t[4 * i]) / 2
			}
		}
		NR > skip { for (i = 1; i <= n; i++) if ($1 >= from[i] && $1 < to[i]) c[i]++ }
		END { for (i = 1; i <= n; i++) print c[i] + 0 }' "$log"
}

scale_measure() { # NAME S INTERVAL [rack]
	local name=$1 s=$2 every=$3 pid procs nginx_pids scrapes_pid c0 c1 v0 v1 n0 n1 t0 t1 rss down settle win rack= k0=(- - - - - -) k1=(- - - - - -) perf_pid=
	local skip read_out read_span c_span v_span n_span irq_span threads_span seen speed_pid
	scale_label=$s-$every
	if [[ -n ${BENCH_SCALE_PERF:-} && ${4:-} == rack ]]; then
		scale_perf_start "$name"
		perf_pid=$scale_perf_pid
	fi
	pid=$(scale_start "$name" "$s" "$every")
	settle=$((every + 2 > warmup ? every + 2 : warmup))
	win=$((2 * every > window ? 2 * every : window))
	scrapes_pid=
	if [[ $name == ipvs-checker && -n ${BENCH_SCALE_SCRAPE_EVERY:-} ]]; then
		scale_scrapes "$((${EPOCHREALTIME%.*} + settle))" >"$work/scrapes.txt" &
		scrapes_pid=$!
	fi
	sleep "$settle"
	python3 -c "$scale_speed" >"$work/speed.txt" &
	speed_pid=$!
	[[ $name == ipvs-checker* ]] && read -ra k0 < <(scale_counts)
	mapfile -t nginx_pids < <(pgrep -x nginx)
	skip=$(lines "$work/http.log")
	# Each reading's probes are those logged over its own span (from the
	# middle of its first reading to the middle of its last); the share
	# on time, over [t0, t1], the window itself.
	if [[ $name != keepalived ]]; then
		timed_read threads_by_name "$pid" "${nginx_pids[@]}"
		echo "$read_out" >"$work/threads-0.txt"
		threads_span=$read_span
	fi
	timed_read vm_interrupts
	echo "$read_out" >"$work/interrupts-0.txt"
	irq_span=$read_span
	timed_read cgroup_usec "$name"
	c0=$read_out c_span=$read_span
	timed_read vm_busy_usec
	read -ra v0 <<<"$read_out"
	v_span=$read_span
	timed_read nginx_usec
	n0=$read_out n_span=$read_span
	t0=$EPOCHREALTIME
	[[ -n $perf_pid ]] && { scale_perf enable || echo "perf did not enable its sampling" >&2; }
	sleep "$win"
	t1=$EPOCHREALTIME
	kill "$speed_pid"
	wait "$speed_pid" 2>/dev/null || true
	if [[ -n $scrapes_pid ]]; then
		kill "$scrapes_pid"
		wait "$scrapes_pid" 2>/dev/null || true
	fi
	[[ -n $perf_pid ]] && { scale_perf disable || echo "perf did not disable its sampling" >&2; }
	timed_read nginx_usec
	n1=$read_out n_span+=" $read_span"
	timed_read vm_busy_usec
	read -ra v1 <<<"$read_out"
	v_span+=" $read_span"
	timed_read cgroup_usec "$name"
	c1=$read_out c_span+=" $read_span"
	timed_read vm_interrupts
	echo "$read_out" >"$work/interrupts-1.txt"
	irq_span+=" $read_span"
	if [[ $name != keepalived ]]; then
		timed_read threads_by_name "$pid" "${nginx_pids[@]}"
		echo "$read_out" >"$work/threads-1.txt"
		threads_span+=" $read_span"
	fi
	procs=("$pid")
	[[ $name == keepalived ]] && procs+=("$(cat "$work/keepalived-checkers.pid")")
	rss=$(rss_kb "${procs[@]}")
	# After the RSS: a scrape's text of 5,000 real servers is megabytes.
	[[ $name == ipvs-checker* ]] && read -ra k1 < <(scale_counts)
	down=n/a
	if [[ $name != floor ]]; then
		down=$((s - $(scale_weighted)))
		[[ ${4:-} == rack ]] && rack=$(scale_rack_fails "$s" "$name")
	fi
	stop_tool "$pid"
	# The probes of the CPU's readings, the VM's, nginx's, the interrupts'
	# and the threads' (keepalived: none); the window's are counted below,
	# second by second.
	mapfile -t seen < <(seen_between "$work/http.log" "$skip" "$c_span" "$v_span" "$n_span" "$irq_span" "${threads_span:-0 0 0 0}")
	[[ -n $perf_pid ]] && scale_perf_end "$name" "$perf_pid"
	if [[ -n $scrapes_pid ]]; then
		awk -v t0="$t0" -v every="$BENCH_SCALE_SCRAPE_EVERY" '
			{ out = out sprintf("%s%.1f (%s s)", NR > 1 ? ", " : "", $1 - t0, $2) }
			END { print "- ipvs-checker, its /metrics scraped every " every " s, at [s from the window'"'"'s start] (the scrape'"'"'s time): " out }' \
			"$work/scrapes.txt" >>"$work/scale-threads.txt"
	fi
	if [[ $name != keepalived ]]; then
		join "$work/threads-0.txt" "$work/threads-1.txt" | awk -v seen="${seen[4]}" -v label="$name, $s real servers every $every s" '
			{ ms = ($5 - $2) / 1e6; if (ms > 0 && seen) out = out sprintf(", %s %.3f; %.2f + %.2f", $1, ms / seen, ($6 - $3) / seen, ($7 - $4) / seen) }
			END { print "- " label ", by thread name (nginx: its workers), a probe seen: CPU [ms]; context switches, waited + preempted" out }' >>"$work/scale-threads.txt"
	fi
	if [[ $name == ipvs-checker* ]]; then
		awk -v label="$name, $s real servers every $every s" -v n0="${k0[3]}" -v cpu0="${k0[4]}" -v n1="${k1[3]}" -v cpu1="${k1[4]}" -v wait="${k1[5]}" 'BEGIN {
			n = n1 - n0
			# In parentheses: a ">" among printf'"'"'s arguments redirects.
			per = (n > 0 ? sprintf("%.1f", (cpu1 - cpu0) / n * 1000) : "-")
			if (n1 == 0)
				print "- " label ", its passes over the table: not in its /metrics (a build before them)"
			else
				printf "- %s, its passes over the table in the window: %d, %s ms of CPU a pass, the wait set by the last %s s\n", label, n, per, wait
		}' >>"$work/scale-threads.txt"
	fi
	sort -n "$work/speed.txt" | awk -v label="$name, $s real servers every $every s" '
		{ v[NR] = $1 }
		END { if (NR) printf "- %s, the VM'"'"'s speed: a fixed piece of work took %s ms of CPU (median of %d, every 2 s from the warm-up'"'"'s end; least %s, most %s)\n", label, v[int((NR + 1) / 2)], NR, v[1], v[NR] }' >>"$work/scale-threads.txt"
	join "$work/interrupts-0.txt" "$work/interrupts-1.txt" | awk -v seen="${seen[3]}" -v label="$name, $s real servers every $every s" '
		{ d = $3 - $2; if (d > 0 && seen) out = out sprintf("%s%s %.3f", out == "" ? "" : ", ", $1, d / seen) }
		END { print "- " label ", the VM'"'"'s interrupts and softirqs a probe seen (every vCPU): " out }' >>"$work/scale-threads.txt"
	python3 - "$name" "$s" "$every" "$t0" "$t1" "$rss" "${#procs[@]}" "$down" "${rack:--}" "$work/http.log" "$skip" "$out/scale-seconds.txt" "${seen[@]:0:3}" "${k0[@]:0:3}" "${k1[@]:0:3}" "${v0[@]}" "${v1[@]}" "$n0" "$n1" $c0 $c1 <<'PY'
import sys
args = sys.argv[1:]
name, s, every = args[0], int(args[1]), float(args[2])
t0, t1 = float(args[3]), float(args[4])
window = t1 - t0
rss, procs = int(args[5]), int(args[6])
down, rack, log, skip, series_file = args[7], args[8], args[9], int(args[10]), args[11]
# The probes of each reading's own span: the tool's cgroup, the VM's CPU
# and switches, nginx's.
seen_cpu, seen_vm, seen_nginx = map(int, args[12:15])
ended0, late0, _, ended1, late1, limit = args[15:21]
own = f"{int(ended1) - int(ended0)}, {int(late1) - int(late0)}, {limit}" if ended0 != "-" else "-"
busy0, switches0, busy1, switches1 = args[21:25]
vm = (float(busy1) - float(busy0)) / 1e6
switches = int(switches1) - int(switches0)
nginx = (int(args[26]) - int(args[25])) / 1e6
vm_per = f"{vm / seen_vm * 1000:.3f}, {nginx / seen_nginx * 1000:.3f}, {switches / seen_vm:.1f}" if seen_vm and seen_nginx else "inf"
u0, us0, s0, u1, us1, s1 = (int(v) / 1e6 for v in args[27:33])
cpu = u1 - u0
per = f"{cpu / seen_cpu * 1000:.3f}" if seen_cpu else "inf"
due = s * window / every
# The window's probes, and those of each whole second of it as a share
# of those due a second: a tool that falls behind and then makes its
# late probes together shows it here, where the window's mean hides it.
by_second = {}
with open(log) as lines:
    for i, line in enumerate(lines):
        if i < skip:
            continue
        at = float(line.split()[0])
        if t0 <= at < t1:
            by_second[int(at)] = by_second.get(int(at), 0) + 1
seen = sum(by_second.values())
seconds = range(int(t0) + 1, int(t1))
with open(series_file, "a") as series:
    print(f"{name} {s} every {every:g} s, probes seen a second from {int(t0) + 1}:",
          " ".join(str(by_second.get(k, 0)) for k in seconds), file=series)
rates = sorted(by_second.get(k, 0) / (s / every) * 100 for k in seconds)
spread = f"{rates[0]:.0f} / {rates[len(rates) // 2]:.0f} / {rates[-1]:.0f} %" if rates else "-"
print(f"| {name} | {s} | {every:g} | {seen} in {window:.1f} s | {seen / due * 100:.1f} % | {spread} | {cpu:.2f} ({us1 - us0:.2f} + {s1 - s0:.2f}) | {per} | {vm_per} | {rss / 1024:.1f} ({procs} proc.) | {own} | {down} | {rack} |")
PY
}

scale_phase() {
	local s every tool
	scale_up
	{
		echo
		echo "Scale (HTTP, ${scale_services} services; at ${scale_rate} probes a second, then the largest size every ${scale_interval} s with its first service's real servers refusing; CPU from each tool's cgroup):"
		echo
		echo "| tool | real servers | interval [s] | probes seen | on time | a second, of those due: least / median / most | CPU [s] (user + system) | CPU s / 1,000 probes | whole VM: busy CPU s / 1,000 probes, nginx's CPU s / 1,000, context switches / probe | RSS [MB] | checker's count: ended, late, limit | down at end | rack (a tenth) at 0 [s] |"
		echo "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	} | tee -a "$report"
	if [[ " ${scale_parts[*]} " == *" rate "* ]]; then
		for s in "${scale_sizes[@]}"; do
			every=$(((s + scale_rate - 1) / scale_rate))
			((every < 1)) && every=1
			scale_configs "$s" "$every"
			for tool in ${BENCH_SCALE_RATE_TOOLS:-ipvs-checker keepalived}; do scale_measure "$tool" "$s" "$every" | tee -a "$report"; done
		done
	fi
	if [[ " ${scale_parts[*]} " == *" overload "* ]]; then
		local round rack
		scale_configs "$scale_top" "$scale_interval"
		for ((round = 1; round <= scale_rounds; round++)); do
			rack=
			((round == scale_rounds)) && rack=rack
			for tool in ${BENCH_SCALE_TOOLS:-ipvs-checker keepalived floor}; do
				scale_measure "$tool" "$scale_top" "$scale_interval" $rack | tee -a "$report" "$work/scale-rounds.txt"
			done
		done
	fi
	{
		echo
		echo "The rack's bound: interval x fall + 1 s = $((scale_interval + 1)) s."
		cat "$work/scale-threads.txt" 2>/dev/null || true
		[[ " ${scale_parts[*]} " == *" overload "* ]] && scale_rack_log "$scale_top-$scale_interval"
		((scale_rounds > 1)) && scale_rounds_summary "$work/scale-rounds.txt"
	} | tee -a "$report"
}

# The overload's rounds (its table rows, the tools in turn): each tool's
# on-time share and CPU a probe over the rounds, and each tool's against
# the last tool of its round, round by round: the median and quartiles.
scale_rounds_summary() { # ROWS
	python3 - "$1" <<'PY'
import statistics, sys
rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in open(sys.argv[1]) if line.startswith("|")]
tools = list(dict.fromkeys(r[0] for r in rows))
on_time = {t: [] for t in tools}
cpu = {t: [] for t in tools}
for r in rows:
    on_time[r[0]].append(float(r[4].rstrip(" %")))
    cpu[r[0]].append(float(r[7]))
def spread(v, digits=3):
    if len(v) < 2:
        return f"{v[0]:.{digits}f}" if v else "-"
    q = statistics.quantiles(v, n=4, method="inclusive")
    return f"{statistics.median(v):.{digits}f} [{q[0]:.{digits}f}-{q[2]:.{digits}f}]"
last = tools[-1]
rounds = min(len(v) for v in on_time.values())
print()
print(f"The overload's {rounds} rounds, the tools in turn ({', '.join(tools)}): median [quartiles] over the rounds; against {last}, round by round.")
print()
print(f"| tool | on time [%] | CPU ms a probe | on time, x {last}'s | CPU a probe, x {last}'s |")
print("|:---|---:|---:|---:|---:|")
for t in tools:
    against = lambda f: spread([f[t][i] / f[last][i] for i in range(rounds) if f[last][i]]) if t != last else "1"
    print(f"| {t} | {spread(on_time[t], 1)} | {spread(cpu[t])} | {against(on_time)} | {against(cpu)} |")
PY
}
