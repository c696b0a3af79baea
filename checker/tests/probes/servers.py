#!/usr/bin/env python3
"""The real servers of checker/tests/probes.rs: one process serving one
port per behaviour, so a lab test pays for one Python start (seconds under
the lab's emulation), not one per case.

usage: servers.py ADDRESS PKI_DIR READY_FILE

  8001  HTTP 200, body "healthy"
  8002  HTTP 500
  8003  HTTP 200, body "sorry" (the wrong body)
  8004  reads the request, never answers
  8005  the 200 answer, one byte a second
  8443  HTTPS 200 with good.pem (the lab CA, rs1.lab.test)
  8444  HTTPS 200 with other-ca.pem (issued by another CA)
  8445  HTTPS 200 with expired.pem (the lab CA, expired)
  8006  HTTP/1.1 200 "healthy", keeping the connection for more requests
  8446  the same over HTTPS with good.pem
  2525  SMTP: a 220 greeting, 250 to EHLO, 221 to QUIT
  2526  SMTP refusing service: a 554 greeting, then waits for QUIT
  2527  TCP, accepts and says nothing
  5301  UDP, answers every datagram with "pong"
  5302  UDP, answers every datagram with "busy" (the wrong reply)

Nothing listens on TCP 2528 nor on UDP 5303: the closed ports.

Each connection to 8006 and 8446 is logged ("8006 connection") on stdout,
so a test counts the connections its probes made.
"""

import asyncio
import ssl
import sys


def reply(status, body):
    return (
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n{body}"
    ).encode()


OK = reply("200 OK", "healthy\n")
REPLIES = {
    "ok": OK,
    "error": reply("500 Internal Server Error", "oops\n"),
    "wrong_body": reply("200 OK", "sorry\n"),
}


KEPT = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\n"


def keep_alive(port):
    async def handle(reader, writer):
        print(f"{port} connection", flush=True)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(KEPT)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the checker closed it (a reset) or went away
        writer.close()

    return handle


SMTP_REPLIES = {
    b"EHLO": b"250-rs.lab.test\r\n250 PIPELINING\r\n",
    b"QUIT": b"221 bye\r\n",
}


def smtp(greeting):
    """An SMTP server's side of the checker's preset: the greeting, then
    an answer to each command, until QUIT (after a 554 greeting a real
    server also waits for QUIT, RFC 5321 3.1)."""

    async def handle(reader, writer):
        try:
            writer.write(greeting)
            await writer.drain()
            while line := await reader.readline():
                verb = (line.split() or [b""])[0].upper()
                writer.write(SMTP_REPLIES.get(verb, b"500 unknown command\r\n"))
                await writer.drain()
                if verb == b"QUIT":
                    break
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass  # the checker reset the connection (its timeout)

    return handle


async def mute(reader, writer):
    try:
        await reader.read()  # until the checker goes away
    except OSError:
        pass
    writer.close()


class Answer(asyncio.DatagramProtocol):
    """Answers every datagram with the same reply."""

    def __init__(self, reply):
        self.reply = reply

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(self.reply, addr)


def handler(kind):
    if kind.startswith("keep:"):
        return keep_alive(kind[5:])
    if kind == "smtp":
        return smtp(b"220 rs.lab.test ESMTP lab\r\n")
    if kind == "smtp_refusing":
        return smtp(b"554 5.3.2 rs.lab.test has no SMTP service for you\r\n")
    if kind == "mute":
        return mute

    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            if kind == "silent":
                await asyncio.sleep(3600)
            elif kind == "trickle":
                for byte in OK:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1)
            else:
                writer.write(REPLIES[kind])
                await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the checker hung up (its timeout) or refused the cert

    return handle


async def main(address, pki, ready):
    def tls(name):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{pki}/{name}.pem", f"{pki}/{name}.key")
        return context

    ports = [
        (8001, "ok", None),
        (8002, "error", None),
        (8003, "wrong_body", None),
        (8004, "silent", None),
        (8005, "trickle", None),
        (8443, "ok", "good"),
        (8444, "ok", "other-ca"),
        (8445, "ok", "expired"),
        (8006, "keep:8006", None),
        (8446, "keep:8446", "good"),
        (2525, "smtp", None),
        (2526, "smtp_refusing", None),
        (2527, "mute", None),
    ]
    servers = [
        await asyncio.start_server(
            handler(kind), address, port, ssl=tls(cert) if cert else None
        )
        for port, kind, cert in ports
    ]
    loop = asyncio.get_running_loop()
    for port, reply in [(5301, b"pong\n"), (5302, b"busy\n")]:
        await loop.create_datagram_endpoint(
            lambda reply=reply: Answer(reply), local_addr=(address, port)
        )
    with open(ready, "w") as f:
        f.write("ready\n")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
