//! The fields of a `dns` check: the name and type asked, over UDP or TCP,
//! and what the answer must hold.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use regex::Regex;

use super::scalars::optional_regex;
use super::DnsCheck;

/// The rcodes a check may expect, by their RFC 1035 / 2136 mnemonics.
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// The mnemonic of `rcode` (`NXDOMAIN`), or its number.
pub fn rcode_name(rcode: u16) -> String {
    RCODES
        .iter()
        .find(|(_, n)| *n == rcode)
        .map_or_else(|| rcode.to_string(), |(name, _)| (*name).to_owned())
}

/// A `dns` check's fields as written.
#[derive(Debug, Default)]
pub(super) struct DnsFields {
    pub name: Option<String>,
    pub query_type: Option<String>,
    pub transport: Option<String>,
    pub expect_rcode: Option<String>,
    pub answer: Option<String>,
    pub answer_address: Option<IpAddr>,
    pub recursion_desired: Option<bool>,
}

impl DnsFields {
    /// Which are set, by name, for the checks of other types.
    pub fn set(&self) -> [(&'static str, bool); 7] {
        [
            ("name", self.name.is_some()),
            ("query_type", self.query_type.is_some()),
            ("transport", self.transport.is_some()),
            ("expect_rcode", self.expect_rcode.is_some()),
            ("answer", self.answer.is_some()),
            ("answer_address", self.answer_address.is_some()),
            ("recursion_desired", self.recursion_desired.is_some()),
        ]
    }
}

/// The check, validated.
pub(super) fn dns_check(f: &DnsFields) -> Result<DnsCheck, String> {
    let Some(text) = &f.name else {
        return Err("a dns check needs name: the name to ask for, like www.example.test".into());
    };
    if text.is_empty() || text.contains("..") || (text.starts_with('.') && text != ".") {
        return Err(format!(
            "invalid name {text:?}: a label is empty (a leading or doubled dot)"
        ));
    }
    let mut name = Name::from_utf8(text).map_err(|e| format!("invalid name {text:?}: {e}"))?;
    // Asked as written, from the root: no search list applies.
    name.set_fqdn(true);
    let query_type = match &f.query_type {
        None => RecordType::A,
        Some(t) => match t.to_ascii_uppercase().parse::<RecordType>() {
            Ok(RecordType::Unknown(_)) | Err(_) => {
                return Err(format!(
                    "invalid query_type {t:?}: expected a record type like A, AAAA, SOA, NS, MX, TXT, SRV or PTR"
                ))
            }
            Ok(t) => t,
        },
    };
    let tcp = match f.transport.as_deref() {
        None | Some("udp") => false,
        Some("tcp") => true,
        Some(other) => return Err(format!("invalid transport {other:?}: expected udp or tcp")),
    };
    let rcode = match &f.expect_rcode {
        None => 0,
        Some(r) => RCODES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(r))
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                let names: Vec<&str> = RCODES.iter().map(|(n, _)| *n).collect();
                format!(
                    "invalid expect_rcode {r:?}: expected one of {}",
                    names.join(", ")
                )
            })?,
    };
    let answer = optional_regex("answer", f.answer.as_ref(), Regex::new)?;
    if rcode != 0 && (answer.is_some() || f.answer_address.is_some()) {
        return Err(format!(
            "answer and answer_address need expect_rcode NOERROR (an answer with rcode {} has no records to match)",
            rcode_name(rcode)
        ));
    }
    let recursion_desired = f.recursion_desired.unwrap_or(true);
    let query = query_bytes(&name, query_type, recursion_desired)
        .map_err(|e| format!("invalid name {text:?}: the query cannot be encoded: {e}"))?;
    Ok(DnsCheck {
        name,
        query_type,
        tcp,
        rcode,
        answer,
        answer_address: f.answer_address,
        recursion_desired,
        query,
    })
}

/// The query's bytes, with id 0.
fn query_bytes(
    name: &Name,
    query_type: RecordType,
    recursion_desired: bool,
) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut query = Message::new();
    query
        .set_id(0)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(recursion_desired)
        .add_query(Query::query(name.clone(), query_type));
    query.to_vec()
}
