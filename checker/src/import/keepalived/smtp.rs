//! keepalived's SMTP_CHECK to the checker's `tcp` conversation.
//!
//! keepalived reads a 220 greeting, sends `HELO NAME` (`helo_name`, its
//! own name unless set), reads a 250, sends `QUIT` and reads a line. The
//! checker's `smtp` preset is that conversation with `EHLO ipvs-checker`;
//! with a `helo_name` its steps are written out with that name.
//!
//! `host` blocks (deprecated in keepalived, still read) each make a
//! checker of their own, to the host's `connect_ip`/`connect_port`
//! (the real server's unless set), from its `bindto`, within its
//! `connect_timeout`; the SMTP_CHECK's own connection is checked too only
//! if the block sets a connection keyword itself. The other keywords of a
//! host block (`retry`, `delay_loop`, ...) set the SMTP_CHECK's, for all
//! its hosts. A real server is up when every one passes: the checker's
//! `checks:`, which probe one IP, each at its own port, so hosts at other
//! IPs than the first are said as a difference (`real_server`).

use std::time::Duration;

use super::args::{one_arg, timer};
use super::settings::{Connection, Converted, Inherited};
use super::tree::Statement;
use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};
use crate::import::model::{Check, CheckKind, Step, Timing};
use crate::import::yaml;

/// The keywords that set a checker's connection: with one of them in the
/// SMTP_CHECK itself, its own connection is checked beside its hosts'.
const CONNECTION_KEYWORDS: &[&str] = &[
    "connect_ip",
    "connect_port",
    "bindto",
    "bind_port",
    "bind_if",
    "fwmark",
    "connect_timeout",
];

/// A `host` block: where it connects, and its own `connect_timeout`.
#[derive(Debug)]
struct Host {
    connection: Connection,
    timeout: Option<Duration>,
    loc: Loc,
}

/// The SMTP_CHECK keywords, as read.
#[derive(Debug, Default)]
pub(super) struct SmtpOptions {
    helo_name: Option<String>,
    hosts: Vec<Host>,
}

impl SmtpOptions {
    /// Whether the SMTP_CHECK `c`'s own connection is checked: it has no
    /// host block, or sets a connection keyword itself.
    pub(super) fn checks_own(&self, c: &Statement) -> bool {
        self.hosts.is_empty()
            || c.children()
                .iter()
                .any(|s| CONNECTION_KEYWORDS.contains(&s.keyword.text.as_str()))
    }

    /// Takes `s` if it is an SMTP_CHECK keyword; a host block's keywords
    /// other than its connection's go to `inherited`, the SMTP_CHECK's.
    pub(super) fn take(
        &mut self,
        s: &Statement,
        inherited: &mut Inherited,
        comments: &mut Vec<String>,
        diags: &mut Diagnostics,
    ) -> Result<bool, ParseError> {
        match s.keyword.text.as_str() {
            "helo_name" => {
                // keepalived takes the rest of the line as the name.
                let words: Vec<&str> = s.args.iter().map(|w| w.text.as_str()).collect();
                if words.is_empty() {
                    return Err(ParseError::new(s.loc(), "helo_name needs a name"));
                }
                let name = words.join(" ");
                comments.push(format!(
                    "{}: helo_name {name}: the smtp preset's steps, greeting with EHLO {name} (keepalived says HELO; a server answers both with 250)",
                    s.loc().line_only()
                ));
                self.helo_name = Some(name);
            }
            "host" => {
                let mut host = Host {
                    connection: Connection::default(),
                    timeout: None,
                    loc: s.loc().clone(),
                };
                for h in s.children() {
                    if h.keyword.text == "connect_timeout" {
                        host.timeout = Some(timer(one_arg(h, diags)?)?);
                    } else if !(host
                        .connection
                        .take(h, "SMTP_CHECK host", comments, diags)?
                        || inherited.take(h, diags)?
                        || h.keyword.text == "log_all_failures")
                    {
                        diags.push(
                            h.loc(),
                            Severity::Dropped,
                            format!("unknown keyword {:?} in an SMTP_CHECK host", h.keyword.text),
                        );
                    }
                }
                self.hosts.push(host);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The check each host (and the SMTP_CHECK's own connection) makes.
    pub(super) fn kind(&self) -> CheckKind {
        match &self.helo_name {
            None => CheckKind::Preset("smtp"),
            Some(name) => CheckKind::Conversation(steps(name)),
        }
    }

    /// The checkers: `own` (the SMTP_CHECK's own connection, if it is
    /// checked), then one per host at `timing` but for its own timeout.
    pub(super) fn checkers(
        self,
        own: Option<Converted>,
        timing: Timing,
        rs_port: Option<u16>,
        comments: &mut Vec<String>,
        diags: &mut Diagnostics,
    ) -> Result<Vec<Converted>, ParseError> {
        let kind = self.kind();
        let mut checkers: Vec<Converted> = own.into_iter().collect();
        if self.hosts.is_empty() {
            return Ok(checkers);
        }
        let message = "SMTP_CHECK host blocks: one check per host, as keepalived makes one checker per host (all must pass)";
        comments.push(format!("{}: {message}", self.hosts[0].loc.line_only()));
        for host in self.hosts {
            let (check_address, port) = host.connection.target(rs_port, &host.loc)?;
            let mut timing = timing;
            if let Some(timeout) = host.timeout {
                timing.timeout = timeout.min(timing.interval);
                if timeout > timing.interval {
                    let message = format!(
                        "connect_timeout {} is longer than delay_loop {}: the checker's timeout is at most its interval",
                        yaml::duration(timeout),
                        yaml::duration(timing.interval)
                    );
                    diags.push(&host.loc, Severity::Different, &message);
                    comments.push(format!("{}: {message}", host.loc.line_only()));
                }
            }
            checkers.push(Converted {
                checks: vec![Check {
                    kind: kind.clone(),
                    port,
                }],
                timing,
                check_address,
                source: host.connection.bindto,
                label: "SMTP_CHECK host".into(),
                loc: host.loc,
            });
        }
        Ok(checkers)
    }
}

/// The smtp preset's steps, greeting with `EHLO name`.
fn steps(name: &str) -> Vec<Step> {
    crate::config::preset_steps("smtp")
        .unwrap_or_default()
        .iter()
        .map(|(key, value)| match *key {
            "send" if value.starts_with("EHLO ") => Step::Send(format!("EHLO {name}\r\n")),
            "send" => Step::Send((*value).to_owned()),
            _ => Step::Expect((*value).to_owned()),
        })
        .collect()
}
