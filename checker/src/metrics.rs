//! The checker's metrics: the daemon's [`State`] written on each scrape
//! through the exposition writer both daemons share
//! ([`ipvs_common::exposition`]), in the format the scraper asked for, so
//! the metrics are read from the same place the weights are decided from.
//!
//! Labels are the exporter's (and node_exporter's), from the one place
//! both daemons take them ([`ipvs_common::labels`]), so series join with
//! `ipvs_backend_weight` and friends. Every family is described (`# HELP`,
//! `# TYPE`) even while it has no series, so a scrape names them all (but
//! `ipvs_checker_probe_concurrency_limit` and
//! `ipvs_checker_program_concurrency_limit`, there only while there is a
//! limit).
//!
//! `ipvs_checker_probe_duration_seconds` has a `phase` label, as
//! blackbox_exporter's `probe_http_duration_seconds`: `connect` (TCP),
//! `tls` (the handshake, HTTPS only) and `response` (request sent to the
//! last byte read). A probe cut off by its timeout counts the phase it
//! was in up to the timeout; the whole probe is the sum of its phases.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use ipvs_common::exposition::{into_text, Family, Format, Kind, LabelSet, Out};
use ipvs_web::process::{BuildInfo, ProcessStats};

use crate::health::Health;
use crate::prober::Phase;
use crate::state::{Backend, ServiceState, Shared, State};

/// The exposition of `state` in `format`, with the checker's build and
/// its process as they are now, written from a copy of the state (see
/// [`Shared::snapshot`]).
pub fn exposition(state: &Shared, format: Format) -> String {
    into_text(|sink| write(state, format, sink))
}

/// [`exposition`] written to `sink` as it is encoded.
pub fn write(state: &Shared, format: Format, sink: &mut dyn Write) -> std::io::Result<()> {
    let process = match ProcessStats::read() {
        Ok(stats) => Some(stats),
        Err(error) => {
            tracing::debug!(%error, "cannot read /proc/self: no process_* metrics");
            None
        }
    };
    write_to(
        &state.snapshot(),
        &ipvs_web::build_info!(),
        process.as_ref(),
        format,
        sink,
    )
}

/// The exposition of `state` in `format`: the state's families, then
/// `ipvs_checker_build_info` of `build` and the `process_*` families of
/// `process`.
pub fn encode(
    state: &State,
    build: &BuildInfo,
    process: Option<&ProcessStats>,
    format: Format,
) -> String {
    into_text(|sink| write_to(state, build, process, format, sink))
}

/// [`encode`] written to `sink`.
fn write_to(
    state: &State,
    build: &BuildInfo,
    process: Option<&ProcessStats>,
    format: Format,
    sink: &mut dyn Write,
) -> std::io::Result<()> {
    let mut out = Out::new(sink);
    write_families(state, format, &mut out);
    let mut family = Family::new(
        "ipvs_checker_build_info",
        Kind::Gauge,
        "The checker's version, the git revision and the rustc version it was built from.",
    );
    family.push(&build.label_set(), 1);
    family.encode(format, &mut out);
    if let Some(process) = process {
        process.encode(format, &mut out);
    }
    out.finish(format)
}

/// A real server with its labels: the service's, then `remote_address`
/// and `remote_port`.
struct Labelled<'s> {
    service: &'s ServiceState,
    backend: &'s Backend,
    labels: LabelSet,
}

/// Every real server of `state`, labelled once for all the families.
fn labelled(state: &State) -> Vec<Labelled<'_>> {
    let mut all = Vec::new();
    for service in state.services() {
        let service_labels = LabelSet::new().with_service(&service.key);
        for backend in &service.backends {
            all.push(Labelled {
                service,
                backend,
                labels: service_labels.with_real_server(backend.key.addr),
            });
        }
    }
    all
}

/// A family over every real server: `samples` adds those of one (none,
/// one, or one per extra label).
fn per_backend(
    out: &mut Out<'_>,
    format: Format,
    backends: &[Labelled<'_>],
    family: Family,
    samples: impl Fn(&Backend, &LabelSet, &mut Family),
) {
    let mut family = family.described_when_empty();
    for b in backends {
        samples(b.backend, &b.labels, &mut family);
        family.spill_into(format, out);
    }
    family.encode(format, out);
}

/// A described family (see the module docs).
fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family::new(name, kind, help).described_when_empty()
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Each check of `b` that has a last result: its `check` (place, from 1)
/// and `type` labels after `labels`, and its failure reason (`None`:
/// passed).
fn checks<'b>(
    b: &'b Backend,
    labels: &'b LabelSet,
) -> impl Iterator<Item = (LabelSet, Option<&'static str>)> + 'b {
    b.check_kinds
        .iter()
        .zip(&b.check_failures)
        .enumerate()
        .map(|(i, (kind, failure))| {
            let mut labels = labels.with("check", i + 1);
            labels.add_escaped("type", kind);
            (labels, *failure)
        })
}

/// The state's families, in exposition order, written to `out` as they
/// are made.
fn write_families(state: &State, format: Format, out: &mut Out<'_>) {
    use Kind::{Counter, Gauge, Histogram};
    let backends = labelled(state);
    let backends = &backends[..];
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_backend_up",
                Gauge,
                "Whether the real server is healthy (1) or failing (0) after rise/fall; absent until it has enough results.",
            ),
            |b, labels, family| match b.health.health() {
                Health::Unknown => {}
                Health::Up => family.push(labels, 1),
                Health::Down => family.push(labels, 0),
            },
        );
    {
        let mut family = family(
                "ipvs_checker_backend_drained",
                Gauge,
                "Whether the real server is drained (1): held at weight 0 while still probed, by the admin API, an out-of-band weight 0 or a maintenance file.",
            );
        for b in backends {
            let drained = state.drain(&b.service.key, &b.backend.key).is_some();
            family.push(&b.labels, u8::from(drained));
        }
        family.encode(format, out);
    }
    per_backend(
        out,
        format,
        backends,
        Family::new(
            "ipvs_checker_probe_success",
            Gauge,
            "Whether the last probe of the real server succeeded.",
        ),
        |b, labels, family| {
            if let Some(ok) = b.last_probe {
                family.push(labels, u8::from(ok));
            }
        },
    );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_probe_duration_seconds",
                Histogram,
                "Duration of the probes' phases: connect (TCP), tls (handshake, over TLS only), response (request to last byte read, or the program's run); with several checks, each phase's longest.",
            )
            .with_unit("seconds"),
            |b, labels, family| {
                // A phase no probe went through yet (tls of a plain HTTP
                // check) has no histogram.
                for (phase, histogram) in Phase::ALL.into_iter().zip(&b.durations) {
                    if let Some(histogram) = histogram {
                        family.push_histogram(&labels.with("phase", phase.as_str()), histogram);
                    }
                }
            },
        );
    per_backend(
        out,
        format,
        backends,
        Family::new(
            "ipvs_checker_transitions_total",
            Counter,
            "Health changes of the real server (from unknown included).",
        ),
        |b, labels, family| family.push(labels, b.transitions),
    );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_probes_late_total",
                Counter,
                "Probes whose timeout was the checker's own lateness, not the server's (the server had answered or still had time, by its socket; where that cannot tell, a probe thread more than a tenth of the timeout behind): neither a pass nor a failure, the real server's health is unchanged.",
            ),
            |b, labels, family| family.push(labels, b.late_probes),
        );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_probes_resource_exhausted_total",
                Counter,
                "Probes that could not make their socket because the checker itself ran out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM; ENOSPC, the epoll watch limit fs.epoll.max_user_watches): neither a pass nor a failure, the real server's health is unchanged.",
            ),
            |b, labels, family| family.push(labels, b.exhausted_probes),
        );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_weight_changes_total",
                Counter,
                "Weights the checker set, by cause: health, quorum_guard (a failed server put back), out_of_band (a change made by someone else undone). Nothing is counted in a dry run.",
            ),
            |b, labels, family| {
                for (cause, n) in [
                    ("health", b.changes_health),
                    ("quorum_guard", b.changes_quorum_guard),
                    ("out_of_band", b.changes_out_of_band),
                ] {
                    family.push(&labels.with("cause", cause), n);
                }
            },
        );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_backend_weight_desired",
                Gauge,
                "The weight the checker wants the real server to have; absent while its health is unknown.",
            ),
            |b, labels, family| {
                if let Some(weight) = b.desired_weight {
                    family.push(labels, weight);
                }
            },
        );
    per_backend(
        out,
        format,
        backends,
        Family::new(
            "ipvs_checker_backend_weight_configured",
            Gauge,
            "The weight the real server gets while healthy, from the configuration.",
        ),
        |b, labels, family| family.push(labels, b.configured_weight),
    );
    per_backend(
        out,
        format,
        backends,
        Family::new(
            "ipvs_checker_tls_cert_not_after_timestamp_seconds",
            Gauge,
            "Expiry of the real server's leaf certificate, from its last successful HTTPS probe.",
        )
        .with_unit("seconds"),
        |b, labels, family| {
            if let Some(not_after) = b.cert_not_after {
                family.push(labels, not_after);
            }
        },
    );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_last_failure_info",
                Gauge,
                "The reason of the real server's last failed probe, as a label: timeout, connect, tls_unknown_ca, tls_bad_name, tls_expired, tls, http, status, body, body_md5, send, expect, exec, exit, dns, dns_rcode, dns_answer, icmp (with several checks, the first failing one's).",
            ),
            |b, labels, family| {
                if let Some(error) = &b.last_error {
                    family.push(&labels.with("reason", error.reason), 1);
                }
            },
        );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_check_success",
                Gauge,
                "Whether each check of the real server passed in its last probe, by its place in checks: (check, from 1) and type.",
            ),
            |b, labels, family| {
                for (labels, failure) in checks(b, labels) {
                    family.push(&labels, u8::from(failure.is_none()));
                }
            },
        );
    per_backend(
            out,
            format,
            backends,
            Family::new(
                "ipvs_checker_check_last_failure_info",
                Gauge,
                "The reason each failing check of the real server failed in its last probe, as a label; absent for a check that passed.",
            ),
            |b, labels, family| {
                for (labels, failure) in checks(b, labels) {
                    if let Some(reason) = failure {
                        family.push(&labels.with("reason", reason), 1);
                    }
                }
            },
        );
    for family in service_families(state) {
        family.encode(format, out);
    }
    for family in daemon_families(state) {
        family.encode(format, out);
    }
}

/// The families of each service: its quorum guard, sorry server and
/// hurries.
fn service_families(state: &State) -> [Family; 3] {
    let mut guard = family(
        "ipvs_checker_quorum_guard_active",
        Kind::Gauge,
        "Whether fewer of the service's real servers are up than its quorum asks, so the guard acts: it keeps the failed ones at their weight (fail open) or puts the sorry server in.",
    );
    let mut sorry = family(
        "ipvs_checker_sorry_server_weight",
        Kind::Gauge,
        "The weight of the service's sorry server in the table at the last reconciliation: its configured weight while the quorum guard is active, else 0 (or absent: managed mode removes it).",
    );
    let mut hurries = family(
        "ipvs_checker_hurries_total",
        Kind::Counter,
        "Times the service's real servers were checked ahead of their interval, by kind: failing (two began to fail on the server's word within an interval: the others were asked at once whether they refuse connections), recovered (one came back: the failed ones were probed at once). At most one of each kind per interval.",
    );
    for service in state.services() {
        let labels = LabelSet::new().with_service(&service.key);
        guard.push(&labels, u8::from(service.guard_active));
        hurries.push(&labels.with("kind", "failing"), service.hurries.failing);
        hurries.push(&labels.with("kind", "recovered"), service.hurries.recovered);
        if let (Some(server), Some(weight)) = (
            service.quorum.and_then(|q| q.sorry_server),
            service.sorry_weight,
        ) {
            sorry.push(&labels.with_real_server(server.key.addr), weight);
        }
    }
    [guard, sorry, hurries]
}

/// The families of the daemon as a whole: managed mode, hooks, netlink,
/// concurrency and reloads.
fn daemon_families(state: &State) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let mut families = Vec::new();
    let mut managed = family(
        "ipvs_checker_managed_changes_total",
        Counter,
        "Changes managed mode made to the IPVS table, by action: create_service, update_service, delete_service, create_real_server, update_real_server, delete_real_server.",
    );
    for (action, n) in &state.managed_actions {
        managed.push(&LabelSet::new().with("action", action), n);
    }
    families.push(managed);
    let mut errors = family(
        "ipvs_checker_managed_errors_total",
        Counter,
        "Requests of managed mode that failed (create, update, delete, state file).",
    );
    errors.push(&LabelSet::new(), state.managed_errors);
    families.push(errors);

    let hooks = state.hooks.snapshot();
    for (name, help, value) in [
        (
            "ipvs_checker_hooks_run_total",
            "Notify hooks started, by kind (exec, webhook) and event; a webhook's retries are one run.",
            (|c| c.run) as fn(&crate::notify::counts::Counts) -> u64,
        ),
        (
            "ipvs_checker_hooks_failed_total",
            "Notify hooks that failed (an exit code but 0, a signal, a webhook not accepted after its retries), by kind and event.",
            |c| c.failed,
        ),
        (
            "ipvs_checker_hooks_timed_out_total",
            "Notify hooks that ran past their timeout (an exec hook is killed with its process group), by kind and event.",
            |c| c.timed_out,
        ),
        (
            "ipvs_checker_hooks_dropped_total",
            "Notify hooks never run because their queue was full, by kind and event.",
            |c| c.dropped,
        ),
    ] {
        let mut family = family(name, Counter, help);
        for ((kind, event), counts) in &hooks {
            let mut labels = LabelSet::new();
            labels.add_escaped("kind", kind.as_str());
            labels.add_escaped("event", event.as_str());
            family.push(&labels, value(counts));
        }
        families.push(family);
    }

    let mut netlink = family(
        "ipvs_checker_netlink_errors_total",
        Counter,
        "Failed IPVS netlink requests: op=read (a service's real servers), op=set_weight.",
    );
    for (op, n) in [
        ("read", state.netlink_read_errors),
        ("set_weight", state.netlink_set_errors),
    ] {
        netlink.push(&LabelSet::new().with("op", op), n);
    }
    families.push(netlink);
    let mut reopens = family(
        "ipvs_checker_netlink_socket_reopens_total",
        Counter,
        "Times the IPVS netlink socket was replaced by a new one after an error left it unusable (a socket error such as ENOBUFS while an answer was read, an answer that could not be decoded): a read is then made again, a weight change is not.",
    );
    reopens.push(&LabelSet::new(), state.netlink_socket_reopens);
    families.push(reopens);

    // Described only while there is a limit, as it was.
    let mut limit = Family::new(
        "ipvs_checker_probe_concurrency_limit",
        Gauge,
        "Probes allowed in flight at once, over every probe thread: --checker.max-concurrency, less while probes start late (the checker short of CPU).",
    );
    if let Some(n) = state.limits.probes() {
        limit.push(&LabelSet::new(), n);
    }
    families.push(limit);
    let mut programs = Family::new(
        "ipvs_checker_program_concurrency_limit",
        Gauge,
        "exec checks' programs allowed to run at once: --checker.max-programs, less while they wait for a CPU (the machine short of CPU).",
    );
    if let Some(n) = state.limits.programs() {
        programs.push(&LabelSet::new(), n);
    }
    families.push(programs);
    let passes = state.table_passes;
    for (name, kind, unit, help, value) in [
        (
            "ipvs_checker_table_passes_total",
            Counter,
            None,
            "Passes comparing every service with the IPVS table (making again, in managed mode, what is missing): a weight changed out of band, a maintenance file and an expired drain are followed at the next.",
            passes.count as f64,
        ),
        (
            "ipvs_checker_table_pass_cpu_seconds_total",
            Counter,
            Some("seconds"),
            "CPU time of the loop's thread in those passes, their netlink requests included.",
            passes.cpu.as_secs_f64(),
        ),
        (
            "ipvs_checker_table_pass_interval_seconds",
            Gauge,
            Some("seconds"),
            "The wait before the next pass: 1 s, or 20 times the CPU time of the last pass when longer, at most 5 s and half of systemd's watchdog ping period.",
            passes.wait.as_secs_f64(),
        ),
    ] {
        let mut family = family(name, kind, help);
        if let Some(unit) = unit {
            family = family.with_unit(unit);
        }
        family.push(&LabelSet::new(), value);
        families.push(family);
    }
    let mut reload = family(
        "ipvs_checker_config_last_reload_successful",
        Gauge,
        "Whether the last configuration reload succeeded.",
    );
    reload.push(&LabelSet::new(), u8::from(state.reload_successful));
    families.push(reload);
    let mut reload_time = family(
        "ipvs_checker_config_last_reload_success_timestamp_seconds",
        Gauge,
        "When the configuration was last loaded successfully.",
    )
    .with_unit("seconds");
    reload_time.push(&LabelSet::new(), unix_seconds(state.reload_success_time));
    families.push(reload_time);
    families
}
