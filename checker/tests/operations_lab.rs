//! End-to-end tests of the checker's daily operations against a real
//! kernel's IPVS in the lab (`lab/test`): drains (an out-of-band weight 0,
//! `ipvs-checker drain`/`undrain` through the admin API with basic auth, a
//! SIGKILL and restart, maintenance files) and managed mode's graceful
//! removal of a real server with a connection open. Each test starts as
//! few daemons as it can and probes every 500 ms, so that seconds cover
//! many probes. The network is the lab's (`lab/topology.sh`).

use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipvs::{DestinationKey, Ipvs, ServiceKey};
use lab_harness::{client, director, lab_once, run_in, topology_script, Daemon, DIRECTOR};

const BIN: &str = env!("CARGO_BIN_EXE_ipvs-checker");
const WEB: &str = "127.0.0.1:10311";
const PASSWORD: &str = "right horse";

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("LAB_OUT").unwrap_or_else(|_| "/tmp".into()))
        .join("checker-operations");
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

/// The lab with three real servers serving, an empty table.
fn fresh_lab() -> std::sync::MutexGuard<'static, ()> {
    let t = topology_script();
    let guard = lab_once(|| {
        run_in(None, &format!("{t} up 3 && {t} vip 198.18.0.10"));
    });
    run_in(None, &format!("{t} serve"));
    director("ipvsadm -C");
    guard
}

/// Starts the checker on `config` (written to NAME.yaml) with `flags`;
/// returns once its /metrics answers (with the lab's basic auth).
fn start(name: &str, config: &str, flags: &[&str]) -> Daemon {
    let dir = out_dir();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, config).expect("write config");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--config.file".into(),
        file.into(),
        "--log.level".into(),
        "debug".into(),
        "--web.listen-address".into(),
        WEB.into(),
    ];
    args.extend(flags.iter().map(Into::into));
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    Daemon::start(
        BIN,
        &args,
        &dir.join(format!("{name}.log")),
        &format!("http://lab:{}@{WEB}/metrics", PASSWORD.replace(' ', "%20")),
        Duration::from_secs(20),
    )
}

/// Runs the CLI in the director with `args`, with the password in its
/// environment if `password`; whether it succeeded, and its stdout and
/// stderr.
fn cli(args: &[&str], password: bool) -> (bool, String) {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", "lab-director", BIN])
        .args(args);
    if password {
        command.env("IPVS_CHECKER_WEB_PASSWORD", PASSWORD);
    } else {
        command.env_remove("IPVS_CHECKER_WEB_PASSWORD");
    }
    let output = command.output().expect("run the CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn weight(ipvs: &mut Ipvs, service: &ServiceKey, rs: &str) -> Option<u32> {
    let key = DestinationKey::new(rs.parse().expect("address"));
    ipvs.destinations(service)
        .ok()?
        .into_iter()
        .find(|d| d.key == key)
        .map(|d| d.config.weight)
}

/// `rs`'s active connections in 198.18.0.10:80.
fn active(ipvs: &mut Ipvs, rs: &str) -> Option<u32> {
    let key = DestinationKey::new(rs.parse().expect("address"));
    ipvs.destinations(&vip80())
        .ok()?
        .into_iter()
        .find(|d| d.key == key)
        .map(|d| d.active_conns)
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn vip80() -> ServiceKey {
    ServiceKey::tcp("198.18.0.10:80".parse().expect("address"))
}

/// `ipvs-checker status` as the lab user.
fn status() -> String {
    let (ok, text) = cli(&["status", "--web.username", "lab"], true);
    assert!(ok, "{text}");
    text
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn drains_hold_through_probes_the_cli_a_sigkill_and_maintenance_files() {
    let _lock = fresh_lab();
    director(
        "ipvsadm -A -t 198.18.0.10:80 -s wrr && \
         ipvsadm -a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 3 && \
         ipvsadm -a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 1",
    );
    let dir = out_dir();
    let drains = dir.join("drains.json");
    let maintenance = dir.join("maintenance");
    let _ = std::fs::remove_file(&drains);
    let _ = std::fs::remove_dir_all(&maintenance);
    std::fs::create_dir_all(&maintenance).expect("maintenance dir");
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    let web = dir.join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  lab: '{hash}'\n")).expect("web.yml");
    let config = format!(
        "drain_file: {}\nmaintenance_dir: {}\n\
         defaults: {{interval: 500ms, timeout: 400ms, rise: 1, fall: 3}}\n\
         services:\n  - address: 198.18.0.10:80\n    check: {{type: http, path: /, body: \"^rs\"}}\n\
         \x20   real_servers:\n      - {{address: 198.18.1.11:80, weight: 3}}\n      - {{address: 198.18.1.12:80, weight: 1}}\n",
        drains.display(),
        maintenance.display()
    );
    let web_flag = format!("--web.config.file={}", web.display());
    let mut ipvs = Ipvs::connect_in_netns(DIRECTOR).expect("IPVS in lab-director");
    let mut checker = start("drains", &config, &["--web.enable-admin-api", &web_flag]);
    sleep(Duration::from_secs(1));
    assert_eq!(weight(&mut ipvs, &vip80(), "198.18.1.11:80"), Some(3));

    // An operator's ipvsadm -w 0 is a drain: 10 s of probes (20) keep it.
    director("ipvsadm -e -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 0");
    let start_hold = Instant::now();
    while start_hold.elapsed() < Duration::from_secs(10) {
        assert_eq!(weight(&mut ipvs, &vip80(), "198.18.1.11:80"), Some(0));
        sleep(Duration::from_millis(200));
    }
    let shown = status();
    assert!(shown.contains("up, drained"), "{shown}");
    assert!(shown.contains("drained by out_of_band"), "{shown}");
    // undrain restores it.
    let (ok, text) = cli(
        &[
            "undrain",
            "TCP/198.18.0.10:80",
            "198.18.1.11:80",
            "--web.username",
            "lab",
        ],
        true,
    );
    assert!(ok, "{text}");
    let took = wait_until("rs1 back at 3", Duration::from_secs(3), || {
        weight(&mut ipvs, &vip80(), "198.18.1.11:80") == Some(3)
    });
    eprintln!("undrained: rs1 back at weight 3 after {took:?}");
    // A weight of 9 out of band is still undone.
    director("ipvsadm -e -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 9");
    let took = wait_until("rs2 back at 1", Duration::from_secs(3), || {
        weight(&mut ipvs, &vip80(), "198.18.1.12:80") == Some(1)
    });
    eprintln!("out-of-band weight 9 set back to 1 after {took:?}");

    // The CLI without credentials is refused and changes nothing.
    let drain = [
        "drain",
        "198.18.0.10:80",
        "198.18.1.11:80",
        "--reason",
        "kernel update",
        "--web.username",
        "lab",
    ];
    let (ok, text) = cli(&drain[..3], false);
    assert!(!ok && text.contains("needs basic auth"), "{text}");
    let (ok, text) = cli(&drain, false);
    assert!(
        !ok && text.contains("IPVS_CHECKER_WEB_PASSWORD is not"),
        "{text}"
    );
    assert_eq!(weight(&mut ipvs, &vip80(), "198.18.1.11:80"), Some(3));
    // With them: drained.
    let (ok, text) = cli(&drain, true);
    assert!(ok, "{text}");
    assert!(text.contains("drained"), "{text}");
    assert_eq!(weight(&mut ipvs, &vip80(), "198.18.1.11:80"), Some(0));

    // SIGKILL, and a restart with the admin API off.
    checker.signal("KILL");
    checker.wait();
    drop(checker);
    let _checker = start("drains", &config, &[&web_flag]);
    sleep(Duration::from_secs(1));
    let shown = status();
    assert!(
        shown.contains("drained by api (lab)") && shown.contains(": kernel update"),
        "{shown}"
    );
    // An API drain is enforced: a weight set on it goes back to 0.
    director("ipvsadm -e -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 3");
    wait_until("the drain enforced", Duration::from_secs(3), || {
        weight(&mut ipvs, &vip80(), "198.18.1.11:80") == Some(0)
    });
    let (ok, text) = cli(
        &[
            "undrain",
            "198.18.0.10:80",
            "198.18.1.11:80",
            "--web.username",
            "lab",
        ],
        true,
    );
    assert!(
        !ok && text
            .contains("the admin API is off: start ipvs-checker with --web.enable-admin-api"),
        "{text}"
    );
    assert_eq!(weight(&mut ipvs, &vip80(), "198.18.1.11:80"), Some(0));

    // A maintenance file drains rs2 while it exists.
    std::fs::write(maintenance.join("198.18.1.12"), "").expect("touch");
    let took = wait_until("rs2 drained by file", Duration::from_secs(3), || {
        weight(&mut ipvs, &vip80(), "198.18.1.12:80") == Some(0)
    });
    eprintln!("maintenance file: rs2 at weight 0 after {took:?}");
    assert!(status().contains("drained by maintenance_dir"));
    std::fs::remove_file(maintenance.join("198.18.1.12")).expect("rm");
    let took = wait_until("rs2 undrained", Duration::from_secs(3), || {
        weight(&mut ipvs, &vip80(), "198.18.1.12:80") == Some(1)
    });
    eprintln!("maintenance file removed: rs2 back at weight 1 after {took:?}");
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn a_real_server_leaving_a_managed_config_waits_for_its_connection() {
    let _lock = fresh_lab();
    let dir = out_dir();
    let state = dir.join("graceful-owned.json");
    let _ = std::fs::remove_file(&state);
    let config = |real_servers: &str| {
        format!(
            "mode: managed\nstate_file: {}\ndrain_file: {}\ndrain_timeout: 30s\n\
             defaults: {{interval: 500ms, timeout: 400ms, rise: 1, fall: 3}}\n\
             services:\n  - address: 198.18.0.10:80\n    scheduler: wrr\n    check: {{type: http, path: /}}\n\
             \x20   real_servers:\n{real_servers}",
            state.display(),
            dir.join("graceful-drains.json").display()
        )
    };
    let rs2_only = config("      - {address: 198.18.1.12:80, weight: 1}\n");
    let rs1_only = config("      - {address: 198.18.1.11:80, weight: 1}\n");
    let mut ipvs = Ipvs::connect_in_netns(DIRECTOR).expect("IPVS in lab-director");
    let file = dir.join("graceful.yaml");
    let checker = start("graceful", &rs2_only, &[]);
    wait_until("rs2 in service", Duration::from_secs(5), || {
        weight(&mut ipvs, &vip80(), "198.18.1.12:80") == Some(1)
    });
    // A client opens a connection (to rs2, the only one) and holds it:
    // it asks its question when /tmp/lab-ask exists, then prints the answer.
    client("rm -f /tmp/lab-ask /tmp/lab-answer");
    client(
        "nohup bash -c 'exec 3<>/dev/tcp/198.18.0.10/80; \
         while [ ! -e /tmp/lab-ask ]; do sleep 0.05; done; \
         printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3 >/tmp/lab-answer' \
         >/dev/null 2>&1 &",
    );
    // (A Python start costs seconds under emulation.)
    wait_until(
        "the connection established",
        Duration::from_secs(30),
        || active(&mut ipvs, "198.18.1.12:80") == Some(1),
    );
    // rs2 leaves the config (rs1 comes in): weight 0, not deleted.
    std::fs::write(&file, &rs1_only).expect("write config");
    checker.signal("HUP");
    wait_until("rs2 at weight 0", Duration::from_secs(5), || {
        weight(&mut ipvs, &vip80(), "198.18.1.12:80") == Some(0)
    });
    sleep(Duration::from_secs(3));
    assert_eq!(weight(&mut ipvs, &vip80(), "198.18.1.12:80"), Some(0));
    let shown = status_plain();
    assert!(
        shown.contains("TCP 198.18.0.10:80 -> 198.18.1.12:80  removing, 1 active connections"),
        "{shown}"
    );
    // The connection still works: its answer comes from rs2.
    client("touch /tmp/lab-ask");
    wait_until("the answer", Duration::from_secs(5), || {
        client("cat /tmp/lab-answer 2>/dev/null || true").contains("rs2")
    });
    // Closed: rs2 is deleted.
    let took = wait_until("rs2 deleted", Duration::from_secs(5), || {
        weight(&mut ipvs, &vip80(), "198.18.1.12:80").is_none()
    });
    eprintln!("rs2 deleted {took:?} after its connection closed");
    assert_eq!(weight(&mut ipvs, &vip80(), "198.18.1.11:80"), Some(1));
}

/// `ipvs-checker status` without basic auth.
fn status_plain() -> String {
    let (ok, text) = cli(&["status"], false);
    assert!(ok, "{text}");
    text
}
