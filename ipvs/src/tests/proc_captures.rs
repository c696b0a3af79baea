//! The /proc parsers on files captured from a real kernel in the lab, with
//! what the kernel's own counters (read over netlink at the same moment)
//! said of the same table: connections and templates per real server, and
//! the global totals (see `proc/testdata/README.md`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::proc::{ConnProtocol, ConnTableCounts, GlobalStats, VirtualAddress};

const CONN: &str = include_str!("../proc/testdata/lab-ip_vs_conn.txt");
const CONN_KERNEL: &str = include_str!("../proc/testdata/lab-ip_vs_conn.kernel");
const STATS: &str = include_str!("../proc/testdata/lab-ip_vs_stats.txt");
const STATS_KERNEL: &str = include_str!("../proc/testdata/lab-ip_vs_stats.kernel");

#[test]
fn captured_conn_table_matches_the_kernels_counters() {
    let counts = ConnTableCounts::read_from(CONN.as_bytes()).expect("parse");
    let mut parsed: BTreeMap<IpAddr, (u64, u64)> = BTreeMap::new();
    for (key, n) in counts.connections() {
        parsed.entry(key.destination.ip()).or_default().0 += n;
    }
    for (key, n) in counts.templates() {
        parsed.entry(key.destination.ip()).or_default().1 += n;
    }
    let kernel: BTreeMap<IpAddr, (u64, u64)> = CONN_KERNEL
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (
                f[0].parse().expect("ip"),
                (f[1].parse().expect("n"), f[2].parse().expect("n")),
            )
        })
        .collect();
    assert_eq!(parsed, kernel);
    assert_eq!(counts.entries(), 26);
    // Every kind of entry the capture holds was recognised.
    assert!(counts
        .connections()
        .any(|(k, _)| k.protocol == ConnProtocol::Sctp));
    assert!(counts.connections().any(|(k, _)| k.destination.is_ipv6()));
    assert!(counts
        .templates()
        .any(|(k, _)| k.virtual_address == VirtualAddress::Fwmark(1)));
    assert!(counts
        .templates()
        .any(|(k, _)| k.protocol == ConnProtocol::Tcp));
}

#[test]
fn captured_global_stats_match_the_services_sum() {
    let stats = GlobalStats::read_from(STATS.as_bytes()).expect("parse");
    let kernel: Vec<u64> = STATS_KERNEL
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(
        vec![
            stats.conns,
            stats.inpkts,
            stats.outpkts,
            stats.inbytes,
            stats.outbytes
        ],
        kernel
    );
}
