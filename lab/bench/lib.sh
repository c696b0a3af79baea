# shellcheck shell=bash
# What the exporter benchmarks share (sourced, never executed, by scripts
# that run from the repository root inside the lab): the daemons they start
# and the topology are ended however the script ends, and the readings of
# a process they all take.
# shellcheck disable=SC2034 # the variables are used by the sourcing scripts

# The lab director's namespace, where the exporters run and are scraped.
director=lab-director

# PIDs of the daemons a script starts: ended, with the topology, when the
# script exits (an error, ^C, or its end).
pids=()
bench_cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	lab/topology.sh down >/dev/null 2>&1 || true
}
trap bench_cleanup EXIT

in_dir() { ip netns exec "$director" "$@"; }

# User + system CPU of a process so far, all its threads (those ended too),
# in seconds and in milliseconds.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
# Minor page faults of a process so far.
faults() { awk '{ print $10 }' "/proc/$1/stat"; }
# CPU ticks (user + system) and minor page faults of a process so far, read
# at one moment: "TICKS FAULTS".
ticks_faults() {
	local f
	read -r -a f <"/proc/$1/stat"
	echo "$((f[13] + f[14])) ${f[9]}"
}

# Starts the exporter BIN on 127.0.0.1:PORT in the director's namespace,
# after the words of WRAPPER (a tool to run it under: valgrind), with the
# defaults but for the collection's timeout (callgrind makes a collection
# take longer than the default 10 s). Sets `started` to its PID (the
# exporter's own: `ip netns exec` and valgrind exec it), ended at exit.
start_exporter() { # BIN PORT [WRAPPER...]
	local bin=$1 port=$2
	shift 2
	ip netns exec "$director" "$@" "$bin" --web.listen-address="127.0.0.1:$port" \
		--log.level=warn --scrape.timeout=10m &
	pids+=($!)
	started=$!
}

# Waits up to TRIES tenths of a second (default 300) for an HTTP server on
# 127.0.0.1:PORT in the director's namespace.
wait_port() {
	local i
	for i in $(seq "${2:-300}"); do
		in_dir curl -sf -o /dev/null "http://127.0.0.1:$1/" && return 0
		sleep 0.1
	done
	echo "nothing listens on :$1" >&2
	exit 1
}
