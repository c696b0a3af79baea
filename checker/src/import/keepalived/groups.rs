//! keepalived's `virtual_server_group` members and the IP ranges they
//! are written with.

use std::net::{IpAddr, SocketAddr};

use super::args::{number, one_or_more};
use super::tree::{Statement, Word};
use crate::import::diag::{Loc, ParseError};

/// At most this many services from one address range of a group.
const MAX_RANGE: u32 = 1024;

/// A `virtual_server_group` entry: one service each.
#[derive(Debug, Clone)]
pub(super) enum Member {
    Addr(SocketAddr, Loc),
    Fwmark(u32, Option<bool>, Loc),
}

pub(super) fn group_members(group: &Statement) -> Result<Vec<Member>, ParseError> {
    let mut members = Vec::new();
    for s in group.children() {
        if s.keyword.text == "fwmark" {
            let mark = number(one_or_more(s, 1)?, "fwmark")?;
            let ipv6 = match s.args.get(1).map(|w| w.text.as_str()) {
                None => None,
                Some("inet") => Some(false),
                Some("inet6") => Some(true),
                Some(_) => return Err(ParseError::new(&s.args[1].loc, "expected inet or inet6")),
            };
            members.push(Member::Fwmark(mark, ipv6, s.loc().clone()));
            continue;
        }
        let Some(port) = s.args.first() else {
            return Err(ParseError::new(
                s.loc(),
                "a group address without a port: the import needs VIP PORT",
            ));
        };
        let port = number::<u16>(port, "port")?;
        for ip in ip_range(&s.keyword)? {
            members.push(Member::Addr(SocketAddr::new(ip, port), s.loc().clone()));
        }
    }
    Ok(members)
}

/// `10.0.0.1`, `10.0.0.1-10`, `10.0.0.250-10.0.1.10`, `10.0.0.8/29`, and
/// IPv6 with the last group ranged (`2001:db8::1-a`).
pub(super) fn ip_range(word: &Word) -> Result<Vec<IpAddr>, ParseError> {
    let bad = |m: &str| ParseError::new(&word.loc, format!("{:?}: {m}", word.text));
    let text = word.text.as_str();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let (first, last): (u128, u128) = if let Some((addr, len)) = text.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| bad("invalid address"))?;
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = len.parse().map_err(|_| bad("invalid prefix length"))?;
        if len > bits {
            return Err(bad("prefix length too long"));
        }
        let n = to_int(ip);
        let host = if bits - len >= 128 {
            u128::MAX
        } else {
            (1u128 << (bits - len)) - 1
        };
        (n & !host, n | host)
    } else if let Some((addr, end)) = text.split_once('-') {
        let ip: IpAddr = addr.parse().map_err(|_| bad("invalid address"))?;
        let start = to_int(ip);
        let end_n = if let Ok(end_ip) = end.parse::<IpAddr>() {
            to_int(end_ip)
        } else if ip.is_ipv4() {
            let last: u128 = end
                .parse::<u8>()
                .map_err(|_| bad("invalid range end"))?
                .into();
            (start & !0xff) | last
        } else {
            let last =
                u128::from(u16::from_str_radix(end, 16).map_err(|_| bad("invalid range end"))?);
            (start & !0xffff) | last
        };
        (start, end_n)
    } else {
        return Err(bad("expected an IP address or a range"));
    };
    if last < first {
        return Err(bad("the range ends before it starts"));
    }
    if last - first >= u128::from(MAX_RANGE) {
        return Err(bad(&format!("more than {MAX_RANGE} addresses")));
    }
    let v4 = !text.contains(':');
    Ok((first..=last)
        .map(|n| {
            if v4 {
                IpAddr::from(std::net::Ipv4Addr::from(n as u32))
            } else {
                IpAddr::from(std::net::Ipv6Addr::from(n))
            }
        })
        .collect())
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => u128::from(v6),
    }
}
