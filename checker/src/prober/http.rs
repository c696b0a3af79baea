//! `http`: an HTTP/1.1 request whose status (and, if set, body and its
//! MD5) must match.
//!
//! By default each probe opens a connection of its own and asks the
//! server to close it (`Connection: close`). With `keep_alive` set, the
//! connection is kept ([`Kept`]) and the next probes go over it until it
//! is that old or fails: a probe is then one write and one read, no
//! connection made or closed (nor, over TLS, a handshake).
//!
//! Either way hyper's side of the connection lives for one exchange: a
//! kept connection is only its stream (TCP, or TLS over TCP), and hyper's
//! read and write buffers (16 KiB) are not held between probes, for each
//! of hundreds of real servers. hyper never shuts the stream down: it is
//! closed by its drop, with a reset (see [`super::tcp`]).

use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::{HttpCheck, Md5 as Md5Digest};

/// How much of a body is read for the regex and the MD5: health pages are
/// small, and a cap keeps a large or endless one from costing more. A
/// longer body is matched by its first 64 KiB, and fails `body_md5`.
const BODY_LIMIT: usize = 64 * 1024;

/// A probe's stream: TCP, or TLS over TCP.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

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

    /// Whether this connection may serve a probe at `now`: younger than
    /// `keep_alive`, and neither closed by the server since the last
    /// probe nor holding anything it should not have sent.
    async fn usable(&mut self, keep_alive: Duration, now: Instant) -> bool {
        if now.saturating_duration_since(self.opened) >= keep_alive {
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
    check: &HttpCheck,
    kept: &mut Option<Kept>,
    now: Instant,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    if let Some(result) = over_kept(target, check, kept, now, phases).await {
        return result;
    }
    let stream = super::tcp::connect(target, watch, phases).await?;
    phases.begin(Phase::Response);
    over_new(Kept::new(stream, now), target, check, kept, phases).await
}

/// The request over the kept connection, if there is one usable at
/// `now`; `None` if there is none, or it failed before any answer (the
/// server closed it just as the request went, which is not the server's
/// failure): the probe goes on over a new connection, within its timeout.
pub(super) async fn over_kept(
    target: &Target,
    check: &HttpCheck,
    kept: &mut Option<Kept>,
    now: Instant,
    phases: &mut Phases,
) -> Option<Result<Success, ProbeError>> {
    let mut connection = kept.take()?;
    if !connection.usable(check.keep_alive?, now).await {
        return None;
    }
    phases.begin(Phase::Response);
    let (result, reusable) = request(connection, target, check).await;
    let result = match result {
        Ok(success) => Ok(success),
        Err(ProbeError::Http(_)) => return None,
        Err(e) => Err(e),
    };
    *kept = reusable;
    phases.end();
    Some(result)
}

/// The request over a `connection` just made (the `response` phase
/// begun), kept in `kept` after the answer if `keep_alive` is set and the
/// server keeps it open.
pub(super) async fn over_new(
    connection: Kept,
    target: &Target,
    check: &HttpCheck,
    kept: &mut Option<Kept>,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let (result, reusable) = request(connection, target, check).await;
    phases.end();
    *kept = reusable;
    result
}

/// One request and its answer over `connection`, judged by `check`; with
/// the connection back if it can serve another probe (`keep_alive` set,
/// the answer read to its end, the server keeping the connection open).
async fn request(
    connection: Kept,
    target: &Target,
    check: &HttpCheck,
) -> (Result<Success, ProbeError>, Option<Kept>) {
    let Kept { stream, opened } = connection;
    let keep_alive = check.keep_alive.is_some();
    let host = match &check.host {
        Some(host) => host.clone(),
        None => target.addr.to_string(),
    };
    let mut request = Request::builder()
        .method(check.method.clone())
        .uri(check.path.as_str())
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("ipvs-checker/", env!("CARGO_PKG_VERSION")),
        );
    if !keep_alive {
        request = request.header(hyper::header::CONNECTION, "close");
    }
    for (name, value) in &check.headers {
        request = request.header(name, value);
    }
    let request = match request.body(Empty::<Bytes>::new()) {
        Ok(request) => request,
        Err(e) => return (Err(ProbeError::Http(e.to_string())), None),
    };
    let (mut sender, connection) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(parts) => parts,
        Err(e) => return (Err(ProbeError::Http(e.to_string())), None),
    };
    // The exchange owns the sender and drops it when done: hyper's side
    // then ends, and hands the stream back without shutting it down.
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        if !check
            .expect_status
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&status))
        {
            return Err(ProbeError::Status(status));
        }
        // A kept connection serves the next probe only once this answer
        // has been read to its end, and if the server keeps it (HTTP/1.1,
        // no `Connection: close`).
        let kept_by_server = response.version() == hyper::Version::HTTP_11
            && !response
                .headers()
                .get_all(hyper::header::CONNECTION)
                .iter()
                .any(|v| {
                    v.to_str()
                        .is_ok_and(|v| v.to_ascii_lowercase().contains("close"))
                });
        let mut whole = false;
        if check.body.is_some() || check.body_md5.is_some() || keep_alive {
            let mut body = response.into_body();
            let (mut seen, mut read) = (Vec::new(), 0);
            // The digest takes the body as it comes, frame by frame: only
            // the regex needs the bytes kept.
            let mut md5 = check.body_md5.map(|_| Md5::new());
            // One frame past the limit is read, so that a body of exactly
            // the limit is seen to end.
            while read <= BODY_LIMIT {
                match body.frame().await {
                    None => {
                        whole = true;
                        break;
                    }
                    Some(frame) => {
                        let frame = frame.map_err(|e| ProbeError::Http(e.to_string()))?;
                        if let Some(data) = frame.data_ref() {
                            read += data.len();
                            if check.body.is_some() {
                                seen.extend_from_slice(data);
                            }
                            if let Some(md5) = &mut md5 {
                                md5.update(data);
                            }
                        }
                    }
                }
            }
            if let Some(re) = &check.body {
                seen.truncate(BODY_LIMIT);
                if !re.is_match(&String::from_utf8_lossy(&seen)) {
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
        Ok((
            Success {
                status: Some(status),
                ..Success::default()
            },
            whole && kept_by_server,
        ))
    };
    // The connection is driven in this task, beside the exchange, not in
    // a task of its own: no spawn and no wake-up of another task per
    // probe.
    let connection = connection.without_shutdown();
    tokio::pin!(exchange, connection);
    let mut ended = None;
    let result = loop {
        tokio::select! {
            result = &mut exchange => break result,
            parts = &mut connection, if ended.is_none() => ended = Some(parts),
        }
    };
    let (success, whole) = match result {
        Ok(done) => done,
        Err(e) => return (Err(e), None),
    };
    if !(keep_alive && whole) {
        return (Ok(success), None);
    }
    // The answer was read to its end and the sender is gone: hyper's side
    // ends now, with the stream and whatever it read past the answer.
    let parts = match ended {
        Some(parts) => parts,
        None => connection.await,
    };
    let reusable = match parts {
        Ok(parts) if parts.read_buf.is_empty() => Some(Kept {
            stream: parts.io.into_inner(),
            opened,
        }),
        _ => None,
    };
    (Ok(success), reusable)
}
