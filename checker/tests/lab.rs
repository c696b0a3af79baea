//! End-to-end tests of the daemon against a real kernel's IPVS in the lab
//! (`lab/test`, or `lab/run -- cargo test -p ipvs-checker --test lab --
//! --ignored`). The network is the lab's (`lab/topology.sh`): addresses in
//! 198.18.0.0/15 only. The checker runs in the director's namespace like
//! on a real director; the tests read weights with the `ipvs` crate.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use std::thread::sleep;
use std::time::{Duration, Instant};

use ipvs::{DestinationKey, Ipvs, ServiceKey};
use lab_harness::{director, lock, run_in, topology_script, DIRECTOR};

/// Where the checker's config and log go: `$LAB_OUT` survives the VM.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("LAB_OUT").unwrap_or_else(|_| "/tmp".into()))
        .join("checker-e2e");
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

/// The checker, killed (and its log shown) when the test ends.
struct Checker {
    child: Child,
    log: PathBuf,
}

impl Checker {
    fn start(name: &str, config: &str) -> Checker {
        let dir = out_dir();
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, config).expect("write config");
        let log = dir.join(format!("{name}.log"));
        let child = Command::new("ip")
            .args(["netns", "exec", "lab-director"])
            .arg(env!("CARGO_BIN_EXE_ipvs-checker"))
            .arg("--config.file")
            .arg(&file)
            .args(["--log.level", "debug"])
            .args(["--web.listen-address", WEB])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start ipvs-checker");
        Checker { child, log }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- checker log {}:\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Where the checker serves /metrics, in the director's namespace.
const WEB: &str = "127.0.0.1:10311";

/// The checker's /metrics (text format), fetched in the director.
fn scrape() -> String {
    director(&format!("curl -sSf http://{WEB}/metrics"))
}

/// The value of `name{labels}` in `metrics`, where `labels` is the start
/// of the label set.
fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}");
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

const RS1: &str = r#"proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",remote_address="198.18.1.11",remote_port="80""#;

fn weight(ipvs: &mut Ipvs, service: &ServiceKey, rs: &str) -> u32 {
    let key = DestinationKey::new(rs.parse().expect("address"));
    ipvs.destinations(service)
        .expect("destinations")
        .into_iter()
        .find(|d| d.key == key)
        .map(|d| d.config.weight)
        .unwrap_or_else(|| panic!("{rs} is not in {service}"))
}

/// Polls until `rs` has `want`; returns how long that took, or panics after `limit`.
fn wait_for_weight(
    ipvs: &mut Ipvs,
    service: &ServiceKey,
    rs: &str,
    want: u32,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let have = weight(ipvs, service, rs);
        if have == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{rs} still has weight {have}, not {want}, after {limit:?}"
        );
        sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn weights_follow_a_killed_and_restarted_server_and_out_of_band_changes_are_undone() {
    let _lock = lock();
    let t = topology_script();
    run_in(
        None,
        &format!("{t} up 2 && {t} serve && {t} vip 198.18.0.10"),
    );
    director(
        "ipvsadm -C && ipvsadm -A -t 198.18.0.10:80 -s wrr && \
         ipvsadm -a -t 198.18.0.10:80 -r 198.18.1.11:80 -m -w 3 && \
         ipvsadm -a -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 1",
    );
    let service = ServiceKey::tcp("198.18.0.10:80".parse().expect("address"));
    let mut ipvs = Ipvs::connect_in_netns(DIRECTOR).expect("IPVS in lab-director");
    let _checker = Checker::start(
        "kill-restart",
        "defaults:\n  interval: 1s\n  timeout: 500ms\n  rise: 1\n  fall: 2\n\
         services:\n  - address: 198.18.0.10:80\n    check: {type: http, path: /, body: \"^rs\"}\n\
         \x20   real_servers:\n      - {address: 198.18.1.11:80, weight: 3}\n      - {address: 198.18.1.12:80, weight: 1}\n",
    );
    // Both up: nothing changes, and the checker has results.
    sleep(Duration::from_secs(3));
    assert_eq!(weight(&mut ipvs, &service, "198.18.1.11:80"), 3);
    assert_eq!(weight(&mut ipvs, &service, "198.18.1.12:80"), 1);
    let before = scrape();
    assert_eq!(
        sample(&before, "ipvs_checker_backend_up", RS1),
        Some(1.0),
        "{before}"
    );
    let transitions = sample(&before, "ipvs_checker_transitions_total", RS1).expect("transitions");

    // rs1's server dies: weight 0 within interval x fall + 1 s.
    run_in(None, "kill $(cat /run/lab-topology/rs1/server.pid)");
    let took = wait_for_weight(
        &mut ipvs,
        &service,
        "198.18.1.11:80",
        0,
        Duration::from_secs(3),
    );
    eprintln!("rs1 at weight 0 {took:?} after its server was killed");
    assert_eq!(weight(&mut ipvs, &service, "198.18.1.12:80"), 1);
    // The endpoint says so.
    let after = scrape();
    assert_eq!(
        sample(&after, "ipvs_checker_backend_up", RS1),
        Some(0.0),
        "{after}"
    );
    assert!(
        sample(&after, "ipvs_checker_transitions_total", RS1) > Some(transitions),
        "{after}"
    );

    // It comes back: the configured weight returns.
    run_in(None, &format!("{t} serve"));
    let took = wait_for_weight(
        &mut ipvs,
        &service,
        "198.18.1.11:80",
        3,
        Duration::from_secs(5),
    );
    eprintln!("rs1 back at weight 3 {took:?} after its server restarted");

    // ipvsadm -e behind the checker's back is set back.
    director("ipvsadm -e -t 198.18.0.10:80 -r 198.18.1.12:80 -m -w 7");
    let took = wait_for_weight(
        &mut ipvs,
        &service,
        "198.18.1.12:80",
        1,
        Duration::from_secs(3),
    );
    eprintln!("out-of-band weight 7 set back to 1 after {took:?}");
}
