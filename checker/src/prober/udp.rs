//! `udp`: a datagram to the real server, and either a reply that matches
//! a regex (`expect`), or, without `expect`, no ICMP port unreachable
//! before the timeout (keepalived's UDP_CHECK without `require_reply`).
//!
//! The second is weak, and said so in the docs: silence passes, so a
//! server whose host is gone, a firewall that drops, or an ICMP error
//! lost or rate-limited on the way all look healthy; such a probe also
//! lasts its whole timeout. Use it only where the service never answers
//! a probe.
//!
//! Each probe has a socket of its own (a `dns` probe keeps its own): a
//! reply has nothing to tell which datagram it answers, so a late reply
//! to the last probe on a kept socket would pass for this one's.

use std::cell::Cell;
use std::io::Read;
use std::net::SocketAddr;

use regex::bytes::Regex;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::{Deadline, Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::UdpCheck;

/// The largest datagram read.
const DATAGRAM_MAX: usize = 65_535;

thread_local! {
    /// The probe thread's room for a datagram, [`DATAGRAM_MAX`] bytes,
    /// zeroed once rather than at each probe; taken while a datagram is
    /// read and looked at (no await in between), empty while taken.
    static DATAGRAM: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on the thread's datagram buffer.
pub(super) fn with_datagram<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut buf = DATAGRAM.take();
    if buf.len() != DATAGRAM_MAX {
        buf = vec![0; DATAGRAM_MAX];
    }
    let r = f(&mut buf);
    DATAGRAM.set(buf);
    r
}

/// The next datagram on `socket`, or its error (an ICMP port unreachable
/// comes as one, not as something to read), given to `f` in the thread's
/// buffer. Through `async_io`, as tokio's own `recv` reads: its `try_io`
/// finds no readiness for an interest of two kinds, and a loop of `ready`
/// and `try_io` spins.
pub(super) async fn next_datagram<R>(
    socket: &UdpSocket,
    mut f: impl FnMut(&[u8]) -> R,
) -> std::io::Result<R> {
    socket
        .async_io(Interest::READABLE | Interest::ERROR, || {
            with_datagram(|buf| {
                let n = (&*SockRef::from(socket)).read(buf)?;
                Ok(f(buf.get(..n).unwrap_or_default()))
            })
        })
        .await
}

/// A UDP socket connected to the target: only its datagrams are read,
/// and an ICMP port unreachable comes back as an error (`connect`) of the
/// next receive. Bound first only to a source address the config sets:
/// the connect gives an unbound socket the route's own address and a
/// port (a syscall fewer than binding to the wildcard first).
pub(super) fn connected(target: &Target) -> Result<UdpSocket, ProbeError> {
    let socket = Socket::new(
        Domain::for_address(target.addr),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )
    .map_err(ProbeError::Connect)?;
    if let Some(ip) = target.source {
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .map_err(ProbeError::Connect)?;
    }
    socket
        .connect(&target.addr.into())
        .map_err(ProbeError::Connect)?;
    UdpSocket::from_std(socket.into()).map_err(ProbeError::Connect)
}

/// Sends the payload and judges what comes back, or does not.
pub async fn probe(
    target: &Target,
    check: &UdpCheck,
    deadline: Deadline,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let socket = connected(target)?;
    let sent = phases.begin(Phase::Response);
    socket
        .send(&check.payload)
        .await
        .map_err(ProbeError::Connect)?;
    watch.sent_datagram(&socket, target.addr, sent);
    // A datagram that passes is `None`; one that does not match, `Some`
    // of its bytes.
    let unmatched = |datagram: &[u8]| match &check.expect {
        Some(re) if !re.is_match(datagram) => Some(datagram.to_vec()),
        _ => None,
    };
    let mut last: Option<Vec<u8>> = None;
    loop {
        let received = match (&check.expect, &last) {
            // No reply yet: whether the server had its whole timeout is
            // judged by the probe's timeout (see [`super::watch`]).
            (Some(_), None) => Ok(next_datagram(&socket, unmatched).await),
            _ => tokio::time::timeout_at(deadline.at, next_datagram(&socket, unmatched)).await,
        };
        let reply = match received {
            Ok(received) => received.map_err(ProbeError::Connect)?,
            Err(_) => {
                return match (&check.expect, last) {
                    // Silence until the timeout is all this mode asks.
                    (None, _) => {
                        phases.end();
                        Ok(Success::default())
                    }
                    // Not waited on by a timer here (above); kept whole.
                    (Some(_), None) => Err(ProbeError::Timeout(deadline.timeout)),
                    (Some(re), Some(datagram)) => Err(mismatch(re, &datagram)),
                };
            }
        };
        match reply {
            None => break,
            // Another datagram may still match.
            Some(datagram) => last = Some(datagram),
        }
    }
    phases.end();
    Ok(Success::default())
}

fn mismatch(re: &Regex, datagram: &[u8]) -> ProbeError {
    let start = &datagram[..datagram.len().min(80)];
    ProbeError::Expect {
        step: 1,
        regex: re.as_str().to_owned(),
        got: format!(
            "the reply does not match, {} bytes: \"{}\"{}",
            datagram.len(),
            start.escape_ascii(),
            if datagram.len() > start.len() {
                "..."
            } else {
                ""
            }
        ),
    }
}
