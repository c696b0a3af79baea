#!/bin/sh
# A firewall-mark service: HTTP (80) and HTTPS (443) of one VIP grouped into
# one IPVS service with persistence, so a client that logged in over HTTPS
# and then loads a page over HTTP reaches the same real server for 10 min.
# The kernel's netfilter marks the packets; IPVS schedules by mark.
#
#   VIP 203.0.113.30, real servers 10.0.0.11 and 10.0.0.12 (LVS-DR; see
#   ../lvs-dr/realserver.sh for what each real server needs).
#
# Run as root on the director, then start ipvs-checker with checker.yml
# (mode: managed), which creates the fwmark service (fwmark: 1 there is
# MARK here).
set -eu
VIP=203.0.113.30
MARK=1

ip addr add "$VIP/32" dev eth0 2>/dev/null || true

# Mark both ports of the VIP (mangle PREROUTING runs before IPVS sees them).
iptables -t mangle -A PREROUTING -d "$VIP/32" -p tcp -m multiport --dports 80,443 -j MARK --set-mark "$MARK"

# With persistence, a client whose real server failed keeps its template
# and stays on it at weight 0 until the template expires, unless this is 1
# (the checker's set_expire_quiescent_template can set it too, but not
# under the hardened unit of ../systemd: ProtectKernelTunables).
modprobe ip_vs
sysctl -w net.ipv4.vs.expire_quiescent_template=1
