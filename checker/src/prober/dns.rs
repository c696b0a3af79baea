//! `dns`: one query to the real server, over UDP (one datagram each
//! way) or TCP (the two-byte length framing of RFC 1035 4.2.2), whose
//! answer must have the expected rcode and, if set, a record matching a
//! regex or holding an address. hickory-proto builds the query and reads
//! the answer; the sockets are the checker's own, so the probe's timeout
//! and phases are those of every other check.
//!
//! The query is made once, when the config is read (`DnsCheck::query`);
//! a probe writes its id into a copy. An answer is known as this query's
//! by its header and question alone, and its records are read only when
//! the check matches on them, or when it has an additional section (whose
//! EDNS record may extend the header's rcode): a check of the rcode
//! alone needs nothing of the records, and reading them (their names and
//! data) is work it is spared. Datagrams are read into the probe
//! thread's buffer (`udp::next_datagram`), not one allocated by each
//! probe.
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

use hickory_proto::op::{Header, Message, MessageType};
use hickory_proto::rr::DNSClass;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UdpSocket;

use super::{udp, Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::{rcode_name, DnsCheck};

/// The most datagrams read and dropped from a kept socket before a probe:
/// a socket that still has more (a peer flooding it) is left for a new one.
const STALE_MAX: usize = 16;

/// A DNS message's header, in bytes (RFC 1035 4.1.1).
const HEADER: usize = 12;

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
    let mut query = check.query.clone();
    if let Some(head) = query.get_mut(..2) {
        head.copy_from_slice(&id.to_be_bytes());
    }
    if !check.tcp {
        return over_udp(target, check, &query, id, kept, watch, phases).await;
    }
    let answer = over_tcp(target, &query, watch, phases).await?;
    phases.end();
    judge(check, id, &answer).unwrap_or_else(|| {
        Err(ProbeError::Dns(
            "the answer is not to the query sent (its id or question differs)".into(),
        ))
    })
}

/// A random query id, other than `last`'s: an answer to the last query
/// that comes late is then never this one's.
fn fresh_id(last: Option<u16>) -> u16 {
    loop {
        // A new RandomState has keys of its own: a fresh hash each time,
        // whatever is hashed.
        let id = RandomState::new().hash_one(last) as u16;
        if Some(id) != last {
            return id;
        }
    }
}

/// The query over UDP, on the socket kept from the last probe or a new
/// one, judged on the first datagram that answers it.
async fn over_udp(
    target: &Target,
    check: &DnsCheck,
    query: &[u8],
    id: u16,
    kept: &mut Option<Kept>,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let reused = kept.take().map(|k| k.socket).filter(drained);
    let (socket, sent) = match reused {
        Some(socket) => {
            let sent = phases.begin(Phase::Response);
            match socket.send(query).await {
                Ok(_) => (socket, sent),
                // The error of an earlier probe's datagram (an ICMP error
                // that came after that probe ended), held by the socket:
                // not this probe's. A new socket sends it again.
                Err(_) => send_anew(target, query, phases).await?,
            }
        }
        None => send_anew(target, query, phases).await?,
    };
    watch.sent_datagram(&socket, target.addr, sent);
    loop {
        match udp::next_datagram(&socket, |datagram| judge(check, id, datagram)).await {
            Ok(Some(result)) => {
                phases.end();
                // Taken as empty: its readiness cleared with no read.
                let _ = socket.try_io(Interest::READABLE, || {
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
                *kept = Some(Kept {
                    socket,
                    last_id: id,
                });
                return result;
            }
            // Not an answer to this query: wait for the next.
            Ok(None) => continue,
            Err(e) => return Err(ProbeError::Connect(e)),
        }
    }
}

/// The query sent on a new socket, and when.
async fn send_anew(
    target: &Target,
    query: &[u8],
    phases: &mut Phases,
) -> Result<(UdpSocket, std::time::Instant), ProbeError> {
    let socket = udp::connected(target)?;
    let sent = phases.begin(Phase::Response);
    socket.send(query).await.map_err(ProbeError::Connect)?;
    Ok((socket, sent))
}

/// Whether a kept socket can carry the next query: the datagrams it has
/// (late or repeated answers to earlier probes) read and dropped, without
/// waiting. One that reports an error, or has more than [`STALE_MAX`],
/// cannot.
fn drained(socket: &UdpSocket) -> bool {
    udp::with_datagram(|buf| {
        for _ in 0..STALE_MAX {
            match socket.try_recv(buf) {
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
            }
        }
        false
    })
}

/// The answer over TCP.
async fn over_tcp(
    target: &Target,
    query: &[u8],
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Vec<u8>, ProbeError> {
    let length = u16::try_from(query.len())
        .map_err(|_| ProbeError::Dns("the query is longer than 65535 bytes".into()))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    // Sent as the connection is made, by the socket's set (see
    // `super::tcp::connect_sending`).
    let framed: std::sync::Arc<[u8]> = framed.into();
    let (mut stream, sent) = super::tcp::connect_sending(target, &framed, watch, phases).await?;
    let sent = super::tcp::begins_where_sent(phases, Phase::Response, sent);
    stream
        .write_all(framed.get(sent..).unwrap_or_default())
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
    Ok(answer)
}

/// The answer in `bytes` judged against the check: `None` if it is not
/// the answer to the query with `id` (its header or question differ, or
/// cannot be read).
pub(super) fn judge(
    check: &DnsCheck,
    id: u16,
    bytes: &[u8],
) -> Option<Result<Success, ProbeError>> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).ok()?;
    if header.id() != id
        || header.message_type() != MessageType::Response
        || header.query_count() != 1
    {
        return None;
    }
    if !asks_as_the_query(check, bytes) {
        let question = hickory_proto::op::Query::read(&mut decoder).ok()?;
        if question.name() != &check.name
            || question.query_type() != check.query_type
            || question.query_class() != DNSClass::IN
        {
            return None;
        }
    }
    if header.additional_count() == 0 && check.answer.is_none() && check.answer_address.is_none() {
        return Some(rcode_judged(check, u16::from(header.response_code())));
    }
    Some(match Message::from_vec(bytes) {
        Ok(answer) => rcode_judged(check, u16::from(answer.response_code()))
            .and_then(|_| records_judged(check, &answer)),
        Err(e) => Err(ProbeError::Dns(format!("a malformed answer: {e}"))),
    })
}

/// Whether the answer in `bytes` repeats the query's question byte for
/// byte, but for the case of the name's letters (names match whatever
/// their case). Servers repeat it so, and this spares reading it as a
/// name; an answer that words it otherwise (compressed, say) is read and
/// compared as a name instead. The query holds its one question and
/// nothing else after the header ([`DnsCheck::query`]), and a question
/// ends with its type and class, compared exactly.
fn asks_as_the_query(check: &DnsCheck, bytes: &[u8]) -> bool {
    let (Some(ours), Some(theirs)) = (
        check.query.get(HEADER..),
        bytes.get(HEADER..check.query.len()),
    ) else {
        return false;
    };
    let name = ours.len().saturating_sub(4);
    ours[..name].eq_ignore_ascii_case(&theirs[..name]) && ours[name..] == theirs[name..]
}

/// The answer's rcode against the check's.
fn rcode_judged(check: &DnsCheck, rcode: u16) -> Result<Success, ProbeError> {
    if rcode != check.rcode {
        return Err(ProbeError::DnsRcode {
            got: rcode_name(rcode),
            want: rcode_name(check.rcode),
        });
    }
    Ok(Success::default())
}

/// The answer's records against the check's `answer_address` and `answer`.
fn records_judged(check: &DnsCheck, answer: &Message) -> Result<Success, ProbeError> {
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
