//! `http`: an HTTP/1.1 request whose status (and, if set, body) must match.

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

/// Sends the check's request over a new TCP connection.
pub async fn probe(
    target: &Target,
    check: &HttpCheck,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let stream = super::tcp::connect(target, phases).await?;
    exchange(super::tcp::NoShutdown(stream), target, check, phases).await
}

/// One request and its answer over `io` (TCP or TLS), judged by `check`,
/// timed as the `response` phase.
pub(super) async fn exchange<S>(
    io: S,
    target: &Target,
    check: &HttpCheck,
    phases: &mut Phases,
) -> Result<Success, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    phases.begin(Phase::Response);
    let (mut sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ProbeError::Http(e.to_string()))?;
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
        )
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in &check.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Http(e.to_string()))?;
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
        if let Some(re) = &check.body {
            let mut body = response.into_body();
            let mut seen = Vec::new();
            while seen.len() < BODY_LIMIT {
                match body.frame().await {
                    None => break,
                    Some(frame) => {
                        let frame = frame.map_err(|e| ProbeError::Http(e.to_string()))?;
                        if let Some(data) = frame.data_ref() {
                            seen.extend_from_slice(data);
                        }
                    }
                }
            }
            seen.truncate(BODY_LIMIT);
            if !re.is_match(&String::from_utf8_lossy(&seen)) {
                return Err(ProbeError::Body(re.as_str().to_owned()));
            }
        }
        Ok(Success {
            status: Some(status),
            ..Success::default()
        })
    };
    // The connection is driven in this task, beside the exchange, not in
    // a task of its own: no spawn and no wake-up of another task per
    // probe. It ends when the answer has been read (`Connection: close`)
    // or fails; either way the exchange's own result says what happened,
    // and the connection is dropped with the probe.
    tokio::pin!(exchange, connection);
    let mut connection_done = false;
    let result = loop {
        tokio::select! {
            result = &mut exchange => break result,
            _ = &mut connection, if !connection_done => connection_done = true,
        }
    };
    phases.end();
    result
}
