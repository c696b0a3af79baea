//! Parsers for the kernel's `/proc/net/ip_vs*` files.
//!
//! Two things are only, or most cheaply, available here rather than over
//! the `IPVS` generic netlink family:
//!
//! - The connection table. Netlink reports per-destination counters
//!   (active, inactive and persistent connections) but not the entries
//!   themselves; `/proc/net/ip_vs_conn` lists every entry with its state,
//!   including persistence templates. [`ConnTableCounts`] reads it in one
//!   streaming pass and counts entries per (virtual service, destination,
//!   state), keeping templates apart from connections.
//! - Access without privileges. Every netlink operation of the family,
//!   reads included, needs `CAP_NET_ADMIN`, while the `/proc/net/ip_vs*`
//!   files are world-readable. [`read_ip_vs_stats`] gives the global
//!   totals and rates of `/proc/net/ip_vs_stats` to an unprivileged
//!   exporter.
//!
//! Both files are per network namespace: [`read_ip_vs_conn`] and
//! [`read_ip_vs_stats`] read the caller's; `/proc/<pid>/net/ip_vs_conn`
//! (through [`ConnTableCounts::read_path`]) reads the namespace of `<pid>`.
//!
//! Reading a large connection table is expensive in the kernel itself:
//! every `read(2)` restarts the walk of its connection hash table from the
//! first bucket up to the file position (`ip_vs_conn_seq_start`), and
//! `seq_file` hands out about a page per call, so the kernel's cost grows
//! with the square of the table (figures in lab/bench/README.md). Parsing
//! is not the bottleneck; callers should still not read the table more
//! often than they need.
//!
//! Nothing here panics on what a file contains: every malformed line is a
//! [`ProcError`] that names the 1-based line and the column it failed on.

mod conn;
mod error;
mod lines;
mod stats;

use std::fs::File;
use std::io;
use std::path::Path;

pub use conn::{
    for_each_entry, is_template, read_ip_vs_conn, ConnEntry, ConnKey, ConnProtocol, ConnState,
    ConnTableCounts, StateName, VirtualAddress, IP_VS_CONN_PATH, MAX_LINE_LEN, STATE_NAME_MAX,
};
pub(crate) use error::excerpt;
pub use error::{FieldError, FieldErrorKind, ProcError};
pub(crate) use lines::{parse_dec_u64, parse_hex_u64, Fields, LineReader};
pub use stats::{read_ip_vs_stats, GlobalStats, IP_VS_STATS_PATH};

/// Opens a `/proc` file, telling "IPVS is not loaded" apart from other
/// failures.
pub(crate) fn open(path: &Path) -> Result<File, ProcError> {
    File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ProcError::NotAvailable {
                path: path.to_path_buf(),
            }
        } else {
            ProcError::Open {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// A global allocator for this crate's test binary that counts the
/// allocations made by the current thread, so a test can prove that the
/// connection-table parser does not allocate per line.
#[cfg(test)]
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        // `const` initialisation: reading it never allocates, which an
        // allocator needs.
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator;
    // counting touches only a thread-local `Cell`.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            bump();
            // SAFETY: same contract as our caller's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            bump();
            // SAFETY: same contract as our caller's.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            bump();
            // SAFETY: same contract as our caller's.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as our caller's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    fn bump() {
        // `try_with`: the thread-local may already be gone while a thread
        // exits, and an allocator must not panic.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get().wrapping_add(1)));
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations (and reallocations) made so far by this thread.
    pub(crate) fn allocations() -> u64 {
        ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
    }
}
