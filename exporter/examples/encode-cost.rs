//! The CPU cost of the two in-process steps of a scrape that do not
//! depend on the kernel, on a synthetic table: encoding SERVICES x DESTS
//! (default 1,000 x 10) in both formats, and counting a connection table
//! of CONNS lines (default 20,000) already in memory. Prints the best of
//! RUNS (default 5) of each.
//!
//!   cargo run --release -p ipvs-exporter --example encode-cost [SERVICES] [DESTS] [CONNS] [RUNS]

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipvs::proc::ConnTableCounts;
use ipvs::{
    Destination, DestinationConfig, DestinationKey, ForwardMethod, Service, ServiceConfig,
    ServiceKey, Stats, TableEntry,
};
use ipvs_exporter::encode::{encode, Format};
use ipvs_exporter::http::exposition;
use ipvs_exporter::snapshot::{Namespace, Snapshot};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

fn best(runs: usize, mut step: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        size = step();
        best = best.min(started.elapsed());
    }
    (best, size)
}

fn main() {
    let (services, dests, conns, runs) = (arg(1, 1000), arg(2, 10), arg(3, 20_000), arg(4, 5));
    let stats = |n: u64| Stats {
        conns: n,
        in_packets: n * 10,
        out_packets: n * 9,
        in_bytes: n * 1000,
        out_bytes: n * 5000,
        ..Stats::default()
    };
    let base = u32::from(Ipv4Addr::new(198, 18, 2, 0));
    let table: Vec<TableEntry> = (0..services)
        .map(|s| TableEntry {
            service: Service {
                key: ServiceKey::tcp(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(base + s as u32),
                    80,
                ))),
                config: ServiceConfig::new("wlc"),
                stats: stats(s as u64 * 7),
            },
            destinations: (0..dests)
                .map(|d| Destination {
                    key: DestinationKey::new(SocketAddr::V4(SocketAddrV4::new(
                        Ipv4Addr::new(198, 18, 8, d as u8 + 1),
                        8000 + (s % 100) as u16,
                    ))),
                    config: DestinationConfig::new(ForwardMethod::Masquerade, d as u32 + 1),
                    active_conns: 3,
                    inactive_conns: 1,
                    persistent_conns: 0,
                    stats: stats((s * dests + d) as u64 * 13),
                })
                .collect(),
        })
        .collect();
    let snapshot = Snapshot {
        namespaces: vec![Namespace {
            table: Some(table),
            ..Namespace::default()
        }],
    };
    for format in [Format::Text, Format::OpenMetrics] {
        let (time, size) = best(runs, || encode(&snapshot, format).len());
        println!("encode {services}x{dests} {format:?}: {time:?} ({size} bytes)");
        let (time, size) = best(runs, || {
            exposition(&snapshot, format, true)
                .expect("gzip into memory")
                .len()
        });
        println!("encode {services}x{dests} {format:?} gzip: {time:?} ({size} bytes)");
    }

    let mut text = String::from(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n",
    );
    for i in 0..conns {
        let _ = writeln!(
            text,
            "TCP C6120002 {:04X} C612000A 0051 C612010B 0051 SYN_RECV         59",
            1025 + i % 60_000
        );
    }
    let text = Arc::new(text);
    let (time, entries) = best(runs, || {
        ConnTableCounts::read_from(text.as_bytes())
            .expect("conn table")
            .entries() as usize
    });
    println!(
        "count {entries} conn-table lines ({} bytes): {time:?}",
        text.len()
    );
}
