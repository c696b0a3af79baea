//! `ipvs-checker`: TCP, HTTP and HTTPS health checks of IPVS real servers
//! that set their weights through netlink.
//!
//! - [`config`]: the YAML file, parsed then validated into typed values;
//! - [`prober`]: one prober per check type, each bounded by its timeout;
//! - [`health`]: the rise/fall state machine, which reports only flips;
//! - [`reconcile`]: desired weights into netlink calls, through a small
//!   trait so tests use a fake table and production [`ipvs::Ipvs`];
//! - [`state`]: what the daemon knows (health, weights, errors, counters),
//!   in one place it writes and the web endpoint reads;
//! - [`daemon`]: the loop that ties them together;
//! - [`metrics`] and [`web`]: `/metrics` and `/status` over that state;
//! - [`status`]: `ipvs-checker status`, the `/status` page as a table;
//! - [`drain`] and [`admin`]: drains (admin API, out-of-band weight 0,
//!   maintenance files), kept in the drain file, and `ipvs-checker
//!   drain`/`undrain`;
//! - [`systemd`]: the notify protocol (ready, watchdog, stopping);
//! - [`notify`]: the notify hooks (exec and webhook) run on events.

pub mod admin;
pub mod config;
pub mod daemon;
pub mod drain;
pub mod health;
pub mod import;
pub mod metrics;
pub mod notify;
pub mod prober;
pub mod reconcile;
pub mod state;
pub mod state_file;
pub mod status;
pub mod systemd;
pub mod web;
