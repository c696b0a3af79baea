//! The probe services of `probe_through_vip` (see
//! [`crate::config::ProbeService`]) in the table, in both modes: made at
//! start, put back when someone changed or deleted them, deleted when a
//! reload no longer needs them and when the checker stops.
//!
//! Which ones this checker made is kept in `vip_probes.state_file`, as
//! managed mode keeps what it creates ([`super::owned`]): written after
//! the kernel made one and before a deletion is forgotten, so a checker
//! killed by SIGKILL deletes, at its next start, the ones the config no
//! longer needs. A fwmark service with one of the marks that this checker
//! did not make is never touched, only reported: the probes that carry
//! its mark go where it sends them, so their results say nothing of
//! their real server until the marks are moved (`vip_probes.first_mark`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ipvs::{DestinationConfig, ServiceConfig, ServiceKey};
use serde::{Deserialize, Serialize};

use super::ManagedTable;
use crate::config::ProbeService;
use crate::state_file::{read_json, write_json, Service, StateFileError};

/// The probe services this checker made, as its state file records them.
#[derive(Debug, Default)]
pub struct VipProbes {
    file: Option<PathBuf>,
    made: BTreeSet<ServiceKey>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    services: Vec<Service>,
}

/// What one pass over the probe services did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Changes made, for the log: `fwmark service 0x49500000 (to
    /// 198.18.1.11, DR) created`.
    pub actions: Vec<String>,
    /// What failed, each naming its probe service.
    pub errors: Vec<String>,
}

impl VipProbes {
    /// What `file` records (nothing when it does not exist yet).
    pub fn load(file: &Path) -> Result<Self, StateFileError> {
        let recorded: File = read_json(file)?.unwrap_or_default();
        let mut made = BTreeSet::new();
        for (i, s) in recorded.services.iter().enumerate() {
            made.insert(ServiceKey::try_from(s).map_err(|message| StateFileError {
                path: file.to_owned(),
                message: format!("services[{i}]: {message}"),
            })?);
        }
        Ok(VipProbes {
            file: Some(file.to_owned()),
            made,
        })
    }

    /// The probe services it made and has not deleted.
    pub fn made(&self) -> &BTreeSet<ServiceKey> {
        &self.made
    }

    /// Follows a reload's `vip_probes.state_file`: a new file is read, and
    /// what the old one recorded is kept too (deleted by the next
    /// [`VipProbes::sync`] if not wanted).
    pub fn set_file(&mut self, file: &Path) -> Result<(), StateFileError> {
        if self.file.as_deref() == Some(file) {
            return Ok(());
        }
        let other = VipProbes::load(file)?;
        self.made.extend(other.made);
        self.file = Some(file.to_owned());
        Ok(())
    }

    /// Makes the table hold `want` (each with its one destination, at
    /// weight 1) and none of the others this checker made.
    pub fn sync<T: ManagedTable>(&mut self, table: &mut T, want: &[ProbeService]) -> Pass {
        let mut pass = Pass::default();
        for probe in want {
            self.ensure(table, probe, &mut pass);
        }
        let unwanted: Vec<ServiceKey> = self
            .made
            .iter()
            .filter(|key| !want.iter().any(|p| p.key() == **key))
            .copied()
            .collect();
        for key in unwanted {
            match table.del_service(&key) {
                Ok(()) => pass
                    .actions
                    .push(format!("probe service {} deleted", name(&key))),
                Err(ipvs::Error::ServiceNotFound(_)) => {}
                Err(e) => {
                    pass.errors
                        .push(format!("cannot delete probe service {}: {e}", name(&key)));
                    continue;
                }
            }
            self.made.remove(&key);
            self.save(&mut pass);
        }
        pass
    }

    /// One probe service made, or set back to its one destination.
    fn ensure<T: ManagedTable>(&mut self, table: &mut T, probe: &ProbeService, pass: &mut Pass) {
        let key = probe.key();
        let what = format!(
            "probe service {} (to {}, {:?})",
            name(&key),
            probe.real_server,
            probe.forward
        );
        match table.service(&key) {
            Err(e) => return pass.errors.push(format!("cannot read {what}: {e}")),
            Ok(Some(_)) if !self.made.contains(&key) => {
                return pass.errors.push(format!(
                    "{what}: a fwmark service with this mark exists and was not made by this checker: left alone, and this real server's probes through the VIP are not to be trusted; set vip_probes.first_mark to marks nobody uses"
                ));
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                if let Err(e) = table.new_service(&key, &ServiceConfig::new("rr")) {
                    return pass.errors.push(format!("cannot create {what}: {e}"));
                }
                self.made.insert(key);
                self.save(pass);
                pass.actions.push(format!("{what} created"));
            }
        }
        let config = DestinationConfig::new(probe.forward, 1);
        let destinations = match table.destinations(&key) {
            Ok(d) => d,
            Err(e) => {
                return pass
                    .errors
                    .push(format!("cannot read the real servers of {what}: {e}"))
            }
        };
        for (other, _) in destinations
            .iter()
            .filter(|(d, _)| *d != probe.destination())
        {
            if let Err(e) = table.del_destination(&key, other) {
                pass.errors
                    .push(format!("cannot delete {other} from {what}: {e}"));
            }
        }
        let result = match destinations.iter().find(|(d, _)| *d == probe.destination()) {
            None => table.new_destination(&key, &probe.destination(), &config),
            Some((_, have)) if have.forward != config.forward || have.weight != 1 => {
                table.set_destination(&key, &probe.destination(), &config)
            }
            Some(_) => return,
        };
        match result {
            Ok(()) => pass.actions.push(format!("{what}: its real server set")),
            Err(e) => pass
                .errors
                .push(format!("cannot set the real server of {what}: {e}")),
        }
    }

    /// Writes the state file with what is made now.
    fn save(&self, pass: &mut Pass) {
        let Some(file) = &self.file else { return };
        let record = File {
            services: self.made.iter().map(Service::from).collect(),
        };
        if let Err(e) = write_json(file, &record) {
            pass.errors.push(e.to_string());
        }
    }
}

/// A probe service as ipvsadm shows its mark: `FWM 1229979648 (0x49500000)`.
fn name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Fwmark { mark, .. } => format!("FWM {mark} ({mark:#x})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::memory::MemoryTable;
    use ipvs::{DestinationKey, ForwardMethod};

    fn probe(mark: u32, rs: &str, forward: ForwardMethod) -> ProbeService {
        ProbeService {
            mark,
            real_server: rs.parse().expect("address"),
            forward,
        }
    }

    fn only_destination(
        table: &MemoryTable,
        key: &ServiceKey,
    ) -> (DestinationKey, DestinationConfig) {
        let dests: Vec<_> = table.dests[key].iter().map(|(d, c)| (*d, *c)).collect();
        assert_eq!(dests.len(), 1, "{dests:?}");
        dests[0]
    }

    #[test]
    fn made_recorded_put_back_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vip-probes.json");
        let mut table = MemoryTable::default();
        let mut probes = VipProbes::load(&file).expect("missing file is nothing");
        let dr = probe(0x4950_0000, "198.18.1.11", ForwardMethod::DirectRoute);
        let tun = probe(0x4950_0001, "198.18.1.12", ForwardMethod::Tunnel);
        let pass = probes.sync(&mut table, &[dr, tun]);
        assert!(pass.errors.is_empty(), "{pass:?}");
        assert_eq!(pass.actions.len(), 4, "{pass:?}");
        let (dest, config) = only_destination(&table, &dr.key());
        assert_eq!(
            dest,
            DestinationKey::new("198.18.1.11:0".parse().expect("a"))
        );
        assert_eq!(
            (config.forward, config.weight),
            (ForwardMethod::DirectRoute, 1)
        );
        assert_eq!(
            only_destination(&table, &tun.key()).1.forward,
            ForwardMethod::Tunnel
        );
        // Recorded: a checker started again (after SIGKILL) knows them.
        let again = VipProbes::load(&file).expect("load");
        assert_eq!(again.made(), probes.made());

        // Someone added a real server to one and deleted the other.
        table.dests.get_mut(&dr.key()).expect("dr").insert(
            DestinationKey::new("198.18.1.13:0".parse().expect("a")),
            DestinationConfig::new(ForwardMethod::DirectRoute, 1),
        );
        table.services.remove(&tun.key());
        table.dests.remove(&tun.key());
        let pass = probes.sync(&mut table, &[dr, tun]);
        assert!(pass.errors.is_empty(), "{pass:?}");
        assert_eq!(only_destination(&table, &dr.key()).0, dr.destination());
        assert_eq!(only_destination(&table, &tun.key()).0, tun.destination());
        // A pass with nothing to do does nothing.
        assert_eq!(probes.sync(&mut table, &[dr, tun]), Pass::default());

        // Started again with a config that needs only the DR one: the
        // other is deleted, and so is its record.
        let mut restarted = VipProbes::load(&file).expect("load");
        let pass = restarted.sync(&mut table, &[dr]);
        assert_eq!(
            pass.actions,
            vec![format!("probe service FWM {0} ({0:#x}) deleted", tun.mark)]
        );
        assert!(!table.services.contains_key(&tun.key()));
        // Stopping: none left, in the table or the file.
        restarted.sync(&mut table, &[]);
        assert!(table.services.is_empty(), "{:?}", table.services);
        assert!(VipProbes::load(&file).expect("load").made().is_empty());
    }

    #[test]
    fn a_service_with_the_mark_made_by_someone_else_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut table = MemoryTable::default();
        let theirs = probe(7, "198.18.1.11", ForwardMethod::DirectRoute);
        table
            .services
            .insert(theirs.key(), ServiceConfig::new("wlc"));
        table.dests.insert(theirs.key(), Default::default());
        let mut probes = VipProbes::load(&dir.path().join("p.json")).expect("load");
        let pass = probes.sync(&mut table, &[theirs]);
        assert_eq!(pass.errors.len(), 1, "{pass:?}");
        assert!(
            pass.errors[0].contains("was not made by this checker"),
            "{pass:?}"
        );
        assert!(table.dests[&theirs.key()].is_empty());
        // Nor deleted when no longer wanted.
        probes.sync(&mut table, &[]);
        assert!(table.services.contains_key(&theirs.key()));
    }
}
