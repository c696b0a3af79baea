//! What every keepalived checker block takes besides its own keywords:
//! the settings a virtual_server and a real_server pass down to it
//! ([`Inherited`]), where it connects ([`Connection`]), and what it
//! becomes ([`Converted`]). Shared by `checks` and its SMTP_CHECK part
//! (`smtp`), so that neither imports the other.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::args::{flag, number, one_arg, timer};
use super::tree::Statement;
use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};
use crate::import::model::{Check, Timing};

/// Settings a virtual_server and a real_server pass down to checkers.
#[derive(Debug, Clone, Default)]
pub(super) struct Inherited {
    pub(super) delay_loop: Option<Duration>,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) retry: Option<u32>,
    pub(super) delay_before_retry: Option<Duration>,
    pub(super) inhibit_on_failure: Option<bool>,
    pub(super) virtualhost: Option<String>,
}

impl Inherited {
    /// Takes `s` if it is one of the inherited settings.
    pub(super) fn take(
        &mut self,
        s: &Statement,
        diags: &mut Diagnostics,
    ) -> Result<bool, ParseError> {
        match s.keyword.text.as_str() {
            "delay_loop" => self.delay_loop = Some(timer(one_arg(s, diags)?)?),
            "connect_timeout" => self.connect_timeout = Some(timer(one_arg(s, diags)?)?),
            "retry" | "nb_get_retry" | "nb_sock_retry" => {
                self.retry = Some(number(one_arg(s, diags)?, "retry")?)
            }
            "delay_before_retry" => self.delay_before_retry = Some(timer(one_arg(s, diags)?)?),
            "inhibit_on_failure" => self.inhibit_on_failure = Some(flag(s)?),
            "virtualhost" => self.virtualhost = Some(one_arg(s, diags)?.text.clone()),
            "warmup" => diags.push(
                s.loc(),
                Severity::Different,
                "warmup (a random delay before the first check) has no counterpart: the checker spreads its first probes itself",
            ),
            "alpha" => diags.push(
                s.loc(),
                Severity::Note,
                "alpha: managed mode always starts a real server it adds at weight 0 until its checks pass",
            ),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A keepalived checker as the checker's: its checks (one, or one per
/// `url`), timing, check address and source address; `label` and `loc`
/// name it in what is said about it.
#[derive(Debug)]
pub(super) struct Converted {
    pub(super) checks: Vec<Check>,
    pub(super) timing: Timing,
    pub(super) check_address: Option<SocketAddr>,
    pub(super) source: Option<IpAddr>,
    pub(super) label: String,
    pub(super) loc: Loc,
}

/// Where a checker connects: `connect_ip`, `connect_port`, `bindto`.
#[derive(Debug, Clone, Default)]
pub(super) struct Connection {
    ip: Option<IpAddr>,
    port: Option<u16>,
    pub(super) bindto: Option<IpAddr>,
}

impl Connection {
    /// Takes `s` if it is a connection keyword of `kind`; the ones without
    /// a counterpart are said.
    pub(super) fn take(
        &mut self,
        s: &Statement,
        kind: &str,
        comments: &mut Vec<String>,
        diags: &mut Diagnostics,
    ) -> Result<bool, ParseError> {
        let address = |s: &Statement, diags: &mut Diagnostics, what: &str| {
            let w = one_arg(s, diags)?;
            w.text
                .parse::<IpAddr>()
                .map_err(|_| ParseError::new(&w.loc, format!("{:?}: invalid {what}", w.text)))
        };
        let key = s.keyword.text.as_str();
        match key {
            "connect_ip" => self.ip = Some(address(s, diags, "connect_ip")?),
            "connect_port" => self.port = Some(number(one_arg(s, diags)?, "connect_port")?),
            "bindto" => self.bindto = Some(address(s, diags, "bindto")?),
            "bind_port" | "bind_if" | "fwmark" => no_counterpart(s, kind, comments, diags),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The check address (with `connect_ip`) and the check's own port (a
    /// `connect_port` that is not the real server's), `at` the checker.
    pub(super) fn target(
        &self,
        rs_port: Option<u16>,
        at: &Loc,
    ) -> Result<(Option<SocketAddr>, Option<u16>), ParseError> {
        Ok(match (self.ip, self.port) {
            (Some(ip), p) => match p.or(rs_port) {
                Some(p) => (Some(SocketAddr::new(ip, p)), None),
                None => {
                    return Err(ParseError::new(
                        at,
                        "connect_ip without a port to connect to (set connect_port)",
                    ))
                }
            },
            (None, p) => (None, p.filter(|p| Some(*p) != rs_port)),
        })
    }
}

/// `KIND KEY has no counterpart`, said on stderr and above the real server.
pub(super) fn no_counterpart(
    s: &Statement,
    kind: &str,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) {
    let message = format!(
        "{kind} {} has no counterpart in the checker",
        s.keyword.text
    );
    diags.push(s.loc(), Severity::Dropped, &message);
    comments.push(format!("{}: {message}", s.loc().line_only()));
}
