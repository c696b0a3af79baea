//! Encoding: a [`Snapshot`] as the Prometheus text format (0.0.4) or
//! OpenMetrics 1.0, a pure function of the snapshot.
//!
//! Labels follow node_exporter's ipvs collector so series join with it
//! and with the checker's, from the one place both daemons take them
//! ([`ipvs_common::labels`]): `proto`, `local_address`, `local_port`,
//! `local_mark` for a service, plus `remote_address` and `remote_port`
//! for a backend; addresses in canonical text form (RFC 5952 for IPv6).
//!
//! The pieces: the text itself (headers, label sets, sample lines, the
//! output in pieces) is written by the writer both daemons share
//! ([`ipvs_common::exposition`]); here `families` names the metric families,
//! `table` writes the series of the IPVS table and `connections` those of
//! the connection table, `director` those of the director's own state and
//! of the exporter itself. An [`Exposition`] is a snapshot with what its first
//! encoding prepared, so that simultaneous scrapes of one snapshot share
//! that work; [`encode`] and [`encode_to`] encode a snapshot once.

mod connections;
mod director;
mod families;
mod table;

use std::io::Write;
use std::sync::OnceLock;

pub use ipvs_common::exposition::Format;

use crate::snapshot::{Namespace, Snapshot};
use families::Families;
use ipvs_common::exposition::{into_text, LabelSet, Out};
use table::TableSeries;

#[cfg(test)]
pub(crate) use connections::table_visits;

/// A snapshot as scrapers encode it: the table's label sets are prepared
/// by the first encoding and shared by every later one, in either format.
/// Simultaneous scrapes share a snapshot, and each preparing its own label
/// sets would multiply the memory and the work.
#[derive(Debug, Default)]
pub struct Exposition {
    snapshot: Snapshot,
    /// The table's series of each namespace, in the snapshot's order.
    tables: OnceLock<Vec<TableSeries>>,
}

impl Exposition {
    /// `snapshot`, nothing prepared yet.
    pub fn new(snapshot: Snapshot) -> Self {
        Exposition {
            snapshot,
            tables: OnceLock::new(),
        }
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The exposition in `format`, as text.
    pub fn encode(&self, format: Format) -> String {
        into_text(|sink| self.encode_to(format, sink))
    }

    /// Writes the exposition in `format` to `sink`, in pieces of about
    /// 64 KiB; fails only if the sink does.
    pub fn encode_to(&self, format: Format, sink: &mut dyn Write) -> std::io::Result<()> {
        let tables = self.tables.get_or_init(|| table_series(&self.snapshot));
        write(&self.snapshot, tables, format, sink)
    }

    /// The table's series, if an encoding prepared them.
    #[cfg(test)]
    pub(crate) fn prepared(&self) -> Option<&[TableSeries]> {
        self.tables.get().map(Vec::as_slice)
    }
}

/// The exposition of `snapshot` in `format`, as text.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    into_text(|sink| encode_to(snapshot, format, sink))
}

/// Writes the exposition of `snapshot` in `format` to `sink`, in pieces of
/// about 64 KiB; fails only if the sink does. Nothing is kept for another
/// encoding: see [`Exposition`] for that.
pub fn encode_to(snapshot: &Snapshot, format: Format, sink: &mut dyn Write) -> std::io::Result<()> {
    write(snapshot, &table_series(snapshot), format, sink)
}

/// The table's series of each namespace.
fn table_series(snapshot: &Snapshot) -> Vec<TableSeries> {
    snapshot
        .namespaces
        .iter()
        .map(|ns| match &ns.table {
            Some(table) => TableSeries::new(
                &namespace_labels(ns),
                table,
                &snapshot.filter,
                snapshot.backend_labels,
            ),
            None => TableSeries::default(),
        })
        .collect()
}

/// Writes the exposition of `snapshot` whose table's series are `tables`.
fn write(
    snapshot: &Snapshot,
    tables: &[TableSeries],
    format: Format,
    sink: &mut dyn Write,
) -> std::io::Result<()> {
    let mut families = Families::new();
    for namespace in &snapshot.namespaces {
        add_namespace(&mut families, namespace, snapshot);
    }
    families
        .socket_reopens
        .push(&LabelSet::new(), snapshot.netlink_socket_reopens);
    if let Some(build) = &snapshot.build {
        families.build_info.push(&build.label_set(), 1);
    }
    let mut out = Out::new(sink);
    let f = &families;
    for family in [&f.up, &f.info].into_iter().chain(&f.global) {
        family.encode(format, &mut out);
    }
    for family in director::director_families(f) {
        family.encode(format, &mut out);
    }
    table::encode_tables(f, tables, format, snapshot.rates, &mut out);
    for family in [
        &f.states,
        &f.templates,
        &f.scan_age,
        &f.duration,
        &f.success,
        &f.socket_reopens,
        &f.build_info,
    ] {
        family.encode(format, &mut out);
    }
    if let Some(process) = &snapshot.process {
        process.encode(format, &mut out);
    }
    out.finish(format)
}

/// The labels every series of the namespace has: `netns` with `--netns`.
fn namespace_labels(ns: &Namespace) -> LabelSet {
    let mut labels = LabelSet::new();
    if let Some(path) = &ns.netns {
        labels.add_escaped("netns", path);
    }
    labels
}

/// Adds the namespace's families but the table's, which are written
/// from the prepared [`TableSeries`].
fn add_namespace(f: &mut Families, ns: &Namespace, snapshot: &Snapshot) {
    let base = namespace_labels(ns);
    if let Some(director) = &ns.director {
        director::add_director(f, director, &base);
    }
    f.up.push(&base, u8::from(ns.info.is_some()));
    if let Some(info) = &ns.info {
        f.info.push(
            &base
                .with("version", info.version)
                .with("conn_table_size", info.conn_table_size),
            1,
        );
    }
    if let Some(g) = &ns.global {
        for (family, value) in f
            .global
            .iter_mut()
            .zip([g.conns, g.inpkts, g.outpkts, g.inbytes, g.outbytes])
        {
            family.push(&base, value);
        }
    }
    if let Some(counts) = &ns.connections {
        connections::add_connections(
            f,
            counts,
            ns.table.as_deref().unwrap_or(&[]),
            &base,
            &snapshot.filter,
            snapshot.backend_labels,
        );
    }
    if let Some(age) = ns.connections_age {
        f.scan_age.push(&base, age);
    }
    for run in &ns.runs {
        let labels = base.with("collector", run.name);
        f.duration.push(&labels, run.seconds);
        f.success.push(&labels, u8::from(run.error.is_none()));
    }
}
