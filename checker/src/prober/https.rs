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
//!
//! A server that made its full handshake in TLS 1.2 is offered TLS 1.2
//! only when its session is resumed: a ClientHello offering TLS 1.3 must
//! carry a key share, an X25519 key pair made for every probe (a large
//! part of a resumed probe's CPU, lab/bench/README.md) that a TLS 1.2
//! resumption never uses. The next full handshake offers every version again, so a server
//! that moved to TLS 1.3 is seen at it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::held_writes::HeldWrites;
use super::http::{Kept, Template};
use super::{Handshake, Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::{HttpsCheck, TlsCheck};

/// One real server's TLS sessions: a client configuration of its own
/// (so no session is offered to another server), and when its last full
/// handshake was.
#[derive(Debug)]
pub struct Sessions {
    base: Arc<ClientConfig>,
    base_tls12: Option<Arc<ClientConfig>>,
    /// `base` and `base_tls12` with one session cache of their own.
    config: Arc<ClientConfig>,
    config_tls12: Option<Arc<ClientConfig>>,
    /// Whether the last full handshake was TLS 1.2 (and TLS 1.2 only may
    /// be offered): then its session is resumed with `config_tls12`.
    resume_tls12: bool,
    full_handshake_interval: Duration,
    last_full: Option<Instant>,
}

impl Sessions {
    /// No session yet: the first probe makes a full handshake.
    pub fn new(tls: &TlsCheck) -> Self {
        let mut sessions = Sessions {
            base: tls.client.clone(),
            base_tls12: tls.client_tls12.clone(),
            config: tls.client.clone(),
            config_tls12: None,
            resume_tls12: false,
            full_handshake_interval: tls.full_handshake_interval,
            last_full: None,
        };
        sessions.empty();
        sessions
    }

    /// A new, empty session cache.
    fn empty(&mut self) {
        // One entry per name is enough: a real server is probed under one
        // name.
        let cache = Arc::new(ClientSessionMemoryCache::new(4));
        self.config = with_cache(&self.base, &cache);
        self.config_tls12 = self.base_tls12.as_ref().map(|b| with_cache(b, &cache));
        self.resume_tls12 = false;
    }

    /// Whether a probe starting at `now` makes a full handshake: there is
    /// no session, or the last full handshake is `full_handshake_interval`
    /// old.
    pub fn due(&self, now: Instant) -> bool {
        self.last_full
            .is_none_or(|last| now.saturating_duration_since(last) >= self.full_handshake_interval)
    }

    /// The configuration for a probe starting at `now`: with the session
    /// cache, or with an empty one when a full handshake is due; and
    /// whether it offers TLS 1.2 only (to resume a TLS 1.2 session).
    fn config(&mut self, now: Instant) -> (Arc<ClientConfig>, bool) {
        if self.due(now) {
            self.empty();
            self.last_full = None;
        }
        match &self.config_tls12 {
            Some(tls12) if self.resume_tls12 => (tls12.clone(), true),
            _ => (self.config.clone(), false),
        }
    }

    /// A handshake of `kind` in `version` finished at `now`.
    fn handshake_done(&mut self, kind: Handshake, version: Option<ProtocolVersion>, now: Instant) {
        if kind == Handshake::Full {
            self.last_full = Some(now);
            self.resume_tls12 = version == Some(ProtocolVersion::TLSv1_2);
        }
    }

    /// Whether the probe started at `now` made a full handshake.
    pub(super) fn full_handshake_made_at(&self, now: Instant) -> bool {
        self.last_full == Some(now)
    }

    /// Drops the session: the next probe makes a full handshake.
    pub(super) fn forget(&mut self) {
        self.last_full = None;
    }
}

/// `base` storing its sessions in `cache`.
fn with_cache(
    base: &Arc<ClientConfig>,
    cache: &Arc<ClientSessionMemoryCache>,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::clone(base);
    config.resumption = Resumption::store(cache.clone());
    Arc::new(config)
}

/// The connections an HTTPS probe may go over besides a new one.
#[derive(Debug)]
pub struct Connections<'a> {
    /// The one kept from the last probe (`keep_alive`).
    pub kept: &'a mut Option<Kept>,
    /// One made ahead of the probe's full-handshake turn.
    pub ahead: Option<TcpStream>,
}

/// TLS handshake (timed as `tls`), then the HTTP exchange over it; or,
/// with `keep_alive`, the exchange over the kept connection while no full
/// handshake is due.
pub async fn probe(
    target: &Target,
    ask: super::http::Ask<'_>,
    sessions: &mut Sessions,
    connections: Connections<'_>,
    now: Instant,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let Connections { kept, ahead } = connections;
    // A full handshake due is what bounds how old a verified certificate
    // may be: it ends a kept connection too.
    if sessions.due(now) {
        *kept = None;
    }
    if let Some(result) = super::http::over_kept(ask, kept, now, phases).await {
        return result;
    }
    let name = match ask.template.server_name() {
        Some(name) => name.clone(),
        None => ServerName::IpAddress(target.addr.ip().into()),
    };
    let (mut stream, handshake, not_after) =
        verified(target, ahead, sessions, &name, now, watch, phases).await?;
    // HTTP: the client speaks first.
    stream.get_mut().0.handshake_done(true);
    phases.begin(Phase::Response);
    let connection = Kept::new(stream, now);
    let mut success = super::http::over_new(connection, ask, kept, phases).await?;
    success.cert_not_after = not_after;
    success.handshake = Some(handshake);
    Ok(success)
}

/// A TLS handshake with `name` verified, over the connection made ahead
/// or a new one, the session resumed if one is due (timed as `connect` and
/// `tls`): the stream, the kind of handshake made and, for a full one, the
/// leaf certificate's not-after. The stream holds the handshake's last
/// flight until the caller says how it goes on
/// ([`HeldWrites::handshake_done`]).
pub(super) async fn verified(
    target: &Target,
    ahead: Option<TcpStream>,
    sessions: &mut Sessions,
    name: &ServerName<'static>,
    now: Instant,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<(TlsStream<HeldWrites<TcpStream>>, Handshake, Option<i64>), ProbeError> {
    let (config, tls12_only) = sessions.config(now);
    let stream = match handshake(target, ahead, config, name, watch, phases).await {
        // A server that no longer speaks TLS 1.2 (moved to TLS 1.3 only)
        // refuses the TLS 1.2-only offer: not a failure of the server.
        // Once more, offering every version (a full handshake, rare enough
        // not to wait for a full-handshake turn).
        Err(ProbeError::Tls(_)) if tls12_only => {
            sessions.forget();
            handshake(target, None, sessions.config(now).0, name, watch, phases).await?
        }
        result => result?,
    };
    let connection = stream.get_ref().1;
    let handshake = match connection.handshake_kind() {
        Some(HandshakeKind::Resumed) => Handshake::Resumed,
        _ => Handshake::Full,
    };
    sessions.handshake_done(handshake, connection.protocol_version(), now);
    let not_after = match handshake {
        Handshake::Full => connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(super::tls::not_after),
        Handshake::Resumed => None,
    };
    Ok((stream, handshake, not_after))
}

/// A TLS handshake (timed as `tls`) over the connection made ahead, or
/// over a new one (timed as `connect`).
async fn handshake(
    target: &Target,
    ahead: Option<TcpStream>,
    config: Arc<ClientConfig>,
    name: &ServerName<'static>,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<TlsStream<HeldWrites<TcpStream>>, ProbeError> {
    let tcp = match ahead {
        Some(tcp) => {
            watch.connecting(&tcp, target.addr, std::time::Instant::now());
            tcp
        }
        None => super::tcp::connect(target, watch, phases).await?,
    };
    // The handshake's flights and the request are small writes, each
    // waiting for an answer: no Nagle delay. (Plain HTTP writes its one
    // request at once, so it spares the system call.)
    let _ = tcp.set_nodelay(true);
    phases.begin(Phase::Tls);
    let stream = TlsConnector::from(config)
        .connect(name.clone(), HeldWrites::new(tcp))
        .await
        .map_err(|e| super::tls::classify(e, name))?;
    phases.end();
    Ok(stream)
}

/// The request of `check` to `target`, with the name its certificate
/// must have.
pub(super) fn template(target: &Target, check: &HttpsCheck) -> Result<Template, String> {
    Ok(Template::new(target, &check.http)?.with_server_name(server_name(target, check)))
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
