//! The director's own IPVS settings and state, the `director` collector:
//! the connection-sync daemons (GET_DAEMON), the connection timeouts
//! (GET_CONFIG) and the settings under `/proc/sys/net/ipv4/vs`, read in
//! the namespace of the calling thread like the rest of a scrape.
//!
//! The drop defences (`drop_entry`, `drop_packet`, `secure_tcp`) are
//! numbers the kernel changes itself: 0 off, 1 automatic and not acting,
//! 2 automatic and acting (memory is short), 3 always acting. The kernel
//! moves an automatic defence between 1 and 2 each second as memory goes
//! below `amemthresh` and back.

use std::io::ErrorKind;
use std::path::Path;

use ipvs::{Ipvs, SyncDaemon, Timeouts};

/// One setting under `/proc/sys/net/ipv4/vs`: the file, which of its
/// numbers (`sync_threshold` holds two), and the metric's name and help.
#[derive(Debug, PartialEq, Eq)]
pub struct Sysctl {
    /// The file's name.
    pub file: &'static str,
    /// Which whitespace-separated number of the file.
    pub field: usize,
    /// The metric.
    pub metric: &'static str,
    /// The metric's help.
    pub help: &'static str,
}

macro_rules! sysctl {
    ($file:literal, $help:literal) => {
        sysctl!($file, 0, $file, $help)
    };
    ($file:literal, $field:literal, $name:literal, $help:literal) => {
        Sysctl {
            file: $file,
            field: $field,
            metric: concat!("ipvs_sysctl_", $name),
            help: concat!("net.ipv4.vs.", $file, ": ", $help),
        }
    };
}

/// The settings exported, each as `ipvs_sysctl_NAME`; a file this kernel
/// does not have is left out.
pub const SYSCTLS: &[Sysctl] = &[
    sysctl!("amemthresh", "free memory, in pages, below which the automatic drop defences act."),
    sysctl!("am_droprate", "drop_packet's rate while memory is short: one packet in this many."),
    sysctl!("drop_entry", "the defence dropping connection entries: 0 off, 1 automatic (not acting), 2 automatic and acting, 3 always."),
    sysctl!("drop_packet", "the defence dropping packets: 0 off, 1 automatic (not acting), 2 automatic and acting, 3 always."),
    sysctl!("secure_tcp", "the defence with shorter TCP timeouts: 0 off, 1 automatic (not acting), 2 automatic and acting, 3 always."),
    sysctl!("conn_reuse_mode", "how a new connection from a reused port is scheduled (bit 1: reschedule; bit 2: also with conntrack)."),
    sysctl!("expire_nodest_conn", "1: a packet to a deleted real server expires its connection at once."),
    sysctl!("expire_quiescent_template", "1: persistence templates of a real server at weight 0 expire."),
    sysctl!("sloppy_tcp", "1: a TCP connection may start on any packet, not only a SYN."),
    sysctl!("sloppy_sctp", "1: an SCTP connection may start on any chunk, not only an INIT."),
    sysctl!("sync_threshold", 0, "sync_threshold", "packets after which a connection is first synchronised."),
    sysctl!("sync_threshold", 1, "sync_period", "packets between later synchronisations of a connection (the second number of sync_threshold)."),
    sysctl!("sync_refresh_period", "seconds between synchronisations of a connection in an unchanged state (0: use sync_period)."),
    sysctl!("sync_retries", "retransmissions of a sync message for a connection in state change (sync_version 1)."),
    sysctl!("sync_version", "the sync message format the master sends: 0 before Linux 2.6.39, 1 since."),
    sysctl!("sync_persist_mode", "1: synchronise persistence templates only, not connections."),
    sysctl!("sync_ports", "sync threads (and ports from the base port) per daemon."),
    sysctl!("sync_qlen_max", "sync messages queued at most for the master daemon."),
    sysctl!("sync_sock_size", "send or receive buffer of the sync sockets, bytes (0: the system default)."),
    sysctl!("backup_only", "1: the director is a backup only and forwards nothing it schedules."),
    sysctl!("conntrack", "1: IPVS connections keep netfilter conntrack entries."),
    sysctl!("snat_reroute", "1: replies of NAT real servers are routed again after SNAT."),
    sysctl!("nat_icmp_send", "1: ICMP errors are sent for NAT packets without a connection."),
    sysctl!("cache_bypass", "1: packets with no real server available go to their destination directly."),
    sysctl!("run_estimation", "1: the kernel computes the rate estimates (cps, pps, bps)."),
];

/// The drop defences, as `ipvs_drop_defense_active{defense}`.
pub const DEFENSES: [&str; 3] = ["drop_entry", "drop_packet", "secure_tcp"];

/// What the `director` collector read in one namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Director {
    /// The running sync daemons, master first.
    pub sync_daemons: Vec<SyncDaemon>,
    /// The connection timeouts.
    pub timeouts: Timeouts,
    /// The settings of [`SYSCTLS`] this kernel has, with their values.
    pub sysctls: Vec<(&'static Sysctl, i64)>,
}

impl Director {
    /// The value of the sysctl whose metric is named `metric`, if read.
    pub fn sysctl(&self, metric: &str) -> Option<i64> {
        self.sysctls
            .iter()
            .find(|(s, _)| s.metric == metric)
            .map(|(_, v)| *v)
    }
}

/// Reads the director's state over `ipvs` and from `proc_sys_vs` (the
/// namespace's `/proc/sys/net/ipv4/vs`); fails naming what failed.
pub fn gather(ipvs: &mut Ipvs, proc_sys_vs: &Path) -> Result<Director, String> {
    let sync_daemons = ipvs.sync_daemons().map_err(|e| e.to_string())?;
    let timeouts = ipvs.timeouts().map_err(|e| e.to_string())?;
    let mut sysctls = Vec::with_capacity(SYSCTLS.len());
    // sync_threshold's two numbers come from one read.
    let mut last: Option<(&str, String)> = None;
    for sysctl in SYSCTLS {
        let text = match &last {
            Some((file, text)) if *file == sysctl.file => text.clone(),
            _ => match std::fs::read_to_string(proc_sys_vs.join(sysctl.file)) {
                Ok(text) => text,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", proc_sys_vs.join(sysctl.file).display())),
            },
        };
        let value = parse_field(&text, sysctl.field).ok_or_else(|| {
            format!(
                "{}: expected a number at position {}, got {:?}",
                proc_sys_vs.join(sysctl.file).display(),
                sysctl.field + 1,
                text.trim()
            )
        })?;
        sysctls.push((sysctl, value));
        last = Some((sysctl.file, text));
    }
    Ok(Director {
        sync_daemons,
        timeouts,
        sysctls,
    })
}

/// The `field`-th whitespace-separated integer of a sysctl file.
fn parse_field(text: &str, field: usize) -> Option<i64> {
    text.split_whitespace().nth(field)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_fields_parse_or_say_none() {
        assert_eq!(parse_field("3\t50\n", 0), Some(3));
        assert_eq!(parse_field("3\t50\n", 1), Some(50));
        assert_eq!(parse_field("1024\n", 1), None);
        assert_eq!(parse_field("x\n", 0), None);
        assert_eq!(parse_field("", 0), None);
    }

    #[test]
    fn every_sysctl_metric_is_named_once() {
        let mut names: Vec<_> = SYSCTLS.iter().map(|s| s.metric).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SYSCTLS.len());
        for defense in DEFENSES {
            assert!(SYSCTLS.iter().any(|s| s.file == defense), "{defense}");
        }
    }
}
