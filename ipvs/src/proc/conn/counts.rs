//! The connection table counted per key, templates apart from
//! connections: memory grows with the distinct keys, not the entries.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use rustc_hash::FxBuildHasher;

use super::entry::{for_each_entry, ConnEntry};
use super::key::ConnKey;
use super::IP_VS_CONN_PATH;
use crate::proc::{open, ProcError};

/// Entries of a connection table counted per [`ConnKey`], persistence
/// templates apart from connections.
///
/// Like `ipvsadm -Lcn`, summed: the counts of one read, not a live view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnTableCounts {
    // Seen by the tests, which check the maps' sizes and capacities.
    pub(super) connections: Counts,
    pub(super) templates: Counts,
    entries: u64,
}

/// Counts per key, hashed with FxHash: a key is a virtual service, a
/// real server and a state, and no client can choose one to collide with
/// another (its own address is not part of the key), so SipHash's defence
/// against chosen collisions buys nothing here, and hashing with it is a
/// large share of counting a table (figures in lab/bench/README.md,
/// conncost).
pub(super) type Counts = HashMap<ConnKey, u64, FxBuildHasher>;

impl ConnTableCounts {
    /// Empty counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the connection table read from `reader` (the contents of
    /// `/proc/net/ip_vs_conn`); see [`for_each_entry`].
    pub fn read_from<R: Read>(reader: R) -> Result<Self, ProcError> {
        let mut counts = Self::new();
        for_each_entry(reader, |entry| counts.add(entry))?;
        Ok(counts)
    }

    /// Counts the connection table in the file at `path`, e.g.
    /// `/proc/<pid>/net/ip_vs_conn` for the network namespace of `<pid>`.
    pub fn read_path<P: AsRef<Path>>(path: P) -> Result<Self, ProcError> {
        Self::read_from(open(path.as_ref())?)
    }

    /// Counts one entry, as a template or a connection.
    pub fn add(&mut self, entry: &ConnEntry<'_>) {
        let map = if entry.is_template() {
            &mut self.templates
        } else {
            &mut self.connections
        };
        // `ConnKey` is `Copy`: only a key not seen before allocates (when
        // the map grows).
        *map.entry(entry.key()).or_insert(0) += 1;
        self.entries += 1;
    }

    /// Connections (not templates) per key, in no particular order.
    pub fn connections(&self) -> impl Iterator<Item = (&ConnKey, u64)> + '_ {
        self.connections.iter().map(|(key, &n)| (key, n))
    }

    /// Persistence templates per key, in no particular order.
    pub fn templates(&self) -> impl Iterator<Item = (&ConnKey, u64)> + '_ {
        self.templates.iter().map(|(key, &n)| (key, n))
    }

    /// Connections counted under `key`.
    pub fn connection_count(&self, key: &ConnKey) -> u64 {
        self.connections.get(key).copied().unwrap_or(0)
    }

    /// Templates counted under `key`.
    pub fn template_count(&self, key: &ConnKey) -> u64 {
        self.templates.get(key).copied().unwrap_or(0)
    }

    /// All connections.
    pub fn total_connections(&self) -> u64 {
        self.connections.values().sum()
    }

    /// All templates.
    pub fn total_templates(&self) -> u64 {
        self.templates.values().sum()
    }

    /// Entry lines parsed (connections and templates; the header is not
    /// an entry).
    pub fn entries(&self) -> u64 {
        self.entries
    }
}

/// Counts the connection table of the caller's network namespace
/// (`/proc/net/ip_vs_conn`, world-readable: no `CAP_NET_ADMIN` needed),
/// like `ipvsadm -Lcn`.
pub fn read_ip_vs_conn() -> Result<ConnTableCounts, ProcError> {
    ConnTableCounts::read_path(IP_VS_CONN_PATH)
}
