//! `http`: an HTTP/1.1 request whose status (and, if set, body and its
//! MD5) must match.
//!
//! By default each probe opens a connection of its own, reads the answer
//! as far as the check needs, and resets the connection. The request does
//! not ask the server to close it (no `Connection: close`): a server asked
//! to close sends its FIN, and over TLS a close_notify record first, each
//! a segment the server makes and the director takes in, only to be reset
//! a moment later (lab/bench/README.md, "2026-12-06, late morning"). With
//! `keep_alive` set, the connection is kept ([`Kept`]) and the next
//! probes go over it until it is that old or fails: a probe is then one
//! write and one read, no connection made or closed (nor, over TLS, a
//! handshake).
//!
//! The request is written as it was made once ([`Template`]) and the
//! answer read by [`answer`]: only as far as the check needs, its status
//! line for the status, its head and body for `body`, `body_md5` or a
//! kept connection.
//! A kept connection is only its stream (TCP, or TLS over TCP); no buffer
//! is held between probes, for each of hundreds of real servers. The
//! stream is never shut down: it is closed by its drop, with a reset (see
//! [`super::tcp`]).

mod answer;

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Uri};
use md5::{Digest, Md5};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use self::answer::Answer;
use super::{Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::{HttpCheck, Md5 as Md5Digest};

/// How much of a body is read for the regex and the MD5: health pages are
/// small, and a cap keeps a large or endless one from costing more. A
/// longer body is matched by its first 64 KiB, and fails `body_md5`.
const BODY_LIMIT: usize = 64 * 1024;

/// A probe's stream: TCP, or TLS over TCP.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A check's request to one real server, made once: its method, its path
/// and its headers (`Host`, `User-Agent`; the check's own, each in place
/// of the checker's of its name), as the bytes each probe writes.
/// Over TLS, it holds the name the server's certificate must have too.
#[derive(Debug)]
pub struct Template {
    /// Shared with the probe socket's set, which sends them as a new
    /// connection is made (see [`super::tcp::connect_sending`]).
    bytes: Arc<[u8]>,
    /// A HEAD request: its answer has no body, whatever its head says.
    head: bool,
    server_name: Option<ServerName<'static>>,
}

/// What an HTTP exchange asks and judges: the check, and its request for
/// the real server.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub check: &'a HttpCheck,
    pub template: &'a Template,
}

impl Template {
    /// This request over TLS, to a server whose certificate must have
    /// `name`.
    pub(super) fn with_server_name(self, name: ServerName<'static>) -> Self {
        Template {
            server_name: Some(name),
            ..self
        }
    }

    /// The name the server's certificate must have (set for `https`).
    pub(super) fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// The request of `check` to `target`.
    pub fn new(target: &Target, check: &HttpCheck) -> Result<Self, String> {
        let host = match &check.host {
            Some(host) => HeaderValue::from_str(host),
            None => HeaderValue::from_str(&target.addr.to_string()),
        }
        .map_err(|e| format!("the Host header: {e}"))?;
        // The path goes into the request line as it is: checked here,
        // where its bytes are written, as the config checked it (no
        // space or line end can end the line early).
        check
            .path
            .parse::<Uri>()
            .map_err(|e| format!("the path {:?}: {e}", check.path))?;
        let mut headers = HeaderMap::with_capacity(2 + check.headers.len());
        headers.append(hyper::header::HOST, host);
        headers.append(
            hyper::header::USER_AGENT,
            HeaderValue::from_static(concat!("ipvs-checker/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &check.headers {
            headers.insert(name.clone(), value.clone());
        }
        // A request of a method that carries a body says that it has none.
        let with_body = [Method::POST, Method::PUT, Method::PATCH].contains(&check.method);
        if with_body && !headers.contains_key(hyper::header::CONTENT_LENGTH) {
            headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(check.method.as_str().as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(check.path.as_bytes());
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &headers {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        Ok(Template {
            bytes: bytes.into(),
            head: check.method == Method::HEAD,
            server_name: None,
        })
    }

    /// The request as each probe writes it.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A connection kept open between probes (`keep_alive`).
pub struct Kept {
    stream: Box<dyn Stream>,
    opened: Instant,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

impl Kept {
    /// A connection over `stream`, made at `opened`.
    pub(super) fn new(stream: impl Stream + 'static, opened: Instant) -> Self {
        Kept {
            stream: Box::new(stream),
            opened,
        }
    }

    /// Whether this connection is younger than `keep_alive` at `now`.
    pub(super) fn young(&self, keep_alive: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.opened) < keep_alive
    }

    /// Whether this connection may serve a probe at `now`: younger than
    /// `keep_alive`, and neither closed by the server since the last
    /// probe nor holding anything it should not have sent.
    async fn usable(&mut self, keep_alive: Duration, now: Instant) -> bool {
        if !self.young(keep_alive, now) {
            return false;
        }
        // One read that must find nothing to read: an end of stream, an
        // error or stray bytes all end the connection. (Over TLS, records
        // the server may send meanwhile, session tickets, are taken by
        // rustls and read as nothing.)
        let mut byte = [0u8; 1];
        std::future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut byte);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Pending => Poll::Ready(true),
                Poll::Ready(_) => Poll::Ready(false),
            }
        })
        .await
    }
}

/// Sends the check's request, over the kept connection if there is a
/// usable one, else over a new TCP connection (kept for the next probes
/// if `keep_alive` is set and the server keeps it open).
pub async fn probe(
    target: &Target,
    ask: Ask<'_>,
    kept: &mut Option<Kept>,
    now: Instant,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    if let Some(result) = over_kept(ask, kept, now, phases).await {
        return result;
    }
    let (stream, sent) =
        super::tcp::connect_sending(target, &ask.template.bytes, watch, phases).await?;
    let sent = super::tcp::begins_where_sent(phases, Phase::Response, sent);
    over_new(stream, now, sent, ask, kept, phases).await
}

/// The request over the kept connection, if there is one usable at
/// `now`; `None` if there is none, or it failed before any answer (the
/// server closed it just as the request went, which is not the server's
/// failure): the probe goes on over a new connection, within its timeout.
pub(super) async fn over_kept(
    ask: Ask<'_>,
    kept: &mut Option<Kept>,
    now: Instant,
    phases: &mut Phases,
) -> Option<Result<Success, ProbeError>> {
    let mut connection = kept.take()?;
    if !connection.usable(ask.check.keep_alive?, now).await {
        return None;
    }
    phases.begin(Phase::Response);
    let (result, reusable) = request(&mut connection.stream, 0, ask).await;
    let result = match result {
        Ok(success) => Ok(success),
        Err(ProbeError::Http(_)) => return None,
        Err(e) => Err(e),
    };
    if reusable {
        *kept = Some(connection);
    }
    phases.end();
    Some(result)
}

/// The request over a `stream` just made at `opened` (the `response`
/// phase begun; the first `sent` bytes of the request sent already),
/// kept in `kept` after the answer if `keep_alive` is set and the server
/// keeps it open. Boxed only then: the usual probe's stream is dropped,
/// reset, where it is.
pub(super) async fn over_new<S: Stream + 'static>(
    mut stream: S,
    opened: Instant,
    sent: usize,
    ask: Ask<'_>,
    kept: &mut Option<Kept>,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let (result, reusable) = request(&mut stream, sent, ask).await;
    phases.end();
    *kept = reusable.then(|| Kept::new(stream, opened));
    result
}

/// `ask`'s request (but its first `sent` bytes, sent already) and its
/// answer over `stream`, judged by its check; with whether the connection
/// can serve another probe (`keep_alive` set, the answer read to its end
/// and nothing after it, the server keeping the connection open).
async fn request<S: Stream>(
    stream: &mut S,
    sent: usize,
    ask: Ask<'_>,
) -> (Result<Success, ProbeError>, bool) {
    let keep_alive = ask.check.keep_alive.is_some();
    let rest = ask.template.bytes().get(sent..).unwrap_or_default();
    let sent = async {
        stream.write_all(rest).await?;
        // Over TLS, whatever the write left in rustls' buffer goes now
        // (the handshake's last flight went with the request: see
        // `super::held_writes`).
        stream.flush().await
    };
    if let Err(e) = sent.await {
        return (
            Err(ProbeError::Http(format!("sending the request: {e}"))),
            false,
        );
    }
    match judge(stream, ask, keep_alive).await {
        Ok((success, reusable)) => (Ok(success), reusable && keep_alive),
        Err(e) => (Err(e), false),
    }
}

/// The answer on `stream` judged by `ask`'s check; with whether the
/// connection can carry another request, the answer read to its end (only
/// read so far if `keep_alive`, or the check needs its body).
async fn judge<S: AsyncRead + Unpin>(
    stream: &mut S,
    ask: Ask<'_>,
    keep_alive: bool,
) -> Result<(Success, bool), ProbeError> {
    let check = ask.check;
    let reads_body = check.body.is_some() || check.body_md5.is_some() || keep_alive;
    let needs = if reads_body {
        answer::Needs::Head
    } else {
        answer::Needs::Status
    };
    let mut answer = Answer::read(stream, ask.template.head, needs).await?;
    let status = answer.status;
    if !check
        .expect_status
        .iter()
        .any(|(a, b)| (*a..=*b).contains(&status))
    {
        return Err(ProbeError::Status(status));
    }
    let mut whole = false;
    if reads_body {
        // The bytes the regex is matched against, in a read buffer kept
        // on the thread as the answers' are.
        let (mut seen, mut read) = (check.body.as_ref().map(|_| answer::buffer()), 0);
        // The digest takes the body as it comes: only the regex needs the
        // bytes kept.
        let mut md5 = check.body_md5.map(|_| Md5::new());
        // Past the limit by one read at most, so that a body of exactly
        // the limit is seen to end.
        while read <= BODY_LIMIT {
            let Some(data) = answer.next().await? else {
                whole = true;
                break;
            };
            read += data.len();
            if let Some(seen) = &mut seen {
                seen.extend_from_slice(data);
            }
            if let Some(md5) = &mut md5 {
                md5.update(data);
            }
        }
        if let (Some(re), Some(mut seen)) = (&check.body, seen) {
            seen.truncate(BODY_LIMIT);
            let matched = re.is_match(&String::from_utf8_lossy(&seen));
            answer::spare(seen);
            if !matched {
                return Err(ProbeError::Body(re.as_str().to_owned()));
            }
        }
        if let (Some(md5), Some(want)) = (md5, check.body_md5) {
            if !whole {
                return Err(ProbeError::BodyMd5(format!(
                    "the body is longer than {} KiB, the most a check reads: its MD5 is not known",
                    BODY_LIMIT / 1024
                )));
            }
            let got = Md5Digest(md5.finalize().into());
            if got != want {
                return Err(ProbeError::BodyMd5(format!("{got}, expected {want}")));
            }
        }
    }
    let reusable = whole && answer.keeps && answer.ended_clean();
    Ok((
        Success {
            status: Some(status),
            ..Success::default()
        },
        reusable,
    ))
}
