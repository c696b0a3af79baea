//! The CPU cost of the two in-process steps of a scrape that do not
//! depend on the kernel, on a synthetic table: encoding SERVICES x DESTS
//! (default 1,000 x 10) in both formats, the same with the connection
//! table's series (five states for each real server of each service:
//! SERVICES x DESTS x 5 keys), and counting a connection table of CONNS
//! lines (default 20,000) already in memory. Prints the best of RUNS
//! (default 5) of each. PARTS (default all) picks some of them, comma
//! separated: `encode`, `conns`, `prometheus-client`, `count` (to measure
//! one under callgrind).
//!
//!   cargo run --release -p ipvs-exporter --example encode-cost [SERVICES] [DESTS] [CONNS] [RUNS] [PARTS]

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipvs::proc::ConnTableCounts;
use ipvs::{
    Destination, DestinationConfig, DestinationKey, ForwardMethod, Service, ServiceConfig,
    ServiceKey, Stats, TableEntry,
};
use ipvs_exporter::encode::{encode, Exposition, Format};
use ipvs_exporter::http::exposition;
use ipvs_exporter::snapshot::{Namespace, Snapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

/// [`best`] of `step` on a new input from `make` each time, made before
/// the clock starts.
fn best_fresh<T>(
    runs: usize,
    make: impl Fn() -> T,
    mut step: impl FnMut(&T) -> usize,
) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..runs {
        let input = make();
        let started = Instant::now();
        size = step(&input);
        best = best.min(started.elapsed());
    }
    (best, size)
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
    let parts = std::env::args().nth(5);
    let part = |name: &str| {
        parts
            .as_deref()
            .is_none_or(|p| p.split(',').any(|p| p == name))
    };
    let stats = |n: u64| {
        let mut stats = Stats::default();
        stats.conns = n;
        stats.in_packets = n * 10;
        stats.out_packets = n * 9;
        stats.in_bytes = n * 1000;
        stats.out_bytes = n * 5000;
        stats
    };
    let base = u32::from(Ipv4Addr::new(198, 18, 2, 0));
    let table: Vec<TableEntry> = (0..services)
        .map(|s| TableEntry {
            service: Service::new(
                ServiceKey::tcp(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(base + s as u32),
                    80,
                ))),
                ServiceConfig::new("wlc"),
            )
            .with_stats(stats(s as u64 * 7)),
            destinations: (0..dests)
                .map(|d| {
                    Destination::new(
                        DestinationKey::new(SocketAddr::V4(SocketAddrV4::new(
                            Ipv4Addr::new(198, 18, 8, d as u8 + 1),
                            8000 + (s % 100) as u16,
                        ))),
                        DestinationConfig::new(ForwardMethod::Masquerade, d as u32 + 1),
                    )
                    .with_conns(3, 1, 0)
                    .with_stats(stats((s * dests + d) as u64 * 13))
                })
                .collect(),
        })
        .collect();
    // A new snapshot for every encoding, as each scrape encodes a new one
    // (an `Exposition` keeps what its first encoding prepared).
    let fresh = || Snapshot {
        namespaces: vec![Namespace {
            table: Some(table.clone()),
            ..Namespace::default()
        }],
        ..Snapshot::default()
    };
    if part("encode") {
        for format in [Format::Text, Format::OpenMetrics] {
            let (time, size) = best_fresh(runs, fresh, |snapshot| encode(snapshot, format).len());
            println!("encode {services}x{dests} {format:?}: {time:?} ({size} bytes)");
            let (time, size) = best_fresh(runs, fresh, |snapshot| {
                exposition(snapshot, format, true)
                    .expect("gzip into memory")
                    .len()
            });
            println!("encode {services}x{dests} {format:?} gzip: {time:?} ({size} bytes)");
        }
        let exposition = Exposition::new(fresh());
        let (time, _) = best(runs, || exposition.encode(Format::Text).len());
        println!(
            "encode {services}x{dests} Text, again from the same snapshot (another scraper at once): {time:?}"
        );
    }
    if part("conns") {
        // The connection table's series: each key is labelled from the table.
        let states = ["ESTABLISHED", "SYN_RECV", "TIME_WAIT", "FIN_WAIT", "CLOSE"];
        let mut conn_text = String::from(
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n",
        );
        for entry in &table {
            let ServiceKey::Addr {
                addr: SocketAddr::V4(vip),
                ..
            } = entry.service.key
            else {
                continue;
            };
            for dest in &entry.destinations {
                let SocketAddr::V4(rip) = dest.key.addr else {
                    continue;
                };
                for state in states {
                    let _ = writeln!(
                        conn_text,
                        "TCP C6120002 9C40 {:08X} {:04X} {:08X} {:04X} {state:<11} 899",
                        u32::from(*vip.ip()),
                        vip.port(),
                        u32::from(*rip.ip()),
                        rip.port()
                    );
                }
            }
        }
        let counts =
            Arc::new(ConnTableCounts::read_from(conn_text.as_bytes()).expect("conn table"));
        let keys = counts.connections().count();
        let with_conns = || Snapshot {
            namespaces: vec![Namespace {
                table: Some(table.clone()),
                connections: Some(Arc::clone(&counts)),
                ..Namespace::default()
            }],
            ..Snapshot::default()
        };
        let (time, size) = best_fresh(runs, with_conns, |snapshot| {
            encode(snapshot, Format::Text).len()
        });
        println!(
            "encode {services}x{dests} Text with {keys} connection-table keys: {time:?} ({size} bytes)"
        );
    }
    if part("prometheus-client") {
        let snapshot = fresh();
        let table = snapshot.namespaces[0].table.as_deref().unwrap_or_default();
        let (ours, _) = best_fresh(runs, fresh, |snapshot| {
            encode(snapshot, Format::OpenMetrics).len()
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TableCollector(table.to_vec())));
        let (theirs, size) = best(runs, || {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
            out.len()
        });
        println!(
            "prometheus-client, the table's 16 families, OpenMetrics: {theirs:?} ({size} bytes); \
             ours, the whole exposition: {ours:?}"
        );
    }
    if part("count") {
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
}

/// The table's families through prometheus-client.
#[derive(Debug)]
struct TableCollector(Vec<TableEntry>);

type Labels = Vec<(&'static str, String)>;
/// A family's name and how to read its value.
type Field<T, V> = (&'static str, fn(&T) -> V);

impl Collector for TableCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let service_labels = |key: &ServiceKey| -> Labels {
            let mut labels = Labels::new();
            ipvs_common::labels::service_labels(key, |name, value| {
                labels.push((name, value.to_string()))
            });
            labels
        };
        // Label sets made once, as the exporter does.
        let services: Vec<(Labels, &TableEntry)> = self
            .0
            .iter()
            .map(|e| (service_labels(&e.service.key), e))
            .collect();
        let backends: Vec<(Labels, &Destination)> = services
            .iter()
            .flat_map(|(labels, e)| {
                e.destinations.iter().map(move |d| {
                    let mut l = labels.clone();
                    ipvs_common::labels::real_server_labels(d.key.addr, |name, value| {
                        l.push((name, value.to_string()))
                    });
                    (l, d)
                })
            })
            .collect();
        let service_counters: [Field<Stats, u64>; 5] = [
            ("ipvs_service_connections", |s| s.conns),
            ("ipvs_service_incoming_packets", |s| s.in_packets),
            ("ipvs_service_outgoing_packets", |s| s.out_packets),
            ("ipvs_service_incoming_bytes", |s| s.in_bytes),
            ("ipvs_service_outgoing_bytes", |s| s.out_bytes),
        ];
        for (name, field) in service_counters {
            let mut family = encoder.encode_descriptor(name, "help", None, MetricType::Counter)?;
            for (labels, e) in &services {
                ConstCounter::new(field(&e.service.stats)).encode(family.encode_family(labels)?)?;
            }
        }
        let mut family =
            encoder.encode_descriptor("ipvs_service", "help", None, MetricType::Info)?;
        for (labels, e) in &services {
            let mut info = labels.clone();
            info.push(("scheduler", e.service.config.scheduler.clone()));
            info.push(("flags", String::new()));
            info.push(("persistence_timeout", String::new()));
            info.push(("persistence_netmask", String::new()));
            info.push(("pe_name", String::new()));
            ConstGauge::new(1i64).encode(family.encode_family(&info)?)?;
        }
        let backend_counters: [Field<Destination, u64>; 5] = [
            ("ipvs_backend_connections", |d| d.stats.conns),
            ("ipvs_backend_incoming_packets", |d| d.stats.in_packets),
            ("ipvs_backend_outgoing_packets", |d| d.stats.out_packets),
            ("ipvs_backend_incoming_bytes", |d| d.stats.in_bytes),
            ("ipvs_backend_outgoing_bytes", |d| d.stats.out_bytes),
        ];
        for (name, field) in backend_counters {
            let mut family = encoder.encode_descriptor(name, "help", None, MetricType::Counter)?;
            for (labels, d) in &backends {
                ConstCounter::new(field(d)).encode(family.encode_family(labels)?)?;
            }
        }
        let backend_gauges: [Field<Destination, i64>; 4] = [
            ("ipvs_backend_weight", |d| d.config.weight.into()),
            ("ipvs_backend_connections_active", |d| d.active_conns.into()),
            ("ipvs_backend_connections_inactive", |d| {
                d.inactive_conns.into()
            }),
            ("ipvs_backend_connections_persistent", |d| {
                d.persistent_conns.into()
            }),
        ];
        for (name, field) in backend_gauges {
            let mut family = encoder.encode_descriptor(name, "help", None, MetricType::Gauge)?;
            for (labels, d) in &backends {
                ConstGauge::new(field(d)).encode(family.encode_family(labels)?)?;
            }
        }
        let mut family =
            encoder.encode_descriptor("ipvs_backend", "help", None, MetricType::Info)?;
        for (labels, d) in &backends {
            let mut info = labels.clone();
            info.push(("forwarding_method", "nat".into()));
            info.push(("upper_threshold", d.config.upper_threshold.to_string()));
            info.push(("lower_threshold", d.config.lower_threshold.to_string()));
            info.push(("tunnel_type", String::new()));
            ConstGauge::new(1i64).encode(family.encode_family(&info)?)?;
        }
        Ok(())
    }
}
