//! The probers against real servers in the lab's namespaces, judged by the
//! weights they make the checker set in the kernel (`ipvsadm -Ln`) and the
//! reasons on `/status` and `/metrics` (`lab/test`, or `lab/run --
//! target/debug/deps/probes-HASH --ignored --test-threads=1`).
//!
//! lab-rs1 and lab-rs2 each run `tests/probes/servers.py` (one port per
//! behaviour: good, 500, wrong body, silent, trickling, HTTPS with a good,
//! a foreign and an expired certificate). The certificates are made here
//! with openssl, as the seed notes make theirs: a private self-signed CA
//! issuing the servers' certificates, and a second CA that the checker
//! does not trust. Addresses in 198.18.0.0/15 only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_harness::{director, lab_once, run_in, topology_script, Daemon};

/// Where certificates, configs and logs go: `$LAB_OUT` survives the VM.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("LAB_OUT").unwrap_or_else(|_| "/tmp".into()))
        .join("checker-probes");
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

/// The lab CA (`ca.pem`), a CA nobody trusts, and the servers' certificates
/// (`good`, `other-ca`, `expired`), all for rs1.lab.test.
fn make_pki(dir: &str) {
    run_in(
        None,
        &format!(
            "set -e; mkdir -p {dir}; cd {dir}
             ca() {{ openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                  -keyout $1.key -out $1.pem -days 3650 -subj \"/CN=$2\" 2>/dev/null; }}
             leaf() {{ openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                  -keyout $1.key -out $1.csr -subj /CN=rs1.lab.test 2>/dev/null
                  printf 'subjectAltName=DNS:rs1.lab.test\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' >$1.ext
                  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial \
                  -days $3 -extfile $1.ext -out $1.pem 2>/dev/null; }}
             ca ca 'lab probes CA'
             ca untrusted 'another CA'
             leaf good ca 365
             leaf other-ca untrusted 365
             leaf expired ca -1"
        ),
    );
}

/// The topology with two real servers, the certificates, and the test
/// servers in lab-rs1 and lab-rs2 (waited for).
fn setup() {
    let t = topology_script();
    run_in(None, &format!("{t} up 2 && {t} vip 198.18.0.10"));
    let dir = out_dir();
    let pki = dir.join("pki");
    make_pki(pki.to_str().expect("path"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/probes/servers.py");
    // Both started before either is waited for: a Python start takes
    // seconds under the lab's emulation, and the two overlap.
    let mut readies = Vec::new();
    for (ns, addr) in [("lab-rs1", "198.18.1.11"), ("lab-rs2", "198.18.1.12")] {
        let ready = dir.join(format!("{ns}.ready"));
        let _ = std::fs::remove_file(&ready);
        // In the background for the rest of the run (the VM goes with it).
        run_in(
            Some(ns),
            &format!(
                "python3 {script} {addr} {} {} >{} 2>&1 </dev/null &",
                pki.display(),
                ready.display(),
                dir.join(format!("{ns}.log")).display()
            ),
        );
        readies.push((ns, ready));
    }
    let start = Instant::now();
    for (ns, ready) in readies {
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{ns}'s servers did not start"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

const WEB: &str = "127.0.0.1:10311";

/// The checker in the director's namespace with `config`, killed when the
/// test ends (its log shown if the test failed).
fn start_checker(name: &str, config: &str) -> Daemon {
    let dir = out_dir();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, config).expect("write config");
    let log = dir.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&log);
    Daemon::start(
        env!("CARGO_BIN_EXE_ipvs-checker"),
        &[
            "--config.file".as_ref(),
            file.as_os_str(),
            "--log.level".as_ref(),
            "info".as_ref(),
            "--web.listen-address".as_ref(),
            WEB.as_ref(),
        ],
        &log,
        &format!("http://{WEB}/"),
        Duration::from_secs(30),
    )
}

/// The weights of `service`'s real servers, as `ipvsadm -Ln` prints them.
fn kernel_weights(service: &str) -> BTreeMap<String, u32> {
    director(&format!("ipvsadm -Ln -t {service}"))
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields.as_slice() {
                ["->", addr, _forward, weight, _, _] => {
                    Some((addr.to_string(), weight.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

/// Polls until every real server in `want` has its weight in the kernel;
/// returns how long that took, or panics after `limit` naming the ones
/// that differ.
fn wait_for_weights(service: &str, want: &BTreeMap<String, u32>, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let have = kernel_weights(service);
        let wrong: Vec<String> = want
            .iter()
            .filter(|(rs, w)| have.get(*rs) != Some(w))
            .map(|(rs, w)| format!("{rs}: {:?}, not {w}", have.get(rs)))
            .collect();
        if wrong.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?} (ipvsadm -Ln): {}",
            wrong.join("; ")
        );
        sleep(Duration::from_millis(100));
    }
}

/// Each real server's `/status` entry, by address.
fn status() -> BTreeMap<String, serde_json::Value> {
    let body = director(&format!("curl -sSf http://{WEB}/status"));
    let doc: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    doc["services"]
        .as_array()
        .expect("services")
        .iter()
        .flat_map(|s| s["real_servers"].as_array().expect("real servers").iter())
        .map(|rs| {
            (
                rs["address"].as_str().expect("address").to_owned(),
                rs.clone(),
            )
        })
        .collect()
}

/// The value of the sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

const SERVICE: &str = "198.18.0.10:80";

/// Every case but the dropped packets: what each real server is checked
/// with, the weight it must get and the reason it must fail with. The
/// healthy ones are served by lab-rs2's process, the failing ones by
/// lab-rs1's, so that the failing handshakes do not slow the healthy
/// answers (the lab VM is emulated: Python's TLS is slow there).
const CASES: [(&str, &str, u32, Option<&str>); 10] = [
    (
        "198.18.1.12:8001",
        "{type: http, body: \"^healthy\"}",
        5,
        None,
    ),
    ("198.18.1.11:8002", "{type: http}", 0, Some("status")),
    (
        "198.18.1.11:8003",
        "{type: http, body: \"^healthy\"}",
        0,
        Some("body"),
    ),
    ("198.18.1.11:8004", "{type: http}", 0, Some("timeout")),
    (
        "198.18.1.11:8005",
        "{type: http, body: \"^healthy\"}",
        0,
        Some("timeout"),
    ),
    (
        "198.18.1.12:8443",
        "{type: https, ca_file: pki/ca.pem, server_name: rs1.lab.test, body: \"^healthy\"}",
        5,
        None,
    ),
    (
        "198.18.1.11:8444",
        "{type: https, ca_file: pki/ca.pem, server_name: rs1.lab.test}",
        0,
        Some("tls_unknown_ca"),
    ),
    (
        "198.18.1.11:8445",
        "{type: https, ca_file: pki/ca.pem, server_name: rs1.lab.test}",
        0,
        Some("tls_expired"),
    ),
    // The good certificate, checked for another name (the destination
    // port is only a table entry: the check goes to 8443).
    (
        "198.18.1.11:9443",
        "{type: https, ca_file: pki/ca.pem, server_name: rs9.lab.test, port: 8443}",
        0,
        Some("tls_bad_name"),
    ),
    // The same, by IP: the certificate names no address.
    (
        "198.18.1.11:9444",
        "{type: https, ca_file: pki/ca.pem, port: 8443}",
        0,
        Some("tls_bad_name"),
    ),
];

/// Generous for the emulated VM, where a healthy Python server sometimes
/// takes most of a second to answer; fall 2 for the same reason.
const TIMEOUT_MS: u64 = 1500;
const INTERVAL_MS: u64 = 2000;
const FALL: u64 = 2;

fn config(real_servers: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "defaults:\n  interval: {INTERVAL_MS}ms\n  timeout: {TIMEOUT_MS}ms\n  rise: 1\n  fall: {FALL}\n\
         services:\n  - address: {SERVICE}\n    real_servers:\n"
    );
    for (addr, check) in real_servers {
        yaml.push_str(&format!(
            "      - {{address: {addr}, weight: 5, check: {check}}}\n"
        ));
    }
    yaml
}

/// The table with every real server at weight 5, as ipvsadm would set it.
fn table(real_servers: &[&str]) {
    let mut script = format!("ipvsadm -C && ipvsadm -A -t {SERVICE} -s wrr");
    for rs in real_servers {
        script.push_str(&format!(" && ipvsadm -a -t {SERVICE} -r {rs} -m -w 5"));
    }
    director(&script);
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn each_failure_zeroes_the_weight_with_its_own_reason() {
    let _lab = lab_once(setup);
    let addrs: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    table(&addrs);
    let checks: Vec<(&str, &str)> = CASES.iter().map(|c| (c.0, c.1)).collect();
    let _checker = start_checker("cases", &config(&checks));

    let want: BTreeMap<String, u32> = CASES.iter().map(|c| (c.0.to_owned(), c.2)).collect();
    let took = wait_for_weights(SERVICE, &want, Duration::from_secs(20));
    eprintln!("every weight as expected in the kernel after {took:?}");
    // Still so a few probes later: nothing flaps.
    sleep(Duration::from_millis(2 * INTERVAL_MS));
    assert_eq!(kernel_weights(SERVICE), want);

    let status = status();
    for (addr, _, weight, reason) in CASES {
        let rs = &status[addr];
        let health = if weight > 0 { "up" } else { "down" };
        assert_eq!(rs["health"], health, "{addr}: {rs}");
        assert_eq!(rs["weight"], weight, "{addr}: {rs}");
        // (A healthy server may have been slow once: its last error is
        // not judged.)
        if reason.is_some() {
            assert_eq!(rs["last_error"]["reason"].as_str(), reason, "{addr}: {rs}");
        }
    }
    // The good certificate's expiry, from the full handshake.
    assert!(
        status["198.18.1.12:8443"]["tls_cert_not_after"].as_i64() > Some(0),
        "{}",
        status["198.18.1.12:8443"]
    );
    assert_eq!(
        status["198.18.1.11:8004"]["last_error"]["message"],
        "no answer within 1.5s"
    );

    let metrics = director(&format!("curl -sSf http://{WEB}/metrics"));
    let rs_at = |rs: u8, port: u16| {
        format!(
            r#"proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",remote_address="198.18.1.{}",remote_port="{port}""#,
            10 + rs
        )
    };
    let rs = |port: u16| rs_at(1, port);
    for (port, reason) in [
        (8444, "tls_unknown_ca"),
        (8445, "tls_expired"),
        (9443, "tls_bad_name"),
        (8002, "status"),
        (8003, "body"),
    ] {
        let line = format!(
            "ipvs_checker_last_failure_info{{{},reason=\"{reason}\"}}",
            rs(port)
        );
        assert_eq!(sample(&metrics, &line), Some(1.0), "{line} in\n{metrics}");
    }
    // The silent and the trickling server: each probe ends at the timeout
    // (connect + response, averaged over the probes made), not when the
    // server is done (the trickle takes a minute). The slack is for the
    // emulated VM, where a timer fires up to a few hundred ms late.
    for port in [8004, 8005] {
        let phase = |phase: &str, what: &str| {
            sample(
                &metrics,
                &format!(
                    "ipvs_checker_probe_duration_seconds_{what}{{{},phase=\"{phase}\"}}",
                    rs(port)
                ),
            )
            .unwrap_or_else(|| panic!("{port} {phase} {what} in\n{metrics}"))
        };
        let probes = phase("response", "count");
        let per_probe = (phase("connect", "sum") + phase("response", "sum")) / probes;
        let timeout = TIMEOUT_MS as f64 / 1000.0;
        eprintln!("port {port}: {probes} probes, {per_probe:.3} s each (timeout {timeout} s)");
        assert!(
            per_probe >= timeout - 0.01 && per_probe < timeout + 0.5,
            "port {port}: {per_probe} s a probe"
        );
    }
    // HTTPS probes time their handshake.
    assert!(
        sample(
            &metrics,
            &format!(
                "ipvs_checker_probe_duration_seconds_count{{{},phase=\"tls\"}}",
                rs_at(2, 8443)
            )
        ) > Some(0.0),
        "{metrics}"
    );

    // `ipvs-checker status` shows the same.
    let table = director(&format!(
        "{} status --web.url http://{WEB}",
        env!("CARGO_BIN_EXE_ipvs-checker")
    ));
    eprintln!("{table}");
    assert!(table.starts_with("Prot LocalAddress:Port\n"), "{table}");
    assert!(table.contains("\nTCP  198.18.0.10:80\n"), "{table}");
    for (addr, _, weight, reason) in CASES {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("  -> {addr} ")))
            .unwrap_or_else(|| panic!("{addr} in\n{table}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let health = if weight > 0 { "up" } else { "down" };
        assert_eq!(fields[2], health, "{line}");
        assert_eq!(fields[6], weight.to_string(), "{line}");
        if let Some(reason) = reason {
            assert!(line.contains(&format!("  {reason} since ")), "{line}");
        }
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn dropped_packets_zero_the_weight_until_they_pass_again() {
    let _lab = lab_once(setup);
    const RS2: &str = "198.18.1.12:8001";
    table(&[RS2]);
    let _checker = start_checker(
        "dropped",
        &config(&[(RS2, "{type: http, body: \"^healthy\"}")]),
    );
    let up: BTreeMap<String, u32> = [(RS2.to_owned(), 5)].into();
    let down: BTreeMap<String, u32> = [(RS2.to_owned(), 0)].into();
    wait_for_weights(SERVICE, &up, Duration::from_secs(10));
    // Wait for the checker to have results, so that weight 5 is its doing.
    let start = Instant::now();
    while status()[RS2]["health"] != "up" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            status()[RS2]
        );
        sleep(Duration::from_millis(100));
    }

    // Limit: interval x fall + the timeout + 1 s of slack.
    let limit = Duration::from_millis(INTERVAL_MS * FALL + TIMEOUT_MS + 1000);
    for (name, drop, pass) in [
        (
            "netem loss 100%",
            "tc qdisc add dev eth0 root netem loss 100%",
            "tc qdisc del dev eth0 root",
        ),
        (
            "iptables DROP",
            "iptables -A INPUT -p tcp --dport 8001 -j DROP",
            "iptables -D INPUT -p tcp --dport 8001 -j DROP",
        ),
    ] {
        run_in(Some("lab-rs2"), drop);
        let took = wait_for_weights(SERVICE, &down, limit);
        eprintln!("{name}: weight 0 after {took:?}");
        let rs = &status()[RS2];
        assert_eq!(rs["health"], "down", "{rs}");
        assert_eq!(rs["last_error"]["reason"], "timeout", "{rs}");
        run_in(Some("lab-rs2"), pass);
        let took = wait_for_weights(SERVICE, &up, limit);
        eprintln!("{name} removed: weight 5 after {took:?}");
    }
}

/// How many connections lab-rs1's keep-alive server on `port` has logged.
fn connections_logged(port: u16) -> usize {
    let log = std::fs::read_to_string(out_dir().join("lab-rs1.log")).unwrap_or_default();
    log.lines()
        .filter(|l| *l == format!("{port} connection"))
        .count()
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn keep_alive_probes_share_one_connection_and_still_see_each_failure() {
    let _lab = lab_once(setup);
    const HTTP: &str = "198.18.1.11:8006";
    const HTTPS: &str = "198.18.1.11:8446";
    table(&[HTTP, HTTPS]);
    let pki = out_dir().join("pki");
    let (http_before, https_before) = (connections_logged(8006), connections_logged(8446));
    let _checker = start_checker(
        "keep-alive",
        &config(&[
            (HTTP, "{type: http, body: \"^healthy\", keep_alive: 1m}"),
            (
                HTTPS,
                &format!(
                    "{{type: https, body: \"^healthy\", ca_file: {}/ca.pem, server_name: rs1.lab.test, keep_alive: 1m}}",
                    pki.display()
                ),
            ),
        ]),
    );
    let up: BTreeMap<String, u32> = [(HTTP.to_owned(), 5), (HTTPS.to_owned(), 5)].into();
    wait_for_weights(SERVICE, &up, Duration::from_secs(10));
    let start = Instant::now();
    while [HTTP, HTTPS]
        .iter()
        .any(|rs| status()[*rs]["health"] != "up")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", status());
        sleep(Duration::from_millis(100));
    }
    // Four more probes each, over the connection of the first (and over
    // HTTPS, its one handshake).
    sleep(Duration::from_millis(4 * INTERVAL_MS));
    let metrics = director(&format!("curl -sSf http://{WEB}/metrics"));
    let responses = |rs: &str| {
        let (ip, port) = rs.split_once(':').expect("IP:port");
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("ipvs_checker_probe_duration_seconds_count{")
                    && l.contains(&format!("remote_address=\"{ip}\""))
                    && l.contains(&format!("remote_port=\"{port}\""))
                    && l.contains("phase=\"response\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert!(
        responses(HTTP) >= 4.0 && responses(HTTPS) >= 4.0,
        "{metrics}"
    );
    assert_eq!(
        connections_logged(8006) - http_before,
        1,
        "HTTP connections"
    );
    assert_eq!(
        connections_logged(8446) - https_before,
        1,
        "HTTPS connections"
    );

    // Limit: interval x fall + the timeout + 1 s of slack.
    let limit = Duration::from_millis(INTERVAL_MS * FALL + TIMEOUT_MS + 1000);
    for (name, rs, port, rule, reason) in [
        // As a stopped server: the kept connection and new ones reset.
        (
            "resets",
            HTTP,
            8006,
            "REJECT --reject-with tcp-reset",
            "connect",
        ),
        ("dropped packets", HTTPS, 8446, "DROP", "timeout"),
    ] {
        let rule = format!("INPUT -p tcp --dport {port} -j {rule}");
        run_in(Some("lab-rs1"), &format!("iptables -A {rule}"));
        let mut want = up.clone();
        want.insert(rs.to_owned(), 0);
        let took = wait_for_weights(SERVICE, &want, limit);
        eprintln!("{name}: {rs} at weight 0 after {took:?}");
        let status = &status()[rs];
        assert_eq!(status["health"], "down", "{status}");
        assert_eq!(status["last_error"]["reason"], reason, "{status}");
        run_in(Some("lab-rs1"), &format!("iptables -D {rule}"));
        let took = wait_for_weights(SERVICE, &up, limit);
        eprintln!("{name} removed: {rs} back at weight 5 after {took:?}");
    }
}
