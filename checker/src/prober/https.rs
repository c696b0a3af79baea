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
//!
//! A TLS 1.3 session is resumed with a ticket that serves once, and the
//! server sends the next one after the handshake: a probe that times out
//! spends its ticket and gets none. When none is left the next handshake
//! is full, so it is due as one ([`Sessions::due`]) and waits for its turn
//! like any other.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use super::tcp::Connection;
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::{ClientConfig, HandshakeKind, NamedGroup, ProtocolVersion};
use rustls_pki_types::ServerName;
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
    /// Where `config` and `config_tls12` store their sessions.
    store: Arc<Store>,
    /// Whether the last handshake was TLS 1.3 (resumed with tickets).
    tls13: bool,
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
            store: Arc::default(),
            tls13: false,
        };
        sessions.empty();
        sessions
    }

    /// A new, empty session store.
    fn empty(&mut self) {
        self.store = Arc::default();
        self.config = with_store(&self.base, &self.store);
        self.config_tls12 = self.base_tls12.as_ref().map(|b| with_store(b, &self.store));
        self.resume_tls12 = false;
    }

    /// Whether a probe starting at `now` makes a full handshake: its
    /// certificate must be verified again ([`Sessions::certificate_due`]),
    /// or, over a new connection (not `over_kept`), a TLS 1.3 session has
    /// no ticket left to resume with.
    pub fn due(&self, now: Instant, over_kept: bool) -> bool {
        self.certificate_due(now) || (!over_kept && self.tls13 && !self.store.ticket_left())
    }

    /// Whether the certificate is to be verified again: there is no
    /// session, or the last full handshake is `full_handshake_interval`
    /// old.
    fn certificate_due(&self, now: Instant) -> bool {
        self.last_full
            .is_none_or(|last| now.saturating_duration_since(last) >= self.full_handshake_interval)
    }

    /// The configuration for a probe starting at `now`: with the session
    /// cache, or with an empty one when a full handshake is due; and
    /// whether it offers TLS 1.2 only (to resume a TLS 1.2 session).
    fn config(&mut self, now: Instant) -> (Arc<ClientConfig>, bool) {
        if self.due(now, false) {
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
        self.tls13 = version == Some(ProtocolVersion::TLSv1_3);
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

/// `base` storing its sessions in `store`.
fn with_store(base: &Arc<ClientConfig>, store: &Arc<Store>) -> Arc<ClientConfig> {
    let mut config = ClientConfig::clone(base);
    config.resumption = Resumption::store(store.clone());
    Arc::new(config)
}

/// TLS 1.3 tickets kept: a server sends one or two a connection, and the
/// spares let a few probes in a row time out before a full handshake is
/// due. More would only be older ones, held for every real server.
const TICKETS_KEPT: usize = 4;

/// One real server's sessions, as rustls' memory cache keeps them for
/// one name, but telling whether a TLS 1.3 ticket is left.
#[derive(Default)]
struct Store(Mutex<Stored>);

#[derive(Default)]
struct Stored {
    /// The name the sessions are for: the store holds none for another.
    name: Option<ServerName<'static>>,
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first, each offered once.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl Store {
    /// Whether a TLS 1.3 ticket is left to resume with.
    fn ticket_left(&self) -> bool {
        !self.lock().tls13.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Stored> {
        self.0.lock()
    }

    /// The sessions of `name`, if it is the store's.
    fn of(&self, name: &ServerName<'_>) -> Option<MutexGuard<'_, Stored>> {
        let stored = self.lock();
        (stored.name.as_ref() == Some(name)).then_some(stored)
    }

    /// The sessions of `name`, emptied first if they were another name's.
    fn for_name(&self, name: ServerName<'static>) -> MutexGuard<'_, Stored> {
        let mut stored = self.lock();
        if stored.name.as_ref() != Some(&name) {
            *stored = Stored {
                name: Some(name),
                ..Stored::default()
            };
        }
        stored
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sessions' secrets are not shown.
        let stored = self.lock();
        f.debug_struct("Store")
            .field("name", &stored.name)
            .field("tls12", &stored.tls12.is_some())
            .field("tls13", &stored.tls13.len())
            .finish()
    }
}

impl ClientSessionStore for Store {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.for_name(name).kx_hint = Some(group);
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.of(name)?.kx_hint
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.for_name(name).tls12 = Some(value);
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.of(name)?.tls12.clone()
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        if let Some(mut stored) = self.of(name) {
            stored.tls12 = None;
        }
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut stored = self.for_name(name);
        if stored.tls13.len() == TICKETS_KEPT {
            stored.tls13.pop_front();
        }
        stored.tls13.push_back(value);
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.of(name)?.tls13.pop_front()
    }
}

/// The connections an HTTPS probe may go over besides a new one.
#[derive(Debug)]
pub struct Connections<'a> {
    /// The one kept from the last probe (`keep_alive`).
    pub kept: &'a mut Option<Kept>,
    /// One made ahead of the probe's full-handshake turn.
    pub ahead: Option<Connection>,
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
    // The certificate due is what bounds how old a verified one may be:
    // it ends a kept connection too (which needs no ticket).
    if sessions.certificate_due(now) {
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
    let mut success = super::http::over_new(stream, now, 0, ask, kept, phases).await?;
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
    ahead: Option<Connection>,
    sessions: &mut Sessions,
    name: &ServerName<'static>,
    now: Instant,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<(TlsStream<HeldWrites<Connection>>, Handshake, Option<i64>), ProbeError> {
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
/// over a new one (timed as `connect`), whose ClientHello its thread's
/// set sends as it is made (see [`super::tcp::make_sending`]): the probe
/// is woken by the server's flight, not by the connection made as well.
async fn handshake(
    target: &Target,
    ahead: Option<Connection>,
    config: Arc<ClientConfig>,
    name: &ServerName<'static>,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<TlsStream<HeldWrites<Connection>>, ProbeError> {
    let connector = TlsConnector::from(config);
    let stream = match ahead {
        Some(tcp) => {
            watch.connecting(&tcp, target.addr, std::time::Instant::now());
            nodelay(&tcp);
            phases.begin(Phase::Tls);
            connector.connect(name.clone(), HeldWrites::new(tcp)).await
        }
        None => {
            let tcp = super::tcp::to_send(target, watch, phases)?;
            nodelay(&tcp);
            // rustls makes its ClientHello as the client is made; it is
            // taken out to be sent by the set.
            let mut hello = Vec::new();
            let mut tls = connector.connect_with(name.clone(), HeldWrites::new(tcp), |client| {
                let _ = client.write_tls(&mut hello);
            });
            let Some(stream) = tls.get_mut() else {
                return Err(ProbeError::Tls(io::Error::other(
                    "the TLS client ended before its handshake",
                )));
            };
            let hello: Arc<[u8]> = hello.into();
            // None when the client could not be made: its error comes as
            // the handshake is awaited.
            let first = (!hello.is_empty()).then_some(&hello);
            let sent = super::tcp::make_sending(stream.get_mut(), target, first, phases).await?;
            let went = super::tcp::begins_where_sent(phases, Phase::Tls, sent);
            stream.hold(hello.get(went..).unwrap_or_default());
            tls.await
        }
    };
    let stream = stream.map_err(|e| super::tls::classify(e, name))?;
    phases.end();
    Ok(stream)
}

/// The handshake's flights and the request are small writes, each
/// waiting for an answer: no Nagle delay. (Plain HTTP writes its one
/// request at once, so it spares the system call.)
fn nodelay(tcp: &Connection) {
    // Only a saving: without it the kernel sends the writes a little
    // later.
    let _ = tcp.set_nodelay();
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
