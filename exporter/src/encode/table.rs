//! The series of the IPVS table (services and real servers over netlink):
//! their label sets rendered once per snapshot, then written family by
//! family over all namespaces.

use std::collections::HashMap;

use ipvs::{ForwardMethod, ServiceFlags, TableEntry};
use ipvs_common::exposition::{Format, LabelSet, Out};
use ipvs_common::labels;

use super::families::Families;
use crate::filter::{service_name, BackendLabels, ServiceFilter};

/// One service's series.
#[derive(Debug)]
struct ServiceSeries {
    /// The service's label set.
    labels: String,
    /// Its `ipvs_service_info` label set.
    info: String,
    /// The values of the five service counter families.
    counters: [u64; 5],
    /// The kernel's five rate estimates.
    rates: [u64; 5],
}

/// One real server's series, or the sum of those whose kept labels are
/// the same (`--collector.backends.labels`).
#[derive(Debug)]
struct BackendSeries {
    /// The backend's label set.
    labels: String,
    /// Its `ipvs_backend_info` label set; empty when aggregated, since the
    /// labels no longer name one real server.
    info: String,
    /// The values of the nine backend families (summed when aggregated).
    values: [u64; 9],
    /// The kernel's five rate estimates (summed when aggregated).
    rates: [u64; 5],
}

/// The table's series of one namespace, label sets rendered once: each is
/// written into up to ten families straight into the exposition.
#[derive(Debug, Default)]
pub(crate) struct TableSeries {
    services: Vec<ServiceSeries>,
    backends: Vec<BackendSeries>,
    /// Where each aggregated label set is in `backends`.
    aggregated: HashMap<String, usize>,
}

impl TableSeries {
    /// The series of `table`, each label set starting with `base`.
    pub(super) fn new(
        base: &LabelSet,
        table: &[TableEntry],
        filter: &ServiceFilter,
        mode: BackendLabels,
    ) -> Self {
        let mut series = TableSeries::default();
        for entry in table {
            if !filter.keeps_all() && !filter.keeps(&service_name(&entry.service.key)) {
                continue;
            }
            let mut labels = base.clone();
            labels::service_labels(&entry.service.key, |name, value| labels.add(name, value));
            series.add_service(entry, &labels);
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
                let rates = rates_of(&dest.stats);
                let mut backend = labels.clone();
                labels::real_server_labels(dest.key.addr, |name, value| {
                    if mode.keeps(name) {
                        backend.add(name, value);
                    }
                });
                if mode == BackendLabels::Full {
                    series.backends.push(BackendSeries {
                        info: backend_info(&backend, dest),
                        labels: backend.closed(),
                        values,
                        rates,
                    });
                } else {
                    series.add_aggregated(backend.closed(), values, rates);
                }
            }
        }
        series
    }

    fn add_service(&mut self, entry: &TableEntry, labels: &LabelSet) {
        let service = &entry.service;
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
        self.services.push(ServiceSeries {
            labels: labels.closed(),
            info: info.closed(),
            counters: [
                stats.conns,
                stats.in_packets,
                stats.out_packets,
                stats.in_bytes,
                stats.out_bytes,
            ],
            rates: rates_of(stats),
        });
    }

    /// Adds `values` to the aggregated series labelled `labels`.
    fn add_aggregated(&mut self, labels: String, values: [u64; 9], rates: [u64; 5]) {
        match self.aggregated.get(&labels) {
            Some(&i) => {
                if let Some(series) = self.backends.get_mut(i) {
                    for (sum, value) in series.values.iter_mut().zip(values) {
                        *sum = sum.saturating_add(value);
                    }
                    for (sum, value) in series.rates.iter_mut().zip(rates) {
                        *sum = sum.saturating_add(value);
                    }
                }
            }
            None => {
                self.aggregated.insert(labels.clone(), self.backends.len());
                self.backends.push(BackendSeries {
                    labels,
                    info: String::new(),
                    values,
                    rates,
                });
            }
        }
    }
}

/// The kernel's rate estimates, in the order of the rate families.
fn rates_of(stats: &ipvs::Stats) -> [u64; 5] {
    [
        stats.cps,
        stats.in_pps,
        stats.out_pps,
        stats.in_bps,
        stats.out_bps,
    ]
}

/// The `ipvs_backend_info` label set of real server `dest`.
fn backend_info(backend: &LabelSet, dest: &ipvs::Destination) -> String {
    let mut info = backend.clone();
    info.add("forwarding_method", forwarding_name(dest.config.forward));
    info.add("upper_threshold", dest.config.upper_threshold);
    info.add("lower_threshold", dest.config.lower_threshold);
    let tunnel = dest.config.forward == ForwardMethod::Tunnel;
    match (tunnel, dest.config.tunnel.kind) {
        (false, _) => info.add("tunnel_type", ""),
        // ipip, gue, gre or tun-N.
        (true, kind) => info.add("tunnel_type", kind),
    }
    info.closed()
}

/// Forwarding methods by the names operators use (`ipvsadm -m`, `-g`, `-i`).
fn forwarding_name(method: ForwardMethod) -> std::borrow::Cow<'static, str> {
    match method {
        ForwardMethod::Masquerade => "nat".into(),
        ForwardMethod::DirectRoute => "dr".into(),
        ForwardMethod::Tunnel => "tunnel".into(),
        ForwardMethod::LocalNode => "local".into(),
        ForwardMethod::Bypass => "bypass".into(),
        other => format!("fwd-{}", other.bits()).into(),
    }
}

/// Writes the table's families, each over every namespace; the rate
/// estimates' with `rates`.
pub(super) fn encode_tables(
    f: &Families,
    tables: &[TableSeries],
    format: Format,
    rates: bool,
    out: &mut Out<'_>,
) {
    let services = || tables.iter().flat_map(|t| t.services.iter());
    let backends = || tables.iter().flat_map(|t| t.backends.iter());
    if services().next().is_some() {
        for (i, family) in f.service.iter().enumerate() {
            family.header(format, out);
            for series in services() {
                let value = series.counters.get(i).copied().unwrap_or_default();
                out.sample(family.name(), &series.labels, value);
            }
        }
        f.service_info.header(format, out);
        for series in services() {
            out.sample(f.service_info.name(), &series.info, 1);
        }
        if rates {
            for (i, family) in f.service_rates.iter().enumerate() {
                family.header(format, out);
                for series in services() {
                    let value = series.rates.get(i).copied().unwrap_or_default();
                    out.sample(family.name(), &series.labels, value);
                }
            }
        }
    }
    if backends().next().is_some() {
        let families = f
            .backend
            .iter()
            .chain([&f.weight, &f.active, &f.inactive, &f.persistent]);
        for (i, family) in families.enumerate() {
            family.header(format, out);
            for series in backends() {
                let value = series.values.get(i).copied().unwrap_or_default();
                out.sample(family.name(), &series.labels, value);
            }
        }
        if rates {
            for (i, family) in f.backend_rates.iter().enumerate() {
                family.header(format, out);
                for series in backends() {
                    let value = series.rates.get(i).copied().unwrap_or_default();
                    out.sample(family.name(), &series.labels, value);
                }
            }
        }
        // Aggregated series have no info: their labels are not one server.
        if backends().any(|series| !series.info.is_empty()) {
            f.backend_info.header(format, out);
            for series in backends().filter(|series| !series.info.is_empty()) {
                out.sample(f.backend_info.name(), &series.info, 1);
            }
        }
    }
}
