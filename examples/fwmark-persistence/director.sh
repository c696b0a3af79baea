#!/bin/sh
# A firewall-mark service: HTTP (80) and HTTPS (443) of one VIP grouped into
# one IPVS service with persistence, so a client that logged in over HTTPS
# and then loads a page over HTTP reaches the same real server for 10 min.
# The kernel's netfilter marks the packets; IPVS schedules by mark.
#
#   VIP 203.0.113.30, real servers 10.0.0.11 and 10.0.0.12 (LVS-DR; see
#   ../lvs-dr/realserver.sh for what each real server needs).
set -eu
VIP=203.0.113.30
MARK=1

# Mark both ports of the VIP (mangle PREROUTING runs before IPVS sees them).
iptables -t mangle -A PREROUTING -d "$VIP/32" -p tcp -m multiport --dports 80,443 -j MARK --set-mark "$MARK"

ipvsadm -C
# -f: a fwmark service. -p 600: persistence, 600 s after the last connection
# of a client (a persistence template per client address, as
# ipvs_backend_persistence_templates counts them). -M 255.255.255.0 would
# pin whole /24s (clients behind proxies that rotate addresses).
ipvsadm -A -f "$MARK" -s wlc -p 600
# No port on the real server: each connection keeps its destination port.
ipvsadm -a -f "$MARK" -r 10.0.0.11 -g -w 1
ipvsadm -a -f "$MARK" -r 10.0.0.12 -g -w 1
ipvsadm -Ln
