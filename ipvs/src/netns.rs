//! Working in another network namespace without moving the caller.
//!
//! Netlink sockets and `/proc/net` files belong to the namespace they were
//! opened in, whatever thread uses them later. So the way into a namespace
//! is a short-lived thread that enters it, opens what is needed and ends,
//! leaving every other thread where it was.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// Runs `open` on a new thread inside the network namespace at `path` (a
/// file such as `/run/netns/NAME` or `/proc/PID/ns/net`) and returns what
/// it returned. Use `/proc/thread-self/net/...` inside it for that
/// namespace's `/proc/net` files.
pub fn in_netns<T: Send>(path: &Path, open: impl FnOnce() -> T + Send) -> Result<T> {
    let netns_error = |source| Error::Netns {
        path: path.to_path_buf(),
        source,
    };
    let namespace = File::open(path).map_err(netns_error)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns only reads the descriptor, and changes the
                // namespace of this thread alone, which ends right after.
                let rc = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(netns_error(std::io::Error::last_os_error()));
                }
                Ok(open())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(netns_error(std::io::Error::other(
                    "the namespace thread panicked",
                )))
            })
    })
}
