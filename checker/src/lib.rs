//! `ipvs-checker`: TCP, HTTP and HTTPS health checks of IPVS real servers
//! that set their weights through netlink (issue #4).
//!
//! - [`config`]: the YAML file, parsed then validated into typed values;
//! - [`prober`]: one prober per check type, each bounded by its timeout.

pub mod config;
pub mod prober;
