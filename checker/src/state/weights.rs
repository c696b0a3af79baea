//! The weights the recorded health calls for, service by service, and
//! whether the table already has them.

use std::time::Instant;

use ipvs::{DestinationKey, ServiceKey};

use super::State;
use crate::config::VirtualService;
use crate::health::Health;
use crate::reconcile::{desired, weight, Desired, View};

impl State {
    /// The weights `service`'s real servers should have now, from the
    /// health recorded here.
    pub fn desired(&self, service: &VirtualService) -> Desired {
        self.desired_at(service, Instant::now())
    }

    /// The weights `service`'s real servers should have at `now` (slow
    /// starts ramp with it).
    pub fn desired_at(&self, service: &VirtualService, now: Instant) -> Desired {
        desired(service, |d| self.view(&service.key, d), now)
    }

    /// What the weights follow of `service`'s real server `destination`.
    fn view(&self, service: &ServiceKey, destination: &DestinationKey) -> View {
        self.backend(service, destination)
            .map_or(View::from(Health::Unknown), |b| View {
                health: b.health.health(),
                recovered_at: b.recovered_at,
                drained: self.drain(service, destination).map(|d| d.by),
                program_weight: b.program_weight,
            })
    }

    /// Whether the table has the weight `service`'s real server
    /// `destination` should have at `now`, as its service's last
    /// reconciliation left it: then a flip of its health (a first result
    /// after start-up, above all) changes nothing in the table, and needs
    /// no reconciliation of its own; the next pass reads the table
    /// anyway. Never for a service with a quorum, whose every
    /// weight one flip may change.
    pub fn settled(
        &self,
        service: &VirtualService,
        destination: &DestinationKey,
        now: Instant,
    ) -> bool {
        if service.quorum.is_some() {
            return false;
        }
        let Some(&(i, j)) = self.index.get(&(service.key, *destination)) else {
            return false;
        };
        let (Some(rs), Some(backend)) = (
            service.real_servers.get(j),
            self.services.get(i).and_then(|s| s.backends.get(j)),
        ) else {
            return false;
        };
        if rs.key != *destination {
            return false;
        }
        match weight(rs, &self.view(&service.key, destination), false, now) {
            None => true,
            Some(w) => backend.current_weight == Some(w),
        }
    }

    /// Whether a real server of `service` is in its slow start at `now`.
    pub fn ramping(&self, service: &VirtualService, now: Instant) -> bool {
        service.real_servers.iter().any(|rs| {
            let Some(period) = rs.slow_start else {
                return false;
            };
            self.backend(&service.key, &rs.key).is_some_and(|b| {
                b.health.health() == Health::Up
                    && b.recovered_at
                        .is_some_and(|at| now.saturating_duration_since(at) < period)
            })
        })
    }
}
