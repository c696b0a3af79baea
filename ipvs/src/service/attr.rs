//! The attributes nested in `IPVS_CMD_ATTR_SERVICE`, as they are on the wire.

use netlink_packet_core::{DecodeError, DefaultNla, Emitable, Nla};

use crate::constants::*;
use crate::nla::*;
use crate::stats::attr::StatsAttr;

/// One attribute of a virtual service.
///
/// Non-exhaustive: the kernel adds attributes; until this crate names
/// one, it is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceAttr {
    /// `IPVS_SVC_ATTR_AF`: `AF_INET` or `AF_INET6`.
    Af(u16),
    /// `IPVS_SVC_ATTR_PROTOCOL`: an IPPROTO number.
    Protocol(u16),
    /// `IPVS_SVC_ATTR_ADDR`: `union nf_inet_addr`, IPv4 in the first 4 bytes.
    Addr([u8; 16]),
    /// `IPVS_SVC_ATTR_PORT`, in host order here (network order on the wire).
    Port(u16),
    /// `IPVS_SVC_ATTR_FWMARK`
    Fwmark(u32),
    /// `IPVS_SVC_ATTR_SCHED_NAME`
    SchedName(String),
    /// `IPVS_SVC_ATTR_FLAGS`: `struct ip_vs_flags { flags, mask }`; the
    /// kernel changes only the bits set in `mask`.
    Flags {
        /// Flag values.
        flags: u32,
        /// Which flags to change.
        mask: u32,
    },
    /// `IPVS_SVC_ATTR_TIMEOUT`: persistence timeout, seconds.
    Timeout(u32),
    /// `IPVS_SVC_ATTR_NETMASK`, as the four bytes on the wire: an IPv4 mask
    /// in network order, or an IPv6 prefix length as a host-order u32.
    Netmask([u8; 4]),
    /// `IPVS_SVC_ATTR_STATS`: 32-bit statistics.
    Stats(Vec<StatsAttr>),
    /// `IPVS_SVC_ATTR_PE_NAME`: persistence engine (`sip`).
    PeName(String),
    /// `IPVS_SVC_ATTR_STATS64`
    Stats64(Vec<StatsAttr>),
    /// An attribute this crate does not know, kept as it came.
    Other(DefaultNla),
}

impl ServiceAttr {
    /// Parses the value of an `IPVS_CMD_ATTR_SERVICE` attribute.
    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        parse_block("IPVS_CMD_ATTR_SERVICE", buf, Self::parse)
    }

    fn parse(kind: u16, value: &[u8]) -> Result<Self, DecodeError> {
        use ServiceAttr::*;
        Ok(match kind {
            IPVS_SVC_ATTR_AF => Af(u16_attr("IPVS_SVC_ATTR_AF", value)?),
            IPVS_SVC_ATTR_PROTOCOL => Protocol(u16_attr("IPVS_SVC_ATTR_PROTOCOL", value)?),
            IPVS_SVC_ATTR_ADDR => Addr(addr_attr("IPVS_SVC_ATTR_ADDR", value)?),
            IPVS_SVC_ATTR_PORT => Port(be16_attr("IPVS_SVC_ATTR_PORT", value)?),
            IPVS_SVC_ATTR_FWMARK => Fwmark(u32_attr("IPVS_SVC_ATTR_FWMARK", value)?),
            IPVS_SVC_ATTR_SCHED_NAME => SchedName(string_attr("IPVS_SVC_ATTR_SCHED_NAME", value)?),
            IPVS_SVC_ATTR_FLAGS => {
                let raw: [u8; 8] = value.try_into().map_err(|_| {
                    DecodeError::from(format!(
                        "IPVS_SVC_ATTR_FLAGS: expected 8 bytes, got {}",
                        value.len()
                    ))
                })?;
                let (flags, mask) = raw.split_at(4);
                Flags {
                    flags: u32_attr("IPVS_SVC_ATTR_FLAGS", flags)?,
                    mask: u32_attr("IPVS_SVC_ATTR_FLAGS", mask)?,
                }
            }
            IPVS_SVC_ATTR_TIMEOUT => Timeout(u32_attr("IPVS_SVC_ATTR_TIMEOUT", value)?),
            IPVS_SVC_ATTR_NETMASK => Netmask(bytes4_attr("IPVS_SVC_ATTR_NETMASK", value)?),
            IPVS_SVC_ATTR_STATS => Stats(StatsAttr::parse_all("IPVS_SVC_ATTR_STATS", value)?),
            IPVS_SVC_ATTR_PE_NAME => PeName(string_attr("IPVS_SVC_ATTR_PE_NAME", value)?),
            IPVS_SVC_ATTR_STATS64 => Stats64(StatsAttr::parse_all("IPVS_SVC_ATTR_STATS64", value)?),
            _ => Other(DefaultNla::new(kind, value.to_vec())),
        })
    }
}

impl Nla for ServiceAttr {
    fn value_len(&self) -> usize {
        use ServiceAttr::*;
        match self {
            Af(_) | Protocol(_) | Port(_) => 2,
            Addr(_) => 16,
            Fwmark(_) | Timeout(_) | Netmask(_) => 4,
            Flags { .. } => 8,
            SchedName(s) | PeName(s) => string_len(s),
            Stats(attrs) | Stats64(attrs) => attrs.as_slice().buffer_len(),
            Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use ServiceAttr::*;
        match self {
            Af(_) => IPVS_SVC_ATTR_AF,
            Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Addr(_) => IPVS_SVC_ATTR_ADDR,
            Port(_) => IPVS_SVC_ATTR_PORT,
            Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Flags { .. } => IPVS_SVC_ATTR_FLAGS,
            Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Stats(_) => IPVS_SVC_ATTR_STATS,
            PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Stats64(_) => IPVS_SVC_ATTR_STATS64,
            Other(nla) => nla.kind(),
        }
    }

    fn is_nested(&self) -> bool {
        matches!(self, ServiceAttr::Stats(_) | ServiceAttr::Stats64(_))
    }

    fn emit_value(&self, buf: &mut [u8]) {
        use ServiceAttr::*;
        match self {
            Af(v) | Protocol(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Port(v) => buf.copy_from_slice(&v.to_be_bytes()),
            Addr(a) => buf.copy_from_slice(a),
            Fwmark(v) | Timeout(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Netmask(b) => buf.copy_from_slice(b),
            Flags { flags, mask } => {
                let (f, m) = buf.split_at_mut(4);
                f.copy_from_slice(&flags.to_ne_bytes());
                m.copy_from_slice(&mask.to_ne_bytes());
            }
            SchedName(s) | PeName(s) => emit_string(buf, s),
            Stats(attrs) | Stats64(attrs) => attrs.as_slice().emit(buf),
            Other(nla) => nla.emit_value(buf),
        }
    }
}
