//! Golden bytes: netlink datagrams captured in the lab from ipvsadm 1.31 and
//! Linux 6.1 (`golden/capture.sh` makes them; each file names the ipvsadm
//! command). Every capture parses to the message written out here, emits back
//! to the same bytes, and every request the crate makes for the same
//! operation is ipvsadm's, byte for byte, less the attributes the kernel
//! ignores in that command.

use std::net::SocketAddr;

use netlink_packet_core::{NetlinkBuffer, ParseableParametrized, NLA_F_NESTED};
use netlink_packet_generic::GenlMessage;

use super::emit;
use crate::daemon::attr::DaemonAttr;
use crate::destination::attr::DestAttr;
use crate::handle::{dest_request, service_request};
use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use crate::service::attr::ServiceAttr;
use crate::*;

/// A capture: the datagram's bytes.
struct Capture {
    name: &'static str,
    bytes: Vec<u8>,
}

macro_rules! capture {
    ($name:literal) => {
        Capture::parse($name, include_str!(concat!("golden/", $name, ".hex")))
    };
}

impl Capture {
    fn parse(name: &'static str, text: &str) -> Capture {
        let bytes = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .flat_map(str::split_whitespace)
            .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
            .collect();
        Capture { name, bytes }
    }

    /// The generic netlink header and attributes, after the netlink header.
    fn genl(&self) -> &[u8] {
        let buffer = NetlinkBuffer::new_checked(&self.bytes[..]).expect("netlink header");
        assert_eq!(
            buffer.length() as usize,
            self.bytes.len(),
            "{}: one message",
            self.name
        );
        &self.bytes[16..]
    }

    /// The attributes, after the generic netlink header.
    fn attrs(&self) -> &[u8] {
        &self.genl()[4..]
    }

    fn message(&self) -> IpvsMessage {
        let buffer = NetlinkBuffer::new_checked(&self.bytes[..]).expect("netlink header");
        GenlMessage::<IpvsMessage>::parse_with_param(buffer.payload(), buffer.message_type())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
            .payload
    }

    /// Parses and emits back; the same bytes must come out. The kernel does
    /// not flag its nested attributes with NLA_F_NESTED (ipvsadm does, and so
    /// does this crate), so for answers the flag is cleared before comparing.
    fn assert_round_trip(&self) {
        let message = self.message();
        assert_eq!(
            self.genl()[0],
            u8::from(message.cmd),
            "{}: command",
            self.name
        );
        let mut emitted = emit(&message);
        if self.is_answer() {
            clear_nested_flags(&mut emitted, 0);
        }
        assert_eq!(
            hex(&emitted),
            hex(self.attrs()),
            "{}: emitted bytes",
            self.name
        );
    }

    fn is_answer(&self) -> bool {
        self.name.contains(".answer")
    }
}

/// Clears NLA_F_NESTED in attribute headers: the top level's and, inside
/// SERVICE and DEST, the statistics blocks'.
fn clear_nested_flags(buf: &mut [u8], depth: usize) {
    let mut offset = 0;
    while offset + 4 <= buf.len() {
        let length = u16::from_ne_bytes([buf[offset], buf[offset + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[offset + 2], buf[offset + 3]]);
        if kind & NLA_F_NESTED != 0 {
            buf[offset + 2..offset + 4].copy_from_slice(&(kind & !NLA_F_NESTED).to_ne_bytes());
            if depth == 0 {
                clear_nested_flags(&mut buf[offset + 4..offset + length], depth + 1);
            }
        }
        offset += length.div_ceil(4) * 4;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `capture` as the crate would send it: without the attributes ipvsadm
/// adds that the kernel ignores in this command.
fn without_ignored(capture: &Capture, service_settings: bool, dest_settings: bool) -> Vec<u8> {
    let mut message = capture.message();
    for attr in &mut message.attrs {
        match attr {
            IpvsAttr::Service(attrs) if service_settings => attrs.retain(|a| {
                matches!(
                    a,
                    ServiceAttr::Af(_)
                        | ServiceAttr::Protocol(_)
                        | ServiceAttr::Addr(_)
                        | ServiceAttr::Port(_)
                        | ServiceAttr::Fwmark(_)
                )
            }),
            IpvsAttr::Dest(attrs) if dest_settings => attrs.retain(|a| {
                matches!(
                    a,
                    DestAttr::AddrFamily(_) | DestAttr::Addr(_) | DestAttr::Port(_)
                )
            }),
            _ => {}
        }
    }
    emit(&message)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn vip() -> ServiceKey {
    ServiceKey::tcp(addr("198.18.0.10:80"))
}

fn rip() -> DestinationKey {
    DestinationKey::new(addr("198.18.1.11:80"))
}

fn all_captures() -> Vec<Capture> {
    vec![
        capture!("new_service_tcp.request1"),
        capture!("new_service_fwmark6.request1"),
        capture!("new_service_udp_ops.request1"),
        capture!("new_service_sctp_sh.request1"),
        capture!("set_service.request1"),
        capture!("new_dest_nat.request1"),
        capture!("new_dest_tun.request1"),
        capture!("set_dest.request1"),
        capture!("del_dest.request1"),
        capture!("del_service.request1"),
        capture!("zero_service.request1"),
        capture!("flush.request1"),
        capture!("set_timeout.request1"),
        capture!("timeout.request1"),
        capture!("timeout.answer1"),
        capture!("version.request1"),
        capture!("version.answer1"),
        capture!("list.request1"),
        capture!("list.request2"),
        capture!("list.answer1"),
        capture!("list.answer2"),
        capture!("list_fwmark6.request1"),
        capture!("list_fwmark6.request2"),
        capture!("list_fwmark6.answer1"),
        capture!("list_fwmark6.answer2"),
        capture!("new_daemon_master.request1"),
        capture!("new_daemon_backup.request1"),
        capture!("list_daemon_master.request1"),
        capture!("list_daemon_master.answer1"),
        capture!("list_daemon_backup.request1"),
        capture!("list_daemon_backup.answer1"),
        capture!("del_daemon_master.request1"),
        capture!("del_daemon_backup.request1"),
    ]
}

#[test]
fn every_capture_parses_and_emits_back_to_the_same_bytes() {
    for capture in all_captures() {
        capture.assert_round_trip();
    }
}

#[test]
fn service_requests_are_ipvsadms() {
    let cases = [
        // ipvsadm -A -t 198.18.0.10:80 -s rr
        (
            capture!("new_service_tcp.request1"),
            IpvsCmd::NewService,
            vip(),
            ServiceConfig::new("rr"),
        ),
        // ipvsadm -A -f 7 -6 -s mh -b mh-port -p 60 -M 64
        (
            capture!("new_service_fwmark6.request1"),
            IpvsCmd::NewService,
            ServiceKey::fwmark(7, AddressFamily::Inet6),
            ServiceConfig {
                flags: ServiceFlags::PERSISTENT | ServiceFlags::SCHED2,
                netmask: Some(Netmask::V6(64)),
                ..ServiceConfig::new("mh").persistent(60)
            },
        ),
        // ipvsadm -A -u 198.18.0.10:53 -s wrr -o
        (
            capture!("new_service_udp_ops.request1"),
            IpvsCmd::NewService,
            ServiceKey::udp(addr("198.18.0.10:53")),
            ServiceConfig {
                flags: ServiceFlags::ONE_PACKET,
                ..ServiceConfig::new("wrr")
            },
        ),
        // ipvsadm -A --sctp-service 198.18.0.12:3868 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0
        (
            capture!("new_service_sctp_sh.request1"),
            IpvsCmd::NewService,
            ServiceKey::sctp(addr("198.18.0.12:3868")),
            ServiceConfig {
                flags: ServiceFlags::PERSISTENT | ServiceFlags::SCHED1 | ServiceFlags::SCHED2,
                netmask: Some(Netmask::V4("255.255.255.0".parse().expect("mask"))),
                ..ServiceConfig::new("sh").persistent(300)
            },
        ),
        // ipvsadm -E -t 198.18.0.10:80 -s wlc
        (
            capture!("set_service.request1"),
            IpvsCmd::SetService,
            vip(),
            ServiceConfig::new("wlc"),
        ),
    ];
    for (capture, cmd, key, config) in cases {
        let ours = emit(&service_request(cmd, &key, Some(&config)));
        assert_eq!(hex(&ours), hex(capture.attrs()), "{}", capture.name);
    }
}

#[test]
fn destination_requests_are_ipvsadms() {
    let nat = DestinationConfig {
        upper_threshold: 100,
        lower_threshold: 10,
        ..DestinationConfig::new(ForwardMethod::Masquerade, 3)
    };
    let tun = DestinationConfig {
        tunnel: Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            flags: TunnelFlags::CSUM,
        },
        ..DestinationConfig::new(ForwardMethod::Tunnel, 1)
    };
    let cases = [
        // ipvsadm -a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 3 -x 100 -y 10
        (
            capture!("new_dest_nat.request1"),
            IpvsCmd::NewDest,
            vip(),
            rip(),
            nat,
        ),
        // ipvsadm -a -f 7 -6 -r [2001:db8:1::13]:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
        (
            capture!("new_dest_tun.request1"),
            IpvsCmd::NewDest,
            ServiceKey::fwmark(7, AddressFamily::Inet6),
            DestinationKey::new(addr("[2001:db8:1::13]:0")),
            tun,
        ),
        // ipvsadm -e -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 5 -x 100 -y 10
        (
            capture!("set_dest.request1"),
            IpvsCmd::SetDest,
            vip(),
            rip(),
            DestinationConfig { weight: 5, ..nat },
        ),
    ];
    for (capture, cmd, service, destination, config) in cases {
        let ours = emit(&dest_request(cmd, &service, &destination, Some(&config)));
        assert_eq!(
            hex(&ours),
            hex(&without_ignored(&capture, true, false)),
            "{}",
            capture.name
        );
    }
    // ipvsadm -d -t 198.18.0.10:80 -r 198.18.1.11:80
    let capture = capture!("del_dest.request1");
    let ours = emit(&dest_request(IpvsCmd::DelDest, &vip(), &rip(), None));
    assert_eq!(hex(&ours), hex(&without_ignored(&capture, true, true)));
}

#[test]
fn key_only_requests_are_ipvsadms() {
    let cases = [
        // ipvsadm -D -t 198.18.0.10:80
        (capture!("del_service.request1"), IpvsCmd::DelService, vip()),
        // ipvsadm -Z -t 198.18.0.10:80
        (capture!("zero_service.request1"), IpvsCmd::Zero, vip()),
        // ipvsadm -Ln -t 198.18.0.10:80: the service itself
        (capture!("list.request1"), IpvsCmd::GetService, vip()),
        // ipvsadm -Ln -t 198.18.0.10:80: its destinations (a dump)
        (capture!("list.request2"), IpvsCmd::GetDest, vip()),
        // ipvsadm -Ln -f 7 -6
        (
            capture!("list_fwmark6.request1"),
            IpvsCmd::GetService,
            ServiceKey::fwmark(7, AddressFamily::Inet6),
        ),
        (
            capture!("list_fwmark6.request2"),
            IpvsCmd::GetDest,
            ServiceKey::fwmark(7, AddressFamily::Inet6),
        ),
    ];
    for (capture, cmd, key) in cases {
        let ours = emit(&service_request(cmd, &key, None));
        assert_eq!(
            hex(&ours),
            hex(&without_ignored(&capture, true, false)),
            "{}",
            capture.name
        );
    }
}

#[test]
fn requests_without_attributes_are_ipvsadms() {
    let cases = [
        (capture!("flush.request1"), IpvsCmd::Flush), // ipvsadm -C
        (capture!("timeout.request1"), IpvsCmd::GetConfig), // ipvsadm -L --timeout
        (capture!("version.request1"), IpvsCmd::GetInfo), // ipvsadm --version
    ];
    for (capture, cmd) in cases {
        assert_eq!(
            capture.message(),
            IpvsMessage::new(cmd, vec![]),
            "{}",
            capture.name
        );
        assert!(capture.attrs().is_empty());
    }
    // ipvsadm --set 900 120 300
    let capture = capture!("set_timeout.request1");
    let ours = IpvsMessage::new(
        IpvsCmd::SetConfig,
        vec![
            IpvsAttr::TimeoutTcp(900),
            IpvsAttr::TimeoutTcpFin(120),
            IpvsAttr::TimeoutUdp(300),
        ],
    );
    assert_eq!(hex(&emit(&ours)), hex(capture.attrs()));
}

fn only_service(message: IpvsMessage) -> Service {
    match &message.attrs[..] {
        [IpvsAttr::Service(attrs)] => Service::from_attrs(attrs).expect("service"),
        other => panic!("not one service: {other:?}"),
    }
}

fn only_destination(message: IpvsMessage, family: AddressFamily) -> Destination {
    match &message.attrs[..] {
        [IpvsAttr::Dest(attrs)] => Destination::from_attrs(attrs, family).expect("destination"),
        other => panic!("not one destination: {other:?}"),
    }
}

#[test]
fn answers_decode_to_what_ipvsadm_showed() {
    // ipvsadm -Ln -t 198.18.0.10:80 after -E ... -s wlc and -e ... -w 5
    let service = only_service(capture!("list.answer1").message());
    assert_eq!(service.key, vip());
    assert_eq!(service.config, ServiceConfig::new("wlc"));
    assert_eq!(service.stats, Stats::default());
    let destination = only_destination(capture!("list.answer2").message(), AddressFamily::Inet);
    assert_eq!(destination.key, rip());
    assert_eq!(
        destination.config,
        DestinationConfig {
            upper_threshold: 100,
            lower_threshold: 10,
            ..DestinationConfig::new(ForwardMethod::Masquerade, 5)
        }
    );
    // The capture's three connection attempts, still open; the counters lag
    // (the kernel folds its per-CPU counters every 2 s) and were still zero.
    assert_eq!(
        (destination.active_conns, destination.inactive_conns),
        (3, 0)
    );

    // ipvsadm -Ln -f 7 -6: the kernel adds IP_VS_SVC_F_HASHED (0x13 on the
    // wire), which is not part of the configuration.
    let message = capture!("list_fwmark6.answer1").message();
    let IpvsAttr::Service(attrs) = &message.attrs[0] else {
        panic!("no service")
    };
    assert!(attrs.contains(&ServiceAttr::Flags {
        flags: 0x13,
        mask: !0
    }));
    let service = only_service(message);
    assert_eq!(service.key, ServiceKey::fwmark(7, AddressFamily::Inet6));
    assert_eq!(
        service.config.flags,
        ServiceFlags::PERSISTENT | ServiceFlags::SCHED2
    );
    assert_eq!(service.config.netmask, Some(Netmask::V6(64)));
    assert_eq!(service.config.timeout, 60);
    let destination = only_destination(
        capture!("list_fwmark6.answer2").message(),
        AddressFamily::Inet6,
    );
    assert_eq!(
        destination.key,
        DestinationKey::new(addr("[2001:db8:1::13]:0"))
    );
    assert_eq!(destination.config.forward, ForwardMethod::Tunnel);
    assert_eq!(destination.config.tunnel.kind, TunnelType::Gue);
    assert_eq!(destination.config.tunnel.port, 6080);

    // ipvsadm --version: "IP Virtual Server version 1.2.1 (size=4096)"
    let message = capture!("version.answer1").message();
    assert_eq!(message.cmd, IpvsCmd::SetInfo);
    assert_eq!(
        message.attrs,
        vec![
            IpvsAttr::InfoVersion(0x010201),
            IpvsAttr::InfoConnTabSize(4096)
        ]
    );
    assert_eq!(Version(0x010201).to_string(), "1.2.1");

    // ipvsadm -L --timeout: "Timeout (tcp tcpfin udp): 900 120 300"
    let message = capture!("timeout.answer1").message();
    assert_eq!(
        message.attrs,
        vec![
            IpvsAttr::TimeoutTcp(900),
            IpvsAttr::TimeoutTcpFin(120),
            IpvsAttr::TimeoutUdp(300)
        ]
    );
}

#[test]
fn captured_destinations_decode_straight_from_the_wire_as_through_the_attributes() {
    // ipvsadm -Ln -t 198.18.0.10:80 and -Ln -f 1 (IPv6): what the table
    // dump decodes directly equals what the attribute layer gives.
    for (capture, family) in [
        (capture!("list.answer2"), AddressFamily::Inet),
        (capture!("list_fwmark6.answer2"), AddressFamily::Inet6),
    ] {
        let through = only_destination(capture.message(), family);
        let block = crate::nla::attributes("test", capture.attrs())
            .map(|attr| attr.expect("attribute"))
            .find(|(kind, _)| *kind == crate::constants::IPVS_CMD_ATTR_DEST)
            .map(|(_, value)| value)
            .expect("a destination");
        let direct = Destination::decode(block, family).expect("decodes");
        assert_eq!(direct, through, "{}", capture.name);
        let settings = Destination::decode_settings(block, family).expect("decodes");
        assert_eq!(settings, (direct.key, direct.config), "{}", capture.name);
    }
}

fn backup_daemon() -> SyncDaemon {
    SyncDaemon::new(SyncState::Backup, "rs", 9)
        .with_max_packet_len(1400)
        .with_multicast_group("239.1.2.3".parse().expect("group"))
        .with_multicast_port(8850)
        .with_multicast_ttl(3)
}

#[test]
fn sync_daemon_requests_are_ipvsadms() {
    // ipvsadm --start-daemon master --mcast-interface rs --syncid 7, and
    // the backup with every option.
    let cases = [
        (
            capture!("new_daemon_master.request1"),
            SyncDaemon::new(SyncState::Master, "rs", 7),
        ),
        (capture!("new_daemon_backup.request1"), backup_daemon()),
    ];
    for (capture, daemon) in cases {
        let ours = IpvsMessage::new(
            IpvsCmd::NewDaemon,
            vec![IpvsAttr::Daemon(daemon.to_attrs())],
        );
        assert_eq!(capture.message().cmd, IpvsCmd::NewDaemon);
        assert_eq!(hex(&emit(&ours)), hex(capture.attrs()), "{}", capture.name);
    }
    // ipvsadm --stop-daemon STATE also sends an empty interface and sync
    // id 0, which DEL_DAEMON ignores: the crate sends the state alone.
    for (capture, state) in [
        (capture!("del_daemon_master.request1"), SyncState::Master),
        (capture!("del_daemon_backup.request1"), SyncState::Backup),
    ] {
        let mut message = capture.message();
        assert_eq!(message.cmd, IpvsCmd::DelDaemon);
        for attr in &mut message.attrs {
            if let IpvsAttr::Daemon(attrs) = attr {
                attrs.retain(|a| matches!(a, DaemonAttr::State(_)));
            }
        }
        let ours = IpvsMessage::new(
            IpvsCmd::DelDaemon,
            vec![IpvsAttr::Daemon(vec![DaemonAttr::State(state.number())])],
        );
        assert_eq!(message, ours, "{}", capture.name);
    }
    // ipvsadm -L --daemon: a dump request without attributes.
    for capture in [
        capture!("list_daemon_master.request1"),
        capture!("list_daemon_backup.request1"),
    ] {
        assert_eq!(
            capture.message(),
            IpvsMessage::new(IpvsCmd::GetDaemon, vec![])
        );
    }
}

#[test]
fn sync_daemon_answers_decode_to_what_was_started() {
    let daemon_of = |capture: Capture| match &capture.message().attrs[..] {
        [IpvsAttr::Daemon(attrs)] => SyncDaemon::from_attrs(attrs).expect("daemon"),
        other => panic!("{}: not one daemon: {other:?}", capture.name),
    };
    // The master was started with the interface and sync id only: the
    // kernel reports its defaults for the rest (the payload that fits the
    // device's MTU of 1500, group 224.0.0.81, port 8848, TTL 1).
    let master = daemon_of(capture!("list_daemon_master.answer1"));
    assert_eq!(
        master,
        SyncDaemon::new(SyncState::Master, "rs", 7)
            .with_max_packet_len(1472)
            .with_multicast_group("224.0.0.81".parse().expect("group"))
            .with_multicast_port(8848)
            .with_multicast_ttl(1)
    );
    assert_eq!(
        daemon_of(capture!("list_daemon_backup.answer1")),
        backup_daemon()
    );
}
