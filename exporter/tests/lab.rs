//! End-to-end tests of the `ipvs-exporter` binary against a real kernel's
//! IPVS, compared with what ipvsadm says at the same moment. They need
//! root and a kernel with IPVS, so they are ignored in a plain `cargo
//! test`; the lab runs them (`lab/test`).
//!
//! The network is the lab's (`lab/topology.sh`), addresses from
//! 198.18.0.0/15 and 2001:db8::/32 only, built once per test binary with
//! the table and traffic of `ipvs/tests/kernel.rs` (less SCTP, whose
//! retransmitted INITs would move counters between two reads). The
//! exporter runs in the root namespace and reads the director's through
//! `--netns`, so that path is tested too.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::MutexGuard;
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_harness::{
    client, director, fetch_from_client, lab_once, run_in, topology_script, unload_ip_vs, DIRECTOR,
};

const TABLE: &str = "\
-A -t 198.18.0.10:80 -s rr
-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 1 -x 100 -y 10
-a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 2
-A -t 198.18.0.11:80 -s wlc -p 300 -M 255.255.255.0
-a -t 198.18.0.11:80 -r 198.18.1.11:80 -m -w 1
-a -t 198.18.0.11:80 -r 198.18.1.12:80 -m -w 1
-a -t 198.18.0.11:80 -r 198.18.1.13:80 -m -w 1
-A -u 198.18.0.10:53 -s wrr
-a -u 198.18.0.10:53 -r 198.18.1.11:53 -m -w 3
-a -u 198.18.0.10:53 -r 198.18.1.12:53 -m -w 1
-A -t [2001:db8::10]:80 -s mh -b mh-fallback,mh-port
-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:80 -m -w 1
-a -t [2001:db8::10]:80 -r [2001:db8:1::12]:80 -m -w 1
-A -u [2001:db8::10]:53 -s wlc -o
-a -u [2001:db8::10]:53 -r [2001:db8:1::13]:53 -m -w 1
-A -f 1 -s rr -p 600
-a -f 1 -r 198.18.1.11 -m -w 1
-a -f 1 -r 198.18.1.12 -m -w 1
-A -f 3 -s wlc
-a -f 3 -r 198.18.1.13:0 -i -w 4 -x 1000 -y 100 --tun-type gue --tun-port 6080 --tun-csum
";

/// Builds the lab network, the table and its traffic, once per binary.
fn lab() -> MutexGuard<'static, ()> {
    lab_once(|| {
        let topology = topology_script();
        run_in(None, &format!("{topology} up 3 && {topology} serve"));
        for vip in ["198.18.0.10", "198.18.0.11", "198.18.0.20", "2001:db8::10"] {
            run_in(None, &format!("{topology} vip {vip}"));
        }
        director("iptables -t mangle -A PREROUTING -d 198.18.0.20/32 -j MARK --set-mark 1");
        director(&format!("ipvsadm -C && ipvsadm -R <<'EOF'\n{TABLE}EOF"));
        for (url, times) in [
            ("http://198.18.0.10/", 6),
            ("http://198.18.0.11/", 3),
            ("http://[2001:db8::10]/", 4),
            ("http://198.18.0.20/", 3),
        ] {
            fetch_from_client(url, times);
        }
        client(
            r#"python3 - <<'EOF'
import socket
targets = [("198.18.0.10", 53)] * 4 + [("2001:db8::10", 53)] * 2 + [("198.18.0.20", 53)] * 2
for target in targets:
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"who", target)
    assert s.recv(64).startswith(b"rs"), target
    s.close()
EOF"#,
        );
        // One connection left open (ESTABLISHED) and idle.
        run_in(None, "rm -f /run/lab-exporter-tcp-open");
        client(
            "(exec python3 -c 'import socket,time; s=socket.create_connection((\"198.18.0.10\",80)); \
             open(\"/run/lab-exporter-tcp-open\",\"w\"); time.sleep(900)' >/dev/null 2>&1 &)",
        );
        let started = Instant::now();
        while !Path::new("/run/lab-exporter-tcp-open").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no open connection"
            );
            sleep(Duration::from_millis(200));
        }
        // The kernel folds its per-CPU counters into what it reports every 2 s.
        sleep(Duration::from_secs(3));
    })
}

/// A running exporter (ours, or node_exporter), killed when dropped.
struct Exporter {
    child: Child,
    port: u16,
    /// The network namespace whose loopback it listens on (`None`: the
    /// test's own).
    netns: Option<&'static str>,
}

impl Exporter {
    fn start(port: u16, args: &[&str], wrapper: Option<&[&str]>) -> Exporter {
        let bin = env!("CARGO_BIN_EXE_ipvs-exporter");
        let listen = format!("--web.listen-address=127.0.0.1:{port}");
        let command = match wrapper {
            Some(wrapper) => {
                let mut c = Command::new(wrapper[0]);
                c.args(&wrapper[1..]);
                c.arg(format!("exec {bin} {listen} {}", args.join(" ")));
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.arg(&listen).args(args);
                c
            }
        };
        Exporter::spawn(command, port, None)
    }

    /// Runs `bin --web.listen-address=127.0.0.1:PORT ARGS` inside the
    /// namespace `/run/netns/NETNS` (`ip netns exec`, so its `/proc/net`
    /// is that namespace's).
    fn start_in(netns: &'static str, bin: &str, port: u16, args: &[&str]) -> Exporter {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns, bin])
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args);
        Exporter::spawn(command, port, Some(netns))
    }

    fn spawn(mut command: Command, port: u16, netns: Option<&'static str>) -> Exporter {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let exporter = Exporter { child, port, netns };
        let started = Instant::now();
        while exporter.connect().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{command:?} did not listen"
            );
            sleep(Duration::from_millis(100));
        }
        exporter
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        match self.netns {
            None => TcpStream::connect(("127.0.0.1", self.port)),
            Some(netns) => {
                let path = format!("/run/netns/{netns}");
                ipvs::netns::in_netns(Path::new(&path), || {
                    TcpStream::connect(("127.0.0.1", self.port))
                })
                .map_err(std::io::Error::other)?
            }
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        lab_harness::http::get(self.connect().expect("connect"), path).expect("scrape")
    }

    /// Stops it with SIGTERM and returns its log.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        run_in(None, &format!("kill -TERM {}", self.child.id()));
        let status = self.child.wait().expect("wait");
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        (status, log)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET of `path` on the exporter at `port`; the status and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    lab_harness::http::get(TcpStream::connect(("127.0.0.1", port))?, path)
}

type Series = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// The samples of a text exposition.
fn parse(text: &str) -> Series {
    let mut series = Series::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name_labels, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match name_labels.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (name_labels, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((key, after)) = rest.split_once("=\"") {
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(if e == 'n' { '\n' } else { e });
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            map.insert(key.trim_start_matches(',').to_string(), value);
            rest = &after[end..];
        }
        series.insert((name.to_string(), map), value.parse().expect("value"));
    }
    series
}

/// The values of metric `name` in the director's namespace, by the
/// labels other than `netns`, as text `proto local remote [extra]`.
fn of(series: &Series, name: &str, extra: &[&str]) -> BTreeMap<String, f64> {
    series
        .iter()
        .filter(|((n, labels), _)| {
            n == name && labels.get("netns").map(String::as_str) == Some(DIRECTOR)
        })
        .map(|((_, l), v)| {
            let local = if l["proto"] == "FWM" {
                format!(
                    "FWM {}",
                    u32::from_str_radix(&l["local_mark"], 16).expect("hex mark")
                )
            } else {
                format!(
                    "{} {}",
                    l["proto"],
                    join(&l["local_address"], &l["local_port"])
                )
            };
            let mut key = local;
            if let (Some(a), Some(p)) = (l.get("remote_address"), l.get("remote_port")) {
                key.push_str(" -> ");
                key.push_str(&join(a, p));
            }
            for e in extra {
                key.push(' ');
                key.push_str(&l[*e]);
            }
            (key, *v)
        })
        .collect()
}

fn join(address: &str, port: &str) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// ipvsadm's listing as `(service or service -> backend, columns)`.
fn ipvsadm(options: &str) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    let mut service = String::new();
    for line in director(&format!("ipvsadm -Ln {options}")).lines().skip(3) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&"->") {
            rows.push((
                format!("{service} -> {}", fields[1]),
                fields[2..].iter().map(|s| s.to_string()).collect(),
            ));
        } else if fields.len() >= 2 {
            service = format!("{} {}", fields[0], fields[1]);
            rows.push((
                service.clone(),
                fields[2..].iter().map(|s| s.to_string()).collect(),
            ));
        }
    }
    rows
}

/// Waits until the counters ipvsadm shows stay the same over more than
/// one of the kernel's 2 s folds of its per-CPU counters. Only the
/// counters: the rates below them in /proc/net/ip_vs_stats decay for tens
/// of seconds after traffic (an earlier test's), and no test here
/// compares rates after this wait.
fn counters_settled() {
    const COUNTERS: &str = "ipvsadm -Ln --stats --exact; head -n 3 /proc/net/ip_vs_stats";
    let started = Instant::now();
    let mut last = director(COUNTERS);
    loop {
        sleep(Duration::from_millis(2500));
        let now = director(COUNTERS);
        if now == last {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the counters still move after 60 s:\n{now}"
        );
        last = now;
    }
}

/// The director's totals line of /proc/net/ip_vs_stats: connections,
/// packets in, packets out, bytes in, bytes out.
fn director_totals() -> Vec<u64> {
    director("cat /proc/net/ip_vs_stats")
        .lines()
        .nth(2)
        .expect("totals line")
        .split_whitespace()
        .map(|h| u64::from_str_radix(h, 16).expect("hex"))
        .collect()
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn every_counter_weight_and_count_equals_ipvsadm() {
    let _lab = lab();
    let exporter = Exporter::start(10311, &["--netns", DIRECTOR], None);
    // No traffic flows now, and the kernel has folded the last of an
    // earlier test's into the counters: one scrape and ipvsadm see the
    // same moment.
    counters_settled();
    let (status, text) = exporter.get("/metrics");
    let stats = ipvsadm("--stats --exact");
    let persistent = ipvsadm("--persistent-conn");
    assert_eq!(status, 200);
    let series = parse(&text);
    assert_eq!(
        series[&(
            "ipvs_up".to_string(),
            BTreeMap::from([("netns".into(), DIRECTOR.into())])
        )],
        1.0
    );

    let mut compared = 0;
    for (prefix, names) in [("ipvs_service", true), ("ipvs_backend", false)] {
        let _ = names;
        let families = [
            "connections",
            "incoming_packets",
            "outgoing_packets",
            "incoming_bytes",
            "outgoing_bytes",
        ];
        for (i, family) in families.iter().enumerate() {
            let ours = of(&series, &format!("{prefix}_{family}_total"), &[]);
            let theirs: BTreeMap<String, f64> = stats
                .iter()
                .filter(|(key, _)| key.contains(" -> ") == (prefix == "ipvs_backend"))
                .map(|(key, columns)| (key.clone(), columns[i].parse().expect("number")))
                .collect();
            assert_eq!(ours, theirs, "{prefix}_{family}_total");
            compared += ours.len();
        }
    }
    // --persistent-conn: Weight PersistConn ActiveConn InActConn.
    for (column, name) in [
        (0, "ipvs_backend_weight"),
        (1, "ipvs_backend_connections_persistent"),
        (2, "ipvs_backend_connections_active"),
        (3, "ipvs_backend_connections_inactive"),
    ] {
        let ours = of(&series, name, &[]);
        let theirs: BTreeMap<String, f64> = persistent
            .iter()
            .filter(|(key, _)| key.contains(" -> "))
            .map(|(key, columns)| (key.clone(), columns[column].parse().expect("number")))
            .collect();
        assert_eq!(ours, theirs, "{name}");
        compared += ours.len();
    }
    // Something was really compared, with traffic behind it.
    assert!(compared > 100, "{compared}");
    assert!(
        of(&series, "ipvs_service_connections_total", &[])
            .values()
            .sum::<f64>()
            >= 20.0
    );

    // The global counters equal the kernel's /proc/net/ip_vs_stats.
    let totals = director_totals();
    for (i, name) in [
        "ipvs_connections_total",
        "ipvs_incoming_packets_total",
        "ipvs_outgoing_packets_total",
        "ipvs_incoming_bytes_total",
        "ipvs_outgoing_bytes_total",
    ]
    .iter()
    .enumerate()
    {
        let key = (
            name.to_string(),
            BTreeMap::from([("netns".into(), DIRECTOR.into())]),
        );
        assert_eq!(series[&key], totals[i] as f64, "{name}");
    }
    let (status, log) = exporter.stop();
    assert!(status.success(), "exit {status}: {log}");
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn filtered_services_and_per_service_backends_on_the_real_table() {
    let _lab = lab();
    let exporter = Exporter::start(
        10311,
        &[
            "--netns",
            DIRECTOR,
            "--collector.services.exclude=UDP/.*",
            "--collector.backends.labels=per-service",
        ],
        None,
    );
    // The connection counts of one moment: the setup's closed connections
    // expire from the table while the test reads it, so a scrape counts
    // only if ipvsadm said the same just before and just after it.
    let (status, text, persistent) = (0..10)
        .find_map(|_| {
            let before = ipvsadm("--persistent-conn");
            let (status, text) = exporter.get("/metrics");
            let after = ipvsadm("--persistent-conn");
            (before == after).then_some((status, text, after))
        })
        .expect("the connection counts changed during each of 10 scrapes");
    let stats = ipvsadm("--stats --exact");
    assert_eq!(status, 200);
    let series = parse(&text);
    let kept = |key: &str| !key.starts_with("UDP ");

    // The excluded services are gone, backends and all; the others are
    // there, and their backends are one series per service.
    let services = of(&series, "ipvs_service_connections_total", &[]);
    let expected: Vec<String> = stats
        .iter()
        .filter(|(key, _)| !key.contains(" -> ") && kept(key))
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(services.keys().cloned().collect::<Vec<_>>(), {
        let mut e = expected.clone();
        e.sort();
        e
    });
    assert!(expected.len() >= 4, "{expected:?}");
    assert!(
        !text.contains("proto=\"UDP\""),
        "an excluded service is exported"
    );
    assert!(!text.contains("remote_address="), "backend labels kept");
    assert!(
        !text.contains("ipvs_backend_info{"),
        "info of aggregated backends"
    );

    // Each service's backend series is the sum of its real servers', as
    // ipvsadm lists them at the same moment.
    let sum_by_service = |rows: &[(String, Vec<String>)], column: usize| {
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for (key, columns) in rows {
            if let Some((service, _)) = key.split_once(" -> ") {
                if kept(service) {
                    *sums.entry(service.to_string()).or_default() +=
                        columns[column].parse::<f64>().expect("number");
                }
            }
        }
        sums
    };
    for (i, family) in [
        "connections",
        "incoming_packets",
        "outgoing_packets",
        "incoming_bytes",
        "outgoing_bytes",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("ipvs_backend_{family}_total");
        assert_eq!(of(&series, &name, &[]), sum_by_service(&stats, i), "{name}");
    }
    for (column, name) in [
        (0, "ipvs_backend_weight"),
        (1, "ipvs_backend_connections_persistent"),
        (2, "ipvs_backend_connections_active"),
        (3, "ipvs_backend_connections_inactive"),
    ] {
        assert_eq!(
            of(&series, name, &[]),
            sum_by_service(&persistent, column),
            "{name}"
        );
    }
    assert!(
        of(&series, "ipvs_backend_connections_total", &[])
            .values()
            .sum::<f64>()
            >= 10.0,
        "traffic behind the sums"
    );
    let (status, log) = exporter.stop();
    assert!(status.success(), "exit {status}: {log}");
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn connection_states_and_templates_equal_ipvsadm() {
    let _lab = lab();
    let exporter = Exporter::start(10312, &["--netns", DIRECTOR], None);
    let (_, text) = exporter.get("/metrics");
    let listing = director("ipvsadm -Lcn");
    let series = parse(&text);

    // ipvsadm -Lcn per (template?, state, real server address).
    let mut theirs: BTreeMap<(bool, String, String), f64> = BTreeMap::new();
    for line in listing.lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [pro, _expire, state, source, _virt, dest] = f[..] else {
            panic!("unexpected ipvsadm -Lcn line {line:?}")
        };
        let template =
            pro == "IP" || state == "ASSURED" || (state == "NONE" && source.ends_with(":0"));
        let dest_ip = dest.rsplit_once(':').expect("addr:port").0;
        let dest_ip = dest_ip.trim_start_matches('[').trim_end_matches(']');
        *theirs
            .entry((template, state.to_string(), dest_ip.to_string()))
            .or_default() += 1.0;
    }
    let mut ours: BTreeMap<(bool, String, String), f64> = BTreeMap::new();
    for ((name, labels), value) in &series {
        let template = match name.as_str() {
            "ipvs_backend_connection_states" => false,
            "ipvs_backend_persistence_templates" => true,
            _ => continue,
        };
        if labels.get("netns").map(String::as_str) != Some(DIRECTOR) {
            continue;
        }
        *ours
            .entry((
                template,
                labels["state"].clone(),
                labels["remote_address"].clone(),
            ))
            .or_default() += value;
    }
    assert_eq!(ours, theirs);
    assert!(ours.keys().any(|k| k.0), "no template seen");
    assert!(
        ours.keys().any(|k| k.1 == "ESTABLISHED"),
        "no ESTABLISHED seen"
    );
    // Connections of the fwmark service count under it (they name the
    // VIP 198.18.0.20, which has no service of its own).
    let fwm = of(&series, "ipvs_backend_connection_states", &["state"]);
    assert!(fwm.keys().any(|k| k.starts_with("FWM 1 -> ")), "{fwm:?}");
    assert!(!fwm.keys().any(|k| k.contains("198.18.0.20")), "{fwm:?}");
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn promtool_finds_nothing_to_lint() {
    let _lab = lab();
    let exporter = Exporter::start(10313, &["--netns", DIRECTOR], None);
    let (_, text) = exporter.get("/metrics");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, lab/packages.txt)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = promtool.wait_with_output().expect("promtool");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn fifty_concurrent_scrapers_for_ten_seconds_all_answered() {
    let _lab = lab();
    let exporter = Exporter::start(10314, &["--netns", DIRECTOR], None);
    let port = exporter.port;
    // Ten seconds are some 35 scrapes each in the lab's VM (1,739 in all
    // in one run), every one of them with 49 others under way.
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, Vec::new());
                while Instant::now() < deadline {
                    match http_get(port, "/metrics") {
                        Ok((200, body))
                            if body.contains("ipvs_up{netns=\"/run/netns/lab-director\"} 1") =>
                        {
                            ok += 1
                        }
                        Ok((status, body)) => {
                            failed.push(format!("{status}: {}", &body[..body.len().min(200)]))
                        }
                        Err(error) => failed.push(error.to_string()),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        let (ok, failed) = worker.join().expect("worker");
        assert!(failed.is_empty(), "failed scrapes: {failed:?}");
        assert!(ok > 0, "a scraper got no answer in 10 s");
        total += ok;
    }
    eprintln!("50 scrapers, 10 s: {total} scrapes answered, none failed");
    let (status, log) = exporter.stop();
    assert!(status.success(), "exit {status}: {log}");
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn without_cap_net_admin_it_serves_ipvs_up_0_and_says_why_once() {
    let _lab = lab();
    let exporter = Exporter::start(
        10315,
        &[],
        Some(&["capsh", "--drop=cap_net_admin", "--", "-c"]),
    );
    for _ in 0..3 {
        let (status, text) = exporter.get("/metrics");
        assert_eq!(status, 200);
        assert!(text.contains("\nipvs_up 0\n"), "{text}");
    }
    let (status, log) = exporter.stop();
    assert!(status.success(), "exit {status}: {log}");
    let why: Vec<&str> = log.lines().filter(|l| l.contains("level=warn")).collect();
    assert_eq!(why.len(), 1, "{log}");
    assert!(why[0].contains("needs CAP_NET_ADMIN"), "{log}");
}

/// Where node_exporter's ipvs collector and ours export the same thing:
/// its name and ours. Both exporters' output decides it: these are all
/// the `node_ipvs_*` names node_exporter 1.5.0 (Debian 12) emits, and each
/// is ours without the `node_` prefix. Ours has more (per-service and
/// per-backend counters, persistent counts, states, templates, info);
/// node_exporter has nothing we lack.
const NODE_EXPORTER_IPVS: [(&str, &str); 8] = [
    ("node_ipvs_connections_total", "ipvs_connections_total"),
    (
        "node_ipvs_incoming_packets_total",
        "ipvs_incoming_packets_total",
    ),
    (
        "node_ipvs_outgoing_packets_total",
        "ipvs_outgoing_packets_total",
    ),
    (
        "node_ipvs_incoming_bytes_total",
        "ipvs_incoming_bytes_total",
    ),
    (
        "node_ipvs_outgoing_bytes_total",
        "ipvs_outgoing_bytes_total",
    ),
    (
        "node_ipvs_backend_connections_active",
        "ipvs_backend_connections_active",
    ),
    (
        "node_ipvs_backend_connections_inactive",
        "ipvs_backend_connections_inactive",
    ),
    ("node_ipvs_backend_weight", "ipvs_backend_weight"),
];

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn overlapping_series_equal_node_exporters_ipvs_collector() {
    let _lab = lab();
    // Both in the director's namespace, where node_exporter's collector
    // reads /proc/net/ip_vs and ip_vs_stats; ours without --netns, so
    // neither has a netns label.
    let node = Exporter::start_in(
        "lab-director",
        "/usr/bin/prometheus-node-exporter",
        10316,
        &["--collector.disable-defaults", "--collector.ipvs"],
    );
    let ours = Exporter::start_in(
        "lab-director",
        env!("CARGO_BIN_EXE_ipvs-exporter"),
        10317,
        &[],
    );
    let scrape = |exporter: &Exporter| {
        let (status, text) = exporter.get("/metrics");
        assert_eq!(status, 200, "{text}");
        text
    };
    // Only the ipvs collector's series: the rest of node_exporter's
    // (go_*, process_*, promhttp_*, node_scrape_*) change every scrape.
    let node_ipvs = |text: &str| -> Series {
        parse(text)
            .into_iter()
            .filter(|((name, _), _)| name.starts_with("node_ipvs_"))
            .collect()
    };
    // No traffic flows, but the kernel still expires connections (FIN_WAIT,
    // TIME_WAIT, UDP), which moves the active and inactive counts: use a
    // scrape of ours between two of node_exporter's that agree.
    let (node_text, ours_text) = (0..5)
        .find_map(|_| {
            let before = scrape(&node);
            let between = scrape(&ours);
            let after = scrape(&node);
            (node_ipvs(&before) == node_ipvs(&after)).then_some((before, between))
        })
        .expect("node_exporter's ipvs series kept changing");
    if let Ok(out) = std::env::var("LAB_OUT") {
        // Both expositions, for a reader of the lab's results.
        let out = Path::new(&out);
        std::fs::write(out.join("node_exporter-ipvs.prom"), &node_text).expect("write");
        std::fs::write(out.join("ipvs-exporter-beside-node.prom"), &ours_text).expect("write");
    }
    let theirs = node_ipvs(&node_text);
    let ours_series = parse(&ours_text);

    // The same type (counter or gauge) for each name and its match.
    let types = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(name, kind)| (name.to_string(), kind.to_string()))
            .collect()
    };
    let (node_types, our_types) = (types(&node_text), types(&ours_text));
    for (node, ours) in NODE_EXPORTER_IPVS {
        assert_eq!(node_types.get(node), our_types.get(ours), "{node} / {ours}");
    }

    let names: std::collections::BTreeSet<&str> =
        theirs.keys().map(|(name, _)| name.as_str()).collect();
    let expected: std::collections::BTreeSet<&str> =
        NODE_EXPORTER_IPVS.iter().map(|(node, _)| *node).collect();
    assert_eq!(
        names, expected,
        "node_exporter's ipvs names are not those of NODE_EXPORTER_IPVS"
    );
    let mapped: Series = theirs
        .iter()
        .map(|((name, labels), value)| {
            let ours = NODE_EXPORTER_IPVS
                .iter()
                .find(|(node, _)| node == name)
                .map(|(_, ours)| ours.to_string())
                .expect("mapped");
            ((ours, labels.clone()), *value)
        })
        .collect();
    let overlap: Series = ours_series
        .into_iter()
        .filter(|((name, _), _)| NODE_EXPORTER_IPVS.iter().any(|(_, ours)| ours == name))
        .collect();

    // Every series on either side, with what the other side has for it.
    let mut differences = Vec::new();
    for key in mapped.keys().chain(overlap.keys()) {
        let (a, b) = (mapped.get(key), overlap.get(key));
        if a != b && !differences.iter().any(|(k, _, _)| k == key) {
            differences.push((key.clone(), a.copied(), b.copied()));
        }
    }
    assert!(
        differences.is_empty(),
        "(series, node_exporter, ipvs-exporter) differing:\n{}",
        differences
            .iter()
            .map(|(key, a, b)| format!("{key:?}: {a:?} vs {b:?}\n"))
            .collect::<String>()
    );
    // The whole table was there: 5 globals and 3 series for each of the
    // 13 real servers, fwmark and IPv6 ones among them, with traffic.
    assert_eq!(mapped.len(), 5 + 3 * 13, "{mapped:#?}");
    let labelled = |name: &str, label: &str, value: &str| {
        mapped
            .keys()
            .any(|(n, l)| n == name && l.get(label).map(String::as_str) == Some(value))
    };
    assert!(labelled("ipvs_backend_weight", "local_mark", "00000001"));
    assert!(labelled("ipvs_backend_weight", "local_mark", "00000003"));
    assert!(labelled(
        "ipvs_backend_weight",
        "remote_address",
        "2001:db8:1::13"
    ));
    let connections = ("ipvs_connections_total".to_string(), BTreeMap::new());
    assert!(mapped[&connections] >= 20.0, "{mapped:#?}");
    eprintln!(
        "node_exporter and ipvs-exporter agree on all {} overlapping series",
        mapped.len()
    );
}

/// Three connections to 198.18.0.10:80, each reset by the client once
/// established: the kernel keeps them in CLOSE for 10 s.
fn three_short_lived_connections() {
    client(
        "python3 -c 'import socket, struct\n\
         for _ in range(3):\n    \
             s = socket.create_connection((\"198.18.0.10\", 80), timeout=10)\n    \
             s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(\"ii\", 1, 0))\n    \
             s.close()'",
    );
}

/// Connections in CLOSE in the director's table now: only those of
/// [`three_short_lived_connections`] (the lab's others close normally, into
/// TIME_WAIT).
fn closed_entries() -> f64 {
    director("awk '$8 == \"CLOSE\"' /proc/net/ip_vs_conn | wc -l")
        .trim()
        .parse()
        .expect("a count")
}

/// Waits (at most 30 s) until no connection is in CLOSE.
fn wait_until_none_closed() {
    let started = Instant::now();
    while closed_entries() != 0.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "CLOSE entries did not expire"
        );
        sleep(Duration::from_millis(500));
    }
}

/// The director's connections in CLOSE in a scrape, and the age of the
/// connection-table data.
fn scanned_closed(exporter: &Exporter) -> (f64, f64) {
    let (status, text) = exporter.get("/metrics");
    assert_eq!(status, 200);
    let series = parse(&text);
    let director = |labels: &BTreeMap<String, String>| {
        labels.get("netns").map(String::as_str) == Some(DIRECTOR)
    };
    let closed = series
        .iter()
        .filter(|((name, labels), _)| {
            name == "ipvs_backend_connection_states"
                && director(labels)
                && labels["state"] == "CLOSE"
        })
        .map(|(_, v)| v)
        .sum();
    let age = series
        .iter()
        .find(|((name, labels), _)| name == "ipvs_conntable_scan_age_seconds" && director(labels))
        .map(|(_, v)| *v)
        .expect("ipvs_conntable_scan_age_seconds of the director");
    (closed, age)
}

// Named to run after the tests that compare the table with ipvsadm at one
// moment (the test binary runs in name order): this one takes over a
// minute, during which the lab's first connections start to expire.
#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn scans_of_the_conn_table_are_reused_within_the_minimum_interval() {
    let _lab = lab();
    wait_until_none_closed();
    let interval = Duration::from_secs(20);
    let exporter = Exporter::start(
        10316,
        &[
            "--netns",
            DIRECTOR,
            "--no-collector.services",
            "--collector.connections.min-interval=20s",
        ],
        None,
    );
    // The exporter scans once at start (for /-/ready), so a first scrape
    // either joins that scan or reuses it: nothing in CLOSE, and the
    // time of that scan is the scrape's time less the age.
    let (closed, age) = scanned_closed(&exporter);
    let scan_started = Instant::now() - Duration::from_secs_f64(age);
    assert!(
        age < interval.as_secs_f64(),
        "age {age} of the first scrape"
    );
    assert_eq!(closed, 0.0);

    // Three connections in CLOSE; a scrape within the interval keeps the
    // old counts.
    three_short_lived_connections();
    assert_eq!(
        closed_entries(),
        3.0,
        "the three connections are in the table"
    );
    let (closed, age) = scanned_closed(&exporter);
    assert!(
        scan_started.elapsed() < interval,
        "the lab was too slow to scrape within the interval"
    );
    assert_eq!(closed, 0.0, "rescanned within the interval");
    assert!(
        age > 0.0 && age < interval.as_secs_f64(),
        "age {age} within the interval"
    );
    wait_until_none_closed();

    // After the interval a scrape scans again and sees new entries.
    sleep(interval.saturating_sub(scan_started.elapsed()) + Duration::from_millis(500));
    three_short_lived_connections();
    let (closed, age) = scanned_closed(&exporter);
    assert_eq!(age, 0.0, "no rescan after the interval");
    assert_eq!(closed, 3.0, "the new scan missed the new connections");
    // Not waited out: no later test counts connections in CLOSE, and one
    // that did would wait for them first, as this one does.
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn two_namespaces_are_two_labelled_tables_and_a_missing_one_is_ipvs_up_0() {
    let _lab = lab();
    // A second namespace with a table of its own, unlike the director's.
    const OTHER: &str = "/run/netns/lab-exporter-other";
    const MISSING: &str = "/run/netns/lab-exporter-missing";
    run_in(
        None,
        "ip netns del lab-exporter-other 2>/dev/null; ip netns add lab-exporter-other && \
         ip -n lab-exporter-other link set lo up && \
         ip netns exec lab-exporter-other ipvsadm -A -t 198.18.50.1:8080 -s rr && \
         ip netns exec lab-exporter-other ipvsadm -a -t 198.18.50.1:8080 -r 198.18.51.1:8080 -m -w 5",
    );
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            run_in(None, "ip netns del lab-exporter-other 2>/dev/null || true");
        }
    }
    let _cleanup = Cleanup;

    let exporter = Exporter::start(
        10317,
        &["--netns", DIRECTOR, "--netns", OTHER, "--netns", MISSING],
        None,
    );
    let (status, text) = exporter.get("/metrics");
    assert_eq!(status, 200, "{text}");
    let series = parse(&text);
    let value = |name: &str, netns: &str| {
        series
            .iter()
            .find(|((n, l), _)| n == name && l.get("netns").map(String::as_str) == Some(netns))
            .map(|(_, v)| *v)
    };
    assert_eq!(value("ipvs_up", ""), Some(1.0));
    assert_eq!(value("ipvs_up", DIRECTOR), Some(1.0));
    assert_eq!(value("ipvs_up", OTHER), Some(1.0));
    assert_eq!(value("ipvs_up", MISSING), Some(0.0), "{text}");

    // Each namespace's backends, by netns: the two tables stay apart.
    let weights = |netns: &str| -> BTreeMap<String, f64> {
        series
            .iter()
            .filter(|((n, l), _)| {
                n == "ipvs_backend_weight" && l.get("netns").map(String::as_str) == Some(netns)
            })
            .map(|((_, l), v)| {
                (
                    format!(
                        "{}:{} -> {}:{}",
                        l["local_address"], l["local_port"], l["remote_address"], l["remote_port"]
                    ),
                    *v,
                )
            })
            .collect()
    };
    let other = weights(OTHER);
    assert_eq!(
        other,
        BTreeMap::from([("198.18.50.1:8080 -> 198.18.51.1:8080".to_string(), 5.0)])
    );
    let director_weights = weights(DIRECTOR);
    assert!(
        director_weights.contains_key("198.18.0.10:80 -> 198.18.1.12:80"),
        "{director_weights:?}"
    );
    assert!(!director_weights.keys().any(|k| k.contains("198.18.50.1")));
    assert!(weights("").is_empty(), "the root namespace has no table");

    // The missing namespace: its four collectors failed, and one log line
    // names the path.
    assert_eq!(
        series
            .iter()
            .filter(|((n, l), v)| n == "ipvs_scrape_collector_success"
                && l.get("netns").map(String::as_str) == Some(MISSING)
                && **v == 0.0)
            .count(),
        4,
        "{text}"
    );
    exporter.get("/metrics");
    let (status, log) = exporter.stop();
    assert!(status.success(), "exit {status}: {log}");
    let why: Vec<&str> = log.lines().filter(|l| l.contains("level=warn")).collect();
    assert_eq!(why.len(), 1, "{log}");
    assert!(why[0].contains(MISSING), "{log}");
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn web_config_file_tls_and_basic_auth_through_the_binary() {
    let _lab = lab();
    // A CA and a server certificate for 127.0.0.1 made here, a bcrypt hash
    // of the password (cost 4: bcrypt is slow on purpose, and more so
    // under emulation).
    let dir = "/tmp/lab-exporter-tls";
    run_in(
        None,
        &format!(
            "rm -rf {dir} && mkdir -p {dir} && cd {dir} && \
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
               -keyout ca.key -out ca.crt -days 2 -subj /CN=lab-exporter-ca 2>/dev/null && \
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
               -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null && \
             printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' >ext && \
             openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
               -out server.crt -days 2 -extfile ext 2>/dev/null"
        ),
    );
    let hash = bcrypt::hash("right horse", 4).expect("bcrypt");
    std::fs::write(
        format!("{dir}/web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {dir}/server.crt\n  key_file: {dir}/server.key\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .expect("web.yml");
    let exporter = Exporter::start(
        10318,
        &[
            &format!("--web.config.file={dir}/web.yml"),
            "--netns",
            DIRECTOR,
        ],
        None,
    );
    let curl = |args: &str| -> (String, String) {
        let out = run_in(
            None,
            &format!(
                "curl -sS --max-time 20 -o {dir}/body -w '%{{http_code}}' {args} 2>{dir}/err; \
                 echo \" $?\"; cat {dir}/err"
            ),
        );
        let (code, rest) = out.split_once('\n').unwrap_or((&out, ""));
        (code.trim().to_string(), rest.to_string())
    };
    let url = "https://127.0.0.1:10318/metrics";
    let ca = format!("--cacert {dir}/ca.crt");

    let (code, err) = curl(&format!("{ca} -u 'prometheus:right horse' {url}"));
    assert_eq!(code, "200 0", "{err}");
    let body = std::fs::read_to_string(format!("{dir}/body")).expect("body");
    assert!(
        body.contains("ipvs_up{netns=\"/run/netns/lab-director\"} 1"),
        "{body}"
    );

    let (code, err) = curl(&format!("{ca} -u 'prometheus:wrong horse' {url}"));
    assert_eq!(code, "401 0", "{err}");
    let (code, err) = curl(&format!("{ca} {url}"));
    assert_eq!(code, "401 0", "no credentials: {err}");

    // Without the CA the client refuses the server (curl exit 60).
    let (code, _) = curl(&format!("-u 'prometheus:right horse' {url}"));
    assert_eq!(code, "000 60");

    // Plain HTTP to the TLS port: no HTTP answer (the server's TLS alert,
    // which curl 7.88 calls "HTTP/0.9", exit 1; or an empty reply, 52, or
    // a receive error, 56), and the server goes on.
    let (code, err) = curl("-u 'prometheus:right horse' http://127.0.0.1:10318/metrics");
    assert!(
        ["000 1", "000 52", "000 56"].contains(&code.as_str()),
        "plain HTTP to the TLS port: {code} {err}"
    );
    let (code, err) = curl(&format!("{ca} -u 'prometheus:right horse' {url}"));
    assert_eq!(code, "200 0", "after the plain-HTTP attempt: {err}");

    let (status, log) = exporter.stop();
    assert!(status.success(), "exit {status}: {log}");
}

// Named to run last (the binary runs its tests in name order): it unloads
// the ip_vs modules, which empties every table, and loads them again
// with the director's table restored, for the test binaries after it.
#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn without_the_ip_vs_module_it_serves_ipvs_up_0_says_why_once_loads_nothing_and_comes_back() {
    let _lab = lab();
    // Kernel module autoloading (genetlink asks for the IPVS family's
    // module) would undo the unloading: block ip_vs loads meanwhile.
    let blocker = "/etc/modprobe.d/lab-exporter-no-ip_vs.conf";
    struct Restore(&'static str);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
            run_in(None, "modprobe ip_vs");
            director(&format!("ipvsadm -C && ipvsadm -R <<'EOF'\n{TABLE}EOF"));
        }
    }
    let _restore = Restore(blocker);
    let up = |text: &str, netns: &str, value: u8| {
        text.contains(&format!("\nipvs_up{{netns=\"{netns}\"}} {value}\n"))
    };
    let service = "ipvs_service_connections_total{netns=\"/run/netns/lab-director\",proto=\"TCP\",local_address=\"198.18.0.10\",local_port=\"80\"";

    // Unloaded under a running exporter, which scraped the table just
    // before: nothing it holds keeps the module in.
    let exporter = Exporter::start(10319, &["--netns", DIRECTOR], None);
    let (status, text) = exporter.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        up(&text, "/run/netns/lab-director", 1) && text.contains(service),
        "{text}"
    );
    unload_ip_vs();
    std::fs::write(blocker, "install ip_vs /bin/false\n").expect("modprobe.d");
    for _ in 0..3 {
        let (status, text) = exporter.get("/metrics");
        assert_eq!(status, 200);
        assert!(up(&text, "", 0), "{text}");
        assert!(up(&text, "/run/netns/lab-director", 0), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("ipvs_service_")),
            "{text}"
        );
    }
    let modules = run_in(None, "grep -c '^ip_vs' /proc/modules || true");
    assert_eq!(modules.trim(), "0", "the exporter loaded IPVS");

    // Loaded again and the table made again: served without a restart.
    std::fs::remove_file(blocker).expect("modprobe.d");
    run_in(None, "modprobe ip_vs");
    director(&format!("ipvsadm -C && ipvsadm -R <<'EOF'\n{TABLE}EOF"));
    let (status, text) = exporter.get("/metrics");
    assert_eq!(status, 200);
    assert!(up(&text, "", 1), "{text}");
    assert!(
        up(&text, "/run/netns/lab-director", 1) && text.contains(service),
        "{text}"
    );

    let (status, log) = exporter.stop();
    assert!(status.success(), "exit {status}: {log}");
    // One line per namespace while it was gone, each saying why.
    let why: Vec<&str> = log.lines().filter(|l| l.contains("level=warn")).collect();
    assert_eq!(why.len(), 2, "{log}");
    for line in why {
        assert!(
            line.contains("IPVS is not loaded: /proc/net/ip_vs does not exist (modprobe ip_vs)"),
            "{log}"
        );
    }
}

/// The value of the one sample of `name` in the director's namespace whose
/// labels include `labels`.
fn director_value(series: &Series, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .find(|((n, l), _)| {
            n == name
                && l.get("netns").map(String::as_str) == Some(DIRECTOR)
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
}

/// The rate columns of `ipvsadm -Ln --rate --exact`, by row.
fn ipvsadm_rates() -> BTreeMap<String, Vec<f64>> {
    ipvsadm("--rate --exact")
        .into_iter()
        .map(|(row, columns)| {
            let values = columns.iter().map(|c| c.parse().expect("rate")).collect();
            (row, values)
        })
        .collect()
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn director_state_equals_ipvsadm_and_sysctl_and_rates_equal_ipvsadm_rate() {
    let _lab = lab();
    director(
        "ip link show sync0 >/dev/null 2>&1 || ip link add sync0 type dummy; \
         ip link set sync0 multicast on up; \
         ipvsadm --set 901 121 301; \
         ipvsadm --start-daemon master --mcast-interface sync0 --syncid 5; \
         ipvsadm --start-daemon backup --mcast-interface sync0 --syncid 6 --mcast-port 8850; \
         sysctl -qw net.ipv4.vs.drop_entry=3 net.ipv4.vs.expire_nodest_conn=1",
    );
    // Put back as the other tests expect it, even if this one fails:
    // drop_entry=3 drops connection entries at random.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "exec", "lab-director", "sh", "-c"])
                .arg(
                    "ipvsadm --stop-daemon master; ipvsadm --stop-daemon backup; \
                     ipvsadm --set 900 120 300; \
                     sysctl -qw net.ipv4.vs.drop_entry=0 net.ipv4.vs.expire_nodest_conn=0",
                )
                .stderr(Stdio::null())
                .status();
        }
    }
    let _restore = Restore;
    let exporter = Exporter::start(
        10311,
        &["--netns", DIRECTOR, "--collector.services.rates"],
        None,
    );
    assert_eq!(exporter.get("/-/healthy").0, 200);
    let started = Instant::now();
    while exporter.get("/-/ready").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        sleep(Duration::from_millis(100));
    }

    let series = parse(&exporter.get("/metrics").1);
    // ipvsadm -L --daemon, line for line, from ipvs_sync_daemon_info.
    let mut daemons: Vec<String> = series
        .keys()
        .filter(|(n, l)| {
            n == "ipvs_sync_daemon_info" && l.get("netns").map(String::as_str) == Some(DIRECTOR)
        })
        .map(|(_, l)| {
            format!(
                "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})",
                l["state"],
                l["interface"],
                l["sync_id"],
                l["max_packet_len"],
                l["multicast_group"],
                l["multicast_port"],
                l["multicast_ttl"]
            )
        })
        .collect();
    daemons.sort();
    let mut shown: Vec<String> = director("ipvsadm -L --daemon")
        .lines()
        .map(str::to_string)
        .collect();
    shown.sort();
    assert_eq!(daemons, shown);
    for state in ["master", "backup"] {
        let running = director_value(&series, "ipvs_sync_daemon_running", &[("state", state)]);
        assert_eq!(running, Some(1.0), "{state}");
    }

    // ipvsadm -L --timeout: "Timeout (tcp tcpfin udp): 901 121 301".
    let timeouts = director("ipvsadm -L --timeout");
    let numbers: Vec<f64> = timeouts
        .rsplit(':')
        .next()
        .expect("timeouts")
        .split_whitespace()
        .map(|n| n.parse().expect("seconds"))
        .collect();
    for (protocol, seconds) in ["tcp", "tcpfin", "udp"].into_iter().zip(&numbers) {
        let value = director_value(&series, "ipvs_timeout_seconds", &[("protocol", protocol)]);
        assert_eq!(value, Some(*seconds), "{protocol}: {timeouts}");
    }
    assert_eq!(numbers, [901.0, 121.0, 301.0]);

    // sysctl net.ipv4.vs: every setting exported is the kernel's.
    let sysctl: BTreeMap<String, Vec<f64>> = director("sysctl net.ipv4.vs")
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .filter_map(|(name, value)| {
            let numbers: Option<Vec<f64>> =
                value.split_whitespace().map(|n| n.parse().ok()).collect();
            Some((name.strip_prefix("net.ipv4.vs.")?.to_string(), numbers?))
        })
        .collect();
    let mut compared = 0;
    for ((name, labels), value) in &series {
        let Some(setting) = name.strip_prefix("ipvs_sysctl_") else {
            continue;
        };
        if labels.get("netns").map(String::as_str) != Some(DIRECTOR) {
            continue;
        }
        let (file, field) = match setting {
            "sync_period" => ("sync_threshold", 1),
            other => (other, 0),
        };
        let kernel = sysctl.get(file).and_then(|v| v.get(field));
        assert_eq!(kernel, Some(value), "{name} against sysctl {file}");
        compared += 1;
    }
    assert!(compared >= 25, "{compared} settings exported");
    let active =
        |defense| director_value(&series, "ipvs_drop_defense_active", &[("defense", defense)]);
    assert_eq!(active("drop_entry"), Some(1.0));
    assert_eq!(active("drop_packet"), Some(0.0));

    // Rates under traffic: the kernel estimates every 2 s, so each value a
    // scrape exports is ipvsadm's just before or just after it.
    let mut traffic = Command::new("ip")
        .args(["netns", "exec", "lab-client", "sh", "-c"])
        .arg("for i in $(seq 400); do curl -s -o /dev/null --max-time 2 http://198.18.0.10/; done")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("traffic");
    sleep(Duration::from_secs(5));
    let before = ipvsadm_rates();
    let scraped = parse(&exporter.get("/metrics").1);
    let after = ipvsadm_rates();
    // The loop and its curl: a curl left running would make connections
    // under the next test's comparisons.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", traffic.id())])
        .status();
    let _ = traffic.wait();
    let families = [
        "connections_per_second",
        "incoming_packets_per_second",
        "outgoing_packets_per_second",
        "incoming_bytes_per_second",
        "outgoing_bytes_per_second",
    ];
    let mut moving = 0;
    for (column, family) in families.iter().enumerate() {
        for kind in ["service", "backend"] {
            for (row, value) in of(&scraped, &format!("ipvs_{kind}_{family}"), &[]) {
                let was = before.get(&row).map(|v| v[column]);
                let is = after.get(&row).map(|v| v[column]);
                assert!(
                    was == Some(value) || is == Some(value),
                    "{row} {family}: exported {value}, ipvsadm {was:?} then {is:?}"
                );
                moving += usize::from(value > 0.0);
            }
        }
    }
    assert!(moving > 0, "no rate moved under traffic");

    // Stopped with ipvsadm: the next scrape says so.
    director("ipvsadm --stop-daemon backup");
    let series = parse(&exporter.get("/metrics").1);
    let running = |state| director_value(&series, "ipvs_sync_daemon_running", &[("state", state)]);
    assert_eq!(
        (running("master"), running("backup")),
        (Some(1.0), Some(0.0))
    );
}
