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
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipvs::{AddressFamily, DestinationKey, Protocol, ServiceKey};
use serde::{Deserialize, Serialize};

/// The services and destinations managed mode created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Services it created.
    pub services: BTreeSet<ServiceKey>,
    /// Destinations it created, in any service.
    pub destinations: BTreeSet<(ServiceKey, DestinationKey)>,
}

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("state file {}: {message}", path.display())]
pub struct StateFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    services: Vec<Service>,
    destinations: Vec<Destination>,
}

/// A service as written: `{"protocol": "TCP", "address": "198.18.0.10:80"}`
/// or `{"fwmark": 1, "family": "ipv4"}` (the drain file writes them so too).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Destination {
    service: Service,
    address: SocketAddr,
}

impl From<&ServiceKey> for Service {
    fn from(key: &ServiceKey) -> Self {
        match key {
            ServiceKey::Addr { protocol, addr } => Service {
                protocol: Some(protocol.to_string()),
                address: Some(*addr),
                fwmark: None,
                family: None,
            },
            ServiceKey::Fwmark { mark, family } => Service {
                protocol: None,
                address: None,
                fwmark: Some(*mark),
                family: Some(
                    match family {
                        AddressFamily::Inet => "ipv4",
                        AddressFamily::Inet6 => "ipv6",
                    }
                    .into(),
                ),
            },
        }
    }
}

impl TryFrom<&Service> for ServiceKey {
    type Error = String;

    fn try_from(s: &Service) -> Result<Self, String> {
        match (s, s.address, s.fwmark) {
            (
                Service {
                    protocol: Some(p),
                    family: None,
                    ..
                },
                Some(addr),
                None,
            ) => {
                let protocol = match p.as_str() {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    "SCTP" => Protocol::Sctp,
                    other => return Err(format!("unknown protocol {other:?}")),
                };
                Ok(ServiceKey::Addr { protocol, addr })
            }
            (
                Service {
                    protocol: None,
                    family: Some(f),
                    ..
                },
                None,
                Some(mark),
            ) => {
                let family = match f.as_str() {
                    "ipv4" => AddressFamily::Inet,
                    "ipv6" => AddressFamily::Inet6,
                    other => return Err(format!("unknown family {other:?}")),
                };
                Ok(ServiceKey::fwmark(mark, family))
            }
            _ => Err("a service is protocol and address, or fwmark and family".into()),
        }
    }
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

/// Reads the JSON file `path` (the state file, the drain file); `None`
/// when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, StateFileError> {
    let error = |message: String| StateFileError {
        path: path.to_owned(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(format!("cannot read: {e}"))),
    };
    serde_json::from_str(&text).map_err(|e| error(e.to_string()))
}

/// Writes `value` as JSON to a temporary file next to `path`, syncs it
/// and renames it over `path`: a crash leaves the old file or the new
/// one, never half of one.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateFileError> {
    let error = |message: String| StateFileError {
        path: path.to_owned(),
        message,
    };
    let mut text = serde_json::to_string_pretty(value).map_err(|e| error(e.to_string()))?;
    text.push('\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| error(format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
