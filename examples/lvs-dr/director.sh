#!/bin/sh
# LVS-DR (direct routing): the director only rewrites the destination MAC;
# real servers answer clients directly with the VIP as source. Director and
# real servers share a layer-2 segment; ports cannot be remapped.
#
#   clients -> VIP 203.0.113.10 (director eth0)
#   director eth0 10.0.0.2/24, real servers 10.0.0.11 and 10.0.0.12 on the
#   same segment, their default route to the router (not the director).
#
# Run as root on the director; realserver.sh on each real server.
set -eu

ip addr add 203.0.113.10/32 dev eth0 2>/dev/null || true

ipvsadm -C
ipvsadm -A -t 203.0.113.10:80 -s wlc
# -g: gatewaying (direct routing), the default; same port on the real server.
ipvsadm -a -t 203.0.113.10:80 -r 10.0.0.11:80 -g -w 1
ipvsadm -a -t 203.0.113.10:80 -r 10.0.0.12:80 -g -w 1
ipvsadm -Ln
