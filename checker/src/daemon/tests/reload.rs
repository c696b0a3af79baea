//! A reload and the probe tasks: a real server that stays keeps its task
//! and its place in the interval; a probe in flight is made again at once
//! with the new settings, unless only their timing changed (it then goes
//! on); a real server gone stops being probed and its late reports are
//! not taken in.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{self, Config};
use crate::daemon::admission::Admission;
use crate::daemon::hurries::Hurries;
use crate::daemon::probes::ProbeTasks;
use crate::daemon::reports::Report;
use crate::daemon::shards::Shards;
use crate::daemon::tests::Results;
use crate::state::Shared;

/// A config of one service whose real servers are `real_servers`, all
/// with `defaults`.
fn config(defaults: &str, real_servers: &[std::net::SocketAddr]) -> Config {
    let mut text = format!(
        "defaults: {{{defaults}}}\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n"
    );
    for rs in real_servers {
        text += &format!("      - {{address: '{rs}'}}\n");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    config::parse(&text, &dir.join("checker.yaml"), &dir).expect("valid")
}

/// Probe tasks on one probe thread, and where their reports go.
struct Probing {
    tasks: ProbeTasks,
    shards: Shards,
    reports: Results,
}

impl Probing {
    fn start(config: &Config) -> Self {
        let state = Shared::new(config);
        let (reports_to, reports) = Results::channel();
        let shards = Shards::start(1, 16, &state, &reports_to).expect("probe thread");
        let turns = Arc::new(Semaphore::new(4));
        let programs = Admission::programs(4, state.clone());
        let mut tasks = ProbeTasks::new(&turns, &programs);
        tasks.follow(config, &shards, &Hurries::new(config));
        Probing {
            tasks,
            shards,
            reports,
        }
    }

    fn follow(&mut self, config: &Config) {
        self.tasks
            .follow(config, &self.shards, &Hurries::new(config));
    }

    /// The next report, within `within` (`None`: none came).
    async fn next(&mut self, within: Duration) -> Option<Report> {
        tokio::time::timeout(within, self.reports.recv())
            .await
            .ok()
            .map(|r| r.expect("the tasks hold a sender"))
    }
}

/// A listener that accepts every connection and keeps it, silent; and
/// how many it accepted.
async fn silent_server() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            kept.push(socket);
        }
    });
    (address, accepted)
}

#[tokio::test]
async fn a_reload_keeps_a_real_servers_task_and_its_place_in_the_interval() {
    let (rs, _) = silent_server().await;
    let before = config("interval: 3s, timeout: 1s, check: {type: tcp}", &[rs]);
    let mut probing = Probing::start(&before);
    // One real server: its first probe is at once.
    let first = probing
        .next(Duration::from_secs(10))
        .await
        .expect("a first probe");
    assert!(first.result.is_ok(), "{:?}", first.result);
    assert!(probing.tasks.current(&first));

    // The same real server, another timeout: its task stays, and its next
    // probe is still the interval's, not one at the reload (as a task
    // started anew would make).
    let after = config("interval: 3s, timeout: 2s, check: {type: tcp}", &[rs]);
    probing.follow(&after);
    assert!(
        probing.tasks.current(&first),
        "the task of a real server that stays is kept"
    );
    assert!(
        probing.next(Duration::from_millis(1500)).await.is_none(),
        "no probe at the reload: the next is an interval after the last"
    );
    let second = probing
        .next(Duration::from_secs(10))
        .await
        .expect("the interval's probe");
    assert_eq!(second.task, first.task);
    assert!(second.result.is_ok(), "{:?}", second.result);
}

/// The probing of one real server every 30 s, with `timing`, its first
/// HTTP probe in flight to a server that never answers; the server's
/// address and how many connections it took.
async fn an_http_probe_in_flight(timing: &str) -> (Probing, std::net::SocketAddr, Arc<AtomicU64>) {
    let (rs, accepted) = silent_server().await;
    let before = config(
        &format!("interval: 30s, {timing}, check: {{type: http}}"),
        &[rs],
    );
    let probing = Probing::start(&before);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (probing, rs, accepted)
}

#[tokio::test]
async fn a_probe_cut_by_a_reload_is_made_again_at_once_with_the_new_settings() {
    // In flight until its timeout, long after the reload.
    let (mut probing, rs, accepted) = an_http_probe_in_flight("timeout: 20s").await;
    let after = config("interval: 30s, timeout: 20s, check: {type: tcp}", &[rs]);
    probing.follow(&after);
    // A guard against a hang: the cut probe's timeout would be 20 s away,
    // the next tick 30 s.
    let report = probing
        .next(Duration::from_secs(10))
        .await
        .expect("the probe made again");
    assert!(
        report.result.is_ok(),
        "the new check (a connection) passes: {:?}",
        report.result
    );
    assert_eq!(report.each.len(), 1);
    assert!(probing.tasks.current(&report));
    // The new probe's connection, accepted (the listener may take it
    // after the probe saw it made).
    tokio::time::timeout(Duration::from_secs(10), async {
        while accepted.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the new probe's connection accepted");
}

#[tokio::test]
async fn a_probe_in_flight_at_a_reload_of_its_timing_alone_goes_on_and_the_next_keeps_the_new_interval(
) {
    let (mut probing, rs, accepted) = an_http_probe_in_flight("timeout: 2s").await;
    // The same check, probed every 4 s.
    let after = config("interval: 4s, timeout: 2s, check: {type: http}", &[rs]);
    probing.follow(&after);
    let first = probing
        .next(Duration::from_secs(10))
        .await
        .expect("the probe in flight, ended");
    assert!(
        first.result.is_err(),
        "it timed out, on the connection made before the reload: {:?}",
        first.result
    );
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the probe was not cut and made again"
    );
    // The next one, 4 s after the first's tick (at the old interval it
    // would be 30 s, past the wait).
    let second = probing
        .next(Duration::from_secs(10))
        .await
        .expect("the next probe, at the new interval");
    assert_eq!(second.task, first.task);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_real_server_gone_from_the_config_is_no_longer_probed_nor_heard() {
    let (kept, _) = silent_server().await;
    let (gone, gone_accepted) = silent_server().await;
    let before = config(
        "interval: 1s, timeout: 500ms, check: {type: tcp}",
        &[kept, gone],
    );
    let mut probing = Probing::start(&before);
    let mut from_gone = None;
    while from_gone.is_none() {
        let report = probing.next(Duration::from_secs(10)).await.expect("probes");
        if report.destination.addr.port() == gone.port() {
            from_gone = Some(report);
        }
    }
    let from_gone = from_gone.expect("a report");
    probing.follow(&config(
        "interval: 1s, timeout: 500ms, check: {type: tcp}",
        &[kept],
    ));
    assert!(
        !probing.tasks.current(&from_gone),
        "a late report of a real server gone is not taken in"
    );
    // Three intervals of the kept one: the gone one is never probed again
    // (counted from the first, once a connection of a probe cut by the
    // reload, if one was in flight, has been accepted).
    let mut probed = None;
    for _ in 0..4 {
        let report = probing
            .next(Duration::from_secs(10))
            .await
            .expect("the kept one's probes");
        assert_eq!(report.destination.addr.port(), kept.port());
        assert!(probing.tasks.current(&report));
        if probed.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            probed = Some(gone_accepted.load(std::sync::atomic::Ordering::SeqCst));
        }
    }
    let probed = probed.expect("counted");
    assert_eq!(
        gone_accepted.load(std::sync::atomic::Ordering::SeqCst),
        probed
    );

    // Back in the config: a task of its own again, a report taken in.
    probing.follow(&before);
    loop {
        let report = probing.next(Duration::from_secs(10)).await.expect("probes");
        if report.destination.addr.port() == gone.port() {
            assert_ne!(report.task, from_gone.task);
            assert!(probing.tasks.current(&report));
            break;
        }
    }
}

#[test]
fn after_reloads_that_change_the_interval_the_probes_stay_spread_over_it_within_an_interval_of_each_reload(
) {
    use crate::daemon::places::{groups, Place};
    let s = Duration::from_secs;
    let base = tokio::time::Instant::now();
    // 2,000 real servers made together (20 groups of 100), their interval
    // 10 s, then 6 s, 10 s, ... at a reload every minute, as in lab/soak.
    let n = 2_000;
    let slots = groups(n, 1);
    let places: Vec<Place> = (0..n)
        .map(|i| Place {
            base,
            slot: (i * slots / n) as u32,
            slots: slots as u32,
        })
        .collect();
    // The same interval: an interval after the last probe, as before.
    let last = places[700].first(s(10)) + s(30);
    assert_eq!(places[700].next(s(10), last + s(4)), last + s(10));
    for reload in 1..=15u32 {
        let at = base + s(60) * reload + Duration::from_millis(1_234);
        let every = if reload % 2 == 1 { s(6) } else { s(10) };
        let next: Vec<_> = places.iter().map(|p| p.next(every, at)).collect();
        assert!(next.iter().all(|&t| t >= at && t < at + every));
        let mut at_once = std::collections::HashMap::<_, usize>::new();
        for t in &next {
            *at_once.entry(*t).or_default() += 1;
        }
        // One group to a tick, every group its own (folding each one's
        // phase onto the new interval put two to a tick, for good).
        assert_eq!(at_once.len(), slots, "reload {reload}");
        assert!(at_once.values().all(|&k| k == n / slots), "reload {reload}");
    }
}
