#!/bin/sh
# LVS-NAT, as the seed notes build it: the director has two interfaces,
# outside 192.168.0.150 (the VIP) and inside 192.168.10.10, the gateway of
# both real servers (192.168.10.2 and 192.168.10.3, each running httpd).
# Every packet in and out passes the director, which rewrites addresses.
#
# Run as root on the director. ipvs-checker (checker.yml beside this file,
# mode: weights) then keeps each real server's weight following its health.
set -eu

# NAT replies return through the director: it must route.
sysctl -w net.ipv4.ip_forward=1

# -C: start from an empty table (this script owns it).
ipvsadm -C
# wrr: Server1 gets 3 connections for each 1 of Server2 (-w), as in the
# notes' "加强轮叫算法" test. -m: masquerading (NAT).
ipvsadm -A -t 192.168.0.150:80 -s wrr
ipvsadm -a -t 192.168.0.150:80 -r 192.168.10.2:80 -m -w 3
ipvsadm -a -t 192.168.0.150:80 -r 192.168.10.3:80 -m -w 1

# Keep the table across reboots: ipvsadm-save -n > /etc/ipvsadm.rules, and
# restore it at boot (Debian: the ipvsadm package's init script; RHEL:
# ipvsadm.service).
ipvsadm -Ln
