//! The loop's drains against the fake table: the admin API's orders, a
//! restart, expiry, maintenance files and out-of-band weights.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config;
use crate::daemon::reports::Report;
use crate::prober::{Phases, Success};
use crate::reconcile::memory::MemoryTable;

/// Two services with 198.18.1.11 in both; rise and fall 1; the drain file
/// and maintenance_dir in `dir`; `head` goes first.
fn config(dir: &Path, head: &str) -> Config {
    let text = format!(
        "{head}drain_file: drains.json\nmaintenance_dir: maintenance\ndefaults: {{rise: 1, fall: 1}}\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {{address: 198.18.1.11:80, weight: 3}}\n      - {{address: 198.18.1.12:80, weight: 1}}\n  - address: 198.18.0.10:443\n    real_servers:\n      - {{address: 198.18.1.11:443, weight: 2}}\n"
    );
    config::parse(&text, &dir.join("checker.yaml"), dir).expect("valid")
}

/// A daemon (re)started on `dir`, its table as `config` builds it, every
/// real server probed up once and every service reconciled.
fn started(dir: &Path, head: &str) -> Daemon<MemoryTable> {
    let config = config(dir, head);
    let table = MemoryTable::from_config(&config);
    let state = Shared::new(&config);
    let mut daemon = Daemon::start(config, table, false, state).expect("start");
    probe_up(&mut daemon);
    daemon.resync();
    daemon
}

/// Every real server passes a probe; the flips are reconciled.
fn probe_up(daemon: &mut Daemon<MemoryTable>) {
    for service in daemon.config.services.clone() {
        for rs in &service.real_servers {
            daemon.observe(&Report {
                task: 0,
                service: service.key,
                destination: rs.key,
                result: Ok(Success::default()),
                phases: Phases::new(),
                each: smallvec::smallvec![None],
                checker_fault: None,
                hurried: false,
                began: tokio::time::Instant::now(),
            });
        }
    }
    daemon.flush();
}

/// The weights in the table: 198.18.0.10:80's two, then :443's one.
fn weights(daemon: &Daemon<MemoryTable>) -> Vec<u32> {
    daemon
        .reconciler
        .table()
        .dests
        .values()
        .flat_map(|d| d.values().map(|c| c.weight))
        .collect()
}

fn drain(service: &str, real_server: &str, until: Option<Duration>) -> Order {
    Order::Drain {
        service: service.into(),
        real_server: real_server.into(),
        reason: Some("kernel update".into()),
        until,
        user: Some("alice".into()),
    }
}

fn undrain(service: &str, real_server: &str) -> Order {
    Order::Undrain {
        service: service.into(),
        real_server: real_server.into(),
    }
}

fn by(daemon: &Daemon<MemoryTable>, service: usize, rs: usize) -> Option<By> {
    let s = &daemon.config.services[service];
    let state = daemon.state.lock();
    state.drain(&s.key, &s.real_servers[rs].key).map(|d| d.by)
}

/// A drain through the API holds weight 0 while the server stays up,
/// survives a restart (the drain file), ends by undrain or by its `until`.
#[test]
fn an_api_drain_holds_survives_a_restart_and_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = started(dir.path(), "");
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
    assert_eq!(
        daemon.order(drain("tcp/198.18.0.10:80", "198.18.1.11:80", None)),
        Ok("198.18.1.11:80 of TCP 198.18.0.10:80 drained".into())
    );
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    probe_up(&mut daemon);
    daemon.resync();
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    {
        let state = daemon.state.lock();
        let s = &daemon.config.services[0];
        let d = state
            .drain(&s.key, &s.real_servers[0].key)
            .expect("drained");
        assert_eq!(d.user.as_deref(), Some("alice"));
        assert_eq!(d.reason.as_deref(), Some("kernel update"));
    }
    // SIGKILL and a restart: the table keeps its weights, the drain file
    // its drain; this start sets the configured weights first.
    drop(daemon);
    let mut daemon = started(dir.path(), "");
    assert_eq!(by(&daemon, 0, 0), Some(By::Api));
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    assert_eq!(
        daemon.order(undrain("198.18.0.10:80", "198.18.1.11")),
        Ok("198.18.1.11:80 of TCP 198.18.0.10:80 undrained".into())
    );
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
    assert_eq!(
        daemon.order(undrain("198.18.0.10:80", "198.18.1.11")),
        Ok("198.18.1.11:80 of TCP 198.18.0.10:80 was not drained".into())
    );
    // --until: gone on the first pass after it.
    let drained = daemon.order(drain(
        "TCP 198.18.0.10:443",
        "198.18.1.11:443",
        Some(Duration::from_millis(1)),
    ));
    assert!(drained.is_ok_and(|text| text.contains(" drained until ")));
    assert_eq!(weights(&daemon), vec![3, 1, 0]);
    std::thread::sleep(Duration::from_millis(5));
    daemon.resync();
    assert_eq!(by(&daemon, 1, 0), None);
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
    let restarted = started(dir.path(), "");
    assert!(restarted.state.lock().drains().iter().next().is_none());
}

#[test]
fn names_that_match_nothing_are_refused_with_what_there_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = started(dir.path(), "");
    assert_eq!(
        daemon.order(drain("UDP/198.18.0.10:80", "198.18.1.11:80", None)),
        Err(Refusal::NotFound(
            "no configured service is \"UDP/198.18.0.10:80\" (configured: TCP 198.18.0.10:80, TCP 198.18.0.10:443)".into()
        ))
    );
    assert_eq!(
        daemon.order(drain("FWM/1", "198.18.1.11:80", None)),
        Err(Refusal::NotFound(
            "no configured service is \"FWM/1\" (configured: TCP 198.18.0.10:80, TCP 198.18.0.10:443)".into()
        ))
    );
    assert_eq!(
        daemon.order(drain("198.18.0.10:80", "198.18.1.13:80", None)),
        Err(Refusal::NotFound(
            "TCP 198.18.0.10:80 has no real server \"198.18.1.13:80\" (configured: 198.18.1.11:80, 198.18.1.12:80)".into()
        ))
    );
    assert_eq!(
        daemon.order(drain("198.18.0.10:80", "rs11", None)),
        Err(Refusal::NotFound(
            "\"rs11\" is not a real server's address (198.18.1.11:80, [2001:db8::11]:80, or the address alone)".into()
        ))
    );
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
}

/// A drain that cannot be written is not made.
#[test]
fn a_drain_the_file_cannot_keep_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = started(dir.path(), "");
    daemon.config.drain_file = dir.path().join("missing-dir/drains.json");
    let refused = daemon.order(drain("198.18.0.10:80", "198.18.1.11:80", None));
    assert!(
        matches!(&refused, Err(Refusal::Failed(why)) if why.starts_with("not drained: state file ")),
        "{refused:?}"
    );
    assert_eq!(by(&daemon, 0, 0), None);
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
}

/// A file named after an address drains it in every service while it
/// exists; the API cannot undrain it.
#[test]
fn a_maintenance_file_drains_while_it_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = started(dir.path(), "");
    let maintenance = dir.path().join("maintenance");
    std::fs::create_dir(&maintenance).expect("mkdir");
    std::fs::write(maintenance.join("198.18.1.11"), "").expect("write");
    daemon.resync();
    assert_eq!(weights(&daemon), vec![0, 1, 0]);
    assert_eq!(by(&daemon, 0, 0), Some(By::MaintenanceDir));
    assert_eq!(
        daemon.order(undrain("198.18.0.10:80", "198.18.1.11:80")),
        Err(Refusal::Conflict(
            "198.18.1.11:80 of TCP 198.18.0.10:80 is drained by the maintenance file 198.18.1.11: remove the file to undrain it".into()
        ))
    );
    // One port only.
    std::fs::remove_file(maintenance.join("198.18.1.11")).expect("rm");
    std::fs::write(maintenance.join("198.18.1.11:443"), "").expect("write");
    daemon.resync();
    assert_eq!(weights(&daemon), vec![3, 1, 0]);
    std::fs::remove_file(maintenance.join("198.18.1.11:443")).expect("rm");
    daemon.resync();
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
    assert_eq!(by(&daemon, 1, 0), None);
}

/// `ipvsadm -e -w 0` is kept as a drain by `out_of_band`, in the drain
/// file too; a non-zero weight set by someone ends it; other changes are
/// set back. With `out_of_band: restore` the 0 is set back as well.
#[test]
fn an_out_of_band_zero_is_a_drain_that_a_restart_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = started(dir.path(), "");
    let s = daemon.config.services[0].key;
    let rs11 = daemon.config.services[0].real_servers[0].key;
    let rs12 = daemon.config.services[0].real_servers[1].key;
    daemon.reconciler.table_mut().set(&s, rs11, 0).expect("set");
    daemon.resync();
    assert_eq!(by(&daemon, 0, 0), Some(By::OutOfBand));
    probe_up(&mut daemon);
    daemon.resync();
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    // Another change is still set back.
    daemon.reconciler.table_mut().set(&s, rs12, 9).expect("set");
    daemon.resync();
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    drop(daemon);
    let mut daemon = started(dir.path(), "");
    assert_eq!(by(&daemon, 0, 0), Some(By::OutOfBand));
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    daemon.reconciler.table_mut().set(&s, rs11, 5).expect("set");
    daemon.resync();
    assert_eq!(by(&daemon, 0, 0), None);
    daemon.resync();
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
    assert!(Drains::load(&dir.path().join("drains.json"))
        .expect("load")
        .iter()
        .next()
        .is_none());

    let strict = tempfile::tempdir().expect("tempdir");
    let mut daemon = started(strict.path(), "out_of_band: restore\n");
    daemon.reconciler.table_mut().set(&s, rs11, 0).expect("set");
    daemon.resync();
    assert_eq!(by(&daemon, 0, 0), None);
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
}

/// The same 0 set while the checker starts: after its first pass, which
/// saw the table with every health unknown, and before that pass runs
/// again. The first results find the table as it was seen and reconcile
/// nothing, so the next pass is the first to see the 0, and keeps it.
#[test]
fn an_out_of_band_zero_while_the_checker_starts_is_a_drain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "");
    let table = MemoryTable::from_config(&config);
    let state = Shared::new(&config);
    let mut daemon = Daemon::start(config, table, false, state).expect("start");
    daemon.resync();
    let s = daemon.config.services[0].key;
    let rs11 = daemon.config.services[0].real_servers[0].key;
    daemon.reconciler.table_mut().set(&s, rs11, 0).expect("set");
    probe_up(&mut daemon);
    daemon.resync();
    assert_eq!(by(&daemon, 0, 0), Some(By::OutOfBand));
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
}

/// A reload (SIGHUP) keeps the drains of real servers still configured and
/// drops, from the file too, those of real servers that left.
#[test]
fn a_reload_keeps_the_drains_of_what_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = started(dir.path(), "");
    for (service, rs) in [
        ("198.18.0.10:80", "198.18.1.11:80"),
        ("198.18.0.10:80", "198.18.1.12:80"),
    ] {
        assert!(daemon.order(drain(service, rs, None)).is_ok());
    }
    let fewer = config::parse(
        "drain_file: drains.json\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {address: 198.18.1.11:80, weight: 3}\n",
        &dir.path().join("checker.yaml"),
        dir.path(),
    )
    .expect("valid");
    daemon.reload(fewer);
    daemon.resync();
    assert_eq!(by(&daemon, 0, 0), Some(By::Api));
    let kept: Vec<_> = Drains::load(&dir.path().join("drains.json"))
        .expect("load")
        .iter()
        .map(|((_, d), _)| d.to_string())
        .collect();
    assert_eq!(kept, vec!["198.18.1.11:80"]);
    // (Weights mode changes no real server outside its config: rs12 stays
    // as its drain left it.)
    assert_eq!(weights(&daemon), vec![0, 0, 2]);
}

/// Managed mode keeps drains as weights mode does: through a reload
/// (SIGHUP), and through a SIGKILL and restart that finds the table as the
/// drain left it; an undrain after that gives the weight back.
#[test]
fn in_managed_mode_a_drain_survives_a_reload_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = "mode: managed\nstate_file: owned.json\n";
    let mut daemon = started(dir.path(), head);
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
    assert!(daemon
        .order(drain("tcp/198.18.0.10:80", "198.18.1.11:80", None))
        .is_ok());
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    daemon.reload(config(dir.path(), head));
    daemon.resync();
    assert_eq!(by(&daemon, 0, 0), Some(By::Api));
    assert_eq!(weights(&daemon), vec![0, 1, 2]);

    let table = daemon.reconciler.table().clone();
    drop(daemon);
    let config = config(dir.path(), head);
    let state = Shared::new(&config);
    let mut daemon = Daemon::start(config, table, false, state).expect("restart");
    probe_up(&mut daemon);
    daemon.resync();
    assert_eq!(by(&daemon, 0, 0), Some(By::Api));
    assert_eq!(weights(&daemon), vec![0, 1, 2]);
    assert!(daemon
        .order(undrain("198.18.0.10:80", "198.18.1.11"))
        .is_ok());
    assert_eq!(weights(&daemon), vec![3, 1, 2]);
}
