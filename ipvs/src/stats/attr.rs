//! The attributes nested in `IPVS_SVC_ATTR_STATS{,64}` and
//! `IPVS_DEST_ATTR_STATS{,64}`.

use netlink_packet_core::{DecodeError, DefaultNla, Nla};

use crate::constants::*;
use crate::nla::{parse_block, u32_attr, u64_attr};

/// A counter as it is on the wire: the 32-bit block truncates connection and
/// packet counters and rates to u32 (bytes stay u64); the 64-bit block
/// carries every value as u64. Keeping the width lets a message be emitted
/// exactly as it was parsed. Exhaustive on purpose: these are the two
/// widths the kernel puts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A value put with `nla_put_u32`.
    U32(u32),
    /// A value put with `nla_put_u64` / `nla_put_u64_64bit`.
    U64(u64),
}

impl Counter {
    /// The value, widened.
    pub fn get(self) -> u64 {
        match self {
            Counter::U32(v) => v.into(),
            Counter::U64(v) => v,
        }
    }

    fn parse(name: &str, value: &[u8]) -> Result<Self, DecodeError> {
        match value.len() {
            4 => u32_attr(name, value).map(Counter::U32),
            _ => u64_attr(name, value).map(Counter::U64),
        }
    }

    fn len(self) -> usize {
        match self {
            Counter::U32(_) => 4,
            Counter::U64(_) => 8,
        }
    }

    fn emit(self, buf: &mut [u8]) {
        match self {
            Counter::U32(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Counter::U64(v) => buf.copy_from_slice(&v.to_ne_bytes()),
        }
    }
}

/// One statistics attribute.
///
/// Non-exhaustive: the kernel adds attributes; until this crate names
/// one, it is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsAttr {
    /// `IPVS_STATS_ATTR_CONNS`: connections scheduled.
    Conns(Counter),
    /// `IPVS_STATS_ATTR_INPKTS`
    InPkts(Counter),
    /// `IPVS_STATS_ATTR_OUTPKTS`
    OutPkts(Counter),
    /// `IPVS_STATS_ATTR_INBYTES`
    InBytes(Counter),
    /// `IPVS_STATS_ATTR_OUTBYTES`
    OutBytes(Counter),
    /// `IPVS_STATS_ATTR_CPS`: the kernel's estimate of connections per second.
    Cps(Counter),
    /// `IPVS_STATS_ATTR_INPPS`
    InPps(Counter),
    /// `IPVS_STATS_ATTR_OUTPPS`
    OutPps(Counter),
    /// `IPVS_STATS_ATTR_INBPS`
    InBps(Counter),
    /// `IPVS_STATS_ATTR_OUTBPS`
    OutBps(Counter),
    /// `IPVS_STATS_ATTR_PAD`: alignment padding of `nla_put_u64_64bit`.
    Pad(Vec<u8>),
    /// An attribute this crate does not know, kept as it came.
    Other(DefaultNla),
}

impl StatsAttr {
    fn counter(&self) -> Option<Counter> {
        use StatsAttr::*;
        match self {
            Conns(c) | InPkts(c) | OutPkts(c) | InBytes(c) | OutBytes(c) | Cps(c) | InPps(c)
            | OutPps(c) | InBps(c) | OutBps(c) => Some(*c),
            Pad(_) | Other(_) => None,
        }
    }

    /// Parses a whole STATS or STATS64 block.
    pub fn parse_all(block: &'static str, buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        parse_block(block, buf, Self::parse)
    }

    pub(crate) fn parse(kind: u16, value: &[u8]) -> Result<Self, DecodeError> {
        use StatsAttr::*;
        Ok(match kind {
            IPVS_STATS_ATTR_CONNS => Conns(Counter::parse("IPVS_STATS_ATTR_CONNS", value)?),
            IPVS_STATS_ATTR_INPKTS => InPkts(Counter::parse("IPVS_STATS_ATTR_INPKTS", value)?),
            IPVS_STATS_ATTR_OUTPKTS => OutPkts(Counter::parse("IPVS_STATS_ATTR_OUTPKTS", value)?),
            IPVS_STATS_ATTR_INBYTES => InBytes(Counter::parse("IPVS_STATS_ATTR_INBYTES", value)?),
            IPVS_STATS_ATTR_OUTBYTES => {
                OutBytes(Counter::parse("IPVS_STATS_ATTR_OUTBYTES", value)?)
            }
            IPVS_STATS_ATTR_CPS => Cps(Counter::parse("IPVS_STATS_ATTR_CPS", value)?),
            IPVS_STATS_ATTR_INPPS => InPps(Counter::parse("IPVS_STATS_ATTR_INPPS", value)?),
            IPVS_STATS_ATTR_OUTPPS => OutPps(Counter::parse("IPVS_STATS_ATTR_OUTPPS", value)?),
            IPVS_STATS_ATTR_INBPS => InBps(Counter::parse("IPVS_STATS_ATTR_INBPS", value)?),
            IPVS_STATS_ATTR_OUTBPS => OutBps(Counter::parse("IPVS_STATS_ATTR_OUTBPS", value)?),
            IPVS_STATS_ATTR_PAD => Pad(value.to_vec()),
            _ => Other(DefaultNla::new(kind, value.to_vec())),
        })
    }
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::Pad(v) => v.len(),
            StatsAttr::Other(nla) => nla.value_len(),
            counter => counter.counter().map_or(0, Counter::len),
        }
    }

    fn kind(&self) -> u16 {
        use StatsAttr::*;
        match self {
            Conns(_) => IPVS_STATS_ATTR_CONNS,
            InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            Cps(_) => IPVS_STATS_ATTR_CPS,
            InPps(_) => IPVS_STATS_ATTR_INPPS,
            OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            InBps(_) => IPVS_STATS_ATTR_INBPS,
            OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            Pad(_) => IPVS_STATS_ATTR_PAD,
            Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            StatsAttr::Pad(v) => buf.copy_from_slice(v),
            StatsAttr::Other(nla) => nla.emit_value(buf),
            counter => {
                if let Some(c) = counter.counter() {
                    c.emit(buf)
                }
            }
        }
    }
}
