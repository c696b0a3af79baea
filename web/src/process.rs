//! What both daemons say about themselves in the Prometheus ecosystem's
//! conventions: the standard `process_*` metrics (CPU time, memory, file
//! descriptors, start time; client_golang's names and meanings) read from
//! `/proc/self` with the procfs crate, and the `*_build_info` labels.
//!
//! This module gives the values and the family descriptions, once, and
//! writes them through the exposition writer both daemons share
//! ([`ipvs_common::exposition`]).

use ipvs_common::exposition::{Family, Format, Kind, LabelSet, Out};

/// The kind of a process family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// A counter (its sample name ends in `_total`).
    Counter,
    /// A gauge.
    Gauge,
}

/// One `process_*` sample: the sample's name, its kind, help and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// The sample's name (`process_cpu_seconds_total`, ...).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: ProcessKind,
    /// The family's help text.
    pub help: &'static str,
    /// The value.
    pub value: f64,
}

/// The daemon's own process, as `/proc/self` has it at the time of a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit of open file descriptors; `None` when unlimited.
    pub max_fds: Option<u64>,
    /// When the process started, Unix seconds.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// The calling process's figures.
    pub fn read() -> Result<Self, procfs::ProcError> {
        let me = procfs::process::Process::myself()?;
        let stat = me.stat()?;
        let ticks = procfs::ticks_per_second() as f64;
        let boot_time = procfs::boot_time_secs()? as f64;
        let max_fds = match me.limits()?.max_open_files.soft_limit {
            procfs::process::LimitValue::Value(limit) => Some(limit),
            procfs::process::LimitValue::Unlimited => None,
        };
        Ok(ProcessStats {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_bytes: stat.rss.saturating_mul(procfs::page_size()),
            virtual_bytes: stat.vsize,
            open_fds: me.fd_count()? as u64,
            max_fds,
            start_time_seconds: boot_time + stat.starttime as f64 / ticks,
        })
    }

    /// The samples, in client_golang's order; `process_max_fds` is left
    /// out when there is no limit.
    pub fn samples(&self) -> Vec<ProcessSample> {
        use ProcessKind::*;
        let sample = |name, kind, help, value| ProcessSample {
            name,
            kind,
            help,
            value,
        };
        let mut samples = vec![
            sample(
                "process_cpu_seconds_total",
                Counter,
                "User and system CPU time the process used, in seconds.",
                self.cpu_seconds,
            ),
            sample(
                "process_open_fds",
                Gauge,
                "File descriptors the process has open.",
                self.open_fds as f64,
            ),
        ];
        if let Some(max) = self.max_fds {
            samples.push(sample(
                "process_max_fds",
                Gauge,
                "The process's limit of open file descriptors (soft RLIMIT_NOFILE).",
                max as f64,
            ));
        }
        samples.extend([
            sample(
                "process_virtual_memory_bytes",
                Gauge,
                "Virtual memory size of the process, in bytes.",
                self.virtual_bytes as f64,
            ),
            sample(
                "process_resident_memory_bytes",
                Gauge,
                "Resident memory size of the process, in bytes.",
                self.resident_bytes as f64,
            ),
            sample(
                "process_start_time_seconds",
                Gauge,
                "When the process started, in seconds since the Unix epoch.",
                self.start_time_seconds,
            ),
        ]);
        samples
    }

    /// Writes the `process_*` families.
    pub fn encode(&self, format: Format, out: &mut Out<'_>) {
        for sample in self.samples() {
            let kind = match sample.kind {
                ProcessKind::Counter => Kind::Counter,
                ProcessKind::Gauge => Kind::Gauge,
            };
            let mut family = Family::new(sample.name, kind, sample.help);
            family.push(&LabelSet::new(), sample.value);
            family.encode(format, out);
        }
    }
}

/// What a daemon was built from: the `*_build_info` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate's version.
    pub version: &'static str,
    /// The git commit it was built from, or `unknown`.
    pub revision: &'static str,
    /// The rustc version that built it.
    pub rustc_version: &'static str,
}

impl BuildInfo {
    /// The labels, in the order they are written.
    pub fn labels(&self) -> [(&'static str, &'static str); 3] {
        [
            ("version", self.version),
            ("revision", self.revision),
            ("rustc_version", self.rustc_version),
        ]
    }

    /// The labels as a label set, for a `*_build_info` sample.
    pub fn label_set(&self) -> LabelSet {
        let mut labels = LabelSet::new();
        for (name, value) in self.labels() {
            labels.add_escaped(name, value);
        }
        labels
    }
}

/// The [`BuildInfo`] of the crate this is written in, whose build script
/// is `common/build/build_info.rs`.
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::process::BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("IPVS_BUILD_REVISION"),
            rustc_version: env!("IPVS_BUILD_RUSTC_VERSION"),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_started_and_busy() {
        let stats = ProcessStats::read().expect("/proc/self");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        // Started before now, and not before the test binary was built
        // long ago: within a day.
        assert!(stats.start_time_seconds <= now + 1.0, "{stats:?}");
        assert!(stats.start_time_seconds > now - 86_400.0, "{stats:?}");
        assert!(stats.resident_bytes > 0 && stats.virtual_bytes >= stats.resident_bytes);
        // stdin, stdout, stderr at least; the limit above them.
        assert!(stats.open_fds >= 3, "{stats:?}");
        if let Some(max) = stats.max_fds {
            assert!(max >= stats.open_fds);
        }
        let names: Vec<_> = stats.samples().iter().map(|s| s.name).collect();
        assert_eq!(names[0], "process_cpu_seconds_total");
        assert!(names.contains(&"process_start_time_seconds"));
    }

    #[test]
    fn an_unlimited_fd_limit_has_no_sample() {
        let stats = ProcessStats {
            max_fds: None,
            ..ProcessStats::default()
        };
        assert!(!stats.samples().iter().any(|s| s.name == "process_max_fds"));
    }
}
