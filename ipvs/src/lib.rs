//! The Linux kernel's IP Virtual Server (IPVS, the LVS load balancer) over
//! generic netlink, and parsers of its `/proc/net/ip_vs*` files.
//!
//! Two layers, as in the rust-netlink family crates:
//! - the wire: [`message::IpvsMessage`] with attribute enums that mirror
//!   `include/uapi/linux/ip_vs.h` ([`service::attr`], [`destination::attr`],
//!   [`stats::attr`]), parsed and emitted byte for byte, unknown attributes
//!   kept as `Other`;
//! - the domain: [`ServiceKey`] and [`DestinationKey`] say *which* object,
//!   [`ServiceConfig`] and [`DestinationConfig`] what an operator sets,
//!   [`Service`] and [`Destination`] what the kernel reports; a
//!   [`SyncDaemon`] is a connection-synchronisation daemon.
//!
//! [`Ipvs`] is the entry point: one method per ipvsadm command.
//!
//! ```no_run
//! use ipvs::{Ipvs, ServiceKey, DestinationKey};
//! let mut ipvs = Ipvs::connect()?;
//! for entry in ipvs.dump()? {
//!     println!("{} {}", entry.service.key, entry.service.config.scheduler);
//! }
//! let vip = ServiceKey::tcp("198.18.0.10:80".parse().unwrap());
//! let rip = DestinationKey::new("198.18.1.11:80".parse().unwrap());
//! ipvs.set_weight(&vip, &rip, 0)?; // quiesce: no new connections
//! # Ok::<(), ipvs::Error>(())
//! ```

#![warn(missing_docs)]

pub mod constants;
pub mod daemon;
pub mod destination;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
pub mod info;
mod link;
pub mod message;
pub mod netns;
mod nla;
pub mod proc;
pub mod service;
mod socket;
pub mod stats;

pub use daemon::{SyncDaemon, SyncState};
pub use destination::{
    Destination, DestinationConfig, DestinationKey, ForwardMethod, Tunnel, TunnelFlags, TunnelType,
    MAX_WEIGHT,
};
pub use error::{Error, InvalidRequest, Result};
pub use handle::{Ipvs, TableEntry};
pub use info::{Info, Timeouts, Version};
pub use proc::{read_ip_vs_conn, read_ip_vs_stats, ConnTableCounts, GlobalStats, ProcError};
pub use service::{
    AddressFamily, Netmask, Protocol, Service, ServiceConfig, ServiceFlags, ServiceKey,
};
pub use stats::Stats;

#[cfg(test)]
mod tests;
