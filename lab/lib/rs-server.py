"""Servers of one lab real server, started by `lab/topology.sh serve` inside
its namespace lab-rsK:

  * HTTP on port 80 (IPv4 and IPv6): Python's http.server serving a
    directory whose index.html says the server's name ("rsK");
  * UDP on port 53 (IPv4 and IPv6): answers every datagram with the name
    plus a newline ("rsK\n").

Usage: rs-server.py NAME WWW_DIR READY_FILE

One process for both keeps start-up cheap under software emulation (a Python
start costs seconds there). READY_FILE is created once both sockets are
bound, so the caller waits for a file instead of polling with ss. It only
answers what it receives; it never sends anything of its own accord.
"""

import functools
import http.server
import socket
import socketserver
import sys
import threading


class DualStackHTTPServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        # One socket for both families: IPv4 peers arrive as ::ffff:a.b.c.d.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # socketserver's bind, not HTTPServer's: that one also names the
        # address with socket.getfqdn("::"), a DNS query that no server
        # answers from a real server's namespace, so each start waited out
        # the resolver's timeout (6.2 s a start in the lab's VM, 0.9 s
        # without). The name is only for CGI, which this does not do.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def udp_responder(sock: socket.socket, reply: bytes) -> None:
    while True:
        _, peer = sock.recvfrom(65535)
        sock.sendto(reply, peer)


def main() -> None:
    name, www, ready = sys.argv[1:4]

    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(("::", 53))

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=www)
    httpd = DualStackHTTPServer(("::", 80), handler)

    threading.Thread(target=udp_responder, args=(udp, (name + "\n").encode()), daemon=True).start()
    with open(ready, "w") as f:
        f.write("ready\n")
    httpd.serve_forever()


if __name__ == "__main__":
    main()
