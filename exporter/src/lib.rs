//! `ipvs-exporter`: the kernel's IPVS table, its counters, its connection
//! table and persistence templates as Prometheus metrics.
//!
//! A scrape is two steps, so that the kernel's answers are complete before
//! a byte is written and the writing can be tested without a kernel:
//! [`collect`] gathers a [`snapshot::Snapshot`] (the blocking netlink and
//! `/proc` reads on a blocking thread, under a timeout, shared by
//! simultaneous scrapes as one [`encode::Exposition`]), then [`encode`]
//! turns it into the text format or OpenMetrics, a pure function (hence
//! the golden exposition test from a fixed snapshot).
//! [`http`] serves it behind `ipvs_web`'s server (TLS, basic auth).

pub mod collect;
pub mod conntable;
pub mod director;
pub mod encode;
pub mod filter;
pub mod http;
pub mod memory;
pub mod snapshot;

#[cfg(test)]
mod tests;
