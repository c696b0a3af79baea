//! `ipvs-checker status`: the running daemon's view of every real server,
//! read from its `/status` page (JSON, [`crate::web::Status`]) and printed
//! as a table shaped like `ipvsadm -Ln`:
//!
//! ```text
//! Prot LocalAddress:Port
//!   -> RemoteAddress:Port  Health   Since                        Weight  Desired  Configured  Last error
//! TCP  198.18.0.10:80
//!   -> 198.18.1.11:80      up       2023-11-14 22:13:20 (5m)          3        3           3
//!   -> 198.18.1.12:80      down     2023-11-14 22:16:40 (1m40s)       0        0           1  connect since 2023-11-14 22:16:39 (1m41s): connect: Connection refused (os error 111)
//! ```
//!
//! The request goes through hyper's HTTP/1 client, over TLS (tokio-rustls)
//! for an `https://` URL, as the daemon serves it with `--web.config.file`:
//! the daemon's certificate is verified against `--web.ca-file` (or not,
//! with `--web.insecure-skip-verify`), and basic auth is sent when
//! `--web.username` is set, with the password from the environment.
//! Client certificates (a `require_and_verify_client_cert` web config) are
//! not supported.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

mod format;

pub use format::utc;
pub(crate) use format::{age, created_mark, quorum_guard_note, weight_or_dash, when};

/// The environment variable holding the basic auth password.
pub const PASSWORD_ENV: &str = "IPVS_CHECKER_WEB_PASSWORD";

/// `ipvs-checker status` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the daemon serves its pages (`--web.listen-address`):
    /// http://HOST:PORT or https://HOST:PORT.
    #[arg(
        long = "web.url",
        value_name = "URL",
        default_value = "http://127.0.0.1:10311"
    )]
    pub url: String,
    /// For an https URL: the CA that issued the daemon's certificate (else
    /// the system's roots are not used: nothing is trusted).
    #[arg(long = "web.ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// For an https URL: accept any certificate.
    #[arg(long = "web.insecure-skip-verify")]
    pub insecure_skip_verify: bool,
    /// Basic auth user; the password is read from IPVS_CHECKER_WEB_PASSWORD.
    #[arg(long = "web.username", value_name = "USER")]
    pub username: Option<String>,
    /// How long to wait for the daemon's answer (e.g. 5s, 500ms, 1m).
    #[arg(
        long = "web.timeout",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = ipvs_common::parse_positive_duration
    )]
    pub timeout: Duration,
}

/// The most of `/status` that is read: a daemon writes a few hundred bytes
/// per real server, so this is far above any real table, and a peer that
/// sends more (a wrong URL, a server that never ends its answer) is cut
/// off instead of filling memory until the timeout.
pub const MAX_STATUS_BYTES: usize = 64 << 20;

/// Fetches the status and prints the table.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let password = std::env::var(PASSWORD_ENV).ok();
    let body = runtime.block_on(fetch(args, password.as_deref()))?;
    let status: Status = serde_json::from_slice(&body)
        .with_context(|| format!("{}/status is not the checker's status JSON", args.url))?;
    print!("{}", render(&status, unix_now()));
    Ok(())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The body of `GET {url}/status`, or an error that says what to check.
pub async fn fetch(args: &Args, password: Option<&str>) -> anyhow::Result<Bytes> {
    let (status, body) = exchange(args, password, Method::GET, "/status", None).await?;
    match status {
        StatusCode::OK => Ok(body),
        StatusCode::UNAUTHORIZED => Err(unauthorized(args)),
        other => bail!(
            "{}/status answered {other}: {}",
            args.url,
            String::from_utf8_lossy(&body).trim()
        ),
    }
}

/// The error for a 401: what to set.
pub fn unauthorized(args: &Args) -> anyhow::Error {
    anyhow!(
        "{} needs basic auth: set --web.username and {PASSWORD_ENV} (or they are wrong)",
        args.url
    )
}

/// Sends `method` `path` (with a JSON `body`, if any) to the daemon at
/// `--web.url`, over TLS for an https URL and with basic auth when
/// `--web.username` is set; its answer's status and body (at most
/// [`MAX_STATUS_BYTES`]), or an error that says what to check.
pub async fn exchange(
    args: &Args,
    password: Option<&str>,
    method: Method,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let base = args.url.trim_end_matches('/');
    let uri: Uri = format!("{base}{path}")
        .parse()
        .with_context(|| format!("invalid --web.url {:?}", args.url))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!(
            "invalid --web.url {:?}: expected http://HOST:PORT or https://HOST:PORT",
            args.url
        ),
    };
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("invalid --web.url {:?}: no host", args.url))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let mut request = Request::builder()
        .method(method)
        .uri(uri.path())
        .header(
            hyper::header::HOST,
            uri.authority().map_or("", |a| a.as_str()),
        )
        .header(hyper::header::ACCEPT, "application/json");
    if let Some(user) = &args.username {
        let Some(password) = password else {
            bail!("--web.username is set but {PASSWORD_ENV} is not");
        };
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request.header(hyper::header::AUTHORIZATION, format!("Basic {token}"));
    }
    if body.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let timeout = args.timeout;
    let exchange = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| {
                format!(
                    "cannot reach ipvs-checker at {}: is it running, and listening there (--web.listen-address)?",
                    args.url
                )
            })?;
        if tls {
            let config = client_config(args)?;
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("invalid host in --web.url {:?}", args.url))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .with_context(|| format!("TLS with {} failed", args.url))?;
            get(stream, request, MAX_STATUS_BYTES).await
        } else {
            get(tcp, request, MAX_STATUS_BYTES).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("no answer from {} within {timeout:?}", args.url))?
}

/// Sends `request` over `io` and reads the answer, at most `max_bytes` of
/// body.
async fn get<S>(
    io: S,
    request: Request<Full<Bytes>>,
    max_bytes: usize,
) -> anyhow::Result<(StatusCode, Bytes)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP handshake")?;
    let connection = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(request).await.context("HTTP request")?;
        let status = response.status();
        let body = match Limited::new(response.into_body(), max_bytes).collect().await {
            Ok(body) => body.to_bytes(),
            Err(error) if error.is::<LengthLimitError>() => bail!(
                "the answer is larger than {max_bytes} bytes, the most `ipvs-checker status` reads: is --web.url the checker's?"
            ),
            Err(error) => return Err(anyhow!(error).context("reading the answer")),
        };
        Ok((status, body))
    }
    .await;
    connection.abort();
    result
}

fn client_config(args: &Args) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if args.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::config::AcceptAnyCertificate(
                provider,
            )))
            .with_no_client_auth()
    } else {
        let Some(ca_file) = &args.ca_file else {
            bail!("an https --web.url needs --web.ca-file (the CA of the daemon's certificate), or --web.insecure-skip-verify");
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file)
            .with_context(|| format!("--web.ca-file {}", ca_file.display()))?
        {
            roots
                .add(cert.with_context(|| format!("--web.ca-file {}", ca_file.display()))?)
                .with_context(|| format!("--web.ca-file {}", ca_file.display()))?;
        }
        if roots.is_empty() {
            bail!(
                "--web.ca-file {} holds no PEM certificate",
                ca_file.display()
            );
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The `/status` document as read back (see [`crate::web::Status`]).
#[derive(Debug, Deserialize)]
pub struct Status {
    /// `weights` or `managed` (absent from older daemons: weights).
    #[serde(default)]
    pub mode: Option<String>,
    /// Managed mode's state file.
    #[serde(default)]
    pub state_file: Option<String>,
    /// Every configured service.
    pub services: Vec<ServiceStatus>,
    /// Managed mode's real servers on their way out (absent from older
    /// daemons).
    #[serde(default)]
    pub removing: Vec<RemovingStatus>,
    /// Whether the last configuration reload succeeded.
    pub config_last_reload_successful: bool,
}

/// A real server that left the config, waiting for its connections.
#[derive(Debug, Deserialize)]
pub struct RemovingStatus {
    /// `TCP 198.18.0.10:80`.
    pub service: String,
    /// `198.18.1.12:80`.
    pub address: String,
    /// Its active connections at the last pass.
    pub active_connections: u32,
    /// When its removal began (Unix seconds).
    pub since: f64,
}

/// One service.
#[derive(Debug, Deserialize)]
pub struct ServiceStatus {
    /// `TCP 198.18.0.10:80`, `FWM 1`.
    pub service: String,
    /// The quorum guard acts.
    pub quorum_guard_active: bool,
    /// Managed mode created the service.
    #[serde(default)]
    pub created_by_checker: bool,
    /// The sorry server, if configured.
    #[serde(default)]
    pub sorry_server: Option<SorryServerStatus>,
    /// Its real servers.
    pub real_servers: Vec<RealServerStatus>,
}

/// A service's sorry server.
#[derive(Debug, Deserialize)]
pub struct SorryServerStatus {
    /// `198.18.1.99:8080`.
    pub address: String,
    /// It takes the traffic (the quorum guard is active).
    pub in_use: bool,
    /// Its weight in the table at the last reconciliation.
    pub weight: Option<u32>,
    /// Its weight while in use.
    pub weight_configured: u32,
    /// Managed mode added it.
    #[serde(default)]
    pub created_by_checker: bool,
}

/// One real server.
#[derive(Debug, Deserialize)]
pub struct RealServerStatus {
    /// `198.18.1.11:80`.
    pub address: String,
    /// Managed mode created it.
    #[serde(default)]
    pub created_by_checker: bool,
    /// `unknown`, `up` or `down`.
    pub health: String,
    /// When the health last changed (Unix seconds).
    pub health_since: f64,
    /// The weight in the table at the last reconciliation.
    pub weight: Option<u32>,
    /// The weight the checker wants.
    pub weight_desired: Option<u32>,
    /// The configured weight.
    pub weight_configured: u32,
    /// The last failed probe.
    pub last_error: Option<ErrorStatus>,
    /// Its drain, if drained (absent from older daemons).
    #[serde(default)]
    pub drained: Option<DrainStatus>,
}

/// A drain.
#[derive(Debug, Deserialize)]
pub struct DrainStatus {
    /// `api`, `out_of_band` or `maintenance_dir`.
    pub by: String,
    /// The basic auth user who asked.
    #[serde(default)]
    pub user: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it began (Unix seconds).
    pub since: f64,
    /// When it ends by itself (Unix seconds).
    #[serde(default)]
    pub until: Option<f64>,
}

impl DrainStatus {
    /// `drained by api (alice) since ... until ...: kernel update`.
    fn describe(&self, now: f64) -> String {
        let mut text = format!("drained by {}", self.by);
        if let Some(user) = &self.user {
            let _ = write!(text, " ({user})");
        }
        let _ = write!(text, " since {}", when(self.since, now));
        if let Some(until) = self.until {
            let _ = write!(text, " until {} (in {})", utc(until), age(until - now));
        }
        if let Some(reason) = &self.reason {
            let _ = write!(text, ": {reason}");
        }
        text
    }
}

/// A failed probe.
#[derive(Debug, Deserialize)]
pub struct ErrorStatus {
    /// The short reason.
    pub reason: String,
    /// The whole message.
    pub message: String,
    /// Start of the current run of failures with this reason.
    pub since: f64,
}

/// The table, with ages counted up to `now` (Unix seconds).
pub fn render(status: &Status, now: f64) -> String {
    const HEADER: [&str; 7] = [
        "  -> RemoteAddress:Port",
        "Health",
        "Since",
        "Weight",
        "Desired",
        "Configured",
        "Last error",
    ];
    let mut created = false;
    let mut rows = Vec::new();
    for service in &status.services {
        rows.push(Row::Service(service));
        created |= service.created_by_checker;
        for rs in &service.real_servers {
            created |= rs.created_by_checker;
            let mut error = rs.last_error.as_ref().map_or_else(String::new, |e| {
                format!("{} since {}: {}", e.reason, when(e.since, now), e.message)
            });
            let mut health = rs.health.clone();
            if let Some(drain) = &rs.drained {
                health.push_str(", drained");
                // The drain first: it is why the weight is 0.
                error = match error.is_empty() {
                    true => drain.describe(now),
                    false => format!("{}; {error}", drain.describe(now)),
                };
            }
            rows.push(Row::Server([
                format!("  -> {}{}", rs.address, created_mark(rs.created_by_checker)),
                health,
                when(rs.health_since, now),
                weight_or_dash(rs.weight),
                weight_or_dash(rs.weight_desired),
                rs.weight_configured.to_string(),
                error,
            ]));
        }
        if let Some(sorry) = &service.sorry_server {
            created |= sorry.created_by_checker;
            rows.push(Row::Server([
                format!(
                    "  -> {}{}",
                    sorry.address,
                    created_mark(sorry.created_by_checker)
                ),
                if sorry.in_use {
                    "sorry, in use"
                } else {
                    "sorry, standby"
                }
                .to_owned(),
                String::new(),
                weight_or_dash(sorry.weight),
                if sorry.in_use {
                    sorry.weight_configured
                } else {
                    0
                }
                .to_string(),
                sorry.weight_configured.to_string(),
                String::new(),
            ]));
        }
    }
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        let Row::Server(row) = row else { continue };
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            match i {
                0 => {
                    let _ = write!(out, "{cell:<width$}");
                }
                // Numbers right-aligned, as ipvsadm's.
                3..=5 => {
                    let _ = write!(out, "  {cell:>width$}");
                }
                6 => {
                    let _ = write!(out, "  {cell}");
                }
                _ => {
                    let _ = write!(out, "  {cell:<width$}");
                }
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = String::from("Prot LocalAddress:Port\n");
    out.push_str(&line(HEADER));
    for row in &rows {
        match row {
            Row::Service(s) => {
                // ipvsadm's "TCP  198.18.0.10:80": the protocol in 4 columns.
                let name = match s.service.split_once(' ') {
                    Some((proto, rest)) => format!("{proto:<4} {rest}"),
                    None => s.service.clone(),
                };
                out.push_str(&name);
                out.push_str(created_mark(s.created_by_checker));
                if let Some(note) =
                    quorum_guard_note(s.quorum_guard_active, s.sorry_server.is_some())
                {
                    let _ = write!(out, "  ({note})");
                }
                out.push('\n');
            }
            Row::Server(cells) => out.push_str(&line(cells.each_ref().map(String::as_str))),
        }
    }
    if created {
        let file = status.state_file.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "\n* created by this checker (managed mode, recorded in {file}): the only entries it deletes"
        );
    }
    if !status.removing.is_empty() {
        out.push_str("\nRemoving (left the config: weight 0, deleted when their active connections end or at drain_timeout):\n");
        for r in &status.removing {
            let _ = writeln!(
                out,
                "{} -> {}  removing, {} active connections, since {}",
                r.service,
                r.address,
                r.active_connections,
                when(r.since, now)
            );
        }
    }
    if !status.config_last_reload_successful {
        out.push_str("\nThe last configuration reload failed: the previous configuration is running (see the log).\n");
    }
    out
}

/// A line of the table.
enum Row<'a> {
    /// A service.
    Service(&'a ServiceStatus),
    /// A real server's cells, in the header's order.
    Server([String; 7]),
}

#[cfg(test)]
mod tests;
