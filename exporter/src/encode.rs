//! Encoding: a [`Snapshot`] as the Prometheus text format (0.0.4) or
//! OpenMetrics 1.0, a pure function of the snapshot.
//!
//! Labels follow node_exporter's ipvs collector so series join with it
//! and with the checker's, from the one place both daemons take them
//! ([`ipvs_common::labels`]): `proto`, `local_address`, `local_port`,
//! `local_mark` for a service, plus `remote_address` and `remote_port`
//! for a backend; addresses in canonical text form (RFC 5952 for IPv6).
//!
//! The connection table names a connection of a firewall-mark service by
//! the address and port the client sent to, not by the mark; such a
//! connection is counted under its fwmark service when exactly one
//! fwmark service of that family has the real server (with its port, or
//! port 0), so its series join the backend's. Templates of fwmark
//! services carry the mark and join directly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use ipvs::proc::{ConnKey, ConnProtocol, VirtualAddress};
use ipvs::{ForwardMethod, ServiceFlags, ServiceKey, TableEntry, TunnelType};
use ipvs_common::labels;

use crate::filter::{service_name, BackendLabels, ServiceFilter};
use crate::snapshot::{Namespace, Snapshot};

/// The exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics when the `Accept` header asks for it with a non-zero
    /// quality, the text format otherwise (as client_golang decides).
    pub fn negotiate(accept: Option<&str>) -> Format {
        if ipvs_web::pages::asks_openmetrics(accept) {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// A gauge of value 1 whose labels are the information; `info` in
    /// OpenMetrics, a gauge in the text format.
    Info,
}

/// One metric family being built: its sample lines, already in their
/// final text (the same in both formats), so a sample costs no
/// allocation of its own (a scrape of 1,000 x 10 writes 100,000 of them).
struct Family {
    /// The name of the samples (with `_total` for counters, `_info` for
    /// info metrics).
    name: &'static str,
    help: &'static str,
    kind: Kind,
    lines: String,
}

impl Family {
    fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            lines: String::new(),
        }
    }

    fn push(&mut self, labels: &Labels, value: impl std::fmt::Display) {
        self.push_rendered(&labels.render(), value);
    }

    /// A sample whose label set is already rendered (`{...}` or empty).
    fn push_rendered(&mut self, labels: &str, value: impl std::fmt::Display) {
        self.lines.push_str(self.name);
        self.lines.push_str(labels);
        let _ = writeln!(self.lines, " {value}");
    }

    /// Appends the family (header and samples) to `out`, if it has samples.
    fn encode(&self, format: Format, out: &mut Out<'_>) {
        if self.lines.is_empty() {
            return;
        }
        self.header(format, &mut out.buf);
        out.buf.push_str(&self.lines);
        out.spill();
    }

    /// Appends `# HELP` and `# TYPE`.
    fn header(&self, format: Format, out: &mut String) {
        // OpenMetrics names the family without the sample suffix.
        let family_name = match (format, self.kind) {
            (Format::OpenMetrics, Kind::Counter) => self.name.trim_end_matches("_total"),
            (Format::OpenMetrics, Kind::Info) => self.name.trim_end_matches("_info"),
            _ => self.name,
        };
        let kind = match (format, self.kind) {
            (_, Kind::Counter) => "counter",
            (Format::OpenMetrics, Kind::Info) => "info",
            _ => "gauge",
        };
        let _ = writeln!(out, "# HELP {family_name} {}", self.help);
        let _ = writeln!(out, "# TYPE {family_name} {kind}");
    }
}

/// A label set under construction.
#[derive(Clone, Default)]
struct Labels(Vec<(&'static str, String)>);

impl Labels {
    fn with(&self, name: &'static str, value: impl Into<String>) -> Labels {
        let mut labels = self.clone();
        labels.0.push((name, value.into()));
        labels
    }

    fn render(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut out = String::from("{");
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            escape_into(&mut out, value);
            out.push('"');
        }
        out.push('}');
        out
    }
}

impl Labels {
    /// Appends a label from [`ipvs_common::labels`].
    fn push(&mut self, name: &'static str, value: &dyn std::fmt::Display) {
        self.0.push((name, value.to_string()));
    }
}

fn fwmark_labels(base: &Labels, mark: u32) -> Labels {
    let mut labels = base.clone();
    labels::fwmark_service_labels(mark, |name, value| labels.push(name, value));
    labels
}

fn backend_labels(service: &Labels, remote: SocketAddr) -> Labels {
    let mut labels = service.clone();
    labels::real_server_labels(remote, |name, value| labels.push(name, value));
    labels
}

/// All metric families, in exposition order.
struct Families {
    up: Family,
    info: Family,
    global: [Family; 5],
    service: [Family; 5],
    service_info: Family,
    backend: [Family; 5],
    weight: Family,
    active: Family,
    inactive: Family,
    persistent: Family,
    backend_info: Family,
    states: Family,
    templates: Family,
    scan_age: Family,
    duration: Family,
    success: Family,
}

impl Families {
    fn new() -> Self {
        use Kind::*;
        Families {
            up: Family::new("ipvs_up", Gauge, "Whether the kernel's IPVS answered (GET_INFO over netlink): 0 when IPVS is absent or CAP_NET_ADMIN is missing."),
            info: Family::new("ipvs_info", Info, "The IPVS version and the size of the connection hash table."),
            global: [
                Family::new("ipvs_connections_total", Counter, "Connections scheduled by IPVS (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_incoming_packets_total", Counter, "Packets from clients to real servers (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_outgoing_packets_total", Counter, "Packets from real servers to clients, NAT only (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_incoming_bytes_total", Counter, "Bytes from clients to real servers (/proc/net/ip_vs_stats)."),
                Family::new("ipvs_outgoing_bytes_total", Counter, "Bytes from real servers to clients, NAT only (/proc/net/ip_vs_stats)."),
            ],
            service: [
                Family::new("ipvs_service_connections_total", Counter, "Connections scheduled by the virtual service."),
                Family::new("ipvs_service_incoming_packets_total", Counter, "Packets from clients to the virtual service."),
                Family::new("ipvs_service_outgoing_packets_total", Counter, "Packets from the virtual service to clients (NAT only)."),
                Family::new("ipvs_service_incoming_bytes_total", Counter, "Bytes from clients to the virtual service."),
                Family::new("ipvs_service_outgoing_bytes_total", Counter, "Bytes from the virtual service to clients (NAT only)."),
            ],
            service_info: Family::new("ipvs_service_info", Info, "Settings of the virtual service: scheduler, flags, persistence timeout and netmask, persistence engine."),
            backend: [
                Family::new("ipvs_backend_connections_total", Counter, "Connections scheduled to the real server."),
                Family::new("ipvs_backend_incoming_packets_total", Counter, "Packets from clients to the real server."),
                Family::new("ipvs_backend_outgoing_packets_total", Counter, "Packets from the real server to clients (NAT only)."),
                Family::new("ipvs_backend_incoming_bytes_total", Counter, "Bytes from clients to the real server."),
                Family::new("ipvs_backend_outgoing_bytes_total", Counter, "Bytes from the real server to clients (NAT only)."),
            ],
            weight: Family::new("ipvs_backend_weight", Gauge, "Weight of the real server (0: quiescent, no new connections)."),
            active: Family::new("ipvs_backend_connections_active", Gauge, "Active (established) connections to the real server, as the kernel counts them."),
            inactive: Family::new("ipvs_backend_connections_inactive", Gauge, "Inactive connections (any other state) to the real server, as the kernel counts them."),
            persistent: Family::new("ipvs_backend_connections_persistent", Gauge, "Persistence templates pointing at the real server, as the kernel counts them."),
            backend_info: Family::new("ipvs_backend_info", Info, "Settings of the real server: forwarding method, connection thresholds, tunnel type."),
            states: Family::new("ipvs_backend_connection_states", Gauge, "Connections in the connection table (/proc/net/ip_vs_conn) per state, persistence templates excluded."),
            templates: Family::new("ipvs_backend_persistence_templates", Gauge, "Persistence templates in the connection table (/proc/net/ip_vs_conn) per state (NONE or ASSURED)."),
            scan_age: Family::new("ipvs_conntable_scan_age_seconds", Gauge, "Age of the connection table counts: seconds since the scan of /proc/net/ip_vs_conn they come from (0 when this scrape scanned; see --collector.connections.min-interval)."),
            duration: Family::new("ipvs_scrape_collector_duration_seconds", Gauge, "Time the collector took."),
            success: Family::new("ipvs_scrape_collector_success", Gauge, "Whether the collector succeeded."),
        }
    }
}

/// The exposition of `snapshot` in `format`, as text.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = encode_to(snapshot, format, &mut bytes);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The size of the pieces handed to the sink.
const CHUNK: usize = 64 * 1024;

/// The exposition being written: a small buffer handed to the sink each
/// time it fills, so that a compressed exposition never exists whole
/// uncompressed (1,000 x 10 is 17 MB of text).
struct Out<'w> {
    buf: String,
    sink: &'w mut dyn Write,
    error: Option<std::io::Error>,
}

impl Out<'_> {
    /// Hands the buffer to the sink once it holds a chunk.
    fn spill(&mut self) {
        if self.buf.len() >= CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(error) = self.sink.write_all(self.buf.as_bytes()) {
                self.error = Some(error);
            }
        }
        self.buf.clear();
    }
}

/// Writes the exposition of `snapshot` in `format` to `sink`, in pieces of
/// about 64 KiB; fails only if the sink does.
pub fn encode_to(snapshot: &Snapshot, format: Format, sink: &mut dyn Write) -> std::io::Result<()> {
    let mut families = Families::new();
    for namespace in &snapshot.namespaces {
        add_namespace(
            &mut families,
            namespace,
            &snapshot.filter,
            snapshot.backend_labels,
        );
    }
    let tables = snapshot.table_series();
    let mut out = Out {
        buf: String::with_capacity(CHUNK + 4096),
        sink,
        error: None,
    };
    let f = &families;
    for family in [&f.up, &f.info].into_iter().chain(&f.global) {
        family.encode(format, &mut out);
    }
    encode_tables(f, tables, format, &mut out);
    for family in [
        &f.states,
        &f.templates,
        &f.scan_age,
        &f.duration,
        &f.success,
    ] {
        family.encode(format, &mut out);
    }
    if format == Format::OpenMetrics {
        out.buf.push_str("# EOF\n");
    }
    out.flush();
    match out.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The labels every series of the namespace has: `netns` with `--netns`.
fn namespace_labels(ns: &Namespace) -> Labels {
    match &ns.netns {
        Some(path) => Labels::default().with("netns", path.clone()),
        None => Labels::default(),
    }
}

impl Snapshot {
    /// The table's series of each namespace, prepared by the first scrape
    /// that encodes this snapshot and shared by every other: simultaneous
    /// scrapes share a snapshot, and each preparing its own label sets
    /// (4 MB for 1,000 x 10) would multiply the memory and the work.
    fn table_series(&self) -> &[TableSeries] {
        self.prepared.get_or_init(|| {
            self.namespaces
                .iter()
                .map(|ns| {
                    let mut series = TableSeries::default();
                    if let Some(table) = &ns.table {
                        prepare_table(
                            &mut series,
                            &namespace_labels(ns),
                            table,
                            &self.filter,
                            self.backend_labels,
                        );
                    }
                    series
                })
                .collect()
        })
    }
}

/// Adds the namespace's small families (all but the table's).
fn add_namespace(
    f: &mut Families,
    ns: &Namespace,
    filter: &ServiceFilter,
    backend_labels: BackendLabels,
) {
    let base = namespace_labels(ns);
    f.up.push(&base, u8::from(ns.info.is_some()));
    if let Some(info) = &ns.info {
        f.info.push(
            &base
                .with("version", info.version.to_string())
                .with("conn_table_size", info.conn_table_size.to_string()),
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
        let table = ns.table.as_deref().unwrap_or(&[]);
        let mut states: BTreeMap<String, u64> = BTreeMap::new();
        for (key, count) in counts.connections() {
            let labels = conn_labels(&base, table, key);
            if !filter.keeps_all() && !filter.keeps(&labels_service_name(&labels)) {
                continue;
            }
            let labels = aggregate(labels, backend_labels).with("state", key.state.as_str());
            *states.entry(labels.render()).or_default() += count;
        }
        for (labels, count) in states {
            f.states.push_rendered(&labels, count);
        }
        let mut templates: BTreeMap<String, u64> = BTreeMap::new();
        for (key, count) in counts.templates() {
            let labels = conn_labels(&base, table, key);
            if !filter.keeps_all() && !filter.keeps(&labels_service_name(&labels)) {
                continue;
            }
            let labels = aggregate(labels, backend_labels).with("state", key.state.as_str());
            *templates.entry(labels.render()).or_default() += count;
        }
        for (labels, count) in templates {
            f.templates.push_rendered(&labels, count);
        }
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

/// The table's series, label sets rendered once: each is written into up
/// to ten families straight into the exposition (the table's families
/// are written family by family over all namespaces, without a buffer of
/// their own).
#[derive(Debug, Default)]
pub struct TableSeries {
    /// Service label set, its `ipvs_service_info` label set, the values of
    /// the five service counter families.
    services: Vec<(String, String, [u64; 5])>,
    /// Backend label set, its `ipvs_backend_info` label set (empty when
    /// aggregated), the values of the nine backend families (summed when
    /// aggregated).
    backends: Vec<(String, String, [u64; 9])>,
    /// Where each aggregated label set is in `backends`.
    aggregated: std::collections::HashMap<String, usize>,
}

fn prepare_table(
    series: &mut TableSeries,
    base: &Labels,
    table: &[TableEntry],
    filter: &ServiceFilter,
    mode: BackendLabels,
) {
    let base = LabelText::new(base);
    for entry in table {
        if !filter.keeps_all() && !filter.keeps(&service_name(&entry.service.key)) {
            continue;
        }
        let service = &entry.service;
        let mut labels = base.clone();
        labels::service_labels(&service.key, |name, value| labels.add(name, value));
        let config = &service.config;
        let mut flags: Vec<String> = Vec::new();
        if config.flags.contains(ServiceFlags::PERSISTENT) {
            flags.push("persistent".into());
        }
        if config.flags.contains(ServiceFlags::ONE_PACKET) {
            flags.push("one-packet".into());
        }
        flags.extend(config.flags.scheduler_flag_names(&config.scheduler));
        let persistent = config.flags.contains(ServiceFlags::PERSISTENT);
        let mut info = labels.clone();
        info.add_escaped("scheduler", &config.scheduler);
        info.add_escaped("flags", &flags.join(","));
        match persistent {
            true => info.add("persistence_timeout", config.timeout),
            false => info.add("persistence_timeout", ""),
        }
        match (persistent, config.netmask) {
            (true, Some(mask)) => info.add("persistence_netmask", mask),
            _ => info.add("persistence_netmask", ""),
        }
        info.add_escaped("pe_name", config.pe_name.as_deref().unwrap_or_default());
        let stats = &service.stats;
        let counters = [
            stats.conns,
            stats.in_packets,
            stats.out_packets,
            stats.in_bytes,
            stats.out_bytes,
        ];
        series
            .services
            .push((labels.closed(), info.closed(), counters));
        for dest in &entry.destinations {
            let values = [
                dest.stats.conns,
                dest.stats.in_packets,
                dest.stats.out_packets,
                dest.stats.in_bytes,
                dest.stats.out_bytes,
                dest.config.weight.into(),
                dest.active_conns.into(),
                dest.inactive_conns.into(),
                dest.persistent_conns.into(),
            ];
            let mut backend = labels.clone();
            if mode != BackendLabels::Full {
                if mode == BackendLabels::WithoutPort {
                    labels::real_server_labels(dest.key.addr, |name, value| {
                        if name != labels::REMOTE_PORT {
                            backend.add(name, value);
                        }
                    });
                }
                let key = backend.closed();
                match series.aggregated.get(&key) {
                    Some(&i) => {
                        if let Some((_, _, sums)) = series.backends.get_mut(i) {
                            for (sum, value) in sums.iter_mut().zip(values) {
                                *sum = sum.saturating_add(value);
                            }
                        }
                    }
                    None => {
                        series.aggregated.insert(key.clone(), series.backends.len());
                        series.backends.push((key, String::new(), values));
                    }
                }
                continue;
            }
            labels::real_server_labels(dest.key.addr, |name, value| backend.add(name, value));
            let mut info = backend.clone();
            info.add("forwarding_method", forwarding_name(dest.config.forward));
            info.add("upper_threshold", dest.config.upper_threshold);
            info.add("lower_threshold", dest.config.lower_threshold);
            let tunnel = dest.config.forward == ForwardMethod::Tunnel;
            match (tunnel, dest.config.tunnel.kind) {
                (false, _) => info.add("tunnel_type", ""),
                (true, TunnelType::Ipip) => info.add("tunnel_type", "ipip"),
                (true, TunnelType::Gue) => info.add("tunnel_type", "gue"),
                (true, TunnelType::Gre) => info.add("tunnel_type", "gre"),
                (true, TunnelType::Other(n)) => info.add("tunnel_type", format_args!("tun-{n}")),
            }
            series
                .backends
                .push((backend.closed(), info.closed(), values));
        }
    }
}

/// A label set rendered as it is built: `{name="value",...` without the
/// closing brace, so that a longer set is a copy and a push, not a new
/// rendering (the table's label sets are the encoder's main cost).
#[derive(Clone)]
struct LabelText(String);

impl LabelText {
    fn new(base: &Labels) -> Self {
        let mut text = LabelText(String::with_capacity(256));
        for (name, value) in &base.0 {
            text.add_escaped(name, value);
        }
        text
    }

    fn start(&mut self, name: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(name);
        self.0.push_str("=\"");
    }

    /// A value that needs no escaping: numbers, addresses, fixed names.
    fn add(&mut self, name: &str, value: impl std::fmt::Display) {
        self.start(name);
        let _ = write!(self.0, "{value}");
        self.0.push('"');
    }

    fn add_escaped(&mut self, name: &str, value: &str) {
        self.start(name);
        escape_into(&mut self.0, value);
        self.0.push('"');
    }

    fn closed(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut text = String::with_capacity(self.0.len() + 1);
        text.push_str(&self.0);
        text.push('}');
        text
    }
}

/// A label value as the exposition formats quote it.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes one sample line.
fn sample(out: &mut Out<'_>, name: &str, labels: &str, value: u64) {
    out.buf.push_str(name);
    out.buf.push_str(labels);
    out.buf.push(' ');
    push_decimal(&mut out.buf, value);
    out.buf.push('\n');
    out.spill();
}

/// `value` in decimal. The table's 100,000 samples go through here:
/// `core::fmt`'s machinery (`write`, `pad_integral`) was an eighth of the
/// encoder's instructions.
fn push_decimal(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

/// Writes the table's families, each over every namespace.
fn encode_tables(f: &Families, tables: &[TableSeries], format: Format, out: &mut Out<'_>) {
    let services = || tables.iter().flat_map(|t| t.services.iter());
    let backends = || tables.iter().flat_map(|t| t.backends.iter());
    if services().next().is_some() {
        for (i, family) in f.service.iter().enumerate() {
            family.header(format, &mut out.buf);
            for (labels, _, counters) in services() {
                sample(out, family.name, labels, counters[i]);
            }
        }
        f.service_info.header(format, &mut out.buf);
        for (_, info, _) in services() {
            sample(out, f.service_info.name, info, 1);
        }
    }
    if backends().next().is_some() {
        let families = f
            .backend
            .iter()
            .chain([&f.weight, &f.active, &f.inactive, &f.persistent]);
        for (i, family) in families.enumerate() {
            family.header(format, &mut out.buf);
            for (labels, _, values) in backends() {
                sample(
                    out,
                    family.name,
                    labels,
                    values.get(i).copied().unwrap_or_default(),
                );
            }
        }
        // Aggregated series have no info: their labels are not one server.
        if backends().any(|(_, info, _)| !info.is_empty()) {
            f.backend_info.header(format, &mut out.buf);
            for (_, info, _) in backends() {
                if !info.is_empty() {
                    sample(out, f.backend_info.name, info, 1);
                }
            }
        }
    }
}

/// Forwarding methods by the names operators use (`ipvsadm -m`, `-g`, `-i`).
fn forwarding_name(method: ForwardMethod) -> std::borrow::Cow<'static, str> {
    match method {
        ForwardMethod::Masquerade => "nat".into(),
        ForwardMethod::DirectRoute => "dr".into(),
        ForwardMethod::Tunnel => "tunnel".into(),
        ForwardMethod::LocalNode => "local".into(),
        ForwardMethod::Bypass => "bypass".into(),
        ForwardMethod::Other(bits) => format!("fwd-{bits}").into(),
    }
}

/// `labels` less the backend labels `mode` drops.
fn aggregate(labels: Labels, mode: BackendLabels) -> Labels {
    match mode {
        BackendLabels::Full => labels,
        BackendLabels::WithoutPort => Labels(
            labels
                .0
                .into_iter()
                .filter(|(n, _)| *n != labels::REMOTE_PORT)
                .collect(),
        ),
        BackendLabels::PerService => Labels(
            labels
                .0
                .into_iter()
                .filter(|(n, _)| *n != labels::REMOTE_PORT && *n != labels::REMOTE_ADDRESS)
                .collect(),
        ),
    }
}

/// The name of the service (see [`service_name`]) whose labels `labels`
/// holds.
fn labels_service_name(labels: &Labels) -> String {
    let get = |name: &str| {
        labels
            .0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    match get("proto") {
        "FWM" => format!(
            "FWM/{}",
            u32::from_str_radix(get("local_mark"), 16).unwrap_or_default()
        ),
        proto if get("local_address").contains(':') => {
            format!("{proto}/[{}]:{}", get("local_address"), get("local_port"))
        }
        proto => format!("{proto}/{}:{}", get("local_address"), get("local_port")),
    }
}

/// The backend labels of a connection-table key (see the module docs for
/// connections of fwmark services).
fn conn_labels(base: &Labels, table: &[TableEntry], key: &ConnKey) -> Labels {
    match key.virtual_address {
        VirtualAddress::Fwmark(mark) => backend_labels(&fwmark_labels(base, mark), key.destination),
        VirtualAddress::Addr(vip) => {
            let proto = conn_proto(key.protocol);
            let own_service = table.iter().any(|e| match e.service.key {
                ServiceKey::Addr { protocol, addr } => addr == vip && protocol.to_string() == proto,
                ServiceKey::Fwmark { .. } => false,
            });
            if !own_service {
                if let Some((mark, port)) = fwmark_owner(table, vip.ip(), key.destination) {
                    let remote = SocketAddr::new(key.destination.ip(), port);
                    return backend_labels(&fwmark_labels(base, mark), remote);
                }
            }
            let mut service = base.clone();
            labels::address_service_labels(&proto, vip, |name, value| service.push(name, value));
            backend_labels(&service, key.destination)
        }
    }
}

fn conn_proto(protocol: ConnProtocol) -> String {
    protocol.to_string()
}

/// The one fwmark service (mark, real server port) of the family of `vip`
/// that has real server `dest` (by address, with its port or port 0).
fn fwmark_owner(table: &[TableEntry], vip: IpAddr, dest: SocketAddr) -> Option<(u32, u16)> {
    let mut owners = table.iter().filter_map(|entry| match entry.service.key {
        ServiceKey::Fwmark { mark, family } if family == ipvs::AddressFamily::of(vip) => entry
            .destinations
            .iter()
            .find(|d| {
                d.key.addr.ip() == dest.ip()
                    && (d.key.addr.port() == dest.port() || d.key.addr.port() == 0)
            })
            .map(|d| (mark, d.key.addr.port())),
        _ => None,
    });
    let first = owners.next()?;
    owners.next().is_none().then_some(first)
}

#[cfg(test)]
mod decimal_tests {
    #[test]
    fn decimals_as_display_writes_them() {
        for value in [0, 7, 10, 99, 1_000_000, u64::from(u32::MAX) + 1, u64::MAX] {
            let mut out = String::from("x ");
            super::push_decimal(&mut out, value);
            assert_eq!(out, format!("x {value}"));
        }
    }
}
