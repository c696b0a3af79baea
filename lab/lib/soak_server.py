"""The real servers of the soak run (lab/soak), one process per namespace
lab-rsK, serving every port of every service on all its addresses:

  usage: soak_server.py SPEC CERT KEY BADCERT BADKEY CONTROL READY

SPEC is a comma-separated list of KIND:FIRST_PORT:COUNT (KIND tcp, http or
https). A tcp port accepts and closes; http answers "healthy"; https does
the same after a TLS handshake with CERT/KEY, or with BADCERT/BADKEY (a
certificate of another CA) for a real server told to present it.

CONTROL is a FIFO; each line sets the behaviour of one real server,
an address of this namespace and a port: "MODE ADDRESS PORT" with MODE
ok, slow (answers after SLOW seconds: past the check's timeout) or badcert.
Refused and dropped connections are iptables rules in the namespace, set by
the caller. READY is created once every port is bound. Asyncio in one
thread: a Python start costs seconds under emulation, so one process serves
the whole namespace.
"""

import asyncio
import os
import ssl
import sys

SLOW = 30.0  # seconds: longer than any timeout the soak configures
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhealthy\n"

modes: dict[tuple[str, int], str] = {}


def context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(kind: str, good: ssl.SSLContext, bad: ssl.SSLContext, reader, writer) -> None:
    local, port = writer.get_extra_info("sockname")[:2]
    mode = modes.get((local, port), "ok")
    try:
        if kind == "https":
            await writer.start_tls(bad if mode == "badcert" else good)
        if kind != "tcp":
            # The request's head, then the answer (late if slow).
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if mode == "slow":
                await asyncio.sleep(SLOW)
            writer.write(RESPONSE)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ssl.SSLError):
        pass  # the checker gave up (timeout) or refused the certificate
    finally:
        writer.close()


def control(fd: int, pending: bytearray) -> None:
    pending += os.read(fd, 65536)
    *lines, rest = pending.split(b"\n")
    pending[:] = rest
    for line in lines:
        try:
            mode, address, port = line.decode().split()
            if mode not in ("ok", "slow", "badcert"):
                raise ValueError(mode)
            modes[(address, int(port))] = mode
        except ValueError:
            print(f"soak_server: bad control line {line!r}", file=sys.stderr)


async def main() -> None:
    spec, cert, key, badcert, badkey, fifo, ready = sys.argv[1:8]
    good, bad = context(cert, key), context(badcert, badkey)
    for part in spec.split(","):
        kind, first, count = part.split(":")
        for port in range(int(first), int(first) + int(count)):
            handler = lambda r, w, kind=kind: serve(kind, good, bad, r, w)  # noqa: E731
            await asyncio.start_server(handler, "0.0.0.0", port, backlog=1024)
    # Read-write: the FIFO never reaches end-of-file between writers.
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    asyncio.get_running_loop().add_reader(fd, control, fd, bytearray())
    open(ready, "w").close()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
