//! `ipvs-exporter`: the kernel's IPVS table, its counters, its connection
//! table and persistence templates as Prometheus metrics.
//!
//! A scrape is two steps, as the style guide wants: [`collect`] gathers a
//! [`snapshot::Snapshot`] (the blocking netlink and `/proc` reads on a
//! blocking thread, under a timeout, shared by simultaneous scrapes), then
//! [`encode::encode`] turns it into the text format or OpenMetrics, a pure
//! function (hence the golden exposition test from a fixed snapshot).
//! [`http`] serves it behind `ipvs_web`'s server (TLS, basic auth).

pub mod collect;
pub mod conntable;
pub mod encode;
pub mod filter;
pub mod http;
pub mod memory;
pub mod snapshot;

#[cfg(test)]
mod tests;
