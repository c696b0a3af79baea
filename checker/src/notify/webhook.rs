//! `hooks.webhook`: the event's JSON document ([`Event::to_json`]) POSTed
//! over HTTP/1.1, or over TLS with the CA file and client certificate read
//! like an https check's. A connection error, a timeout, a 429 or a 5xx
//! answer is tried again after `backoff`, doubled each time, up to
//! `retries` times; any other answer but a 2xx is a failure at once.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::{Ending, Event};
use crate::config::Webhook;

/// The most of an answer's body that is read (and then dropped).
const BODY_LIMIT: usize = 64 * 1024;

/// How one try went.
#[derive(Debug)]
enum Try {
    /// A 2xx answer.
    Accepted(u16),
    /// An answer worth another try (429, 5xx), or a connection error.
    Again(String),
    /// An answer that another try would not change.
    Refused(u16),
    /// The try took longer than the timeout.
    TimedOut,
}

/// POSTs `event` to `hook`, with its retries.
pub(super) async fn run(hook: &Webhook, event: &Event) -> Ending {
    let event_name = event.kind.as_str();
    let body = Bytes::from(event.to_json().to_string());
    let mut backoff = hook.backoff;
    let mut last = Ending::Failed;
    for attempt in 0..=hook.retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        let result = tokio::time::timeout(hook.timeout, post(hook, body.clone()))
            .await
            .unwrap_or(Try::TimedOut);
        match result {
            Try::Accepted(status) => {
                info!(event = event_name, url = %hook.url, status, attempt, "webhook delivered");
                return Ending::Succeeded;
            }
            Try::Refused(status) => {
                warn!(event = event_name, url = %hook.url, status, "webhook refused: not tried again");
                return Ending::Failed;
            }
            Try::Again(why) => {
                warn!(event = event_name, url = %hook.url, attempt, "webhook failed: {why}");
                last = Ending::Failed;
            }
            Try::TimedOut => {
                warn!(event = event_name, url = %hook.url, attempt, timeout = ?hook.timeout, "webhook timed out");
                last = Ending::TimedOut;
            }
        }
    }
    warn!(event = event_name, url = %hook.url, retries = hook.retries, "webhook given up");
    last
}

/// One try.
async fn post(hook: &Webhook, body: Bytes) -> Try {
    let Some(host) = hook.url.host() else {
        return Try::Refused(0);
    };
    let https = hook.tls.is_some();
    let port = hook.url.port_u16().unwrap_or(if https { 443 } else { 80 });
    // `[::1]` in a URL is `::1` to connect to and to verify.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let stream = match TcpStream::connect((bare, port)).await {
        Ok(stream) => stream,
        Err(e) => return Try::Again(format!("cannot connect: {e}")),
    };
    match &hook.tls {
        None => exchange(hook, stream, body).await,
        Some(tls) => {
            let name = match ServerName::try_from(bare.to_owned()) {
                Ok(name) => name,
                Err(e) => return Try::Again(format!("invalid TLS server name {bare:?}: {e}")),
            };
            let connector = tokio_rustls::TlsConnector::from(tls.clone());
            match connector.connect(name, stream).await {
                Ok(stream) => exchange(hook, stream, body).await,
                Err(e) => Try::Again(format!("TLS: {e}")),
            }
        }
    }
}

/// The request and its answer over `stream`.
async fn exchange<S>(hook: &Webhook, stream: S, body: Bytes) -> Try
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let authority = hook
        .url
        .authority()
        .map_or_else(String::new, |a| a.to_string());
    let path = hook
        .url
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let request = match hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("ipvs-checker/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close")
        .body(Full::new(body))
    {
        Ok(request) => request,
        Err(e) => return Try::Again(e.to_string()),
    };
    let (mut sender, connection) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(parts) => parts,
        Err(e) => return Try::Again(e.to_string()),
    };
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut read = 0;
        while read < BODY_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
        Ok::<u16, String>(status)
    }
    .await;
    driver.abort();
    match result {
        Ok(status) if (200..300).contains(&status) => Try::Accepted(status),
        Ok(status) if status == 429 || status >= 500 => Try::Again(format!("answered {status}")),
        Ok(status) => Try::Refused(status),
        Err(e) => Try::Again(e),
    }
}
