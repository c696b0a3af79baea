//! The HTTP server: hyper 1 over TCP or TLS, basic auth in front of the
//! handler, bounded against slow clients, stopped gracefully.
//!
//! - A failed `accept` (out of descriptors, a connection reset before it
//!   was taken) is logged and retried after a pause; it never ends the
//!   server.
//! - A client has [`Limits::header_read`] to send its request head, and
//!   [`Limits::tls_handshake`] to finish a TLS handshake; after that the
//!   connection is closed, so slow or silent clients cannot pile up.
//! - At most [`Limits::max_connections`] connections are open at once
//!   (`--web.max-connections`, Prometheus' own flag and default), and at
//!   most half the open-files limit: past it, new ones wait in the
//!   kernel's backlog until one closes, so a flood of clients cannot take
//!   the descriptors the daemon needs for its own work (the checker's
//!   probes, the exporter's netlink sockets and /proc reads).
//! - On shutdown the listener closes, requests in flight finish (up to
//!   [`Limits::shutdown_grace`]), idle keep-alive connections are closed.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::auth::BasicAuth;
use crate::config::WebConfig;

/// Time limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send a request head (each request of a
    /// keep-alive connection included).
    pub header_read: Duration,
    /// Time a client has to complete the TLS handshake.
    pub tls_handshake: Duration,
    /// Pause after a failed `accept` before trying again.
    pub accept_retry: Duration,
    /// How long requests in flight may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// The open-files limit that connections may take at most half of;
    /// `None`: the process's soft limit when the server starts.
    pub open_files: Option<u64>,
}

/// `--web.max-connections`' default, as Prometheus'.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;

/// How often a server short of connections or of accepts says so.
const WARN_EVERY: Duration = Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            tls_handshake: Duration::from_secs(10),
            accept_retry: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            open_files: None,
        }
    }
}

impl Limits {
    /// [`Limits::max_connections`], lowered to half the open-files limit
    /// where it is more (said once, at start): the other half stays for
    /// the daemon's own descriptors.
    fn connection_limit(&self) -> usize {
        let open_files = self
            .open_files
            .or_else(|| ipvs_common::open_files::open_files_limit().ok());
        let half = open_files.map_or(usize::MAX, |limit| {
            usize::try_from(limit / 2).unwrap_or(usize::MAX)
        });
        if self.max_connections > half {
            tracing::warn!(
                max_connections = self.max_connections,
                open_files,
                lowered_to = half.max(1),
                "--web.max-connections is more than half the open files limit: lowered, so that clients cannot take the descriptors the daemon needs"
            );
        }
        self.max_connections.min(half).max(1)
    }
}

/// A bound listener with its web configuration, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
    limits: Limits,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// The addresses a `--web.listen-address` value stands for, in the order
/// to try them. A host name is looked up with the system's resolver, which
/// blocks: call this before the async runtime starts, or use
/// [`resolve_listen_address`] on it.
pub fn listen_addresses(text: &str) -> io::Result<Vec<SocketAddr>> {
    match every_address(text)? {
        Some(addresses) => Ok(addresses),
        None => found(text, text.to_socket_addrs()),
    }
}

/// [`listen_addresses`] for async code: a host name is looked up by
/// tokio, off the async threads.
pub async fn resolve_listen_address(text: &str) -> io::Result<Vec<SocketAddr>> {
    match every_address(text)? {
        Some(addresses) => Ok(addresses),
        None => found(text, tokio::net::lookup_host(text).await),
    }
}

fn invalid_listen_address(text: &str, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("--web.listen-address {text:?}: {what}"),
    )
}

/// `:PORT`: every address, IPv6 (which takes IPv4 too where the kernel
/// has IPv6) then IPv4; `None` for a `HOST:PORT` to look up.
fn every_address(text: &str) -> io::Result<Option<Vec<SocketAddr>>> {
    let Some(port) = text.strip_prefix(':') else {
        return Ok(None);
    };
    let port: u16 = port
        .parse()
        .map_err(|_| invalid_listen_address(text, "invalid port"))?;
    Ok(Some(vec![
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
    ]))
}

/// The addresses a lookup of `text` found, or an error naming the flag.
fn found(
    text: &str,
    lookup: io::Result<impl Iterator<Item = SocketAddr>>,
) -> io::Result<Vec<SocketAddr>> {
    let addresses: Vec<SocketAddr> = lookup
        .map_err(|_| invalid_listen_address(text, "not HOST:PORT"))?
        .collect();
    if addresses.is_empty() {
        return Err(invalid_listen_address(text, "no address"));
    }
    Ok(addresses)
}

impl Server {
    /// Binds `addr` and prepares TLS and basic auth as `config` says.
    pub async fn bind(addr: SocketAddr, config: &WebConfig, limits: Limits) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            tls: config.tls.clone().map(TlsAcceptor::from),
            auth: BasicAuth::new(&config.basic_auth_users),
            limits,
        })
    }

    /// Binds a `--web.listen-address` as Prometheus exporters take it:
    /// `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` for every address (IPv6 and
    /// IPv4 on one socket where the kernel has IPv6, IPv4 alone otherwise).
    /// The first address that binds wins; the error names the flag's value
    /// and the last address tried.
    pub async fn bind_listen_address(
        text: &str,
        config: &WebConfig,
        limits: Limits,
    ) -> io::Result<Self> {
        Server::bind_first(&resolve_listen_address(text).await?, config, limits).await
    }

    /// Binds the first of `addresses` that binds; the error names the last
    /// address tried.
    pub async fn bind_first(
        addresses: &[SocketAddr],
        config: &WebConfig,
        limits: Limits,
    ) -> io::Result<Self> {
        let mut last_error = None;
        for &addr in addresses {
            match Server::bind(addr, config, limits).await {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some((addr, error)),
            }
        }
        Err(match last_error {
            Some((addr, error)) => {
                io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
            }
            None => io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on"),
        })
    }

    /// The address actually bound (port 0 picks a free one).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `handler` until `shutdown` completes, then closes gracefully.
    /// The handler's body is any hyper body of `Bytes`: a [`Full`] page, or
    /// a [`crate::stream::StreamedBody`] written as it goes.
    pub async fn run<H, F, B>(self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let graceful = GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read);
        tokio::pin!(shutdown);
        let max_connections = self.limits.connection_limit();
        let slots = Arc::new(Semaphore::new(max_connections));
        let mut full = Throttled::default();
        let mut failed = Throttled::default();
        loop {
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    full.warn(|waited| {
                        tracing::warn!(
                            max_connections,
                            times = waited,
                            "connections at the --web.max-connections limit: new ones wait until one closes"
                        )
                    });
                    tokio::select! {
                        slot = slots.clone().acquire_owned() => match slot {
                            Ok(slot) => slot,
                            Err(_) => break,
                        },
                        () = &mut shutdown => break,
                    }
                }
            };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    failed.warn(|times| {
                        tracing::warn!(%error, times, "accepting a connection failed; retrying")
                    });
                    tokio::time::sleep(self.limits.accept_retry).await;
                    continue;
                }
            };
            let connection = Connection {
                http: http.clone(),
                tls: self.tls.clone(),
                auth: self.auth.clone(),
                handler: handler.clone(),
                watcher: graceful.watcher(),
                tls_handshake: self.limits.tls_handshake,
            };
            tokio::spawn(async move {
                connection.serve(stream, peer).await;
                drop(slot);
            });
        }
        drop(self.listener);
        tracing::info!("shutting down: finishing requests in flight");
        if tokio::time::timeout(self.limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "requests still in flight after {:?}; closing anyway",
                self.limits.shutdown_grace
            );
        }
    }
}

/// A warning given at most once per [`WARN_EVERY`], with how many times
/// its cause came since the last one.
#[derive(Debug, Default)]
struct Throttled {
    since: u64,
    warned: Option<std::time::Instant>,
}

impl Throttled {
    fn warn(&mut self, warn: impl FnOnce(u64)) {
        self.since += 1;
        let now = std::time::Instant::now();
        if self.warned.is_some_and(|at| now < at + WARN_EVERY) {
            return;
        }
        warn(self.since);
        self.since = 0;
        self.warned = Some(now);
    }
}

/// What one accepted connection needs.
struct Connection<H> {
    http: hyper::server::conn::http1::Builder,
    tls: Option<TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
    handler: H,
    watcher: hyper_util::server::graceful::Watcher,
    tls_handshake: Duration,
}

impl<H, F, B> Connection<H>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        match self.tls.clone() {
            None => self.serve_io(stream, peer).await,
            Some(acceptor) => {
                match tokio::time::timeout(self.tls_handshake, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => self.serve_io(tls, peer).await,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_io<IO>(self, io: IO, peer: SocketAddr)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let auth = self.auth;
        let handler = self.handler;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let auth = auth.clone();
            let handler = handler.clone();
            async move {
                if let Some(auth) = auth {
                    let header = request
                        .headers()
                        .get(hyper::header::AUTHORIZATION)
                        .map(|v| v.as_bytes().to_vec());
                    if !auth.check_async(header).await {
                        return Ok::<_, Infallible>(unauthorized().map(Either::Left));
                    }
                }
                Ok(handler(request).await.map(Either::Right))
            }
        });
        let connection = self.http.serve_connection(TokioIo::new(io), service);
        if let Err(error) = self.watcher.watch(connection).await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// 401 with the challenge that makes browsers ask for a password.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Unauthorized\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ipvs\", charset=\"UTF-8\""),
    );
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Completes on SIGTERM or SIGINT (Ctrl-C), logging which; if the signal
/// handlers cannot be installed, it logs why and never completes.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "cannot install the SIGTERM/SIGINT handlers");
            return std::future::pending().await;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutdown requested");
}
