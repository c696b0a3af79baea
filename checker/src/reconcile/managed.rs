//! Managed mode: the checker makes the table look like its config.
//!
//! [`Reconciler::ensure`] creates a configured service or real server that
//! is missing, and puts back the settings of one that differs (scheduler,
//! flags, persistence; forwarding method and thresholds), leaving weights
//! to [`Reconciler::reconcile`]. A real server it creates starts at weight
//! 0 unless its health is already known: no traffic before a check has
//! passed (keepalived's `alpha`, ldirectord's quiescent start).
//! [`Reconciler::remove_unconfigured`] deletes what it created (recorded in
//! [`Owned`]) and the config no longer has; it never deletes anything else.
//! A real server is not deleted at once: it is set to weight 0 first, and
//! deleted once its active connections reach 0 or after `drain_timeout`
//! ([`Removal`]); a service that left the config goes once its real
//! servers have. Putting a real server back in the config cancels its
//! removal; after a restart the removal starts again (the weight is 0
//! already) and finishes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use ipvs::{DestinationConfig, DestinationKey, Netmask, ServiceConfig, ServiceKey};
use rustc_hash::FxHashMap;

use super::owned::Owned;
use super::{Current, Desired, Reconciler, Table};
use crate::config::{Config, VirtualService};

/// The rest of IPVS that managed mode uses (`ipvsadm -A/-E/-D/-a/-d`;
/// `-e` and the dump are the [`Table`]'s).
pub trait ManagedTable: Table {
    /// A service's settings, `None` if there is no such service.
    fn service(&mut self, key: &ServiceKey) -> Result<Option<ServiceConfig>, ipvs::Error>;
    /// `ipvsadm -A`.
    fn new_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<(), ipvs::Error>;
    /// `ipvsadm -E`.
    fn set_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<(), ipvs::Error>;
    /// `ipvsadm -D`.
    fn del_service(&mut self, key: &ServiceKey) -> Result<(), ipvs::Error>;
    /// `ipvsadm -a`.
    fn new_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<(), ipvs::Error>;
    /// `ipvsadm -d`.
    fn del_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
    ) -> Result<(), ipvs::Error>;
    /// Each destination's active connections (`ActiveConn` of `ipvsadm -Ln`).
    fn active_connections(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, u32)>, ipvs::Error>;
}

/// A real server that left the config, at weight 0 until its active
/// connections end or `drain_timeout` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// When its removal began (for `drain_timeout`).
    pub started: Instant,
    /// The same, for people.
    pub since: SystemTime,
    /// Its active connections at the last pass.
    pub active_connections: u32,
}

impl ManagedTable for ipvs::Ipvs {
    fn service(&mut self, key: &ServiceKey) -> Result<Option<ServiceConfig>, ipvs::Error> {
        match ipvs::Ipvs::service(self, key) {
            Ok(s) => Ok(Some(s.config)),
            Err(ipvs::Error::ServiceNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn new_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<(), ipvs::Error> {
        ipvs::Ipvs::new_service(self, key, config)
    }

    fn set_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<(), ipvs::Error> {
        ipvs::Ipvs::set_service(self, key, config)
    }

    fn del_service(&mut self, key: &ServiceKey) -> Result<(), ipvs::Error> {
        ipvs::Ipvs::del_service(self, key)
    }

    fn new_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<(), ipvs::Error> {
        ipvs::Ipvs::new_destination(self, service, destination, config)
    }

    fn del_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
    ) -> Result<(), ipvs::Error> {
        ipvs::Ipvs::del_destination(self, service, destination)
    }

    fn active_connections(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, u32)>, ipvs::Error> {
        Ok(ipvs::Ipvs::destinations(self, service)?
            .into_iter()
            .map(|d| (d.key, d.active_conns))
            .collect())
    }
}

/// One change managed mode made (or, in a dry run, would make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A configured service was missing and is created.
    CreateService(ServiceKey),
    /// A service's settings differed from the config and are put back.
    UpdateService(ServiceKey),
    /// A service it created left the config and is deleted.
    DeleteService(ServiceKey),
    /// A configured real server (or the sorry server in use) was missing and is added.
    CreateDestination(ServiceKey, DestinationKey, u32),
    /// A real server's forwarding method or thresholds differed and are put back.
    UpdateDestination(ServiceKey, DestinationKey),
    /// A real server it created left the config (or the sorry server is no
    /// longer needed) and is deleted.
    DeleteDestination(ServiceKey, DestinationKey),
    /// A real server it created left the config: weight 0 until its
    /// connections end, then deleted.
    RemoveDestination(ServiceKey, DestinationKey),
}

impl Action {
    /// The `action` label of `ipvs_checker_managed_changes_total`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateService(_) => "create_service",
            Action::UpdateService(_) => "update_service",
            Action::DeleteService(_) => "delete_service",
            Action::CreateDestination(..) => "create_real_server",
            Action::UpdateDestination(..) => "update_real_server",
            Action::DeleteDestination(..) => "delete_real_server",
            Action::RemoveDestination(..) => "remove_real_server",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateService(s) => write!(f, "service {s} created"),
            Action::UpdateService(s) => write!(f, "service {s} settings set back to the config's"),
            Action::DeleteService(s) => write!(f, "service {s} deleted (left the config)"),
            Action::CreateDestination(s, d, w) => {
                write!(f, "real server {d} added to {s} at weight {w}")
            }
            Action::UpdateDestination(s, d) => {
                write!(
                    f,
                    "real server {d} of {s}: forwarding and thresholds set back to the config's"
                )
            }
            Action::DeleteDestination(s, d) => write!(f, "real server {d} deleted from {s}"),
            Action::RemoveDestination(s, d) => write!(
                f,
                "real server {d} of {s} left the config: weight 0, deleted once its active connections end (or after drain_timeout)"
            ),
        }
    }
}

/// What one managed pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedOutcome {
    /// Changes made (in a dry run, to be made).
    pub actions: Vec<Action>,
    /// Requests that failed, each naming what it was for.
    pub errors: Vec<String>,
    /// Services it created that left the config but still hold real
    /// servers it did not create: kept, so as not to delete those.
    pub kept: Vec<ServiceKey>,
    /// Real servers deleted at `drain_timeout` with active connections
    /// left, and how many.
    pub timed_out: Vec<(ServiceKey, DestinationKey, u32)>,
}

/// The kernel reports "no netmask" as the full one.
fn normalized(mut config: ServiceConfig) -> ServiceConfig {
    if matches!(
        config.netmask,
        Some(Netmask::V4(m)) if m == std::net::Ipv4Addr::BROADCAST
    ) || config.netmask == Some(Netmask::V6(128))
    {
        config.netmask = None;
    }
    if !config.flags.contains(ipvs::ServiceFlags::PERSISTENT) {
        config.timeout = 0;
        config.netmask = None;
    }
    config.pe_name = None;
    config
}

impl<T: ManagedTable> Reconciler<T> {
    /// What managed mode owns.
    pub fn owned(&self) -> &Owned {
        &self.owned
    }

    /// Makes `service` and its real servers exist with the config's
    /// settings; adds the sorry server while `want` uses it and deletes it
    /// (if this checker added it) when it does not. Also returns the
    /// service's entries as its one dump found them, with its own changes
    /// applied, for [`Reconciler::reconcile_from`] (an error if the
    /// service could not be read, or does not exist in a dry run).
    pub fn ensure(
        &mut self,
        service: &VirtualService,
        want: &Desired,
    ) -> (ManagedOutcome, Result<Current, ipvs::Error>) {
        let mut out = ManagedOutcome::default();
        let key = service.key;
        let config = service.service_config();
        let existing = match self.table.service(&key) {
            Ok(existing) => existing,
            Err(e) => {
                out.errors.push(format!("cannot read service {key}: {e}"));
                return (out, Err(e));
            }
        };
        match &existing {
            None => {
                if !self.dry_run {
                    if let Err(e) = self.table.new_service(&key, &config) {
                        out.errors.push(format!("cannot create service {key}: {e}"));
                        return (out, Err(e));
                    }
                    self.owned.services.insert(key);
                }
                out.actions.push(Action::CreateService(key));
            }
            Some(have) if normalized(have.clone()) != normalized(config.clone()) => {
                if !self.dry_run {
                    if let Err(e) = self.table.set_service(&key, &config) {
                        out.errors.push(format!("cannot update service {key}: {e}"));
                    }
                }
                out.actions.push(Action::UpdateService(key));
            }
            Some(_) => {}
        }
        let mut current = if self.dry_run && existing.is_none() {
            Vec::new()
        } else {
            match self.table.destinations(&key) {
                Ok(d) => d,
                Err(e) => {
                    out.errors
                        .push(format!("cannot read the real servers of {key}: {e}"));
                    return (out, Err(e));
                }
            }
        };
        // Each real server's wanted weight and place in `current`, looked
        // up by its key: a search of both lists for each real server made
        // every pass quadratic in the service's size.
        let weights = by_key(want.weights.iter().copied());
        let mut places = by_key(current.iter().enumerate().map(|(i, (d, _))| (*d, i)));
        for rs in &service.real_servers {
            let desired_weight = weights.get(&rs.key).copied().flatten();
            match places.get(&rs.key).and_then(|&i| current.get_mut(i)) {
                None => {
                    // Unknown health: no traffic before a check passed.
                    let config = rs.destination_config(desired_weight.unwrap_or(0));
                    if self.create(&mut out, key, rs.key, config) {
                        places.entry(rs.key).or_insert(current.len());
                        current.push((rs.key, config));
                    }
                }
                Some((_, have)) => {
                    let want_config = rs.destination_config(have.weight);
                    if have.forward != want_config.forward
                        || have.upper_threshold != want_config.upper_threshold
                        || have.lower_threshold != want_config.lower_threshold
                    {
                        if !self.dry_run {
                            if let Err(e) = self.table.set_destination(&key, &rs.key, &want_config)
                            {
                                out.errors.push(format!(
                                    "cannot update real server {} of {key}: {e}",
                                    rs.key
                                ));
                                continue;
                            }
                            *have = want_config;
                        }
                        out.actions.push(Action::UpdateDestination(key, rs.key));
                    }
                }
            }
        }
        if let Some((sorry, weight)) = want.sorry {
            let present = current.iter().any(|(k, _)| *k == sorry.key);
            let ours = self.owned.destinations.contains(&(key, sorry.key));
            if weight > 0 && !present {
                let config = DestinationConfig::new(sorry.forward, weight);
                if self.create(&mut out, key, sorry.key, config) {
                    current.push((sorry.key, config));
                }
            } else if weight == 0 && present && ours && self.delete(&mut out, key, sorry.key) {
                current.retain(|(k, _)| *k != sorry.key);
            }
        }
        self.save(&mut out);
        if self.dry_run && existing.is_none() {
            // Nothing was made: there is no service to set weights in.
            return (out, Err(ipvs::Error::ServiceNotFound(key)));
        }
        (out, Ok(current))
    }

    /// The real servers being removed (see [`Removal`]).
    pub fn removing(&self) -> &BTreeMap<(ServiceKey, DestinationKey), Removal> {
        &self.removing
    }

    /// Deletes what this checker created and `config` no longer has, at
    /// `now`: real servers (of configured services or not) once their
    /// removal is over, and whole services once their real servers are
    /// gone (unless they hold real servers someone else added: then only
    /// ours go).
    pub fn remove_unconfigured(&mut self, config: &Config, now: Instant) -> ManagedOutcome {
        let mut out = ManagedOutcome::default();
        let mut unwanted: BTreeMap<ServiceKey, Vec<DestinationKey>> = BTreeMap::new();
        for &(service, destination) in &self.owned.destinations {
            let configured = config.services.iter().find(|s| s.key == service);
            let wanted = configured.is_some_and(|s| {
                s.real_servers.iter().any(|rs| rs.key == destination)
                    // The sorry server goes when the guard lets it go.
                    || s.quorum.and_then(|q| q.sorry_server).is_some_and(|sorry| sorry.key == destination)
            });
            if !wanted {
                unwanted.entry(service).or_default().push(destination);
            }
        }
        // Back in the config: the removal is off (the weight follows the
        // health again).
        self.removing
            .retain(|(s, d), _| unwanted.get(s).is_some_and(|ds| ds.contains(d)));
        for (service, destinations) in unwanted {
            self.remove(&mut out, service, &destinations, config.drain_timeout, now);
        }
        let services: Vec<ServiceKey> = self.owned.services.iter().copied().collect();
        for service in services {
            if config.services.iter().any(|s| s.key == service) {
                continue;
            }
            match self.table.destinations(&service) {
                Err(ipvs::Error::ServiceNotFound(_)) => {
                    // Deleted by someone else: nothing left to own.
                    if !self.dry_run {
                        self.owned.services.remove(&service);
                    }
                }
                Err(e) => out
                    .errors
                    .push(format!("cannot read the real servers of {service}: {e}")),
                // Ours are still being removed: the service goes after them.
                Ok(left)
                    if left
                        .iter()
                        .any(|(d, _)| self.removing.contains_key(&(service, *d))) => {}
                // In a dry run our real servers are still there; otherwise
                // they were deleted above and what is left is someone else's.
                Ok(left)
                    if left
                        .iter()
                        .any(|(d, _)| !self.owned.destinations.contains(&(service, *d))) =>
                {
                    out.kept.push(service);
                }
                Ok(_) => {
                    if !self.dry_run {
                        if let Err(e) = self.table.del_service(&service) {
                            out.errors
                                .push(format!("cannot delete service {service}: {e}"));
                            continue;
                        }
                        self.owned.services.remove(&service);
                        self.owned.destinations.retain(|(s, _)| *s != service);
                    }
                    out.actions.push(Action::DeleteService(service));
                }
            }
        }
        self.save(&mut out);
        out
    }

    /// One pass of the removal of `destinations`, ours, of `service`: each
    /// set to weight 0 at first sight, deleted once it has no active
    /// connection or `drain_timeout` passed.
    fn remove(
        &mut self,
        out: &mut ManagedOutcome,
        service: ServiceKey,
        destinations: &[DestinationKey],
        drain_timeout: Duration,
        now: Instant,
    ) {
        let entries = match self.table.destinations(&service) {
            Ok(entries) => entries,
            // Gone with its service: the deletes below forget them.
            Err(ipvs::Error::ServiceNotFound(_)) => Vec::new(),
            Err(e) => {
                out.errors
                    .push(format!("cannot read the real servers of {service}: {e}"));
                return;
            }
        };
        let connections = match self.table.active_connections(&service) {
            Ok(c) => c,
            Err(ipvs::Error::ServiceNotFound(_)) => Vec::new(),
            Err(e) => {
                out.errors
                    .push(format!("cannot read the connections of {service}: {e}"));
                return;
            }
        };
        // Looked up by key: a service of thousands being removed would
        // otherwise search both lists for each of them at every pass.
        let (entries_of, active_of) = (
            by_key(entries.iter().copied()),
            by_key(connections.iter().copied()),
        );
        for &destination in destinations {
            let key = (service, destination);
            let Some(&entry) = entries_of.get(&destination) else {
                // Deleted by someone else: nothing left to wait for.
                self.delete(out, service, destination);
                self.removing.remove(&key);
                continue;
            };
            let active = active_of.get(&destination).copied().unwrap_or(0);
            match self.removing.get_mut(&key) {
                None => {
                    if entry.weight != 0 && !self.dry_run {
                        if let Err(e) = self.table.set_destination(
                            &service,
                            &destination,
                            &entry.with_weight(0),
                        ) {
                            out.errors.push(format!(
                                "cannot set real server {destination} of {service} to weight 0 to remove it: {e}"
                            ));
                            continue;
                        }
                        self.last.insert(key, 0);
                    }
                    self.removing.insert(
                        key,
                        Removal {
                            started: now,
                            since: SystemTime::now(),
                            active_connections: active,
                        },
                    );
                    out.actions
                        .push(Action::RemoveDestination(service, destination));
                }
                Some(removal) => {
                    removal.active_connections = active;
                    let timed_out = now.saturating_duration_since(removal.started) >= drain_timeout;
                    if active == 0 || timed_out {
                        if active > 0 {
                            out.timed_out.push((service, destination, active));
                        }
                        if self.delete(out, service, destination) {
                            self.removing.remove(&key);
                        }
                    }
                }
            }
        }
    }

    /// Adds a real server; returns whether the table now has it (not in a
    /// dry run, nor after an error).
    fn create(
        &mut self,
        out: &mut ManagedOutcome,
        service: ServiceKey,
        destination: DestinationKey,
        config: DestinationConfig,
    ) -> bool {
        if !self.dry_run {
            if let Err(e) = self.table.new_destination(&service, &destination, &config) {
                out.errors.push(format!(
                    "cannot add real server {destination} to {service}: {e}"
                ));
                return false;
            }
            self.owned.destinations.insert((service, destination));
            // The weight set here is the checker's own, not out of band.
            self.last.insert((service, destination), config.weight);
        }
        out.actions.push(Action::CreateDestination(
            service,
            destination,
            config.weight,
        ));
        !self.dry_run
    }

    /// Deletes a real server; returns whether it is now gone from the
    /// table (not in a dry run, nor after an error).
    fn delete(
        &mut self,
        out: &mut ManagedOutcome,
        service: ServiceKey,
        destination: DestinationKey,
    ) -> bool {
        if !self.dry_run {
            match self.table.del_destination(&service, &destination) {
                // Already gone: nothing left to own.
                Ok(())
                | Err(ipvs::Error::DestinationNotFound { .. })
                | Err(ipvs::Error::ServiceNotFound(_)) => {}
                Err(e) => {
                    out.errors.push(format!(
                        "cannot delete real server {destination} from {service}: {e}"
                    ));
                    return false;
                }
            }
            self.owned.destinations.remove(&(service, destination));
            self.last.remove(&(service, destination));
        }
        out.actions
            .push(Action::DeleteDestination(service, destination));
        !self.dry_run
    }

    /// Writes the state file when ownership changed.
    fn save(&mut self, out: &mut ManagedOutcome) {
        if self.dry_run || self.owned == self.saved {
            return;
        }
        let Some(path) = &self.state_file else {
            return;
        };
        match self.owned.save(path) {
            Ok(()) => self.saved = self.owned.clone(),
            Err(e) => out.errors.push(e.to_string()),
        }
    }
}

/// `pairs` looked up by their key, the first of a key kept (as a search
/// of the list finds it).
fn by_key<V>(pairs: impl IntoIterator<Item = (DestinationKey, V)>) -> FxHashMap<DestinationKey, V> {
    let mut map = FxHashMap::default();
    for (key, value) in pairs {
        map.entry(key).or_insert(value);
    }
    map
}
