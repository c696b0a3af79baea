"""The attacks of web-limits.sh against one running daemon, and what they
do to it: hostile HTTP clients (huge request heads, more connections than
the daemon has descriptors, request heads and bodies a byte a second)
while a normal scraper asks for /metrics beside them.

    web_limits.py PID PORT SECONDS [ATTACK...]

(without ATTACK: all but the one against the checker's admin API)

For each attack, one row: the daemon's RSS and open descriptors before,
at the peak and after (from /proc/PID, sampled every 100 ms), the
connections it held at the peak (its sockets less those it had before)
and those the kernel held for it unaccepted (established on its port
past that), what the attackers got back (status lines, closes, time to
close), and how the scraper beside them fared (answers / tries, the
slowest). Figures only: nothing here passes or fails."""

import collections
import errno
import http.client
import os
import resource
import selectors
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    """Open descriptors of pid, and how many of them are sockets."""
    total = sockets = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return total, sockets


def established(port):
    """Established TCP connections whose local port is port (the server's
    side: accepted or still in the listener's queue)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except FileNotFoundError:
            pass
    return count


class Sampler(threading.Thread):
    """The daemon's RSS, descriptors and connections every 100 ms."""

    def __init__(self, pid, port):
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.stop = threading.Event()
        self.peak_rss = self.peak_fds = self.peak_sockets = self.peak_established = 0

    def run(self):
        while not self.stop.is_set():
            try:
                total, sockets = fds(self.pid)
                self.peak_rss = max(self.peak_rss, rss_kb(self.pid))
            except FileNotFoundError:
                return  # the daemon is gone: the row says so
            self.peak_fds = max(self.peak_fds, total)
            self.peak_sockets = max(self.peak_sockets, sockets)
            self.peak_established = max(self.peak_established, established(self.port))
            self.stop.wait(0.1)


class Scraper(threading.Thread):
    """GET /metrics every 0.5 s on a new connection, as Prometheus would
    beside the attack; counts answers and keeps the slowest."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.tries = self.answered = 0
        self.slowest = 0.0
        self.failures = collections.Counter()

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            self.tries += 1
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
                connection.request("GET", "/metrics")
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status == 200:
                    self.answered += 1
                else:
                    self.failures[str(response.status)] += 1
            except OSError as e:
                self.failures[type(e).__name__] += 1
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.stop.wait(max(0.0, 0.5 - (time.monotonic() - started)))


def status_of(answer):
    """'431', '200'... from the first bytes of an answer."""
    parts = answer.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/"):
        return parts[1].decode("ascii", "replace")
    return "garbage"


def one_request(port, request, outcomes, deadline):
    """Sends request (the server may close before it is all written) and
    notes what came back: a status, 'closed' (nothing), 'reset'."""
    try:
        s = socket.create_connection((HOST, port), timeout=max(1.0, deadline - time.monotonic()))
    except OSError as e:
        outcomes[f"connect {type(e).__name__}"] += 1
        return
    with s:
        try:
            s.sendall(request)
        except OSError:
            pass  # read what the server said before it closed
        try:
            answer = s.recv(64)
            outcomes[status_of(answer) if answer else "closed"] += 1
        except socket.timeout:
            outcomes["no answer"] += 1
        except OSError:
            outcomes["reset"] += 1


def huge_heads(port, seconds, request, workers=8):
    """workers clients sending request again and again for seconds."""
    outcomes = collections.Counter()
    deadline = time.monotonic() + seconds

    def work():
        while time.monotonic() < deadline:
            one_request(port, request, outcomes, deadline + 15)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return dict(outcomes), f"{workers} clients in a loop"


def head(lines):
    return ("GET /metrics HTTP/1.1\r\nHost: bench\r\n" + "".join(lines) + "\r\n").encode()


class Held:
    """One attacking connection: when it connected, what it has sent."""

    def __init__(self, sock, opened):
        self.sock, self.opened, self.sent = sock, opened, 0
        self.answered = False


def hold(port, seconds, count, payload=b"", first=0):
    """count connections kept open for seconds; each sends the first
    bytes of payload at once, then the rest a byte a second. A
    connection the daemon closes is opened again at once, as a
    determined attacker would; one it answers goes on as before (the
    daemon decides when it ends). Notes the answers, the closes and how
    long the daemon kept each connection it closed."""
    selector = selectors.DefaultSelector()
    outcomes = collections.Counter()
    held_for = []
    opened = 0
    live = {}

    def open_one():
        nonlocal opened
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if first:
            # The head at once: connect and send before going non-blocking.
            s.settimeout(2)
            try:
                s.connect((HOST, port))
                s.sendall(payload[:first])
            except OSError as e:
                s.close()
                outcomes[f"connect {type(e).__name__}"] += 1
                return False
            s.setblocking(False)
        else:
            # Thousands at once: do not wait for each handshake.
            s.setblocking(False)
            err = s.connect_ex((HOST, port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                outcomes[f"connect {errno.errorcode.get(err, err)}"] += 1
                return False
        opened += 1
        conn = Held(s, time.monotonic())
        conn.sent = first
        live[s.fileno()] = conn
        selector.register(s, selectors.EVENT_READ, conn)
        return True

    def drop(conn, what):
        selector.unregister(conn.sock)
        del live[conn.sock.fileno()]
        conn.sock.close()
        outcomes[what] += 1
        held_for.append(time.monotonic() - conn.opened)

    started = time.monotonic()
    deadline = started + seconds
    for _ in range(count):
        open_one()
    next_tick = started + 1
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            conn = key.data
            try:
                answer = conn.sock.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                drop(conn, "reset")
                continue
            if not answer:
                drop(conn, "closed by the daemon")
            elif not conn.answered:
                conn.answered = True
                outcomes[status_of(answer)] += 1
        # Those closed are opened again; a failed connect ends the round.
        for _ in range(count - len(live)):
            if time.monotonic() >= deadline or not open_one():
                break
        if payload and time.monotonic() >= next_tick:
            next_tick += 1
            for conn in list(live.values()):
                if conn.sent < len(payload):
                    try:
                        conn.sent += conn.sock.send(payload[conn.sent : conn.sent + 1])
                    except (BlockingIOError, OSError):
                        pass
    for conn in list(live.values()):
        selector.unregister(conn.sock)
        conn.sock.close()
    outcomes["open at the end"] = len(live)
    if held_for:
        held_for.sort()
        outcomes["held s median"] = round(held_for[len(held_for) // 2], 1)
        outcomes["held s max"] = round(held_for[-1], 1)
    return dict(outcomes), f"{count} at once, {opened} opened in all"


def attacks(port, seconds):
    kb = "x" * 1000
    huge_value = "x" * (1 << 20)
    slow_head = (
        "GET /metrics HTTP/1.1\r\nHost: bench\r\nX-Slow: " + "x" * 10_000
    ).encode()
    slow_body = (
        "POST /metrics HTTP/1.1\r\nHost: bench\r\nContent-Length: 1000000\r\n\r\n"
    ).encode()
    # The one body a daemon reads: the checker's admin API (when on).
    slow_admin_body = (
        "POST /api/v1/drain HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        "Content-Length: 60000\r\n\r\n"
    ).encode()
    return {
        # (a) huge request heads
        "head-1MB-of-headers": lambda: huge_heads(
            port, seconds, head(f"X-Filler-{i}: {kb}\r\n" for i in range(1024))
        ),
        "head-10000-headers": lambda: huge_heads(
            port, seconds, head(f"X-{i}: y\r\n" for i in range(10_000))
        ),
        "head-one-1MB-line": lambda: huge_heads(
            port, seconds, head([f"X-Huge: {huge_value}\r\n"])
        ),
        # (b) more connections than descriptors and --web.max-connections
        "2000-silent-connections": lambda: hold(port, seconds, 2000),
        # (c) slowloris: a head a byte a second, a body a byte a second
        "200-heads-a-byte-a-second": lambda: hold(port, seconds, 200, slow_head),
        "200-bodies-a-byte-a-second": lambda: hold(
            port, seconds, 200, slow_body + b"x" * 1000, len(slow_body)
        ),
        "200-admin-bodies-a-byte-a-second": lambda: hold(
            port, seconds, 200, slow_admin_body + b" " * 1000, len(slow_admin_body)
        ),
    }


def main():
    pid, port, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    # Thousands of sockets on this side too.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    table = attacks(port, seconds)
    chosen = sys.argv[4:] or [name for name in table if "admin" not in name]
    print(
        f"{'attack':<28} {'RSS KB before/peak/after':>25} {'fds before/peak/after':>22}"
        f" {'held':>5} {'queued':>6} {'scrapes':>8} {'slowest':>8}  answers"
    )
    for name in chosen:
        rss_before, (fds_before, sockets_before) = rss_kb(pid), fds(pid)
        established_before = established(port)
        sampler, scraper = Sampler(pid, port), Scraper(port)
        sampler.start()
        scraper.start()
        outcomes, how = table[name]()
        scraper.stop.set()
        scraper.join()
        time.sleep(2)  # the daemon's side of closed connections goes
        sampler.stop.set()
        sampler.join()
        try:
            rss_after, (fds_after, _) = rss_kb(pid), fds(pid)
        except FileNotFoundError:
            print(f"{name}: the daemon is gone")
            sys.exit(1)
        held = sampler.peak_sockets - sockets_before
        queued = max(0, sampler.peak_established - established_before - held)
        failures = ",".join(f"{k}:{v}" for k, v in scraper.failures.items())
        print(
            f"{name:<28} {f'{rss_before}/{sampler.peak_rss}/{rss_after}':>25}"
            f" {f'{fds_before}/{sampler.peak_fds}/{fds_after}':>22} {held:>5} {queued:>6}"
            f" {f'{scraper.answered}/{scraper.tries}':>8} {scraper.slowest:>7.2f}s"
            f"  {how}: {outcomes}" + (f" scrape failures {failures}" if failures else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
