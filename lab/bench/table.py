#!/usr/bin/env python3
"""The benchmarks' IPVS table, in `ipvsadm -R` form, on stdout.

usage: table.py SERVICES DESTS

Services 198.18.2.0, 198.18.2.1, ... port 80, scheduler wlc, each with
DESTS NAT real servers 198.18.8.1 ... at port 8000 + (service number %
100) and weights 1 ... DESTS: every line differs, as a large director's
table does.
"""

import ipaddress
import sys


def main() -> None:
    try:
        services, dests = (int(a) for a in sys.argv[1:3])
        if len(sys.argv) != 3 or services < 0 or dests < 0:
            raise ValueError
    except ValueError:
        sys.exit(f"usage: {sys.argv[0]} SERVICES DESTS (two counts), not {sys.argv[1:]}")
    base = int(ipaddress.ip_address("198.18.2.0"))
    for s in range(services):
        vip = ipaddress.ip_address(base + s)
        print(f"-A -t {vip}:80 -s wlc")
        for d in range(dests):
            print(f"-a -t {vip}:80 -r 198.18.8.{d + 1}:{8000 + s % 100} -m -w {d + 1}")


if __name__ == "__main__":
    main()
