//! The open-files limit, raised to its hard maximum at start, as Go's
//! runtime does for every Prometheus exporter written in Go: the soft
//! limit of 1,024 that shells and some service managers leave is less than
//! a checker probing thousands of real servers at once needs, and running
//! out of descriptors is a failure of the daemon, not of what it watches.

use rlimit::Resource;

/// The soft limit before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process was started with.
    pub before: u64,
    /// The soft limit now (the hard limit, unless the kernel caps it lower).
    pub now: u64,
}

/// Raises the soft limit on open files to the hard limit.
pub fn raise_open_files_limit() -> std::io::Result<OpenFiles> {
    let (before, _hard) = Resource::NOFILE.get()?;
    let now = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(OpenFiles { before, now })
}

/// The soft limit on open files now.
pub fn open_files_limit() -> std::io::Result<u64> {
    Ok(Resource::NOFILE.get()?.0)
}

/// [`raise_open_files_limit`] at a daemon's start, logged: a failure
/// leaves the limit as it was and is no reason not to start.
pub fn raise_open_files_limit_at_start() {
    match raise_open_files_limit() {
        Ok(limit) => tracing::debug!(
            before = limit.before,
            now = limit.now,
            "open files limit raised"
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open files limit; it stays as it was")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_becomes_the_hard_one() {
        let (_, hard) = Resource::NOFILE.get().expect("getrlimit");
        let raised = raise_open_files_limit().expect("setrlimit");
        assert!(raised.now >= raised.before, "{raised:?}");
        let (soft, _) = Resource::NOFILE.get().expect("getrlimit");
        assert_eq!(soft, raised.now);
        // The kernel caps it at fs.nr_open below a larger hard limit.
        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .expect("fs.nr_open")
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(soft, hard.min(nr_open));
    }
}
