# shellcheck shell=bash
# The `exec` and `dns` phases of checker.sh (issue #12), and the cgroups
# every tool of checker.sh runs in. Sourced by checker.sh (and, for its dns
# mode, by ab-checker.sh), never executed,
# after its settings (work, D, R, n, window, warmup, report, checker) and
# before its functions are called.
#
# exec (BENCH_PHASES=exec): E real servers (BENCH_EXEC_SERVERS, default
# 200; a list such as "200 20" runs the phase for each) of the TCP service 198.18.0.10:8080, each checked every second,
# timeout 1 s, fall 1, by one trivial script run by /bin/sh (dash on
# Debian, by its #! line) that appends one line, "ADDRESS PORT", to
# $work/exec-checks.log and exits 0: keepalived's MISC_CHECK with misc_path
# "SCRIPT ADDRESS 8080" and misc_timeout 1, ipvs-checker's `type: exec`
# with command [SCRIPT, "{rs_address}", "{rs_port}"]. Both run the script
# with execve, no shell of their own in between. dash opens the log with
# O_APPEND and writes each line at once, so lines written at the same time
# stay whole: checks are counted as the log's lines over the window.
#
# dns (BENCH_PHASES=dns): N real servers of the UDP service
# 198.18.0.10:53, one dnsmasq in bench-rs answering on all their addresses
# (its wildcard socket), www.lab.test A 198.18.1.80 from its config;
# keepalived's DNS_CHECK with type A, name www.lab.test, connect_timeout 1,
# retry 0 (over UDP, the only transport its manual and check_dns.c have)
# against `type: dns`, name www.lab.test, query_type A, over UDP (the
# default). Both ask with RD set and pass on rcode NOERROR. Checks are
# counted as the queries dnsmasq answered over the window (its statistics).
#
# CPU: each tool runs in a cgroup v2 of its own, bench-NAME, from its first
# instruction; the user + system time of cpu.stat's usage over the window
# counts every process of the tool, the scripts it ran included (ended or
# not), and nothing else. (The HTTP phases read /proc as before: their
# tools start no programs.) RSS: VmRSS of the tool's own processes at the
# end (keepalived's parent and checker, ipvs-checker's one), without the
# scripts running at that moment; their CPU (/proc, user + system) is
# shown apart: the tool's own share, without its scripts' (keepalived's
# fork is the parent's; what each forked copy does until its exec is the
# script's). On time: checks seen / (servers x W). The whole VM's busy
# time and context switches (vm_busy_usec) over the window, per check:
# what the tool's own CPU leaves out (dnsmasq's and nginx's side, the
# softirqs others run for it).
# shellcheck disable=SC2154 # the settings are checker.sh's

cgroup_root=/sys/fs/cgroup
exec_port=8080
# The exec phase runs once for each count listed (at most N).
read -ra exec_counts <<<"${BENCH_EXEC_SERVERS:-200}"
exec_n=${exec_counts[0]}

# The start of a command line that runs a tool in the director's namespace
# and in the cgroup bench-NAME, entered before `ip netns exec` (which mounts
# a /sys of its own, without the cgroup file system) so the tool and all
# it starts are in it from the beginning; on the CPUs BENCH_TOOLS_CPUS
# lists, if set.
cgroup_prefix() { # NAME: sets in_cgroup
	local cg=$cgroup_root/bench-$1
	[[ -f $cgroup_root/cgroup.controllers ]] || { echo "no cgroup2 file system at $cgroup_root" >&2; exit 1; }
	mkdir -p "$cg"
	# shellcheck disable=SC2016 # expanded by sh
	in_cgroup=(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg"
		${BENCH_TOOLS_CPUS:+taskset -c "$BENCH_TOOLS_CPUS"} ip netns exec "$D")
}
# CPU time of every process that ran in the cgroup bench-NAME so far, in
# microseconds: "usage user system".
cgroup_usec() { # NAME
	awk '$1 == "usage_usec" { u = $2 } $1 == "user_usec" { us = $2 } $1 == "system_usec" { s = $2 } END { print u, us, s }' \
		"$cgroup_root/bench-$1/cpu.stat"
}
# The whole VM's busy CPU time, every vCPU, in microseconds (/proc/stat's
# first line: all but idle and iowait, in USER_HZ ticks), and its context
# switches so far: the tool's own CPU leaves out the kernel's work done
# for it in other contexts (the server's side of each connection,
# softirqs run by ksoftirqd), and under TCG a switch between processes
# is dear.
vm_busy_usec() {
	awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { busy = ($2 + $3 + $4 + $7 + $8 + $9) * 1e6 / hz } $1 == "ctxt" { print busy, $2 }' /proc/stat
}
# The VM's interrupts and softirqs so far, every vCPU summed, one
# "KIND COUNT" a line (interrupts by /proc/interrupts' row: LOC, RES,
# CAL, TLB..., the devices' numbered lines as "dev"; softirqs as
# "soft-NET_RX"...): what a tool's wake-ups of tasks on another vCPU
# (CAL, RES), its TLB shootdowns and its softirqs cost falls partly
# outside its own CPU, and these count them a probe.
vm_interrupts() {
	awk 'FNR == 1 { next }
		FILENAME ~ /softirqs/ { k = "soft-" $1; sub(/:$/, "", k); for (i = 2; i <= NF; i++) c[k] += $i; next }
		{ k = $1; sub(/:$/, "", k); if (k ~ /^[0-9]+$/) k = "dev"
		  for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) c[k] += $i }
		END { for (k in c) print k, c[k] }' /proc/interrupts /proc/softirqs | sort
}
# The real servers' nginx, master and workers: user + system CPU in
# microseconds so far (/proc/PID/stat, USER_HZ ticks).
nginx_usec() {
	local pid ticks=0 stat
	for pid in $(pgrep -x nginx); do
		read -ra stat <"/proc/$pid/stat" 2>/dev/null || continue
		# Fields 14 and 15: utime, stime (no space in the name "nginx").
		ticks=$((ticks + stat[13] + stat[14]))
	done
	echo $((ticks * 1000000 / $(getconf CLK_TCK)))
}
# Ends whatever is left in the bench's cgroups (cgroup.kill), and removes them.
cgroups_remove() {
	local cg i
	for cg in "$cgroup_root"/bench-*/; do
		[[ -d $cg ]] || continue
		echo 1 >"$cg/cgroup.kill" 2>/dev/null || true
		for i in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
	done
}

# The configurations of both phases, written when the phase runs.
checks_configs() { # KIND
	local script=$work/check.sh
	case $1 in
	exec)
		printf '%s\n' '#!/bin/sh' \
			'# One line per check, appended (O_APPEND), then exit 0.' \
			"echo \"\$1 \$2\" >>$work/exec-checks.log" >"$script"
		chmod 755 "$script"
		n=$exec_n checker_config "$exec_port" "{type: exec, command: [$script, '{rs_address}', '{rs_port}']}" >"$work/checker-exec.yaml"
		n=$exec_n keepalived_config "$exec_port" "$(printf '    %s\n' "MISC_CHECK {" "  misc_path \"$script @RS@ $exec_port\"" "  misc_timeout 1" "}")" \
			>"$work/keepalived-exec.conf"
		;;
	dns)
		checker_config 53 "{type: dns, name: www.lab.test, query_type: A}" udp >"$work/checker-dns.yaml"
		keepalived_config 53 "$(printf '    %s\n' "DNS_CHECK {" "  type A" "  name www.lab.test" "  connect_timeout 1" "  retry 0" "}")" \
			UDP >"$work/keepalived-dns.conf"
		;;
	esac
}

dnsmasq_start() {
	ip netns exec "$R" dnsmasq -C /dev/null --user=root --group=root --port=53 \
		--no-resolv --no-hosts --address=/www.lab.test/198.18.1.80 \
		--log-facility="$work/dns.log" --pid-file="$work/dnsmasq.pid"
}
dnsmasq_stop() {
	kill "$(cat "$work/dnsmasq.pid")"
	rm -f "$work/dnsmasq.pid"
}

# Checks made so far: the script's lines, or the queries dnsmasq answered
# (its statistics, which it logs on SIGUSR1: less work for it, on the
# vCPUs the tools share, than a line per query).
checks_count() { # KIND
	local stats='queries answered locally' before i
	if [[ $1 == exec ]]; then
		lines "$work/exec-checks.log"
		return
	fi
	before=$(grep -c "$stats" "$work/dns.log" || true)
	kill -USR1 "$(cat "$work/dnsmasq.pid")"
	for i in $(seq 200); do
		(($(grep -c "$stats" "$work/dns.log" || true) > before)) && break
		((i < 200)) || { echo "dnsmasq wrote no statistics within 10 s" >&2; exit 1; }
		sleep 0.05
	done
	grep "$stats" "$work/dns.log" | tail -n 1 | awk '{ print $NF }'
}

# One tool's window: CPU from its cgroup, checks from the script's log or
# dnsmasq's, RSS, real servers at weight 0 at the end, and ipvs-checker's
# own count of late probes.
checks_measure() { # NAME KIND
	local name=$1 kind=$2 port=$exec_port count=$exec_n flag=-t
	local pid c0 c1 o0 o1 r0 r1 t0 t1 v0 v1 rss down late=n/a procs
	[[ $kind == dns ]] && port=53 count=$n flag=-u
	pid=$(start_tool "$name" "$port" "$count") # log NAME-PORT-COUNT.log
	sleep "$warmup"
	procs=("$pid")
	[[ $name == keepalived ]] && procs+=("$(cat "$work/keepalived-checkers.pid")")
	c0=$(cgroup_usec "$name")
	v0=$(vm_busy_usec)
	o0=$(cpu_ticks "${procs[@]}")
	r0=$(checks_count "$kind")
	t0=$EPOCHREALTIME
	sleep "$window"
	r1=$(checks_count "$kind")
	c1=$(cgroup_usec "$name")
	v1=$(vm_busy_usec)
	o1=$(cpu_ticks "${procs[@]}")
	t1=$EPOCHREALTIME
	rss=$(rss_kb "${procs[@]}")
	down=n/a
	[[ $name != floor ]] && down=$((count - $(weighted "$port" "$flag")))
	if [[ $name == ipvs-checker ]]; then
		late=$(ip netns exec "$D" curl -s http://127.0.0.1:10311/metrics |
			awk '/^ipvs_checker_probes_late_total/ { s += $2 } END { print s + 0 }')
	fi
	stop_tool "$pid"
	python3 - "$name" "$kind" "$t0" "$t1" $((r1 - r0)) "$count" "$rss" "${#procs[@]}" "$down" "$late" $((o1 - o0)) "$clk" $c0 $c1 $v0 $v1 <<'PY' | tee -a "$work/measure.txt"
import sys
name, kind, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
seen, count, rss, procs = map(int, sys.argv[5:9])
down = sys.argv[9]
late = sys.argv[10]
own = int(sys.argv[11]) / int(sys.argv[12])
u0, us0, s0, u1, us1, s1 = (int(v) / 1e6 for v in sys.argv[13:19])
busy0, ctxt0, busy1, ctxt1 = map(float, sys.argv[19:23])
window = t1 - t0
cpu = u1 - u0
def per_k(cpu):
    return f"{cpu / seen * 1000:.3f}" if seen else "inf"
print(f"| {name} | {kind} | {seen} in {window:.1f} s | {seen / (count * window) * 100:.1f} % | {cpu:.2f} ({us1 - us0:.2f} + {s1 - s0:.2f}) | {per_k(cpu)} | {per_k(own)} | {rss / 1024:.1f} ({procs} proc.) | {down} | {late} | {per_k((busy1 - busy0) / 1e6)}, {(ctxt1 - ctxt0) / seen if seen else 0:.1f} |")
PY
}

checks_phase() { # KIND (exec or dns)
	local kind=$1 count=$n tool
	[[ $kind == exec ]] && count=$exec_n
	checks_configs "$kind"
	[[ $kind == dns ]] && dnsmasq_start
	{
		echo
		echo "$kind checks, $count real servers, every 1 s, timeout 1 s (CPU from each tool's cgroup, scripts included):"
		echo
		echo "| tool | check | checks seen | on time | CPU [s] (user + system) | CPU s / 1,000 checks | the tool's own processes' | RSS [MB] | down at end | late probes | whole VM: busy s / 1,000 checks, context switches / check |"
		echo "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	} | tee -a "$report"
	for tool in ipvs-checker keepalived floor; do checks_measure "$tool" "$kind" | tee -a "$report"; done
	[[ $kind == dns ]] && dnsmasq_stop
	return 0
}
