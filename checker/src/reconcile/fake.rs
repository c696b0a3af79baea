//! An IPVS table in memory for the tests of the reconciler, the daemon
//! loop and the web pages: it behaves as the kernel does for the calls the
//! checker makes, and counts the dumps and the writes, which are what a
//! pass costs.

use std::collections::BTreeMap;

use ipvs::{DestinationConfig, DestinationKey, ServiceConfig, ServiceKey};

use super::{ManagedTable, Table};

/// The table: services, their destinations, and what was asked of it.
#[derive(Debug, Default)]
pub(crate) struct FakeTable {
    pub(crate) services: BTreeMap<ServiceKey, ServiceConfig>,
    pub(crate) dests: BTreeMap<ServiceKey, BTreeMap<DestinationKey, DestinationConfig>>,
    /// Every `set_destination`: the destination and the weight sent.
    pub(crate) writes: Vec<(DestinationKey, u32)>,
    /// Destination dumps per service, answered or not.
    pub(crate) dumps: BTreeMap<ServiceKey, usize>,
}

impl FakeTable {
    /// A weight changed behind the checker's back (`ipvsadm -e`).
    pub(crate) fn set(&mut self, service: &ServiceKey, d: DestinationKey, weight: u32) {
        self.dests
            .get_mut(service)
            .and_then(|m| m.get_mut(&d))
            .expect("destination in the fake table")
            .weight = weight;
    }

    /// Destination dumps of `service` so far.
    pub(crate) fn dumps_of(&self, service: &ServiceKey) -> usize {
        self.dumps.get(service).copied().unwrap_or(0)
    }
}

impl Table for FakeTable {
    fn destinations(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, DestinationConfig)>, ipvs::Error> {
        *self.dumps.entry(*service).or_default() += 1;
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
}

impl ManagedTable for FakeTable {
    fn service(&mut self, key: &ServiceKey) -> Result<Option<ServiceConfig>, ipvs::Error> {
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
}
