//! The loop's bookkeeping against the fake table: what a burst of flips
//! costs in dumps and writes.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;

use ipvs::{DestinationKey, ForwardMethod};

use super::admission::Admission;
use super::bell::Bell;
use super::hurries::{Hurries, Recovery, FAILURES, HURRY};
use super::places::{group_of, groups, interleaved, GROUP};
use super::reports::{CheckerFault, Report, Reports};
use super::shards::Shards;
use super::*;
use crate::config;
use crate::health::Health;
use crate::prober::{Phase, Phases, ProbeError, Success};
use crate::reconcile::memory::MemoryTable;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Real servers of the first service (the second has two).
const N: u8 = 50;

/// Two services: 198.18.0.10:80 with `N` real servers, 198.18.0.20:80
/// with two; rise and fall 1, so every probe that differs is a flip.
fn config(head: &str, dir: &Path) -> Config {
    config_with(head, "", dir)
}

/// [`config`] with more `defaults` (`key: value, ` each).
fn config_with(head: &str, defaults: &str, dir: &Path) -> Config {
    let mut text = format!("{head}defaults: {{{defaults}rise: 1, fall: 1}}\nservices:\n");
    for (vip, count) in [("198.18.0.10", N), ("198.18.0.20", 2)] {
        write!(text, "  - address: {vip}:80\n    real_servers:\n").expect("write");
        for i in 1..=count {
            writeln!(text, "      - {{address: 198.18.1.{i}:80, weight: 1}}").expect("write");
        }
    }
    config::parse(&text, &dir.join("checker.yaml"), dir).expect("valid")
}

/// A probe result for every real server of service `i`.
fn probe_all(daemon: &mut Daemon<MemoryTable>, i: usize, ok: bool) {
    for j in 0..daemon.config.services[i].real_servers.len() {
        probe_one(daemon, i, j, ok);
    }
}

/// A probe result for the `j`-th real server of service `i`: a pass, or
/// a refused connection.
fn probe_one(daemon: &mut Daemon<MemoryTable>, i: usize, j: usize, ok: bool) {
    let report = report_of(daemon, i, j, ok, tokio::time::Instant::now());
    daemon.observe(&report);
}

/// The report of a probe of the `j`-th real server of service `i` begun
/// at `began`: a pass, or a refused connection.
fn report_of(
    daemon: &Daemon<MemoryTable>,
    i: usize,
    j: usize,
    ok: bool,
    began: tokio::time::Instant,
) -> Report {
    let service = &daemon.config.services[i];
    let result = if ok {
        Ok(Success::default())
    } else {
        Err(ProbeError::Connect(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    };
    Report {
        task: 0,
        service: service.key,
        destination: service.real_servers[j].key,
        result,
        phases: Phases::new(),
        each: crate::prober::set::EachCheck::new(),
        checker_fault: None,
        hurried: false,
        began,
    }
}

/// The lines `f` logs, in logfmt as the daemon writes them.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Lines(Arc<parking_lot::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .event_format(ipvs_web::logging::Logfmt)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = lines.0.lock().clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A real server's change of health is logged with the time since the
/// probe that made it began, the checker's own part of the time a failure
/// takes to be seen, and the time the probe's phases took of it.
#[test]
fn a_flip_is_logged_with_the_time_since_its_probe_began_and_what_the_probe_took() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("", dir.path());
    let state = Shared::new(&config);
    let reconciler = Reconciler::new(MemoryTable::from_config(&config), false);
    let mut daemon = Daemon::new(config, reconciler, state);
    probe_all(&mut daemon, 0, true);
    let began = tokio::time::Instant::now() - std::time::Duration::from_millis(40);
    let mut report = report_of(&daemon, 0, 0, false, began);
    report.phases = Phases::new().with(Phase::Connect, std::time::Duration::from_millis(3));
    let text = logged(|| {
        daemon.observe(&report);
    });
    let line = text
        .lines()
        .find(|line| line.contains("msg=\"real server is down"))
        .unwrap_or_else(|| panic!("no flip logged: {text}"));
    let ms = |name: &str| -> f64 {
        let value = line
            .split(' ')
            .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name}: {line}"));
        value
            .strip_suffix("ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in milliseconds: {value}"))
    };
    assert!(
        (40.0..10_000.0).contains(&ms("since_probe_start")),
        "{line}"
    );
    assert_eq!(ms("probe_took"), 3.0, "{line}");
}

fn weights(daemon: &Daemon<MemoryTable>, i: usize) -> Vec<u32> {
    let key = daemon.config.services[i].key;
    daemon.reconciler.table().dests[&key]
        .values()
        .map(|c| c.weight)
        .collect()
}

#[test]
fn flips_of_one_turn_cost_one_dump_per_service_and_one_write_per_weight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("", dir.path());
    let (a, b) = (config.services[0].key, config.services[1].key);
    let state = Shared::new(&config);
    let reconciler = Reconciler::new(MemoryTable::from_config(&config), false);
    let mut daemon = Daemon::new(config, reconciler, state);

    // Start-up: everything up (from unknown, a flip each): one dump per
    // service, nothing to write.
    probe_all(&mut daemon, 0, true);
    probe_all(&mut daemon, 1, true);
    daemon.flush();
    let t = daemon.reconciler.table();
    assert_eq!((t.dumps_of(&a), t.dumps_of(&b)), (1, 1));
    assert!(t.writes.is_empty());

    // A rack failure: all N of the first service down in one turn.
    probe_all(&mut daemon, 0, false);
    assert_eq!(daemon.pending, HashSet::from([a]));
    daemon.flush();
    let t = daemon.reconciler.table();
    assert_eq!(t.dumps_of(&a), 2, "one more dump of the failed service");
    assert_eq!(t.dumps_of(&b), 1, "the other service is not read");
    assert_eq!(t.writes.len(), usize::from(N));
    assert!(t.writes.iter().all(|(_, w)| *w == 0));
    assert_eq!(weights(&daemon, 0), vec![0; usize::from(N)]);
    assert_eq!(weights(&daemon, 1), vec![1, 1]);

    // Nothing pending: nothing read. Probes that agree with the health
    // flip nothing.
    probe_all(&mut daemon, 0, false);
    daemon.flush();
    assert_eq!(daemon.reconciler.table().dumps_of(&a), 2);

    // Back: one dump, N writes, and the status shows the weights set.
    probe_all(&mut daemon, 0, true);
    daemon.flush();
    let t = daemon.reconciler.table();
    assert_eq!(t.dumps_of(&a), 3);
    assert_eq!(t.writes.len(), 2 * usize::from(N));
    assert_eq!(weights(&daemon, 0), vec![1; usize::from(N)]);
    let state = daemon.state.lock();
    let backends = &state.services()[0].backends;
    assert!(backends.iter().all(|b| b.current_weight == Some(1)));
}

/// A pass that takes more than a twentieth of a second waits twenty times
/// its time before the next one, up to 5 s, and up to half the
/// watchdog's ping period (a pass must run between pings); a quick one,
/// a second.
#[test]
fn a_slow_resync_pass_is_followed_by_a_longer_wait_within_its_bounds() {
    let ms = Duration::from_millis;
    assert_eq!(resync_after(ms(2), None), RESYNC);
    assert_eq!(resync_after(ms(50), None), RESYNC);
    assert_eq!(resync_after(ms(130), None), ms(2600));
    assert_eq!(resync_after(ms(400), None), RESYNC_MOST);
    assert_eq!(resync_after(Duration::MAX, None), RESYNC_MOST);
    // systemd's WatchdogSec=30s: pings every 15 s, a pass every 7.5 s
    // would do; the 5 s bound holds.
    assert_eq!(
        resync_after(ms(400), Some(Duration::from_secs(15))),
        RESYNC_MOST
    );
    // WatchdogSec=6s: pings every 3 s, a pass at least every 1.5 s.
    assert_eq!(
        resync_after(ms(400), Some(Duration::from_secs(3))),
        ms(1500)
    );
    // Never more often than every second, however short the pings.
    assert_eq!(resync_after(ms(400), Some(ms(500))), RESYNC);
}

/// A pass is paced by its thread's CPU time: it grows while the thread
/// works, not while it waits (a pass held up by other threads costs no
/// more).
#[test]
fn the_pass_is_paced_by_the_cpu_of_its_thread_not_by_the_wall_clock() {
    let began = thread_cpu_time();
    assert!(began > Duration::ZERO);
    std::thread::sleep(Duration::from_millis(200));
    let slept = thread_cpu_time().saturating_sub(began);
    assert!(slept < Duration::from_millis(100), "{slept:?}");
    let wall = std::time::Instant::now();
    let mut spun = 0u64;
    while thread_cpu_time().saturating_sub(began) < Duration::from_millis(20) {
        assert!(
            wall.elapsed() < Duration::from_secs(60),
            "the clock does not move"
        );
        spun = std::hint::black_box(spun.wrapping_add(1));
    }
}

/// Once a pass has read the table, a flip to the weight the table has
/// (the first results after start-up, above all) costs no read of its
/// own; a flip to another weight does, and so does any flip of a service
/// with a quorum.
#[test]
fn a_flip_to_the_weight_the_table_has_costs_no_read_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("", dir.path());
    let (a, b) = (config.services[0].key, config.services[1].key);
    let zeroed = config.services[1].real_servers[1].key;
    let mut table = MemoryTable::from_config(&config);
    table
        .dests
        .get_mut(&b)
        .and_then(|d| d.get_mut(&zeroed))
        .expect("in the table")
        .weight = 0;
    let state = Shared::new(&config);
    let mut daemon = Daemon::new(config, Reconciler::new(table, false), state);
    // The pass at start-up: every health unknown, nothing written.
    daemon.resync();
    assert_eq!(daemon.reconciler.table().dumps_of(&a), 1);

    // Every real server of `a` up, as the table has them: nothing to do.
    probe_all(&mut daemon, 0, true);
    assert!(daemon.pending.is_empty());
    // `b`'s second real server is up too, and at 0 in the table.
    probe_all(&mut daemon, 1, true);
    assert_eq!(daemon.pending, HashSet::from([b]));
    daemon.flush();
    let t = daemon.reconciler.table();
    assert_eq!((t.dumps_of(&a), t.dumps_of(&b)), (1, 2));
    assert_eq!(t.writes, vec![(zeroed, 1)]);
    // The status shows the weight the pass set, not the one it read.
    let state = daemon.state.lock();
    let backend = state.backend(&b, &zeroed).expect("configured");
    assert_eq!(backend.current_weight, Some(1));
    drop(state);

    // A failure calls for 0: read and written at once.
    probe_one(&mut daemon, 0, 0, false);
    assert_eq!(daemon.pending, HashSet::from([a]));
    daemon.flush();
    assert_eq!(daemon.reconciler.table().dumps_of(&a), 2);
    assert_eq!(weights(&daemon, 0)[0], 0);

    // With a quorum, every flip reads its service: it may move the guard.
    let text = "defaults: {rise: 1, fall: 1}\n\
                services:\n\
                \x20 - address: 198.18.0.10:80\n\
                \x20   quorum: {min_up: 1}\n\
                \x20   real_servers:\n\
                \x20     - {address: 198.18.1.1:80, weight: 1}\n";
    let config = config::parse(text, &dir.path().join("checker.yaml"), dir.path()).expect("valid");
    let state = Shared::new(&config);
    let reconciler = Reconciler::new(MemoryTable::from_config(&config), false);
    let mut daemon = Daemon::new(config, reconciler, state);
    daemon.resync();
    probe_all(&mut daemon, 0, true);
    assert_eq!(daemon.pending, HashSet::from([a]));
}

#[test]
fn the_tables_socket_reopens_reach_the_metrics_state_after_a_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("", dir.path());
    let state = Shared::new(&config);
    let mut table = MemoryTable::from_config(&config);
    table.socket_reopens = 3;
    let mut daemon = Daemon::new(config, Reconciler::new(table, false), state);
    assert_eq!(daemon.state.lock().netlink_socket_reopens, 0);
    probe_all(&mut daemon, 0, true);
    daemon.flush();
    assert_eq!(daemon.state.lock().netlink_socket_reopens, 3);
}

#[test]
fn a_managed_pass_reads_each_service_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("mode: managed\nstate_file: owned.json\n", dir.path());
    let (a, b) = (config.services[0].key, config.services[1].key);
    let state = Shared::new(&config);
    let reconciler = Reconciler::managed(
        MemoryTable::default(),
        false,
        dir.path().join("owned.json").as_path(),
    )
    .expect("no state file yet");
    let mut daemon = Daemon::new(config, reconciler, state);

    // From an empty table: both services made, real servers at weight 0
    // while unknown, one dump each (of the service just made).
    daemon.resync();
    let t = daemon.reconciler.table();
    assert_eq!((t.dumps_of(&a), t.dumps_of(&b)), (1, 1));
    assert_eq!(weights(&daemon, 0), vec![0; usize::from(N)]);
    // /status says what it created.
    {
        let status = crate::web::status(&daemon.state.lock());
        assert_eq!(status.mode, "managed");
        assert!(status.services.iter().all(|s| s.created_by_checker));
        assert!(status.services[0]
            .real_servers
            .iter()
            .all(|rs| rs.created_by_checker));
    }

    // All up in one turn: one dump (shared by the managed checks and the
    // weights), N writes.
    probe_all(&mut daemon, 0, true);
    daemon.flush();
    let t = daemon.reconciler.table();
    assert_eq!((t.dumps_of(&a), t.dumps_of(&b)), (2, 1));
    assert_eq!(t.writes.len(), usize::from(N));
    assert_eq!(weights(&daemon, 0), vec![1; usize::from(N)]);

    // A real server deleted and another's forwarding changed behind the
    // checker's back, and all down: one pass puts both back and zeroes
    // every weight, from one dump, without undoing its own fix.
    let (rs1, rs2) = {
        let s = &daemon.config.services[0];
        (s.real_servers[0].key, s.real_servers[1].key)
    };
    let t = daemon.reconciler.table_mut();
    t.dests.get_mut(&a).expect("a").remove(&rs1);
    t.dests
        .get_mut(&a)
        .expect("a")
        .get_mut(&rs2)
        .expect("rs2")
        .forward = ForwardMethod::DirectRoute;
    probe_all(&mut daemon, 0, false);
    daemon.flush();
    let t = daemon.reconciler.table();
    assert_eq!(t.dumps_of(&a), 3);
    assert_eq!(t.dests[&a][&rs2].forward, ForwardMethod::Masquerade);
    assert!(t.dests[&a].contains_key(&rs1));
    assert_eq!(weights(&daemon, 0), vec![0; usize::from(N)]);
}

#[test]
fn probes_start_in_groups_of_at_least_100_and_at_most_20_groups_per_thread() {
    assert_eq!(groups(0, 1), 1);
    assert_eq!(groups(1, 1), 1);
    assert_eq!(groups(199, 1), 1);
    assert_eq!(groups(200, 1), 2);
    assert_eq!(groups(500, 1), 5);
    assert_eq!(groups(2_000, 1), 20);
    assert_eq!(groups(10_000, 1), 20);
    assert_eq!(groups(5_000, 2), 40);
    assert_eq!(groups(10_000, 2), 40);
    assert_eq!(groups(10_000, 4), 80);
    assert_eq!(groups(10, 0), 1);
}

/// Each group's probes are on one thread, the groups on the threads in
/// turn: a group costs one thread's wake-up, and the threads have equal
/// shares of the probes (to a group).
#[test]
fn each_group_of_probes_is_on_one_thread_and_the_threads_take_the_groups_in_turn() {
    for (n, threads) in [(500, 2), (5_000, 2), (1_000, 3), (40, 2), (7, 1), (101, 4)] {
        let slots = groups(n, threads);
        let mut thread_of_slot = std::collections::HashMap::new();
        let mut per_thread = vec![0usize; threads];
        for i in 0..n {
            let (slot, thread) = group_of(i, n, slots, threads);
            assert!(slot < slots && thread < threads, "{n} on {threads}: {i}");
            assert_eq!(*thread_of_slot.entry(slot).or_insert(thread), thread);
            assert_eq!(thread, slot % threads);
            per_thread[thread] += 1;
        }
        assert_eq!(
            thread_of_slot.len(),
            slots,
            "{n} on {threads}: every group used"
        );
        let (least, most) = (per_thread.iter().min(), per_thread.iter().max());
        if slots >= threads {
            let group = n.div_ceil(slots);
            assert!(
                most.zip(least).is_some_and(|(m, l)| m - l <= group),
                "{n} on {threads}: {per_thread:?}"
            );
        } else {
            // Fewer groups than threads: the first ones have them.
            assert_eq!(per_thread[0], n, "{n} on {threads}: {per_thread:?}");
        }
    }
}

/// Each service's real servers are spread over the whole interval, in
/// turn with the other services': a service's probes are not bunched in
/// a few groups, whatever the sizes of the services beside it.
#[test]
fn each_services_real_servers_are_spread_over_the_whole_interval() {
    let sizes_of = [
        vec![500; 10],
        vec![500, 5],
        vec![1, 1, 1],
        vec![0, 3, 0],
        vec![100, 7, 1_000, 1],
        vec![],
    ];
    for sizes in sizes_of {
        let order = interleaved(&sizes);
        let n: usize = sizes.iter().sum();
        assert_eq!(order.len(), n, "{sizes:?}");
        let mut seen = std::collections::HashSet::new();
        for (s, &m) in sizes.iter().enumerate() {
            let at: Vec<usize> = (0..order.len()).filter(|&i| order[i].0 == s).collect();
            assert_eq!(at.len(), m, "{sizes:?}: service {s}");
            // Its own real servers in their order, evenly apart: the gaps
            // from the order's start, between them and to its end are at
            // most their share of it, give or take one of each other
            // service's.
            let share = n.div_ceil(m.max(1));
            let mut before = 0;
            for (j, &i) in at.iter().enumerate() {
                assert_eq!(order[i], (s, j), "{sizes:?}");
                let gap = if j == 0 { 2 * i } else { i - before };
                assert!(
                    gap <= share + 2 * sizes.len(),
                    "{sizes:?}: service {s}'s {j}-th at {i}, {gap} after the one before"
                );
                before = i;
                seen.insert((s, j));
            }
            if m > 0 {
                assert!(
                    2 * (n - 1 - before) <= share + 2 * sizes.len(),
                    "{sizes:?}: service {s} ends at {before}"
                );
            }
        }
        assert_eq!(seen.len(), n, "{sizes:?}: each real server once");
    }
}

/// Twenty services of 100 on one thread: 20 groups of 100, each with
/// real servers of every service, so that a failing rack, whichever
/// service it is, has probes starting within a group's spacing of its
/// failure.
#[test]
fn every_group_of_probes_holds_real_servers_of_every_service() {
    let sizes = vec![100; 20];
    let order = interleaved(&sizes);
    let n = order.len();
    let slots = groups(n, 1);
    assert_eq!(slots, 20);
    let mut services_of = vec![std::collections::HashSet::new(); slots];
    for (i, &(s, _)) in order.iter().enumerate() {
        services_of[group_of(i, n, slots, 1).0].insert(s);
    }
    for (slot, services) in services_of.iter().enumerate() {
        assert_eq!(services.len(), 20, "group {slot}: {services:?}");
    }
}

#[test]
fn the_ramp_runs_only_while_a_slow_start_is_in_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let with_slow_start = config_with("", "slow_start: 1s, ", dir.path());
    let without = config("", dir.path());
    for (config, ramps) in [(with_slow_start, true), (without, false)] {
        let state = Shared::new(&config);
        let reconciler = Reconciler::new(MemoryTable::from_config(&config), false);
        let mut daemon = Daemon::new(config, reconciler, state);
        // Up at start-up is not a recovery: no ramp.
        probe_all(&mut daemon, 0, true);
        daemon.flush();
        let now = std::time::Instant::now();
        assert!(!daemon.ramping(now));
        // Down, then back: a slow start, if one is configured.
        probe_all(&mut daemon, 0, false);
        daemon.flush();
        assert!(!daemon.ramping(now));
        probe_all(&mut daemon, 0, true);
        daemon.flush();
        let now = std::time::Instant::now();
        assert_eq!(daemon.ramping(now), ramps);
        assert_eq!(daemon.ramp(now), ramps, "a tick reconciles while ramping");
        // Once the period is over, the ramp stops.
        let later = now + Duration::from_secs(2);
        assert!(!daemon.ramping(later));
        assert!(!daemon.ramp(later));
    }
}

#[test]
fn only_a_real_server_back_from_down_is_a_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("", dir.path());
    let state = Shared::new(&config);
    let reconciler = Reconciler::new(MemoryTable::from_config(&config), false);
    let mut daemon = Daemon::new(config, reconciler, state);
    let service = daemon.config.services[1].clone();
    let report = |ok: bool| Report {
        task: 0,
        service: service.key,
        destination: service.real_servers[0].key,
        result: if ok {
            Ok(Success::default())
        } else {
            Err(ProbeError::Timeout(Duration::from_secs(1)))
        },
        phases: Phases::new(),
        each: crate::prober::set::EachCheck::new(),
        checker_fault: None,
        hurried: false,
        began: tokio::time::Instant::now(),
    };
    // Up at start-up (from unknown), still up, down, still down: none.
    for ok in [true, true, false, false] {
        assert_eq!(daemon.observe(&report(ok)), None, "{ok}");
    }
    assert_eq!(daemon.observe(&report(true)), Some(Recovery));
    assert_eq!(daemon.observe(&report(true)), None);
}

/// A daemon on the fake table of [`config`]; its state, its second
/// service and that service's first real server.
fn daemon_on_the_small_service(
    dir: &Path,
) -> (
    Daemon<MemoryTable>,
    Shared,
    config::VirtualService,
    DestinationKey,
) {
    let config = config("", dir);
    let state = Shared::new(&config);
    let reconciler = Reconciler::new(MemoryTable::from_config(&config), false);
    let daemon = Daemon::new(config, reconciler, state.clone());
    let service = daemon.config.services[1].clone();
    let destination = service.real_servers[0].key;
    (daemon, state, service, destination)
}

/// A timeout while the checker was late is neither a pass nor a failure:
/// counted, the health as it was; a refused connection at the same time
/// is the server's answer and counts.
#[tokio::test]
async fn a_timeout_while_the_checker_was_late_keeps_the_health_and_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut daemon, state, service, destination) = daemon_on_the_small_service(dir.path());
    // Only the late probes have phases timed: none of theirs may count.
    let report = |result, checker_fault: Option<CheckerFault>| Report {
        task: 0,
        service: service.key,
        destination,
        result,
        phases: match checker_fault {
            Some(_) => Phases::new().with(crate::prober::Phase::Connect, Duration::from_secs(1)),
            None => Phases::new(),
        },
        each: crate::prober::set::EachCheck::new(),
        checker_fault,
        hurried: false,
        began: tokio::time::Instant::now(),
    };
    let timeout = || Err(ProbeError::Timeout(Duration::from_secs(1)));
    let late = Some(CheckerFault::Late(Duration::from_millis(400)));
    daemon.observe(&report(Ok(Success::default()), None));
    daemon.flush();
    let up = |state: &Shared| {
        let state = state.lock();
        let b = state
            .backend(&service.key, &destination)
            .expect("configured");
        (
            b.health.health(),
            b.last_probe,
            b.late_probes,
            b.durations[0].is_some(),
        )
    };
    assert_eq!(up(&state), (Health::Up, Some(true), 0, false));
    // fall is 1: one failure would flip it.
    for _ in 0..3 {
        assert_eq!(daemon.observe(&report(timeout(), late)), None);
    }
    assert!(!daemon.has_pending());
    assert_eq!(up(&state), (Health::Up, Some(true), 3, false));
    assert_eq!(weights(&daemon, 1), vec![1, 1]);
    // A timeout on time is the server's.
    daemon.observe(&report(timeout(), None));
    assert_eq!(up(&state).0, Health::Down);
    daemon.observe(&report(Ok(Success::default()), None));
    assert_eq!(up(&state).0, Health::Up);
    // A refused connection is never the checker's lateness: the probe
    // task reports it without a `checker_fault`, and it flips.
    let refused = Err(ProbeError::Connect(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    )));
    daemon.observe(&report(refused, None));
    daemon.flush();
    assert_eq!(up(&state).0, Health::Down);
    assert_eq!(weights(&daemon, 1), vec![0, 1]);
}

#[tokio::test]
async fn a_recovery_wakes_the_failing_probes_at_most_once_per_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with("", "interval: 1s, ", dir.path());
    let key = config.services[0].key;
    let mut recoveries = Hurries::new(&config);
    let signal = recoveries.of(&key);
    let woken = |at: tokio::time::Instant, recoveries: &mut Hurries| {
        let notified = signal.recovered.notified();
        tokio::pin!(notified);
        // Registered as a waiter, as a failing probe task is.
        notified.as_mut().enable();
        recoveries.recovered(&key, at);
        ready(notified)
    };
    let t0 = tokio::time::Instant::now();
    assert!(woken(t0, &mut recoveries));
    assert!(!woken(t0 + Duration::from_millis(500), &mut recoveries));
    assert!(woken(t0 + Duration::from_secs(1), &mut recoveries));
    // Another service's recovery does not wake these.
    let other = config.services[1].key;
    let notified = signal.recovered.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    recoveries.recovered(&other, t0 + Duration::from_secs(5));
    assert!(!ready(notified));
}

#[test]
fn a_service_of_more_than_hurry_real_servers_is_not_hurried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("services:\n  - address: 198.18.0.10:80\n    real_servers:\n");
    for i in 0..=HURRY {
        writeln!(
            text,
            "      - {{address: '198.18.{}.{}:80'}}",
            2 + i / 250,
            1 + i % 250
        )
        .expect("write");
    }
    let config = config::parse(&text, &dir.path().join("checker.yaml"), dir.path()).expect("valid");
    let key = config.services[0].key;
    let mut recoveries = Hurries::new(&config);
    let signal = recoveries.of(&key);
    let notified = signal.recovered.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    recoveries.recovered(&key, tokio::time::Instant::now());
    assert!(!ready(notified));
}

#[tokio::test]
async fn real_servers_beginning_to_fail_hurry_the_others_at_most_once_per_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with("", "interval: 1s, ", dir.path());
    let hurries = Hurries::new(&config);
    let hurry = hurries.of(&config.services[0].key);
    // A task following the count, waiting on its bell as a probe task
    // waits between probes.
    let bell = Arc::new(Bell::default());
    let mut refusing = hurry.refusing(&bell);
    let mut waiting = tokio::spawn({
        let (bell, refusing) = (bell.clone(), refusing.clone());
        async move {
            bell.until(|| refusing.has_changed().expect("open").then_some(()))
                .await
        }
    });
    let t0 = tokio::time::Instant::now();
    let ms = Duration::from_millis;
    // One alone (a server restarted) hurries none; the next within the
    // interval does, and rings the task's bell.
    for i in 1..FAILURES {
        assert!(!hurry.began_failing(t0 + ms(i as u64)));
    }
    assert!(!refusing.has_changed().expect("open"));
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    assert!(hurry.began_failing(t0 + ms(100)));
    assert!(refusing.has_changed().expect("open"));
    tokio::time::timeout(Duration::from_secs(5), &mut waiting)
        .await
        .expect("the task woken by the hurry")
        .expect("task");
    refusing.borrow_and_update();
    // More within the interval of the hurry: none again.
    for i in 0..FAILURES {
        assert!(!hurry.began_failing(t0 + ms(200 + i as u64)));
    }
    assert!(!refusing.has_changed().expect("open"));
    // Counted within an interval: two a second and more apart hurry none.
    assert!(!hurry.began_failing(t0 + ms(1_200)));
    assert!(!hurry.began_failing(t0 + ms(2_300)));
    assert!(hurry.began_failing(t0 + ms(2_400)));
    // Another service's count is its own.
    let other = hurries.of(&config.services[1].key);
    assert!(!other.began_failing(t0 + ms(2_500)));
    assert!(refusing.has_changed().expect("open"));
}

/// What a loopback real server of [`loopback_service`] does.
enum Peer {
    /// A socket bound to its port that does not listen: it refuses, and
    /// keeps the port from the listeners of tests running beside.
    Refuses,
    Accepts,
    /// Accepts one connection, then refuses.
    AcceptsOnce,
}

/// A service of `n` real servers on loopback, checked with `defaults`,
/// each doing what `peer(i)` says; those that accept count their
/// connections in the returned counter, holding them open (`hold`) or
/// closing them at once. The config, the addresses of the `Refuses`
/// ones, the counter of connections accepted, and the refusing sockets,
/// to keep while the test runs.
async fn loopback_service(
    defaults: &str,
    n: usize,
    peer: impl Fn(usize) -> Peer,
    hold: bool,
    dir: &Path,
) -> (
    Config,
    std::collections::HashSet<std::net::SocketAddr>,
    Arc<std::sync::atomic::AtomicUsize>,
    Vec<tokio::net::TcpSocket>,
) {
    let mut text = format!(
        "defaults: {{{defaults}}}\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n"
    );
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut refusing = std::collections::HashSet::new();
    let mut reserved = Vec::new();
    for i in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // So that the socket that keeps an `AcceptsOnce` port refusing is
        // bound before its listener goes: freed between, the port could
        // be taken by a test running beside (as another listener, or a
        // probe's source port), and this test's probes then reach it.
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let addr = socket.local_addr().expect("address");
        writeln!(text, "      - {{address: '{addr}'}}").expect("write");
        let once = match peer(i) {
            Peer::Refuses => {
                refusing.insert(addr);
                reserved.push(socket);
                continue;
            }
            Peer::Accepts => false,
            Peer::AcceptsOnce => true,
        };
        let listener = socket.listen(1024).expect("listen");
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                if hold {
                    held.push(stream);
                }
                if once {
                    // Refuses from now on, its port kept: bound again
                    // before the listener goes.
                    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                    socket.set_reuseport(true).expect("SO_REUSEPORT");
                    socket.bind(addr).expect("the port again");
                    drop(listener);
                    std::future::pending::<()>().await;
                    return;
                }
            }
        });
    }
    let config = config::parse(&text, &dir.join("checker.yaml"), dir).expect("valid");
    (config, refusing, accepted, reserved)
}

/// The probe threads' results one by one, as they came in their batches.
pub(super) struct Results {
    rx: mpsc::Receiver<Vec<reports::Report>>,
    taken: std::collections::VecDeque<reports::Report>,
}

impl Results {
    /// Where the probe threads report, and their results.
    pub(super) fn channel() -> (Reports, Self) {
        let (tx, rx) = mpsc::channel(256);
        let results = Results {
            rx,
            taken: std::collections::VecDeque::new(),
        };
        (Reports::new(tx), results)
    }

    /// The next result; `None` once no probe thread is left.
    pub(super) async fn recv(&mut self) -> Option<reports::Report> {
        while self.taken.is_empty() {
            self.taken.extend(self.rx.recv().await?);
        }
        self.taken.pop_front()
    }

    /// The next result if one came.
    pub(super) fn try_recv(&mut self) -> Option<reports::Report> {
        while self.taken.is_empty() {
            self.taken.extend(self.rx.try_recv().ok()?);
        }
        self.taken.pop_front()
    }
}

/// The probe tasks of `config` on one probe thread of `slots` slots, and
/// where they report.
fn probe_tasks(config: &Config, slots: usize) -> (probes::ProbeTasks, Hurries, Results, Shards) {
    probe_tasks_on(config, slots, 1)
}

/// [`probe_tasks`] on `threads` probe threads sharing the `slots`.
fn probe_tasks_on(
    config: &Config,
    slots: usize,
    threads: usize,
) -> (probes::ProbeTasks, Hurries, Results, Shards) {
    let state = Shared::new(config);
    let (reports, rx) = Results::channel();
    let shards = Shards::start(threads, slots, &state, &reports).expect("probe threads");
    let turns = Arc::new(Semaphore::new(1));
    let programs = Admission::programs(1, state.clone());
    let mut tasks = probes::ProbeTasks::new(&turns, &programs);
    let hurries = Hurries::new(config);
    tasks.follow(config, &shards, &hurries);
    (tasks, hurries, rx, shards)
}

/// Reports from `rx` until every one of `refusing` failed with a refused
/// connection, each once, before `guard`.
async fn refusals_of(
    rx: &mut Results,
    refusing: &std::collections::HashSet<std::net::SocketAddr>,
    guard: tokio::time::Instant,
) {
    let mut failed = std::collections::HashSet::new();
    while failed.len() < refusing.len() {
        let report = tokio::time::timeout_at(guard, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} of {} refusing real servers reported in time",
                    failed.len(),
                    refusing.len()
                )
            })
            .expect("a report");
        let addr = report.destination.addr;
        let e = report.result.expect_err("only refusals are reported");
        assert_eq!(e.reason(), "connect", "{addr}: {e}");
        assert_eq!(report.checker_fault, None);
        assert!(refusing.contains(&addr), "{addr} accepts connections");
        assert!(failed.insert(addr), "{addr} reported twice");
    }
}

/// Waits until `accepted` is `want`, before `guard`.
async fn connections(
    accepted: &std::sync::atomic::AtomicUsize,
    want: usize,
    guard: tokio::time::Instant,
) {
    while accepted.load(Ordering::SeqCst) < want {
        assert!(
            tokio::time::Instant::now() < guard,
            "{} of {want} connections",
            accepted.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A service of 4 groups of real servers on loopback ([`GROUP`] each),
/// probed over a minute: half of them refuse, the whole first group and
/// every other one of the second and third among them. Its refusals make
/// every other real server ask at once: those of the later groups that
/// refuse are reported failed long before their ticks, those that accept
/// connections report nothing (their connections made and reset, twice,
/// their probes at their ticks). The same on two probe threads, the
/// groups on each in turn: the hurry crosses threads.
#[tokio::test]
async fn a_rack_that_refuses_is_found_at_once_and_the_healthy_siblings_keep_to_their_ticks() {
    // A real server's socket, its probe's and its accepted connection:
    // the daemon raises the limit at its start too.
    ipvs_common::open_files::raise_open_files_limit().expect("open files limit");
    let n = 4 * GROUP;
    for threads in [1, 2] {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = |i: usize| {
            if i < GROUP || (i % 2 == 1 && i < 3 * GROUP) {
                Peer::Refuses
            } else {
                Peer::Accepts
            }
        };
        let (config, refusing, accepted, _reserved) = loopback_service(
            "interval: 60s, timeout: 5s, rise: 1, fall: 1, check: {type: tcp}",
            n,
            peer,
            false,
            dir.path(),
        )
        .await;
        assert_eq!(refusing.len(), n / 2);
        let (mut tasks, _hurries, mut rx, shards) = probe_tasks_on(&config, n, threads);
        assert_eq!(shards.len(), threads);
        // A guard against a hang, not a measure: the second group's tick
        // is 15 s after the first's, and this takes milliseconds.
        let guard = tokio::time::Instant::now() + Duration::from_secs(10);
        refusals_of(&mut rx, &refusing, guard).await;
        // Each healthy one was asked twice (the second time half a second
        // after the first), and reported nothing.
        let healthy = n - refusing.len();
        connections(&accepted, 2 * healthy, guard).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2 * healthy,
            "{threads} threads"
        );
        assert!(
            rx.try_recv().is_none(),
            "{threads} threads: a healthy sibling reported"
        );
        tasks.stop();
    }
}

/// A rack failing over some time (a server's processes stopping one by
/// one): a real server that still accepts when first asked is asked once
/// more half a second later, and found then, not at its tick; one that
/// accepts both times was asked twice, no more.
#[tokio::test]
async fn a_real_server_still_accepting_when_asked_is_asked_once_more() {
    ipvs_common::open_files::raise_open_files_limit().expect("open files limit");
    let dir = tempfile::tempdir().expect("tempdir");
    // The first of 4 groups refuses; the others accept, but one of the
    // third group accepts once, then refuses.
    let n = 4 * GROUP;
    let late = 2 * GROUP + GROUP / 3;
    let (config, mut refusing, accepted, _reserved) = loopback_service(
        "interval: 60s, timeout: 5s, rise: 1, fall: 1, check: {type: tcp}",
        n,
        |i| match i {
            i if i < GROUP => Peer::Refuses,
            i if i == late => Peer::AcceptsOnce,
            _ => Peer::Accepts,
        },
        false,
        dir.path(),
    )
    .await;
    let (mut tasks, _hurries, mut rx, _shards) = probe_tasks(&config, n);
    refusing.insert(config.services[0].real_servers[late].key.addr);
    // The third group's tick is 30 s after the first's.
    let guard = tokio::time::Instant::now() + Duration::from_secs(10);
    refusals_of(&mut rx, &refusing, guard).await;
    // The real servers accepting both times, and the late one once.
    let both = n - GROUP - 1;
    connections(&accepted, 2 * both + 1, guard).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2 * both + 1);
    assert!(rx.try_recv().is_none(), "an accepting real server reported");
    tasks.stop();
}

/// An overload's queue: one slot, held for its whole timeout by a
/// server that accepts and never answers; every other probe waits for it.
/// Siblings beginning to fail then ask the waiting ones at once: those
/// that refuse are reported without waiting for the slot, those that
/// accept are not (and still wait).
#[tokio::test]
async fn probes_waiting_for_a_slot_are_asked_at_once_when_siblings_begin_to_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first (which takes the slot) and the odd ones accept and say
    // nothing; the others refuse.
    let (config, refusing, accepted, _reserved) = loopback_service(
        "interval: 60s, timeout: 20s, rise: 1, fall: 1, check: {type: http}",
        20,
        |i| {
            if i > 0 && i % 2 == 0 {
                Peer::Refuses
            } else {
                Peer::Accepts
            }
        },
        true,
        dir.path(),
    )
    .await;
    let (mut tasks, hurries, mut rx, _shards) = probe_tasks(&config, 1);
    // Within the slot holder's timeout (20 s), which a probe that waited
    // for the slot could not be.
    let guard = tokio::time::Instant::now() + Duration::from_secs(10);
    connections(&accepted, 1, guard).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        rx.try_recv().is_none(),
        "a probe ended while the slot is held"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // As probes of two of them would report.
    siblings_begin_to_fail(&hurries, &config.services[0].key);
    refusals_of(&mut rx, &refusing, guard).await;
    // The 9 silent ones still waiting were asked: connected, not reported.
    connections(&accepted, 10, guard).await;
    assert!(rx.try_recv().is_none(), "a silent real server reported");
    tasks.stop();
}

/// Short of CPU, a probe task finds its tick and its siblings' hurry due
/// together (its thread got to it late): a tick that cuts the ask must not
/// leave it waiting for a slot unasked. Twenty real servers that accept
/// their first probe, then refuse; the one slot held by the test after
/// those probes; the probe thread held up across their next tick while
/// the hurry comes. Each is found refusing without the slot, whichever of
/// the two its task takes first.
#[tokio::test]
async fn a_probe_whose_tick_comes_with_the_hurry_is_asked_while_it_waits_for_a_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _, accepted, _reserved) = loopback_service(
        "interval: 4s, timeout: 1s, rise: 1, fall: 1, check: {type: tcp}",
        20,
        |_| Peer::AcceptsOnce,
        false,
        dir.path(),
    )
    .await;
    let refusing: std::collections::HashSet<_> = config.services[0]
        .real_servers
        .iter()
        .map(|rs| rs.key.addr)
        .collect();
    let base = tokio::time::Instant::now();
    let (mut tasks, hurries, mut rx, shards) = probe_tasks(&config, 1);
    let guard = base + Duration::from_secs(10);
    connections(&accepted, 20, guard).await;
    for _ in 0..20 {
        let report = tokio::time::timeout_at(guard, rx.recv()).await;
        assert!(report.expect("in time").expect("a report").result.is_ok());
    }
    let shard = shards.get(0);
    let _held = shard.admission.slot().await.expect("the slot");
    // Their next tick is 4 s after the first; the thread is held up from
    // before it to after it, and the hurry comes meanwhile.
    assert!(
        tokio::time::Instant::now() < base + Duration::from_secs(3),
        "the first probes took seconds"
    );
    let until = (base + Duration::from_millis(4_500)).into_std();
    shard.handle.spawn(async move {
        std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()))
    });
    tokio::time::sleep_until(base + Duration::from_millis(3_800)).await;
    siblings_begin_to_fail(&hurries, &config.services[0].key);
    refusals_of(&mut rx, &refusing, guard).await;
    tasks.stop();
}

/// A probe in flight when its siblings' hurry comes, whose connection
/// was made before its server began to refuse: it passes, and is no
/// answer to the hurry. The server, refusing since, is asked right after
/// and found then, not at its next tick a minute later (behind an
/// overload's queue, seconds after the rack's others: run 14:04 of
/// lab/bench/README.md's "2026-12-05, afternoon").
#[tokio::test]
async fn a_probe_that_passes_with_the_hurry_in_flight_is_asked_after() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let text = format!(
        "defaults: {{interval: 60s, timeout: 20s, rise: 1, fall: 1, check: {{type: http}}}}\n\
         services:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {{address: '{addr}'}}\n"
    );
    let config = config::parse(&text, &dir.path().join("checker.yaml"), dir.path()).expect("valid");
    // The server takes the probe's request and holds its answer until
    // released; it then stops listening (its port kept: it refuses) and
    // answers the connection it has.
    let (release, released) = oneshot::channel::<()>();
    let (held, holding) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("the probe's connection");
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("the request");
            assert!(n > 0, "closed before its request");
            head.extend_from_slice(&buf[..n]);
        }
        let _ = held.send(());
        let _ = released.await;
        drop(listener);
        let refusing = tokio::net::TcpSocket::new_v4().expect("socket");
        // Beside the connection still open on the port.
        refusing.set_reuseaddr(true).expect("SO_REUSEADDR");
        refusing.bind(addr).expect("the port again");
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await
            .expect("the answer");
        refusing
    });
    let (mut tasks, hurries, mut rx, _shards) = probe_tasks(&config, 4);
    // A guard against a hang, not a measure: the next tick is a minute
    // away.
    let guard = tokio::time::Instant::now() + Duration::from_secs(10);
    tokio::time::timeout_at(guard, holding)
        .await
        .expect("the probe in time")
        .expect("the server");
    siblings_begin_to_fail(&hurries, &config.services[0].key);
    // The task sees the hurry while its probe is in flight.
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.send(()).expect("the server");
    let _refusing = server.await.expect("the server");
    let passed = tokio::time::timeout_at(guard, rx.recv())
        .await
        .expect("the probe's report in time")
        .expect("a report");
    assert!(passed.result.is_ok(), "{:?}", passed.result);
    let asked = tokio::time::timeout_at(guard, rx.recv())
        .await
        .expect("the refusal found before the next tick")
        .expect("a report");
    let e = asked.result.expect_err("refused");
    assert_eq!(e.reason(), "connect", "{e}");
    tasks.stop();
}

/// `service`'s hurry, as the failing probes of enough of its real servers
/// report it, now.
fn siblings_begin_to_fail(hurries: &Hurries, service: &ServiceKey) {
    let hurry = hurries.of(service);
    let now = tokio::time::Instant::now();
    for _ in 0..FAILURES {
        hurry.began_failing(now);
    }
}

/// Waits until `done`; a guard against a hang (20 s), not a measure.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The daemon counts each hurry of a service, by kind, where /metrics
/// shows it: two real servers refusing from the start hurry their
/// siblings once (they stay failing: no more); one of them back hurries
/// the other once.
#[tokio::test]
async fn the_hurries_of_a_service_are_counted_by_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _refusing, _accepted, mut reserved) = loopback_service(
        "interval: 300ms, timeout: 200ms, rise: 1, fall: 1, check: {type: tcp}",
        4,
        |i| if i < 2 { Peer::Refuses } else { Peer::Accepts },
        false,
        dir.path(),
    )
    .await;
    let state = Shared::new(&config);
    let table = MemoryTable::from_config(&config);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = spawn(
        options(dir.path()),
        config,
        table,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    )
    .expect("spawn");
    // (failing, recovered)
    let hurries = || {
        let counts = state.lock().services()[0].hurries;
        (counts.failing, counts.recovered)
    };
    eventually("the failing hurry", || hurries().0 == 1).await;
    // Several intervals of both still refusing: no other hurry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hurries(), (1, 0));
    let listener = reserved.remove(0).listen(16).expect("listen");
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    eventually("the recovery hurry", || hurries().1 == 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hurries(), (1, 1));
    let request = hyper::Request::get("/metrics")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = crate::web::Pages::new(state.clone()).handle(request).await;
    let (_, _, body) = crate::web::tests::read(response).await;
    for kind in ["failing", "recovered"] {
        let line = format!(
            r#"ipvs_checker_hurries_total{{proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",kind="{kind}"}} 1"#
        );
        assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
    }
    stop.send(()).expect("the loop runs");
    running.wait().await.expect("stopped cleanly");
}

/// A daemon's options for a test in `dir`: one probe thread, no sysctl,
/// no systemd.
fn options(dir: &Path) -> Options {
    Options {
        config_file: dir.join("checker.yaml"),
        dry_run: false,
        max_concurrency: 16,
        max_full_handshakes: 1,
        max_programs: 1,
        probe_threads: 1,
        quiescent_sysctl: dir.join("no-such-sysctl"),
        notify_socket: None,
        watchdog: None,
    }
}

/// Whether `future` is done at its first poll.
fn ready(future: std::pin::Pin<&mut impl std::future::Future>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    future.poll(&mut cx).is_ready()
}

/// A table whose first dump of a service once `armed` waits until the
/// test lets it go, as a netlink call to a kernel that does not answer
/// would (a state-file write that hangs holds the same thread, the loop's).
struct StallingTable {
    inner: MemoryTable,
    stall: Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl crate::reconcile::Table for StallingTable {
    fn destinations(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, ipvs::DestinationConfig)>, ipvs::Error> {
        if !self.armed.load(Ordering::SeqCst) {
            return self.inner.destinations(service);
        }
        if let Some((entered, release)) = self.stall.take() {
            entered.send(()).expect("the test waits");
            release.recv().expect("the test releases");
        }
        self.inner.destinations(service)
    }

    fn set_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &ipvs::DestinationConfig,
    ) -> Result<(), ipvs::Error> {
        self.inner.set_destination(service, destination, config)
    }
}

impl ManagedTable for StallingTable {
    fn service(&mut self, key: &ServiceKey) -> Result<Option<ipvs::ServiceConfig>, ipvs::Error> {
        self.inner.service(key)
    }
    fn new_service(
        &mut self,
        key: &ServiceKey,
        config: &ipvs::ServiceConfig,
    ) -> Result<(), ipvs::Error> {
        self.inner.new_service(key, config)
    }
    fn set_service(
        &mut self,
        key: &ServiceKey,
        config: &ipvs::ServiceConfig,
    ) -> Result<(), ipvs::Error> {
        self.inner.set_service(key, config)
    }
    fn del_service(&mut self, key: &ServiceKey) -> Result<(), ipvs::Error> {
        self.inner.del_service(key)
    }
    fn new_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &ipvs::DestinationConfig,
    ) -> Result<(), ipvs::Error> {
        self.inner.new_destination(service, destination, config)
    }
    fn del_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
    ) -> Result<(), ipvs::Error> {
        self.inner.del_destination(service, destination)
    }
    fn active_connections(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, u32)>, ipvs::Error> {
        self.inner.active_connections(service)
    }
}

/// While the loop is stuck in a table call, the probes go on (their
/// servers see them) and /metrics answers; once it is released, it takes
/// the results in.
#[tokio::test]
async fn a_stalled_table_call_holds_up_neither_the_probes_nor_metrics() {
    use std::sync::atomic::AtomicUsize;
    let dir = tempfile::tempdir().expect("tempdir");
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut text = String::from(
        "defaults: {interval: 100ms, timeout: 50ms, rise: 1, fall: 1, check: {type: tcp}}\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n",
    );
    for i in 1..=3 {
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.{i}:0"))
            .await
            .expect("bind");
        writeln!(
            text,
            "      - {{address: '{}'}}",
            listener.local_addr().expect("addr")
        )
        .expect("write");
        let accepted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
    }
    let config = config::parse(&text, &dir.path().join("checker.yaml"), dir.path()).expect("valid");
    let state = Shared::new(&config);
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let table = StallingTable {
        inner: MemoryTable::from_config(&config),
        stall: Some((entered_tx, release_rx)),
        armed: Arc::new(true.into()),
    };
    let options = options(dir.path());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = spawn(options, config, table, state.clone(), async move {
        let _ = stopped.await;
    })
    .expect("spawn");
    // A guard against a hang, not a measure: everything here takes
    // milliseconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let until = |what: &str, done: &dyn Fn() -> bool| {
        assert!(std::time::Instant::now() < deadline, "{what}");
        done()
    };
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(20)))
        .await
        .expect("join")
        .expect("the loop calls the table");
    // The loop is stuck now.
    let before = accepted.load(Ordering::SeqCst);
    while !until("probes while the loop is stuck", &|| {
        accepted.load(Ordering::SeqCst) >= before + 6
    }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let request = hyper::Request::get("/metrics")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = crate::web::Pages::new(state.clone()).handle(request).await;
    let (status, _, body) = crate::web::tests::read(response).await;
    assert_eq!(status, hyper::StatusCode::OK);
    // (The limit itself may be cut already on a loaded machine.)
    assert!(
        body.contains("\nipvs_checker_probe_concurrency_limit "),
        "{body}"
    );
    release.send(()).expect("the loop waits");
    while !until("the queued results taken in", &|| {
        state
            .lock()
            .services()
            .iter()
            .flat_map(|s| &s.backends)
            .all(|b| b.health.health() == Health::Up)
    }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).expect("the loop runs");
    running.wait().await.expect("stopped cleanly");
}

#[tokio::test]
async fn a_refusing_https_server_is_found_while_the_full_handshakes_wait_their_turn() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let text = format!(
        "defaults: {{interval: 1s, timeout: 500ms, check: {{type: https, ca_file: ca.pem, server_name: rs1.lab.test}}}}\nservices:\n  - address: 198.18.0.10:443\n    real_servers:\n      - {{address: '{addr}'}}\n"
    );
    let config = config::parse(&text, &testdata.join("checker.yaml"), &testdata).expect("valid");
    let state = Shared::new(&config);
    let (reports, mut rx) = Results::channel();
    let shards = Shards::start(1, 16, &state, &reports).expect("probe thread");
    // No turn ever comes: every full handshake is taken.
    let no_turn = Arc::new(Semaphore::new(0));
    let programs = Admission::programs(1, state.clone());
    let mut tasks = probes::ProbeTasks::new(&no_turn, &programs);
    tasks.follow(&config, &shards, &Hurries::new(&config));
    // A guard against a hang, not a measure.
    let report = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a report without a turn")
        .expect("a report");
    let e = report.result.expect_err("refused");
    assert_eq!(e.reason(), "connect", "{e}");
    assert_eq!(report.checker_fault, None);
}

/// A probe whose socket could not be made for want of the checker's own
/// descriptors (or memory, or socket buffers) is neither a pass nor a
/// failure; a refused connection is the server's answer.
#[test]
fn a_socket_the_checker_could_not_make_keeps_the_health_and_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut daemon, state, service, destination) = daemon_on_the_small_service(dir.path());
    let connect = |errno: i32| {
        Err(ProbeError::Connect(std::io::Error::from_raw_os_error(
            errno,
        )))
    };
    let lag = super::lag::Lag::new();
    let now = tokio::time::Instant::now();
    let report = |result| {
        reports::Report::new(
            0,
            service.key,
            destination,
            crate::prober::set::SetOutcome {
                outcome: crate::prober::Outcome {
                    result,
                    phases: Phases::new(),
                    timed_out_on: None,
                    program_waited: None,
                },
                each: smallvec::smallvec![None],
            },
            &lag,
            &[(now, now)],
            Duration::from_secs(1),
        )
    };
    daemon.observe(&report(Ok(Success::default())));
    daemon.flush();
    for errno in [
        libc::EMFILE,
        libc::ENFILE,
        libc::ENOBUFS,
        libc::ENOMEM,
        libc::ENOSPC,
    ] {
        let starved = report(connect(errno));
        assert_eq!(starved.checker_fault, Some(CheckerFault::Exhausted(errno)));
        assert_eq!(daemon.observe(&starved), None);
    }
    assert!(!daemon.has_pending());
    {
        let state = state.lock();
        let b = state
            .backend(&service.key, &destination)
            .expect("configured");
        assert_eq!((b.health.health(), b.exhausted_probes), (Health::Up, 5));
    }
    let refused = report(connect(libc::ECONNREFUSED));
    assert_eq!(refused.checker_fault, None);
    daemon.observe(&refused);
    daemon.flush();
    assert_eq!(weights(&daemon, 1), vec![0, 1]);
}

/// A timed-out probe is judged by what its socket showed before the
/// thread's lateness: the server's timeout is a failure even while the
/// thread was late, and the checker's is counted as late even when the
/// heartbeat kept up; the heartbeat decides only where the socket could
/// not tell.
#[test]
fn the_sockets_word_on_a_timeout_comes_before_the_heartbeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, service, destination) = daemon_on_the_small_service(dir.path());
    let timeout = Duration::from_secs(1);
    let report = |lag: &super::lag::Lag, since, timed_out_on| {
        let now = tokio::time::Instant::now();
        reports::Report::new(
            0,
            service.key,
            destination,
            crate::prober::set::SetOutcome {
                outcome: crate::prober::Outcome {
                    result: Err(ProbeError::Timeout(timeout)),
                    phases: Phases::new(),
                    timed_out_on,
                    program_waited: None,
                },
                each: smallvec::smallvec![Some("timeout")],
            },
            lag,
            &[(since, now)],
            timeout,
        )
        .checker_fault
    };
    use crate::prober::Side;
    let t0 = tokio::time::Instant::now();
    // A heartbeat that never beats: by now it is overdue, the thread late.
    let late = super::lag::Lag::new();
    std::thread::sleep(timeout / 5);
    assert!(matches!(
        report(&late, t0, None),
        Some(CheckerFault::Late(_))
    ));
    assert_eq!(report(&late, t0, Some(Side::Server)), None);
    assert!(matches!(
        report(&late, t0, Some(Side::Checker)),
        Some(CheckerFault::Late(_))
    ));
    // A heartbeat seen on time over a window of no length.
    let on_time = super::lag::Lag::new();
    let now = tokio::time::Instant::now();
    assert_eq!(report(&on_time, now, None), None);
    assert!(matches!(
        report(&on_time, now, Some(Side::Checker)),
        Some(CheckerFault::Late(_))
    ));
}

/// Under a test `NOTIFY_SOCKET`: READY=1 after the first pass, then
/// WATCHDOG=1 every half watchdog period; none while the loop is stuck in
/// a table call (the process still runs, its probes too); the pings again
/// once it is released; STOPPING=1 at the end.
#[tokio::test]
async fn the_watchdog_is_fed_only_while_the_loop_makes_progress() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&socket_path).expect("bind");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let text = format!(
        "defaults: {{interval: 100ms, timeout: 50ms, rise: 1, fall: 1, check: {{type: tcp}}}}\ndrain_file: drains.json\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {{address: '{}'}}\n",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let config = config::parse(&text, &dir.path().join("checker.yaml"), dir.path()).expect("valid");
    let state = Shared::new(&config);
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let table = StallingTable {
        inner: MemoryTable::from_config(&config),
        stall: Some((entered_tx, release_rx)),
        armed: armed.clone(),
    };
    let options = Options {
        notify_socket: Some(socket_path.to_str().expect("utf-8").to_owned()),
        watchdog: Some(Duration::from_millis(400)),
        ..options(dir.path())
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let running = spawn(options, config, table, state, async move {
        let _ = stopped.await;
    })
    .expect("spawn");
    // Blocking reads with a timeout, off the runtime the probes' servers use.
    let systemd = Arc::new(systemd);
    let next = |wait: Duration| {
        let systemd = systemd.clone();
        tokio::task::spawn_blocking(move || {
            systemd.set_read_timeout(Some(wait)).expect("timeout");
            let mut buf = [0; 64];
            systemd
                .recv(&mut buf)
                .ok()
                .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    };
    // Guards against a hang, not measures.
    let wait = Duration::from_secs(20);
    assert_eq!(next(wait).await.expect("join").as_deref(), Some("READY=1"));
    for _ in 0..3 {
        assert_eq!(
            next(wait).await.expect("join").as_deref(),
            Some("WATCHDOG=1")
        );
    }
    armed.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(20)))
        .await
        .expect("join")
        .expect("the loop calls the table");
    // What was sent before the loop got stuck.
    while next(Duration::from_millis(1))
        .await
        .expect("join")
        .is_some()
    {}
    // Five ping periods of silence.
    assert_eq!(next(Duration::from_secs(1)).await.expect("join"), None);
    release.send(()).expect("the loop waits");
    assert_eq!(
        next(wait).await.expect("join").as_deref(),
        Some("WATCHDOG=1")
    );
    stop.send(()).expect("the loop runs");
    running.wait().await.expect("stopped cleanly");
    let mut last = None;
    while let Some(state) = next(Duration::from_millis(100)).await.expect("join") {
        last = Some(state);
    }
    assert_eq!(last.as_deref(), Some("STOPPING=1"));
}

/// IPVS gone (the module unloaded): one try per wait, the wait doubling
/// up to its most, the other services not tried meanwhile; back, the
/// next pass reconciles every service.
#[test]
fn with_ipvs_gone_the_table_is_tried_with_backoff_and_reconciled_when_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut daemon, _state, _service, _destination) = daemon_on_the_small_service(dir.path());
    let dumps =
        |daemon: &Daemon<MemoryTable>| -> usize { daemon.reconciler.table().dumps.values().sum() };
    daemon.reconciler.table_mut().unavailable = true;
    daemon.resync();
    assert_eq!(dumps(&daemon), 1, "one try, the other service not tried");
    for _ in 0..10 {
        daemon.resync();
    }
    assert_eq!(dumps(&daemon), 1, "no try before the wait is over");
    let mut waits = Vec::new();
    for _ in 0..7 {
        let gone = daemon.ipvs.gone.as_mut().expect("gone");
        waits.push(gone.backoff.as_secs());
        // The wait over.
        gone.retry_at = std::time::Instant::now();
        daemon.resync();
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(dumps(&daemon), 8);
    // Back.
    daemon.reconciler.table_mut().unavailable = false;
    daemon.ipvs.gone.as_mut().expect("gone").retry_at = std::time::Instant::now();
    daemon.resync();
    assert!(daemon.ipvs.gone.is_none());
    assert_eq!(dumps(&daemon), 10, "both services reconciled");
}

/// The `.env` files a recording hook wrote in `dir`, by event name.
fn recorded(dir: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let event = name.strip_suffix(".env")?.split('.').next()?.to_owned();
            Some((event, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn hooks_fire_once_per_transition_and_a_slow_one_delays_no_weight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let hook = dir.path().join("record-then-sleep");
    // Records its event, then sleeps far longer than the test's steps:
    // a `.done` file before the end means the loop waited for it.
    std::fs::write(
        &hook,
        "#!/bin/sh\n\
         env | grep '^IPVS_CHECKER_' | sort > \"$1/$IPVS_CHECKER_EVENT.$$.tmp\"\n\
         mv \"$1/$IPVS_CHECKER_EVENT.$$.tmp\" \"$1/$IPVS_CHECKER_EVENT.$$.env\"\n\
         sleep 10\n\
         touch \"$1/$IPVS_CHECKER_EVENT.$$.done\"\n",
    )
    .expect("write hook");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let text = format!(
        "max_running_hooks: 8\n\
         defaults: {{rise: 1, fall: 1, hooks: {{exec: {{argv: [{}, {}], timeout: 20s}}}}}}\n\
         services:\n\
         \x20 - address: 198.18.0.10:80\n\
         \x20   quorum: {{min_up: 2, sorry_server: {{address: 198.18.2.1:80, weight: 5}}}}\n\
         \x20   real_servers:\n\
         \x20     - {{address: 198.18.1.1:80, weight: 1}}\n\
         \x20     - {{address: 198.18.1.2:80, weight: 1}}\n",
        hook.display(),
        out.display()
    );
    let config = config::parse(&text, &dir.path().join("checker.yaml"), dir.path()).expect("valid");
    let state = Shared::new(&config);
    let reconciler = Reconciler::new(MemoryTable::from_config(&config), false);
    let mut daemon = Daemon::new(config, reconciler, state);
    let wait_for = |n: usize| {
        for _ in 0..500 {
            if recorded(&out).len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        recorded(&out)
    };

    // Both up (from unknown): two events, and their hooks now sleep.
    probe_all(&mut daemon, 0, true);
    daemon.flush();
    let events = wait_for(2);
    assert_eq!(
        events.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
        ["real_server_up", "real_server_up"]
    );

    // One down, with the hooks of the last flips still asleep: the
    // weight is in the table when the flush returns.
    let service = daemon.config.services[0].clone();
    daemon.observe(&Report {
        task: 0,
        service: service.key,
        destination: service.real_servers[0].key,
        result: Err(ProbeError::Connect(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))),
        phases: Phases::new(),
        each: smallvec::smallvec![Some("connect")],
        checker_fault: None,
        hurried: false,
        began: tokio::time::Instant::now(),
    });
    daemon.flush();
    let table = &daemon.reconciler.table().dests[&service.key];
    assert_eq!(table[&service.real_servers[0].key].weight, 0);
    let done = std::fs::read_dir(&out)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".done"))
        .count();
    assert_eq!(done, 0, "the weight waited for a hook");

    // Each transition once: the flip, the quorum lost, the sorry server in.
    let events = wait_for(5);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "quorum_lost",
            "real_server_down",
            "real_server_up",
            "real_server_up",
            "sorry_server_in"
        ]
    );
    let down = &events[1].1;
    for line in [
        "IPVS_CHECKER_SERVICE=TCP 198.18.0.10:80",
        "IPVS_CHECKER_REAL_SERVER=198.18.1.1:80",
        "IPVS_CHECKER_OLD_WEIGHT=1",
        "IPVS_CHECKER_NEW_WEIGHT=0",
        "IPVS_CHECKER_REASON=connect: connection refused",
    ] {
        assert!(down.lines().any(|l| l == line), "{line} not in\n{down}");
    }
    let sorry = &events[4].1;
    for line in [
        "IPVS_CHECKER_REAL_SERVER=198.18.2.1:80",
        "IPVS_CHECKER_NEW_WEIGHT=5",
    ] {
        assert!(sorry.lines().any(|l| l == line), "{line} not in\n{sorry}");
    }

    // The sleeping hooks go with their process groups (named by the
    // shells' pids in the file names).
    for entry in std::fs::read_dir(&out).expect("read dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.split('.').nth(1).and_then(|p| p.parse::<i32>().ok()) {
            // SAFETY: kill(2) with a process group this test's hooks made.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}
mod programs;
mod reload;
