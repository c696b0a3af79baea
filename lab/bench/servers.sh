# shellcheck shell=bash
# The real servers of the checker benchmarks (checker.sh, ab-checker.sh;
# sourced by scripts that run from the repository root inside the lab).
# servers_up: namespace bench-rs ($R) holds N addresses 198.18.4.1...
# (addr I) on a dummy interface, all served by one nginx on :80 and :443
# (a certificate for rs.lab.test from a private CA made here with openssl,
# $work/ca.pem), logging each request to $work/http.log or https.log
# (msec, $ssl_session_reused, $connection_requests); namespace bench-dir
# ($D) is the director, with a route to them. The sourcing script sets n
# and work (a directory of its own) first, and calls servers_down when it
# ends. BENCH_SERVERS_CPUS (a CPU list, e.g. 1) confines nginx to those
# CPUs: in the lab the real servers share the VM's CPUs with the checker,
# where on a director they are other machines, so that a figure of the
# checker's threads is not one of nginx's competing with them.
# shellcheck disable=SC2034 # D and R are used by the sourcing scripts

D=bench-dir
R=bench-rs

addr() { echo "198.18.$((4 + $1 / 256)).$(($1 % 256))"; }

# The floor (checker/examples/probe-floor) checking the first COUNT
# addresses by KIND on PORT every INTERVAL seconds (default 1), as
# checker.sh and ab-checker.sh run it: its environment in floor_env, its
# arguments in floor_args ($work/floor-addresses.txt written for them).
floor_command() { # KIND COUNT PORT [INTERVAL]
	local i
	for ((i = 1; i <= $2; i++)); do addr "$i"; done >"$work/floor-addresses.txt"
	floor_env=(FLOOR_INTERVAL_MS=$((${4:-1} * 1000)))
	# A server that speaks TLS 1.3 is resumed in TLS 1.3 by the checker
	# (with a key exchange each time): so by the floor too.
	[[ " ${BENCH_TLS_PROTOCOLS:-} " == *" TLSv1.3 "* ]] && floor_env+=(FLOOR_TLS13=1)
	floor_args=("$1" "$work/floor-addresses.txt" "$3")
	case $1 in
	exec) floor_args+=("$work/check.sh") ;;
	https) floor_args+=("$work/ca.pem" rs.lab.test) ;;
	esac
}

servers_up() {
	# --- network -------------------------------------------------------------
	ip netns add "$D"
	ip netns add "$R"
	ip -n "$D" -batch - <<EOF
link set lo up
link add veth0 type veth peer name eth0 netns $R
addr add 198.18.1.1/24 dev veth0
link set veth0 up
route add 198.18.4.0/23 via 198.18.1.2
EOF
	{
		echo "link set lo up"
		echo "addr add 198.18.1.2/24 dev eth0"
		echo "link set eth0 up"
		echo "route add default via 198.18.1.1"
		echo "link add dummy0 type dummy"
		echo "link set dummy0 up"
		for ((i = 1; i <= n; i++)); do echo "addr add $(addr $i)/32 dev dummy0"; done
	} | ip -n "$R" -batch -
	# Many short connections from one source address: reuse TIME_WAIT ports.
	ip netns exec "$D" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

	# --- certificates and nginx -----------------------------------------------
	(
		cd "$work"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout ca.key -out ca.pem -days 3650 -subj "/CN=bench CA" 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout rs.key -out rs.csr -subj /CN=rs.lab.test 2>/dev/null
		printf 'subjectAltName=DNS:rs.lab.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >rs.ext
		openssl x509 -req -in rs.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-days 365 -extfile rs.ext -out rs.pem 2>/dev/null
	)
	cat >"$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 8192; }
http {
    log_format probe '\$msec \$ssl_session_reused \$connection_requests';
    default_type text/plain;
    # nginx's default keep-alive: a client that asks (Connection: close,
    # keepalived's HTTP/1.0) still has its connection closed after one
    # answer; ipvs-checker with keep_alive keeps it.
    server {
        listen 80 backlog=4096;
        access_log $work/http.log probe;
        location / { return 200 "healthy\n"; }
    }
    server {
        listen 443 ssl backlog=4096;
        ssl_certificate $work/rs.pem;
        ssl_certificate_key $work/rs.key;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 10m;${BENCH_TLS_PROTOCOLS:+
        ssl_protocols $BENCH_TLS_PROTOCOLS;}
        access_log $work/https.log probe;
        location / { return 200 "healthy\n"; }
    }
}
EOF
	nginx_start
}

# nginx started again, or stopped (a rack failure).
nginx_start() {
	ip netns exec "$R" ${BENCH_SERVERS_CPUS:+taskset -c "$BENCH_SERVERS_CPUS"} nginx -c "$work/nginx.conf"
}
nginx_stop() {
	ip netns exec "$R" nginx -c "$work/nginx.conf" -s stop
	while [[ -f $work/nginx.pid ]]; do sleep 0.05; done
}
# For a script that runs $checker and $floor beside the real servers:
# stops unless nginx and COMMANDS... are installed and both are built,
# then brings the real servers up, taken down with every daemon in pids
# (lib.sh, sourced first) however the script ends.
servers_for_tools() { # COMMANDS...
	local cmd
	for cmd in nginx "$@"; do
		command -v "$cmd" >/dev/null || { echo "missing $cmd" >&2; exit 1; }
	done
	[[ -x $checker && -x $floor ]] ||
		{ echo "build first: cargo build --release -p ipvs-checker --bin ipvs-checker --example probe-floor" >&2; exit 1; }
	trap 'bench_cleanup; servers_down' EXIT
	servers_down
	servers_up
}

servers_down() {
	[[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	ip netns del "$D" 2>/dev/null || true
	ip netns del "$R" 2>/dev/null || true
}

# Waits until $work/https.log's lines after its first FROM hold a full
# TLS handshake (a connection's first request, not resumed) for each of
# the n real servers, at most 60 s; prints how many they hold.
sessions_made() { # FROM
	local full=0 i
	for ((i = 0; i < 600; i++)); do
		full=$(awk -v from="$1" 'NR > from && $3 == 1 && $2 != "r" { f++ } END { print f + 0 }' "$work/https.log")
		((full >= n)) && break
		sleep 0.1
	done
	echo "$full"
}

# The IPVS services 198.18.0.10:PORT for each PORT (TCP; udp/PORT a UDP
# one), every address a real server of each at weight 1 (masquerading), in
# place of whatever was there. Fewer addresses: n=COUNT table PORT...
table() { # PORT...
	local port proto
	{
		echo "-C"
		for port in "$@"; do
			proto=-t
			[[ $port == udp/* ]] && proto=-u port=${port#udp/}
			echo "-A $proto 198.18.0.10:$port -s wrr"
			for ((i = 1; i <= n; i++)); do echo "-a $proto 198.18.0.10:$port -r $(addr $i):$port -m -w 1"; done
		done
	} | ip netns exec "$D" ipvsadm -R
}

# An ipvs-checker config: 198.18.0.10:PORT (PROTOCOL, default the config's
# tcp) with every address, checked by CHECK (a YAML flow mapping) every
# second, timeout 1 s, rise 1, fall 1. Fewer addresses: n=COUNT
# checker_config ...
checker_config() { # PORT CHECK [PROTOCOL]
	echo "defaults: {interval: 1s, timeout: 1s, rise: 1, fall: 1}"
	echo "services:"
	echo "  - address: 198.18.0.10:$1"
	if [[ -n ${3:-} ]]; then echo "    protocol: $3"; fi
	echo "    check: $2"
	echo "    real_servers:"
	for ((i = 1; i <= n; i++)); do echo "      - {address: '$(addr $i):$1', weight: 1}"; done
}
