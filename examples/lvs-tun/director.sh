#!/bin/sh
# LVS-TUN (IP-in-IP): the director encapsulates each packet to the real
# server, which may be on another network; the real server answers clients
# directly with the VIP as source. Real servers need routable addresses
# (not private ones behind NAT) and a tunnel device holding the VIP
# (realserver.sh).
#
#   VIP 203.0.113.20 on the director (its own address 203.0.113.2, the
#   probes' source); real servers 198.51.100.11, .12.
#
# Run as root on the director, then start ipvs-checker with checker.yml
# (mode: managed), which creates the IPVS table.
set -eu
VIP=203.0.113.20

ip addr add "$VIP/32" dev eth0 2>/dev/null || true
