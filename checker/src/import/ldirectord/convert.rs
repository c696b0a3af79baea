//! ldirectord's `virtual=` sections to checker services: the mapping and
//! its semantics.
//!
//! Timing: ldirectord checks every `checkinterval` (10 s; a section's own
//! value counts only with `fork = yes`), gives a connect check
//! `checktimeout` and a negotiate check `negotiatetimeout` (each
//! defaulting to the other, else 5 s and 30 s), and a real server is down
//! after `failurecount` failures in a row (1) and up again after one
//! success. So `interval`, `timeout`, `fall` carry over and `rise` is 1;
//! the checker's timeout is at most its interval.
//!
//! Here the entry point and the sections; the `real=` and `fallback=`
//! lines in `real`, the check's kind in `checks`, the settings' values in
//! `values`.

use std::time::Duration;

use super::checks::{checked_regex, negotiate_kind, port_service};
use super::parse::{File, Setting, Virtual};
use super::real::{fallback, real_line};
use super::values::{path, quoted, seconds, socket_addr, yes_no};
use crate::config::Mode;
use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};
use crate::import::model::{
    self, Check, CheckKind, Http, Imported, Quorum, RealServer, Service, ServiceAddr, SorryServer,
    Timing,
};
use crate::import::yaml;

/// Settings a section inherits from the global ones.
#[derive(Debug, Clone, Default)]
struct Defaults {
    checktimeout: Option<u64>,
    negotiatetimeout: Option<u64>,
    checkinterval: Option<u64>,
    failurecount: Option<u32>,
    quiescent: Option<(bool, Loc)>,
    fallback: Option<Setting>,
    fork: bool,
}

impl Defaults {
    /// Takes `s` if it is a setting both levels have.
    fn take(
        &mut self,
        s: &Setting,
        global: bool,
        diags: &mut Diagnostics,
    ) -> Result<bool, ParseError> {
        match s.key.as_str() {
            "checktimeout" => self.checktimeout = Some(seconds(s)?),
            "negotiatetimeout" => self.negotiatetimeout = Some(seconds(s)?),
            "checkinterval" => {
                if global || self.fork {
                    self.checkinterval = Some(seconds(s)?);
                } else {
                    diags.push(
                        &s.loc,
                        Severity::Note,
                        "checkinterval in a virtual section counts only with fork = yes (ldirectord uses the global one, and so does the import)",
                    );
                }
            }
            "failurecount" => {
                let n = seconds(s)?;
                self.failurecount =
                    Some(u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                        ParseError::new(&s.value_loc, "failurecount must be at least 1")
                    })?);
            }
            "quiescent" => self.quiescent = Some((yes_no(s)?, s.loc.clone())),
            "fallback" | "fallback6" => self.fallback = Some(s.clone()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The services of a parsed ldirectord.cf.
pub fn convert(file: &File, mode: Mode, diags: &mut Diagnostics) -> Result<Imported, ParseError> {
    let mut defaults = Defaults::default();
    let mut maintenance_dir = None;
    for s in &file.globals {
        if s.key == "fork" {
            defaults.fork = yes_no(s)?;
        }
    }
    for s in &file.globals {
        if defaults.take(s, true, diags)? {
            continue;
        }
        match s.key.as_str() {
            "fork" | "logfile" | "supervised" | "autoreload" => {}
            "emailalert" | "emailalertfreq" | "emailalertstatus" | "emailalertfrom" | "smtp"
            | "callback" | "execute" | "fallbackcommand" | "checkcount" | "cleanstop"
            | "readdquiescent" => diags.push(
                &s.loc,
                Severity::Dropped,
                format!("{} has no counterpart in the checker", s.key),
            ),
            "maintenancedir" => {
                maintenance_dir = Some(s.value.clone());
                diags.push(
                    &s.loc,
                    Severity::Different,
                    "maintenancedir: a file named after a real server's address, or address:port, drains it (weight 0, still probed) while it exists; files named after a host name do not",
                );
            }
            other => diags.push(
                &s.loc,
                Severity::Dropped,
                format!("unknown global setting {other:?}"),
            ),
        }
    }
    let mut services = Vec::new();
    for v in &file.virtuals {
        services.extend(virtual_section(v, &defaults, mode, diags)?);
    }
    Ok(Imported {
        services,
        maintenance_dir,
    })
}

fn virtual_section(
    v: &Virtual,
    global: &Defaults,
    mode: Mode,
    diags: &mut Diagnostics,
) -> Result<Option<Service>, ParseError> {
    let managed = mode == Mode::Managed;
    let ipv6 = v.head.key == "virtual6";
    let head = &v.head;
    let loc = head.loc.clone();
    // An address and port, or a mark.
    let (vip, fwmark) = if head.value.chars().all(|c| c.is_ascii_digit()) {
        let mark: u32 = head.value.parse().ok().filter(|m| *m > 0).ok_or_else(|| {
            ParseError::new(&head.value_loc, "a firewall mark is a number above 0")
        })?;
        (None, Some(mark))
    } else {
        (Some(socket_addr(&head.value, ipv6, &head.value_loc)?), None)
    };
    let vport = vip.map(|a| a.port()).unwrap_or(0);
    let mut d = global.clone();
    let mut comments = vec![format!("{}: {}={}", loc.line_only(), head.key, head.value)];
    let mut reals = Vec::new();
    let mut checktype: Option<Setting> = None;
    let mut service: Option<String> = None;
    let mut checkport: Option<u16> = None;
    let mut checkcommand: Option<String> = None;
    let mut login = false;
    let mut request = "/".to_string();
    let mut receive: Option<(String, Loc)> = None;
    let mut httpmethod: Option<String> = None;
    let mut virtualhost: Option<String> = None;
    let mut scheduler = "wrr".to_string();
    let mut persistent: Option<u32> = None;
    let mut netmask: Option<String> = None;
    let mut protocol: Option<Setting> = None;
    let mut ops = false;
    for s in &v.settings {
        if d.take(s, false, diags)? {
            continue;
        }
        match s.key.as_str() {
            "real" | "real6" => {
                if (s.key == "real6") != ipv6 {
                    return Err(ParseError::new(
                        &s.loc,
                        format!(
                            "{} in a {} section (ldirectord refuses it too)",
                            s.key, head.key
                        ),
                    ));
                }
                reals.push(s);
            }
            "checktype" => checktype = Some(s.clone()),
            "service" => service = Some(s.unquoted()?.to_ascii_lowercase()),
            "checkport" => {
                checkport = Some(s.value.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                    ParseError::new(
                        &s.value_loc,
                        format!("checkport {:?}: expected a port number", s.value),
                    )
                })?)
            }
            "request" => request = path(quoted(s)?),
            "receive" => receive = Some((quoted(s)?.to_owned(), s.loc.clone())),
            "httpmethod" => {
                let m = s.unquoted()?.to_ascii_uppercase();
                if m != "GET" && m != "HEAD" {
                    return Err(ParseError::new(&s.value_loc, "httpmethod is GET or HEAD"));
                }
                httpmethod = Some(m);
            }
            "virtualhost" => virtualhost = Some(s.unquoted()?.to_owned()),
            "scheduler" => scheduler = s.unquoted()?.to_owned(),
            "persistent" => {
                persistent = Some(s.value.parse().map_err(|_| {
                    ParseError::new(
                        &s.value_loc,
                        format!("persistent {:?}: expected seconds", s.value),
                    )
                })?)
            }
            "netmask" => netmask = Some(s.unquoted()?.to_owned()),
            "protocol" => protocol = Some(s.clone()),
            "ops" => ops = yes_no(s)?,
            "servicename" | "comment" => {}
            "checkcommand" => checkcommand = Some(s.unquoted()?.to_owned()),
            // Said with the negotiate check they belong to.
            "login" | "passwd" => login = true,
            "database" | "secret" => diags.push(
                &s.loc,
                Severity::Dropped,
                format!("{} has no counterpart in the checker", s.key),
            ),
            "monitorfile" | "emailalert" | "emailalertfreq" | "emailalertstatus" | "checkcount"
            | "cleanstop" | "readdquiescent" => diags.push(
                &s.loc,
                Severity::Dropped,
                format!("{} has no counterpart in the checker", s.key),
            ),
            "maintenancedir" => {
                return Err(ParseError::new(
                    &s.loc,
                    "maintenancedir is a global setting only (ldirectord refuses it here)",
                ))
            }
            other => diags.push(
                &s.loc,
                Severity::Dropped,
                format!("unknown setting {other:?} in a virtual section"),
            ),
        }
    }
    // The protocol: fwm for a mark, else tcp, or udp on port 53.
    let protocol = match (&protocol, fwmark) {
        (Some(p), mark) => {
            let word = p.unquoted()?.to_ascii_lowercase();
            match (word.as_str(), mark) {
                ("fwm", Some(_)) => "fwm",
                ("tcp", None) => "tcp",
                ("udp", None) => "udp",
                _ => {
                    return Err(ParseError::new(
                        &p.value_loc,
                        "protocol is fwm for a firewall mark, tcp or udp for an address",
                    ))
                }
            }
        }
        (None, Some(_)) => "fwm",
        (None, None) if vport == 53 => "udp",
        (None, None) => "tcp",
    };
    let service_name = service.unwrap_or_else(|| port_service(vport).into());
    let interval = Duration::from_secs(d.checkinterval.unwrap_or(10));
    let kind = checktype
        .as_ref()
        .map(|c| c.value.to_ascii_lowercase())
        .unwrap_or_else(|| "negotiate".into());
    let ct_loc = checktype
        .as_ref()
        .map(|c| c.loc.clone())
        .unwrap_or_else(|| loc.clone());
    let negotiate = kind == "negotiate" || kind.chars().all(|c| c.is_ascii_digit());
    let timeout_s = if negotiate {
        d.negotiatetimeout.or(d.checktimeout).unwrap_or(30)
    } else {
        d.checktimeout.or(d.negotiatetimeout).unwrap_or(5)
    };
    let mut timeout = Duration::from_secs(timeout_s);
    if timeout > interval {
        let message = format!(
            "the check's timeout ({}) is longer than checkinterval ({}): the checker's timeout is at most its interval, so {}",
            yaml::duration(timeout),
            yaml::duration(interval),
            yaml::duration(interval)
        );
        diags.push(&ct_loc, Severity::Different, &message);
        comments.push(format!("{}: {message}", ct_loc.line_only()));
        timeout = interval;
    }
    let timing = Timing {
        interval,
        timeout,
        rise: 1,
        fall: d.failurecount.unwrap_or(1),
    };
    let mut say = |severity: Severity, message: String, comments: &mut Vec<String>| {
        diags.push(&ct_loc, severity, &message);
        comments.push(format!("{}: {message}", ct_loc.line_only()));
    };
    let http_check = |request: &str, receive: Option<&str>| Http {
        method: httpmethod.clone().filter(|m| m != "GET"),
        path: Some(request.to_owned()),
        host: virtualhost.clone(),
        expect_status: Vec::new(),
        body: receive.map(str::to_owned),
        ..Http::default()
    };
    // The check, before any real server's own request and receive.
    let base_kind = match kind.as_str() {
        "connect" => {
            if protocol == "udp" {
                // ldirectord pings a UDP service's real servers for a
                // connect check.
                CheckKind::Icmp
            } else {
                CheckKind::Tcp
            }
        }
        "negotiate" | "combined" => negotiate_kind(&service_name, &http_check(&request, None), login, &mut say, &mut comments),
        k if k.chars().all(|c| c.is_ascii_digit()) => {
            say(Severity::Different, format!("checktype={k} (connect checks with a negotiate check every {k}th): the checker runs the negotiate check every time"), &mut comments);
            negotiate_kind(&service_name, &http_check(&request, None), login, &mut say, &mut comments)
        }
        "on" => {
            say(Severity::Different, "checktype=on: ldirectord never checks (always up); a TCP connect check stands in".into(), &mut comments);
            CheckKind::Tcp
        }
        "off" => {
            diags.push(&ct_loc, Severity::Dropped, "checktype=off: ldirectord puts none of its real servers in; the service is left out");
            return Ok(None);
        }
        "external" => match &checkcommand {
            // ldirectord calls it with the virtual IP and port, then the
            // real server's.
            Some(program) if program.starts_with('/') => CheckKind::Exec {
                command: [program.as_str(), "{vs_address}", "{vs_port}", "{rs_address}", "{rs_port}"]
                    .map(str::to_owned)
                    .to_vec(),
                dynamic_weight: false,
            },
            Some(program) => {
                say(Severity::Dropped, format!("checkcommand={program}: the checker needs the program's absolute path; a TCP connect check stands in"), &mut comments);
                CheckKind::Tcp
            }
            None => {
                say(Severity::Dropped, "checktype=external without checkcommand; a TCP connect check stands in".into(), &mut comments);
                CheckKind::Tcp
            }
        },
        "ping" => CheckKind::Icmp,
        "external-perl" => {
            say(Severity::Dropped, format!("checktype={kind}: not converted; a TCP connect check stands in"), &mut comments);
            CheckKind::Tcp
        }
        other => return Err(ParseError::new(&ct_loc, format!("checktype {other:?}: expected connect, negotiate, on, off, ping, external, external-perl or a number"))),
    };
    let base_kind = match base_kind {
        CheckKind::Http(_) | CheckKind::Https(_) => {
            let body = match &receive {
                Some((re, at)) => checked_regex(re, at, diags, &mut comments),
                None => None,
            };
            let http = http_check(&request, body.as_deref());
            comments.push(
                "ldirectord's HTTP check (LWP) follows redirects; this one takes only a 2xx answer"
                    .into(),
            );
            if matches!(base_kind, CheckKind::Https(_)) {
                let message = "ldirectord's HTTPS check verifies the certificate's chain against the CAs LWP trusts, not its name; this check verifies neither (insecure_skip_verify): set ca_file and server_name to verify both";
                diags.push(&ct_loc, Severity::Different, message);
                comments.push(format!("{}: {message}", ct_loc.line_only()));
                CheckKind::Https(http)
            } else {
                CheckKind::Http(http)
            }
        }
        CheckKind::Dns {
            name, query_type, ..
        } => {
            let (answer_address, answer) = match &receive {
                Some((text, at)) => match text.parse() {
                    Ok(ip) => (Some(ip), None),
                    Err(_) => (None, checked_regex(text, at, diags, &mut comments)),
                },
                None => (None, None),
            };
            CheckKind::Dns {
                name,
                query_type,
                answer_address,
                answer,
            }
        }
        k => k,
    };
    let (quiescent, q_loc) = d.quiescent.clone().unwrap_or((true, loc.clone()));
    if !quiescent && managed {
        let message = "quiescent=no: ldirectord removes a failed real server from the table; the checker sets its weight to 0 (connections drain, a persistent client stays until its template expires)";
        diags.push(&q_loc, Severity::Different, message);
        comments.push(format!("{}: {message}", q_loc.line_only()));
    }

    let mut real_servers = Vec::new();
    for r in reals {
        for real in real_line(r, ipv6, fwmark.is_some(), vport)? {
            let mut rs_comments = vec![format!("{}: {}={}", r.loc.line_only(), r.key, r.value)];
            if let Some(note) = real.port_note {
                rs_comments.push(note);
            }
            let kind = match (&base_kind, &real.request) {
                (CheckKind::Http(h) | CheckKind::Https(h), Some((req, recv))) => {
                    let body = match recv {
                        Some(re) => checked_regex(re, &r.loc, diags, &mut rs_comments),
                        None => h.body.clone(),
                    };
                    let http = Http {
                        path: Some(path(req)),
                        body,
                        ..h.clone()
                    };
                    if matches!(base_kind, CheckKind::Https(_)) {
                        CheckKind::Https(http)
                    } else {
                        CheckKind::Http(http)
                    }
                }
                (_, Some(_)) => {
                    let message =
                        "a request/receive pair on a check that is not HTTP: not converted";
                    diags.push(&r.loc, Severity::Dropped, message);
                    rs_comments.push(message.into());
                    base_kind.clone()
                }
                (k, None) => k.clone(),
            };
            if real.port == 0 && checkport.is_none() {
                return Err(ParseError::new(&r.loc, "a real server without a port and no checkport: nothing the checker could probe (set checkport)"));
            }
            real_servers.push(RealServer {
                comments: rs_comments,
                address: model::address(
                    real.ip,
                    (real.port != 0 || fwmark.is_none()).then_some(real.port),
                ),
                weight: real.weight,
                forward: managed.then_some(real.forward),
                upper_threshold: real.upper.filter(|_| managed),
                lower_threshold: real.lower.filter(|_| managed),
                check_address: None,
                source_address: None,
                timing,
                checks: vec![Check {
                    kind,
                    port: checkport.filter(|p| *p != real.port),
                }],
            });
        }
    }
    if real_servers.is_empty() {
        diags.push(&loc, Severity::Dropped, "a virtual section without real servers: the checker needs at least one, the service is left out");
        return Ok(None);
    }
    let quorum = match &d.fallback {
        Some(f) => {
            let (ip, port, forward) = fallback(f, ipv6, vport)?;
            let mut q_comments = vec![format!(
                "{}: {}={} (in while every real server is down)",
                f.loc.line_only(),
                f.key,
                f.value
            )];
            if !managed {
                let message = "weights mode: the fallback server must be in the table at weight 0 (ldirectord adds it only while every real server is down)";
                diags.push(&f.loc, Severity::Different, message);
                q_comments.push(message.into());
            }
            Some(Quorum {
                comments: q_comments,
                min_up: 1,
                sorry_server: Some(SorryServer {
                    address: model::address(ip, (port != 0 || fwmark.is_none()).then_some(port)),
                    weight: 1,
                    forward: managed.then_some(forward),
                }),
            })
        }
        None => None,
    };
    let addr = match (vip, fwmark) {
        (Some(address), _) => ServiceAddr::Addr {
            protocol: if protocol == "udp" { "udp" } else { "tcp" },
            address,
        },
        (None, Some(mark)) => ServiceAddr::Fwmark { mark, ipv6 },
        (None, None) => {
            return Err(ParseError::new(
                &loc,
                "a virtual service needs an address or a mark",
            ))
        }
    };
    if ops && protocol != "udp" {
        return Err(ParseError::new(
            &loc,
            "ops = yes is for UDP services only (ldirectord refuses it too)",
        ));
    }
    Ok(Some(Service {
        comments,
        addr,
        scheduler: managed.then_some(scheduler),
        scheduler_flags: Vec::new(),
        one_packet: managed && ops,
        persistence: persistent.filter(|_| managed),
        persistence_netmask: netmask.filter(|_| managed && persistent.is_some()),
        quorum,
        real_servers,
    }))
}
