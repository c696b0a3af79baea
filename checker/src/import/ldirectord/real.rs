//! ldirectord's `real=` lines (with address ranges) and `fallback=`.

use std::net::IpAddr;

use super::parse::Setting;
use super::values::{ip, split_port, split_words};
use crate::import::diag::ParseError;
use crate::import::model::Forward;

/// At most this many real servers from one `a->b` range.
const MAX_RANGE: u32 = 1024;

/// One real server of a `real=` line.
pub(super) struct Real {
    pub(super) ip: IpAddr,
    pub(super) port: u16,
    pub(super) forward: Forward,
    pub(super) weight: u32,
    pub(super) upper: Option<u32>,
    pub(super) lower: Option<u32>,
    /// Its own request, and receive if given.
    pub(super) request: Option<(String, Option<String>)>,
    pub(super) port_note: Option<String>,
}

/// `real=ADDR[->ADDR][:PORT] gate|masq|ipip [WEIGHT] ["request", "receive"]`.
pub(super) fn real_line(
    s: &Setting,
    ipv6: bool,
    fwmark: bool,
    vport: u16,
) -> Result<Vec<Real>, ParseError> {
    let words = split_words(&s.value).map_err(|m| ParseError::new(&s.value_loc, m))?;
    let Some((address, _)) = words.first() else {
        return Err(ParseError::new(&s.value_loc, "real needs an address"));
    };
    let (range, port) = split_port(address, ipv6).map_err(|m| ParseError::new(&s.value_loc, m))?;
    let (first, last) = match range.split_once("->") {
        Some((a, b)) => (ip(a, ipv6, &s.value_loc)?, Some(ip(b, ipv6, &s.value_loc)?)),
        None => (ip(range, ipv6, &s.value_loc)?, None),
    };
    let method = words.get(1).ok_or_else(|| {
        ParseError::new(
            &s.value_loc,
            "real needs a forwarding method: gate, masq or ipip",
        )
    })?;
    let forward = match method.0.as_str() {
        "gate" => Forward::Dr,
        "masq" => Forward::Nat,
        "ipip" => Forward::Tun,
        other => {
            return Err(ParseError::new(
                &s.value_loc,
                format!("{other:?}: the forwarding method is gate, masq or ipip"),
            ))
        }
    };
    let mut rest = &words[2..];
    let mut weight = 1;
    if let Some((w, false)) = rest.first() {
        if let Ok(n) = w.parse::<u32>() {
            weight = n;
            rest = &rest[1..];
        }
    }
    let mut request = None;
    let mut upper = None;
    let mut lower = None;
    let mut quoted_strings = Vec::new();
    for (word, quoted) in rest {
        let bare = word.trim_start_matches('<').trim_end_matches('>');
        if let Some(n) = bare.strip_prefix("u:") {
            upper = Some(n.parse().map_err(|_| {
                ParseError::new(&s.value_loc, format!("{word:?}: expected u:NUMBER"))
            })?);
        } else if let Some(n) = bare.strip_prefix("l:") {
            lower = Some(n.parse().map_err(|_| {
                ParseError::new(&s.value_loc, format!("{word:?}: expected l:NUMBER"))
            })?);
        } else if *quoted {
            quoted_strings.push(word.clone());
        } else {
            return Err(ParseError::new(&s.value_loc, format!("{word:?}: unexpected in a real line (the request and receive strings are quoted)")));
        }
    }
    match quoted_strings.as_slice() {
        [] => {}
        [req] => request = Some((req.clone(), None)),
        [req, recv] => request = Some((req.clone(), Some(recv.clone()))),
        _ => {
            return Err(ParseError::new(
                &s.value_loc,
                "a real line takes one request and one receive string",
            ))
        }
    }
    // ldirectord gives a gate or ipip real server of an address service the
    // service's port (the kernel would anyway): port mapping needs masq.
    let written = port.unwrap_or(0);
    let (port, port_note) = if fwmark {
        (written, None)
    } else if forward != Forward::Nat || written == 0 {
        let note = (written != vport && written != 0).then(|| format!("port {written} written; ldirectord uses the virtual service's {vport} for gate and ipip"));
        (vport, note)
    } else {
        (written, None)
    };
    let ips = match last {
        None => vec![first],
        Some(last) => {
            let (a, b) = match (first, last) {
                (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a), u32::from(b)),
                _ => {
                    return Err(ParseError::new(
                        &s.value_loc,
                        "an address range (a->b) is IPv4 only",
                    ))
                }
            };
            if b < a || b - a >= MAX_RANGE {
                return Err(ParseError::new(
                    &s.value_loc,
                    format!("the range must go up, at most {MAX_RANGE} addresses"),
                ));
            }
            (a..=b)
                .map(|n| IpAddr::from(std::net::Ipv4Addr::from(n)))
                .collect()
        }
    };
    Ok(ips
        .into_iter()
        .map(|ip| Real {
            ip,
            port,
            forward,
            weight,
            upper,
            lower,
            request: request.clone(),
            port_note: port_note.clone(),
        })
        .collect())
}

/// `fallback=ADDR[:PORT] [gate|masq|ipip]` (gate unless said).
pub(super) fn fallback(
    s: &Setting,
    ipv6: bool,
    vport: u16,
) -> Result<(IpAddr, u16, Forward), ParseError> {
    let words = split_words(&s.value).map_err(|m| ParseError::new(&s.value_loc, m))?;
    let Some((address, _)) = words.first() else {
        return Err(ParseError::new(&s.value_loc, "fallback needs an address"));
    };
    let (host, port) = split_port(address, ipv6 || s.key == "fallback6")
        .map_err(|m| ParseError::new(&s.value_loc, m))?;
    let ip = ip(host, ipv6 || s.key == "fallback6", &s.value_loc)?;
    let forward = match words.get(1).map(|w| w.0.as_str()) {
        None | Some("gate") => Forward::Dr,
        Some("masq") => Forward::Nat,
        Some("ipip") => Forward::Tun,
        Some(other) => {
            return Err(ParseError::new(
                &s.value_loc,
                format!("{other:?}: the forwarding method is gate, masq or ipip"),
            ))
        }
    };
    Ok((ip, port.unwrap_or(vport), forward))
}
