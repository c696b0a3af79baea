//! The checker's JSON state files: managed mode's record of what it
//! created ([`crate::reconcile::owned`]) and the drains
//! ([`crate::drain`]). Each is read whole, and written whole to a
//! temporary file next to it that is synced and renamed over it, so a
//! crash leaves the old file or the new one; both name services the same
//! way ([`Service`]).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipvs::{AddressFamily, Protocol, ServiceKey};
use serde::{Deserialize, Serialize};

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("state file {}: {message}", path.display())]
pub struct StateFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// A service as written: `{"protocol": "TCP", "address": "198.18.0.10:80"}`
/// or `{"fwmark": 1, "family": "ipv4"}` (the drain file writes them so too).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
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

/// Reads the JSON file `path` (the state file, the drain file); `None`
/// when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateFileError> {
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
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateFileError> {
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
