#!/bin/sh
# LVS-TUN (IP-in-IP): the director encapsulates each packet to the real
# server, which may be on another network; the real server answers clients
# directly with the VIP as source. Real servers need routable addresses
# (not private ones behind NAT) and a tunnel device holding the VIP.
#
#   VIP 203.0.113.20 on the director; real servers 198.51.100.11, .12.
set -eu

ip addr add 203.0.113.20/32 dev eth0 2>/dev/null || true

ipvsadm -C
ipvsadm -A -t 203.0.113.20:80 -s wlc
# -i: ipip tunnelling.
ipvsadm -a -t 203.0.113.20:80 -r 198.51.100.11:80 -i -w 1
ipvsadm -a -t 203.0.113.20:80 -r 198.51.100.12:80 -i -w 1
ipvsadm -Ln
