//! Traffic statistics of a virtual service or a destination.

pub mod attr;

use netlink_packet_core::DecodeError;

use self::attr::StatsAttr;
use crate::nla::attributes;

/// The kernel's counters for one service or destination (or the whole
/// table), as `ipvsadm -Ln --stats --exact` and `--rate` print them.
///
/// Counters come from the 64-bit block (`*_STATS64`) when the kernel sends
/// it (Linux 4.x and later); the 32-bit block, whose connection and packet
/// counters wrap at 2^32, is only the fallback for kernels without it.
///
/// Non-exhaustive, as the kernel may add counters: make one with
/// `Stats::default()` and set its fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets from clients.
    pub in_packets: u64,
    /// Packets to clients (zero for DR and TUN, whose replies bypass the director).
    pub out_packets: u64,
    /// Bytes from clients.
    pub in_bytes: u64,
    /// Bytes to clients.
    pub out_bytes: u64,
    /// The kernel's rate estimate: connections per second.
    pub cps: u64,
    /// The kernel's rate estimate: incoming packets per second.
    pub in_pps: u64,
    /// The kernel's rate estimate: outgoing packets per second.
    pub out_pps: u64,
    /// The kernel's rate estimate: incoming bytes per second.
    pub in_bps: u64,
    /// The kernel's rate estimate: outgoing bytes per second.
    pub out_bps: u64,
}

impl Stats {
    /// Builds the counters from a parsed STATS or STATS64 block.
    pub fn from_attrs(attrs: &[StatsAttr]) -> Self {
        let mut stats = Stats::default();
        for attr in attrs {
            stats.add(attr);
        }
        stats
    }

    /// The counters of a STATS or STATS64 block (`block` names it) read
    /// straight from the wire: what [`Stats::from_attrs`] builds from
    /// [`StatsAttr::parse_all`], without the vector of attributes between.
    pub(crate) fn decode(block: &'static str, buf: &[u8]) -> Result<Self, DecodeError> {
        let mut stats = Stats::default();
        for attr in attributes(block, buf) {
            let (kind, value) = attr?;
            stats.add(&StatsAttr::parse(kind, value)?);
        }
        Ok(stats)
    }

    fn add(&mut self, attr: &StatsAttr) {
        match attr {
            StatsAttr::Conns(c) => self.conns = c.get(),
            StatsAttr::InPkts(c) => self.in_packets = c.get(),
            StatsAttr::OutPkts(c) => self.out_packets = c.get(),
            StatsAttr::InBytes(c) => self.in_bytes = c.get(),
            StatsAttr::OutBytes(c) => self.out_bytes = c.get(),
            StatsAttr::Cps(c) => self.cps = c.get(),
            StatsAttr::InPps(c) => self.in_pps = c.get(),
            StatsAttr::OutPps(c) => self.out_pps = c.get(),
            StatsAttr::InBps(c) => self.in_bps = c.get(),
            StatsAttr::OutBps(c) => self.out_bps = c.get(),
            StatsAttr::Pad(_) | StatsAttr::Other(_) => {}
        }
    }
}
