//! The HTTP side that `ipvs-exporter` and `ipvs-checker` share, so both
//! behave like every Prometheus exporter:
//!
//! - [`config`]: the `--web.config.file` format of Prometheus'
//!   exporter-toolkit (TLS server certificate and key, optional client CA
//!   for mutual TLS, minimum TLS version, `basic_auth_users` with bcrypt
//!   hashes), parsed strictly and validated at start-up;
//! - [`server`]: a hyper 1 server over TCP or TLS that asks for basic auth
//!   when configured, limits how long a client may take to send its
//!   headers, survives accept errors and shuts down gracefully;
//! - [`stream`]: a response body that a blocking thread writes as it goes,
//!   for pages too large to build whole first;
//! - [`scrape`]: the answer to a scrape, streamed and gzipped when the
//!   scraper accepts it;
//! - [`logging`]: `--log.level` and `--log.format=logfmt|json`;
//! - [`process`]: the `process_*` metrics and the `*_build_info` labels;
//! - [`pages`]: small shared pages, `/-/healthy` and `/-/ready` among them.
//!
//! The handler is any `Fn(Request) -> Future<Output = Response<B>>` with a
//! body `B` of `Bytes` (`Full`, or [`stream::StreamedBody`]):
//! authentication has already happened when it runs.

pub mod auth;
pub mod config;
pub mod logging;
pub mod pages;
pub mod process;
pub mod scrape;
pub mod server;
pub mod stream;

pub use config::{ClientAuth, ConfigError, WebConfig};
pub use logging::{LogFormat, LogLevel};
pub use server::{
    listen_addresses, resolve_listen_address, shutdown_signal, Limits, Server,
    DEFAULT_MAX_CONNECTIONS,
};

#[cfg(test)]
mod tests;
