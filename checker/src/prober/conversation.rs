//! `tcp` with `steps:`: a conversation with a banner protocol (SMTP,
//! IMAP, POP3, Redis, MySQL's greeting, ...): each step sends bytes or
//! waits for the bytes read so far to match a regex, in order, over one
//! connection, optionally in TLS from the first byte (implicit TLS, as on
//! 465, 993 and 995) with the https check's verification and sessions.
//!
//! An `expect` step reads until its regex matches what was read since the
//! previous match, and consumes up to the end of the match; the server
//! closing the connection first, or sending more than [`READ_LIMIT`]
//! without a match, fails the step, and so does the probe's timeout once
//! something was read that does not match (a wrong banner is reported as
//! `expect`, with what was read; a silent server as `timeout`). The whole
//! conversation is the `response` phase, after `connect` (and `tls`).

use std::time::Instant;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::Stream;
use super::https::{self, Sessions};
use super::{Deadline, Handshake, Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::{ConversationCheck, Step};

/// The most bytes an `expect` step reads without a match: banners and
/// greetings are a few hundred bytes, and a server that sends more is
/// not the one asked for (or is stuck in a loop).
pub const READ_LIMIT: usize = 64 * 1024;

/// Connects (in TLS if set) and runs the steps.
pub async fn probe(
    target: &Target,
    check: &ConversationCheck,
    sessions: Option<&mut Sessions>,
    now: Instant,
    deadline: Deadline,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    match &check.tls {
        Some(tls) => {
            let mut fresh = None;
            let sessions = match sessions {
                Some(sessions) => sessions,
                None => fresh.insert(Sessions::new(tls)),
            };
            let name = tls
                .server_name
                .clone()
                .unwrap_or_else(|| ServerName::IpAddress(target.addr.ip().into()));
            let (mut stream, handshake, not_after) =
                https::verified(target, None, sessions, &name, now, watch, phases).await?;
            // The server may speak first (a banner).
            stream.get_mut().0.handshake_done(false);
            let mut success = converse(stream, &check.steps, deadline, phases).await?;
            success.handshake = Some(handshake);
            if handshake == Handshake::Full {
                success.cert_not_after = not_after;
            }
            Ok(success)
        }
        None => {
            let stream = super::tcp::connect(target, watch, phases).await?;
            converse(stream, &check.steps, deadline, phases).await
        }
    }
}

/// Runs `steps` over `stream`, timed as the `response` phase.
async fn converse(
    mut stream: impl Stream,
    steps: &[Step],
    deadline: Deadline,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    phases.begin(Phase::Response);
    let mut read: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    for (index, step) in steps.iter().enumerate() {
        let number = index + 1;
        match step {
            Step::Send(bytes) => {
                stream
                    .write_all(bytes)
                    .await
                    .map_err(|e| ProbeError::Send {
                        step: number,
                        source: e,
                    })?;
            }
            Step::Expect(regex) => loop {
                if let Some(found) = regex.find(&read) {
                    read.drain(..found.end());
                    break;
                }
                if read.len() >= READ_LIMIT {
                    return Err(ProbeError::Expect {
                        step: number,
                        regex: regex.as_str().to_owned(),
                        got: format!("more than {READ_LIMIT} bytes without a match"),
                    });
                }
                let expect = |got: String| ProbeError::Expect {
                    step: number,
                    regex: regex.as_str().to_owned(),
                    got,
                };
                // Nothing read yet: a silent server is the probe's timeout,
                // judged there (see [`super::watch`]).
                let reading = if read.is_empty() {
                    Ok(stream.read(&mut chunk).await)
                } else {
                    tokio::time::timeout_at(deadline.at, stream.read(&mut chunk)).await
                };
                let n = match reading {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(expect(format!("read failed: {e}"))),
                    Err(_) => return Err(expect(format!("no match in time, {}", shown(&read)))),
                };
                if n == 0 {
                    return Err(expect(format!("the connection closed, {}", shown(&read))));
                }
                read.extend_from_slice(&chunk[..n]);
            },
        }
    }
    phases.end();
    Ok(Success::default())
}

/// What was read, for an error: its start, escaped, and its length.
fn shown(read: &[u8]) -> String {
    if read.is_empty() {
        return "nothing was read".into();
    }
    let start = &read[..read.len().min(80)];
    format!(
        "{} bytes: \"{}\"{}",
        read.len(),
        start.escape_ascii(),
        if read.len() > start.len() { "..." } else { "" }
    )
}
