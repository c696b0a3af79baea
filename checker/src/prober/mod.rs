//! Probers: one file per check type, one shape each (`probe(target,
//! settings) -> Result<Success, ProbeError>`), as blackbox_exporter's
//! `prober/`. [`probe`] runs the right one under the check's timeout, so
//! no prober can outlive it, whatever the server does.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::{Check, CheckKind};

pub mod http;
pub mod https;
pub mod tcp;
pub mod tls;

/// Where a probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The address and port to connect to.
    pub addr: SocketAddr,
    /// The local address to bind to, if set.
    pub source: Option<IpAddr>,
}

/// What a passing probe learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Success {
    /// The HTTP status, for HTTP(S) checks.
    pub status: Option<u16>,
    /// The leaf certificate's not-after, in seconds since the Unix epoch,
    /// for HTTPS checks.
    pub cert_not_after: Option<i64>,
}

/// Why a probe failed. [`ProbeError::reason`] is the short, stable name
/// used in logs, metrics and the status page; `Display` has the details.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The whole probe took longer than its timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The TCP connection could not be made.
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    /// The certificate was not issued by the configured CA.
    #[error("TLS: certificate not issued by the configured CA: {0}")]
    TlsUnknownCa(#[source] rustls::Error),
    /// The certificate is not valid for the name checked.
    #[error("TLS: certificate not valid for {name}: {source}")]
    TlsBadName {
        /// The name verified.
        name: String,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// The certificate has expired (or is not valid yet).
    #[error("TLS: certificate expired or not yet valid: {0}")]
    TlsExpired(#[source] rustls::Error),
    /// Another TLS failure.
    #[error("TLS: {0}")]
    Tls(#[source] io::Error),
    /// The HTTP exchange failed (connection closed, not HTTP, ...).
    #[error("HTTP: {0}")]
    Http(String),
    /// The status was not one of the expected.
    #[error("HTTP status {0} is not expected")]
    Status(u16),
    /// The body did not match the regex.
    #[error("body does not match /{0}/")]
    Body(String),
}

impl ProbeError {
    /// A short name of the failure: `timeout`, `connect`, `tls_unknown_ca`,
    /// `tls_bad_name`, `tls_expired`, `tls`, `http`, `status`, `body`.
    pub fn reason(&self) -> &'static str {
        match self {
            ProbeError::Timeout(_) => "timeout",
            ProbeError::Connect(_) => "connect",
            ProbeError::TlsUnknownCa(_) => "tls_unknown_ca",
            ProbeError::TlsBadName { .. } => "tls_bad_name",
            ProbeError::TlsExpired(_) => "tls_expired",
            ProbeError::Tls(_) => "tls",
            ProbeError::Http(_) => "http",
            ProbeError::Status(_) => "status",
            ProbeError::Body(_) => "body",
        }
    }
}

/// Runs `check` against `target`, bounded by `timeout` from the first SYN
/// to the last byte read.
pub async fn probe(
    check: &Check,
    target: &Target,
    timeout: Duration,
) -> Result<Success, ProbeError> {
    let run = async {
        match &check.kind {
            CheckKind::Tcp => tcp::probe(target, &()).await,
            CheckKind::Http(http) => http::probe(target, http).await,
            CheckKind::Https(https) => https::probe(target, https).await,
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests;
