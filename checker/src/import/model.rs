//! The converted config before it is written: what both importers build
//! and [`super::yaml`] writes. Each node keeps the comments that go above
//! it in the YAML (where it came from, and what differs).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::Mode;

/// A whole checker config.
#[derive(Debug, Clone)]
pub struct Config {
    /// `mode:`.
    pub mode: Mode,
    /// `state_file:` (managed mode).
    pub state_file: Option<String>,
    /// `maintenance_dir:`.
    pub maintenance_dir: Option<String>,
    /// Comment lines at the top of the file.
    pub header: Vec<String>,
    /// `services:`.
    pub services: Vec<Service>,
}

/// What an importer read from a source file.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Its virtual services.
    pub services: Vec<Service>,
    /// Its directory of maintenance files (ldirectord's `maintenancedir`).
    pub maintenance_dir: Option<String>,
}

/// How a service is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAddr {
    /// `protocol:` and `address:`.
    Addr {
        /// `tcp`, `udp` or `sctp`.
        protocol: &'static str,
        /// VIP and port.
        address: SocketAddr,
    },
    /// `fwmark:` (and `family: ipv6` for an IPv6 one).
    Fwmark {
        /// The mark.
        mark: u32,
        /// Whether the service is IPv6.
        ipv6: bool,
    },
}

/// One `services:` entry.
#[derive(Debug, Clone)]
pub struct Service {
    /// Comment lines above it.
    pub comments: Vec<String>,
    /// Which service.
    pub addr: ServiceAddr,
    /// `scheduler:` (managed mode).
    pub scheduler: Option<String>,
    /// `scheduler_flags:` (managed mode).
    pub scheduler_flags: Vec<&'static str>,
    /// `one_packet: true` (managed mode).
    pub one_packet: bool,
    /// `persistence:` (managed mode).
    pub persistence: Option<u32>,
    /// `persistence_netmask:` (managed mode).
    pub persistence_netmask: Option<String>,
    /// `quorum:`.
    pub quorum: Option<Quorum>,
    /// `real_servers:`.
    pub real_servers: Vec<RealServer>,
}

/// `quorum:` of a service.
#[derive(Debug, Clone)]
pub struct Quorum {
    /// Comment lines above it.
    pub comments: Vec<String>,
    /// `min_up:`.
    pub min_up: u32,
    /// `sorry_server:`.
    pub sorry_server: Option<SorryServer>,
}

/// `quorum.sorry_server:`.
#[derive(Debug, Clone)]
pub struct SorryServer {
    /// `address:`: `IP`, `IP:PORT` or `[IPv6]:PORT`.
    pub address: String,
    /// `weight:`.
    pub weight: u32,
    /// `forward:` (managed mode).
    pub forward: Option<Forward>,
}

/// `forward:` of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// LVS-NAT (`ipvsadm -m`).
    Nat,
    /// LVS-DR (`ipvsadm -g`).
    Dr,
    /// LVS-TUN (`ipvsadm -i`).
    Tun,
}

impl Forward {
    /// The config's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Nat => "nat",
            Forward::Dr => "dr",
            Forward::Tun => "tun",
        }
    }
}

/// One `real_servers:` entry.
#[derive(Debug, Clone)]
pub struct RealServer {
    /// Comment lines above it.
    pub comments: Vec<String>,
    /// `address:`: `IP`, `IP:PORT` or `[IPv6]:PORT`.
    pub address: String,
    /// `weight:`.
    pub weight: u32,
    /// `forward:` (managed mode).
    pub forward: Option<Forward>,
    /// `upper_threshold:` (managed mode).
    pub upper_threshold: Option<u32>,
    /// `lower_threshold:` (managed mode).
    pub lower_threshold: Option<u32>,
    /// `check_address:`.
    pub check_address: Option<SocketAddr>,
    /// `source_address:`.
    pub source_address: Option<IpAddr>,
    /// `interval:`, `timeout:`, `rise:`, `fall:`.
    pub timing: Timing,
    /// `check:` when there is one, `checks:` (all must pass) when several.
    pub checks: Vec<Check>,
}

/// Probe timing, always written out: the checker's defaults are not the
/// source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `interval:`.
    pub interval: Duration,
    /// `timeout:`.
    pub timeout: Duration,
    /// `rise:`.
    pub rise: u32,
    /// `fall:`.
    pub fall: u32,
}

/// `check:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `type:` and what goes with it.
    pub kind: CheckKind,
    /// `port:`.
    pub port: Option<u16>,
}

/// The check types the checker has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `type: tcp`.
    Tcp,
    /// `type: http`.
    Http(Http),
    /// `type: https` with `insecure_skip_verify: true`: neither keepalived's
    /// SSL_GET nor ldirectord verifies the certificate.
    Https(Http),
    /// `type: tcp` with `preset:` (`smtp`, `imap`, `pop3`, `mysql`).
    Preset(&'static str),
    /// `type: tcp` with `steps:`.
    Conversation(Vec<Step>),
    /// `type: dns`.
    Dns {
        /// `name:`.
        name: String,
        /// `query_type:`.
        query_type: String,
        /// `answer_address:`.
        answer_address: Option<IpAddr>,
        /// `answer:` (a regex).
        answer: Option<String>,
    },
    /// `type: icmp`.
    Icmp,
    /// `type: udp`.
    Udp {
        /// `payload_hex:`: pairs of hex digits (an empty datagram unless set).
        payload_hex: Option<String>,
        /// `expect:` (a regex over the reply's bytes).
        expect: Option<String>,
    },
    /// `type: exec`.
    Exec {
        /// `command:`: the program and its arguments.
        command: Vec<String>,
        /// `dynamic_weight: true` (keepalived's `misc_dynamic`).
        dynamic_weight: bool,
    },
}

/// The request of an http or https check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Http {
    /// `method:` (GET unless set).
    pub method: Option<String>,
    /// `path:`.
    pub path: Option<String>,
    /// `host:`.
    pub host: Option<String>,
    /// `expect_status:` entries: `200` or `200-299`.
    pub expect_status: Vec<String>,
    /// `body:` (a regex).
    pub body: Option<String>,
    /// `body_md5:`: 32 lowercase hex digits.
    pub body_md5: Option<String>,
}

/// One `steps:` entry of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `{send: TEXT}`.
    Send(String),
    /// `{expect: REGEX}`.
    Expect(String),
}

/// `IP:PORT`, `[IPv6]:PORT`, or the bare IP when `port` is `None`.
pub fn address(ip: IpAddr, port: Option<u16>) -> String {
    match port {
        Some(port) => SocketAddr::new(ip, port).to_string(),
        None => ip.to_string(),
    }
}
