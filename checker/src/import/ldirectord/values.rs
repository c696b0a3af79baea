//! The setting-value helpers of the ldirectord conversion: words,
//! addresses and ports, quoted strings, seconds and yes/no.

use std::net::{IpAddr, SocketAddr};

use super::parse::Setting;
use crate::import::diag::{Loc, ParseError};

/// Words of a value, with whether each was quoted; commas between words
/// are separators (`"request", "receive"`).
pub(super) fn split_words(value: &str) -> Result<Vec<(String, bool)>, String> {
    let mut words = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == ',' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut w = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => w.push(c),
                    None => return Err("unterminated quoted string".into()),
                }
            }
            words.push((w, true));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == ',' || c == '"' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            words.push((w, false));
        }
    }
    Ok(words)
}

/// `IP:PORT`, `[IPv6]:PORT`, `IP`, `[IPv6]`, or a range before the port.
pub(super) fn split_port(text: &str, ipv6: bool) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if ipv6 {
        match text.rsplit_once("]:") {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| {
            format!("port {p:?}: the import needs a number (ldirectord would look a service name up in /etc/services)")
        })?),
    };
    Ok((host, port))
}

pub(super) fn ip(text: &str, ipv6: bool, at: &Loc) -> Result<IpAddr, ParseError> {
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) if ip.is_ipv6() == ipv6 => Ok(ip),
        Ok(_) => Err(ParseError::new(at, format!("{text:?}: {} address expected here (virtual6/real6/fallback6 are IPv6)", if ipv6 { "an IPv6" } else { "an IPv4" }))),
        Err(_) => Err(ParseError::new(at, format!("{text:?}: the import needs an IP address (ldirectord would resolve a host name when it starts)"))),
    }
}

pub(super) fn socket_addr(text: &str, ipv6: bool, at: &Loc) -> Result<SocketAddr, ParseError> {
    let (host, port) = split_port(text, ipv6).map_err(|m| ParseError::new(at, m))?;
    let port = port.ok_or_else(|| ParseError::new(at, "a virtual service address needs :PORT"))?;
    Ok(SocketAddr::new(ip(host, ipv6, at)?, port))
}

/// A request as ldirectord sends it: with a leading `/`.
pub(super) fn path(request: &str) -> String {
    if request.starts_with('/') {
        request.to_owned()
    } else {
        format!("/{request}")
    }
}

/// A value that must be quoted (`request`, `receive`).
pub(super) fn quoted(s: &Setting) -> Result<&str, ParseError> {
    match s.value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ParseError::new(
            &s.value_loc,
            format!("{} takes a quoted, non-empty string", s.key),
        )),
    }
}

pub(super) fn seconds(s: &Setting) -> Result<u64, ParseError> {
    s.value
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && *n < 1_000_000)
        .ok_or_else(|| {
            ParseError::new(
                &s.value_loc,
                format!(
                    "{} {:?}: expected a whole number of seconds, at least 1",
                    s.key, s.value
                ),
            )
        })
}

pub(super) fn yes_no(s: &Setting) -> Result<bool, ParseError> {
    match s.unquoted()?.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ParseError::new(
            &s.value_loc,
            format!("{} is yes or no", s.key),
        )),
    }
}
