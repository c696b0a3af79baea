#!/bin/sh
# A real server of LVS-TUN: decapsulate IP-in-IP (tunl0), hold the VIP on
# it, never answer ARP for it, and accept packets whose source the reverse
# path filter would find odd (they arrive through the tunnel).
set -eu
VIP=203.0.113.20

modprobe ipip
ip link set tunl0 up
ip addr add "$VIP/32" dev tunl0 2>/dev/null || true

sysctl -w net.ipv4.conf.all.arp_ignore=1
sysctl -w net.ipv4.conf.all.arp_announce=2
sysctl -w net.ipv4.conf.tunl0.arp_ignore=1
sysctl -w net.ipv4.conf.tunl0.arp_announce=2
sysctl -w net.ipv4.conf.all.rp_filter=0
sysctl -w net.ipv4.conf.tunl0.rp_filter=0
