//! Traffic statistics of a virtual service or a destination.

pub mod attr;

use self::attr::StatsAttr;

/// The kernel's counters for one service or destination (or the whole
/// table), as `ipvsadm -Ln --stats --exact` and `--rate` print them.
///
/// Counters come from the 64-bit block (`*_STATS64`) when the kernel sends
/// it (Linux 4.x and later); the 32-bit block, whose connection and packet
/// counters wrap at 2^32, is only the fallback for kernels without it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
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
            match attr {
                StatsAttr::Conns(c) => stats.conns = c.get(),
                StatsAttr::InPkts(c) => stats.in_packets = c.get(),
                StatsAttr::OutPkts(c) => stats.out_packets = c.get(),
                StatsAttr::InBytes(c) => stats.in_bytes = c.get(),
                StatsAttr::OutBytes(c) => stats.out_bytes = c.get(),
                StatsAttr::Cps(c) => stats.cps = c.get(),
                StatsAttr::InPps(c) => stats.in_pps = c.get(),
                StatsAttr::OutPps(c) => stats.out_pps = c.get(),
                StatsAttr::InBps(c) => stats.in_bps = c.get(),
                StatsAttr::OutBps(c) => stats.out_bps = c.get(),
                StatsAttr::Pad(_) | StatsAttr::Other(_) => {}
            }
        }
        stats
    }
}
