//! `ipvs-checker import` against the real daemons, in the lab: keepalived
//! (resp. ldirectord) builds its IPVS table from a config that covers
//! every kind of service it has (`tests/import/*/lab.*`); then, that
//! daemon stopped and the table flushed, the checker in managed mode on
//! the import of the same file must build the same table, `ipvsadm -Sn`
//! line for line (compared sorted: the kernel lists services by hash and
//! real servers newest first, so the order says which tool added what
//! first, not what the table holds).
//!
//! Run: `cargo test -p ipvs-checker --test import_lab --no-run`, then
//! `lab/run -- lab/lib/run-ignored target/debug/deps/import_lab-HASH`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab_harness::{director, lab_once, run_in, topology_script, Daemon};

/// `$LAB_OUT/import-lab`: configs, logs and tables, kept after the VM.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("LAB_OUT").unwrap_or_else(|_| "/tmp".into()))
        .join("import-lab");
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import")
        .join(path)
}

/// The VIPs the fixtures use.
const VIPS: &[&str] = &[
    "198.18.0.10",
    "198.18.0.11",
    "198.18.0.12",
    "198.18.0.13",
    "198.18.0.20",
    "198.18.0.21",
    "198.18.0.22",
    "2001:db8::10",
];

/// The lab with three real servers serving HTTP (80, IPv4 and IPv6),
/// UDP (53) and, on rs1 and rs2, HTTPS (443: nginx with a self-signed
/// certificate); the table empty.
fn fresh_lab() -> std::sync::MutexGuard<'static, ()> {
    let t = topology_script();
    let guard = lab_once(|| {
        run_in(None, &format!("{t} up 3"));
        for vip in VIPS {
            run_in(None, &format!("{t} vip {vip}"));
        }
        let dir = out_dir();
        let d = dir.display();
        run_in(
            None,
            &format!(
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                 -keyout {d}/key.pem -out {d}/cert.pem -days 2 -subj /CN=rs.lab.test 2>/dev/null"
            ),
        );
        for rs in ["rs1", "rs2"] {
            let conf = dir.join(format!("nginx-{rs}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "pid {d}/nginx-{rs}.pid;\nerror_log {d}/nginx-{rs}.err;\n\
                     events {{ worker_connections 256; }}\n\
                     http {{ access_log off; server {{ listen 443 ssl; \
                     ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; \
                     location / {{ return 200 \"{rs}\\n\"; }} }} }}\n"
                ),
            )
            .expect("nginx config");
            run_in(
                None,
                &format!("ip netns exec lab-{rs} nginx -c {}", conf.display()),
            );
        }
    });
    run_in(None, &format!("{t} serve"));
    director("ipvsadm -C");
    guard
}

/// A process in the director's namespace, stopped (SIGTERM, so
/// keepalived and ldirectord clean up as they do) when dropped.
struct Process {
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Process {
    fn start(args: &[&str], log: &Path) -> Process {
        let file = std::fs::File::create(log).expect("log file");
        // ldirectord's HTTPS check (LWP) verifies the chain: trust the
        // real servers' self-signed certificate.
        let child = Command::new("ip")
            .env("PERL_LWP_SSL_CA_FILE", out_dir().join("cert.pem"))
            .args(["netns", "exec", "lab-director"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        Process {
            child,
            log: log.to_owned(),
            stopped: false,
        }
    }

    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- log {}:\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// `ipvsadm -Sn`, lines sorted.
fn table() -> Vec<String> {
    let mut lines: Vec<String> = director("ipvsadm -Sn").lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// The table once it has `lines` lines and stayed the same for 13 s
/// (every check has run at least twice at the fixtures' 6 s interval).
/// The fixtures' timing is slow on purpose: the lab VM shares a loaded
/// host, and a probe there may start seconds late.
fn settled_table(lines: usize, within: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut last = table();
    let mut since = Instant::now();
    loop {
        sleep(Duration::from_millis(500));
        let now = table();
        if now != last {
            last = now;
            since = Instant::now();
        } else if last.len() == lines && since.elapsed() >= Duration::from_secs(13) {
            return last;
        }
        assert!(
            start.elapsed() < within,
            "the table did not settle at {lines} lines within {within:?}:\n{}",
            last.join("\n")
        );
    }
}

/// Every real server of a source daemon's table is in at a weight above 0:
/// so that a check both tools fail cannot make the tables equal.
fn all_up(table: &[String]) {
    for line in table.iter().filter(|l| l.starts_with("-a ")) {
        assert!(!line.contains(" -w 0"), "a real server is down: {line}");
    }
}

/// Waits until the table is `expected`; panics with both tables if not
/// within `within`.
fn wait_for_table(expected: &[String], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let now = table();
        if now == expected {
            return start.elapsed();
        }
        if start.elapsed() > within {
            panic!(
                "the checker's table is not the source daemon's after {within:?}\n--- expected (sorted):\n{}\n--- checker's (sorted):\n{}",
                expected.join("\n"),
                now.join("\n")
            );
        }
        sleep(Duration::from_millis(250));
    }
}

/// `ipvs-checker import FORMAT FILE --mode managed`: the YAML, written to
/// `NAME.yaml`, and the exit code.
fn import(format: &str, file: &Path, name: &str) -> (PathBuf, i32) {
    import_mode(format, file, name, "managed")
}

/// `ipvs-checker import FORMAT FILE --mode MODE`, checked with
/// `--config.check`.
fn import_mode(format: &str, file: &Path, name: &str, mode: &str) -> (PathBuf, i32) {
    let dir = out_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_ipvs-checker"))
        .args(["import", format])
        .arg(file)
        .args(["--mode", mode, "--state-file"])
        .arg(dir.join(format!("{name}-state.json")))
        .output()
        .expect("run the import");
    let yaml = dir.join(format!("{name}.yaml"));
    std::fs::write(&yaml, &output.stdout).expect("write the config");
    std::fs::write(dir.join(format!("{name}.import.stderr")), &output.stderr)
        .expect("write stderr");
    let check = Command::new(env!("CARGO_BIN_EXE_ipvs-checker"))
        .arg("--config.check")
        .arg("--config.file")
        .arg(&yaml)
        .output()
        .expect("run --config.check");
    assert!(
        check.status.success(),
        "--config.check refuses the import:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_file(dir.join(format!("{name}-state.json")));
    (yaml, output.status.code().unwrap_or(-1))
}

/// keepalived's checker process only (`--check`: no VRRP), on `conf`.
fn start_keepalived(conf: &Path, log: &Path) -> Process {
    start_keepalived_with(conf, log, false)
}

/// keepalived on `conf`: its checker process, and its VRRP process too
/// if `vrrp`.
fn start_keepalived_with(conf: &Path, log: &Path, vrrp: bool) -> Process {
    let dir = out_dir();
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    let mut args = vec![
        "keepalived".to_owned(),
        "--dont-fork".into(),
        "--log-console".into(),
        "--use-file".into(),
        path(conf),
        "--pid".into(),
        path(&dir.join("keepalived.pid")),
        "--checkers_pid".into(),
        path(&dir.join("keepalived-checkers.pid")),
        "--vrrp_pid".into(),
        path(&dir.join("keepalived-vrrp.pid")),
    ];
    if !vrrp {
        args.push("--check".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start(&args, log)
}

fn start_checker(name: &str, config: &Path) -> Daemon {
    Daemon::start(
        env!("CARGO_BIN_EXE_ipvs-checker"),
        &[
            "--config.file".as_ref(),
            config.as_os_str(),
            "--web.listen-address".as_ref(),
            "127.0.0.1:10311".as_ref(),
        ],
        &out_dir().join(format!("{name}-checker.log")),
        "http://127.0.0.1:10311/metrics",
        Duration::from_secs(20),
    )
}

/// keepalived's lab.conf: 11 services and 22 real servers (the sorry
/// servers out: every quorum is met).
#[test]
#[ignore = "needs the lab (real IPVS, keepalived)"]
fn keepalived_and_the_checker_on_its_import_make_the_same_table() {
    let _lab = fresh_lab();
    let conf = fixture("keepalived/lab.conf");
    let dir = out_dir();
    let mut keepalived = start_keepalived(&conf, &dir.join("keepalived.log"));
    let theirs = settled_table(33, Duration::from_secs(180));
    std::fs::write(dir.join("keepalived.table"), theirs.join("\n")).expect("write");
    all_up(&theirs);
    keepalived.stop();
    director("ipvsadm -C");
    assert_eq!(table(), Vec::<String>::new(), "keepalived left a table");

    let (yaml, code) = import("keepalived", &conf, "keepalived");
    // lab.conf has one real server without inhibit_on_failure and a quorum
    // above 1 with a sorry server: differences the import reports.
    assert_eq!(code, 3, "exit code of the import");
    let _checker = start_checker("keepalived", &yaml);
    let took = wait_for_table(&theirs, Duration::from_secs(120));
    eprintln!(
        "the checker made keepalived's table ({} lines) in {took:?}",
        theirs.len()
    );
}

/// ldirectord's lab.cf: 8 services and 16 real servers (the fallback
/// out: its real servers are up).
#[test]
#[ignore = "needs the lab (real IPVS, ldirectord)"]
fn ldirectord_and_the_checker_on_its_import_make_the_same_table() {
    let _lab = fresh_lab();
    let conf = fixture("ldirectord/lab.cf");
    let dir = out_dir();
    let mut ldirectord = Process::start(
        &[
            "ldirectord",
            "-d",
            conf.to_str().expect("UTF-8 path"),
            "start",
        ],
        &dir.join("ldirectord.log"),
    );
    let theirs = settled_table(24, Duration::from_secs(240));
    std::fs::write(dir.join("ldirectord.table"), theirs.join("\n")).expect("write");
    all_up(&theirs);
    ldirectord.stop();
    director("ipvsadm -C");

    let (yaml, code) = import("ldirectord", &conf, "ldirectord");
    // lab.cf has checktype=on and quiescent=no: differences it reports.
    assert_eq!(code, 3, "exit code of the import");
    let _checker = start_checker("ldirectord", &yaml);
    let took = wait_for_table(&theirs, Duration::from_secs(120));
    eprintln!(
        "the checker made ldirectord's table ({} lines) in {took:?}",
        theirs.len()
    );
}

/// Waits until the table is `expected`, at most `within`; how long it took.
fn time_to(expected: &[&str], within: Duration, what: &str) -> Duration {
    time_to_any(&[expected], within, what)
}

/// Waits until the table is one of `expected`, at most `within`.
fn time_to_any(expected: &[&[&str]], within: Duration, what: &str) -> Duration {
    let expected: Vec<Vec<String>> = expected
        .iter()
        .map(|e| {
            let mut lines: Vec<String> = e.iter().map(|l| (*l).to_owned()).collect();
            lines.sort();
            lines
        })
        .collect();
    let start = Instant::now();
    loop {
        let now = table();
        if expected.contains(&now) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not reached within {within:?}\n--- expected:\n{}\n--- table:\n{}",
            expected
                .iter()
                .map(|e| e.join("\n"))
                .collect::<Vec<_>>()
                .join("\n--- or:\n"),
            now.join("\n")
        );
        sleep(Duration::from_millis(100));
    }
}

/// Each real server's reason of its last failure, from the checker's
/// `ipvs_checker_last_failure_info`: (`ADDRESS:PORT`, reason).
fn metrics_reasons() -> Vec<(String, String)> {
    let metrics = director("curl -sSf http://127.0.0.1:10311/metrics");
    let label = |line: &str, name: &str| {
        line.split_once(&format!("{name}=\""))
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(value, _)| value.to_owned())
            .unwrap_or_default()
    };
    metrics
        .lines()
        .filter(|l| l.starts_with("ipvs_checker_last_failure_info{"))
        .map(|l| {
            let address = format!("{}:{}", label(l, "remote_address"), label(l, "remote_port"));
            (address, label(l, "reason"))
        })
        .collect()
}

/// Kills the servers of rs1 and rs2 (HTTP on 80, the UDP responder on
/// 53); returns when they are gone.
fn kill_rs1_rs2() {
    run_in(
        None,
        "kill $(cat /run/lab-topology/rs1/server.pid) $(cat /run/lab-topology/rs2/server.pid)",
    );
}

const SERVICE: &str = "-A -t 198.18.0.10:80 -s rr";
const HEALTHY: &[&str] = &[
    SERVICE,
    "-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 2",
    "-a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 1",
];

/// failover.conf's other services: rs3 checked by the MD5 of its page,
/// and UDP on rs1 and rs2.
const DIGEST_SERVICE: &str = "-A -t 198.18.0.11:80 -s rr";
const UDP_SERVICE: &str = "-A -u 198.18.0.10:53 -s rr";

/// failover.conf's whole table, every real server up.
fn failover_healthy() -> Vec<&'static str> {
    HEALTHY
        .iter()
        .copied()
        .chain([
            DIGEST_SERVICE,
            "-a -t 198.18.0.11:80 -r 198.18.1.13:80 -m -w 1",
            UDP_SERVICE,
            "-a -u 198.18.0.10:53 -r 198.18.1.11:53 -m -w 1",
            "-a -u 198.18.0.10:53 -r 198.18.1.12:53 -m -w 1",
        ])
        .collect()
}

/// failover.conf's services but the first after the failure, under both
/// tools: rs3 at 0 (its page changed), both UDP real servers at 0.
const FAILED_OTHERS: &[&str] = &[
    DIGEST_SERVICE,
    "-a -t 198.18.0.11:80 -r 198.18.1.13:80 -m -w 0",
    UDP_SERVICE,
    "-a -u 198.18.0.10:53 -r 198.18.1.11:53 -m -w 0",
    "-a -u 198.18.0.10:53 -r 198.18.1.12:53 -m -w 0",
];

/// The failure: rs1's and rs2's servers killed (web and UDP), and rs3's
/// page changed while it goes on serving (`serve` writes it back).
fn fail_rs1_rs2_and_rs3_page() {
    kill_rs1_rs2();
    std::fs::write("/run/lab-topology/rs3/www/index.html", "changed\n").expect("rs3's page");
}

/// The same failure (rs1's and rs2's servers killed, web and UDP, and
/// rs3's page changed) and recovery (started again, the page back) under
/// keepalived and under the checker on the import of failover.conf: the
/// tables after the failure are keepalived's but for rs2 (removed by
/// keepalived, weight 0 under the checker: no inhibit_on_failure), the
/// sorry server in at weight 1 under both, and under both rs3 at 0 where
/// its page's MD5 is checked (`digest`, `body_md5`) and rs1 and rs2 at 0
/// in the UDP service (UDP_CHECK); the times are printed side by side
/// (and written to failover-times.txt).
#[test]
#[ignore = "needs the lab (real IPVS, keepalived)"]
fn a_failure_and_its_recovery_under_keepalived_and_under_its_import() {
    let _lab = fresh_lab();
    let conf = fixture("keepalived/failover.conf");
    let dir = out_dir();
    let t = topology_script();
    let within = Duration::from_secs(60);

    let healthy = failover_healthy();
    let mut keepalived = start_keepalived(&conf, &dir.join("failover-keepalived.log"));
    time_to(&healthy, within, "keepalived: healthy");
    fail_rs1_rs2_and_rs3_page();
    let k_failed: Vec<&str> = [
        SERVICE,
        "-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 0",
        "-a -t 198.18.0.10:80 -r 198.18.1.13:80 -m -w 1",
    ]
    .into_iter()
    .chain(FAILED_OTHERS.iter().copied())
    .collect();
    let k_down = time_to(
        &k_failed,
        within,
        "keepalived: rs1 at 0, rs2 removed, the sorry server in; rs3 at 0 by its digest; UDP both at 0",
    );
    run_in(None, &format!("{t} serve"));
    let k_up = time_to(&healthy, within, "keepalived: back");
    keepalived.stop();
    director("ipvsadm -C");

    let (yaml, code) = import("keepalived", &conf, "failover");
    assert_eq!(code, 3, "rs2 without inhibit_on_failure is a difference");
    let _checker = start_checker("failover", &yaml);
    time_to(&healthy, within, "checker: healthy");
    fail_rs1_rs2_and_rs3_page();
    let c_failed: Vec<&str> = [
        SERVICE,
        "-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 0",
        "-a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 0",
        "-a -t 198.18.0.10:80 -r 198.18.1.13:80 -m -w 1",
    ]
    .into_iter()
    .chain(FAILED_OTHERS.iter().copied())
    .collect();
    let c_down = time_to(
        &c_failed,
        within,
        "checker: rs1 and rs2 at 0, the sorry server in; rs3 at 0 by its page's MD5; UDP both at 0",
    );
    // rs3 is down by its page's MD5, not by its connection.
    let reasons = metrics_reasons();
    assert!(
        reasons.contains(&("198.18.1.13:80".into(), "body_md5".into())),
        "rs3's last failure is not body_md5: {reasons:?}"
    );
    run_in(None, &format!("{t} serve"));
    let c_up = time_to(&healthy, within, "checker: back");
    let report = format!(
        "failure (both servers killed, rs3's page changed) -> final table: keepalived {k_down:.2?}, ipvs-checker {c_down:.2?}\n\
         recovery (both started, the page back) -> healthy table: keepalived {k_up:.2?}, ipvs-checker {c_up:.2?}\n\
         (delay_loop 2, connect_timeout 2, retry 0: interval 2s, timeout 2s, fall 1, rise 1)\n"
    );
    std::fs::write(dir.join("failover-times.txt"), &report).expect("write");
    eprint!("{report}");
}

/// The same failure and recovery under ldirectord and under the checker
/// on the import of failover.cf: the same tables after the failure (both
/// real servers at 0, the fallback in at 1) and after the recovery (the
/// fallback deleted).
#[test]
#[ignore = "needs the lab (real IPVS, ldirectord)"]
fn a_failure_and_its_recovery_under_ldirectord_and_under_its_import() {
    let _lab = fresh_lab();
    let conf = fixture("ldirectord/failover.cf");
    let dir = out_dir();
    let t = topology_script();
    let within = Duration::from_secs(150);
    let failed: &[&str] = &[
        SERVICE,
        "-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 0",
        "-a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 0",
        "-a -t 198.18.0.10:80 -r 198.18.1.13:80 -m -w 1",
    ];
    let mut ldirectord = Process::start(
        &[
            "ldirectord",
            "-d",
            conf.to_str().expect("UTF-8 path"),
            "start",
        ],
        &dir.join("failover-ldirectord.log"),
    );
    time_to(HEALTHY, within, "ldirectord: healthy");
    kill_rs1_rs2();
    let l_down = time_to(failed, within, "ldirectord: both at 0, the fallback in");
    run_in(None, &format!("{t} serve"));
    let l_up = time_to(HEALTHY, within, "ldirectord: back, the fallback deleted");
    ldirectord.stop();
    director("ipvsadm -C");

    let (yaml, code) = import("ldirectord", &conf, "failover-ld");
    assert_eq!(code, 0, "failover.cf converts exactly");
    let _checker = start_checker("failover-ld", &yaml);
    time_to(HEALTHY, within, "checker: healthy");
    kill_rs1_rs2();
    let c_down = time_to(failed, within, "checker: both at 0, the sorry server in");
    run_in(None, &format!("{t} serve"));
    let c_up = time_to(HEALTHY, within, "checker: back, the sorry server deleted");
    let report = format!(
        "failure (both web servers killed) -> final table: ldirectord {l_down:.2?}, ipvs-checker {c_down:.2?}\n\
         recovery (both started) -> healthy table: ldirectord {l_up:.2?}, ipvs-checker {c_up:.2?}\n\
         (checkinterval 4, checktimeout 3, failurecount 1: interval 4s, timeout 3s, fall 1, rise 1)\n"
    );
    std::fs::write(dir.join("failover-ldirectord-times.txt"), &report).expect("write");
    eprint!("{report}");
}

/// Whether keepalived's VRRP instance holds the VIP: 198.18.0.10 on the
/// director's cl0 (weights-table.conf's virtual_ipaddress).
fn vip_on_cl0() -> bool {
    director("ip -o -4 addr show dev cl0").contains(" 198.18.0.10/32 ")
}

/// `--mode weights` beside a running keepalived: keepalived keeps its table
/// (weights-table.conf, failover.conf without its checker blocks) and runs
/// VRRP (MASTER, the VIP on cl0), the checker on `import --mode weights`
/// of failover.conf validates and sets the weights of keepalived's real
/// servers: rs1's server killed, weight 0 (web and UDP); back, weight 2
/// (and 1 for UDP); keepalived
/// still running, its service never gone, the VIP still on cl0.
#[test]
#[ignore = "needs the lab (real IPVS, keepalived)"]
fn weights_mode_beside_a_running_keepalived_follows_its_table() {
    let _lab = fresh_lab();
    let dir = out_dir();
    let t = topology_script();
    let within = Duration::from_secs(60);
    assert!(!vip_on_cl0(), "the VIP is on cl0 before keepalived runs");
    let log = dir.join("weights-keepalived.log");
    let mut keepalived =
        start_keepalived_with(&fixture("keepalived/weights-table.conf"), &log, true);
    let sorry = "-a -t 198.18.0.10:80 -r 198.18.1.13:80 -m -w 0";
    let healthy: Vec<&str> = failover_healthy().into_iter().chain([sorry]).collect();
    time_to(&healthy, within, "keepalived's table");
    let start = Instant::now();
    let master = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("(VI_weights) Entering MASTER STATE")
    };
    while !(master(&log) && vip_on_cl0()) {
        assert!(
            start.elapsed() < within,
            "keepalived's VRRP instance did not become MASTER with the VIP on cl0 within {within:?}:\n{}",
            director("ip -o addr show dev cl0")
        );
        sleep(Duration::from_millis(250));
    }
    let (yaml, code) = import_mode(
        "keepalived",
        &fixture("keepalived/failover.conf"),
        "weights",
        "weights",
    );
    assert_eq!(
        code, 3,
        "the sorry server's warning (it must be in the table at 0)"
    );
    let yaml_text = std::fs::read_to_string(&yaml).expect("read");
    assert!(yaml_text.contains("mode: weights"), "{yaml_text}");
    let _checker = start_checker("weights", &yaml);
    run_in(None, "kill $(cat /run/lab-topology/rs1/server.pid)");
    let down = time_to(
        &[
            SERVICE,
            "-a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 0",
            "-a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 1",
            sorry,
            DIGEST_SERVICE,
            "-a -t 198.18.0.11:80 -r 198.18.1.13:80 -m -w 1",
            UDP_SERVICE,
            "-a -u 198.18.0.10:53 -r 198.18.1.11:53 -m -w 0",
            "-a -u 198.18.0.10:53 -r 198.18.1.12:53 -m -w 1",
        ],
        within,
        "rs1 at weight 0 in keepalived's table (web and UDP)",
    );
    run_in(None, &format!("{t} serve"));
    let up = time_to(&healthy, within, "rs1 back at weight 2");
    assert!(
        keepalived
            .child
            .try_wait()
            .expect("keepalived's status")
            .is_none(),
        "keepalived stopped"
    );
    assert!(vip_on_cl0(), "keepalived's VRRP no longer holds the VIP");
    keepalived.stop();
    assert!(
        !vip_on_cl0(),
        "keepalived left the VIP on cl0 when it stopped"
    );
    eprintln!("weights mode beside keepalived: rs1 at 0 after {down:.2?}, back after {up:.2?}");
}
