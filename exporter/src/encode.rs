//! Encoding: a [`Snapshot`] as the Prometheus text format (0.0.4) or
//! OpenMetrics 1.0, a pure function of the snapshot.
//!
//! Labels follow node_exporter's ipvs collector so series join with it
//! and with the checker's: `proto`, `local_address`, `local_port`,
//! `local_mark` for a service, plus `remote_address` and `remote_port`
//! for a backend. As node_exporter has them, a firewall-mark service has
//! `proto="FWM"`, an empty `local_address`, `local_port="0"` and the mark
//! in `local_mark` as the kernel's `/proc/net/ip_vs` prints it (`%08X`);
//! addresses are in canonical text form (RFC 5952 for IPv6).
//!
//! The connection table names a connection of a firewall-mark service by
//! the address and port the client sent to, not by the mark; such a
//! connection is counted under its fwmark service when exactly one
//! fwmark service of that family has the real server (with its port, or
//! port 0), so its series join the backend's. Templates of fwmark
//! services carry the mark and join directly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use ipvs::proc::{ConnKey, ConnProtocol, VirtualAddress};
use ipvs::{ForwardMethod, ServiceFlags, ServiceKey, TableEntry, TunnelType};

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

/// One metric family being built: its samples as label text and value.
struct Family {
    /// The name of the samples (with `_total` for counters, `_info` for
    /// info metrics).
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: &Labels, value: impl std::fmt::Display) {
        self.samples.push((labels.render(), value.to_string()));
    }

    fn encode(&self, format: Format, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
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
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{labels} {value}", self.name);
        }
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
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
        out
    }
}

/// The service labels of node_exporter.
fn service_labels(base: &Labels, key: &ServiceKey) -> Labels {
    match key {
        ServiceKey::Addr { protocol, addr } => base
            .with("proto", protocol.to_string())
            .with("local_address", addr.ip().to_string())
            .with("local_port", addr.port().to_string())
            .with("local_mark", ""),
        ServiceKey::Fwmark { mark, .. } => fwmark_labels(base, *mark),
    }
}

fn fwmark_labels(base: &Labels, mark: u32) -> Labels {
    base.with("proto", "FWM")
        .with("local_address", "")
        .with("local_port", "0")
        .with("local_mark", format!("{mark:08X}"))
}

fn backend_labels(service: &Labels, remote: SocketAddr) -> Labels {
    service
        .with("remote_address", remote.ip().to_string())
        .with("remote_port", remote.port().to_string())
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
            duration: Family::new("ipvs_scrape_collector_duration_seconds", Gauge, "Time the collector took."),
            success: Family::new("ipvs_scrape_collector_success", Gauge, "Whether the collector succeeded."),
        }
    }

    fn all(&self) -> Vec<&Family> {
        let mut all = vec![&self.up, &self.info];
        all.extend(self.global.iter());
        all.extend(self.service.iter());
        all.push(&self.service_info);
        all.extend(self.backend.iter());
        all.extend([
            &self.weight,
            &self.active,
            &self.inactive,
            &self.persistent,
            &self.backend_info,
            &self.states,
            &self.templates,
            &self.duration,
            &self.success,
        ]);
        all
    }
}

/// The exposition of `snapshot` in `format`.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    let mut families = Families::new();
    for namespace in &snapshot.namespaces {
        add_namespace(&mut families, namespace);
    }
    let mut out = String::new();
    for family in families.all() {
        family.encode(format, &mut out);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn add_namespace(f: &mut Families, ns: &Namespace) {
    let base = match &ns.netns {
        Some(path) => Labels::default().with("netns", path.clone()),
        None => Labels::default(),
    };
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
    if let Some(table) = &ns.table {
        add_table(f, &base, table);
    }
    if let Some(counts) = &ns.connections {
        let table = ns.table.as_deref().unwrap_or(&[]);
        let mut states: BTreeMap<String, u64> = BTreeMap::new();
        for (key, count) in counts.connections() {
            let labels = conn_labels(&base, table, key).with("state", key.state.as_str());
            *states.entry(labels.render()).or_default() += count;
        }
        f.states.samples.extend(
            states
                .into_iter()
                .map(|(labels, count)| (labels, count.to_string())),
        );
        let mut templates: BTreeMap<String, u64> = BTreeMap::new();
        for (key, count) in counts.templates() {
            let labels = conn_labels(&base, table, key).with("state", key.state.as_str());
            *templates.entry(labels.render()).or_default() += count;
        }
        f.templates.samples.extend(
            templates
                .into_iter()
                .map(|(labels, count)| (labels, count.to_string())),
        );
    }
    for run in &ns.runs {
        let labels = base.with("collector", run.name);
        f.duration.push(&labels, run.seconds);
        f.success.push(&labels, u8::from(run.error.is_none()));
    }
}

fn add_table(f: &mut Families, base: &Labels, table: &[TableEntry]) {
    for entry in table {
        let service = &entry.service;
        let labels = service_labels(base, &service.key);
        let s = &service.stats;
        for (family, value) in f.service.iter_mut().zip([
            s.conns,
            s.in_packets,
            s.out_packets,
            s.in_bytes,
            s.out_bytes,
        ]) {
            family.push(&labels, value);
        }
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
        f.service_info.push(
            &labels
                .with("scheduler", config.scheduler.clone())
                .with("flags", flags.join(","))
                .with(
                    "persistence_timeout",
                    if persistent {
                        config.timeout.to_string()
                    } else {
                        String::new()
                    },
                )
                .with(
                    "persistence_netmask",
                    match (persistent, config.netmask) {
                        (true, Some(mask)) => mask.to_string(),
                        _ => String::new(),
                    },
                )
                .with("pe_name", config.pe_name.clone().unwrap_or_default()),
            1,
        );
        for dest in &entry.destinations {
            let labels = backend_labels(&labels, dest.key.addr);
            let s = &dest.stats;
            for (family, value) in f.backend.iter_mut().zip([
                s.conns,
                s.in_packets,
                s.out_packets,
                s.in_bytes,
                s.out_bytes,
            ]) {
                family.push(&labels, value);
            }
            f.weight.push(&labels, dest.config.weight);
            f.active.push(&labels, dest.active_conns);
            f.inactive.push(&labels, dest.inactive_conns);
            f.persistent.push(&labels, dest.persistent_conns);
            let tunnel = dest.config.forward == ForwardMethod::Tunnel;
            let tunnel_type = match dest.config.tunnel.kind {
                TunnelType::Ipip => "ipip".to_string(),
                TunnelType::Gue => "gue".to_string(),
                TunnelType::Gre => "gre".to_string(),
                TunnelType::Other(n) => format!("tun-{n}"),
            };
            f.backend_info.push(
                &labels
                    .with("forwarding_method", forwarding_name(dest.config.forward))
                    .with("upper_threshold", dest.config.upper_threshold.to_string())
                    .with("lower_threshold", dest.config.lower_threshold.to_string())
                    .with(
                        "tunnel_type",
                        if tunnel { tunnel_type } else { String::new() },
                    ),
                1,
            );
        }
    }
}

/// Forwarding methods by the names operators use (`ipvsadm -m`, `-g`, `-i`).
fn forwarding_name(method: ForwardMethod) -> String {
    match method {
        ForwardMethod::Masquerade => "nat".into(),
        ForwardMethod::DirectRoute => "dr".into(),
        ForwardMethod::Tunnel => "tunnel".into(),
        ForwardMethod::LocalNode => "local".into(),
        ForwardMethod::Bypass => "bypass".into(),
        ForwardMethod::Other(bits) => format!("fwd-{bits}"),
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
            let service = base
                .with("proto", proto)
                .with("local_address", vip.ip().to_string())
                .with("local_port", vip.port().to_string())
                .with("local_mark", "");
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
