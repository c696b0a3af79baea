//! An IPVS table in memory, for the tests of the reconciler, the daemon
//! loop and the web pages, and for measuring the probers' cost on a
//! machine without IPVS (`examples/probe-cost.rs`): it answers as the
//! kernel does for the calls the checker makes, and counts the dumps and
//! the writes, which are what a pass costs.

use std::collections::BTreeMap;

use ipvs::{DestinationConfig, DestinationKey, ServiceConfig, ServiceKey};

use super::{ManagedTable, Table};
use crate::config::Config;

/// The table: services, their destinations, and what was asked of it.
#[derive(Debug, Default, Clone)]
pub struct MemoryTable {
    /// The services and their settings.
    pub services: BTreeMap<ServiceKey, ServiceConfig>,
    /// Each service's destinations and their settings.
    pub dests: BTreeMap<ServiceKey, BTreeMap<DestinationKey, DestinationConfig>>,
    /// Every `set_destination`: the destination and the weight sent.
    pub writes: Vec<(DestinationKey, u32)>,
    /// Destination dumps per service, answered or not.
    pub dumps: BTreeMap<ServiceKey, usize>,
    /// Active connections per destination (none when absent).
    pub active: BTreeMap<(ServiceKey, DestinationKey), u32>,
    /// IPVS gone (the module unloaded): every read fails so.
    pub unavailable: bool,
    /// What [`Table::socket_reopens`] answers.
    pub socket_reopens: u64,
}

impl MemoryTable {
    /// The table as ipvsadm would make it for `config`: each service with
    /// `scheduler` (managed mode's, else `wlc`) and its real servers at
    /// their configured weights, forwarding and thresholds.
    pub fn from_config(config: &Config) -> Self {
        let mut table = MemoryTable::default();
        for service in &config.services {
            table.services.insert(service.key, service.service_config());
            table.dests.insert(
                service.key,
                service
                    .real_servers
                    .iter()
                    .map(|rs| (rs.key, rs.destination_config(rs.weight)))
                    .collect(),
            );
        }
        table
    }

    /// A weight changed behind the checker's back (`ipvsadm -e`).
    pub fn set(
        &mut self,
        service: &ServiceKey,
        destination: DestinationKey,
        weight: u32,
    ) -> Result<(), ipvs::Error> {
        self.dests
            .get_mut(service)
            .and_then(|m| m.get_mut(&destination))
            .ok_or(ipvs::Error::DestinationNotFound {
                service: *service,
                destination,
            })?
            .weight = weight;
        Ok(())
    }

    /// Destination dumps of `service` so far.
    pub fn dumps_of(&self, service: &ServiceKey) -> usize {
        self.dumps.get(service).copied().unwrap_or(0)
    }
}

impl Table for MemoryTable {
    fn destinations(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, DestinationConfig)>, ipvs::Error> {
        *self.dumps.entry(*service).or_default() += 1;
        if self.unavailable {
            return Err(ipvs::Error::Unavailable);
        }
        self.dests
            .get(service)
            .map(|d| d.iter().map(|(k, c)| (*k, *c)).collect())
            .ok_or(ipvs::Error::ServiceNotFound(*service))
    }

    fn set_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<(), ipvs::Error> {
        let slot = self
            .dests
            .get_mut(service)
            .and_then(|d| d.get_mut(destination))
            .ok_or(ipvs::Error::DestinationNotFound {
                service: *service,
                destination: *destination,
            })?;
        self.writes.push((*destination, config.weight));
        *slot = *config;
        Ok(())
    }

    fn socket_reopens(&self) -> u64 {
        self.socket_reopens
    }
}

impl ManagedTable for MemoryTable {
    fn service(&mut self, key: &ServiceKey) -> Result<Option<ServiceConfig>, ipvs::Error> {
        if self.unavailable {
            return Err(ipvs::Error::Unavailable);
        }
        Ok(self.services.get(key).cloned())
    }

    fn new_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<(), ipvs::Error> {
        if self.services.insert(*key, config.clone()).is_some() {
            return Err(ipvs::Error::ServiceExists(*key));
        }
        self.dests.insert(*key, BTreeMap::new());
        Ok(())
    }

    fn set_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<(), ipvs::Error> {
        *self
            .services
            .get_mut(key)
            .ok_or(ipvs::Error::ServiceNotFound(*key))? = config.clone();
        Ok(())
    }

    fn del_service(&mut self, key: &ServiceKey) -> Result<(), ipvs::Error> {
        self.dests.remove(key);
        self.services
            .remove(key)
            .map(|_| ())
            .ok_or(ipvs::Error::ServiceNotFound(*key))
    }

    fn new_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<(), ipvs::Error> {
        let d = self
            .dests
            .get_mut(service)
            .ok_or(ipvs::Error::ServiceNotFound(*service))?;
        if d.insert(*destination, *config).is_some() {
            return Err(ipvs::Error::DestinationExists {
                service: *service,
                destination: *destination,
            });
        }
        Ok(())
    }

    fn del_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
    ) -> Result<(), ipvs::Error> {
        self.dests
            .get_mut(service)
            .and_then(|d| d.remove(destination))
            .map(|_| ())
            .ok_or(ipvs::Error::DestinationNotFound {
                service: *service,
                destination: *destination,
            })
    }

    fn active_connections(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, u32)>, ipvs::Error> {
        let dests = self
            .dests
            .get(service)
            .ok_or(ipvs::Error::ServiceNotFound(*service))?;
        Ok(dests
            .keys()
            .map(|d| (*d, self.active.get(&(*service, *d)).copied().unwrap_or(0)))
            .collect())
    }
}
