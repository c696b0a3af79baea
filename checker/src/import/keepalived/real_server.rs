//! A keepalived `real_server` block to a checker real server.

use std::net::IpAddr;

use super::args::{forward, number, one_arg, one_or_more};
use super::checks::{checker, timing, Inherited};
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
    let supported = checkers.iter().position(|c| {
        matches!(
            c.keyword.text.as_str(),
            "TCP_CHECK"
                | "HTTP_GET"
                | "SSL_GET"
                | "MISC_CHECK"
                | "SMTP_CHECK"
                | "DNS_CHECK"
                | "PING_CHECK"
        )
    });
    for (i, c) in checkers.iter().enumerate() {
        if Some(i) == supported {
            continue;
        }
        let message = match supported {
            Some(_) => format!(
                "{}: a second checker; keepalived needs every checker to pass, the import converts the first (list them under checks: by hand)",
                c.keyword.text
            ),
            None => format!(
                "{}: not converted (the import converts TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, SMTP_CHECK, DNS_CHECK and PING_CHECK); a TCP connect check to the real server's port stands in",
                c.keyword.text
            ),
        };
        diags.push(c.loc(), Severity::Dropped, &message);
        comments.push(format!("{}: {message}", c.loc().line_only()));
    }
    let (check, timing, check_address, source_address) = match supported.map(|i| checkers[i]) {
        Some(c) => checker(c, &inherited, port, &mut comments, diags)?,
        None => {
            if checkers.is_empty() {
                let message = "no checker block: keepalived never checks it (always up); a TCP connect check to its port stands in";
                diags.push(&loc, Severity::Different, message);
                comments.push(message.into());
            }
            let t = timing(&inherited, "TCP_CHECK", &loc, &mut comments, diags);
            (
                Check {
                    kind: CheckKind::Tcp,
                    port: None,
                },
                t,
                None,
                None,
            )
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
        check,
    })
}
