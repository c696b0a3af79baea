//! `https`: the `http` check over TLS, with the server's chain verified
//! against the configured CA and the name checked (`server_name`, else the
//! Host, else the IP probed).
//!
//! A full handshake costs the server a signature and the checker a chain
//! verification, which at hundreds of servers every second is most of the
//! work. So each real server keeps its own TLS session ([`Sessions`]) and
//! resumes it, and makes a full handshake again (certificate sent,
//! verified, its expiry read) once `full_handshake_interval` has passed
//! since the last one, or after a probe that failed in TLS or HTTP (not
//! after a timeout or a refused connection): a changed or expiring
//! certificate is seen within that interval plus one probe interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::{ClientConfig, HandshakeKind};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::http::Kept;
use super::{Handshake, Phase, Phases, ProbeError, Success, Target};
use crate::config::{HttpsCheck, TlsCheck};

/// One real server's TLS sessions: a client configuration of its own
/// (so no session is offered to another server), and when its last full
/// handshake was.
#[derive(Debug)]
pub struct Sessions {
    base: Arc<ClientConfig>,
    config: Arc<ClientConfig>,
    full_handshake_interval: Duration,
    last_full: Option<Instant>,
}

impl Sessions {
    /// No session yet: the first probe makes a full handshake.
    pub fn new(tls: &TlsCheck) -> Self {
        Sessions {
            base: tls.client.clone(),
            config: fresh(&tls.client),
            full_handshake_interval: tls.full_handshake_interval,
            last_full: None,
        }
    }

    /// Whether a probe starting at `now` makes a full handshake: there is
    /// no session, or the last full handshake is `full_handshake_interval`
    /// old.
    pub fn due(&self, now: Instant) -> bool {
        self.last_full
            .is_none_or(|last| now.saturating_duration_since(last) >= self.full_handshake_interval)
    }

    /// The configuration for a probe starting at `now`: with the session
    /// cache, or with an empty one when a full handshake is due.
    fn config(&mut self, now: Instant) -> Arc<ClientConfig> {
        if self.due(now) {
            self.config = fresh(&self.base);
            self.last_full = None;
        }
        self.config.clone()
    }

    /// A handshake of `kind` finished at `now`.
    fn handshake_done(&mut self, kind: Handshake, now: Instant) {
        if kind == Handshake::Full {
            self.last_full = Some(now);
        }
    }

    /// Drops the session: the next probe makes a full handshake.
    pub(super) fn forget(&mut self) {
        self.last_full = None;
    }
}

/// `base` with an empty session cache of its own. One entry per name is
/// enough: a real server is probed under one name.
fn fresh(base: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut config = ClientConfig::clone(base);
    config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(4)));
    Arc::new(config)
}

/// TLS handshake (timed as `tls`), then the HTTP exchange over it; or,
/// with `keep_alive`, the exchange over the kept connection while no full
/// handshake is due.
pub async fn probe(
    target: &Target,
    check: &HttpsCheck,
    sessions: &mut Sessions,
    kept: &mut Option<Kept>,
    now: Instant,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    // A full handshake due is what bounds how old a verified certificate
    // may be: it ends a kept connection too.
    if sessions.due(now) {
        *kept = None;
    }
    if let Some(result) = super::http::over_kept(target, &check.http, kept, now, phases).await {
        return result;
    }
    let name = server_name(target, check);
    let tcp = super::tcp::connect(target, phases).await?;
    // The handshake's flights and the request are small writes, each
    // waiting for an answer: no Nagle delay. (Plain HTTP writes its one
    // request at once, so it spares the system call.)
    let _ = tcp.set_nodelay(true);
    phases.begin(Phase::Tls);
    let stream = TlsConnector::from(sessions.config(now))
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| super::tls::classify(e, &name))?;
    phases.end();
    let connection = stream.get_ref().1;
    let handshake = match connection.handshake_kind() {
        Some(HandshakeKind::Resumed) => Handshake::Resumed,
        _ => Handshake::Full,
    };
    sessions.handshake_done(handshake, now);
    let not_after = match handshake {
        Handshake::Full => connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(super::tls::not_after),
        Handshake::Resumed => None,
    };
    phases.begin(Phase::Response);
    let connection = Kept::new(stream, now);
    let mut success = super::http::over_new(connection, target, &check.http, kept, phases).await?;
    success.cert_not_after = not_after;
    success.handshake = Some(handshake);
    Ok(success)
}

fn server_name(target: &Target, check: &HttpsCheck) -> ServerName<'static> {
    if let Some(name) = &check.tls.server_name {
        return name.clone();
    }
    if let Some(host) = &check.http.host {
        // A Host with a port names the same server.
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        if let Ok(name) = ServerName::try_from(host.to_owned()) {
            return name;
        }
    }
    ServerName::IpAddress(target.addr.ip().into())
}
