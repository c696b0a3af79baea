//! What probing costs, on a machine without IPVS: runs the daemon (its
//! runtime, probe tasks, loop and state, as `ipvs-checker` runs them) for
//! SECONDS over a table in memory made from CONFIG, then prints the probes
//! made and the CPU time (user + system, this process) per 1,000 probes.
//! Point CONFIG at servers on loopback, e.g. in a network namespace of its
//! own (`ip netns add cost; ip -n cost link set lo up`) where nginx serves
//! 127.0.1.1, 127.0.1.2, ...; see lab/bench/README.md. PROBE_THREADS sets
//! `--checker.probe-threads` (default 0: one per core but one).
//!
//!   cargo run --release -p ipvs-checker --example probe-cost -- CONFIG [SECONDS]
//!
//! Under valgrind's callgrind it counts the instructions a probe takes,
//! free of the host's noise: start it with `--instr-atstart=no`, turn the
//! counting on with `callgrind_control -i on` once every prober has
//! started, and dump with `callgrind_control -d` (lab/bench/README.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipvs_checker::prober::Phase;
use ipvs_checker::reconcile::memory::MemoryTable;
use ipvs_checker::{config, daemon, state};

/// User and system CPU time of this process, and how often it slept
/// (voluntary context switches: the runtime parked, then woke).
fn cpu() -> (Duration, Duration, i64) {
    // SAFETY: getrusage writes into the struct it is given, nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime), usage.ru_nvcsw)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = PathBuf::from(args.next().context("usage: probe-cost CONFIG [SECONDS]")?);
    let seconds: u64 = args
        .next()
        .map_or(Ok(10), |s| s.parse())
        .context("SECONDS")?;
    let config = config::load(&file)?;
    let table = MemoryTable::from_config(&config);
    let state = state::Shared::new(&config);
    let options = daemon::Options {
        config_file: file,
        dry_run: false,
        max_concurrency: 256,
        max_full_handshakes: 16,
        max_programs: 32,
        probe_threads: std::env::var("PROBE_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        quiescent_sysctl: "/nonexistent".into(),
        notify_socket: None,
        watchdog: None,
    };
    // Every probe goes through a connect or (over a kept-alive
    // connection) straight to its response: per real server, the larger
    // of those two phases' histogram counts (as /metrics shows them) is
    // the probes made (in these runs, where none fails). Read from the
    // state, not from /metrics, whose process figures valgrind cannot
    // read (callgrind, above).
    let probes = || -> anyhow::Result<(u64, usize)> {
        let state = state.lock();
        let backends = || state.services().iter().flat_map(|s| &s.backends);
        let made = backends()
            .map(|b| {
                [Phase::Connect, Phase::Response]
                    .iter()
                    .filter_map(|p| b.durations[*p as usize].as_ref())
                    .map(|h| h.count())
                    .max()
                    .unwrap_or(0)
            })
            .sum();
        let failing = backends().filter(|b| b.last_probe == Some(false)).count();
        Ok((made, failing))
    };
    let runtime = daemon::runtime()?;
    let run = daemon::run(
        options,
        config,
        table,
        state.clone(),
        std::future::pending(),
    );
    let (before, after, cpu_used, wall) = runtime.block_on(async {
        tokio::pin!(run);
        // A second to start every prober, then the window measured.
        let warmup = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! { r = &mut run => r?, _ = warmup => {} }
        let (before, cpu0, t0) = (probes()?.0, cpu(), Instant::now());
        let window = tokio::time::sleep(Duration::from_secs(seconds));
        tokio::select! { r = &mut run => r?, _ = window => {} }
        let (cpu1, wall) = (cpu(), t0.elapsed());
        anyhow::Ok((
            before,
            probes()?,
            (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1, cpu1.2 - cpu0.2),
            wall,
        ))
    })?;
    let made = after.0 - before;
    let (user, system) = (cpu_used.0.as_secs_f64(), cpu_used.1.as_secs_f64());
    let per_probe = |x: f64| x / made.max(1) as f64;
    // Resident memory at the end, as the benchmark reads it.
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    println!(
        "{made} probes in {:.1} s ({:.0}/s), {} failing at the end; CPU {:.3} s (user {user:.3}, system {system:.3}): {:.3} s per 1,000 probes; {} wake-ups ({:.2} per probe); VmRSS {:.1} MB",
        wall.as_secs_f64(),
        made as f64 / wall.as_secs_f64(),
        after.1,
        user + system,
        per_probe((user + system) * 1000.0),
        cpu_used.2,
        per_probe(cpu_used.2 as f64),
        rss as f64 / 1024.0,
    );
    Ok(())
}
