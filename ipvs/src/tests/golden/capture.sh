#!/bin/sh
# Captures the netlink messages ipvsadm sends and the kernel answers, as the
# golden bytes of ipvs/src/tests/golden.rs. Run in the lab (a kernel with
# IPVS, as root):
#   lab/run -- ipvs/src/tests/golden/capture.sh && cp lab/.cache/out/golden/*.hex ipvs/src/tests/golden/
# Each command runs under strace, whose hex dumps of the netlink socket's
# traffic are cut into one file per IPVS datagram (the generic netlink
# controller's family lookup is left out).
set -eu
out=${LAB_OUT:?run through lab/run}/golden
mkdir -p "$out"
here=$(dirname "$0")
ns=golden-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
in_ns ip link add rs type dummy
in_ns ip link set rs up
in_ns ip addr add 198.18.1.1/24 dev rs
in_ns ip addr add 198.18.0.10/32 dev lo

# capture NAME COMMAND...: the datagrams of one ipvsadm run.
capture() {
	name=$1
	shift
	in_ns strace -f -e trace=sendmsg,recvmsg -e write=3 -e read=3 -xx -s 0 \
		-o "$out/$name.strace" "$@" >/dev/null
	python3 "$here/split.py" "$out/$name.strace" "$out/$name" "$*"
	rm "$out/$name.strace"
}

capture new_service_tcp ipvsadm -A -t 198.18.0.10:80 -s rr
capture new_dest_nat ipvsadm -a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 3 -x 100 -y 10
capture new_service_fwmark6 ipvsadm -A -f 7 -6 -s mh -b mh-port -p 60 -M 64
capture new_dest_tun ipvsadm -a -f 7 -6 -r '[2001:db8:1::13]:0' -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
capture new_service_udp_ops ipvsadm -A -u 198.18.0.10:53 -s wrr -o
capture new_service_sctp_sh ipvsadm -A --sctp-service 198.18.0.12:3868 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0
capture set_service ipvsadm -E -t 198.18.0.10:80 -s wlc
capture set_dest ipvsadm -e -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 5 -x 100 -y 10
# Some traffic, so the counters in the answers below are not zero: the
# director's own connection attempts to the VIP go through IPVS too.
in_ns python3 -c '
import socket
for _ in range(3):
    s = socket.socket(); s.settimeout(0.2)
    try: s.connect(("198.18.0.10", 80))
    except OSError: pass
    s.close()
'
capture list ipvsadm -Ln -t 198.18.0.10:80
capture list_fwmark6 ipvsadm -Ln -f 7 -6
capture version ipvsadm --version
capture timeout ipvsadm -L --timeout
capture set_timeout ipvsadm --set 900 120 300
capture zero_service ipvsadm -Z -t 198.18.0.10:80
capture del_dest ipvsadm -d -t 198.18.0.10:80 -r 198.18.1.11:80
capture del_service ipvsadm -D -t 198.18.0.10:80
capture flush ipvsadm -C
# The sync daemons: one at a time, so each dump answer is one datagram.
# A dummy device has no IFF_MULTICAST, which the sync sockets need.
in_ns ip link set rs multicast on
capture new_daemon_master ipvsadm --start-daemon master --mcast-interface rs --syncid 7
capture list_daemon_master ipvsadm -L --daemon
capture del_daemon_master ipvsadm --stop-daemon master
capture new_daemon_backup ipvsadm --start-daemon backup --mcast-interface rs --syncid 9 --sync-maxlen 1400 --mcast-group 239.1.2.3 --mcast-port 8850 --mcast-ttl 3
capture list_daemon_backup ipvsadm -L --daemon
capture del_daemon_backup ipvsadm --stop-daemon backup
ls "$out"
