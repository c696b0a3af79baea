//! `dns`: one query to the real server, over UDP (one datagram each
//! way) or TCP (the two-byte length framing of RFC 1035 4.2.2), whose
//! answer must have the expected rcode and, if set, a record matching a
//! regex or holding an address. hickory-proto builds the query and reads
//! the answer; the sockets are the checker's own, so the probe's timeout
//! and phases are those of every other check.
//!
//! Over UDP, an answer whose id or question is not the query's is not
//! one (a late answer to an earlier probe, or a spoofed one) and is
//! skipped; a refused port (an ICMP port unreachable on the connected
//! socket) is `connect`. An answer with the TC bit set is judged as it
//! is: the check asks for one name, and a health answer fits a datagram.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::{rcode_name, DnsCheck};

/// The largest answer read over UDP (EDNS' usual 4096 would do; a
/// datagram is at most this).
const UDP_MAX: usize = 65_535;

/// Sends the query and judges the answer.
pub async fn probe(
    target: &Target,
    check: &DnsCheck,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    let id = RandomState::new().hash_one(std::time::Instant::now()) as u16;
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
        over_udp(target, &bytes, &query, watch, phases).await?
    };
    phases.end();
    judge(check, &query, &answer)
}

/// The answer over UDP: the first datagram that answers this query.
async fn over_udp(
    target: &Target,
    bytes: &[u8],
    query: &Message,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Message, ProbeError> {
    let socket = super::udp::connected(target).await?;
    let sent = phases.begin(Phase::Response);
    socket.send(bytes).await.map_err(ProbeError::Connect)?;
    watch.sent_datagram(&socket, target.addr, sent);
    // Room for the largest datagram, not zeroed: the kernel writes the
    // answer and only its bytes are read (zeroing 64 KiB at every probe
    // showed in its profile, lab/bench/README.md).
    let mut buf = Vec::with_capacity(UDP_MAX);
    loop {
        buf.clear();
        socket
            .recv_buf(&mut buf)
            .await
            .map_err(ProbeError::Connect)?;
        match Message::from_vec(&buf) {
            Ok(answer) if answers(&answer, query) => return Ok(answer),
            // Not an answer to this query: wait for the next.
            _ => continue,
        }
    }
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
