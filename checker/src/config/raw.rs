//! The config file as written: serde structs that mirror the YAML, every
//! field optional where the file may leave it out, unknown keys refused.
//! [`super::validate`] turns them into the typed values of [`super`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::validate::{Dur, Family, Forward, Proto, RsAddress, Threshold, Weight};
use super::Mode;

/// Only what the first pass needs: the mode and the defaults, which every
/// service's validation depends on wherever they stand in the file.
#[derive(Debug, Deserialize)]
pub(super) struct Preamble {
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub defaults: Option<Settings>,
}

/// The whole file (second pass).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(default)]
    #[allow(dead_code)] // read by the first pass
    pub mode: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)] // read and validated by the first pass
    pub defaults: Option<serde::de::IgnoredAny>,
    pub state_file: Option<String>,
    pub set_expire_quiescent_template: Option<bool>,
    pub services: Vec<super::VirtualService>,
}

/// What `defaults:` may set, and each service and real server may override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub rise: Option<Threshold>,
    pub fall: Option<Threshold>,
    pub weight: Option<Weight>,
    pub source_address: Option<std::net::IpAddr>,
    pub slow_start: Option<Dur>,
    pub check: Option<super::Check>,
}

/// One `services:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Service {
    pub protocol: Option<Proto>,
    pub address: Option<std::net::SocketAddr>,
    pub fwmark: Option<u32>,
    pub family: Option<Family>,
    pub scheduler: Option<String>,
    pub scheduler_flags: Option<Vec<String>>,
    pub one_packet: Option<bool>,
    pub persistence: Option<u32>,
    pub persistence_netmask: Option<String>,
    pub quorum: Option<Quorum>,
    pub slow_start: Option<Dur>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub rise: Option<Threshold>,
    pub fall: Option<Threshold>,
    pub weight: Option<Weight>,
    pub source_address: Option<std::net::IpAddr>,
    pub check: Option<super::Check>,
    #[serde(default)]
    pub real_servers: Vec<RealServer>,
}

/// One `real_servers:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RealServer {
    pub address: RsAddress,
    pub weight: Option<Weight>,
    pub forward: Option<Forward>,
    pub upper_threshold: Option<u32>,
    pub lower_threshold: Option<u32>,
    pub slow_start: Option<Dur>,
    pub check_address: Option<std::net::SocketAddr>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub rise: Option<Threshold>,
    pub fall: Option<Threshold>,
    pub source_address: Option<std::net::IpAddr>,
    pub check: Option<super::Check>,
}

/// `quorum:` of a service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Quorum {
    pub min_up: u32,
    pub sorry_server: Option<SorryServer>,
}

/// `quorum.sorry_server:` of a service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SorryServer {
    pub address: RsAddress,
    pub weight: Option<Weight>,
    pub forward: Option<Forward>,
}

/// A `check:` block: one struct for every type, so that a field of the
/// wrong type is reported by name rather than as an unknown key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Check {
    #[serde(rename = "type")]
    pub kind: String,
    pub port: Option<u16>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub expect_status: Option<Vec<StatusSpec>>,
    pub body: Option<String>,
    pub keep_alive: Option<Dur>,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub min_tls_version: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub full_handshake_interval: Option<Dur>,
}

/// `expect_status` entries: `200` or `"200-399"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StatusSpec {
    Code(u16),
    Range(String),
}
