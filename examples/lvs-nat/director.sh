#!/bin/sh
# LVS-NAT, as the seed notes build it: the director has two interfaces,
# outside 192.168.0.150 (the VIP) and inside 192.168.10.10, the gateway of
# both real servers (192.168.10.2 and 192.168.10.3, each running httpd).
# Every packet in and out passes the director, which rewrites addresses.
#
# Run as root on the director, then start ipvs-checker with checker.yml
# (mode: managed): the checker creates the IPVS table (no ipvsadm here) and
# keeps each real server's weight following its health.
set -eu
VIP=192.168.0.150

# The VIP on the outside interface (usually the system's network config).
ip addr add "$VIP/24" dev eth0 2>/dev/null || true

# NAT replies return through the director: it must route.
sysctl -w net.ipv4.ip_forward=1
# Persist it: echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-lvs-nat.conf
