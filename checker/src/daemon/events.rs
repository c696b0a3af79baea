//! The loop's side of the notify hooks ([`crate::notify`]): every event,
//! wherever it happens (a flip, a drain, the quorum guard, the start and
//! the stop), goes through [`Daemon::notify`], which fills in the weights
//! and picks the hooks (the service's, else the defaults'), then hands it
//! on without waiting.

use ipvs::{DestinationKey, ServiceKey};

use super::*;
use crate::notify::{Event, EventKind};

impl<T: ManagedTable> Daemon<T> {
    /// Tells the hooks that `kind` happened to `real_server` of
    /// `service` (either may be unset), for `reason`. Unless the caller
    /// set them, the old weight is the table's as last read and the new
    /// one the weight the checker wants for it now.
    pub(super) fn notify(
        &self,
        kind: EventKind,
        service: Option<ServiceKey>,
        real_server: Option<DestinationKey>,
        reason: Option<String>,
    ) {
        self.notify_weights(kind, service, real_server, reason, None);
    }

    /// [`Daemon::notify`] with the old and new weights given (the sorry
    /// server's, which the state does not keep per real server).
    pub(super) fn notify_weights(
        &self,
        kind: EventKind,
        service: Option<ServiceKey>,
        real_server: Option<DestinationKey>,
        reason: Option<String>,
        weights: Option<(Option<u32>, Option<u32>)>,
    ) {
        let configured = service.and_then(|s| self.config.services.iter().find(|c| c.key == s));
        let hooks = configured.map_or(&self.config.hooks, |c| &c.hooks);
        if hooks.is_empty() {
            return;
        }
        let (old_weight, new_weight) = match (weights, configured, real_server) {
            (Some(weights), _, _) => weights,
            (None, Some(c), Some(d)) => {
                let state = self.state.lock();
                let old = state.backend(&c.key, &d).and_then(|b| b.current_weight);
                let new = state
                    .desired(c)
                    .weights
                    .iter()
                    .find(|(k, _)| *k == d)
                    .and_then(|(_, w)| *w);
                (old, new)
            }
            _ => (None, None),
        };
        let event = Event {
            service,
            real_server,
            old_weight,
            new_weight,
            reason,
            ..Event::new(kind)
        };
        self.notifier.emit(hooks, event);
    }

    /// Tells the hooks the quorum guard of the `i`-th service changed,
    /// and its sorry server went in or out.
    pub(super) fn notify_guard(
        &self,
        i: usize,
        want: &crate::reconcile::Desired,
        sorry_was: Option<u32>,
    ) {
        let key = self.config.services[i].key;
        let min_up = self.config.services[i].quorum.map_or(0, |q| q.min_up);
        let (guard, sorry) = if want.guard_active {
            (EventKind::QuorumLost, EventKind::SorryServerIn)
        } else {
            (EventKind::QuorumRegained, EventKind::SorryServerOut)
        };
        let reason = format!("quorum min_up {min_up}");
        self.notify_weights(
            guard,
            Some(key),
            None,
            Some(reason.clone()),
            Some((None, None)),
        );
        if let Some((server, weight)) = want.sorry {
            self.notify_weights(
                sorry,
                Some(key),
                Some(server.key),
                Some(reason),
                Some((sorry_was, Some(weight))),
            );
        }
    }
}
