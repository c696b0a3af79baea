#!/bin/sh
# A real server of LVS-DR: it must accept packets for the VIP (the VIP on
# lo, /32 so it routes nothing) but never answer ARP for it, or the segment
# would send clients' packets straight to it instead of the director.
# Run as root on each real server (persist the sysctls with
# 90-lvs-dr.conf in /etc/sysctl.d/).
set -eu
VIP=203.0.113.10

# arp_ignore=1: answer ARP only for addresses of the interface the request
# came in on (the VIP is on lo, so never). arp_announce=2: use the best
# local address (not the VIP) as the source of our own ARP requests.
sysctl -w net.ipv4.conf.all.arp_ignore=1
sysctl -w net.ipv4.conf.all.arp_announce=2
sysctl -w net.ipv4.conf.lo.arp_ignore=1
sysctl -w net.ipv4.conf.lo.arp_announce=2

ip addr add "$VIP/32" dev lo 2>/dev/null || true
