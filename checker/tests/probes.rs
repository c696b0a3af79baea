//! The probers against real servers in the lab's namespaces, judged by the
//! weights they make the checker set in the kernel (polled over netlink,
//! then checked with `ipvsadm -Ln`) and the reasons on `/status` and
//! `/metrics` (`lab/test`, or `lab/run --
//! target/debug/deps/probes-HASH --ignored --test-threads=1`).
//!
//! lab-rs1 and lab-rs2 each run `tests/probes/servers.py` (one port per
//! behaviour: good, 500, wrong body, silent, trickling, HTTPS with a good,
//! a foreign and an expired certificate; SMTP with a good and a refusing
//! greeting, a silent TCP port; UDP with the right and a wrong reply).
//! The certificates are made here with openssl, as the seed notes make
//! theirs: a private self-signed CA issuing the servers' certificates, and
//! a second CA that the checker does not trust. The check types beyond
//! HTTP(S) have one test of their own
//! (`each_check_type_against_real_servers_fails_with_its_own_reason`):
//! `tcp` conversations against Debian's `redis-server` and the scripted
//! SMTP servers, `udp` against the scripted ones, `icmp` against the real
//! servers' kernels, `exec` with scripts written here; packets dropped
//! with iptables in the real server's namespace. (`dns` is tested
//! against dnsmasq in `tests/lab.rs`.) Addresses in 198.18.0.0/15 only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipvs::{Ipvs, ServiceKey};
use lab_harness::{director, lab_once, process_gone, run_in, topology_script, Daemon, DIRECTOR};

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

/// The weights of `service`'s real servers, read from the kernel over
/// netlink by this process: polled every 100 ms, an `ipvsadm` (two
/// programs started each time, a tenth of a second of the VM's CPU each)
/// would keep a CPU of the VM busy and make the checker under test late.
fn kernel_weights(service: &str) -> BTreeMap<String, u32> {
    let mut ipvs = Ipvs::connect_in_netns(DIRECTOR).expect("IPVS in lab-director");
    let key = ServiceKey::tcp(service.parse().expect("address"));
    ipvs.destinations(&key)
        .expect("the service's real servers")
        .into_iter()
        .map(|d| (d.key.addr.to_string(), d.config.weight))
        .collect()
}

/// The weights of `service`'s real servers, as `ipvsadm -Ln` prints them.
fn ipvsadm_weights(service: &str) -> BTreeMap<String, u32> {
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
            "after {limit:?} (in the kernel): {}",
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

/// The labels of [`SERVICE`]'s real server `addr` (`IP:port`) in `/metrics`.
fn labels(addr: &str) -> String {
    let (ip, port) = addr.split_once(':').expect("IP:port");
    format!(
        r#"proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",remote_address="{ip}",remote_port="{port}""#
    )
}

/// `ipvs_checker_probe_duration_seconds_{what}` (`sum` or `count`) of
/// `phase` for real server `addr`.
fn phase_sample(metrics: &str, addr: &str, phase: &str, what: &str) -> f64 {
    let line = format!(
        "ipvs_checker_probe_duration_seconds_{what}{{{},phase=\"{phase}\"}}",
        labels(addr)
    );
    sample(metrics, &line).unwrap_or_else(|| panic!("{line} in\n{metrics}"))
}

/// `ipvs_checker_last_failure_info` says `reason` for real server `addr`.
fn assert_failure_metric(metrics: &str, addr: &str, reason: &str) {
    let line = format!(
        "ipvs_checker_last_failure_info{{{},reason=\"{reason}\"}}",
        labels(addr)
    );
    assert_eq!(sample(metrics, &line), Some(1.0), "{line} in\n{metrics}");
}

/// Each probe of real server `addr` ended at its timeout: `phases` (the
/// ones its probes go through) add up, averaged over the probes made, to
/// the timeout. The slack is for the emulated VM, where a timer fires up
/// to a few hundred ms late.
fn assert_probes_end_at(metrics: &str, addr: &str, phases: &[&str], timeout_ms: u64) {
    let probes = phase_sample(metrics, addr, "response", "count");
    let per_probe: f64 = phases
        .iter()
        .map(|p| phase_sample(metrics, addr, p, "sum"))
        .sum::<f64>()
        / probes;
    let timeout = timeout_ms as f64 / 1000.0;
    eprintln!("{addr}: {probes} probes, {per_probe:.3} s each (timeout {timeout} s)");
    assert!(
        per_probe >= timeout - 0.01 && per_probe < timeout + 0.5,
        "{addr}: {per_probe} s a probe"
    );
}

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
    let entries: Vec<(&str, String)> = real_servers
        .iter()
        .map(|(addr, check)| (*addr, format!("check: {check}")))
        .collect();
    config_timed(INTERVAL_MS, TIMEOUT_MS, FALL, &entries)
}

/// The config of [`SERVICE`] with these defaults, each real server at
/// weight 5 with its `fields` (its `check:`, and any setting of its own).
fn config_timed(
    interval_ms: u64,
    timeout_ms: u64,
    fall: u64,
    real_servers: &[(&str, String)],
) -> String {
    let mut yaml = format!(
        "defaults:\n  interval: {interval_ms}ms\n  timeout: {timeout_ms}ms\n  rise: 1\n  fall: {fall}\n\
         services:\n  - address: {SERVICE}\n    real_servers:\n"
    );
    for (addr, fields) in real_servers {
        yaml.push_str(&format!(
            "      - {{address: {addr}, weight: 5, {fields}}}\n"
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
    assert_eq!(ipvsadm_weights(SERVICE), want);

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
    for (addr, reason) in [
        ("198.18.1.11:8444", "tls_unknown_ca"),
        ("198.18.1.11:8445", "tls_expired"),
        ("198.18.1.11:9443", "tls_bad_name"),
        ("198.18.1.11:8002", "status"),
        ("198.18.1.11:8003", "body"),
    ] {
        assert_failure_metric(&metrics, addr, reason);
    }
    // The silent and the trickling server: each probe ends at the timeout
    // (connect + response, averaged over the probes made), not when the
    // server is done (the trickle takes a minute).
    for addr in ["198.18.1.11:8004", "198.18.1.11:8005"] {
        assert_probes_end_at(&metrics, addr, &["connect", "response"], TIMEOUT_MS);
    }
    // HTTPS probes time their handshake.
    assert!(
        phase_sample(&metrics, "198.18.1.12:8443", "tls", "count") > 0.0,
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

/// Real server K's `redis-server` (Debian's) on port 6379: rs2's answers
/// anyone, rs1's wants a password, so that it answers a bare `PING` with
/// `-NOAUTH` (a wrong answer from the real daemon). Stopped when dropped.
struct Redis;

impl Redis {
    fn pid_file(k: u32) -> PathBuf {
        out_dir().join(format!("redis-rs{k}.pid"))
    }

    fn start() -> Redis {
        for k in [1, 2] {
            let dir = out_dir();
            let password = if k == 1 {
                "--requirepass lab-secret"
            } else {
                ""
            };
            run_in(
                Some(&format!("lab-rs{k}")),
                &format!(
                    "redis-server --bind 198.18.1.1{k} --port 6379 --protected-mode no --save '' \
                     --appendonly no --daemonize yes --pidfile {} --logfile {} --dir {} {password}",
                    Redis::pid_file(k).display(),
                    dir.join(format!("redis-rs{k}.log")).display(),
                    dir.display()
                ),
            );
        }
        // It daemonizes before it listens: wait for its port (bash's
        // /dev/tcp, no process started per try).
        for k in [1, 2] {
            run_in(
                Some(&format!("lab-rs{k}")),
                &format!(
                    "bash -c 'for i in $(seq 100); do \
                       (exec 3<>/dev/tcp/198.18.1.1{k}/6379) 2>/dev/null && exit 0; sleep 0.05; \
                     done; exit 1'"
                ),
            );
        }
        Redis
    }

    /// Stops real server K's, and waits until it is gone.
    fn stop(k: u32) {
        run_in(
            None,
            &format!(
                "f={0}; [ -e $f ] || exit 0; p=$(cat $f); kill $p 2>/dev/null; \
                 while kill -0 $p 2>/dev/null; do sleep 0.05; done; rm -f $f",
                Redis::pid_file(k).display()
            ),
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        for k in [1, 2] {
            Redis::stop(k);
        }
    }
}

/// iptables rules in a namespace, deleted when dropped.
struct Rules(Vec<(&'static str, &'static str)>);

impl Rules {
    fn add(rules: &[(&'static str, &'static str)]) -> Rules {
        for (ns, rule) in rules {
            run_in(Some(ns), &format!("iptables -A {rule}"));
        }
        Rules(rules.to_vec())
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        for (ns, rule) in &self.0 {
            run_in(Some(ns), &format!("iptables -D {rule}"));
        }
    }
}

/// An executable shell script `name` in the output directory, its path.
fn script(name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = out_dir().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

/// What the `loud` script writes on stdout at each run, in 64 KiB writes.
const LOUD_BYTES: usize = 8 << 20;

/// The peak resident memory of process `pid` (`VmHWM`), in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix(" kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .expect("VmHWM in kB")
        * 1024
}

/// One real server of the check types' test: its table entry, its
/// `check:` (and any setting of its own), and the reason and last error
/// it must show (`None`: it passes).
struct Case {
    addr: &'static str,
    fields: String,
    reason: Option<&'static str>,
    message: Option<String>,
}

impl Case {
    fn up(addr: &'static str, check: &str) -> Case {
        Case {
            addr,
            fields: format!("check: {check}"),
            reason: None,
            message: None,
        }
    }

    /// Down at its first failure judged (`fall: 1`): in the emulated VM
    /// most timeouts come while the checker is late, and are not judged.
    fn down(addr: &'static str, check: &str, reason: &'static str, message: &str) -> Case {
        Case {
            addr,
            fields: format!("check: {check}, fall: 1"),
            reason: Some(reason),
            message: Some(message.to_owned()),
        }
    }
}

/// The `tcp` conversations, `exec`, `udp` and `icmp` checks, all at once
/// in one checker, each against a real server: Debian's `redis-server`
/// for a `steps` conversation (rs1's wants a password, so `PING` gets
/// `-NOAUTH`); for SMTP a scripted server (`servers.py`: no SMTP daemon
/// of Debian's starts in a namespace in a second without a mail system's
/// setup), as for UDP; shell scripts written here for `exec`; the
/// kernels' own echo replies for `icmp`. Each failure zeroes the weight
/// in the kernel with its own reason and last error, each passing check
/// keeps weight 5:
///
/// | check | passes | fails |
/// | --- | --- | --- |
/// | `tcp`, `preset: smtp` | rs2:2525 | a 554 greeting (`expect`), a silent server (`timeout`), a closed port (`connect`) |
/// | `tcp`, `steps` PING/+PONG | rs2's redis | rs1's redis, `-NOAUTH` (`expect`); rs2's stopped (`connect`) |
/// | `udp`, `expect: ^pong` | rs2:5301 | a wrong reply (`expect`), a closed port: ICMP port unreachable (`connect`), rs1:5301 dropped by iptables (`timeout`) |
/// | `icmp` | rs2 | echo requests dropped by iptables in rs1 (`timeout`) |
/// | `exec` | exit 0 | exit 1 (`exit`, with its output), a hang with a child (`timeout`, both killed), 8 MiB on stdout (`exit`, bounded) |
///
/// The timing is the other tests' (a 1.5 s timeout, fall 2): in the
/// emulated VM a timer can fire late by a tenth of a short timeout, and
/// the checker then keeps the real server's health (the timeout was its
/// own, not the server's), so a shorter one would leave the timeouts
/// unjudged. For the same reason the loud script stays quiet until the
/// others are judged: pushing megabytes through a pipe there takes
/// seconds of the VM's CPU.
#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn each_check_type_against_real_servers_fails_with_its_own_reason() {
    let started = Instant::now();
    let _lab = lab_once(setup);
    let _redis = Redis::start();
    let _dropped = Rules::add(&[
        ("lab-rs1", "INPUT -p udp --dport 5301 -j DROP"),
        ("lab-rs1", "INPUT -p icmp --icmp-type echo-request -j DROP"),
    ]);
    eprintln!(
        "lab, redis and iptables ready after {:?}",
        started.elapsed()
    );
    let hang_pids = out_dir().join("hang.pids");
    let loud_on = out_dir().join("loud.on");
    for file in [&hang_pids, &loud_on] {
        let _ = std::fs::remove_file(file);
    }
    let up = script("exec-up.sh", "[ \"$1\" = \"$IPVS_CHECKER_RS_ADDRESS\" ]");
    let down = script(
        "exec-down.sh",
        "echo \"no answer from $IPVS_CHECKER_RS_ADDRESS:$IPVS_CHECKER_RS_PORT\"\n\
         echo 'replication stopped' >&2\nexit 1",
    );
    // The script and its child, by pid, at each run: both must be gone
    // once the probe's timeout killed the group.
    let hang = script(
        "exec-hang.sh",
        &format!("sleep 60 &\necho \"$$ $!\" >>{}\nwait", hang_pids.display()),
    );
    // 64 KiB by doubling, then written LOUD_BYTES / 64 KiB times: shell
    // builtins only (each program started costs a lot in the VM).
    let loud = script(
        "exec-loud.sh",
        &format!(
            "[ -e {} ] || {{ echo quiet; exit 1; }}\n\
             s=x; i=0; while [ $i -lt 16 ]; do s=$s$s; i=$((i + 1)); done\n\
             i=0; while [ $i -lt {} ]; do printf %s \"$s\"; i=$((i + 1)); done\nexit 1",
            loud_on.display(),
            LOUD_BYTES >> 16
        ),
    );

    let smtp = "{type: tcp, preset: smtp}";
    let ping = "{type: tcp, steps: [{send: \"PING\\r\\n\"}, {expect: '^\\+PONG\\r\\n'}]}";
    let udp = "{type: udp, payload: \"ping\\n\", expect: '^pong'}";
    let icmp = "{type: icmp}";
    // Every 4 s: a program started costs the VM's CPU, and makes the
    // checker late for the other probes.
    let exec = |script: &str| {
        format!("{{type: exec, command: ['{script}', '{{rs_address}}']}}, interval: 4s")
    };
    let timeout = format!("no answer within {:?}", Duration::from_millis(TIMEOUT_MS));
    let refused = "connect: Connection refused (os error 111)";
    let greeting = "554 5.3.2 rs.lab.test has no SMTP service for you";
    let noauth = "-NOAUTH Authentication required.";
    const LOUD: &str = "198.18.1.11:9104";
    let mut loud_case = Case::down(
        LOUD,
        &exec(&loud),
        "exit",
        "exit status 1; stdout: \"quiet\"",
    );
    // Time for the megabytes, once they come.
    loud_case.fields.push_str(", timeout: 4s");
    let cases = [
        Case::up("198.18.1.12:2525", smtp),
        Case::down(
            "198.18.1.11:2526",
            smtp,
            "expect",
            &format!(
                "step 1: expected /(?m)^220 /: no match in time, {} bytes: \"{greeting}\\r\\n\"",
                greeting.len() + 2
            ),
        ),
        Case::down("198.18.1.11:2527", smtp, "timeout", &timeout),
        Case::down("198.18.1.11:2528", smtp, "connect", refused),
        Case::up("198.18.1.12:6379", ping),
        Case::down(
            "198.18.1.11:6379",
            ping,
            "expect",
            &format!(
                "step 2: expected /^\\+PONG\\r\\n/: no match in time, {} bytes: \"{noauth}\\r\\n\"",
                noauth.len() + 2
            ),
        ),
        Case::up("198.18.1.12:5301", udp),
        Case::down(
            "198.18.1.11:5302",
            udp,
            "expect",
            "step 1: expected /^pong/: the reply does not match, 5 bytes: \"busy\\n\"",
        ),
        Case::down("198.18.1.11:5303", udp, "connect", refused),
        Case::down("198.18.1.11:5301", udp, "timeout", &timeout),
        // The port is only the table entry's: an echo goes to the address.
        Case::up("198.18.1.12:7", icmp),
        Case::down("198.18.1.11:7", icmp, "timeout", &timeout),
        Case::up("198.18.1.12:9101", &exec(&up)),
        Case::down(
            "198.18.1.11:9102",
            &exec(&down),
            "exit",
            "exit status 1; stdout: \"no answer from 198.18.1.11:9102\"; stderr: \"replication stopped\"",
        ),
        Case::down("198.18.1.11:9103", &exec(&hang), "timeout", &timeout),
        loud_case,
    ];
    let addrs: Vec<&str> = cases.iter().map(|c| c.addr).collect();
    table(&addrs);
    let entries: Vec<(&str, String)> = cases.iter().map(|c| (c.addr, c.fields.clone())).collect();
    let checker = start_checker(
        "types",
        &config_timed(INTERVAL_MS, TIMEOUT_MS, FALL, &entries),
    );

    let weight = |c: &Case| if c.reason.is_some() { 0 } else { 5 };
    let want: BTreeMap<String, u32> = cases
        .iter()
        .map(|c| (c.addr.to_owned(), weight(c)))
        .collect();
    let took = wait_for_weights(SERVICE, &want, Duration::from_secs(20));
    eprintln!("every weight as expected in the kernel after {took:?}");
    let late = director(&format!(
        "curl -sSf http://{WEB}/metrics | grep '^ipvs_checker_probes_late_total' | grep -v ' 0$' || true"
    ));
    eprintln!("timeouts not judged (the checker late):\n{late}");
    // Every case probed again, and still as expected: nothing flaps.
    sleep(Duration::from_millis(INTERVAL_MS));
    assert_eq!(ipvsadm_weights(SERVICE), want);

    let shown = status();
    let metrics = director(&format!("curl -sSf http://{WEB}/metrics"));
    for case in &cases {
        let rs = &shown[case.addr];
        assert_eq!(
            rs["health"],
            if case.reason.is_some() { "down" } else { "up" },
            "{}: {rs}",
            case.addr
        );
        assert_eq!(rs["weight"], weight(case), "{}: {rs}", case.addr);
        if let Some(reason) = case.reason {
            assert_eq!(rs["last_error"]["reason"], reason, "{}: {rs}", case.addr);
            assert_failure_metric(&metrics, case.addr, reason);
        }
        if let Some(message) = &case.message {
            assert_eq!(
                rs["last_error"]["message"].as_str(),
                Some(message.as_str()),
                "{}: {rs}",
                case.addr
            );
        }
    }

    // The hanging script's probes ended at the timeout, and each ended
    // run's group is gone: the script and its `sleep`. (The last run may
    // still be going.)
    assert_probes_end_at(&metrics, "198.18.1.11:9103", &["response"], TIMEOUT_MS);
    let runs: Vec<Vec<u32>> = std::fs::read_to_string(&hang_pids)
        .expect("the hanging script's pids")
        .lines()
        .map(|l| l.split(' ').map(|p| p.parse().expect("pid")).collect())
        .collect();
    let ended = &runs[..runs.len() - 1];
    assert!(!ended.is_empty(), "{runs:?}");
    let start = Instant::now();
    while !ended.iter().flatten().all(|p| process_gone(*p)) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "left running after their probe's timeout: {:?}",
            ended
                .iter()
                .flatten()
                .filter(|p| !process_gone(**p))
                .collect::<Vec<_>>()
        );
        sleep(Duration::from_millis(50));
    }
    eprintln!(
        "hanging script: {} runs ended, none left running: {ended:?}",
        ended.len()
    );

    // As root, and with the namespace's ping_group_range at its closed
    // default, the checker can only have used a raw ICMP socket.
    let range = director("cat /proc/sys/net/ipv4/ping_group_range");
    assert_eq!(
        range.split_whitespace().collect::<Vec<_>>(),
        ["1", "0"],
        "{range}"
    );
    eprintln!("icmp: a raw socket (ping_group_range {range:?})");

    // The loud script, let loose: its error bounded, its output read to
    // the end (and counted), the checker's memory not grown by it (read
    // whole, LOUD_BYTES would be in it).
    let before = peak_memory(checker.pid());
    std::fs::write(&loud_on, "").expect("loud.on");
    let bounded = format!(
        "exit status 1; stdout: \"{}\" (and {} bytes more)",
        "x".repeat(2048),
        LOUD_BYTES - 2048
    );
    let start = Instant::now();
    while status()[LOUD]["last_error"]["message"].as_str() != Some(bounded.as_str()) {
        assert!(
            start.elapsed() < Duration::from_secs(12),
            "{}",
            status()[LOUD]
        );
        sleep(Duration::from_millis(500));
    }
    let peak = peak_memory(checker.pid());
    eprintln!(
        "loud script: {} MiB read and bounded after {:?}; the checker's peak memory {} KiB before, {} KiB after",
        LOUD_BYTES >> 20,
        start.elapsed(),
        before >> 10,
        peak >> 10
    );
    // Bounded: far less kept than read. The same checker binary in the
    // lab VM peaked a few hundred KiB higher in most runs and some 2 MiB
    // in a few: a quarter of what was read was within that spread.
    assert!(
        peak - before < (LOUD_BYTES / 2) as u64,
        "the checker's peak memory grew from {before} to {peak} bytes"
    );
    assert_failure_metric(
        &director(&format!("curl -sSf http://{WEB}/metrics")),
        LOUD,
        "exit",
    );

    // A real daemon stopped: rs2's redis, `connect`.
    Redis::stop(2);
    let mut stopped = want.clone();
    stopped.insert("198.18.1.12:6379".to_owned(), 0);
    let limit = Duration::from_millis(INTERVAL_MS * FALL + TIMEOUT_MS + 1000);
    let took = wait_for_weights(SERVICE, &stopped, limit);
    let rs = &status()["198.18.1.12:6379"];
    assert_eq!(rs["last_error"]["reason"], "connect", "{rs}");
    assert_eq!(rs["last_error"]["message"], refused, "{rs}");
    eprintln!("redis on rs2 stopped: weight 0 after {took:?}");

    // The checker's end (SIGKILL) kills no program: the hanging script's
    // last run is ended here, by its group.
    drop(checker);
    let last = std::fs::read_to_string(&hang_pids).expect("the hanging script's pids");
    if let Some(group) = last.lines().last().and_then(|l| l.split(' ').next()) {
        run_in(None, &format!("kill -KILL -- -{group} 2>/dev/null || true"));
    }
    eprintln!("the check types' test took {:?}", started.elapsed());
}
