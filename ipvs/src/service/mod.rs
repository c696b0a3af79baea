//! Virtual services: what identifies one ([`ServiceKey`]), what an operator
//! sets on it ([`ServiceConfig`]) and what the kernel reports ([`Service`]).

pub mod attr;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::DecodeError;

use self::attr::ServiceAttr;
use crate::constants::*;
use crate::stats::Stats;

/// The transport protocol of a virtual service.
///
/// Non-exhaustive: a protocol the kernel's IPVS learns later may get a
/// variant of its own instead of [`Protocol::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP (`ipvsadm -t`).
    Tcp,
    /// UDP (`ipvsadm -u`).
    Udp,
    /// SCTP (`ipvsadm --sctp-service`).
    Sctp,
    /// Any other IPPROTO number the kernel reports.
    Other(u16),
}

impl Protocol {
    /// The IPPROTO number.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Sctp => IPPROTO_SCTP,
            Protocol::Other(n) => n,
        }
    }

    /// The protocol with IPPROTO number `n`.
    pub fn from_number(n: u16) -> Self {
        match n {
            IPPROTO_TCP => Protocol::Tcp,
            IPPROTO_UDP => Protocol::Udp,
            IPPROTO_SCTP => Protocol::Sctp,
            n => Protocol::Other(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Sctp => f.write_str("SCTP"),
            Protocol::Other(n) => write!(f, "IPPROTO_{n}"),
        }
    }
}

/// The address family of a service or destination.
///
/// Exhaustive on purpose: IPVS knows these two families only, and a caller
/// may match on them without a fallback arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    /// IPv4 (`AF_INET`).
    Inet,
    /// IPv6 (`AF_INET6`).
    Inet6,
}

impl AddressFamily {
    /// The `AF_*` number.
    pub fn number(self) -> u16 {
        match self {
            AddressFamily::Inet => AF_INET,
            AddressFamily::Inet6 => AF_INET6,
        }
    }

    /// The family with `AF_*` number `n`, if IPVS supports it.
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            AF_INET => Some(AddressFamily::Inet),
            AF_INET6 => Some(AddressFamily::Inet6),
            _ => None,
        }
    }

    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        }
    }
}

/// What identifies a virtual service: protocol, address and port, or a
/// firewall mark (with the address family the mark applies to).
///
/// Exhaustive on purpose: these are the two ways the IPVS uapi names a
/// service, and a caller may match on them without a fallback arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// `ipvsadm -t|-u|--sctp-service ADDR:PORT`
    Addr {
        /// The transport protocol.
        protocol: Protocol,
        /// The virtual IP and port.
        addr: SocketAddr,
    },
    /// `ipvsadm -f MARK` (with `-6` for IPv6).
    Fwmark {
        /// The firewall mark.
        mark: u32,
        /// The family of the packets the mark selects.
        family: AddressFamily,
    },
}

impl ServiceKey {
    /// A TCP service on `addr`.
    pub fn tcp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr,
        }
    }

    /// A UDP service on `addr`.
    pub fn udp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
        }
    }

    /// An SCTP service on `addr`.
    pub fn sctp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr,
        }
    }

    /// A firewall-mark service.
    pub fn fwmark(mark: u32, family: AddressFamily) -> Self {
        ServiceKey::Fwmark { mark, family }
    }

    /// The address family of the service.
    pub fn family(&self) -> AddressFamily {
        match self {
            ServiceKey::Addr { addr, .. } => AddressFamily::of(addr.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// The attributes that name this service in a request.
    pub(crate) fn to_attrs(self) -> Vec<ServiceAttr> {
        let mut attrs = vec![ServiceAttr::Af(self.family().number())];
        match self {
            ServiceKey::Addr { protocol, addr } => {
                attrs.push(ServiceAttr::Protocol(protocol.number()));
                attrs.push(ServiceAttr::Addr(ip_to_bytes(addr.ip())));
                attrs.push(ServiceAttr::Port(addr.port()));
            }
            ServiceKey::Fwmark { mark, .. } => attrs.push(ServiceAttr::Fwmark(mark)),
        }
        attrs
    }

    pub(crate) fn from_attrs(attrs: &[ServiceAttr]) -> Result<Self, DecodeError> {
        let mut af = None;
        let (mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None);
        for attr in attrs {
            match attr {
                ServiceAttr::Af(v) => af = Some(*v),
                ServiceAttr::Protocol(v) => protocol = Some(*v),
                ServiceAttr::Addr(v) => addr = Some(*v),
                ServiceAttr::Port(v) => port = Some(*v),
                ServiceAttr::Fwmark(v) => fwmark = Some(*v),
                _ => {}
            }
        }
        let af = af.ok_or_else(|| DecodeError::from("IPVS_SVC_ATTR_AF: missing"))?;
        let family = AddressFamily::from_number(af).ok_or_else(|| {
            DecodeError::from(format!("IPVS_SVC_ATTR_AF: unknown address family {af}"))
        })?;
        // The kernel sends FWMARK instead of protocol/address/port for
        // firewall-mark services (ip_vs_genl_fill_service).
        if let Some(mark) = fwmark.filter(|m| *m != 0) {
            return Ok(ServiceKey::Fwmark { mark, family });
        }
        let protocol =
            protocol.ok_or_else(|| DecodeError::from("IPVS_SVC_ATTR_PROTOCOL: missing"))?;
        let addr = addr.ok_or_else(|| DecodeError::from("IPVS_SVC_ATTR_ADDR: missing"))?;
        let port = port.ok_or_else(|| DecodeError::from("IPVS_SVC_ATTR_PORT: missing"))?;
        Ok(ServiceKey::Addr {
            protocol: Protocol::from_number(protocol),
            addr: SocketAddr::new(ip_from_bytes(family, &addr), port),
        })
    }
}

impl fmt::Display for ServiceKey {
    /// Like `ipvsadm -Ln`: `TCP  198.18.0.10:80`, `UDP  [2001:db8::10]:53`,
    /// `FWM  1` (`FWM  1 IPv6`), with a single space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr } => write!(f, "{protocol} {addr}"),
            ServiceKey::Fwmark {
                mark,
                family: AddressFamily::Inet,
            } => write!(f, "FWM {mark}"),
            ServiceKey::Fwmark {
                mark,
                family: AddressFamily::Inet6,
            } => {
                write!(f, "FWM {mark} IPv6")
            }
        }
    }
}

bitflags::bitflags! {
    /// Virtual service flags (`IP_VS_SVC_F_*` in `include/uapi/linux/ip_vs.h`).
    ///
    /// Bits this crate has no name for are kept as the kernel sent them
    /// (`from_bits_retain`), so a service read and written back keeps them.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct ServiceFlags: u32 {
        /// `IP_VS_SVC_F_PERSISTENT` (`ipvsadm -p`).
        const PERSISTENT = IP_VS_SVC_F_PERSISTENT;
        /// `IP_VS_SVC_F_ONEPACKET` (`ipvsadm -o`, UDP only).
        const ONE_PACKET = IP_VS_SVC_F_ONEPACKET;
        /// `IP_VS_SVC_F_SCHED1`: `sh-fallback` for sh, `mh-fallback` for mh.
        const SCHED1 = IP_VS_SVC_F_SCHED1;
        /// `IP_VS_SVC_F_SCHED2`: `sh-port` for sh, `mh-port` for mh.
        const SCHED2 = IP_VS_SVC_F_SCHED2;
        /// `IP_VS_SVC_F_SCHED3`: unused by the kernel's schedulers today.
        const SCHED3 = IP_VS_SVC_F_SCHED3;
        // Any other bit a newer kernel may define.
        const _ = !0;
    }
}

impl ServiceFlags {
    /// The scheduler flags as ipvsadm names them for `scheduler`
    /// (`-b sh-fallback,sh-port`); generic `flag-1`.. for other schedulers.
    pub fn scheduler_flag_names(self, scheduler: &str) -> Vec<String> {
        let names: [&str; 3] = match scheduler {
            "sh" => ["sh-fallback", "sh-port", "flag-3"],
            "mh" => ["mh-fallback", "mh-port", "flag-3"],
            _ => ["flag-1", "flag-2", "flag-3"],
        };
        [Self::SCHED1, Self::SCHED2, Self::SCHED3]
            .into_iter()
            .zip(names)
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| name.to_string())
            .collect()
    }
}

/// The persistence netmask: which client addresses share a persistence
/// template (`ipvsadm -M`).
///
/// Exhaustive on purpose: one form per address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    /// An IPv4 mask such as 255.255.255.0.
    V4(Ipv4Addr),
    /// An IPv6 prefix length (1..=128).
    V6(u32),
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(mask) => mask.fmt(f),
            Netmask::V6(plen) => plen.fmt(f),
        }
    }
}

/// What an operator sets on a virtual service (`ipvsadm -A` / `-E`).
///
/// Non-exhaustive, as the kernel may add service settings: make one with
/// [`ServiceConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// Scheduler name (`rr`, `wrr`, `wlc`, `sh`, `mh`, ...). Kept as a
    /// string: a kernel may have schedulers this crate has never heard of.
    pub scheduler: String,
    /// Persistence, one-packet and scheduler flags. The kernel-internal
    /// `IP_VS_SVC_F_HASHED` is never part of it.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (meaningful with `PERSISTENT`).
    pub timeout: u32,
    /// Persistence netmask; `None` is the whole address (/32 or /128), the
    /// default ipvsadm sends.
    pub netmask: Option<Netmask>,
    /// Persistence engine (`--pe sip`).
    pub pe_name: Option<String>,
}

impl ServiceConfig {
    /// A non-persistent service with `scheduler` and no flags.
    pub fn new(scheduler: impl Into<String>) -> Self {
        ServiceConfig {
            scheduler: scheduler.into(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: None,
            pe_name: None,
        }
    }

    /// Makes the service persistent for `timeout` seconds (`ipvsadm -p`).
    pub fn persistent(mut self, timeout: u32) -> Self {
        self.flags |= ServiceFlags::PERSISTENT;
        self.timeout = timeout;
        self
    }

    /// Sets the flags (`ipvsadm -p`, `-o`, `-b`), replacing the ones set;
    /// with [`ServiceFlags::PERSISTENT`] the timeout stays as it is.
    pub fn with_flags(mut self, flags: ServiceFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the persistence netmask (`ipvsadm -M`).
    pub fn with_netmask(mut self, netmask: Netmask) -> Self {
        self.netmask = Some(netmask);
        self
    }

    /// Sets the persistence engine (`ipvsadm --pe NAME`).
    pub fn with_pe_name(mut self, pe_name: impl Into<String>) -> Self {
        self.pe_name = Some(pe_name.into());
        self
    }

    /// The full-entry attributes the kernel requires on NEW/SET_SERVICE.
    pub(crate) fn to_attrs(&self, family: AddressFamily) -> Vec<ServiceAttr> {
        let mut attrs = vec![ServiceAttr::SchedName(self.scheduler.clone())];
        if let Some(pe) = &self.pe_name {
            attrs.push(ServiceAttr::PeName(pe.clone()));
        }
        attrs.push(ServiceAttr::Flags {
            flags: self.flags.bits(),
            mask: !0,
        });
        attrs.push(ServiceAttr::Timeout(self.timeout));
        attrs.push(ServiceAttr::Netmask(netmask_to_bytes(self.netmask, family)));
        attrs
    }
}

/// A virtual service as the kernel reports it (`ipvsadm -Ln --stats`).
///
/// Non-exhaustive, as the kernel may report more about a service: make one
/// with [`Service::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Service {
    /// What identifies it.
    pub key: ServiceKey,
    /// Its settings.
    pub config: ServiceConfig,
    /// Its traffic counters.
    pub stats: Stats,
}

impl Service {
    /// A service with zero counters, as the kernel reports a new one.
    pub fn new(key: ServiceKey, config: ServiceConfig) -> Self {
        Service {
            key,
            config,
            stats: Stats::default(),
        }
    }

    /// The service with counters `stats`.
    pub fn with_stats(mut self, stats: Stats) -> Self {
        self.stats = stats;
        self
    }

    /// Builds a service from the attributes of a GET_SERVICE answer.
    pub fn from_attrs(attrs: &[ServiceAttr]) -> Result<Self, DecodeError> {
        let key = ServiceKey::from_attrs(attrs)?;
        let family = key.family();
        let mut scheduler = None;
        let mut config = ServiceConfig::new(String::new());
        let (mut stats32, mut stats64) = (None, None);
        for attr in attrs {
            match attr {
                ServiceAttr::SchedName(name) => scheduler = Some(name.clone()),
                ServiceAttr::Flags { flags, .. } => {
                    config.flags = ServiceFlags::from_bits_retain(flags & !IP_VS_SVC_F_HASHED)
                }
                ServiceAttr::Timeout(t) => config.timeout = *t,
                ServiceAttr::Netmask(bytes) => config.netmask = netmask_from_bytes(*bytes, family),
                ServiceAttr::PeName(pe) => config.pe_name = Some(pe.clone()),
                ServiceAttr::Stats(s) => stats32 = Some(s),
                ServiceAttr::Stats64(s) => stats64 = Some(s),
                _ => {}
            }
        }
        config.scheduler =
            scheduler.ok_or_else(|| DecodeError::from("IPVS_SVC_ATTR_SCHED_NAME: missing"))?;
        let stats = stats64
            .or(stats32)
            .map(|s| Stats::from_attrs(s))
            .unwrap_or_default();
        Ok(Service { key, config, stats })
    }
}

pub(crate) fn ip_to_bytes(ip: IpAddr) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => bytes = v6.octets(),
    }
    bytes
}

pub(crate) fn ip_from_bytes(family: AddressFamily, bytes: &[u8; 16]) -> IpAddr {
    match family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::from(*bytes)),
    }
}

// IPv4 masks travel in network order (ipvsadm puts the __be32 it parsed);
// IPv6 prefix lengths as a host-order u32 (the kernel casts the same field).
fn netmask_to_bytes(netmask: Option<Netmask>, family: AddressFamily) -> [u8; 4] {
    match (netmask, family) {
        (Some(Netmask::V4(mask)), _) => mask.octets(),
        (Some(Netmask::V6(plen)), _) => plen.to_ne_bytes(),
        (None, AddressFamily::Inet) => [0xff; 4],
        (None, AddressFamily::Inet6) => 128u32.to_ne_bytes(),
    }
}

fn netmask_from_bytes(bytes: [u8; 4], family: AddressFamily) -> Option<Netmask> {
    match family {
        AddressFamily::Inet if bytes == [0xff; 4] => None,
        AddressFamily::Inet => Some(Netmask::V4(Ipv4Addr::from(bytes))),
        AddressFamily::Inet6 => match u32::from_ne_bytes(bytes) {
            128 => None,
            plen => Some(Netmask::V6(plen)),
        },
    }
}
