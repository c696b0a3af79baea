//! Drains: a real server held at weight 0 by an operator while it is
//! still probed (its health stays visible), until it is undrained or its
//! drain expires.
//!
//! A drain comes from one of three places ([`By`]): the admin API
//! (`ipvs-checker drain`), an operator's `ipvsadm -e ... -w 0` taken as a
//! drain (`out_of_band: drain`, the default), or a file in
//! `maintenance_dir`. The first two are kept in the drain file
//! ([`Drains::save`], JSON written atomically, in both modes), so they
//! survive a reload, a restart and a SIGKILL; a maintenance file is its
//! own record, and is read again at every pass over the table
//! ([`maintenance`]).
//!
//! The loop is the only writer: it records a drain in the file first and
//! in the shared state after, so what `/status` shows as drained is on
//! disk.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipvs::{DestinationKey, ServiceKey};
use serde::{Deserialize, Serialize};

use crate::state_file::{read_json, write_json, Service, StateFileError};

/// Where a drain came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// `ipvs-checker drain`, through the admin API.
    Api,
    /// Someone set the weight to 0 in the table (`ipvsadm -e ... -w 0`);
    /// someone setting a non-zero weight undrains it.
    OutOfBand,
    /// A file in `maintenance_dir` names the real server.
    MaintenanceDir,
}

impl By {
    /// As `/status` and the metrics' `by` label write it.
    pub fn as_str(self) -> &'static str {
        match self {
            By::Api => "api",
            By::OutOfBand => "out_of_band",
            By::MaintenanceDir => "maintenance_dir",
        }
    }
}

/// One drain.
#[derive(Debug, Clone, PartialEq)]
pub struct Drain {
    /// Where it came from.
    pub by: By,
    /// The basic auth user that asked for it (admin API with basic auth).
    pub user: Option<String>,
    /// Why, as given (`--reason`), or the maintenance file's name.
    pub reason: Option<String>,
    /// When it began.
    pub since: SystemTime,
    /// When it ends by itself (`--until`), if ever.
    pub until: Option<SystemTime>,
}

impl Drain {
    /// A drain from `by`, beginning `now`, without end.
    pub fn new(by: By, now: SystemTime) -> Self {
        Drain {
            by,
            user: None,
            reason: None,
            since: now,
            until: None,
        }
    }
}

/// The drains kept in the drain file, by service and real server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drains(BTreeMap<(ServiceKey, DestinationKey), Drain>);

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    drains: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    service: Service,
    real_server: SocketAddr,
    by: By,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Unix seconds.
    since: f64,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<f64>,
}

/// A time as Unix seconds (0 before 1970, which no clock here shows).
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn from_unix(seconds: f64) -> Option<SystemTime> {
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?))
        .flatten()
}

impl Drains {
    /// Reads the drain file; a missing file holds no drain (the first
    /// start). Anything else wrong is an error naming the file: starting
    /// without the drains would put drained real servers back in service.
    pub fn load(path: &Path) -> Result<Drains, StateFileError> {
        let error = |message: String| StateFileError {
            path: path.to_owned(),
            message,
        };
        let Some(file) = read_json::<File>(path)? else {
            return Ok(Drains::default());
        };
        let mut drains = Drains::default();
        for (i, e) in file.drains.into_iter().enumerate() {
            let service = ServiceKey::try_from(&e.service)
                .map_err(|m| error(format!("drains[{i}].service: {m}")))?;
            let since = from_unix(e.since)
                .ok_or_else(|| error(format!("drains[{i}].since: not a time: {}", e.since)))?;
            let until = match e.until {
                None => None,
                Some(t) => Some(
                    from_unix(t)
                        .ok_or_else(|| error(format!("drains[{i}].until: not a time: {t}")))?,
                ),
            };
            drains.0.insert(
                (service, DestinationKey::new(e.real_server)),
                Drain {
                    by: e.by,
                    user: e.user,
                    reason: e.reason,
                    since,
                    until,
                },
            );
        }
        Ok(drains)
    }

    /// Writes the drain file atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), StateFileError> {
        let file = File {
            drains: self
                .0
                .iter()
                .map(|((s, d), drain)| Entry {
                    service: Service::from(s),
                    real_server: d.addr,
                    by: drain.by,
                    user: drain.user.clone(),
                    reason: drain.reason.clone(),
                    since: unix(drain.since),
                    until: drain.until.map(unix),
                })
                .collect(),
        };
        write_json(path, &file)
    }

    /// The drain of `destination` in `service`, if any.
    pub fn get(&self, service: &ServiceKey, destination: &DestinationKey) -> Option<&Drain> {
        self.0.get(&(*service, *destination))
    }

    /// Drains `destination` of `service` (replacing an earlier drain).
    pub fn insert(&mut self, service: ServiceKey, destination: DestinationKey, drain: Drain) {
        self.0.insert((service, destination), drain);
    }

    /// Undrains it; the drain it had, if any.
    pub fn remove(&mut self, service: &ServiceKey, destination: &DestinationKey) -> Option<Drain> {
        self.0.remove(&(*service, *destination))
    }

    /// Removes the drains whose `until` passed at `now`; returns them.
    pub fn expire(&mut self, now: SystemTime) -> Vec<(ServiceKey, DestinationKey)> {
        let expired: Vec<_> = self
            .0
            .iter()
            .filter(|(_, d)| d.until.is_some_and(|u| u <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in &expired {
            self.0.remove(key);
        }
        expired
    }

    /// Every drain.
    pub fn iter(&self) -> impl Iterator<Item = (&(ServiceKey, DestinationKey), &Drain)> {
        self.0.iter()
    }
}

/// Maintenance files: in `maintenance_dir`, a file named after a real
/// server's address (`198.18.1.11`, `2001:db8::11`: every port) or address
/// and port (`198.18.1.11:80`, `[2001:db8::11]:80`) drains it, in every
/// service, while it exists. Other names are ignored.
pub mod maintenance {
    use super::*;

    /// What a file name matches.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Name {
        /// Every port of an address.
        Address(IpAddr),
        /// One address and port.
        Socket(SocketAddr),
    }

    impl Name {
        /// A file name as a real server's address, if it is one.
        pub fn parse(file: &str) -> Option<Name> {
            if let Ok(addr) = file.parse::<SocketAddr>() {
                return Some(Name::Socket(addr));
            }
            file.parse::<IpAddr>().ok().map(Name::Address)
        }

        /// Whether it names `destination`.
        pub fn matches(&self, destination: &DestinationKey) -> bool {
            match self {
                Name::Address(ip) => destination.addr.ip() == *ip,
                Name::Socket(addr) => destination.addr == *addr,
            }
        }
    }

    /// The files in `dir` that name a real server, by name; an error if
    /// the directory cannot be read (a missing one holds no file).
    pub fn scan(dir: &Path) -> std::io::Result<Vec<(String, Name)>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(name) = Name::parse(&file) {
                found.push((file, name));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::maintenance::Name;
    use super::*;

    fn rs(text: &str) -> DestinationKey {
        DestinationKey::new(text.parse().expect("address"))
    }

    /// A drain written and read back is the same drain, `until` and all;
    /// expired drains go, the others stay.
    #[test]
    fn drains_round_trip_and_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("drains.json");
        assert_eq!(Drains::load(&path).expect("missing"), Drains::default());
        let tcp = ServiceKey::tcp("198.18.0.10:80".parse().expect("address"));
        let fwm = ServiceKey::fwmark(3, ipvs::AddressFamily::Inet);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut drains = Drains::default();
        drains.insert(
            tcp,
            rs("198.18.1.11:80"),
            Drain {
                by: By::Api,
                user: Some("alice".into()),
                reason: Some("kernel update".into()),
                since: now,
                until: Some(now + Duration::from_secs(3600)),
            },
        );
        drains.insert(fwm, rs("198.18.1.12:0"), Drain::new(By::OutOfBand, now));
        drains.save(&path).expect("save");
        assert_eq!(Drains::load(&path).expect("load"), drains);
        assert!(drains.expire(now + Duration::from_secs(3599)).is_empty());
        assert_eq!(
            drains.expire(now + Duration::from_secs(3600)),
            vec![(tcp, rs("198.18.1.11:80"))]
        );
        assert!(drains.get(&fwm, &rs("198.18.1.12:0")).is_some());
    }

    #[test]
    fn a_damaged_drain_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("drains.json");
        std::fs::write(
            &path,
            r#"{"drains": [{"service": {"protocol": "TCP", "address": "198.18.0.10:80"}, "real_server": "198.18.1.11:80", "by": "someone", "since": 1}]}"#,
        )
        .expect("write");
        let e = Drains::load(&path).expect_err("unknown by");
        assert!(
            e.to_string().starts_with(&format!(
                "state file {}: unknown variant `someone`",
                path.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn maintenance_files_name_an_address_or_an_address_and_port() {
        let dir = tempfile::tempdir().expect("tempdir");
        for file in [
            "198.18.1.11",
            "[2001:db8::12]:80",
            "README",
            "198.18.1.13:80",
        ] {
            std::fs::write(dir.path().join(file), "").expect("write");
        }
        let found = maintenance::scan(dir.path()).expect("scan");
        let names: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            ["198.18.1.11", "198.18.1.13:80", "[2001:db8::12]:80"]
        );
        let any_port = Name::parse("198.18.1.11").expect("address");
        assert!(any_port.matches(&rs("198.18.1.11:80")));
        assert!(any_port.matches(&rs("198.18.1.11:443")));
        assert!(!any_port.matches(&rs("198.18.1.111:80")));
        let one_port = Name::parse("198.18.1.13:80").expect("socket");
        assert!(!one_port.matches(&rs("198.18.1.13:443")));
        assert!(Name::parse("[2001:db8::12]:80")
            .expect("v6")
            .matches(&rs("[2001:db8::12]:80")));
        assert!(maintenance::scan(&dir.path().join("missing"))
            .expect("missing")
            .is_empty());
    }
}
