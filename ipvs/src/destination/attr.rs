//! The attributes nested in `IPVS_CMD_ATTR_DEST`, as they are on the wire.

use netlink_packet_core::{DecodeError, DefaultNla, Emitable, Nla};

use crate::constants::*;
use crate::nla::*;
use crate::stats::attr::StatsAttr;

/// One attribute of a destination (real server).
///
/// Non-exhaustive: the kernel adds attributes; until this crate names
/// one, it is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestAttr {
    /// `IPVS_DEST_ATTR_ADDR`: `union nf_inet_addr`.
    Addr([u8; 16]),
    /// `IPVS_DEST_ATTR_PORT`, in host order here (network order on the wire).
    Port(u16),
    /// `IPVS_DEST_ATTR_FWD_METHOD`: `IP_VS_CONN_F_*` forwarding bits.
    FwdMethod(u32),
    /// `IPVS_DEST_ATTR_WEIGHT` (a kernel `int`, never negative).
    Weight(u32),
    /// `IPVS_DEST_ATTR_U_THRESH`
    UThresh(u32),
    /// `IPVS_DEST_ATTR_L_THRESH`
    LThresh(u32),
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS`
    ActiveConns(u32),
    /// `IPVS_DEST_ATTR_INACT_CONNS`
    InactConns(u32),
    /// `IPVS_DEST_ATTR_PERSIST_CONNS`
    PersistConns(u32),
    /// `IPVS_DEST_ATTR_STATS`: 32-bit statistics.
    Stats(Vec<StatsAttr>),
    /// `IPVS_DEST_ATTR_ADDR_FAMILY` (Linux 3.18+).
    AddrFamily(u16),
    /// `IPVS_DEST_ATTR_STATS64`
    Stats64(Vec<StatsAttr>),
    /// `IPVS_DEST_ATTR_TUN_TYPE` (Linux 5.3+).
    TunType(u8),
    /// `IPVS_DEST_ATTR_TUN_PORT`, host order here (network order on the wire).
    TunPort(u16),
    /// `IPVS_DEST_ATTR_TUN_FLAGS`
    TunFlags(u16),
    /// An attribute this crate does not know, kept as it came.
    Other(DefaultNla),
}

impl DestAttr {
    /// Parses the value of an `IPVS_CMD_ATTR_DEST` attribute.
    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        parse_block("IPVS_CMD_ATTR_DEST", buf, Self::parse)
    }

    pub(crate) fn parse(kind: u16, value: &[u8]) -> Result<Self, DecodeError> {
        use DestAttr::*;
        Ok(match kind {
            IPVS_DEST_ATTR_ADDR => Addr(addr_attr("IPVS_DEST_ATTR_ADDR", value)?),
            IPVS_DEST_ATTR_PORT => Port(be16_attr("IPVS_DEST_ATTR_PORT", value)?),
            IPVS_DEST_ATTR_FWD_METHOD => FwdMethod(u32_attr("IPVS_DEST_ATTR_FWD_METHOD", value)?),
            IPVS_DEST_ATTR_WEIGHT => Weight(u32_attr("IPVS_DEST_ATTR_WEIGHT", value)?),
            IPVS_DEST_ATTR_U_THRESH => UThresh(u32_attr("IPVS_DEST_ATTR_U_THRESH", value)?),
            IPVS_DEST_ATTR_L_THRESH => LThresh(u32_attr("IPVS_DEST_ATTR_L_THRESH", value)?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                ActiveConns(u32_attr("IPVS_DEST_ATTR_ACTIVE_CONNS", value)?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                InactConns(u32_attr("IPVS_DEST_ATTR_INACT_CONNS", value)?)
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                PersistConns(u32_attr("IPVS_DEST_ATTR_PERSIST_CONNS", value)?)
            }
            IPVS_DEST_ATTR_STATS => Stats(StatsAttr::parse_all("IPVS_DEST_ATTR_STATS", value)?),
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                AddrFamily(u16_attr("IPVS_DEST_ATTR_ADDR_FAMILY", value)?)
            }
            IPVS_DEST_ATTR_STATS64 => {
                Stats64(StatsAttr::parse_all("IPVS_DEST_ATTR_STATS64", value)?)
            }
            IPVS_DEST_ATTR_TUN_TYPE => TunType(u8_attr("IPVS_DEST_ATTR_TUN_TYPE", value)?),
            IPVS_DEST_ATTR_TUN_PORT => TunPort(be16_attr("IPVS_DEST_ATTR_TUN_PORT", value)?),
            IPVS_DEST_ATTR_TUN_FLAGS => TunFlags(u16_attr("IPVS_DEST_ATTR_TUN_FLAGS", value)?),
            _ => Other(DefaultNla::new(kind, value.to_vec())),
        })
    }
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        use DestAttr::*;
        match self {
            Addr(_) => 16,
            Port(_) | AddrFamily(_) | TunPort(_) | TunFlags(_) => 2,
            TunType(_) => 1,
            FwdMethod(_) | Weight(_) | UThresh(_) | LThresh(_) | ActiveConns(_) | InactConns(_)
            | PersistConns(_) => 4,
            Stats(attrs) | Stats64(attrs) => attrs.as_slice().buffer_len(),
            Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use DestAttr::*;
        match self {
            Addr(_) => IPVS_DEST_ATTR_ADDR,
            Port(_) => IPVS_DEST_ATTR_PORT,
            FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Stats(_) => IPVS_DEST_ATTR_STATS,
            AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Stats64(_) => IPVS_DEST_ATTR_STATS64,
            TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Other(nla) => nla.kind(),
        }
    }

    fn is_nested(&self) -> bool {
        matches!(self, DestAttr::Stats(_) | DestAttr::Stats64(_))
    }

    fn emit_value(&self, buf: &mut [u8]) {
        use DestAttr::*;
        match self {
            Addr(a) => buf.copy_from_slice(a),
            Port(v) | TunPort(v) => buf.copy_from_slice(&v.to_be_bytes()),
            AddrFamily(v) | TunFlags(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            TunType(v) => buf.copy_from_slice(&[*v]),
            FwdMethod(v) | Weight(v) | UThresh(v) | LThresh(v) | ActiveConns(v) | InactConns(v)
            | PersistConns(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Stats(attrs) | Stats64(attrs) => attrs.as_slice().emit(buf),
            Other(nla) => nla.emit_value(buf),
        }
    }
}
