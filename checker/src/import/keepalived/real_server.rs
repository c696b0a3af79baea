//! A keepalived `real_server` block to a checker real server.

use std::net::{IpAddr, SocketAddr};

use super::args::{forward, number, one_arg, one_or_more};
use super::checks::{checker, timing};
use super::settings::Inherited;
use super::tree::Statement;
use crate::config::Mode;
use crate::import::diag::{Diagnostics, ParseError, Severity};
use crate::import::model::{self, Check, CheckKind, Forward, RealServer};

/// The parts of a virtual_server block that every service of it shares.
pub(super) struct Pool {
    pub(super) protocol: &'static str,
    pub(super) scheduler: Option<String>,
    pub(super) forward: Forward,
    pub(super) persistence: Option<u32>,
    pub(super) persistence_netmask: Option<String>,
    pub(super) one_packet: bool,
    pub(super) scheduler_flags: Vec<&'static str>,
}

/// The checker blocks the import converts.
const CONVERTED: &[&str] = &[
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "PING_CHECK",
    "UDP_CHECK",
];

pub(super) fn real_server(
    rs: &Statement,
    pool: &Pool,
    vs_inherited: &Inherited,
    mode: Mode,
    diags: &mut Diagnostics,
) -> Result<RealServer, ParseError> {
    let loc = rs.loc().clone();
    let managed = mode == Mode::Managed;
    let ip_word = one_or_more(rs, 1)?;
    let ip: IpAddr = ip_word.text.parse().map_err(|_| {
        ParseError::new(
            &ip_word.loc,
            format!("{:?}: invalid real server address", ip_word.text),
        )
    })?;
    let port = rs
        .args
        .get(1)
        .map(|w| number::<u16>(w, "port"))
        .transpose()?;
    let mut comments = vec![format!(
        "{}: real_server {}",
        loc.line_only(),
        model::address(ip, port)
    )];
    let mut inherited = vs_inherited.clone();
    let mut weight = 1;
    let mut method = pool.forward;
    let mut upper = None;
    let mut lower = None;
    let mut checkers = Vec::new();
    for s in rs.children() {
        if inherited.take(s, diags)? {
            continue;
        }
        let key = s.keyword.text.as_str();
        match key {
            "weight" => weight = number(one_arg(s, diags)?, "weight")?,
            "lvs_method" => method = forward(s, diags)?,
            "uthreshold" => upper = Some(number(one_arg(s, diags)?, "uthreshold")?),
            "lthreshold" => lower = Some(number(one_arg(s, diags)?, "lthreshold")?),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK"
            | "UDP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => checkers.push(s),
            "snmp_name" => {}
            "notify_up" | "notify_down" | "smtp_alert" => {
                let message = format!(
                    "{key} has no counterpart (the checker's /metrics and logs say each change)"
                );
                diags.push(s.loc(), Severity::Dropped, &message);
                comments.push(format!("{}: {message}", s.loc().line_only()));
            }
            _ => diags.push(
                s.loc(),
                Severity::Dropped,
                format!("unknown keyword {key:?} in real_server"),
            ),
        }
    }
    if managed && inherited.inhibit_on_failure != Some(true) {
        let message = "no inhibit_on_failure: keepalived removes a failed real server from the table; the checker sets its weight to 0 (connections drain, a persistent client stays until its template expires)";
        diags.push(&loc, Severity::Different, message);
        comments.push(message.into());
    }
    let mut converted = Vec::new();
    let others = checkers
        .iter()
        .any(|c| CONVERTED.contains(&c.keyword.text.as_str()));
    for c in &checkers {
        let kind = c.keyword.text.as_str();
        if CONVERTED.contains(&kind) {
            converted.extend(checker(c, &inherited, port, &mut comments, diags)?);
            continue;
        }
        let message = format!(
            "{}; {}",
            not_converted(c),
            if others {
                "its other checkers are converted"
            } else {
                "a TCP connect check to the real server's port stands in"
            }
        );
        diags.push(c.loc(), Severity::Dropped, &message);
        comments.push(format!("{}: {message}", c.loc().line_only()));
    }
    let mut converted = converted.into_iter();
    let (checks, timing, check_address, source_address) = match converted.next() {
        Some(first) => {
            let (mut checks, timing, check_address, source) = (
                first.checks,
                first.timing,
                first.check_address,
                first.source,
            );
            // keepalived marks a real server up when all its checkers
            // are: the checker's `checks:`, all of which must pass.
            for more in converted {
                let kind = &more.label;
                let mut differs = Vec::new();
                if more.timing != timing {
                    differs.push(format!("{kind}'s timing differs from the first checker's: a real server's checks run together, at the first one's interval, timeout and fall"));
                }
                let mut same_ip = true;
                for mut check in more.checks {
                    same_ip &= same_target(&mut check, more.check_address, check_address, ip, port);
                    checks.push(check);
                }
                if !same_ip {
                    differs.push(format!("{kind} connects to another IP than the first checker: a real server's checks all probe the first one's IP (check_address), each at its own port"));
                }
                if more.source != source {
                    differs.push(format!("{kind}'s bindto differs from the first checker's: a real server's checks all use the first one's source address"));
                }
                for message in differs {
                    diags.push(&more.loc, Severity::Different, &message);
                    comments.push(format!("{}: {message}", more.loc.line_only()));
                }
            }
            (checks, timing, check_address, source)
        }
        None => {
            if checkers.is_empty() {
                let message = "no checker block: keepalived never checks it (always up); a TCP connect check to its port stands in";
                diags.push(&loc, Severity::Different, message);
                comments.push(message.into());
            }
            let t = timing(&inherited, "TCP_CHECK", &loc, &mut comments, diags);
            let tcp = Check {
                kind: CheckKind::Tcp,
                port: None,
            };
            (vec![tcp], t, None, None)
        }
    };
    Ok(RealServer {
        comments,
        address: model::address(ip, port),
        weight,
        forward: managed.then_some(method),
        upper_threshold: upper.filter(|u| managed && *u > 0),
        lower_threshold: lower.filter(|l| managed && *l > 0),
        check_address,
        source_address,
        timing,
        checks,
    })
}

/// What a checker block the import does not convert did in keepalived,
/// and what comes nearest in the checker.
fn not_converted(c: &Statement) -> String {
    let kind = c.keyword.text.as_str();
    let arg = |key: &str| {
        c.children()
            .iter()
            .find(|s| s.keyword.text == key)
            .and_then(|s| s.args.first())
            .map_or_else(|| "?".to_owned(), |w| w.text.clone())
    };
    match kind {
        "FILE_CHECK" => format!(
            "FILE_CHECK (track_file {}: a number in a file sets the real server's weight, or takes it down): not converted; nearest in the checker: maintenance_dir, where a file named after the real server drains it, or `ipvs-checker drain`",
            arg("track_file")
        ),
        "BFD_CHECK" => format!(
            "BFD_CHECK (the state of keepalived's BFD session {}): not converted, the checker has no BFD",
            arg("name")
        ),
        _ => format!(
            "{kind}: not converted (the import converts {})",
            CONVERTED.join(", ")
        ),
    }
}

/// Whether a further checker of a real server probes the same IP as its
/// first (whose `connect_ip` and port became the real server's
/// `check_address`, which all its checks probe). Its port is set on
/// `check` where it is not the one the real server's checks probe.
fn same_target(
    check: &mut Check,
    address: Option<SocketAddr>,
    first: Option<SocketAddr>,
    rs_ip: IpAddr,
    rs_port: Option<u16>,
) -> bool {
    // An echo request has no port.
    if check.kind != CheckKind::Icmp {
        let probed = address.map(|a| a.port()).or(check.port).or(rs_port);
        let base = first.map(|a| a.port()).or(rs_port);
        check.port = probed.filter(|p| Some(*p) != base);
    }
    address.map_or(rs_ip, |a| a.ip()) == first.map_or(rs_ip, |a| a.ip())
}
