//! Several checks of one real server (`checks:`): a [`Prober`] each, run
//! together under the same timeout, the real server passing when every
//! one passes. Each check's own result is kept ([`SetOutcome::each`]) so
//! that metrics and the status page say which one failed and why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use smallvec::{smallvec, SmallVec};

use super::{exec, Outcome, Phases, ProbeError, Prober, Target};
use crate::config::{Check, CheckTarget};

/// The probers of one real server's checks, in config order.
#[derive(Debug)]
pub struct ProberSet {
    probers: Vec<Prober>,
}

/// Each check's failure reason (`None`: it passed), in config order; a
/// single check's, as most real servers have, without an allocation for
/// every probe.
pub type EachCheck = SmallVec<[Option<&'static str>; 1]>;

/// One probe of every check of a real server.
#[derive(Debug)]
pub struct SetOutcome {
    /// What the real server's health follows: the success of the first
    /// check (which alone says anything about a TLS certificate) when all
    /// passed, else the first check's failure, named by its place when
    /// there are several ([`ProbeError::Check`]).
    pub outcome: Outcome,
    /// Each check's failure reason (`None`: it passed), in config order.
    pub each: EachCheck,
}

impl ProberSet {
    /// The probers of `checks` of a real server of `service`, binding to
    /// `source` if set.
    pub fn new(
        checks: &[CheckTarget],
        source: Option<std::net::IpAddr>,
        service: &ipvs::ServiceKey,
    ) -> Self {
        let service = exec::Virtual::of(service);
        let probers = checks
            .iter()
            .map(|c| {
                Prober::new(
                    c.check.clone(),
                    Target {
                        addr: c.target,
                        source,
                        through: c.through,
                    },
                )
                .of_service(&service)
            })
            .collect();
        ProberSet { probers }
    }

    /// Whether a probe starting at `now` would make a full TLS handshake
    /// in any of the checks.
    pub fn full_handshake_due(&self, now: Instant) -> bool {
        self.probers.iter().any(|p| p.full_handshake_due(now))
    }

    /// [`Prober::connect_ahead`] of a single `https` check whose full
    /// handshake is due: `Some` when the probe ended there, failed. With
    /// several checks nothing is done ahead (the probe waits for its turn
    /// before it connects), as one check's early failure would say nothing
    /// of the others'.
    pub async fn connect_ahead(&mut self, timeout: Duration) -> Option<SetOutcome> {
        let outcome = self.only()?.connect_ahead(timeout).await?;
        Some(SetOutcome::of_one(outcome))
    }

    /// [`Prober::refuses`] of a single check: `Some` when its target
    /// refused the connection. With several checks nothing is asked, as
    /// for [`ProberSet::connect_ahead`].
    pub async fn refuses(&mut self, timeout: Duration) -> Option<SetOutcome> {
        let outcome = self.only()?.refuses(timeout).await?;
        Some(SetOutcome::of_one(outcome))
    }

    /// The prober of its only check, if it has one check only.
    fn only(&mut self) -> Option<&mut Prober> {
        match self.probers.as_mut_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Whether a probe runs a program (an `exec` check among them).
    pub fn runs_program(&self) -> bool {
        self.probers.iter().any(Prober::runs_program)
    }

    /// Runs every check once, together, each bounded by `timeout`: the
    /// whole probe takes at most `timeout`, as a single check does.
    pub async fn probe(&mut self, timeout: Duration) -> SetOutcome {
        let now = Instant::now();
        if let Some(one) = self.only() {
            // The usual case, without the join's allocations.
            return SetOutcome::of_one(one.probe_at(timeout, now).await);
        }
        let outcomes = join_all(self.probers.iter_mut().map(|p| p.probe_at(timeout, now))).await;
        combine(outcomes, self.probers.iter().map(Prober::check))
    }
}

impl SetOutcome {
    /// The outcome of a single check's.
    fn of_one(outcome: Outcome) -> Self {
        let each = smallvec![outcome.result.as_ref().err().map(ProbeError::reason)];
        SetOutcome { outcome, each }
    }
}

/// One outcome of several checks' (in config order): the phases' longest
/// durations, which are what the real server made the probe wait.
fn combine<'a>(outcomes: Vec<Outcome>, checks: impl Iterator<Item = &'a Arc<Check>>) -> SetOutcome {
    let each = outcomes
        .iter()
        .map(|o| o.result.as_ref().err().map(ProbeError::reason))
        .collect();
    let mut phases = Phases::new();
    let mut result = None;
    let mut timed_out_on = None;
    let mut program_waited = None;
    let mut first_success = None;
    for (index, (outcome, check)) in outcomes.into_iter().zip(checks).enumerate() {
        phases.longest(&outcome.phases);
        program_waited = program_waited.max(outcome.program_waited);
        match outcome.result {
            Ok(success) => {
                let weight = success.weight;
                let first = first_success.get_or_insert(success);
                first.weight = first.weight.or(weight);
            }
            Err(e) if result.is_none() => {
                timed_out_on = outcome.timed_out_on;
                result = Some(Err(ProbeError::Check {
                    number: index + 1,
                    kind: check.kind.name(),
                    source: Box::new(e),
                }));
            }
            Err(_) => {}
        }
    }
    let result = result.unwrap_or_else(|| Ok(first_success.unwrap_or_default()));
    SetOutcome {
        outcome: Outcome {
            result,
            phases,
            timed_out_on,
            program_waited,
        },
        each,
    }
}
