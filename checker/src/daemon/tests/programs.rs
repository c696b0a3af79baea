//! How many `exec` checks' programs run at once follows what the programs
//! waited for a CPU (see `daemon::admission`): the probe tasks tell the
//! programs' turns of each program that ended.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config;
use crate::daemon::admission::Admission;
use crate::daemon::hurries::Hurries;
use crate::daemon::probes::ProbeTasks;
use crate::daemon::shards::Shards;
use crate::daemon::tests::Results;
use crate::state::Shared;

#[tokio::test]
async fn programs_that_got_a_cpu_at_once_give_back_the_turns_a_wait_took() {
    // A long timeout: a start on time is one within 50 ms, which a test
    // machine busy with the other tests still gives.
    let mut text = "defaults: {interval: 2s, timeout: 2s, check: {type: exec, command: [/bin/true]}}\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n".to_owned();
    for i in 11..19 {
        text += &format!("      - {{address: '198.18.1.{i}:80'}}\n");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let config = config::parse(&text, &dir.join("checker.yaml"), &dir).expect("valid");
    let state = Shared::new(&config);
    let programs = Admission::programs(8, state.clone());
    // A program that waited its whole timeout for a CPU: 8 -> 6 at once.
    let timeout = Duration::from_secs(2);
    programs.started(timeout, timeout, tokio::time::Instant::now());
    assert_eq!(state.lock().limits.programs(), Some(6));
    let (reports_to, mut reports) = Results::channel();
    let shards = Shards::start(1, 16, &state, &reports_to).expect("probe thread");
    let mut tasks = ProbeTasks::new(&Arc::new(Semaphore::new(1)), &programs);
    tasks.follow(&config, &shards, &Hurries::new(&config));
    // Six programs that started and ended at once: one turn more (and
    // more, if a busy machine made one wait).
    let guard = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut ended = 0;
    while state.lock().limits.programs() < Some(7) {
        let report = tokio::time::timeout_at(guard, reports.recv())
            .await
            .unwrap_or_else(|_| panic!("the limit is under 7 after {ended} programs"))
            .expect("a report");
        assert!(report.result.is_ok(), "{:?}", report.result);
        ended += 1;
    }
    assert_eq!(state.lock().limits.programs(), Some(7));
}
