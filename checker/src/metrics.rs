//! The checker's metrics: a prometheus-client [`Collector`] that encodes
//! the daemon's [`State`] on each scrape, so the metrics are read from the
//! same place the weights are decided from.
//!
//! Labels are the exporter's (and node_exporter's), from the one place
//! both daemons take them ([`ipvs_common::labels`]), so series join with
//! `ipvs_backend_weight` and friends.
//!
//! `ipvs_checker_probe_duration_seconds` has a `phase` label, as
//! blackbox_exporter's `probe_http_duration_seconds`: `connect` (TCP),
//! `tls` (the handshake, HTTPS only) and `response` (request sent to the
//! last byte read). A probe cut off by its timeout counts the phase it
//! was in up to the timeout; the whole probe is the sum of its phases.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipvs::ServiceKey;
use ipvs_common::LabelSet;
use ipvs_web::process::ProcessKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::health::Health;
use crate::prober::Phase;
use crate::state::{Backend, Shared, State};

/// The extra labels of one sample (its phase, its reason), after the real
/// server's.
type Labels = Vec<(&'static str, String)>;

/// The service labels, as the exporter writes them ([`ipvs_common::labels`]).
pub fn service_labels(key: &ServiceKey) -> LabelSet {
    LabelSet::service(key)
}

/// The real server labels: the service's, then `remote_address` and
/// `remote_port`.
pub fn backend_labels(service: &LabelSet, remote: SocketAddr) -> LabelSet {
    service.with_real_server(remote)
}

/// A registry holding the checker's collector over `state`.
pub fn registry(state: Shared) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StateCollector(state)));
    registry.register_collector(Box::new(ProcessCollector));
    registry
}

/// A registry of the daemon's own series only: no build or process ones.
#[cfg(test)]
pub(crate) fn state_registry(state: Shared) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StateCollector(state)));
    registry
}

/// `ipvs_checker_build_info` and the standard `process_*` metrics
/// ([`ipvs_web::process`], shared with the exporter).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // A gauge of 1 rather than prometheus-client's Info: the text
        // format 0.0.4 that `text_format` derives has no info type.
        let build = ipvs_web::build_info!();
        ConstGauge::new(1).encode(
            encoder
                .encode_descriptor(
                    "ipvs_checker_build_info",
                    "The checker's version, the git revision and the rustc version it was built from.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_family(&build.labels().as_slice())?,
        )?;
        let stats = match ipvs_web::process::ProcessStats::read() {
            Ok(stats) => stats,
            Err(error) => {
                tracing::debug!(%error, "cannot read /proc/self: no process_* metrics");
                return Ok(());
            }
        };
        for sample in stats.samples() {
            let (name, kind) = match sample.kind {
                ProcessKind::Counter => {
                    (sample.name.trim_end_matches("_total"), MetricType::Counter)
                }
                ProcessKind::Gauge => (sample.name, MetricType::Gauge),
            };
            let descriptor = encoder.encode_descriptor(name, sample.help, None, kind)?;
            match sample.kind {
                ProcessKind::Counter => ConstCounter::new(sample.value).encode(descriptor)?,
                ProcessKind::Gauge => ConstGauge::new(sample.value).encode(descriptor)?,
            }
        }
        Ok(())
    }
}

/// Encodes a [`Shared`] state on each scrape.
#[derive(Debug)]
struct StateCollector(Shared);

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One metric family over every real server: `value` gives the sample of
/// one, or `None` to leave it out.
fn per_backend<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    state: &State,
    (name, help, unit, kind): (&str, &str, Option<&Unit>, MetricType),
    value: impl Fn(&Backend) -> Vec<(Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, kind)?;
    for service in state.services() {
        let service_labels = service_labels(&service.key);
        for backend in &service.backends {
            let labels = backend_labels(&service_labels, backend.key.addr);
            for (extra, metric) in value(backend) {
                let mut all = labels.clone();
                all.extend(extra);
                metric.encode(family.encode_family(&all.as_slice())?)?;
            }
        }
    }
    Ok(())
}

/// `ipvs_checker_backend_drained`: 1 while drained (by the admin API,
/// `out_of_band` or a maintenance file: `/status` says which), else 0.
fn drained(encoder: &mut DescriptorEncoder<'_>, state: &State) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "ipvs_checker_backend_drained",
        "Whether the real server is drained (1): held at weight 0 while still probed, by the admin API, an out-of-band weight 0 or a maintenance file.",
        None,
        MetricType::Gauge,
    )?;
    for service in state.services() {
        let service_labels = service_labels(&service.key);
        for backend in &service.backends {
            let labels = backend_labels(&service_labels, backend.key.addr);
            let drained = state.drain(&service.key, &backend.key).is_some();
            ConstGauge::new(i64::from(drained))
                .encode(family.encode_family(&labels.as_slice())?)?;
        }
    }
    Ok(())
}

fn gauge(v: i64) -> Vec<(Labels, ConstGauge<i64>)> {
    vec![(Vec::new(), ConstGauge::new(v))]
}

/// Each check of `b` that has a last result: its `check` (place, from 1)
/// and `type` labels, and its failure reason (`None`: passed).
fn checks(b: &Backend) -> impl Iterator<Item = (Labels, Option<&'static str>)> + '_ {
    b.check_kinds
        .iter()
        .zip(&b.check_failures)
        .enumerate()
        .map(|(i, (kind, failure))| {
            let labels = vec![("check", (i + 1).to_string()), ("type", (*kind).to_owned())];
            (labels, *failure)
        })
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = self.0.lock();
        let state = &*state;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_backend_up",
                "Whether the real server is healthy (1) or failing (0) after rise/fall; absent until it has enough results.",
                None,
                MetricType::Gauge,
            ),
            |b| match b.health.health() {
                Health::Unknown => Vec::new(),
                Health::Up => gauge(1),
                Health::Down => gauge(0),
            },
        )?;
        drained(&mut encoder, state)?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_probe_success",
                "Whether the last probe of the real server succeeded.",
                None,
                MetricType::Gauge,
            ),
            |b| b.last_probe.map(|ok| gauge(ok.into())).unwrap_or_default(),
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_probe_duration",
                "Duration of the probes' phases: connect (TCP), tls (handshake, over TLS only), response (request to last byte read, or the program's run); with several checks, each phase's longest.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            ),
            |b| {
                Phase::ALL
                    .into_iter()
                    .zip(&b.durations)
                    // A phase no probe went through yet (tls of a plain
                    // HTTP check) has no histogram.
                    .filter_map(|(phase, h)| Some((phase, h.as_ref()?)))
                    .map(|(phase, h)| (vec![("phase", phase.as_str().to_owned())], h.clone()))
                    .collect()
            },
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_transitions",
                "Health changes of the real server (from unknown included).",
                None,
                MetricType::Counter,
            ),
            |b| vec![(Vec::new(), ConstCounter::new(b.transitions))],
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_probes_late",
                "Probes that timed out while the checker itself was late (its probe thread more than a tenth of the timeout behind): neither a pass nor a failure, the real server's health is unchanged.",
                None,
                MetricType::Counter,
            ),
            |b| vec![(Vec::new(), ConstCounter::new(b.late_probes))],
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_probes_resource_exhausted",
                "Probes that could not make their socket because the checker itself ran out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): neither a pass nor a failure, the real server's health is unchanged.",
                None,
                MetricType::Counter,
            ),
            |b| vec![(Vec::new(), ConstCounter::new(b.exhausted_probes))],
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_weight_changes",
                "Weights the checker set, by cause: health, quorum_guard (a failed server put back), out_of_band (a change made by someone else undone). Nothing is counted in a dry run.",
                None,
                MetricType::Counter,
            ),
            |b| {
                [
                    ("health", b.changes_health),
                    ("quorum_guard", b.changes_quorum_guard),
                    ("out_of_band", b.changes_out_of_band),
                ]
                .into_iter()
                .map(|(cause, n)| (vec![("cause", cause.to_owned())], ConstCounter::new(n)))
                .collect()
            },
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_backend_weight_desired",
                "The weight the checker wants the real server to have; absent while its health is unknown.",
                None,
                MetricType::Gauge,
            ),
            |b| {
                b.desired_weight
                    .map(|w| gauge(i64::from(w)))
                    .unwrap_or_default()
            },
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_backend_weight_configured",
                "The weight the real server gets while healthy, from the configuration.",
                None,
                MetricType::Gauge,
            ),
            |b| gauge(i64::from(b.configured_weight)),
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_tls_cert_not_after_timestamp",
                "Expiry of the real server's leaf certificate, from its last successful HTTPS probe.",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            ),
            |b| b.cert_not_after.map(gauge).unwrap_or_default(),
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_last_failure_info",
                "The reason of the real server's last failed probe, as a label: timeout, connect, tls_unknown_ca, tls_bad_name, tls_expired, tls, http, status, body, send, expect, exec, exit, dns, dns_rcode, dns_answer, icmp (with several checks, the first failing one's).",
                None,
                MetricType::Gauge,
            ),
            |b| {
                b.last_error
                    .as_ref()
                    .map(|e| {
                        vec![(
                            vec![("reason", e.reason.to_owned())],
                            ConstGauge::new(1i64),
                        )]
                    })
                    .unwrap_or_default()
            },
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_check_success",
                "Whether each check of the real server passed in its last probe, by its place in checks: (check, from 1) and type.",
                None,
                MetricType::Gauge,
            ),
            |b| {
                checks(b)
                    .map(|(labels, failure)| (labels, ConstGauge::new(i64::from(failure.is_none()))))
                    .collect()
            },
        )?;
        per_backend(
            &mut encoder,
            state,
            (
                "ipvs_checker_check_last_failure_info",
                "The reason each failing check of the real server failed in its last probe, as a label; absent for a check that passed.",
                None,
                MetricType::Gauge,
            ),
            |b| {
                checks(b)
                    .filter_map(|(mut labels, failure)| {
                        labels.push(("reason", failure?.to_owned()));
                        Some((labels, ConstGauge::new(1i64)))
                    })
                    .collect()
            },
        )?;

        let mut family = encoder.encode_descriptor(
            "ipvs_checker_quorum_guard_active",
            "Whether fewer of the service's real servers are up than its quorum asks, so the guard acts: it keeps the failed ones at their weight (fail open) or puts the sorry server in.",
            None,
            MetricType::Gauge,
        )?;
        for service in state.services() {
            let labels = service_labels(&service.key);
            ConstGauge::new(i64::from(service.guard_active))
                .encode(family.encode_family(&labels.as_slice())?)?;
        }

        let mut family = encoder.encode_descriptor(
            "ipvs_checker_sorry_server_weight",
            "The weight of the service's sorry server in the table at the last reconciliation: its configured weight while the quorum guard is active, else 0 (or absent: managed mode removes it).",
            None,
            MetricType::Gauge,
        )?;
        for service in state.services() {
            let (Some(sorry), Some(weight)) = (
                service.quorum.and_then(|q| q.sorry_server),
                service.sorry_weight,
            ) else {
                continue;
            };
            let labels = backend_labels(&service_labels(&service.key), sorry.key.addr);
            ConstGauge::new(i64::from(weight)).encode(family.encode_family(&labels.as_slice())?)?;
        }

        let mut family = encoder.encode_descriptor(
            "ipvs_checker_managed_changes",
            "Changes managed mode made to the IPVS table, by action: create_service, update_service, delete_service, create_real_server, update_real_server, delete_real_server.",
            None,
            MetricType::Counter,
        )?;
        for (action, n) in &state.managed_actions {
            ConstCounter::new(*n).encode(family.encode_family(&[("action", *action)])?)?;
        }
        ConstCounter::new(state.managed_errors).encode(encoder.encode_descriptor(
            "ipvs_checker_managed_errors",
            "Requests of managed mode that failed (create, update, delete, state file).",
            None,
            MetricType::Counter,
        )?)?;

        let hooks = state.hooks.snapshot();
        for (name, help, value) in [
            (
                "ipvs_checker_hooks_run",
                "Notify hooks started, by kind (exec, webhook) and event; a webhook's retries are one run.",
                (|c| c.run) as fn(&crate::notify::counts::Counts) -> u64,
            ),
            (
                "ipvs_checker_hooks_failed",
                "Notify hooks that failed (an exit code but 0, a signal, a webhook not accepted after its retries), by kind and event.",
                |c| c.failed,
            ),
            (
                "ipvs_checker_hooks_timed_out",
                "Notify hooks that ran past their timeout (an exec hook is killed with its process group), by kind and event.",
                |c| c.timed_out,
            ),
            (
                "ipvs_checker_hooks_dropped",
                "Notify hooks never run because their queue was full, by kind and event.",
                |c| c.dropped,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for ((kind, event), counts) in &hooks {
                ConstCounter::new(value(counts)).encode(
                    family.encode_family(&[("kind", kind.as_str()), ("event", event.as_str())])?,
                )?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "ipvs_checker_netlink_errors",
            "Failed IPVS netlink requests: op=read (a service's real servers), op=set_weight.",
            None,
            MetricType::Counter,
        )?;
        for (op, n) in [
            ("read", state.netlink_read_errors),
            ("set_weight", state.netlink_set_errors),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&[("op", op)])?)?;
        }

        if let Some(limit) = state.probe_concurrency_limit() {
            ConstGauge::new(limit as i64).encode(encoder.encode_descriptor(
                "ipvs_checker_probe_concurrency_limit",
                "Probes allowed in flight at once, over every probe thread: --checker.max-concurrency, less while probes start late (the checker short of CPU).",
                None,
                MetricType::Gauge,
            )?)?;
        }
        ConstGauge::new(i64::from(state.reload_successful)).encode(encoder.encode_descriptor(
            "ipvs_checker_config_last_reload_successful",
            "Whether the last configuration reload succeeded.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(unix_seconds(state.reload_success_time)).encode(
            encoder.encode_descriptor(
                "ipvs_checker_config_last_reload_success_timestamp",
                "When the configuration was last loaded successfully.",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?,
        )?;
        Ok(())
    }
}
