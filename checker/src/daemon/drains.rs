//! The loop's side of the drains ([`crate::drain`]): the admin API's
//! orders, an out-of-band weight 0 taken as a drain (and a non-zero one
//! undoing it), `maintenance_dir`, and drains that expire.
//!
//! Every change goes to the drain file first (atomically) and to the
//! shared state after, and its service is reconciled at once, so the
//! weight, `/status` and the file agree. In a dry run the file is not
//! written: nothing is changed, so there is nothing to keep.

use std::time::SystemTime;

use ipvs::{DestinationKey, ServiceKey};
use tracing::{error, info, warn};

use super::*;
use crate::notify::EventKind;
use crate::reconcile::{Outcome, StateFileError};

impl<T: ManagedTable> Daemon<T> {
    /// Does what the admin API asked; says what was done, or why not.
    pub(super) fn order(&mut self, order: Order) -> Result<String, Refusal> {
        match order {
            Order::Drain {
                service,
                real_server,
                reason,
                until,
                user,
            } => {
                let (i, s, d) = admin::resolve(&self.config, &service, &real_server)?;
                let now = SystemTime::now();
                let until = until.and_then(|u| now.checked_add(u));
                let mut drains = self.state.lock().drains().clone();
                drains.insert(
                    s,
                    d,
                    Drain {
                        by: By::Api,
                        user: user.clone(),
                        reason: reason.clone(),
                        since: now,
                        until,
                    },
                );
                self.save_drains(drains)
                    .map_err(|e| Refusal::Failed(format!("not drained: {e}")))?;
                info!(service = %s, real_server = %d, user = user.as_deref().unwrap_or(""), reason = reason.as_deref().unwrap_or(""), "real server drained through the admin API");
                self.notify(
                    EventKind::Drained,
                    Some(s),
                    Some(d),
                    Some(reason.unwrap_or_else(|| "admin API".into())),
                );
                self.apply(i);
                Ok(match until {
                    Some(until) => format!(
                        "{d} of {s} drained until {}",
                        crate::status::utc(crate::drain::unix(until))
                    ),
                    None => format!("{d} of {s} drained"),
                })
            }
            Order::Undrain {
                service,
                real_server,
            } => {
                let (i, s, d) = admin::resolve(&self.config, &service, &real_server)?;
                let mut drains = self.state.lock().drains().clone();
                let file = self
                    .state
                    .lock()
                    .maintenance()
                    .get(&(s, d))
                    .and_then(|m| m.reason.clone());
                if drains.remove(&s, &d).is_none() {
                    return match file {
                        Some(file) => Err(Refusal::Conflict(format!(
                            "{d} of {s} is drained by the maintenance file {file}: remove the file to undrain it"
                        ))),
                        None => Ok(format!("{d} of {s} was not drained")),
                    };
                }
                self.save_drains(drains)
                    .map_err(|e| Refusal::Failed(format!("not undrained: {e}")))?;
                info!(service = %s, real_server = %d, "real server undrained through the admin API");
                self.notify(
                    EventKind::Undrained,
                    Some(s),
                    Some(d),
                    Some("admin API".into()),
                );
                self.apply(i);
                Ok(match file {
                    Some(file) => format!(
                        "{d} of {s} undrained, but the maintenance file {file} still drains it"
                    ),
                    None => format!("{d} of {s} undrained"),
                })
            }
        }
    }

    /// Writes `drains` to the drain file (not in a dry run), then shows
    /// them in the state; on an error neither changes.
    fn save_drains(&self, drains: Drains) -> Result<(), StateFileError> {
        if !self.reconciler.dry_run() {
            drains.save(&self.config.drain_file)?;
        }
        self.state.lock().set_drains(drains);
        Ok(())
    }

    /// Records what a pass over `service` found changed out of band:
    /// weights set to 0 are drained by `out_of_band`, such drains set to a
    /// non-zero weight undrained. Whether anything changed.
    pub(super) fn follow_out_of_band(&mut self, service: ServiceKey, outcome: &Outcome) -> bool {
        if outcome.drained_out_of_band.is_empty() && outcome.undrained_out_of_band.is_empty() {
            return false;
        }
        let now = SystemTime::now();
        let mut drains = self.state.lock().drains().clone();
        for d in &outcome.drained_out_of_band {
            warn!(service = %service, real_server = %d, "weight set to 0 out of band: taken as a drain (out_of_band: drain); `ipvs-checker undrain` or a non-zero weight ends it");
            drains.insert(service, *d, Drain::new(By::OutOfBand, now));
        }
        for d in &outcome.undrained_out_of_band {
            info!(service = %service, real_server = %d, "a non-zero weight was set out of band on a real server drained out of band: undrained");
            drains.remove(&service, d);
        }
        if let Err(e) = self.save_drains(drains.clone()) {
            // The weight is the operator's already: show the drain, and
            // say it will not survive a restart.
            error!("{e}: the out-of-band drain holds until the checker restarts");
            self.state.lock().set_drains(drains);
        }
        for d in &outcome.drained_out_of_band {
            self.notify(
                EventKind::Drained,
                Some(service),
                Some(*d),
                Some("out_of_band: weight set to 0 in the table".into()),
            );
        }
        for d in &outcome.undrained_out_of_band {
            self.notify(
                EventKind::Undrained,
                Some(service),
                Some(*d),
                Some("out_of_band: a non-zero weight set in the table".into()),
            );
        }
        true
    }

    /// Once a second: drains whose `until` passed end, and
    /// `maintenance_dir` is read again.
    pub(super) fn follow_drains(&mut self) {
        let now = SystemTime::now();
        let mut drains = self.state.lock().drains().clone();
        let expired = drains.expire(now);
        if !expired.is_empty() {
            match self.save_drains(drains) {
                Ok(()) => {
                    for (s, d) in expired {
                        info!(service = %s, real_server = %d, "drain expired: real server undrained");
                        self.notify(
                            EventKind::Undrained,
                            Some(s),
                            Some(d),
                            Some("drain expired".into()),
                        );
                    }
                }
                Err(e) => error!("{e}: expired drains stay until it can be written"),
            }
        }
        self.read_maintenance_dir(now);
    }

    /// Drains the real servers a file in `maintenance_dir` names.
    fn read_maintenance_dir(&mut self, now: SystemTime) {
        let files = match &self.config.maintenance_dir {
            None => Vec::new(),
            Some(dir) => match maintenance::scan(dir) {
                Ok(files) => {
                    self.announced.retain(|a| !a.starts_with("maintenance_dir"));
                    files
                }
                Err(e) => {
                    let text = format!("maintenance_dir {}: {e}", dir.display());
                    if self.announced.insert(text.clone()) {
                        error!("{text}: the drains by file stay as they were");
                    }
                    return;
                }
            },
        };
        let old = self.state.lock().maintenance().clone();
        let mut new = BTreeMap::new();
        for service in &self.config.services {
            for rs in &service.real_servers {
                let Some((file, _)) = files.iter().find(|(_, name)| name.matches(&rs.key)) else {
                    continue;
                };
                let key: (ServiceKey, DestinationKey) = (service.key, rs.key);
                let drain = match old.get(&key) {
                    Some(kept) if kept.reason.as_deref() == Some(file.as_str()) => kept.clone(),
                    _ => {
                        info!(service = %service.key, real_server = %rs.key, file = %file, "maintenance file: real server drained");
                        Drain {
                            reason: Some(file.clone()),
                            ..Drain::new(By::MaintenanceDir, now)
                        }
                    }
                };
                new.insert(key, drain);
            }
        }
        let gone: Vec<_> = old
            .keys()
            .filter(|k| !new.contains_key(k))
            .copied()
            .collect();
        for (s, d) in &gone {
            info!(service = %s, real_server = %d, "maintenance file gone: real server undrained");
        }
        let came: Vec<_> = new
            .iter()
            .filter(|(k, _)| !old.contains_key(k))
            .map(|(k, drain)| (*k, drain.reason.clone()))
            .collect();
        if new != old {
            self.state.lock().set_maintenance(new);
        }
        // After the state has them, so the events carry the new weights.
        for ((s, d), file) in came {
            let reason = file.map(|f| format!("maintenance file {f}"));
            self.notify(EventKind::Drained, Some(s), Some(d), reason);
        }
        for (s, d) in gone {
            self.notify(
                EventKind::Undrained,
                Some(s),
                Some(d),
                Some("maintenance file gone".into()),
            );
        }
    }

    /// After a reload: drains of real servers no longer configured go
    /// (one put back in the config later starts undrained).
    pub(super) fn prune_drains(&mut self) {
        let mut drains = self.state.lock().drains().clone();
        let gone: Vec<(ServiceKey, DestinationKey)> = drains
            .iter()
            .map(|(k, _)| *k)
            .filter(|(s, d)| {
                !self
                    .config
                    .services
                    .iter()
                    .any(|c| c.key == *s && c.real_servers.iter().any(|rs| rs.key == *d))
            })
            .collect();
        if gone.is_empty() {
            return;
        }
        for (s, d) in &gone {
            drains.remove(s, d);
        }
        if let Err(e) = self.save_drains(drains) {
            error!("{e}: drains of real servers no longer configured stay in it");
        }
    }
}

#[cfg(test)]
mod tests;
