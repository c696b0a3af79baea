//! What counting the connection table costs beside reading it: times
//! [`ConnTableCounts::read_path`] (what ipvs-exporter's connections
//! collector does) against reading the same file to the end and
//! discarding it (what `cat /proc/net/ip_vs_conn > /dev/null` does, with
//! cat's 128 KiB buffer), interleaved in one process so that neither pays
//! a process start and a drifting machine load weighs on both alike.
//!
//! ```text
//! conncost [ROUNDS] [PATH]      # default 10 rounds of /proc/net/ip_vs_conn
//! ```
//!
//! Prints a Markdown table; the lab's exporter benchmark runs it.

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipvs::ConnTableCounts;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let rounds = match args.next().map(|n| n.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: conncost [ROUNDS] [PATH]");
            return ExitCode::FAILURE;
        }
    };
    let path = args
        .next()
        .unwrap_or_else(|| ipvs::proc::IP_VS_CONN_PATH.to_string());
    let mut read_times = Vec::new();
    let mut count_times = Vec::new();
    let (mut bytes, mut entries) = (0, 0);
    for _ in 0..rounds {
        let started = Instant::now();
        match read_to_end(&path) {
            Ok(n) => bytes = n,
            Err(error) => {
                eprintln!("conncost: reading {path}: {error}");
                return ExitCode::FAILURE;
            }
        }
        read_times.push(started.elapsed());
        let started = Instant::now();
        match ConnTableCounts::read_path(&path) {
            Ok(counts) => entries = counts.entries(),
            Err(error) => {
                eprintln!("conncost: counting {path}: {error}");
                return ExitCode::FAILURE;
            }
        }
        count_times.push(started.elapsed());
    }
    let read_mean = mean(&read_times);
    println!("{rounds} rounds on {path} ({entries} entries, {bytes} bytes):");
    println!();
    println!("| In one process | Mean [s] | Min [s] | Max [s] | Relative |");
    println!("|:---|---:|---:|---:|---:|");
    for (name, times) in [
        ("read and discard (as cat)", &read_times),
        ("count (ConnTableCounts, as the exporter)", &count_times),
    ] {
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {:.2} |",
            mean(times),
            seconds(times.iter().min()),
            seconds(times.iter().max()),
            mean(times) / read_mean,
        );
    }
    ExitCode::SUCCESS
}

fn read_to_end(path: &str) -> std::io::Result<usize> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0; 128 * 1024];
    let mut total = 0;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

fn mean(times: &[Duration]) -> f64 {
    times.iter().map(Duration::as_secs_f64).sum::<f64>() / times.len().max(1) as f64
}

fn seconds(time: Option<&Duration>) -> f64 {
    time.map_or(0.0, Duration::as_secs_f64)
}
