//! `http`: an HTTP/1.1 request whose status (and, if set, body) must match.
//!
//! By default each probe opens a connection of its own and asks the
//! server to close it (`Connection: close`). With `keep_alive` set, the
//! connection is kept ([`Kept`]) and the next probes go over it until it
//! is that old or fails: a probe is then one write and one read, no
//! connection made or closed (nor, over TLS, a handshake).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Phase, Phases, ProbeError, Success, Target};
use crate::config::HttpCheck;

/// How much of a body is read for the regex: health pages are small, and a
/// cap keeps a large or endless one from costing more.
const BODY_LIMIT: usize = 64 * 1024;

/// An HTTP connection kept open between probes (`keep_alive`).
pub struct Kept {
    sender: http1::SendRequest<Empty<Bytes>>,
    /// hyper's side of the connection, driven while a probe uses it
    /// (and polled once before reuse, to see the server's close).
    connection: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>,
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
    /// Starts HTTP/1.1 over `io`, opened at `opened`.
    pub(super) async fn open<S>(io: S, opened: Instant) -> Result<Self, ProbeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        Ok(Kept {
            sender,
            connection: Box::pin(connection),
            opened,
        })
    }

    /// Whether this connection may serve a probe at `now`: younger than
    /// `keep_alive`, not closed by the server meanwhile, and idle.
    pub(super) async fn usable(&mut self, keep_alive: Duration, now: Instant) -> bool {
        if now.saturating_duration_since(self.opened) >= keep_alive {
            return false;
        }
        // One poll of the idle connection reads what came since the last
        // probe: the server's close (or anything it should not have sent)
        // ends it.
        let open = std::future::poll_fn(|cx| match self.connection.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(false),
            Poll::Pending => Poll::Ready(true),
        })
        .await;
        open && self.sender.is_ready()
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
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    if let Some(result) = over_kept(target, check, kept, now, phases).await {
        return result;
    }
    let stream = super::tcp::connect(target, phases).await?;
    phases.begin(Phase::Response);
    let connection = Kept::open(super::tcp::NoShutdown(stream), now).await?;
    over_new(connection, target, check, kept, phases).await
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
    let result = match request(&mut connection, target, check).await {
        Ok((success, reusable)) => {
            if reusable {
                *kept = Some(connection);
            }
            Ok(success)
        }
        Err(ProbeError::Http(_)) => return None,
        Err(e) => Err(e),
    };
    phases.end();
    Some(result)
}

/// The request over a `connection` just made (the `response` phase
/// begun), kept in `kept` after the answer if `keep_alive` is set and the
/// server keeps it open.
pub(super) async fn over_new(
    mut connection: Kept,
    target: &Target,
    check: &HttpCheck,
    kept: &mut Option<Kept>,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let result = request(&mut connection, target, check).await;
    phases.end();
    let (success, reusable) = result?;
    if reusable {
        *kept = Some(connection);
    }
    Ok(success)
}

/// One request and its answer over `connection`, judged by `check`; with
/// whether the connection can serve another probe.
async fn request(
    connection: &mut Kept,
    target: &Target,
    check: &HttpCheck,
) -> Result<(Success, bool), ProbeError> {
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
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    let sender = &mut connection.sender;
    let exchange = async {
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
        // has been read to its end.
        let mut whole = false;
        if check.body.is_some() || keep_alive {
            let mut body = response.into_body();
            let (mut seen, mut read) = (Vec::new(), 0);
            while read < BODY_LIMIT {
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
        }
        Ok((
            Success {
                status: Some(status),
                ..Success::default()
            },
            whole,
        ))
    };
    // The connection is driven in this task, beside the exchange, not in
    // a task of its own: no spawn and no wake-up of another task per
    // probe. Without keep-alive it ends when the answer has been read
    // (`Connection: close`) or fails; either way the exchange's own
    // result says what happened, and the connection is dropped with the
    // probe.
    let driver = &mut connection.connection;
    tokio::pin!(exchange);
    let mut connection_done = false;
    let (success, whole) = loop {
        tokio::select! {
            result = &mut exchange => break result?,
            _ = driver.as_mut(), if !connection_done => connection_done = true,
        }
    };
    Ok((success, keep_alive && whole && !connection_done))
}
