//! The config file as written: serde structs that mirror the YAML, every
//! field optional where the file may leave it out, unknown keys refused.
//! Scalars are already checked ([`super::scalars`]), and so is each
//! `check:` block ([`super::checks`]); [`super::service`] turns a service
//! into its typed value with what it inherits.

use serde::Deserialize;

use super::checks::CheckNode;
use super::hooks::RawHooks;
use super::scalars::{Dur, Family, Forward, Proto, RsAddress, Threshold, Weight};
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
    pub probe_through_vip: Option<bool>,
    pub check: Option<CheckNode>,
    pub checks: Option<Vec<CheckNode>>,
    pub hooks: Option<RawHooks>,
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
    pub probe_through_vip: Option<bool>,
    pub check: Option<CheckNode>,
    pub checks: Option<Vec<CheckNode>>,
    pub hooks: Option<RawHooks>,
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
    pub probe_through_vip: Option<bool>,
    pub check: Option<CheckNode>,
    pub checks: Option<Vec<CheckNode>>,
}

/// `vip_probes:`, the marks and the state file of the probe services of
/// `probe_through_vip`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VipProbes {
    pub first_mark: Option<u32>,
    pub marks: Option<u32>,
    pub state_file: Option<String>,
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
