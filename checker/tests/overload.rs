//! The checker itself late, in the lab (`lab/test`, or `lab/run --
//! target/debug/deps/overload-HASH --ignored --test-threads=1`): it must
//! not drain a healthy real server because it was too slow to see the
//! answer (a timeout while its probe thread was late is its own, not the
//! server's), and must still see a real failure on time.
//!
//! [`SERVERS`] HTTPS real servers (198.18.6.1... on a dummy interface in
//! lab-rs1, all served by one nginx with a certificate of a private CA
//! made here) in one IPVS service; the checker verifies the chain of each
//! every second, timeout 1 s, rise 1, fall 1: a single failed probe drains
//! a server. Every few seconds the whole checker is frozen (SIGSTOP, then
//! SIGCONT) for longer than the probe timeout, as a starved CPU, a host's
//! steal time or a swap storm freezes it: the probes in flight then run
//! out of their timeout in the checker, not at the server (without the
//! lateness measure each freeze drained the servers being probed). The
//! benchmark (lab/bench/checker.sh, the overload part) does the same with
//! real CPU overload on a release build. Addresses in 198.18.0.0/15 only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_harness::{director, lab_once, run_in, topology_script, Daemon};

/// Real servers checked.
const SERVERS: usize = 30;

/// Of those, the first ones made to refuse connections during the run.
const REFUSING: usize = 10;

/// How long each freeze of the checker lasts: longer than the timeout.
const FROZEN: Duration = Duration::from_millis(1200);

/// The time between two freezes.
const THAWED: Duration = Duration::from_millis(2800);

/// Short freezes one after the other: the checker is behind all the
/// time, by more than a tenth of the timeout, and never on time again
/// (what `lab/soak` found on a checker short of CPU for good).
const FLICKER: Duration = Duration::from_millis(150);

/// Of the real servers, those whose packets are dropped, and those that
/// take the connection and then hear nothing (the checker's bytes
/// dropped), in the sustained test.
const DROPPED: std::ops::RangeInclusive<usize> = 11..=15;
const SILENT: std::ops::RangeInclusive<usize> = 16..=20;

const SERVICE: &str = "198.18.0.10:443";
const WEB: &str = "127.0.0.1:10311";

/// Where certificates, configs and logs go: `$LAB_OUT` survives the VM.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("LAB_OUT").unwrap_or_else(|_| "/tmp".into()))
        .join("checker-overload");
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

fn addr(i: usize) -> String {
    format!("198.18.6.{i}")
}

/// The topology with one real server namespace holding every address, a
/// private CA and nginx serving HTTPS on each.
fn setup() {
    let t = topology_script();
    run_in(None, &format!("{t} up 1 && {t} vip 198.18.0.10"));
    let mut batch = String::from("link add dummy6 type dummy\nlink set dummy6 up\n");
    for i in 1..=SERVERS {
        batch.push_str(&format!("addr add {}/32 dev dummy6\n", addr(i)));
    }
    let dir = out_dir();
    let batch_file = dir.join("addresses.batch");
    std::fs::write(&batch_file, batch).expect("write");
    run_in(
        Some("lab-rs1"),
        &format!("ip -batch {}", batch_file.display()),
    );
    director("ip route replace 198.18.6.0/24 via 198.18.1.11");
    let d = dir.display();
    run_in(
        None,
        &format!(
            "set -e; cd {d}
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                 -keyout ca.key -out ca.pem -days 3650 -subj '/CN=overload CA' 2>/dev/null
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                 -keyout rs.key -out rs.csr -subj /CN=rs.lab.test 2>/dev/null
             printf 'subjectAltName=DNS:rs.lab.test\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' >rs.ext
             openssl x509 -req -in rs.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                 -days 365 -extfile rs.ext -out rs.pem 2>/dev/null"
        ),
    );
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "worker_processes 1;
             pid {d}/nginx.pid;
             error_log {d}/nginx-error.log;
             events {{ worker_connections 4096; }}
             http {{
                 access_log off;
                 server {{
                     listen 443 ssl backlog=4096;
                     ssl_certificate {d}/rs.pem;
                     ssl_certificate_key {d}/rs.key;
                     ssl_session_cache shared:SSL:10m;
                     location / {{ return 200 \"healthy\\n\"; }}
                 }}
             }}"
        ),
    )
    .expect("write nginx.conf");
    // Left running for the rest of the VM's life, as the topology's own
    // servers are.
    run_in(Some("lab-rs1"), &format!("nginx -c {d}/nginx.conf"));
}

/// The table: every real server at weight 1, as ipvsadm would make it.
fn table() {
    let mut rules = format!("-C\n-A -t {SERVICE} -s wrr\n");
    for i in 1..=SERVERS {
        rules.push_str(&format!("-a -t {SERVICE} -r {}:443 -m -w 1\n", addr(i)));
    }
    let file = out_dir().join("table.rules");
    std::fs::write(&file, rules).expect("write");
    director(&format!("ipvsadm -R <{}", file.display()));
}

/// Every real server's weight, by address, as `ipvsadm -Ln` prints it.
fn weights() -> Vec<(String, u32)> {
    director(&format!("ipvsadm -Ln -t {SERVICE}"))
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields.as_slice() {
                ["->", rs, _, weight, _, _] => {
                    let (ip, _) = rs.rsplit_once(':')?;
                    Some((ip.to_owned(), weight.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

/// Freezes the checker for a while every while until dropped (and leaves
/// it running).
struct Freezer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Freezer {
    fn start(pid: u32, frozen: Duration, thawed: Duration) -> Freezer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let kill = |signal: &str| {
                let _ = Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status();
            };
            let mut freezes = 0;
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                sleep(thawed);
                kill("-STOP");
                sleep(frozen);
                kill("-CONT");
                freezes += 1;
            }
            freezes
        });
        Freezer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops freezing; how many freezes there were.
    fn finish(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Failures made by iptables rules in lab-rs1, taken away when the test
/// ends: one rule per kind of failure for a range of real servers, as
/// each iptables command takes a good part of a second under emulation
/// and they must start failing together.
struct Failures(Vec<String>);

impl Failures {
    /// Connections refused (a reset to the SYN).
    fn refuse(range: std::ops::RangeInclusive<usize>) -> String {
        Failures::rule(range, "-j REJECT --reject-with tcp-reset")
    }

    /// Every packet dropped: no SYN-ACK.
    fn drop_all(range: std::ops::RangeInclusive<usize>) -> String {
        Failures::rule(range, "-j DROP")
    }

    /// The connection made, then the checker's bytes (its ClientHello,
    /// hundreds of bytes; the handshake's segments are under 100) dropped:
    /// a server that takes the connection and never answers.
    fn silence(range: std::ops::RangeInclusive<usize>) -> String {
        Failures::rule(range, "-m length --length 100:65535 -j DROP")
    }

    fn rule(range: std::ops::RangeInclusive<usize>, what: &str) -> String {
        format!(
            "INPUT -p tcp --dport 443 -m iprange --dst-range {}-{} {what}",
            addr(*range.start()),
            addr(*range.end())
        )
    }

    fn start(rules: Vec<String>) -> Failures {
        let insert: Vec<String> = rules.iter().map(|r| format!("iptables -I {r}")).collect();
        run_in(Some("lab-rs1"), &insert.join(" && "));
        Failures(rules)
    }
}

impl Drop for Failures {
    fn drop(&mut self) {
        for rule in &self.0 {
            run_in(Some("lab-rs1"), &format!("iptables -D {rule} || true"));
        }
    }
}

/// The config: every real server checked over verified HTTPS every
/// second, timeout 1 s, rise 1, fall 1 (one failed probe drains).
fn write_config() -> PathBuf {
    let dir = out_dir();
    let mut config = format!(
        "defaults: {{interval: 1s, timeout: 1s, rise: 1, fall: 1}}\nservices:\n  - address: {SERVICE}\n    check: {{type: https, ca_file: {}/ca.pem, server_name: rs.lab.test}}\n    real_servers:\n",
        dir.display()
    );
    for i in 1..=SERVERS {
        config.push_str(&format!(
            "      - {{address: '{}:443', weight: 1}}\n",
            addr(i)
        ));
    }
    let file = dir.join("checker.yaml");
    std::fs::write(&file, config).expect("write config");
    file
}

/// How long after `since` each of `failing` was first seen at weight 0,
/// waiting up to `limit` and 10 s more.
fn time_to_zero(failing: &[String], since: Instant, limit: Duration) -> Vec<(String, Duration)> {
    let mut zeroed: Vec<(String, Duration)> = Vec::new();
    while zeroed.len() < failing.len() && since.elapsed() < limit + Duration::from_secs(10) {
        let seen = since.elapsed();
        for (ip, weight) in weights() {
            if weight == 0 && failing.contains(&ip) && !zeroed.iter().any(|(z, _)| *z == ip) {
                zeroed.push((ip, seen));
            }
        }
        sleep(Duration::from_millis(100));
    }
    zeroed
}

/// Each of `failing` was at weight 0 within `limit`.
fn all_zeroed_within(failing: &[String], zeroed: &[(String, Duration)], limit: Duration) {
    for ip in failing {
        let took = zeroed.iter().find(|(z, _)| z == ip).map(|(_, t)| *t);
        assert!(
            took.is_some_and(|t| t <= limit),
            "{ip} failed from the start: weight 0 after {took:?}, not within {limit:?}"
        );
    }
}

/// How often the checker's log says its probes start late, by its own
/// heartbeat: the freezes made it late, or the run proves nothing.
fn late_starts_logged() -> usize {
    std::fs::read_to_string(out_dir().join("checker.log"))
        .unwrap_or_default()
        .matches("probes start late")
        .count()
}

/// The late probes counted in `metrics`: probes whose timeout was the
/// checker's.
fn late_probes(metrics: &str) -> f64 {
    per_server(metrics, "ipvs_checker_probes_late_total", "")
        .iter()
        .map(|(_, n)| n)
        .sum()
}

/// None of the real servers `healthy` ever left its weight: one
/// transition each (unknown to up), no weight set for its health, weight
/// 1 in the table.
fn never_left_their_weight(healthy: impl Iterator<Item = usize>, metrics: &str) {
    let table = weights();
    let transitions = per_server(metrics, "ipvs_checker_transitions_total", "");
    let health_changes = per_server(
        metrics,
        "ipvs_checker_weight_changes_total",
        "cause=\"health\"",
    );
    for i in healthy {
        let ip = addr(i);
        let get = |v: &[(String, f64)]| v.iter().find(|(a, _)| *a == ip).map(|(_, n)| *n);
        assert_eq!(get(&transitions), Some(1.0), "{ip}: health transitions");
        assert_eq!(
            get(&health_changes),
            Some(0.0),
            "{ip}: weights set for its health"
        );
        assert_eq!(
            table.iter().find(|(a, _)| *a == ip).map(|(_, w)| *w),
            Some(1),
            "{ip}: weight in the table"
        );
    }
}

/// The value of each series of `name` in `metrics` whose labels contain
/// `remote_address="ADDR"`, by ADDR.
fn per_server(metrics: &str, name: &str, extra: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(extra))
        .filter_map(|l| {
            let rest = l.split("remote_address=\"").nth(1)?;
            let (ip, _) = rest.split_once('"')?;
            let (_, value) = l.rsplit_once(' ')?;
            Some((ip.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn start_checker(config: &Path) -> Daemon {
    let log = out_dir().join("checker.log");
    let _ = std::fs::remove_file(&log);
    Daemon::start(
        env!("CARGO_BIN_EXE_ipvs-checker"),
        &[
            "--config.file".as_ref(),
            config.as_os_str(),
            "--web.listen-address".as_ref(),
            WEB.as_ref(),
            "--log.level".as_ref(),
            "debug".as_ref(),
        ],
        &log,
        &format!("http://{WEB}/metrics"),
        Duration::from_secs(60),
    )
}

/// The checker on a fresh table, every server probed a few times
/// (sessions made and resumed), then frozen for `frozen` every `thawed`
/// for `settle` before the failures.
fn checker_under_freezes(
    frozen: Duration,
    thawed: Duration,
    settle: Duration,
) -> (Daemon, Freezer) {
    table();
    let checker = start_checker(&write_config());
    sleep(Duration::from_secs(5));
    let freezer = Freezer::start(checker.pid(), frozen, thawed);
    sleep(settle);
    (checker, freezer)
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn a_checker_late_drains_no_healthy_server_and_still_sees_refusals_on_time() {
    let _lab = lab_once(setup);
    let (_checker, freezer) = checker_under_freezes(FROZEN, THAWED, Duration::from_secs(8));

    let refusals = Failures::start(vec![Failures::refuse(1..=REFUSING)]);
    let refused_at = Instant::now();
    eprintln!("refusals in place at {:?}", std::time::SystemTime::now());
    // interval x fall + timeout + 1 s.
    let limit = Duration::from_secs(3);
    let refusing: Vec<String> = (1..=REFUSING).map(addr).collect();
    let zeroed = time_to_zero(&refusing, refused_at, limit);
    eprintln!("refusing real servers at weight 0 after: {zeroed:?}");
    // The rest of a 40 s run under load.
    sleep(Duration::from_secs(20));
    let freezes = freezer.finish();
    let metrics = director(&format!("curl -sSf http://{WEB}/metrics"));
    std::fs::write(out_dir().join("metrics.txt"), &metrics).expect("write metrics");

    let late = late_probes(&metrics);
    let limit_now = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ipvs_checker_probe_concurrency_limit "))
        .and_then(|v| v.parse::<f64>().ok());
    eprintln!(
        "{freezes} freezes; late probes: {late}, concurrency limit at the end: {limit_now:?}"
    );
    assert!(freezes >= 5, "{freezes} freezes");
    assert!(
        late_starts_logged() > 0,
        "the checker never saw itself late"
    );
    all_zeroed_within(&refusing, &zeroed, limit + Duration::from_millis(100));
    never_left_their_weight(REFUSING + 1..=SERVERS, &metrics);
    drop(refusals);
}

/// The checker behind all the time (frozen for [`FLICKER`] every
/// [`FLICKER`]), never on time again: a server whose packets are dropped
/// and one that takes the connection and never answers still go to 0,
/// judged by their sockets, and no healthy one leaves its weight.
#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn a_checker_late_all_the_time_still_sees_dropped_and_silent_servers() {
    let _lab = lab_once(setup);
    let (_checker, freezer) = checker_under_freezes(FLICKER, FLICKER, Duration::from_secs(4));

    let failures = Failures::start(vec![Failures::drop_all(DROPPED), Failures::silence(SILENT)]);
    let failed_at = Instant::now();
    // interval x fall + timeout + 1 s, and a freeze: the checker's own
    // lateness, which it cannot make up, delays what it sees by up to
    // one.
    let limit = Duration::from_secs(3) + FLICKER;
    let failing: Vec<String> = DROPPED.chain(SILENT).map(addr).collect();
    let zeroed = time_to_zero(&failing, failed_at, limit);
    eprintln!("dropped and silent real servers at weight 0 after: {zeroed:?}");
    sleep(Duration::from_secs(8));
    let freezes = freezer.finish();
    let metrics = director(&format!("curl -sSf http://{WEB}/metrics"));
    std::fs::write(out_dir().join("metrics-sustained.txt"), &metrics).expect("write metrics");
    let late = late_probes(&metrics);
    // Late probes are not asked for: a probe the server answered gets
    // its answer, however late, and only one still going a timeout after
    // that is the checker's.
    eprintln!("{freezes} freezes; late probes: {late}");
    assert!(freezes >= 30, "{freezes} freezes");
    assert!(
        late_starts_logged() > 0,
        "the checker never saw itself late"
    );
    all_zeroed_within(&failing, &zeroed, limit);
    never_left_their_weight(
        (1..=SERVERS).filter(|i| !DROPPED.contains(i) && !SILENT.contains(i)),
        &metrics,
    );
    drop(failures);
}
