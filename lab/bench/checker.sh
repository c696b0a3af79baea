#!/bin/bash
# Benchmark: ipvs-checker beside keepalived 2.2.7's HTTP_GET and SSL_GET on
# the same 500 real servers in the same lab run (issue #4). Run from the
# repository root:
#
#   cargo build --release -p ipvs-checker --bin ipvs-checker --example probe-floor
#   lab/run -- lab/bench/checker.sh
#
# Setup (lab/bench/servers.sh, shared with ab-checker.sh): namespace
# bench-rs holds N (default 500) addresses 198.18.4.1...
# on a dummy interface, all served by one nginx on :80 and :443 (a
# certificate for rs.lab.test from a private CA made here with openssl);
# namespace bench-dir is the director, with the IPVS services
# 198.18.0.10:80 and :443 and a route to the addresses. Both tools check
# every address every second, fall 1, timeout 1 s (keepalived: delay_loop 1,
# connect_timeout 1, retry 0, inhibit_on_failure); ipvs-checker verifies
# the chain against the private CA, keepalived loads it (and, as its
# SSL_GET does, does not verify).
#
# ipvs-checker runs twice: as keepalived probes, a new connection per probe
# (the default), and as "ipvs-checker-ka", its probes over kept-alive
# connections (keep_alive: 30s: HTTP/1.1 keep-alive, one TLS handshake per
# connection, a new connection every 30 s, after a failure, and when a full
# handshake is due).
#
# Measured, one tool at a time:
#   - CPU seconds (user + system, every process of the tool) per 1,000
#     probes over a window of W seconds (default 20) after a warm-up;
#     probes are counted in nginx's access log, the same way for both;
#     ipvs-checker's HTTPS runs start their warm-up once every real
#     server's TLS session is made (its first full handshake, 16 at a
#     time: the steady state, which the window measures), and how long
#     that took is reported apart;
#   - resident memory (VmRSS, summed over the tool's processes) at the end;
#   - context switches a probe over the window, voluntary (a thread
#     waiting) and involuntary (preempted), over every thread of the
#     tool's processes;
#   - on time: the probes nginx saw over the window / (N x W);
#   - ipvs-checker's admission over the window (both ways), from its
#     /metrics scraped just before and after the CPU window: its probes'
#     limit in flight (ipvs_checker_probe_concurrency_limit) at each end,
#     and a second between the scrapes, its late probes
#     (ipvs_checker_probes_late_total), the phases its probes went
#     through (connect, tls, response) and nginx's answers logged: to
#     tell a checker held back by its own limit from one short of CPU,
#     and to count handshakes that led to no answer;
#   - TLS sessions (HTTPS): of the probes over the window, how many resumed
#     a session (nginx's $ssl_session_reused), how many made a full
#     handshake, and how many came over a kept connection (not the first
#     request of theirs, nginx's $connection_requests);
#   - rack failure (HTTP), twice: every address resets connections
#     (iptables REJECT in bench-rs) -> time from the rule in place until all
#     N weights are 0, rule deleted -> until all are back at 1; then nginx
#     stopped -> time from before its stop (nginx's own stop included)
#     until all are 0, restarted -> until all are back (polling ipvsadm -Ln;
#     each wait gives up after L seconds, default 60, and reports ">L");
#   - single failure (ipvs-checker, both ways, HTTP): one address answers with a reset
#     (iptables REJECT in bench-rs) -> time until the checker sets its
#     weight to 0, from its log; S samples (default 20), p50/p99/max; and
#     the checker's own part of it, from the start of the probe that
#     failed (its flip's log line has the time since) to the weight set,
#     and of that the failed probe's own phases (its flip's probe_took).
#   - overload (HTTPS, the checker's own lateness): every real server
#     verified every second, timeout 1 s, rise 1, fall 1, for O seconds
#     (BENCH_OVERLOAD, default 60) after the warm-up; 10 s in, the first
#     10 addresses refuse connections (one iptables rule in bench-rs).
#     ipvsadm -Ln polled about every 0.2 s: healthy real servers ever seen
#     at weight 0 (each a false down), and each refusing one's time to 0.
#     ipvs-checker's own count of late probes from its /metrics.
#   - the floor: in the HTTP and HTTPS windows and the exec and dns
#     phases, the same checks of the same real servers by
#     checker/examples/probe-floor/main.rs (HTTPS: verified, resumed in TLS
#     1.2, or 1.3 where nginx speaks it), one thread making only each
#     check's own system calls, on ipvs-checker's schedule (in its own
#     cgroup, counted as the tools are): the least CPU a check costs in
#     this VM, whoever makes it;
#     also in the scale phase's overload (checker-scale.sh). With
#     FLOOR_TOKIO=1 in the environment (lab/run --env) its HTTP checks run
#     as tasks of a tokio runtime, as ipvs-checker's do: the runtime's
#     share of a check, apart from the checker's own work; with
#     FLOOR_TOKIO=set all on one task of that runtime, through an epoll
#     set of its own (no task, tokio socket or timer a check); with
#     FLOOR_TOKIO=tasks through that set from a task a real server.
#   - exec (issue #12): the `exec` check beside keepalived's MISC_CHECK,
#     and dns: the `dns` check beside its DNS_CHECK; see checker-checks.sh.
#   - scale (issue #16): CPU per probe and RSS from 100 to 5,000 real
#     servers, and 5,000 every 2 s with a rack failing; see
#     checker-scale.sh.
# BENCH_PHASES (default "window rack single") runs only those parts
# (add "overload", "exec", "dns" or "scale" to run them);
# BENCH_TLS_PROTOCOLS sets nginx's ssl_protocols (nginx 1.22's default
# has no TLS 1.3; "TLSv1.2 TLSv1.3" for servers that resume in TLS 1.3);
# BENCH_CHECKER_ARGS adds flags to every ipvs-checker run (for example
# "--checker.max-concurrency 32"); BENCH_SERVERS_CPUS confines nginx to
# those CPUs (servers.sh), for every tool of the run alike, and
# BENCH_TOOLS_CPUS every tool (ipvs-checker, keepalived, the floor) to
# those: given CPUs apart, no request wakes nginx on a tool's CPU, as on
# a director whose real servers are other machines.
# Results on stdout and, as Markdown, in $LAB_OUT/bench-checker.md.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
root=$PWD
n=${BENCH_SERVERS:-500}
window=${BENCH_WINDOW:-20}
warmup=${BENCH_WARMUP:-6}
samples=${BENCH_SAMPLES:-20}
rack_limit=${BENCH_RACK_LIMIT:-60}
overload_window=${BENCH_OVERLOAD:-60}
phases=" ${BENCH_PHASES:-window rack single} " # any of these, to run fewer
out=${LAB_OUT:-/tmp}
work=$(mktemp -d /tmp/bench-checker.XXXXXX)
checker=${BENCH_CHECKER:-$root/target/release/ipvs-checker}
read -ra checker_args <<<"${BENCH_CHECKER_ARGS:-}"
report=$out/bench-checker.md

floor=${BENCH_FLOOR:-$root/target/release/examples/probe-floor}
build="cargo build --release -p ipvs-checker --bin ipvs-checker --example probe-floor"
[[ -x $checker ]] || { echo "build first: $build" >&2; exit 1; }
[[ $phases != *" window "* && $phases != *" exec "* && $phases != *" dns "* && $phases != *" scale "* ]] || [[ -x $floor ]] ||
	{ echo "build first: $build (the floor runs in the window, exec, dns and scale phases)" >&2; exit 1; }

# Every tool with the open-files limit a service manager gives a daemon
# (systemd's hard limit is 524288), not the 4,096 the VM's init leaves:
# ipvs-checker keeps a socket a real server between probes, at most a
# quarter of its limit (checker/README.md, "Probe connections").
ulimit -n 65536

# shellcheck source=lab/bench/servers.sh
source lab/bench/servers.sh
cleanup() {
	# The logs, for a look after the run.
	mkdir -p "$out/bench-checker-logs"
	cp "$work"/*.log "$work"/*.txt "$out/bench-checker-logs/" 2>/dev/null || true
	[[ -f $work/dnsmasq.pid ]] && kill "$(cat "$work/dnsmasq.pid")" 2>/dev/null || true
	cgroups_remove
	servers_down
}
# The exec and dns phases, and the cgroups every tool runs in.
# shellcheck source=lab/bench/checker-checks.sh
source "$root/lab/bench/checker-checks.sh"
# The scale phase.
# shellcheck source=lab/bench/checker-scale.sh
source "$root/lab/bench/checker-scale.sh"
trap cleanup EXIT
cleanup

servers_up

# --- the tools' configurations ---------------------------------------------
checker_config 80 "{type: http, path: /, body: healthy}" >"$work/checker-http.yaml"
checker_config 443 "{type: https, path: /, body: healthy, ca_file: $work/ca.pem, server_name: rs.lab.test}" >"$work/checker-https.yaml"
# The same checks over kept-alive connections (a new one every 30 s).
checker_config 80 "{type: http, path: /, body: healthy, keep_alive: 30s}" >"$work/checker-http-ka.yaml"
checker_config 443 "{type: https, path: /, body: healthy, ca_file: $work/ca.pem, server_name: rs.lab.test, keep_alive: 30s}" >"$work/checker-https-ka.yaml"

# keepalived reads one keyword per line and ignores the rest of the line
# (its -d dump shows it): every setting on a line of its own.
# CHECK is the check's block, its lines indented for a real server's, with
# @RS@ for the real server's address. Scripts run as root, as
# ipvs-checker's do (keepalived's default user, keepalived_script, does
# not exist here).
keepalived_config() { # PORT CHECK [PROTOCOL]
	printf '%s\n' "global_defs {" "  router_id bench" "  script_user root" "}" "SSL {" "  ca $work/ca.pem" "}"
	echo "virtual_server 198.18.0.10 $1 {"
	echo "  delay_loop 1"
	echo "  lb_algo wrr"
	echo "  lb_kind NAT"
	echo "  protocol ${3:-TCP}"
	for ((i = 1; i <= n; i++)); do
		echo "  real_server $(addr $i) $1 {"
		echo "    weight 1"
		echo "    inhibit_on_failure"
		echo "${2//@RS@/$(addr $i)}"
		echo "  }"
	done
	echo "}"
}
http_get() { # KEYWORD
	printf '    %s\n' "$1 {" "  url {" "    path /" "    status_code 200" "  }" "  connect_timeout 1" "  retry 0" "}"
}
keepalived_config 80 "$(http_get HTTP_GET)" >"$work/keepalived-http.conf"
keepalived_config 443 "$(http_get SSL_GET)" >"$work/keepalived-https.conf"

# --- measuring -------------------------------------------------------------
clk=$(getconf CLK_TCK)
tree() { # PID: it and its descendants
	local p=$1 c
	echo "$p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree "$c"; done
}
cpu_ticks() { # PIDS...: utime + stime
	local p t=0 f
	for p in "$@"; do
		read -ra f <"/proc/$p/stat" || continue
		# Fields after the ")" of the command name: utime is 14, stime 15.
		t=$((t + f[13] + f[14]))
	done
	echo "$t"
}
# Each thread of the processes PID...: its name, its time on a CPU so far
# (the scheduler's own count, schedstat's first field, in ns; /proc's user
# and system times are sampled at the timer tick) and its context
# switches so far, voluntary (it waited) and not (it was preempted),
# threads of one name summed.
threads_by_name() { # PID...
	local p t
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			echo "$(tr ' ' _ <"$t/comm") $(cut -d' ' -f1 "$t/schedstat")" \
				"$(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v + 0, n + 0 }' "$t/status")"
		done
	done 2>/dev/null | awk '{ cpu[$1] += $2; vol[$1] += $3; inv[$1] += $4 } END { for (name in cpu) print name, cpu[name], vol[name], inv[name] }' | sort
}

switches() { # PIDS...: "VOLUNTARY INVOLUNTARY" context switches of all their threads
	threads_by_name "$@" | awk '{ v += $3; i += $4 } END { print v + 0, i + 0 }'
}
rss_kb() {
	local p t=0 k v _
	for p in "$@"; do
		# A process gone since the list was made counts for nothing.
		{ while read -r k v _; do [[ $k == VmRSS: ]] && t=$((t + v)); done <"/proc/$p/status"; } 2>/dev/null || continue
	done
	echo "$t"
}
lines() { local c=0; [[ -f $1 ]] && c=$(wc -l <"$1"); echo "$c"; }
# Real servers of 198.18.0.10:PORT (TCP, or -u: UDP) with a weight other than 0.
weighted() { # PORT [-u]
	ip netns exec "$D" ipvsadm -Ln "${2:--t}" "198.18.0.10:$1" |
		awk -v c=0 '$1 == "->" && $4 ~ /^[0-9]+$/ && $4 != 0 { c++ } END { print c }'
}
# Polls until weighted PORT == WANT, for at most LIMIT seconds (default
# 120); prints the time (EPOCHREALTIME) seen.
wait_weighted() {
	local port=$1 want=$2 limit=$((SECONDS + ${3:-120}))
	until [[ $(weighted "$port") == "$want" ]]; do
		((SECONDS < limit)) || { echo "timeout waiting for $want weighted on :$port" >&2; return 1; }
	done
	echo "$EPOCHREALTIME"
}
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# Each tool in the background, in its cgroup, with a config and a log.
checker_start() { # NAME CONFIG LOG
	cgroup_prefix "$1"
	"${in_cgroup[@]}" "$checker" --config.file "$2" \
		--web.listen-address 127.0.0.1:10311 "${checker_args[@]}" >"$3" 2>&1 &
}
keepalived_start() { # CONFIG LOG: on an empty table, which it makes
	ip netns exec "$D" ipvsadm -C
	cgroup_prefix keepalived
	"${in_cgroup[@]}" keepalived --dont-fork --log-console --check --use-file "$1" \
		--pid "$work/keepalived.pid" --checkers_pid "$work/keepalived-checkers.pid" >"$2" 2>&1 &
}

# The floor (checker/examples/probe-floor/main.rs): the same checks of the same
# real servers with nothing but their own system calls, on one thread; it
# touches no IPVS table.
floor_start() { # KIND LOG COUNT PORT [INTERVAL (s, default 1)]
	floor_command "$1" "$3" "$4" "${5:-1}"
	cgroup_prefix floor
	env "${floor_env[@]}" "${in_cgroup[@]}" "$floor" "${floor_args[@]}" >"$2" 2>&1 &
}

start_tool() { # NAME PORT [PHASE]: starts it in its cgroup (log NAME-PORT[-PHASE].log), prints its pid
	local log=$work/$1-$2${3:+-$3}.log proto
	case $2 in
	80) proto=http ;;
	443) proto=https ;;
	53) proto=dns ;;
	"$exec_port") proto=exec ;;
	esac
	case $1 in
	ipvs-checker | ipvs-checker-ka)
		case $proto in
		http | https) table 80 443 ;;
		exec) n=$exec_n table "$exec_port" ;;
		dns) table udp/53 ;;
		esac
		[[ $1 == ipvs-checker-ka ]] && proto+=-ka
		checker_start "$1" "$work/checker-$proto.yaml" "$log"
		;;
	keepalived) keepalived_start "$work/keepalived-$proto.conf" "$log" ;;
	floor)
		local count=$n
		[[ $proto == exec ]] && count=$exec_n
		floor_start "$proto" "$log" "$count" "$2"
		;;
	esac
	echo $!
}
stop_tool() { # PID (started in a command substitution: not our child)
	kill -TERM "$1" 2>/dev/null || true
	while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

declare -A result
measure() { # NAME PORT
	local name=$1 port=$2 log=$work/http.log pid pids c0 c1 r0 r1 t0 t1 rss v0 i0 v1 i1
	[[ $port == 443 ]] && log=$work/https.log
	local s0
	s0=$(lines "$log")
	pid=$(start_tool "$name" "$port")
	if [[ $port == 443 && $name == ipvs-checker* ]]; then
		# Its steady state: the warm-up starts once every real server's
		# session is made (its first full handshake; the start-up's are
		# reported apart, and those due every full_handshake_interval
		# fall in the window as they come).
		local t0=$EPOCHREALTIME full
		full=$(sessions_made "$s0")
		echo "$name: $full full handshakes (every real server's session) in $(elapsed "$t0" "$EPOCHREALTIME") s from its start, before the warm-up" >>"$work/sessions-made.txt"
	fi
	sleep "$warmup"
	local counts0="" counts1
	[[ $name == ipvs-checker* ]] && counts0=$(probe_counts "$log")
	mapfile -t pids < <(tree "$pid")
	# Read outside the CPU window: it starts processes.
	read -r v0 i0 < <(switches "${pids[@]}")
	c0=$(cpu_ticks "${pids[@]}")
	r0=$(lines "$log")
	t0=$EPOCHREALTIME
	sleep "$window"
	r1=$(lines "$log")
	t1=$EPOCHREALTIME
	mapfile -t pids < <(tree "$pid")
	c1=$(cpu_ticks "${pids[@]}")
	rss=$(rss_kb "${pids[@]}")
	read -r v1 i1 < <(switches "${pids[@]}")
	awk -v name="$name" -v port="$port" -v p=$((r1 - r0)) -v v=$((v1 - v0)) -v i=$((i1 - i0)) \
		'BEGIN { printf "%s, %s: %.2f voluntary + %.2f involuntary a probe (%d + %d for %d probes)\n", name, (port == 443 ? "HTTPS" : "HTTP"), v / (p ? p : 1), i / (p ? p : 1), v, i, p }' >>"$work/switches.txt"
	if [[ -n $counts0 ]]; then
		counts1=$(probe_counts "$log")
		admission "$name" "$port" "$counts0" "$counts1" >>"$work/admission.txt"
	fi
	local down=n/a
	[[ $name != floor ]] && down=$((n - $(weighted "$port")))
	stop_tool "$pid"
	if [[ $port == 443 ]]; then
		# The window's lines: the first request of a connection made a
		# resumed ("r") or a full (".") handshake; the others came over a
		# kept connection. (One awk reads them: `tail | head` died of
		# SIGPIPE, under pipefail, once the log went on past the window.)
		awk -v name="$name" -v r0="$r0" -v r1="$r1" 'NR <= r0 || NR > r1 { next } $3 > 1 { k++; next } $2 == "r" { r++ } $2 != "r" { f++ } END { printf "%s: %d resumed, %d full handshakes, %d requests over a kept connection\n", name, r, f, k }' "$log" >>"$work/sessions.txt"
	fi
	python3 - "$name" "$port" "$t0" "$t1" "$c0" "$c1" "$clk" "$r0" "$r1" "$rss" "$n" "$down" "${#pids[@]}" <<'PY' | tee -a "$work/measure.txt"
import sys
name, port = sys.argv[1], sys.argv[2]
t0, t1 = float(sys.argv[3]), float(sys.argv[4])
c0, c1, clk, r0, r1, rss, n = map(int, sys.argv[5:12])
down, procs = sys.argv[12], int(sys.argv[13])
window = t1 - t0
cpu = (c1 - c0) / clk
probes = r1 - r0
per_k = cpu / probes * 1000 if probes else float("inf")
kind = "HTTPS" if port == "443" else "HTTP"
print(f"| {name} | {kind} | {probes} in {window:.1f} s | {probes / (n * window) * 100:.1f} % | {cpu:.2f} | {per_k:.3f} | {rss / 1024:.1f} ({procs} proc.) | {down} |")
PY
}

# ipvs-checker's counts from one scrape of its /metrics, with the time of
# the scrape and nginx's lines in LOG just after it: "TIME LINES LIMIT LATE
# CONNECT TLS RESPONSE" (its probes' limit in flight, or -1 while there
# is none; its late probes; the phases its probes went through, as its
# duration histogram counts them). A scrape of 500 real servers takes
# the VM about a second: it is made outside the CPU window.
probe_counts() { # LOG
	local metrics t
	metrics=$(ip netns exec "$D" curl -s --max-time 5 http://127.0.0.1:10311/metrics)
	t=$EPOCHREALTIME
	awk -v t="$t" -v lines="$(lines "$1")" '
		/^ipvs_checker_probe_concurrency_limit / { limit = $NF }
		/^ipvs_checker_probes_late_total/ { late += $NF }
		/^ipvs_checker_probe_duration_seconds_count.*phase="connect"/ { connect += $NF }
		/^ipvs_checker_probe_duration_seconds_count.*phase="tls"/ { tls += $NF }
		/^ipvs_checker_probe_duration_seconds_count.*phase="response"/ { response += $NF }
		END { printf "%s %d %d %d %d %d %d\n", t, lines, (limit == "" ? -1 : limit), late, connect, tls, response }' <<<"$metrics"
}

admission() { # NAME PORT COUNTS0 COUNTS1 (probe_counts' lines at the window's ends)
	python3 - "$@" <<'PY'
import sys
name, port, at0, at1 = sys.argv[1:5]
kind = "HTTPS" if port == "443" else "HTTP"
a, b = [float(x) for x in at0.split()], [float(x) for x in at1.split()]
took = b[0] - a[0]
limits = "/".join("none" if x < 0 else f"{x:g}" for x in (a[2], b[2]))
per_s = lambda i: (b[i] - a[i]) / took
print(f"{name}, {kind}: probes' limit {limits} (window's start/end); a second over {took:.1f} s: "
      f"{per_s(3):.1f} late, {per_s(4):.1f} connects, {per_s(5):.1f} handshakes, {per_s(6):.1f} requests sent, "
      f"{per_s(1):.1f} answers logged by nginx")
PY
}

rack() { # NAME: HTTP, refused by a rule, then nginx stopped and started again
	local name=$1 pid t0 t1 t2 t3 rule=(INPUT -p tcp --dport 80 -j REJECT --reject-with tcp-reset)
	pid=$(start_tool "$name" 80 rack)
	sleep "$warmup"
	wait_weighted 80 "$n" >/dev/null
	local refused=">$rack_limit" back=">$rack_limit"
	ip netns exec "$R" iptables -I "${rule[@]}"
	t0=$EPOCHREALTIME
	t1=$(wait_weighted 80 0 "$rack_limit") && refused=$(elapsed "$t0" "$t1")
	ip netns exec "$R" iptables -D "${rule[@]}"
	t2=$EPOCHREALTIME
	t3=$(wait_weighted 80 "$n" "$rack_limit") && back=$(elapsed "$t2" "$t3")
	t0=$EPOCHREALTIME
	nginx_stop
	local zero=">$rack_limit" restore=">$rack_limit"
	t1=$(wait_weighted 80 0 "$rack_limit") && zero=$(elapsed "$t0" "$t1")
	t2=$EPOCHREALTIME
	nginx_start
	local started=$EPOCHREALTIME
	t3=$(wait_weighted 80 "$n" "$rack_limit") && restore=$(elapsed "$t2" "$t3")
	stop_tool "$pid"
	echo "| $name | $refused | $back | $zero | $restore |" | tee -a "$work/rack.txt"
	# Part of the restore: nginx's own start (the same work for every tool).
	echo "$name: nginx took $(elapsed "$t2" "$started") s of the restore to start" >>"$work/rack-nginx.txt"
}

single() { # NAME (ipvs-checker or ipvs-checker-ka), HTTP: S addresses, one after the other
	local name=$1 pid i a t log=$work/$1-80-single.log
	pid=$(start_tool "$name" 80 single)
	sleep "$warmup"
	wait_weighted 80 "$n" >/dev/null
	: >"$work/single.txt"
	for ((i = 1; i <= samples; i++)); do
		# Spread over the addresses, each once (7 and N share no factor
		# for the N used here: 100, 500).
		a=$(addr $(((i * 7 - 1) % n + 1)))
		t=$(ip netns exec "$R" bash -c "echo \$EPOCHREALTIME; iptables -I INPUT -d $a -p tcp --dport 80 -j REJECT --reject-with tcp-reset && echo \$EPOCHREALTIME")
		wait_weighted 80 $((n - 1)) >/dev/null
		echo "$a" $t >>"$work/single.txt"
		ip netns exec "$R" iptables -D INPUT -d "$a" -p tcp --dport 80 -j REJECT --reject-with tcp-reset
		wait_weighted 80 "$n" >/dev/null
	done
	stop_tool "$pid"
	python3 - "$work/single.txt" "$log" "$name" <<'PY'
import datetime, re, sys
# address -> (before, after) the REJECT rule was inserted
rule = {a: (float(b), float(t)) for a, b, t in (l.split() for l in open(sys.argv[1]))}
UNITS = {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
def when(stamp):
    ts = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return ts.replace(tzinfo=datetime.timezone.utc).timestamp()
seen, began, took = {}, {}, {}
for line in open(sys.argv[2]):
    # The flip, logged with the time since its probe began (when that
    # was) and the time the probe's phases took.
    m = re.match(r'ts=(\S+) .*msg="real server is down.*real_server=(\S+):80 .*since_probe_start=([0-9.]+)(ns|µs|ms|s)\b', line)
    if m and m.group(2) in rule and m.group(2) not in seen and when(m.group(1)) >= rule[m.group(2)][0]:
        began[m.group(2)] = when(m.group(1)) - float(m.group(3)) * UNITS[m.group(4)]
        t = re.search(r' probe_took=([0-9.]+)(ns|µs|ms|s)\b', line)
        if t:
            took[m.group(2)] = float(t.group(1)) * UNITS[t.group(2)]
        continue
    m = re.match(r'ts=(\S+) .*msg="weight set".*real_server=(\S+):80 from=1 to=0', line)
    if not m or m.group(2) not in rule or m.group(2) in seen:
        continue
    ts = when(m.group(1))
    before, after = rule[m.group(2)]
    if ts >= before:  # not a flap from before its sample
        seen[m.group(2)] = (ts - after, ts - before, ts - began.get(m.group(2), float("nan")))
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
lo = [a for a, _, _ in seen.values()]
hi = [b for _, b, _ in seen.values()]
def three(ms):
    return f"{pct(ms, 50):.1f} / {pct(ms, 99):.1f} / {max(ms):.1f}" if ms else "n/a"
probe = [1000 * c for _, _, c in seen.values() if c == c]
phases = [1000 * took[a] for a in seen if a in took]
print(f"| {sys.argv[3]} | {len(seen)} of {len(rule)} | {pct(lo, 50):.3f} / {pct(hi, 50):.3f} | {pct(lo, 99):.3f} / {pct(hi, 99):.3f} | {max(lo):.3f} / {max(hi):.3f} | {three(probe)} | {three(phases)} |")
PY
}

overload() { # NAME (ipvs-checker or keepalived): HTTPS, 10 addresses refusing from 10 s in
	local name=$1 pid t_ref=0 late="" samples=$work/overload-$1.txt
	local refuse=(INPUT -p tcp --dport 443 -m iprange --dst-range "$(addr 1)-$(addr 10)" -j REJECT --reject-with tcp-reset)
	pid=$(start_tool "$name" 443 overload)
	sleep "$warmup"
	: >"$samples"
	local start=$SECONDS end=$((SECONDS + overload_window))
	while ((SECONDS < end)); do
		if [[ $t_ref == 0 ]] && ((SECONDS >= start + 10)); then
			ip netns exec "$R" iptables -I "${refuse[@]}"
			t_ref=$EPOCHREALTIME
		fi
		echo "T $EPOCHREALTIME" >>"$samples"
		ip netns exec "$D" ipvsadm -Ln -t 198.18.0.10:443 |
			awk '$1 == "->" && $4 == "0" { sub(/:443$/, "", $2); print $2 }' >>"$samples"
		sleep 0.2
	done
	if [[ $name == ipvs-checker ]]; then
		late=$(probe_counts "$work/https.log" | awk '{ print $4 }')
	fi
	stop_tool "$pid"
	ip netns exec "$R" iptables -D "${refuse[@]}"
	python3 - "$samples" "$t_ref" "$name" "$n" "${late:-n/a}" <<'PY'
import sys
samples, t_ref, name, n, late = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
refusing = {f"198.18.4.{i}" for i in range(1, 11)}
false_downs, zeroed, t = set(), {}, 0.0
for line in open(samples):
    word = line.split()
    if word[0] == "T":
        t = float(word[1])
    elif word[0] in refusing:
        if t >= t_ref and word[0] not in zeroed:
            zeroed[word[0]] = t - t_ref
    else:
        false_downs.add(word[0])
within = sum(1 for v in zeroed.values() if v <= 3.0)
worst = f"{max(zeroed.values()):.2f}" if len(zeroed) == len(refusing) else f"{len(refusing) - len(zeroed)} never at 0"
print(f"| {name} | {len(false_downs)} of {n - len(refusing)} | {within} of {len(refusing)} | {worst} | {late} |")
PY
}

{
	echo "## ipvs-checker vs keepalived $(keepalived --version 2>&1 | head -1 | awk '{print $2}'), $n real servers"
	echo
	echo "$(date -u +%F), Linux $(uname -r), $(nproc) vCPUs, clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null), window ${window} s after ${warmup} s of warm-up.${BENCH_SERVERS_CPUS:+ nginx on CPUs $BENCH_SERVERS_CPUS.}${BENCH_TOOLS_CPUS:+ The tools on CPUs $BENCH_TOOLS_CPUS.}"
	echo "Load average in the VM at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
	if ((${#checker_args[@]})); then echo "ipvs-checker run with: ${checker_args[*]}."; fi
} | tee "$report"
if [[ $phases == *" window "* ]]; then
	{
		echo
		echo "| tool | check | probes seen by nginx | on time | CPU [s] | CPU s / 1,000 probes | RSS [MB] | down at end |"
		echo "|:---|:---|---:|---:|---:|---:|---:|---:|"
	} | tee -a "$report"
	for port in 80 443; do
		for tool in ipvs-checker ipvs-checker-ka keepalived floor; do
			measure "$tool" "$port" | tee -a "$report"
		done
	done
	{
		echo
		echo "TLS sessions over the HTTPS windows (nginx's \$ssl_session_reused):"
		echo
		sed 's/^/- /' "$work/sessions.txt"
		echo
		echo "Start-up of ipvs-checker's HTTPS runs, before their warm-up and window:"
		echo
		sed 's/^/- /' "$work/sessions-made.txt"
		echo
		echo "ipvs-checker's admission over its windows (/metrics):"
		echo
		sed 's/^/- /' "$work/admission.txt"
		echo
		echo "Context switches over the windows, every thread of the tool's processes (/proc/PID/task/*/status):"
		echo
		sed 's/^/- /' "$work/switches.txt"
	} | tee -a "$report"
fi
if [[ $phases == *" rack "* ]]; then
	{
		echo
		echo "Rack failure (HTTP; ipvsadm -Ln polled): every address refused by a rule (timed from the rule in"
		echo "place), then deleted; nginx stopped (timed from before its stop), then started:"
		echo
		echo "| tool | refused: all $n at 0 [s] | rule deleted: all restored [s] | nginx stopped: all at 0 [s] | nginx started: all restored [s] |"
		echo "|:---|---:|---:|---:|---:|"
	} | tee -a "$report"
	for tool in ipvs-checker ipvs-checker-ka keepalived; do rack "$tool" | tee -a "$report"; done
	{
		echo
		sed 's/^/- /' "$work/rack-nginx.txt"
	} | tee -a "$report"
fi
if [[ $phases == *" single "* ]]; then
	{
		echo
		echo "Single failure (HTTP; one address resets connections; until the checker sets weight 0, from its log;"
		echo "measured from when the iptables rule was in place / from just before it was inserted; and from the"
		echo "start of the probe that failed, as its flip's log line says, which leaves out where it fell in the interval;"
		echo "and of that the failed probe's own phases, its waits for its thread while in flight included):"
		echo
		echo "| tool | samples | p50 [s] | p99 [s] | max [s] | from the probe's start: p50 / p99 / max [ms] | its phases: p50 / p99 / max [ms] |"
		echo "|:---|---:|---:|---:|---:|---:|---:|"
	} | tee -a "$report"
	for tool in ipvs-checker ipvs-checker-ka; do single "$tool" | tee -a "$report"; done
fi
if [[ $phases == *" overload "* ]]; then
	{
		echo
		echo "Overload (HTTPS, verified, 1 s, timeout 1 s, rise 1, fall 1, ${overload_window} s; 10 addresses refusing from 10 s in;"
		echo "ipvsadm -Ln polled every ~0.2 s):"
		echo
		echo "| tool | healthy ever at 0 | refusing at 0 within 3 s | slowest refusing [s] | late probes |"
		echo "|:---|---:|---:|---:|---:|"
	} | tee -a "$report"
	for tool in ipvs-checker keepalived; do overload "$tool" | tee -a "$report"; done
fi
if [[ $phases == *" exec "* ]]; then
	for exec_n in "${exec_counts[@]}"; do checks_phase exec; done
fi
if [[ $phases == *" dns "* ]]; then checks_phase dns; fi
if [[ $phases == *" scale "* ]]; then scale_phase; fi
{
	echo
	echo "Load average in the VM at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee -a "$report"
