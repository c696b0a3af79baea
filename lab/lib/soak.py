"""The soak run's driver (lab/soak starts it in the director's namespace,
after the real servers): makes the table and the checker's two configs,
starts both daemons, then for DURATION seconds plays a seeded schedule of
faults and table edits, one tick every TICK seconds, while threads scrape
both daemons, sample their /proc figures and send traffic through the VIP
from the client's namespace. At the end: soak_report.py's verdicts and
plots.

  usage: soak.py DURATION SEED WORK OUT CHECKER EXPORTER NAMESPACES CA_FILE

Services VIP:FIRST_PORT+s (s < SERVICES), each with REAL_SERVERS real
servers 198.18.1.11 ... at the service's port, spread over NAMESPACES
namespaces lab-rsK (one nginx serves each). The schedule is made from
the seed alone, before the run (schedule.txt): the same seed plays the
same events at the same ticks.
"""

import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import soak_report

VIP = "198.18.0.10"
FIRST_PORT = 10000
SERVICES = int(os.environ.get("SOAK_SERVICES", "200"))
REAL_SERVERS = 10
# Check types by service number: tcp first, then http, then https.
HTTPS = int(os.environ.get("SOAK_HTTPS", "10"))
HTTP = int(os.environ.get("SOAK_HTTP", "60"))
TICK = 3.0
CLIENTS = 3
EXPORTER_URL = "http://127.0.0.1:10310/metrics"
CHECKER_URL = "http://127.0.0.1:10311/metrics"
# The two configs SIGHUP alternates between: the same backends, other
# timings (seconds).
CONFIGS = {
    "A": {"interval": 10, "timeout": 2, "rise": 2, "fall": 2},
    "B": {"interval": 6, "timeout": 2, "rise": 1, "fall": 3},
}
FAULTS = {"tcp": ["refused", "dropped"], "http": ["refused", "dropped", "slow"]}
FAULTS["https"] = FAULTS["http"] + ["badcert"]


def bound_down(c: dict) -> float:
    """The longest a failure may take to be seen: interval x fall + timeout + 1 s."""
    return c["interval"] * c["fall"] + c["timeout"] + 1


def bound_down_over_reload(after: float, reload: float, new: dict) -> float:
    """The longest a failure that began at `after` may take to be seen when
    a reload to the config `new` came at `reload` before it was: the
    checker keeps each real server's count of failures and its place in
    the interval over a reload, so the new config's probes see it within
    the new config's bound of the reload."""
    return reload - after + bound_down(new)


def bound_up(c: dict) -> float:
    return c["interval"] * c["rise"] + c["timeout"] + 1


def kind(s: int) -> str:
    if s >= SERVICES - HTTPS:
        return "https"
    return "http" if s >= SERVICES - HTTPS - HTTP else "tcp"


def rs_address(d: int) -> str:
    return f"198.18.1.{11 + d}"


def weight(d: int) -> int:
    return d % 5 + 1


def table_lines(services=None) -> list[str]:
    """`ipvsadm -R` lines for these services (default all), configured weights."""
    lines = []
    for s in range(SERVICES) if services is None else services:
        port = FIRST_PORT + s
        lines.append(f"-A -t {VIP}:{port} -s wrr")
        for d in range(REAL_SERVERS):
            lines.append(f"-a -t {VIP}:{port} -r {rs_address(d)}:{port} -m -w {weight(d)}")
    return lines


def checker_config(c: dict, work: str, ca_file: str) -> str:
    out = [f"drain_file: {work}/drains.json"]
    out.append("defaults: {interval: %ds, timeout: %ds, rise: %d, fall: %d}" % (c["interval"], c["timeout"], c["rise"], c["fall"]))
    out.append("services:")
    checks = {
        "tcp": "{type: tcp}",
        "http": "{type: http, path: /, body: healthy}",
        "https": f"{{type: https, path: /, body: healthy, ca_file: {ca_file}, server_name: rs.soak.test}}",
    }
    for s in range(SERVICES):
        port = FIRST_PORT + s
        out.append(f"  - address: {VIP}:{port}")
        out.append(f"    check: {checks[kind(s)]}")
        out.append("    real_servers:")
        for d in range(REAL_SERVERS):
            out.append(f"      - {{address: '{rs_address(d)}:{port}', weight: {weight(d)}}}")
    return "\n".join(out) + "\n"


def schedule(seed: int, ticks: int) -> list[tuple]:
    """The events (tick, what, args...), from the seed alone."""
    rng = random.Random(seed)
    # A failure is seen within the worst bound of either config, or, with
    # a reload in between, within that of the other config after the
    # reload (bound_down_over_reload): held longer, it is seen before it
    # is taken away.
    worst_down = 2 * max(bound_down(c) for c in CONFIGS.values())
    worst_up = max(bound_up(c) for c in CONFIGS.values())
    events = []
    busy_until = {}  # (service, d) -> tick from which it may fail again
    service_busy = {}  # service -> tick until which it is deleted
    for t in range(ticks):
        if t % 20 == 0 and t:
            events.append((t, "hup", "B" if (t // 20) % 2 else "A"))
        if t % 100 == 50:
            events.append((t, "flush"))
        if t % 7 == 3:
            s, d = rng.randrange(SERVICES), rng.randrange(REAL_SERVERS)
            if service_busy.get(s, -1) < t:
                events.append((t, "weight", s, d, rng.choice([w for w in range(1, 10) if w != weight(d)])))
        if t % 30 == 15:
            s = rng.randrange(SERVICES)
            if not any(busy_until.get((s, d), 0) > t for d in range(REAL_SERVERS)) and service_busy.get(s, -1) < t:
                events.append((t, "delete", s))
                events.append((t + 1, "readd", s))
                service_busy[s] = t + 2
        # One failure a tick, held past the slowest detection, on a real
        # server idle long enough to be up in either config.
        s, d = rng.randrange(SERVICES), rng.randrange(REAL_SERVERS)
        if busy_until.get((s, d), 0) <= t and service_busy.get(s, -1) < t:
            fault = rng.choice(FAULTS[kind(s)])
            hold = int((worst_down + rng.uniform(3, 15)) / TICK) + 1
            events.append((t, "fail", s, d, fault))
            if t + hold < ticks:
                events.append((t + hold, "recover", s, d, fault))
            busy_until[(s, d)] = t + hold + int((worst_up + 3) / TICK) + 1
    events.sort(key=lambda e: e[0])
    return [e for e in events if e[0] < ticks]


class Lab:
    """What the events act on: the rs namespaces, the table, the checker."""

    def __init__(self, work: str, namespaces: int, checker: subprocess.Popen):
        self.work, self.namespaces, self.checker = work, namespaces, checker
        self.config = "A"

    def ns(self, d: int) -> str:
        return f"lab-rs{1 + d % self.namespaces}"

    def fault(self, s: int, d: int, fault: str, on: bool) -> None:
        """One iptables rule in the real server's namespace: refused (a
        reset to the SYN), dropped (every packet to it), slow (its answers,
        the segments of 100 bytes or more from it, dropped: it takes the
        connection and is never heard; the handshake's are smaller) or
        badcert (its port redirected to its twin with the other CA's
        certificate, 10000 up)."""
        port, addr = FIRST_PORT + s, rs_address(d)
        to = ["-d", addr, "-p", "tcp", "--dport", str(port)]
        table, chain, rule = {
            "refused": ("filter", "INPUT", [*to, "-j", "REJECT", "--reject-with", "tcp-reset"]),
            "dropped": ("filter", "INPUT", [*to, "-j", "DROP"]),
            "slow": ("filter", "OUTPUT", ["-s", addr, "-p", "tcp", "--sport", str(port), "-m", "length", "--length", "100:65535", "-j", "DROP"]),
            "badcert": ("nat", "PREROUTING", [*to, "-j", "REDIRECT", "--to-ports", str(port + 10000)]),
        }[fault]
        run(["ip", "netns", "exec", self.ns(d), "iptables", "-w", "-t", table, "-I" if on else "-D", chain, *rule])

    def apply(self, event: tuple) -> None:
        what, args = event[1], event[2:]
        if what in ("fail", "recover"):
            self.fault(args[0], args[1], args[2], what == "fail")
        elif what == "weight":
            s, d, w = args
            port = FIRST_PORT + s
            run(["ipvsadm", "-e", "-t", f"{VIP}:{port}", "-r", f"{rs_address(d)}:{port}", "-m", "-w", str(w)])
        elif what == "delete":
            run(["ipvsadm", "-D", "-t", f"{VIP}:{FIRST_PORT + args[0]}"])
        elif what == "readd":
            run(["ipvsadm", "-R"], "\n".join(table_lines([args[0]])) + "\n")
        elif what == "flush":
            run(["ipvsadm", "-C"])
            run(["ipvsadm", "-R"], "\n".join(table_lines()) + "\n")
        elif what == "hup":
            self.config = args[0]
            install(self.work, args[0])
            os.kill(self.checker.pid, signal.SIGHUP)


def install(work: str, name: str) -> None:
    """Makes config NAME the checker's, atomically (a reload never reads half a file)."""
    with open(f"{work}/checker-{name}.yaml") as f, open(f"{work}/checker.yaml.new", "w") as g:
        g.write(f.read())
    os.replace(f"{work}/checker.yaml.new", f"{work}/checker.yaml")


def run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, text=True, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[:6])} failed ({done.returncode}): {done.stderr.strip()}")


def get(url: str, timeout: float = 10) -> bytes:
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        if r.status != 200:
            raise RuntimeError(f"status {r.status}")
        return r.read()


def cpu_of(stat: str, clk: int) -> tuple[str, float] | None:
    """A process's or thread's name and CPU seconds (user + system) from
    its stat file; None if it ended meanwhile."""
    try:
        head, rest = open(stat).read().rsplit(")", 1)
    except OSError:
        return None
    f = rest.split()
    return head.split("(", 1)[1].replace(",", " "), (int(f[11]) + int(f[12])) / clk


def open_fds(pid: int) -> dict[str, str]:
    """The open descriptors of `pid`: number -> what it points at
    (`socket:[inode]`, a path), those closed while read left out."""
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            pass
    return fds


def held_fds(before: dict[str, str], now: dict[str, str]) -> int:
    """Descriptors open at both samples, to the same object: held for the
    10 s between. A probe's socket lives for its timeout at most, a
    scrape's connection a few seconds, so a leak shows here and they do
    not (a number reused by a new socket points at a new inode)."""
    return sum(1 for fd, what in now.items() if before.get(fd) == what)


class Monitor:
    """The threads beside the schedule: scrapes, samples, traffic."""

    def __init__(self, out: str, pids: dict[str, int]):
        self.out, self.pids = out, pids
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.scrapes = {"exporter": [], "checker": []}  # durations
        self.errors = []
        self.traffic = {"ok": 0, "failed": 0}
        self.samples = open(f"{out}/samples.csv", "w")
        self.samples.write("t,daemon,rss_kb,fds,held_fds,threads,cpu_s\n")
        # Each daemon's descriptors at the last sample (number -> what it
        # is), to tell those held since then from those made meanwhile.
        self.last_fds: dict[str, dict[str, str]] = {}
        # Each thread's CPU, by the thread's name: where a daemon's CPU
        # goes (the checker's probe threads, its loop, its scrapes).
        self.thread_samples = open(f"{out}/threads.csv", "w")
        self.thread_samples.write("t,daemon,tid,thread,cpu_s\n")
        # Every process of the VM, by its name, and the kernel's softirq
        # time: who else takes the two CPUs the daemons share.
        self.process_samples = open(f"{out}/processes.csv", "w")
        self.process_samples.write("t,pid,process,cpu_s\n")
        self.t0 = time.time()

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.scraper, args=(i, name, url))
            for i in range(CLIENTS)
            for name, url in (("exporter", EXPORTER_URL), ("checker", CHECKER_URL))
        ]
        threads += [threading.Thread(target=self.sampler), threading.Thread(target=self.client)]
        for t in threads:
            t.start()
        return threads

    def scraper(self, i: int, name: str, url: str) -> None:
        # Each client scrapes each daemon once a second (a scrape that
        # takes longer delays only its own next one), the clients spread
        # over the second.
        next_at = time.time() + i / CLIENTS
        while not self.stop.is_set():
            t = time.time()
            try:
                if not get(url):
                    raise RuntimeError("empty body")
                with self.lock:
                    self.scrapes[name].append(time.time() - t)
            except Exception as e:  # every failure is counted and named
                with self.lock:
                    self.errors.append(f"{t:.3f} client {i} {name}: {e}")
            next_at = max(next_at + 1, time.time())
            self.stop.wait(next_at - time.time())

    def sampler(self) -> None:
        clk = os.sysconf("SC_CLK_TCK")
        while True:
            t = time.time() - self.t0
            for name, pid in self.pids.items():
                status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
                stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                cpu = (int(stat[11]) + int(stat[12])) / clk  # utime, stime
                fds = open_fds(pid)
                held = held_fds(self.last_fds.get(name, {}), fds)
                self.last_fds[name] = fds
                self.samples.write(f"{t:.1f},{name},{status['VmRSS'].split()[0]},{len(fds)},{held},{status['Threads'].strip()},{cpu:.2f}\n")
                for tid in os.listdir(f"/proc/{pid}/task"):
                    if named := cpu_of(f"/proc/{pid}/task/{tid}/stat", clk):
                        self.thread_samples.write(f"{t:.1f},{name},{tid},{named[0]},{named[1]:.2f}\n")
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                if named := cpu_of(f"/proc/{pid}/stat", clk):
                    self.process_samples.write(f"{t:.1f},{pid},{named[0]},{named[1]:.2f}\n")
            cpu = open("/proc/stat").readline().split()  # cpu user nice system idle iowait irq softirq
            self.process_samples.write(f"{t:.1f},0,[softirq],{int(cpu[7]) / clk:.2f}\n")
            self.samples.flush()
            self.thread_samples.flush()
            self.process_samples.flush()
            if self.stop.wait(10):
                return

    def client(self) -> None:
        # This thread alone moves to the client's namespace (setns is
        # per thread for network namespaces): its sockets are the client's.
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/run/netns/lab-client", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns lab-client")
        rng = random.Random(1)
        http = [s for s in range(SERVICES) if kind(s) == "http"]
        while not self.stop.wait(0.2):
            port = FIRST_PORT + rng.choice(http) if http else FIRST_PORT
            try:
                get(f"http://{VIP}:{port}/", timeout=3)
                ok = "ok"
            except Exception:  # a real server failed but not yet seen, a flush
                ok = "failed"
            with self.lock:
                self.traffic[ok] += 1


def wait_ready(limit: float) -> None:
    """Until the checker is ready and every real server is up."""
    want = SERVICES * REAL_SERVERS
    deadline = time.time() + limit
    up = 0
    while time.time() < deadline:
        try:
            body = urllib.request.urlopen(CHECKER_URL, timeout=10).read().decode()
            up = sum(1 for line in body.splitlines() if line.startswith("ipvs_checker_backend_up{") and line.endswith(" 1"))
            urllib.request.urlopen(EXPORTER_URL, timeout=10).read()
            if up == want:
                return
        except OSError:
            pass
        time.sleep(2)
    sys.exit(f"soak: after {limit:.0f} s, {up} of {want} real servers up")


def main() -> None:
    duration, seed, work, out = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    checker_bin, exporter_bin, namespaces, ca_file = sys.argv[5], sys.argv[6], int(sys.argv[7]), sys.argv[8]
    ticks = int(duration / TICK)
    events = schedule(seed, ticks)
    with open(f"{out}/schedule.txt", "w") as f:
        f.write(f"# seed {seed}, {ticks} ticks of {TICK} s; tick what args\n")
        f.writelines(" ".join(map(str, e)) + "\n" for e in events)
    for name, c in CONFIGS.items():
        with open(f"{work}/checker-{name}.yaml", "w") as f:
            f.write(checker_config(c, work, ca_file))
    install(work, "A")
    run(["ipvsadm", "-C"])
    run(["ipvsadm", "-R"], "\n".join(table_lines()) + "\n")
    daemons = {
        "exporter": subprocess.Popen([exporter_bin, "--web.listen-address=127.0.0.1:10310", "--log.level=warn"],
                                     stderr=open(f"{out}/exporter.log", "w")),
        "checker": subprocess.Popen([checker_bin, f"--config.file={work}/checker.yaml", "--web.listen-address=127.0.0.1:10311"],
                                    stderr=open(f"{out}/checker.log", "w")),
    }
    lab = Lab(work, namespaces, daemons["checker"])
    monitor = None
    try:
        wait_ready(300)
        print(f"soak: {SERVICES} services x {REAL_SERVERS} real servers up; {len(events)} events over {duration:.0f} s (seed {seed})", flush=True)
        monitor = Monitor(out, {n: p.pid for n, p in daemons.items()})
        threads = monitor.start()
        log = open(f"{out}/events.csv", "w")
        log.write("tick,before,after,config,what,args\n")
        start = time.monotonic()
        for event in events:
            time.sleep(max(0, start + event[0] * TICK - time.monotonic()))
            before = time.time()
            lab.apply(event)
            log.write(f"{event[0]},{before:.3f},{time.time():.3f},{lab.config},{event[1]},{' '.join(map(str, event[2:]))}\n")
            log.flush()
        time.sleep(max(0, start + ticks * TICK - time.monotonic()))
        # Settle: every failure still in place is seen, every recovery risen.
        settle = max(bound_down(c) + bound_up(c) for c in CONFIGS.values()) + 3
        print(f"soak: schedule played; {settle:.0f} s to settle", flush=True)
        time.sleep(settle)
        monitor.stop.set()
        for t in threads:
            t.join()
        monitor.samples.close()
        for name, p in daemons.items():
            if p.poll() is not None:
                sys.exit(f"soak: the {name} exited ({p.returncode}) during the run")
        table = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True).stdout
        metrics = urllib.request.urlopen(CHECKER_URL, timeout=30).read().decode()
        for name, text in (("table.txt", table), ("checker-metrics.prom", metrics)):
            with open(f"{out}/{name}", "w") as f:
                f.write(text)
        summary = {"scrapes": monitor.scrapes, "errors": monitor.errors, "traffic": monitor.traffic}
        with open(f"{out}/monitor.json", "w") as f:
            json.dump(summary, f)
        ok = soak_report.report(out, duration, seed, events, table, metrics, summary)
    finally:
        if monitor is not None:
            monitor.stop.set()
        for p in daemons.values():
            p.terminate()
            p.wait()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
