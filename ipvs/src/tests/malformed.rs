//! A bad answer from the kernel is an error that names the attribute, never
//! a panic.

use netlink_packet_core::ParseableParametrized;
use netlink_packet_generic::GenlHeader;

use crate::constants::*;
use crate::message::{IpvsAttr, IpvsMessage};
use crate::service::attr::ServiceAttr;
use crate::{AddressFamily, Destination, Service};

/// One attribute: type, then value, padded to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&((value.len() + 4) as u16).to_ne_bytes());
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(value);
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    bytes
}

fn parse_error(cmd: u8, bytes: &[u8]) -> String {
    IpvsMessage::parse_with_param(bytes, GenlHeader { cmd, version: 1 })
        .expect_err("must not parse")
        .to_string()
}

#[test]
fn short_weight_names_the_attribute() {
    let dest = nla(IPVS_DEST_ATTR_WEIGHT, &[1, 0]);
    let message = nla(IPVS_CMD_ATTR_DEST, &dest);
    assert_eq!(
        parse_error(IPVS_CMD_NEW_DEST, &message),
        "IPVS_DEST_ATTR_WEIGHT: expected 4 bytes, got 2"
    );
}

#[test]
fn short_port_names_the_attribute() {
    let service = nla(IPVS_SVC_ATTR_PORT, &[80]);
    let message = nla(IPVS_CMD_ATTR_SERVICE, &service);
    assert_eq!(
        parse_error(IPVS_CMD_NEW_SERVICE, &message),
        "IPVS_SVC_ATTR_PORT: expected 2 bytes, got 1"
    );
}

#[test]
fn odd_address_length_names_the_attribute() {
    let dest = nla(IPVS_DEST_ATTR_ADDR, &[198, 18, 1, 11, 0, 0]);
    let message = nla(IPVS_CMD_ATTR_DEST, &dest);
    assert_eq!(
        parse_error(IPVS_CMD_NEW_DEST, &message),
        "IPVS_DEST_ATTR_ADDR: expected 4 or 16 bytes, got 6"
    );
}

#[test]
fn short_counter_names_the_attribute() {
    let stats = nla(IPVS_STATS_ATTR_INBYTES, &[1, 2, 3, 4, 5, 6]);
    let service = nla(IPVS_SVC_ATTR_STATS64, &stats);
    let message = nla(IPVS_CMD_ATTR_SERVICE, &service);
    assert_eq!(
        parse_error(IPVS_CMD_NEW_SERVICE, &message),
        "IPVS_STATS_ATTR_INBYTES: expected 8 bytes, got 6"
    );
}

#[test]
fn flags_of_the_wrong_size_name_the_attribute() {
    let service = nla(IPVS_SVC_ATTR_FLAGS, &[1, 0, 0, 0]);
    let message = nla(IPVS_CMD_ATTR_SERVICE, &service);
    assert_eq!(
        parse_error(IPVS_CMD_NEW_SERVICE, &message),
        "IPVS_SVC_ATTR_FLAGS: expected 8 bytes, got 4"
    );
}

#[test]
fn truncated_nested_block_names_the_block() {
    // An attribute header claiming 40 bytes in an 8-byte block.
    let mut dest = vec![40, 0];
    dest.extend_from_slice(&IPVS_DEST_ATTR_WEIGHT.to_ne_bytes());
    dest.extend_from_slice(&[0; 4]);
    let message = nla(IPVS_CMD_ATTR_DEST, &dest);
    let error = parse_error(IPVS_CMD_NEW_DEST, &message);
    assert!(
        error.starts_with("IPVS_CMD_ATTR_DEST: malformed attribute"),
        "{error}"
    );
}

#[test]
fn non_utf8_scheduler_names_the_attribute() {
    let service = nla(IPVS_SVC_ATTR_SCHED_NAME, &[0xff, 0xfe, 0]);
    let message = nla(IPVS_CMD_ATTR_SERVICE, &service);
    let error = parse_error(IPVS_CMD_NEW_SERVICE, &message);
    assert!(
        error.starts_with("IPVS_SVC_ATTR_SCHED_NAME: not valid UTF-8"),
        "{error}"
    );
}

#[test]
fn unknown_attributes_and_schedulers_are_kept() {
    let mut service = nla(IPVS_SVC_ATTR_AF, &AF_INET.to_ne_bytes());
    service.extend(nla(IPVS_SVC_ATTR_FWMARK, &7u32.to_ne_bytes()));
    service.extend(nla(IPVS_SVC_ATTR_SCHED_NAME, b"twos\0"));
    service.extend(nla(99, b"future"));
    let message = nla(IPVS_CMD_ATTR_SERVICE, &service);
    let parsed = IpvsMessage::parse_with_param(
        &message[..],
        GenlHeader {
            cmd: IPVS_CMD_NEW_SERVICE,
            version: 1,
        },
    )
    .expect("parse");
    let IpvsAttr::Service(attrs) = &parsed.attrs[0] else {
        panic!("no service")
    };
    assert!(matches!(attrs.last(), Some(ServiceAttr::Other(_))));
    let service = Service::from_attrs(attrs).expect("service");
    assert_eq!(service.config.scheduler, "twos");
    assert_eq!(
        service.key,
        crate::ServiceKey::fwmark(7, AddressFamily::Inet)
    );
}

#[test]
fn missing_attributes_are_named() {
    let service = [ServiceAttr::Af(AF_INET), ServiceAttr::Protocol(IPPROTO_TCP)];
    assert_eq!(
        Service::from_attrs(&service)
            .expect_err("incomplete")
            .to_string(),
        "IPVS_SVC_ATTR_ADDR: missing"
    );
    let unknown_family = [ServiceAttr::Af(99), ServiceAttr::Fwmark(1)];
    assert_eq!(
        Service::from_attrs(&unknown_family)
            .expect_err("bad family")
            .to_string(),
        "IPVS_SVC_ATTR_AF: unknown address family 99"
    );
    assert_eq!(
        Destination::from_attrs(&[], AddressFamily::Inet)
            .expect_err("empty")
            .to_string(),
        "IPVS_DEST_ATTR_ADDR: missing"
    );
}

#[test]
fn bad_sync_daemon_answers_name_the_attribute() {
    let daemon = nla(IPVS_DAEMON_ATTR_MCAST_PORT, &[1, 2, 3]);
    let message = nla(IPVS_CMD_ATTR_DAEMON, &daemon);
    assert_eq!(
        parse_error(IPVS_CMD_NEW_DAEMON, &message),
        "IPVS_DAEMON_ATTR_MCAST_PORT: expected 2 bytes, got 3"
    );
    let decode = |attrs: &[(u16, &[u8])]| {
        let block: Vec<u8> = attrs.iter().flat_map(|(k, v)| nla(*k, v)).collect();
        let attrs = crate::daemon::attr::DaemonAttr::parse_all(&block).expect("attributes");
        crate::SyncDaemon::from_attrs(&attrs).map_err(|e| e.to_string())
    };
    let state = |n: u32| n.to_ne_bytes();
    let id = |n: u32| n.to_ne_bytes();
    assert_eq!(
        decode(&[(IPVS_DAEMON_ATTR_STATE, &state(4))]),
        Err("IPVS_DAEMON_ATTR_STATE: 4 is neither master (1) nor backup (2)".into())
    );
    assert_eq!(
        decode(&[
            (IPVS_DAEMON_ATTR_STATE, &state(1)),
            (IPVS_DAEMON_ATTR_SYNC_ID, &id(1))
        ]),
        Err("IPVS_DAEMON_ATTR_MCAST_IFN: missing".into())
    );
    assert_eq!(
        decode(&[
            (IPVS_DAEMON_ATTR_STATE, &state(2)),
            (IPVS_DAEMON_ATTR_MCAST_IFN, b"eth0\0"),
            (IPVS_DAEMON_ATTR_SYNC_ID, &id(256)),
        ]),
        Err("IPVS_DAEMON_ATTR_SYNC_ID: 256 is above 255".into())
    );
}
