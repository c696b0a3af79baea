//! What a scrape of `/metrics` costs at a size, on a machine without
//! IPVS: a state of SERVICES x REAL_SERVERS (default 200 x 10), every
//! real server probed once over HTTPS (connect, tls and response timed,
//! as the largest exposition has them), then the time to copy the state
//! (what a scrape holds the daemon's lock for, see `Shared::snapshot`) and
//! to write the exposition from the copy, in each format and as a scrape
//! streams it (plain and gzipped), as medians of ROUNDS (default 20),
//! with the exposition's size. See lab/bench/README.md.
//!
//!   cargo run --release -p ipvs-checker --example metrics-cost -- [SERVICES [REAL_SERVERS [ROUNDS]]]

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use ipvs_checker::prober::{Phase, Phases, Success};
use ipvs_checker::{config, metrics, state};
use ipvs_common::exposition::Format;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let mut next = |default: usize, what: &str| -> anyhow::Result<usize> {
        args.next().unwrap_or(Ok(default)).context(what.to_owned())
    };
    let services = next(200, "SERVICES")?;
    let real_servers = next(10, "REAL_SERVERS")?;
    let rounds = next(20, "ROUNDS")?.max(1);
    let mut text = String::from("services:\n");
    for s in 0..services {
        let _ = writeln!(
            text,
            "  - address: 198.18.0.10:{}\n    real_servers:",
            10_000 + s
        );
        for r in 0..real_servers {
            let _ = writeln!(
                text,
                "      - address: 198.18.{}.{}:80",
                1 + r / 250,
                1 + r % 250
            );
        }
    }
    let config = config::parse(&text, Path::new("metrics-cost.yaml"), Path::new("."))?;
    let shared = state::Shared::new(&config);
    {
        let mut state = shared.lock();
        let ms = Duration::from_millis;
        let phases = Phases::new()
            .with(Phase::Connect, ms(1))
            .with(Phase::Tls, ms(12))
            .with(Phase::Response, ms(3));
        let ok = Ok(Success::default());
        for service in &config.services {
            for rs in &service.real_servers {
                state.observe(&service.key, &rs.key, &ok, &phases, &[], SystemTime::now());
            }
        }
    }
    let time = |f: &mut dyn FnMut()| {
        median(
            (0..rounds)
                .map(|_| {
                    let t0 = Instant::now();
                    f();
                    t0.elapsed()
                })
                .collect(),
        )
    };
    let copy = time(&mut || drop(shared.snapshot()));
    let mut sizes = Vec::new();
    let mut writes = Vec::new();
    for format in [Format::Text, Format::OpenMetrics] {
        let mut size = 0;
        writes.push(time(&mut || {
            size = metrics::exposition(&shared, format).len()
        }));
        sizes.push(size);
    }
    // As a scrape writes it: to the response's stream (here a sink) in
    // pieces, never whole.
    let streamed = time(&mut || {
        metrics::write(&shared, Format::Text, &mut std::io::sink()).expect("a sink takes all");
    });
    // And gzipped on the way, as a scraper that accepts it (Prometheus
    // does by default) gets it.
    let gzipped = time(&mut || {
        ipvs_web::scrape::write_body(true, std::io::sink(), |out| {
            metrics::write(&shared, Format::Text, out)
        })
        .expect("a sink takes all");
    });
    println!(
        "{services} x {real_servers}: the state copied in {copy:?} (the lock held); the exposition written in {:?} (text, {} bytes) and {:?} (OpenMetrics, {} bytes), copy included; streamed to a sink in {streamed:?} (text), gzipped in {gzipped:?}; medians of {rounds}",
        writes[0], sizes[0], writes[1], sizes[1]
    );
    Ok(())
}
