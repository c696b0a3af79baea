//! The exposition of a fixed snapshot, byte for byte, in both formats
//! (node_exporter's `collector/fixtures` style): no kernel needed. The
//! table is a part of the lab's (`ipvs/tests/kernel.rs`), the connection
//! table a capture from the lab; rerun with `UPDATE_GOLDEN=1` after a
//! deliberate change and review the diff.

use std::net::SocketAddr;
use std::sync::Arc;

use ipvs::proc::{ConnTableCounts, GlobalStats};
use ipvs::{
    AddressFamily, Destination, DestinationConfig, DestinationKey, ForwardMethod, Info, Netmask,
    Service, ServiceConfig, ServiceFlags, ServiceKey, Stats, SyncDaemon, SyncState, TableEntry,
    Timeouts, Tunnel, TunnelFlags, TunnelType, Version,
};
use ipvs_web::process::{BuildInfo, ProcessStats};

use crate::director::{Director, SYSCTLS};
use crate::encode::{encode, Exposition, Format};
use crate::snapshot::{CollectorRun, Namespace, Snapshot};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn stats(base: u64) -> Stats {
    let mut stats = Stats::default();
    stats.conns = base;
    stats.in_packets = base * 10;
    stats.out_packets = base * 9;
    stats.in_bytes = base * 1000;
    stats.out_bytes = base * 5000;
    stats
}

fn dest(rip: &str, forward: ForwardMethod, weight: u32, counts: (u32, u32, u32)) -> Destination {
    Destination::new(
        DestinationKey::new(addr(rip)),
        DestinationConfig::new(forward, weight),
    )
    .with_conns(counts.0, counts.1, counts.2)
    .with_stats(stats(u64::from(weight) + 1))
}

fn table() -> Vec<TableEntry> {
    let mut big = stats(3);
    big.in_bytes = u64::from(u32::MAX) + 7;
    let mut persistent = ServiceConfig::new("wlc").persistent(300);
    persistent.netmask = Some(Netmask::V4("255.255.255.0".parse().expect("mask")));
    let mut mh = ServiceConfig::new("mh");
    mh.flags = ServiceFlags::SCHED1 | ServiceFlags::SCHED2;
    let mut tunnel = dest("198.18.1.13:0", ForwardMethod::Tunnel, 4, (0, 0, 0));
    tunnel.config.upper_threshold = 1000;
    tunnel.config.lower_threshold = 100;
    tunnel.config.tunnel = Tunnel::new(TunnelType::Gue)
        .with_port(6080)
        .with_flags(TunnelFlags::CSUM);
    vec![
        TableEntry {
            service: Service::new(
                ServiceKey::tcp(addr("198.18.0.10:80")),
                ServiceConfig::new("rr"),
            )
            .with_stats(big),
            destinations: vec![
                dest("198.18.1.11:80", ForwardMethod::Masquerade, 1, (0, 2, 0)),
                dest("198.18.1.12:80", ForwardMethod::Masquerade, 2, (1, 1, 0)),
            ],
        },
        TableEntry {
            service: Service::new(ServiceKey::tcp(addr("198.18.0.11:80")), persistent)
                .with_stats(stats(1)),
            destinations: vec![dest(
                "198.18.1.13:80",
                ForwardMethod::Masquerade,
                1,
                (0, 1, 1),
            )],
        },
        TableEntry {
            service: Service::new(
                ServiceKey::udp(addr("198.18.0.10:53")),
                ServiceConfig::new("wrr"),
            )
            .with_stats(stats(1)),
            destinations: vec![dest(
                "198.18.1.11:53",
                ForwardMethod::Masquerade,
                3,
                (0, 1, 0),
            )],
        },
        TableEntry {
            service: Service::new(ServiceKey::tcp(addr("[2001:db8::10]:80")), mh)
                .with_stats(stats(1)),
            destinations: vec![dest(
                "[2001:db8:1::11]:80",
                ForwardMethod::DirectRoute,
                1,
                (0, 1, 0),
            )],
        },
        TableEntry {
            service: Service::new(
                ServiceKey::fwmark(1, AddressFamily::Inet),
                ServiceConfig::new("rr").persistent(600),
            )
            .with_stats(stats(2)),
            destinations: vec![
                dest("198.18.1.11:0", ForwardMethod::Masquerade, 1, (0, 0, 0)),
                dest("198.18.1.12:0", ForwardMethod::Masquerade, 1, (0, 2, 1)),
            ],
        },
        TableEntry {
            service: Service::new(
                ServiceKey::fwmark(3, AddressFamily::Inet),
                ServiceConfig::new("wlc"),
            )
            .with_stats(Stats::default()),
            destinations: vec![tunnel],
        },
    ]
}

fn snapshot() -> Snapshot {
    let connections = ConnTableCounts::read_from(&include_bytes!("testdata/ip_vs_conn.txt")[..])
        .expect("fixture parses");
    let host = Namespace {
        netns: Some(String::new()),
        info: Some(Info::new(Version(0x010201), 4096)),
        info_error: None,
        global: Some(GlobalStats {
            conns: 26,
            inpkts: 107,
            outpkts: 105,
            inbytes: 7280,
            outbytes: 9024,
            ..GlobalStats::default()
        }),
        table: Some(table()),
        connections: Some(Arc::new(connections)),
        // Counts from a scan 12.5 s old (--collector.connections.min-interval).
        connections_age: Some(12.5),
        director: Some(director()),
        runs: vec![
            CollectorRun {
                name: "stats",
                seconds: 0.000125,
                error: None,
            },
            CollectorRun {
                name: "services",
                seconds: 0.0025,
                error: None,
            },
            CollectorRun {
                name: "connections",
                seconds: 0.001,
                error: None,
            },
            CollectorRun {
                name: "director",
                seconds: 0.0005,
                error: None,
            },
        ],
    };
    // A namespace without IPVS access: ipvs_up 0, failed collectors.
    let container = Namespace {
        netns: Some("/run/netns/swarm \"ingress\"".into()),
        info: None,
        info_error: Some("IPVS_CMD_GET_INFO needs CAP_NET_ADMIN".into()),
        global: None,
        table: None,
        connections: None,
        connections_age: None,
        director: None,
        runs: vec![CollectorRun {
            name: "services",
            seconds: 0.5,
            error: Some("IPVS_CMD_GET_INFO needs CAP_NET_ADMIN".into()),
        }],
    };
    Snapshot {
        namespaces: vec![host, container],
        build: Some(BuildInfo {
            version: "0.1.0",
            revision: "0123456789ab",
            rustc_version: "1.85.0",
        }),
        process: Some(ProcessStats {
            cpu_seconds: 1.25,
            resident_bytes: 8 << 20,
            virtual_bytes: 64 << 20,
            open_fds: 9,
            max_fds: Some(1024),
            start_time_seconds: 1_764_662_400.5,
        }),
        netlink_socket_reopens: 2,
        // Every family in the golden files.
        rates: true,
        ..Snapshot::default()
    }
}

/// A master sync daemon with the kernel's defaults, timeouts as the lab
/// sets them, and every setting at Linux 6.1's default but drop_entry
/// acting (2) and secure_tcp automatic but idle (1).
fn director() -> Director {
    let value = |metric: &str| match metric.trim_start_matches("ipvs_sysctl_") {
        "amemthresh" => 1024,
        "am_droprate" => 10,
        "drop_entry" => 2,
        "secure_tcp" | "conn_reuse_mode" | "sync_version" | "sync_ports" | "snat_reroute"
        | "run_estimation" => 1,
        "sync_threshold" => 3,
        "sync_period" => 50,
        "sync_qlen_max" => 31_622,
        _ => 0,
    };
    Director {
        sync_daemons: vec![SyncDaemon::new(SyncState::Master, "eth1", 7)
            .with_max_packet_len(1472)
            .with_multicast_group("224.0.0.81".parse().expect("group"))
            .with_multicast_port(8848)
            .with_multicast_ttl(1)],
        timeouts: Timeouts::new(900, 120, 300),
        sysctls: SYSCTLS.iter().map(|s| (s, value(s.metric))).collect(),
    }
}

fn check_golden(name: &str, actual: &str) {
    let path = format!("{}/src/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
    }
    let expected = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 makes it)");
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from line {}:\nexpected: {:?}\nactual:   {:?}",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn golden_text_format() {
    check_golden("golden.prom", &encode(&snapshot(), Format::Text));
}

#[test]
fn scrapes_of_one_snapshot_share_its_label_sets_and_write_the_same() {
    let exposition = Exposition::new(snapshot());
    assert!(
        exposition.prepared().is_none(),
        "nothing prepared before a scrape"
    );
    let first = exposition.encode(Format::Text);
    let prepared = exposition.prepared().expect("prepared by the first scrape");
    let prepared_at = prepared.as_ptr();
    assert_eq!(exposition.encode(Format::Text), first);
    assert_eq!(
        exposition.encode(Format::OpenMetrics),
        encode(&crate::tests::snapshot(), Format::OpenMetrics),
        "the other format from the same label sets",
    );
    assert_eq!(
        exposition.prepared().map(|p| p.as_ptr()),
        Some(prepared_at),
        "prepared once"
    );
}

#[test]
fn golden_openmetrics() {
    check_golden("golden.om", &encode(&snapshot(), Format::OpenMetrics));
}

#[test]
fn without_namespaces_there_is_no_netns_label() {
    let mut snapshot = snapshot();
    snapshot.namespaces.truncate(1);
    snapshot.namespaces[0].netns = None;
    let text = encode(&snapshot, Format::Text);
    assert!(!text.contains("netns"), "{text}");
    assert!(text.contains("\nipvs_up 1\n"), "{text}");
}

#[test]
fn the_gzipped_exposition_is_the_golden_one() {
    use std::io::Read;
    for (format, golden) in [
        (Format::Text, "golden.prom"),
        (Format::OpenMetrics, "golden.om"),
    ] {
        let body = crate::http::exposition(&snapshot(), format, true).expect("gzip");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("a gzip stream");
        check_golden(golden, &text);
        let plain = crate::http::exposition(&snapshot(), format, false).expect("plain");
        assert_eq!(plain, text.as_bytes());
    }
}

#[test]
fn an_exposition_larger_than_one_chunk_is_written_whole() {
    // Enough namespaces that the exposition spans many of the encoder's
    // 64 KiB pieces: every piece arrives, in order.
    let one = encode(&snapshot(), Format::Text);
    let mut many = snapshot();
    for i in 0..200 {
        let mut extra = snapshot();
        for (n, ns) in extra.namespaces.iter_mut().enumerate() {
            ns.netns = Some(format!("/run/netns/copy{i}-{n}"));
        }
        many.namespaces.extend(extra.namespaces);
    }
    let text = encode(&many, Format::Text);
    assert!(text.len() > 100 * one.len(), "{} bytes", text.len());
    let gzipped = crate::http::exposition(&many, Format::Text, true).expect("gzip");
    let mut unzipped = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gzipped[..]),
        &mut unzipped,
    )
    .expect("gzip");
    assert_eq!(unzipped, text);
    assert_eq!(
        text.matches("\nipvs_backend_weight{").count(),
        201 * one.matches("\nipvs_backend_weight{").count()
    );
}

/// The golden exposition's sample lines for which `keep` holds, with the
/// headers of the families left with samples.
fn golden_lines_where(keep: impl Fn(&str) -> bool) -> Vec<String> {
    let golden = encode(&snapshot(), Format::Text);
    golden
        .lines()
        .filter(|l| !l.starts_with('#') && keep(l))
        .map(str::to_string)
        .collect()
}

fn samples(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn excluding_services_drops_their_backends_and_connections_only() {
    let mut filtered = snapshot();
    filtered.filter =
        crate::filter::ServiceFilter::new(None, Some("FWM/.*|UDP/.*")).expect("pattern");
    let text = encode(&filtered, Format::Text);
    // Exactly the golden samples less every series of a fwmark or UDP
    // service (tables, states, templates); the rest is untouched.
    let expected =
        golden_lines_where(|l| !l.contains("proto=\"FWM\"") && !l.contains("proto=\"UDP\""));
    assert_eq!(samples(&text), expected);
    assert!(text.contains("ipvs_backend_connection_states{"), "{text}");
    assert!(!text.contains("proto=\"UDP\""));
}

#[test]
fn including_one_service_keeps_it_and_the_global_series() {
    let mut filtered = snapshot();
    filtered.filter =
        crate::filter::ServiceFilter::new(Some(r"TCP/198\.18\.0\.10:80"), None).expect("pattern");
    let text = encode(&filtered, Format::OpenMetrics);
    let table_series = |l: &str| l.contains("local_address=");
    let expected = golden_lines_where(|l| {
        !table_series(l)
            || (l.contains("proto=\"TCP\"")
                && l.contains("local_address=\"198.18.0.10\"")
                && l.contains("local_port=\"80\""))
    });
    // Sample lines are the same in both formats.
    assert_eq!(samples(&text), expected);
    assert!(text.ends_with("\n# EOF\n"));
    // The service's connection states stay.
    assert!(
        text.contains(
            "ipvs_backend_connection_states{netns=\"\",proto=\"TCP\",local_address=\"198.18.0.10\""
        ),
        "{text}"
    );
}

#[test]
fn golden_backends_without_port() {
    let mut snapshot = snapshot();
    snapshot.backend_labels = crate::filter::BackendLabels::WithoutPort;
    check_golden("golden-without-port.prom", &encode(&snapshot, Format::Text));
}

#[test]
fn golden_backends_per_service() {
    let mut snapshot = snapshot();
    snapshot.backend_labels = crate::filter::BackendLabels::PerService;
    check_golden("golden-per-service.prom", &encode(&snapshot, Format::Text));
}

#[test]
fn aggregated_backends_sum_to_the_full_series() {
    // Per family, the sum over all series is the same whatever labels are
    // kept; ipvs_backend_info is the one family left out.
    let sums = |mode| {
        let mut snapshot = snapshot();
        snapshot.backend_labels = mode;
        let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
        for line in samples(&encode(&snapshot, Format::Text)) {
            let (name_labels, value) = line.rsplit_once(' ').expect("sample");
            let name = name_labels.split('{').next().expect("name");
            if name.starts_with("ipvs_backend_") {
                *sums.entry(name.to_string()).or_default() += value.parse::<f64>().expect("value");
            }
        }
        sums
    };
    use crate::filter::BackendLabels::*;
    let mut full = sums(Full);
    assert!(full.remove("ipvs_backend_info").is_some());
    assert_eq!(sums(WithoutPort), full);
    assert_eq!(sums(PerService), full);
}

#[test]
fn backend_label_modes_are_named_and_bad_ones_refused() {
    use crate::filter::BackendLabels;
    assert_eq!("full".parse(), Ok(BackendLabels::Full));
    assert_eq!("without-port".parse(), Ok(BackendLabels::WithoutPort));
    assert_eq!("per-service".parse(), Ok(BackendLabels::PerService));
    assert_eq!(
        "none".parse::<BackendLabels>().map_err(|e| e.to_string()),
        Err("invalid value \"none\" (use full, without-port or per-service)".to_string())
    );
}

#[test]
fn labelling_the_connection_table_is_linear_in_the_table() {
    // SERVICES address services of 2 real servers each, one fwmark
    // service, and connection keys for each service and for the fwmark
    // one's virtual addresses: labelling each key must not walk the table.
    const SERVICES: u32 = 2_000;
    let base = u32::from(std::net::Ipv4Addr::new(198, 18, 2, 0));
    let vip = |s: u32| SocketAddr::new(std::net::Ipv4Addr::from(base + s).into(), 80);
    let rip = |d: u32| SocketAddr::new(std::net::Ipv4Addr::new(198, 18, 8, d as u8 + 1).into(), 80);
    let mut table: Vec<TableEntry> = (0..SERVICES)
        .map(|s| TableEntry {
            service: Service::new(ServiceKey::tcp(vip(s)), ServiceConfig::new("wlc"))
                .with_stats(stats(1)),
            destinations: (0..2)
                .map(|d| dest(&rip(d).to_string(), ForwardMethod::Masquerade, 1, (0, 0, 0)))
                .collect(),
        })
        .collect();
    table.push(TableEntry {
        service: Service::new(
            ServiceKey::fwmark(7, AddressFamily::Inet),
            ServiceConfig::new("rr"),
        )
        .with_stats(stats(1)),
        destinations: vec![dest(
            "198.18.9.1:0",
            ForwardMethod::Masquerade,
            1,
            (0, 0, 0),
        )],
    });
    let mut conn_table = String::from(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n",
    );
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!("{:08X} {:04X}", u32::from(*v4.ip()), v4.port()),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    for s in 0..SERVICES {
        for d in 0..2 {
            conn_table.push_str(&format!(
                "TCP C6120002 9C40 {} {} ESTABLISHED     899\n",
                hex(vip(s)),
                hex(rip(d))
            ));
        }
        // A connection to an address of the fwmark service.
        let fwmark_vip = SocketAddr::new(std::net::Ipv4Addr::from(base + 100_000 + s).into(), 443);
        conn_table.push_str(&format!(
            "TCP C6120002 9C40 {} C6120901 01BB ESTABLISHED     899\n",
            hex(fwmark_vip)
        ));
    }
    let connections = ConnTableCounts::read_from(conn_table.as_bytes()).expect("conn table");
    let keys = connections.connections().count() as u64;
    assert_eq!(keys, 3 * u64::from(SERVICES));
    let snapshot = Snapshot {
        namespaces: vec![Namespace {
            table: Some(table),
            connections: Some(Arc::new(connections)),
            ..Namespace::default()
        }],
        ..Snapshot::default()
    };
    let before = crate::encode::table_visits::get();
    let text = encode(&snapshot, Format::Text);
    let visits = crate::encode::table_visits::get() - before;
    assert_eq!(
        text.matches("\nipvs_backend_connection_states{").count() as u64,
        2 * u64::from(SERVICES) + 1,
        "each real server's connections, and the fwmark service's under its mark"
    );
    // Services, their real servers and the keys, each looked at a few
    // times at most: walking the table per key would be SERVICES^2.
    let table_size = u64::from(SERVICES) * 3 + 2;
    assert!(
        visits <= 4 * (table_size + keys),
        "{visits} table entries looked at for {keys} keys and a table of {table_size}"
    );
}

#[test]
fn rate_estimates_are_exported_only_when_asked_for() {
    let mut snapshot = snapshot();
    snapshot.rates = false;
    assert!(!encode(&snapshot, Format::Text).contains("_per_second"));
    let table = snapshot.namespaces[0].table.as_mut().expect("table");
    let rates = |stats: &mut Stats, base: u64| {
        stats.cps = base;
        stats.in_pps = base * 10;
        stats.out_pps = base * 9;
        stats.in_bps = base * 1000;
        stats.out_bps = base * 900;
    };
    rates(&mut table[0].service.stats, 5);
    rates(&mut table[0].destinations[0].stats, 2);
    rates(&mut table[0].destinations[1].stats, 3);
    snapshot.rates = true;
    let text = encode(&snapshot, Format::Text);
    let service =
        r#"{netns="",proto="TCP",local_address="198.18.0.10",local_port="80",local_mark=""}"#;
    let backend = r#"{netns="",proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",remote_address="198.18.1.12",remote_port="80"}"#;
    for line in [
        format!("ipvs_service_connections_per_second{service} 5\n"),
        format!("ipvs_service_incoming_packets_per_second{service} 50\n"),
        format!("ipvs_service_outgoing_packets_per_second{service} 45\n"),
        format!("ipvs_service_incoming_bytes_per_second{service} 5000\n"),
        format!("ipvs_service_outgoing_bytes_per_second{service} 4500\n"),
        format!("ipvs_backend_connections_per_second{backend} 3\n"),
        format!("ipvs_backend_outgoing_bytes_per_second{backend} 2700\n"),
    ] {
        assert!(text.contains(&line), "{line} not in the exposition");
    }
    // Summed like the counters when real servers are aggregated.
    snapshot.backend_labels = crate::filter::BackendLabels::PerService;
    let text = encode(&snapshot, Format::Text);
    assert!(text.contains(&format!("ipvs_backend_connections_per_second{service} 5\n")));
}
