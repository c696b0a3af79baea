//! `dns`: one query to the real server, over UDP (one datagram each
//! way) or TCP (the two-byte length framing of RFC 1035 4.2.2), whose
//! answer must have the expected rcode and, if set, a record matching a
//! regex or holding an address. hickory-proto builds the query and reads
//! the answer; the sockets are the checker's own, so the probe's timeout
//! and phases are those of every other check.
//!
//! Over UDP, a prober keeps its socket, connected to the real server,
//! from one probe to the next ([`Kept`]): a new one per probe was most of
//! a probe's syscalls. An answer whose id or question is not the query's
//! is not one (a late answer to an earlier probe, or a spoofed one) and
//! is skipped: each query has a fresh random id, never the last one's on
//! that socket, and datagrams that came on the socket since the last
//! answer are read and dropped before the query goes out. Once the
//! answer is read, the socket is taken as empty without a read to prove
//! it (a read that finds nothing was one of a probe's three syscalls): a
//! datagram that came with the answer, in the microseconds between, stays
//! unread until the next one comes, is then skipped as not an answer, and
//! at worst makes the one probe whose server went silent meanwhile a
//! timeout of the checker's (something waits unread), not of the server's;
//! that probe drops its socket, and the next one judges the server on a
//! new one. A refused port (an ICMP
//! port unreachable on the connected socket) is `connect`; an error on
//! the socket, or a probe that did not get its answer, leaves no socket
//! kept, and the next probe opens a new one. An answer with the TC bit
//! set is judged as it is: the check asks for one name, and a health
//! answer fits a datagram.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UdpSocket;

use super::{Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::{rcode_name, DnsCheck};

/// The largest answer read over UDP (EDNS' usual 4096 would do; a
/// datagram is at most this).
const UDP_MAX: usize = 65_535;

/// The most datagrams read and dropped from a kept socket before a probe:
/// a socket that still has more (a peer flooding it) is left for a new one.
const STALE_MAX: usize = 16;

/// What a UDP `dns` check keeps from one probe to the next: its socket,
/// connected to the real server, and the id of the last query sent on it.
#[derive(Debug)]
pub struct Kept {
    socket: UdpSocket,
    last_id: u16,
}

/// Sends the query and judges the answer.
pub async fn probe(
    target: &Target,
    check: &DnsCheck,
    kept: &mut Option<Kept>,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let id = fresh_id(kept.as_ref().map(|k| k.last_id));
    let mut query = Message::new();
    query
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(check.recursion_desired)
        .add_query(Query::query(check.name.clone(), check.query_type));
    let bytes = query
        .to_vec()
        .map_err(|e| ProbeError::Dns(format!("cannot encode the query: {e}")))?;
    let answer = if check.tcp {
        over_tcp(target, &bytes, watch, phases).await?
    } else {
        over_udp(target, &bytes, &query, kept, watch, phases).await?
    };
    phases.end();
    judge(check, &query, &answer)
}

/// A random query id, other than `last`'s: an answer to the last query
/// that comes late is then never this one's.
fn fresh_id(last: Option<u16>) -> u16 {
    loop {
        // A new RandomState has keys of its own: a fresh hash each time.
        let id = RandomState::new().hash_one(std::time::Instant::now()) as u16;
        if Some(id) != last {
            return id;
        }
    }
}

/// The answer over UDP: the first datagram that answers this query, on
/// the socket kept from the last probe or a new one.
async fn over_udp(
    target: &Target,
    bytes: &[u8],
    query: &Message,
    kept: &mut Option<Kept>,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Message, ProbeError> {
    // Room for the largest datagram, not zeroed: the kernel writes the
    // answer and only its bytes are read (zeroing 64 KiB at every probe
    // showed in its profile, lab/bench/README.md).
    let mut buf = Vec::with_capacity(UDP_MAX);
    let reused = kept
        .take()
        .map(|k| k.socket)
        .filter(|socket| drained(socket, &mut buf));
    let (socket, sent) = match reused {
        Some(socket) => {
            let sent = phases.begin(Phase::Response);
            match socket.send(bytes).await {
                Ok(_) => (socket, sent),
                // The error of an earlier probe's datagram (an ICMP error
                // that came after that probe ended), held by the socket:
                // not this probe's. A new socket sends it again.
                Err(_) => send_anew(target, bytes, phases).await?,
            }
        }
        None => send_anew(target, bytes, phases).await?,
    };
    watch.sent_datagram(&socket, target.addr, sent);
    loop {
        buf.clear();
        socket
            .recv_buf(&mut buf)
            .await
            .map_err(ProbeError::Connect)?;
        match Message::from_vec(&buf) {
            Ok(answer) if answers(&answer, query) => {
                // Taken as empty: its readiness cleared with no read.
                let _ = socket.try_io(Interest::READABLE, || {
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
                *kept = Some(Kept {
                    socket,
                    last_id: query.id(),
                });
                return Ok(answer);
            }
            // Not an answer to this query: wait for the next.
            _ => continue,
        }
    }
}

/// The query sent on a new socket, and when.
async fn send_anew(
    target: &Target,
    bytes: &[u8],
    phases: &mut Phases,
) -> Result<(UdpSocket, std::time::Instant), ProbeError> {
    let socket = super::udp::connected(target)?;
    let sent = phases.begin(Phase::Response);
    socket.send(bytes).await.map_err(ProbeError::Connect)?;
    Ok((socket, sent))
}

/// Whether a kept socket can carry the next query: the datagrams it has
/// (late or repeated answers to earlier probes) read and dropped, without
/// waiting. One that reports an error, or has more than [`STALE_MAX`],
/// cannot.
fn drained(socket: &UdpSocket, buf: &mut Vec<u8>) -> bool {
    for _ in 0..STALE_MAX {
        buf.clear();
        match socket.try_recv_buf(buf) {
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
    false
}

/// The answer over TCP.
async fn over_tcp(
    target: &Target,
    bytes: &[u8],
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Message, ProbeError> {
    let mut stream = super::tcp::connect(target, watch, phases).await?;
    phases.begin(Phase::Response);
    let length = u16::try_from(bytes.len())
        .map_err(|_| ProbeError::Dns("the query is longer than 65535 bytes".into()))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| ProbeError::Dns(format!("sending the query: {e}")))?;
    let mut length = [0u8; 2];
    stream
        .read_exact(&mut length)
        .await
        .map_err(|e| ProbeError::Dns(format!("reading the answer: {e}")))?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|e| ProbeError::Dns(format!("reading the answer: {e}")))?;
    Message::from_vec(&answer).map_err(|e| ProbeError::Dns(format!("a malformed answer: {e}")))
}

/// Whether `answer` is the answer to `query`: its id, and its question.
fn answers(answer: &Message, query: &Message) -> bool {
    answer.id() == query.id()
        && answer.message_type() == MessageType::Response
        && answer.queries() == query.queries()
}

/// The rcode, then the records, against the check.
fn judge(check: &DnsCheck, query: &Message, answer: &Message) -> Result<Success, ProbeError> {
    if !answers(answer, query) {
        return Err(ProbeError::Dns(
            "the answer is not to the query sent (its id or question differs)".into(),
        ));
    }
    let rcode = u16::from(answer.response_code());
    if rcode != check.rcode {
        return Err(ProbeError::DnsRcode {
            got: rcode_name(rcode),
            want: rcode_name(check.rcode),
        });
    }
    let records = answer.answers();
    if let Some(address) = check.answer_address {
        if !records.iter().any(|r| r.data().ip_addr() == Some(address)) {
            return Err(ProbeError::DnsAnswer(format!(
                "no answer record holds {address} (answers: {})",
                shown(answer)
            )));
        }
    }
    if let Some(re) = &check.answer {
        if !records.iter().any(|r| re.is_match(&r.data().to_string())) {
            return Err(ProbeError::DnsAnswer(format!(
                "no answer record matches /{}/ (answers: {})",
                re.as_str(),
                shown(answer)
            )));
        }
    }
    Ok(Success::default())
}

/// The answer records' data, for an error.
fn shown(answer: &Message) -> String {
    let records: Vec<String> = answer
        .answers()
        .iter()
        .take(8)
        .map(|r| format!("{} {}", r.record_type(), r.data()))
        .collect();
    if records.is_empty() {
        return "none".into();
    }
    let more = answer.answers().len().saturating_sub(records.len());
    let mut text = records.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}
