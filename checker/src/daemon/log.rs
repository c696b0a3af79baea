//! What the loop tells the operator: its passes' changes and failures,
//! the quorum guard, persistent services on quiesced real servers, and
//! probes that timed out while the checker itself was late.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::config::{self, Config, Mode};
use crate::reconcile::quiescent::{self, Quiescent};
use crate::reconcile::{Desired, ManagedOutcome, ManagedTable, Outcome, Reconciler};
use crate::state::Shared;

/// The least time between two warnings about probes that failed by the
/// checker's own fault.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Warns (or sets the sysctl, as configured) when persistent services
/// would keep their clients on quiesced real servers.
pub(super) fn check_quiescent<T: ManagedTable>(
    sysctl: &Path,
    dry_run: bool,
    config: &Config,
    reconciler: &mut Reconciler<T>,
) {
    // Managed mode makes the services as configured; in weights mode the
    // table says which are persistent.
    let persistent: Vec<ipvs::ServiceKey> = config
        .services
        .iter()
        .filter(|s| match config.mode {
            Mode::Managed => s.is_persistent(),
            Mode::Weights => matches!(reconciler.table_mut().service(&s.key), Ok(Some(c))
                if c.flags.contains(ipvs::ServiceFlags::PERSISTENT)),
        })
        .map(|s| s.key)
        .collect();
    let set = config.set_expire_quiescent_template && !dry_run;
    match quiescent::check(sysctl, &persistent, set) {
        Ok(Quiescent::Off(services)) => warn!(
            services = %quiescent::names(&services),
            "net.ipv4.vs.expire_quiescent_template is 0: clients of these persistent services stay on a real server at weight 0 until their templates expire; set it to 1 (or set_expire_quiescent_template: true)"
        ),
        Ok(Quiescent::SetOn(services)) => info!(
            services = %quiescent::names(&services),
            "net.ipv4.vs.expire_quiescent_template set to 1 for the persistent services"
        ),
        Ok(Quiescent::AlreadyOn | Quiescent::NoPersistentService) => {}
        Err(e) => warn!("persistent services: {e}"),
    }
}

/// Logs and counts a managed pass; a dry run announces each change once.
pub(super) fn report_managed(
    outcome: &ManagedOutcome,
    state: &Shared,
    dry_run: bool,
    announced: &mut HashSet<String>,
) {
    if !dry_run {
        state
            .lock()
            .record_managed(&outcome.actions, outcome.errors.len());
    }
    for action in &outcome.actions {
        let text = action.to_string();
        if dry_run && !announced.insert(text.clone()) {
            continue;
        }
        info!(action = action.name(), dry_run, "{text}");
    }
    for service in &outcome.kept {
        let text = format!("kept {service}");
        if announced.insert(text) {
            warn!(service = %service, "service left the config but holds real servers this checker did not add: only its own were deleted, the service stays");
        }
    }
    for (service, destination, active) in &outcome.timed_out {
        warn!(service = %service, real_server = %destination, active_connections = active, "drain_timeout passed: the real server that left the config is deleted with its connections");
    }
    for e in &outcome.errors {
        error!("managed mode: {e}");
    }
}

/// Logs a change of the quorum guard.
pub(super) fn log_guard(service: &config::VirtualService, want: &Desired) {
    let quorum = service.quorum.map_or(0, |q| q.min_up);
    match (want.guard_active, want.sorry) {
        (true, Some((sorry, _))) => {
            warn!(service = %service.key, min_up = quorum, sorry_server = %sorry.key, "quorum guard active: fewer real servers up than the quorum, switching to the sorry server")
        }
        (true, None) => {
            warn!(service = %service.key, min_up = quorum, "quorum guard active: fewer real servers up than the quorum, failing open (no failed real server is set to 0)")
        }
        (false, Some((sorry, _))) => {
            info!(service = %service.key, min_up = quorum, sorry_server = %sorry.key, "quorum guard released: the quorum is back, the sorry server is taken out")
        }
        (false, None) => {
            info!(service = %service.key, min_up = quorum, "quorum guard released: the quorum is back")
        }
    }
}

/// Logs the weights one reconciliation set, and what it could not.
pub(super) fn log_outcome(
    service: &config::VirtualService,
    want: &Desired,
    outcome: &Outcome,
    dry_run: bool,
) {
    for c in &outcome.changes {
        if c.out_of_band {
            warn!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, "weight was changed out of band; set back");
        } else if want.sorry.is_some_and(|(s, _)| s.key == c.destination) {
            warn!(service = %c.service, sorry_server = %c.destination, from = c.from, to = c.to, guard_active = want.guard_active, "quorum guard: {}", if want.guard_active { "too few real servers up, the sorry server takes the traffic" } else { "quorum is back, the sorry server is taken out" });
        } else if want.guard_active && want.sorry.is_none() {
            warn!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, "quorum guard: too few real servers up, keeping the failed ones at their weight");
        } else {
            info!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, dry_run, "weight set");
        }
    }
    for d in &outcome.missing {
        warn!(service = %service.key, real_server = %d, "real server is not in the IPVS table");
    }
    for (d, e) in &outcome.errors {
        error!(service = %service.key, real_server = %d, "cannot set weight: {e}");
    }
}

/// Probes whose timeout was the checker's lateness, since the last
/// warning about them.
#[derive(Debug, Default)]
pub(super) struct LateProbes {
    count: u64,
    worst: Duration,
    warned: Option<tokio::time::Instant>,
}

impl LateProbes {
    /// One more, `lag` behind; warns at most once per [`WARN_EVERY`]
    /// with what came since the last warning.
    pub(super) fn note(&mut self, lag: Duration, now: tokio::time::Instant) {
        self.count += 1;
        self.worst = self.worst.max(lag);
        if !due(&mut self.warned, now) {
            return;
        }
        warn!(
            late_probes = self.count,
            worst_lag = ?self.worst,
            "the checker is short of CPU: probes timed out while the server had answered or still had time, their thread being behind; such a timeout is the checker's, not the server's, so those real servers keep their health (ipvs_checker_probes_late_total counts them; a server silent for a whole timeout, a refused connection or a wrong answer still counts as a failure)"
        );
        self.count = 0;
        self.worst = Duration::ZERO;
    }
}

/// Probes that could not make their socket for want of the checker's own
/// resources, since the last warning about them.
#[derive(Debug, Default)]
pub(super) struct ExhaustedProbes {
    count: u64,
    warned: Option<tokio::time::Instant>,
}

impl ExhaustedProbes {
    /// One more, failed with `errno`; warns at most once per
    /// [`WARN_EVERY`] with the count since the last warning.
    pub(super) fn note(&mut self, errno: i32, now: tokio::time::Instant) {
        self.count += 1;
        if !due(&mut self.warned, now) {
            return;
        }
        warn!(
            probes = self.count,
            error = %std::io::Error::from_raw_os_error(errno),
            "the checker ran out of its own resources: probes could not make their socket; the real servers keep their health (ipvs_checker_probes_resource_exhausted_total counts them; raise the open-files limit or lower --checker.max-concurrency)"
        );
        self.count = 0;
    }
}

/// Whether a warning last given at `warned` may be given again at `now`;
/// if so, `now` becomes the last.
fn due(warned: &mut Option<tokio::time::Instant>, now: tokio::time::Instant) -> bool {
    if warned.is_some_and(|at| now < at + WARN_EVERY) {
        return false;
    }
    *warned = Some(now);
    true
}
