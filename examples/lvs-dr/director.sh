#!/bin/sh
# LVS-DR (direct routing): the director only rewrites the destination MAC;
# real servers answer clients directly with the VIP as source. Director and
# real servers share a layer-2 segment; ports cannot be remapped.
#
#   clients -> VIP 203.0.113.10 (director eth0)
#   director eth0 10.0.0.2/24, real servers 10.0.0.11 and 10.0.0.12 on the
#   same segment, their default route to the router (not the director).
#
# Run as root on the director, then start ipvs-checker with checker.yml
# (mode: managed), which creates the IPVS table; realserver.sh on each real
# server.
set -eu
VIP=203.0.113.10

# The director is the one that answers ARP for the VIP (the real servers
# hold it on lo and stay silent: realserver.sh).
ip addr add "$VIP/32" dev eth0 2>/dev/null || true
