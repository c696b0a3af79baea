//! The check of an ldirectord section: `checktype=negotiate`'s service
//! (http, https, dns, and the smtp, imap, pop and mysql presets),
//! the service a port implies, and `receive=` as a regex.

use crate::import::diag::{Diagnostics, Loc, Severity};
use crate::import::model::{CheckKind, Http};

/// The check of `checktype=negotiate` for `service`.
pub(super) fn negotiate_kind(
    service: &str,
    http: &Http,
    login: bool,
    say: &mut impl FnMut(Severity, String, &mut Vec<String>),
    comments: &mut Vec<String>,
) -> CheckKind {
    match service {
        "http" => CheckKind::Http(http.clone()),
        "https" => CheckKind::Https(http.clone()),
        "smtp" => CheckKind::Preset("smtp"),
        // ldirectord asks for the A record of request= (receive= is
        // matched against the answer, below).
        "dns" => match http.path.as_deref().map(|p| p.trim_start_matches('/')) {
            Some(name) if !name.is_empty() => CheckKind::Dns {
                name: name.to_owned(),
                query_type: "A".into(),
                answer_address: None,
                answer: None,
            },
            _ => {
                say(Severity::Dropped, "service=dns without request= (the name to ask for): a TCP connect check stands in".into(), comments);
                CheckKind::Tcp
            }
        },
        "imap" | "pop" | "mysql" => {
            let preset = if service == "pop" { "pop3" } else { service };
            if login || service == "mysql" {
                say(Severity::Different, format!("service={service}: ldirectord logs in (login=, passwd={}); the {preset} preset checks the server's greeting without logging in", if service == "mysql" { ", and runs request=" } else { "" }), comments);
            }
            CheckKind::Preset(if preset == "pop3" {
                "pop3"
            } else if preset == "imap" {
                "imap"
            } else {
                "mysql"
            })
        }
        "none" => {
            say(Severity::Different, "service=none under checktype=negotiate has no counterpart; a TCP connect check stands in".into(), comments);
            CheckKind::Tcp
        }
        other => {
            say(Severity::Dropped, format!("service={other}: not converted (the import converts http, https, smtp, imap, pop, mysql and dns); a TCP connect check stands in"), comments);
            CheckKind::Tcp
        }
    }
}

/// `receive=` as the checker's `body:`, if the checker's regex reads it.
pub(super) fn checked_regex(
    re: &str,
    at: &Loc,
    diags: &mut Diagnostics,
    comments: &mut Vec<String>,
) -> Option<String> {
    match regex::Regex::new(re) {
        Ok(_) => Some(re.to_owned()),
        Err(e) => {
            let message =
                format!("receive {re:?} is not a regex the checker reads ({e}); left out");
            diags.push(at, Severity::Dropped, &message);
            comments.push(format!("{}: {message}", at.line_only()));
            None
        }
    }
}

/// ldirectord's service for a port when `service=` is not set.
pub(super) fn port_service(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}
