//! Property tests: whatever the wire layer emits, it parses back the same;
//! whatever the domain layer puts in a request, it reads back the same;
//! and no byte string makes the parser panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::{DefaultNla, ParseableParametrized};
use netlink_packet_generic::GenlHeader;
use proptest::prelude::*;

use super::emit;
use crate::daemon::attr::DaemonAttr;
use crate::destination::attr::DestAttr;
use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use crate::service::attr::ServiceAttr;
use crate::stats::attr::{Counter, StatsAttr};
use crate::*;

fn counter() -> impl Strategy<Value = Counter> {
    prop_oneof![
        any::<u32>().prop_map(Counter::U32),
        any::<u64>().prop_map(Counter::U64)
    ]
}

fn stats_attr() -> impl Strategy<Value = StatsAttr> {
    prop_oneof![
        counter().prop_map(StatsAttr::Conns),
        counter().prop_map(StatsAttr::InPkts),
        counter().prop_map(StatsAttr::OutPkts),
        counter().prop_map(StatsAttr::InBytes),
        counter().prop_map(StatsAttr::OutBytes),
        counter().prop_map(StatsAttr::Cps),
        counter().prop_map(StatsAttr::InPps),
        counter().prop_map(StatsAttr::OutPps),
        counter().prop_map(StatsAttr::InBps),
        counter().prop_map(StatsAttr::OutBps),
        Just(StatsAttr::Pad(vec![])),
        other_nla(12..100).prop_map(StatsAttr::Other),
    ]
}

/// An attribute of a type this crate does not know.
fn other_nla(kinds: std::ops::Range<u16>) -> impl Strategy<Value = DefaultNla> {
    (kinds, proptest::collection::vec(any::<u8>(), 0..24))
        .prop_map(|(kind, value)| DefaultNla::new(kind, value))
}

/// Scheduler and PE names: the kernel's are short ASCII without NUL.
fn name() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{0,15}"
}

fn service_attr() -> impl Strategy<Value = ServiceAttr> {
    let stats = || proptest::collection::vec(stats_attr(), 0..12);
    prop_oneof![
        any::<u16>().prop_map(ServiceAttr::Af),
        any::<u16>().prop_map(ServiceAttr::Protocol),
        any::<[u8; 16]>().prop_map(ServiceAttr::Addr),
        any::<u16>().prop_map(ServiceAttr::Port),
        any::<u32>().prop_map(ServiceAttr::Fwmark),
        name().prop_map(ServiceAttr::SchedName),
        (any::<u32>(), any::<u32>()).prop_map(|(flags, mask)| ServiceAttr::Flags { flags, mask }),
        any::<u32>().prop_map(ServiceAttr::Timeout),
        any::<[u8; 4]>().prop_map(ServiceAttr::Netmask),
        stats().prop_map(ServiceAttr::Stats),
        name().prop_map(ServiceAttr::PeName),
        stats().prop_map(ServiceAttr::Stats64),
        other_nla(13..200).prop_map(ServiceAttr::Other),
    ]
}

fn dest_attr() -> impl Strategy<Value = DestAttr> {
    let stats = || proptest::collection::vec(stats_attr(), 0..12);
    prop_oneof![
        any::<[u8; 16]>().prop_map(DestAttr::Addr),
        any::<u16>().prop_map(DestAttr::Port),
        any::<u32>().prop_map(DestAttr::FwdMethod),
        any::<u32>().prop_map(DestAttr::Weight),
        any::<u32>().prop_map(DestAttr::UThresh),
        any::<u32>().prop_map(DestAttr::LThresh),
        any::<u32>().prop_map(DestAttr::ActiveConns),
        any::<u32>().prop_map(DestAttr::InactConns),
        any::<u32>().prop_map(DestAttr::PersistConns),
        stats().prop_map(DestAttr::Stats),
        any::<u16>().prop_map(DestAttr::AddrFamily),
        stats().prop_map(DestAttr::Stats64),
        any::<u8>().prop_map(DestAttr::TunType),
        any::<u16>().prop_map(DestAttr::TunPort),
        any::<u16>().prop_map(DestAttr::TunFlags),
        other_nla(16..200).prop_map(DestAttr::Other),
    ]
}

fn daemon_attr() -> impl Strategy<Value = DaemonAttr> {
    prop_oneof![
        any::<u32>().prop_map(DaemonAttr::State),
        name().prop_map(DaemonAttr::McastIfn),
        any::<u32>().prop_map(DaemonAttr::SyncId),
        any::<u16>().prop_map(DaemonAttr::SyncMaxlen),
        any::<[u8; 4]>().prop_map(DaemonAttr::McastGroup),
        any::<[u8; 16]>().prop_map(DaemonAttr::McastGroup6),
        any::<u16>().prop_map(DaemonAttr::McastPort),
        any::<u8>().prop_map(DaemonAttr::McastTtl),
        other_nla(9..200).prop_map(DaemonAttr::Other),
    ]
}

fn ipvs_attr() -> impl Strategy<Value = IpvsAttr> {
    prop_oneof![
        proptest::collection::vec(daemon_attr(), 0..10).prop_map(IpvsAttr::Daemon),
        proptest::collection::vec(service_attr(), 0..14).prop_map(IpvsAttr::Service),
        proptest::collection::vec(dest_attr(), 0..17).prop_map(IpvsAttr::Dest),
        any::<u32>().prop_map(IpvsAttr::TimeoutTcp),
        any::<u32>().prop_map(IpvsAttr::TimeoutTcpFin),
        any::<u32>().prop_map(IpvsAttr::TimeoutUdp),
        other_nla(7..300).prop_map(IpvsAttr::Other),
    ]
}

fn cmd() -> impl Strategy<Value = IpvsCmd> {
    // Every command but SET_INFO, whose attributes are numbered apart.
    (1u8..=17)
        .prop_filter("SET_INFO", |n| *n != 14)
        .prop_map(IpvsCmd::from)
}

fn parse(cmd: IpvsCmd, bytes: &[u8]) -> Result<IpvsMessage, netlink_packet_core::DecodeError> {
    IpvsMessage::parse_with_param(
        bytes,
        GenlHeader {
            cmd: cmd.into(),
            version: 1,
        },
    )
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn service_key() -> impl Strategy<Value = ServiceKey> {
    let protocol = prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp),
        (0u16..=255).prop_map(Protocol::from_number),
    ];
    let family = prop_oneof![Just(AddressFamily::Inet), Just(AddressFamily::Inet6)];
    prop_oneof![
        (protocol, ip(), any::<u16>()).prop_map(|(protocol, ip, port)| ServiceKey::Addr {
            protocol,
            addr: SocketAddr::new(ip, port)
        }),
        (1u32.., family).prop_map(|(mark, family)| ServiceKey::Fwmark { mark, family }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(cmd in cmd(), attrs in proptest::collection::vec(ipvs_attr(), 0..6)) {
        let message = IpvsMessage::new(cmd, attrs);
        let bytes = emit(&message);
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(parse(cmd, &bytes).expect("parse what was emitted"), message);
    }

    #[test]
    fn info_answer_round_trips(version in any::<u32>(), size in any::<u32>()) {
        let message = IpvsMessage::new(
            IpvsCmd::SetInfo,
            vec![IpvsAttr::InfoVersion(version), IpvsAttr::InfoConnTabSize(size)],
        );
        prop_assert_eq!(parse(IpvsCmd::SetInfo, &emit(&message)).expect("parse"), message);
    }

    #[test]
    fn arbitrary_bytes_never_panic(cmd in 0u8..=20, bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(IpvsCmd::from(cmd), &bytes);
    }

    #[test]
    fn damaged_messages_never_panic(
        cmd in cmd(),
        attrs in proptest::collection::vec(ipvs_attr(), 1..4),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = emit(&IpvsMessage::new(cmd, attrs));
        let at = flip.index(bytes.len());
        bytes[at] = byte;
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = parse(cmd, &bytes);
    }

    #[test]
    fn service_requests_read_back(key in service_key(), scheduler in "[a-z]{1,15}", flags in 0u32..64,
                                  timeout in any::<u32>(), pe in proptest::option::of("[a-z]{1,15}"),
                                  plen in 1u32..128, mask in any::<[u8; 4]>()) {
        let netmask = match key.family() {
            AddressFamily::Inet => (mask != [0xff; 4]).then(|| Netmask::V4(mask.into())),
            AddressFamily::Inet6 => Some(Netmask::V6(plen)),
        };
        let config = ServiceConfig {
            scheduler,
            flags: ServiceFlags::from_bits_retain(flags & !crate::constants::IP_VS_SVC_F_HASHED),
            timeout,
            netmask,
            pe_name: pe,
        };
        let mut attrs = key.to_attrs();
        attrs.extend(config.to_attrs(key.family()));
        let message = IpvsMessage::new(IpvsCmd::NewService, vec![IpvsAttr::Service(attrs)]);
        let parsed = parse(IpvsCmd::NewService, &emit(&message)).expect("parse");
        let IpvsAttr::Service(attrs) = &parsed.attrs[0] else { panic!("no service") };
        let service = Service::from_attrs(attrs).expect("service");
        prop_assert_eq!(service.key, key);
        prop_assert_eq!(service.config, config);
    }

    #[test]
    fn sync_daemon_requests_read_back(backup in any::<bool>(), interface in "[a-z0-9]{1,15}", sync_id in any::<u8>(),
                                      maxlen in proptest::option::of(any::<u16>()), group in proptest::option::of(ip()),
                                      port in proptest::option::of(any::<u16>()), ttl in proptest::option::of(any::<u8>())) {
        let state = if backup { SyncState::Backup } else { SyncState::Master };
        let mut daemon = SyncDaemon::new(state, interface, sync_id);
        daemon.max_packet_len = maxlen;
        daemon.multicast_group = group;
        daemon.multicast_port = port;
        daemon.multicast_ttl = ttl;
        let message = IpvsMessage::new(IpvsCmd::NewDaemon, vec![IpvsAttr::Daemon(daemon.to_attrs())]);
        let parsed = parse(IpvsCmd::NewDaemon, &emit(&message)).expect("parse");
        let IpvsAttr::Daemon(attrs) = &parsed.attrs[0] else { panic!("no daemon") };
        prop_assert_eq!(SyncDaemon::from_attrs(attrs).expect("daemon"), daemon);
    }

    #[test]
    fn destination_requests_read_back(ip in ip(), port in any::<u16>(), forward in 0u32..5,
                                      weight in 0..=MAX_WEIGHT, upper in any::<u32>(), lower in any::<u32>(),
                                      tun_type in 0u8..3, tun_port in any::<u16>(), tun_flags in 0u16..4) {
        let key = DestinationKey::new(SocketAddr::new(ip, port));
        let config = DestinationConfig {
            forward: ForwardMethod::from_bits(forward),
            weight,
            upper_threshold: upper,
            lower_threshold: lower,
            tunnel: Tunnel { kind: TunnelType::from_number(tun_type), port: tun_port, flags: TunnelFlags::from_bits_retain(tun_flags) },
        };
        let mut attrs = key.to_attrs();
        attrs.extend(config.to_attrs());
        let message = IpvsMessage::new(IpvsCmd::NewDest, vec![IpvsAttr::Dest(attrs)]);
        let parsed = parse(IpvsCmd::NewDest, &emit(&message)).expect("parse");
        let IpvsAttr::Dest(attrs) = &parsed.attrs[0] else { panic!("no dest") };
        // The family travels with the destination, so the service's does not matter.
        let destination = Destination::from_attrs(attrs, AddressFamily::Inet).expect("destination");
        prop_assert_eq!(destination.key, key);
        prop_assert_eq!(destination.config, config);
    }
    #[test]
    fn destinations_decode_straight_from_the_wire_as_through_the_attributes(
        attrs in proptest::collection::vec(dest_attr(), 0..20),
        family in prop_oneof![Just(AddressFamily::Inet), Just(AddressFamily::Inet6)],
        damage in proptest::option::of((any::<prop::sample::Index>(), any::<u8>(), any::<prop::sample::Index>())),
    ) {
        // The dump decodes with `Destination::decode`, the tests and the
        // wire layer with `DestAttr::parse_all` + `from_attrs`: on any
        // block, intact or damaged, they must give the same destination,
        // or both an error (not always the same one: the attribute walk
        // reads the whole block before any value is checked, the direct
        // decode stops at the first problem in order).
        let message = emit(&IpvsMessage::new(IpvsCmd::NewDest, vec![IpvsAttr::Dest(attrs)]));
        let mut block = message[4..].to_vec();
        if let Some((at, byte, cut)) = damage {
            if !block.is_empty() {
                let at = at.index(block.len());
                block[at] = byte;
            }
            block.truncate(cut.index(block.len() + 1));
        }
        let direct = Destination::decode(&block, family).map_err(|e| e.to_string());
        // Without the counters: what the whole decode gives, where it
        // gives anything (a block damaged only in its counters is
        // still read so).
        let settings = Destination::decode_settings(&block, family).map_err(|e| e.to_string());
        if let Ok(direct) = &direct {
            prop_assert_eq!(settings, Ok((direct.key, direct.config)));
        }
        let through = DestAttr::parse_all(&block)
            .and_then(|attrs| Destination::from_attrs(&attrs, family))
            .map_err(|e| e.to_string());
        match (direct, through) {
            (Ok(direct), Ok(through)) => prop_assert_eq!(direct, through),
            (Err(direct), Err(through)) => {
                prop_assert!(direct.starts_with("IPVS_"), "{}", direct);
                prop_assert!(through.starts_with("IPVS_"), "{}", through);
            }
            (direct, through) => prop_assert!(false, "direct {:?}, through the attributes {:?}", direct, through),
        }
    }
}
