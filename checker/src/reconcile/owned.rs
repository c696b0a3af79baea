//! What managed mode created, kept in its state file so that a restart
//! (even after SIGKILL) knows it: managed mode deletes only what is
//! recorded here, never a service or real server someone else made.
//!
//! The file is JSON, written whole to a temporary file next to it and
//! renamed over it, so a crash leaves the old file or the new one. It is
//! written after the kernel accepted a creation and before a deletion is
//! forgotten: a crash in between leaves something created but not
//! recorded, which the checker then never deletes (the safe side), never a
//! record of something it did not make.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use ipvs::{DestinationKey, ServiceKey};
use serde::{Deserialize, Serialize};

pub use crate::state_file::StateFileError;
use crate::state_file::{read_json, write_json, Service};

/// The services and destinations managed mode created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Services it created.
    pub services: BTreeSet<ServiceKey>,
    /// Destinations it created, in any service.
    pub destinations: BTreeSet<(ServiceKey, DestinationKey)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    services: Vec<Service>,
    destinations: Vec<Destination>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Destination {
    service: Service,
    address: SocketAddr,
}

impl Owned {
    /// Reads the state file; a missing file is nothing owned (the first
    /// start). Anything else wrong is an error: guessing could delete what
    /// is not ours, or leave ours forever.
    pub fn load(path: &Path) -> Result<Owned, StateFileError> {
        let error = |message: String| StateFileError {
            path: path.to_owned(),
            message,
        };
        let Some(file) = read_json::<File>(path)? else {
            return Ok(Owned::default());
        };
        let mut owned = Owned::default();
        for (i, s) in file.services.iter().enumerate() {
            owned
                .services
                .insert(ServiceKey::try_from(s).map_err(|e| error(format!("services[{i}]: {e}")))?);
        }
        for (i, d) in file.destinations.iter().enumerate() {
            let service = ServiceKey::try_from(&d.service)
                .map_err(|e| error(format!("destinations[{i}].service: {e}")))?;
            owned
                .destinations
                .insert((service, DestinationKey::new(d.address)));
        }
        Ok(owned)
    }

    /// Writes the state file atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), StateFileError> {
        let file = File {
            services: self.services.iter().map(Service::from).collect(),
            destinations: self
                .destinations
                .iter()
                .map(|(s, d)| Destination {
                    service: Service::from(s),
                    address: d.addr,
                })
                .collect(),
        };
        write_json(path, &file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::AddressFamily;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("owned.json");
        assert_eq!(
            Owned::load(&path).expect("missing is empty"),
            Owned::default()
        );
        let tcp = ServiceKey::tcp("198.18.0.10:80".parse().expect("address"));
        let fwm = ServiceKey::fwmark(7, AddressFamily::Inet6);
        let mut owned = Owned::default();
        owned.services.insert(tcp);
        owned.services.insert(fwm);
        owned.destinations.insert((
            tcp,
            DestinationKey::new("198.18.1.11:80".parse().expect("a")),
        ));
        owned.destinations.insert((
            fwm,
            DestinationKey::new("[2001:db8::1]:0".parse().expect("a")),
        ));
        owned.save(&path).expect("save");
        assert_eq!(Owned::load(&path).expect("load"), owned);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("owned.json");
        std::fs::write(
            &path,
            r#"{"services": [{"protocol": "ICMP", "address": "198.18.0.10:80"}], "destinations": []}"#,
        )
        .expect("write");
        let e = Owned::load(&path).expect_err("bad protocol");
        assert_eq!(
            e.to_string(),
            format!(
                "state file {}: services[0]: unknown protocol \"ICMP\"",
                path.display()
            )
        );
        std::fs::write(&path, "{").expect("write");
        assert!(Owned::load(&path)
            .expect_err("truncated")
            .to_string()
            .starts_with(&format!("state file {}: EOF", path.display())));
    }
}
