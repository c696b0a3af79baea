//! The fuzz targets' bodies: each takes any bytes, as a peer or a file
//! could give them, and must return without a panic, a hang or an
//! unbounded allocation. `fuzz/libfuzzer/fuzz_targets/*.rs` hand them to libFuzzer
//! (cargo-fuzz, `lab/fuzz`); `tests/replay.rs` runs them over the seeds
//! and every input a fuzzer once found (`fuzz/regressions/TARGET/`), so
//! they build and pass in every `cargo test`.

use std::path::Path;

mod answers;
pub use answers::server_answers;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the file under `fuzz/libfuzzer/fuzz_targets/`) and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("netlink", netlink),
    ("proc_conn", proc_conn),
    ("proc_stats", proc_stats),
    ("checker_config", checker_config),
    ("web_config", web_config),
    ("server_answers", server_answers),
];

/// A datagram of a netlink answer, decoded as the `ipvs` handle decodes
/// the kernel's answers.
pub fn netlink(data: &[u8]) {
    ipvs::fuzzing::netlink_datagram(data);
}

/// `/proc/net/ip_vs_conn`, counted as the exporter counts it.
pub fn proc_conn(data: &[u8]) {
    let _ = ipvs::ConnTableCounts::read_from(data);
}

/// `/proc/net/ip_vs_stats`.
pub fn proc_stats(data: &[u8]) {
    let _ = ipvs::GlobalStats::read_from(data);
}

/// Where the config targets' relative file names point: nowhere, so a
/// fuzzed `ca_file` reads nothing of this machine's.
const NO_DIR: &str = "/nonexistent-fuzz-dir";

/// The checker's config file, loaded and validated.
pub fn checker_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let dir = Path::new(NO_DIR);
        let _ = ipvs_checker::config::parse(text, &dir.join("checker.yml"), dir);
    }
}

/// `--web.config.file`, loaded and validated.
pub fn web_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ipvs_web::WebConfig::parse(text, &Path::new(NO_DIR).join("web.yml"));
    }
}

/// The inputs a target starts from, read from the repository at `root`:
/// the golden captures and fixtures the unit tests already use, so the
/// fuzzer begins from what real kernels and real users write.
pub fn seeds(target: &str, root: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let (dir, keep): (&str, fn(&str) -> bool) = match target {
        "netlink" => ("ipvs/src/tests/golden", |n| n.contains(".answer")),
        "proc_conn" => ("ipvs/src/proc/testdata", |n| {
            n.starts_with("ip_vs_conn") || n.starts_with("lab-ip_vs_conn")
        }),
        "proc_stats" => ("ipvs/src/proc/testdata", |n| {
            n.starts_with("ip_vs_stats") || n.starts_with("lab-ip_vs_stats")
        }),
        "checker_config" => ("checker/testdata", |n| n.ends_with(".yaml")),
        "web_config" => ("examples/web-config", |n| n.ends_with(".yml")),
        // What real servers answer, written out in the target itself:
        // the probes' peers have no golden captures.
        "server_answers" => return Ok(answers::seeds()),
        _ => return Ok(Vec::new()),
    };
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(root.join(dir))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !keep(&name) {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let bytes = if name.ends_with(".hex") {
            from_hex(&bytes)
        } else {
            bytes
        };
        seeds.push((format!("{dir}/{name}"), bytes));
    }
    seeds.sort();
    Ok(seeds)
}

/// The bytes of a golden capture: hex pairs, `#` comment lines.
fn from_hex(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}
