//! Probers: one file per check type, one shape each (`probe(target,
//! settings, .., phases) -> Result<Success, ProbeError>`), as
//! blackbox_exporter's `prober/`. A [`Prober`] per real server runs the
//! right one under the check's timeout, so no prober can outlive it,
//! whatever the server does, and times its phases (connect, TLS,
//! response). It also keeps what lasts between probes: the HTTPS check's
//! TLS session, resumed until a full handshake is due again.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Check, CheckKind, Step};

pub mod conversation;
pub(crate) mod cpu_wait;
pub mod dns;
pub mod exec;
mod held_writes;
pub mod http;
pub mod https;
pub mod icmp;
mod phases;
pub mod set;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod watch;

pub use phases::{Phase, Phases};
pub use watch::{Side, Watch};

/// Where a probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The address and port to connect to.
    pub addr: SocketAddr,
    /// The local address to bind to, if set.
    pub source: Option<IpAddr>,
    /// Set when the probe goes through the VIP (`addr` is then the VIP):
    /// the real server, and the mark the socket carries (`SO_MARK`), the
    /// mark of the probe service that takes it there (see
    /// [`crate::config::ProbeService`]).
    pub through: Option<crate::config::Through>,
}

/// What a passing probe learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Success {
    /// The HTTP status, for HTTP(S) checks.
    pub status: Option<u16>,
    /// The leaf certificate's not-after, in seconds since the Unix epoch,
    /// for HTTPS checks that made a full handshake (a resumed session sends
    /// no certificate).
    pub cert_not_after: Option<i64>,
    /// The TLS handshake made, for HTTPS checks.
    pub handshake: Option<Handshake>,
    /// The weight an `exec` check's program set by its exit status
    /// (`dynamic_weight`).
    pub weight: Option<u32>,
}

/// The kind of TLS handshake an HTTPS probe made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// The server sent its certificate, and it was verified.
    Full,
    /// A session from an earlier full handshake was resumed.
    Resumed,
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
    /// The body's MD5 is not `body_md5`, or the body is too long to know it.
    #[error("body MD5: {0}")]
    BodyMd5(String),
    /// A `send` step of a conversation could not write.
    #[error("step {step}: send: {source}")]
    Send {
        /// The step's place, from 1.
        step: usize,
        /// The write's error.
        #[source]
        source: io::Error,
    },
    /// An `expect` step of a conversation found no match.
    #[error("step {step}: expected /{regex}/: {got}")]
    Expect {
        /// The step's place, from 1.
        step: usize,
        /// The regex.
        regex: String,
        /// What came instead.
        got: String,
    },
    /// An `exec` check's program could not be run.
    #[error("exec: {0}")]
    Exec(String),
    /// An `exec` check's program failed: its exit status (or signal), and
    /// the start of what it wrote.
    #[error("{0}")]
    Exit(String),
    /// A DNS exchange failed: the answer malformed, not to the query, or
    /// the TCP connection closed.
    #[error("DNS: {0}")]
    Dns(String),
    /// The DNS answer's rcode is not the expected one.
    #[error("DNS rcode {got}, expected {want}")]
    DnsRcode {
        /// The answer's.
        got: String,
        /// The check's.
        want: String,
    },
    /// No DNS answer record matched.
    #[error("DNS answer: {0}")]
    DnsAnswer(String),
    /// No ICMP socket could be opened (permissions), or it failed.
    #[error("ICMP: {0}")]
    Icmp(String),
    /// One of a real server's several checks failed (`checks:`).
    #[error("check {number} ({kind}): {source}")]
    Check {
        /// Its place in `checks:`, from 1.
        number: usize,
        /// Its type.
        kind: &'static str,
        /// Why it failed.
        source: Box<ProbeError>,
    },
}

impl ProbeError {
    /// A short name of the failure: `timeout`, `connect`, `tls_unknown_ca`,
    /// `tls_bad_name`, `tls_expired`, `tls`, `http`, `status`, `body`,
    /// `body_md5`, `send`, `expect`, `exec`, `exit`, `dns`, `dns_rcode`, `dns_answer`, `icmp`.
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
            ProbeError::BodyMd5(_) => "body_md5",
            ProbeError::Send { .. } => "send",
            ProbeError::Expect { .. } => "expect",
            ProbeError::Exec(_) => "exec",
            ProbeError::Exit(_) => "exit",
            ProbeError::Dns(_) => "dns",
            ProbeError::DnsRcode { .. } => "dns_rcode",
            ProbeError::DnsAnswer(_) => "dns_answer",
            ProbeError::Icmp(_) => "icmp",
            ProbeError::Check { source, .. } => source.reason(),
        }
    }

    /// The failure itself, out of the [`ProbeError::Check`] that names
    /// which of several checks it was.
    pub fn cause(&self) -> &ProbeError {
        match self {
            ProbeError::Check { source, .. } => source.cause(),
            other => other,
        }
    }
}

/// When a probe must be done: its timeout, counted from its start. A
/// prober that can tell a wrong answer from none (a conversation that
/// read a wrong banner) stops at it to say so, just before the timeout
/// that bounds every probe would.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The instant.
    pub at: tokio::time::Instant,
    /// The probe's timeout.
    pub timeout: Duration,
}

/// One probe's result and timing.
#[derive(Debug)]
pub struct Outcome {
    /// What the probe found.
    pub result: Result<Success, ProbeError>,
    /// How long its phases took.
    pub phases: Phases,
    /// For a probe that timed out, whose timeout it was, when its socket
    /// could tell (see [`watch`]).
    pub timed_out_on: Option<Side>,
    /// For an `exec` check's program that ended, what it (and its start)
    /// waited for a CPU (see [`cpu_wait`]).
    pub program_waited: Option<Duration>,
}

impl Outcome {
    /// The outcome of a probe that ended with `result`.
    fn ended(result: Result<Success, ProbeError>, phases: Phases) -> Self {
        Outcome {
            result,
            phases,
            timed_out_on: None,
            program_waited: None,
        }
    }
}

/// The prober of one real server: its check and target, and what it keeps
/// from one probe to the next (the TLS session of an HTTPS check, the
/// socket of a `dns` check over UDP).
#[derive(Debug)]
pub struct Prober {
    check: Arc<Check>,
    target: Target,
    sessions: Option<https::Sessions>,
    /// The connection kept for the next probe (`keep_alive`).
    kept: Option<http::Kept>,
    /// The socket kept for the next `dns` probe over UDP.
    dns: Option<dns::Kept>,
    /// The program of an `exec` check, for this real server.
    program: Option<exec::Prepared>,
    /// The request of an `http` or `https` check, for this real server
    /// (or why it cannot be made).
    request: Option<Result<http::Template, String>>,
    /// The connection made ahead of the probe's turn ([`Prober::connect_ahead`]).
    ahead: Option<Ahead>,
    /// The socket of the probe in progress, to judge its timeout by.
    watch: Watch,
}

/// A connection made before the probe waited for its turn.
#[derive(Debug)]
struct Ahead {
    stream: tcp::Connection,
    /// When it was made, and how long that took.
    made: Instant,
    took: Duration,
}

impl Prober {
    /// A prober of `target` with `check`.
    pub fn new(check: Arc<Check>, target: Target) -> Self {
        let sessions = match &check.kind {
            CheckKind::Https(https) => Some(https::Sessions::new(&https.tls)),
            CheckKind::Conversation(c) => c.tls.as_ref().map(https::Sessions::new),
            _ => None,
        };
        let program = match &check.kind {
            CheckKind::Exec(e) => Some(exec::Prepared::new(e, &target, &exec::Virtual::default())),
            _ => None,
        };
        let request = match &check.kind {
            CheckKind::Http(http) => Some(http::Template::new(&target, http)),
            CheckKind::Https(https) => Some(https::template(&target, https)),
            _ => None,
        };
        // A banner protocol in the clear: the server's first words come
        // before any of the checker's.
        let server_speaks_first = matches!(
            &check.kind,
            CheckKind::Conversation(c) if c.tls.is_none() && matches!(c.steps.first(), Some(Step::Expect(_)))
        );
        Prober {
            check,
            target,
            sessions,
            kept: None,
            dns: None,
            program,
            request,
            ahead: None,
            watch: Watch::new(server_speaks_first),
        }
    }

    /// Makes the connection of a probe that is to wait for its turn for a
    /// full TLS handshake, before the wait: a server that refuses
    /// connections, or does not answer, is then known within the timeout
    /// and not after the turns of every other server (hundreds at a
    /// start-up). `None`: connected, the [`Prober::probe`] that follows
    /// goes on over this connection, with what is left of its timeout.
    /// `Some`: the probe ended here, failed.
    ///
    /// A turn that comes later than `timeout` after the connection was
    /// made does not use it: a server may close a connection that has
    /// said nothing for long, and that is not its failure. The probe then
    /// connects again.
    /// Only an `https` check makes its connection ahead (a `tcp`
    /// conversation over TLS waits for its turn first).
    pub async fn connect_ahead(&mut self, timeout: Duration) -> Option<Outcome> {
        self.ahead = None;
        if !matches!(self.check.kind, CheckKind::Https(_)) {
            return None;
        }
        let mut phases = Phases::new();
        let began = Instant::now();
        let result = {
            let connect = std::pin::pin!(tcp::connect(&self.target, &self.watch, &mut phases));
            self.watch.within(connect, timeout, timeout).await
        };
        phases.end();
        match result {
            Ok(Ok(stream)) => {
                let made = Instant::now();
                self.ahead = Some(Ahead {
                    stream,
                    made,
                    took: made.saturating_duration_since(began),
                });
                None
            }
            Ok(Err(e)) => Some(Outcome::ended(Err(e), phases)),
            Err(side) => Some(Outcome {
                result: Err(ProbeError::Timeout(timeout)),
                phases,
                timed_out_on: side,
                program_waited: None,
            }),
        }
    }

    /// Whether the target refuses a connection now, asked out of turn
    /// when its siblings began to refuse (see `daemon::hurries`): `Some`
    /// when the connection was refused or the target unreachable, a
    /// failed probe of this check as its own connect would have been;
    /// `None` when it connected (closed at once, with a reset), did not
    /// answer within `timeout` (its own probe will judge that), or the
    /// check opens no TCP connection of its own.
    pub async fn refuses(&mut self, timeout: Duration) -> Option<Outcome> {
        if !matches!(
            self.check.kind,
            CheckKind::Tcp | CheckKind::Http(_) | CheckKind::Https(_) | CheckKind::Conversation(_)
        ) {
            return None;
        }
        let mut phases = Phases::new();
        let connected = {
            let connect = std::pin::pin!(tcp::connect(&self.target, &self.watch, &mut phases));
            self.watch.within(connect, timeout, timeout).await
        };
        match connected {
            Ok(Err(e)) => {
                phases.end();
                Some(Outcome::ended(Err(e), phases))
            }
            Ok(Ok(_)) | Err(_) => None,
        }
    }

    /// This prober with the virtual service its real server belongs to,
    /// which an `exec` check's program is told.
    pub fn of_service(mut self, service: &exec::Virtual) -> Self {
        if let CheckKind::Exec(e) = &self.check.kind {
            self.program = Some(exec::Prepared::new(e, &self.target, service));
        }
        self
    }

    /// Whether a probe runs a program (an `exec` check): it takes one of
    /// the turns `--checker.max-programs` allows.
    pub fn runs_program(&self) -> bool {
        self.program.is_some()
    }

    /// Its check.
    pub fn check(&self) -> &Arc<Check> {
        &self.check
    }

    /// Whether a probe starting at `now` would make a full TLS handshake
    /// (an HTTPS check with no session to resume, whose
    /// `full_handshake_interval` has passed, or whose TLS 1.3 session has
    /// no ticket left and no kept connection to go over).
    pub fn full_handshake_due(&self, now: Instant) -> bool {
        let over_kept = match (&self.kept, &self.check.kind) {
            (Some(kept), CheckKind::Https(https)) => https
                .http
                .keep_alive
                .is_some_and(|keep_alive| kept.young(keep_alive, now)),
            _ => false,
        };
        self.sessions
            .as_ref()
            .is_some_and(|s| s.due(now, over_kept))
    }

    /// Runs the check once, bounded by `timeout` from the first SYN to the
    /// last byte read; or, when the checker's thread was late, until the
    /// server has had that long from the checker's last bytes, at most
    /// twice `timeout` (see [`watch`]).
    pub async fn probe(&mut self, timeout: Duration) -> Outcome {
        self.probe_at(timeout, Instant::now()).await
    }

    /// [`Prober::probe`] as if started at `now` (which decides whether a
    /// full TLS handshake is due).
    pub async fn probe_at(&mut self, timeout: Duration, now: Instant) -> Outcome {
        let mut phases = Phases::new();
        let mut budget = timeout;
        let ahead = match self.ahead.take() {
            Some(ahead) if now.saturating_duration_since(ahead.made) < timeout => {
                phases = phases.with(Phase::Connect, ahead.took);
                budget = timeout.saturating_sub(ahead.took);
                Some(ahead.stream)
            }
            _ => None,
        };
        let deadline = Deadline {
            at: tokio::time::Instant::now() + budget,
            timeout,
        };
        let (check, target, watch) = (&self.check, &self.target, &self.watch);
        let (sessions, kept, kept_dns) = (&mut self.sessions, &mut self.kept, &mut self.dns);
        let program = &self.program;
        let request = match &self.request {
            Some(Ok(template)) => Ok(template),
            Some(Err(e)) => Err(ProbeError::Http(e.clone())),
            None => Err(ProbeError::Http("the check makes no HTTP request".into())),
        };
        let mut program_waited = None;
        let waited = &mut program_waited;
        // Every check type's future is boxed but `tcp`'s (a connect: a
        // few hundred bytes). The others hold an HTTP exchange's or an
        // echo's buffers, TLS state, a program's buffers and process
        // handling: up to kilobytes. Unboxed, every probe's future would
        // be as large as the largest, and each real server's task holds
        // one (see `ProbeTask::run`).
        let ended = {
            let run = std::pin::pin!(async {
                match (&check.kind, sessions.as_mut()) {
                    (CheckKind::Tcp, _) => tcp::probe(target, watch, &mut phases).await,
                    (CheckKind::Http(http), _) => {
                        let ask = http::Ask {
                            check: http,
                            template: request?,
                        };
                        Box::pin(http::probe(target, ask, kept, now, watch, &mut phases)).await
                    }
                    (CheckKind::Https(https), sessions) => {
                        let mut fresh = None;
                        let sessions = match sessions {
                            Some(sessions) => sessions,
                            None => fresh.insert(https::Sessions::new(&https.tls)),
                        };
                        let connections = https::Connections { kept, ahead };
                        let ask = http::Ask {
                            check: &https.http,
                            template: request?,
                        };
                        Box::pin(https::probe(
                            target,
                            ask,
                            sessions,
                            connections,
                            now,
                            watch,
                            &mut phases,
                        ))
                        .await
                    }
                    (CheckKind::Conversation(c), sessions) => {
                        Box::pin(conversation::probe(
                            target,
                            c,
                            sessions,
                            now,
                            deadline,
                            watch,
                            &mut phases,
                        ))
                        .await
                    }
                    (CheckKind::Dns(d), _) => {
                        Box::pin(dns::probe(target, d, kept_dns, watch, &mut phases)).await
                    }
                    (CheckKind::Udp(u), _) => {
                        Box::pin(udp::probe(target, u, deadline, watch, &mut phases)).await
                    }
                    (CheckKind::Icmp, _) => Box::pin(icmp::probe(target, &mut phases)).await,
                    (CheckKind::Exec(e), _) => match program {
                        Some(program) => {
                            Box::pin(exec::probe(e, program, watch, waited, &mut phases)).await
                        }
                        None => Err(ProbeError::Exec("no program prepared".into())),
                    },
                }
            });
            self.watch.within(run, budget, timeout).await
        };
        let (result, timed_out_on) = match ended {
            Ok(result) => (result, None),
            Err(side) => (Err(ProbeError::Timeout(timeout)), side),
        };
        phases.end();
        // A server that failed in TLS or HTTP is not judged on a session
        // from before: the next probe verifies its certificate again. A
        // timeout or a refused connection says nothing about the
        // certificate, and dropping the session then would make every
        // retry of an overloaded server a full handshake, the costly kind;
        // unless this probe's own handshake was the full one: the
        // certificate's expiry is taken from a successful probe, so the
        // next one makes it again rather than resume past it.
        if let (Err(e), Some(sessions)) = (&result, &mut self.sessions) {
            if !matches!(e, ProbeError::Timeout(_) | ProbeError::Connect(_))
                || sessions.full_handshake_made_at(now)
            {
                sessions.forget();
            }
        }
        Outcome {
            result,
            phases,
            timed_out_on,
            program_waited,
        }
    }
}

#[cfg(test)]
mod tests;
