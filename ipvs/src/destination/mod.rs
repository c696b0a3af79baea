//! Destinations (real servers) of a virtual service: what identifies one
//! ([`DestinationKey`]), what an operator sets ([`DestinationConfig`]) and
//! what the kernel reports ([`Destination`]).

pub mod attr;

use std::fmt;
use std::net::SocketAddr;

use netlink_packet_core::DecodeError;

use self::attr::DestAttr;
use crate::constants::*;
use crate::service::{ip_from_bytes, ip_to_bytes, AddressFamily};
use crate::stats::Stats;

/// The largest weight the kernel accepts: it keeps weights in an `int` and
/// refuses negative ones.
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// What identifies a destination within its service: the real server's
/// address and port (port 0 for firewall-mark services that keep the
/// client's port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationKey {
    /// The real server's address and port (`ipvsadm -r RIP:PORT`).
    pub addr: SocketAddr,
}

impl DestinationKey {
    /// The destination `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        DestinationKey { addr }
    }

    /// The address family of the real server (it may differ from the
    /// service's for tunnelled destinations).
    pub fn family(&self) -> AddressFamily {
        AddressFamily::of(self.addr.ip())
    }

    /// In ipvsadm's order, so requests match its bytes.
    pub(crate) fn to_attrs(self) -> Vec<DestAttr> {
        vec![
            DestAttr::AddrFamily(self.family().number()),
            DestAttr::Addr(ip_to_bytes(self.addr.ip())),
            DestAttr::Port(self.addr.port()),
        ]
    }
}

impl fmt::Display for DestinationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

/// How packets reach the real server.
///
/// Non-exhaustive: a method the kernel adds later may get a variant of its
/// own instead of [`ForwardMethod::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardMethod {
    /// NAT (`-m`, `Masq` in `ipvsadm -Ln`).
    Masquerade,
    /// The director itself (`Local`).
    LocalNode,
    /// IP-in-IP or GUE/GRE tunnel (`-i`, `Tunnel`).
    Tunnel,
    /// Direct routing (`-g`, `Route`).
    DirectRoute,
    /// Cache bypass (`Bypass`).
    Bypass,
    /// A value this crate does not know.
    Other(u32),
}

impl ForwardMethod {
    /// The `IP_VS_CONN_F_*` bits.
    pub fn bits(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => IP_VS_CONN_F_MASQ,
            ForwardMethod::LocalNode => IP_VS_CONN_F_LOCALNODE,
            ForwardMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
            ForwardMethod::DirectRoute => IP_VS_CONN_F_DROUTE,
            ForwardMethod::Bypass => IP_VS_CONN_F_BYPASS,
            ForwardMethod::Other(bits) => bits,
        }
    }

    /// The method encoded in the low bits of `flags`.
    pub fn from_bits(flags: u32) -> Self {
        match flags & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => ForwardMethod::Masquerade,
            IP_VS_CONN_F_LOCALNODE => ForwardMethod::LocalNode,
            IP_VS_CONN_F_TUNNEL => ForwardMethod::Tunnel,
            IP_VS_CONN_F_DROUTE => ForwardMethod::DirectRoute,
            IP_VS_CONN_F_BYPASS => ForwardMethod::Bypass,
            other => ForwardMethod::Other(other),
        }
    }
}

impl fmt::Display for ForwardMethod {
    /// The names of ipvsadm's `Forward` column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardMethod::Masquerade => f.write_str("Masq"),
            ForwardMethod::LocalNode => f.write_str("Local"),
            ForwardMethod::Tunnel => f.write_str("Tunnel"),
            ForwardMethod::DirectRoute => f.write_str("Route"),
            ForwardMethod::Bypass => f.write_str("Bypass"),
            ForwardMethod::Other(bits) => write!(f, "fwd-{bits}"),
        }
    }
}

/// Encapsulation of a tunnelled destination (`--tun-type`).
///
/// Non-exhaustive: a type the kernel adds later may get a variant of its
/// own instead of [`TunnelType::Other`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TunnelType {
    /// IP-in-IP, the default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation.
    Gue,
    /// GRE.
    Gre,
    /// A value this crate does not know.
    Other(u8),
}

impl TunnelType {
    /// The `IP_VS_CONN_F_TUNNEL_TYPE_*` value.
    pub fn number(self) -> u8 {
        match self {
            TunnelType::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
            TunnelType::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            TunnelType::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
            TunnelType::Other(n) => n,
        }
    }

    /// The tunnel type numbered `n`.
    pub fn from_number(n: u8) -> Self {
        match n {
            IP_VS_CONN_F_TUNNEL_TYPE_IPIP => TunnelType::Ipip,
            IP_VS_CONN_F_TUNNEL_TYPE_GUE => TunnelType::Gue,
            IP_VS_CONN_F_TUNNEL_TYPE_GRE => TunnelType::Gre,
            n => TunnelType::Other(n),
        }
    }
}

impl fmt::Display for TunnelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelType::Ipip => f.write_str("ipip"),
            TunnelType::Gue => f.write_str("gue"),
            TunnelType::Gre => f.write_str("gre"),
            TunnelType::Other(n) => write!(f, "tun-{n}"),
        }
    }
}

bitflags::bitflags! {
    /// Encapsulation flags of a GUE or GRE tunnel
    /// (`IP_VS_TUNNEL_ENCAP_FLAG_*` in `include/uapi/linux/ip_vs.h`); no
    /// flag is `IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM` (`--tun-nocsum`).
    ///
    /// Bits this crate has no name for are kept as the kernel sent them.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct TunnelFlags: u16 {
        /// `IP_VS_TUNNEL_ENCAP_FLAG_CSUM` (`--tun-csum`).
        const CSUM = IP_VS_TUNNEL_ENCAP_FLAG_CSUM;
        /// `IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM` (`--tun-remcsum`).
        const REMCSUM = IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM;
        // Any other bit a newer kernel may define.
        const _ = !0;
    }
}

/// Tunnel settings of a destination; only `Tunnel` destinations use them,
/// but the kernel reports (and keeps) them for every destination.
///
/// Non-exhaustive, as the kernel may add tunnel settings: make one with
/// [`Tunnel::new`] and the `with_*` methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Tunnel {
    /// Encapsulation (`--tun-type`).
    pub kind: TunnelType,
    /// UDP port for GUE (`--tun-port`).
    pub port: u16,
    /// Encapsulation flags (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
    pub flags: TunnelFlags,
}

impl Tunnel {
    /// A tunnel of type `kind`, port 0 and no flags.
    pub fn new(kind: TunnelType) -> Self {
        Tunnel {
            kind,
            ..Tunnel::default()
        }
    }

    /// Sets the UDP port of a GUE tunnel (`--tun-port`).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the encapsulation flags.
    pub fn with_flags(mut self, flags: TunnelFlags) -> Self {
        self.flags = flags;
        self
    }
}

/// What an operator sets on a destination (`ipvsadm -a` / `-e`).
///
/// Non-exhaustive, as the kernel may add destination settings: make one
/// with [`DestinationConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DestinationConfig {
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Weight, 0 (quiescent: no new connections) to [`MAX_WEIGHT`].
    pub weight: u32,
    /// Upper threshold of connections (`-x`), 0 for none.
    pub upper_threshold: u32,
    /// Lower threshold of connections (`-y`), 0 for none.
    pub lower_threshold: u32,
    /// Tunnel settings.
    pub tunnel: Tunnel,
}

impl DestinationConfig {
    /// A destination with `forward` and `weight`, no thresholds.
    pub fn new(forward: ForwardMethod, weight: u32) -> Self {
        DestinationConfig {
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Tunnel::default(),
        }
    }

    /// Sets the weight (`-w`), keeping the other settings.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the upper (`-x`) and lower (`-y`) connection thresholds, 0 for
    /// none.
    pub fn with_thresholds(mut self, upper: u32, lower: u32) -> Self {
        self.upper_threshold = upper;
        self.lower_threshold = lower;
        self
    }

    /// Sets the tunnel settings (`--tun-type`, `--tun-port`, `--tun-*csum`).
    pub fn with_tunnel(mut self, tunnel: Tunnel) -> Self {
        self.tunnel = tunnel;
        self
    }

    /// The full entry the kernel requires on NEW/SET_DEST: it answers
    /// EINVAL when FWD_METHOD, WEIGHT, U_THRESH or L_THRESH is missing, and
    /// resets tunnel settings that are left out. In ipvsadm's order.
    pub(crate) fn to_attrs(self) -> Vec<DestAttr> {
        vec![
            DestAttr::FwdMethod(self.forward.bits()),
            DestAttr::Weight(self.weight),
            DestAttr::TunType(self.tunnel.kind.number()),
            DestAttr::TunPort(self.tunnel.port),
            DestAttr::TunFlags(self.tunnel.flags.bits()),
            DestAttr::UThresh(self.upper_threshold),
            DestAttr::LThresh(self.lower_threshold),
        ]
    }
}

/// A destination as the kernel reports it (`ipvsadm -Ln --stats
/// --persistent-conn --thresholds`).
///
/// Non-exhaustive, as the kernel may report more about a destination: make
/// one with [`Destination::new`] and set the counters on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Destination {
    /// What identifies it within its service.
    pub key: DestinationKey,
    /// Its settings.
    pub config: DestinationConfig,
    /// Active (established) connections.
    pub active_conns: u32,
    /// Inactive connections (any other state).
    pub inactive_conns: u32,
    /// Persistence templates pointing at it.
    pub persistent_conns: u32,
    /// Its traffic counters.
    pub stats: Stats,
}

impl Destination {
    /// A destination with no connections and zero counters, as the kernel
    /// reports a new one.
    pub fn new(key: DestinationKey, config: DestinationConfig) -> Self {
        Destination {
            key,
            config,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
        }
    }

    /// The destination with `active`, `inactive` and `persistent`
    /// connections (the `ActiveConn`, `InActConn` and `-Ln
    /// --persistent-conn` columns).
    pub fn with_conns(mut self, active: u32, inactive: u32, persistent: u32) -> Self {
        self.active_conns = active;
        self.inactive_conns = inactive;
        self.persistent_conns = persistent;
        self
    }

    /// The destination with counters `stats`.
    pub fn with_stats(mut self, stats: Stats) -> Self {
        self.stats = stats;
        self
    }

    /// Builds a destination from the attributes of a GET_DEST answer;
    /// `service_family` is used when the kernel predates
    /// `IPVS_DEST_ATTR_ADDR_FAMILY`.
    pub fn from_attrs(
        attrs: &[DestAttr],
        service_family: AddressFamily,
    ) -> Result<Self, DecodeError> {
        let mut parts = Parts::default();
        for attr in attrs {
            parts.add(attr)?;
        }
        parts.finish(service_family)
    }

    /// The destination in the value of an `IPVS_CMD_ATTR_DEST` attribute,
    /// read straight from the wire: what [`Destination::from_attrs`] builds
    /// from [`DestAttr::parse_all`], without the vectors of attributes
    /// between (a 1,000 x 10 table dump decodes 10,000 of them).
    pub(crate) fn decode(buf: &[u8], service_family: AddressFamily) -> Result<Self, DecodeError> {
        Parts::decode(buf, Counters::Decoded)?.finish(service_family)
    }

    /// What identifies the destination in the value of an
    /// `IPVS_CMD_ATTR_DEST` attribute, and its settings: all a weight
    /// writer compares, read every second in a large table; its counters
    /// are skipped, not decoded.
    pub(crate) fn decode_settings(
        buf: &[u8],
        service_family: AddressFamily,
    ) -> Result<(DestinationKey, DestinationConfig), DecodeError> {
        let destination = Parts::decode(buf, Counters::Skipped)?.finish(service_family)?;
        Ok((destination.key, destination.config))
    }
}

/// Whether a destination's counters are decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counters {
    Decoded,
    Skipped,
}

/// A destination being put together from its attributes.
#[derive(Default)]
struct Parts {
    addr: Option<[u8; 16]>,
    port: Option<u16>,
    family: Option<AddressFamily>,
    forward: Option<ForwardMethod>,
    weight: Option<u32>,
    upper_threshold: u32,
    lower_threshold: u32,
    tunnel: Tunnel,
    active: u32,
    inactive: u32,
    persistent: u32,
    stats32: Option<Stats>,
    stats64: Option<Stats>,
}

impl Parts {
    /// The parts of the destination in `buf`, with or without its
    /// counters.
    fn decode(buf: &[u8], counters: Counters) -> Result<Self, DecodeError> {
        let mut parts = Parts::default();
        for attr in crate::nla::attributes("IPVS_CMD_ATTR_DEST", buf) {
            let (kind, value) = attr?;
            match kind {
                IPVS_DEST_ATTR_STATS64 | IPVS_DEST_ATTR_STATS if counters == Counters::Skipped => {}
                // Counters go into `Stats` directly, not through the
                // vector `DestAttr::Stats64` would hold them in.
                IPVS_DEST_ATTR_STATS64 => {
                    parts.stats64 = Some(Stats::decode("IPVS_DEST_ATTR_STATS64", value)?)
                }
                IPVS_DEST_ATTR_STATS => {
                    parts.stats32 = Some(Stats::decode("IPVS_DEST_ATTR_STATS", value)?)
                }
                _ => parts.add(&DestAttr::parse(kind, value)?)?,
            }
        }
        Ok(parts)
    }

    fn add(&mut self, attr: &DestAttr) -> Result<(), DecodeError> {
        match attr {
            DestAttr::Addr(a) => self.addr = Some(*a),
            DestAttr::Port(p) => self.port = Some(*p),
            DestAttr::AddrFamily(af) => {
                self.family = Some(AddressFamily::from_number(*af).ok_or_else(|| {
                    DecodeError::from(format!(
                        "IPVS_DEST_ATTR_ADDR_FAMILY: unknown address family {af}"
                    ))
                })?)
            }
            DestAttr::FwdMethod(m) => self.forward = Some(ForwardMethod::from_bits(*m)),
            DestAttr::Weight(w) => self.weight = Some(*w),
            DestAttr::UThresh(t) => self.upper_threshold = *t,
            DestAttr::LThresh(t) => self.lower_threshold = *t,
            DestAttr::ActiveConns(n) => self.active = *n,
            DestAttr::InactConns(n) => self.inactive = *n,
            DestAttr::PersistConns(n) => self.persistent = *n,
            DestAttr::Stats(s) => self.stats32 = Some(Stats::from_attrs(s)),
            DestAttr::Stats64(s) => self.stats64 = Some(Stats::from_attrs(s)),
            DestAttr::TunType(t) => self.tunnel.kind = TunnelType::from_number(*t),
            DestAttr::TunPort(p) => self.tunnel.port = *p,
            DestAttr::TunFlags(f) => self.tunnel.flags = TunnelFlags::from_bits_retain(*f),
            DestAttr::Other(_) => {}
        }
        Ok(())
    }

    fn finish(self, service_family: AddressFamily) -> Result<Destination, DecodeError> {
        let addr = self
            .addr
            .ok_or_else(|| DecodeError::from("IPVS_DEST_ATTR_ADDR: missing"))?;
        let port = self
            .port
            .ok_or_else(|| DecodeError::from("IPVS_DEST_ATTR_PORT: missing"))?;
        let forward = self
            .forward
            .ok_or_else(|| DecodeError::from("IPVS_DEST_ATTR_FWD_METHOD: missing"))?;
        let weight = self
            .weight
            .ok_or_else(|| DecodeError::from("IPVS_DEST_ATTR_WEIGHT: missing"))?;
        let mut config = DestinationConfig::new(forward, weight);
        config.upper_threshold = self.upper_threshold;
        config.lower_threshold = self.lower_threshold;
        config.tunnel = self.tunnel;
        let family = self.family.unwrap_or(service_family);
        Ok(Destination {
            key: DestinationKey::new(SocketAddr::new(ip_from_bytes(family, &addr), port)),
            config,
            active_conns: self.active,
            inactive_conns: self.inactive,
            persistent_conns: self.persistent,
            stats: self.stats64.or(self.stats32).unwrap_or_default(),
        })
    }
}
