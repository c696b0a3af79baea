//! keepalived's checker blocks (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK,
//! SMTP_CHECK (its own keywords in `smtp`), DNS_CHECK, PING_CHECK,
//! UDP_CHECK (its own keywords in `udp`)), with what they all take
//! (`settings`), their timing and their `url` blocks.
//!
//! Timing: keepalived checks every `delay_loop` (60 s unless set), gives
//! a connection `connect_timeout` (5 s), and after a failed check of a
//! real server that is up checks `retry` more times (1 unless set),
//! `delay_before_retry` apart (3 s for HTTP_GET and SSL_GET, 1 s for
//! TCP_CHECK), before it is down; one success brings it back. So `fall`
//! is `retry + 1`, `interval` is `delay_loop`, `rise` is 1; the retries'
//! own spacing has no counterpart (the checker probes every interval).

use std::time::Duration;

use super::args::{flag, one_arg, timer};
use super::settings::{no_counterpart, Connection, Converted, Inherited};
use super::smtp::SmtpOptions;
use super::tree::Statement;
use super::udp::UdpOptions;
use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};
use crate::import::model::{Check, CheckKind, Http, Timing};
use crate::import::yaml;

/// The checker block `c` as the checker's checks: one [`Converted`], or
/// for an SMTP_CHECK with `host` blocks one per host.
pub(super) fn checker(
    c: &Statement,
    rs_inherited: &Inherited,
    rs_port: Option<u16>,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Result<Vec<Converted>, ParseError> {
    let kind = c.keyword.text.as_str();
    let mut inherited = rs_inherited.clone();
    let mut connection = Connection::default();
    let mut urls = Vec::new();
    let mut misc_path: Option<(String, Loc)> = None;
    let mut misc_timeout: Option<Duration> = None;
    let mut misc_dynamic = false;
    // keepalived's DNS_CHECK asks for the SOA of the root unless set.
    let mut dns_type = "SOA".to_string();
    let mut dns_name = ".".to_string();
    let mut udp = UdpOptions::default();
    let mut smtp = SmtpOptions::default();
    for s in c.children() {
        if inherited.take(s, diags)?
            || connection.take(s, kind, comments, diags)?
            || (kind == "UDP_CHECK" && udp.take(s, diags)?)
            || (kind == "SMTP_CHECK" && smtp.take(s, &mut inherited, comments, diags)?)
        {
            continue;
        }
        let key = s.keyword.text.as_str();
        match key {
            "url" if matches!(kind, "HTTP_GET" | "SSL_GET") => urls.push(s),
            "misc_path" if kind == "MISC_CHECK" => {
                let w = one_arg(s, diags)?;
                misc_path = Some((w.text.clone(), w.loc.clone()));
            }
            "misc_timeout" if kind == "MISC_CHECK" => misc_timeout = Some(timer(one_arg(s, diags)?)?),
            "misc_dynamic" if kind == "MISC_CHECK" => misc_dynamic = flag(s)?,
            "user" if kind == "MISC_CHECK" => {
                let message = "user: the checker runs the program as its own user (run the checker as the user the script needs, or switch user in the script)";
                diags.push(s.loc(), Severity::Different, message);
                comments.push(format!("{}: {message}", s.loc().line_only()));
            }
            "type" if kind == "DNS_CHECK" => dns_type = one_arg(s, diags)?.text.to_ascii_uppercase(),
            "name" if kind == "DNS_CHECK" => dns_name = one_arg(s, diags)?.text.clone(),
            "log_all_failures" => {}
            "enable_sni" if kind == "SSL_GET" => comments.push(format!(
                "{}: enable_sni: the checker sends the host as SNI (server_name, else the Host header)",
                s.loc().line_only()
            )),
            "http_protocol" | "fast_recovery" => no_counterpart(s, kind, comments, diags),
            _ => diags.push(s.loc(), Severity::Dropped, format!("unknown keyword {key:?} in {kind}")),
        }
    }
    if kind == "MISC_CHECK" {
        // The script's own timeout; keepalived's default is the interval.
        inherited.connect_timeout = Some(
            misc_timeout
                .or(inherited.delay_loop)
                .unwrap_or(Duration::from_secs(60)),
        );
    }
    let timing = timing(&inherited, kind, c.loc(), comments, diags);
    let (check_address, port) = connection.target(rs_port, c.loc())?;
    let one = |kind: CheckKind| Converted {
        checks: vec![Check { kind, port }],
        timing,
        check_address,
        source: connection.bindto,
        label: c.keyword.text.clone(),
        loc: c.loc().clone(),
    };
    let kind = match kind {
        "TCP_CHECK" => CheckKind::Tcp,
        "SMTP_CHECK" => {
            let own = smtp.checks_own(c).then(|| one(smtp.kind()));
            return smtp.checkers(own, timing, rs_port, comments, diags);
        }
        "PING_CHECK" => CheckKind::Icmp,
        "UDP_CHECK" => udp.check(c.loc(), comments, diags)?,
        "DNS_CHECK" => CheckKind::Dns {
            name: dns_name,
            query_type: dns_type,
            answer_address: None,
            answer: None,
        },
        "MISC_CHECK" => {
            let Some((path, at)) = misc_path else {
                return Err(ParseError::new(c.loc(), "MISC_CHECK without misc_path"));
            };
            CheckKind::Exec {
                command: misc_command(&path, &at, comments, diags),
                dynamic_weight: misc_dynamic,
            }
        }
        _ => {
            let requests = http(kind, &urls, &inherited, comments, diags)?;
            let wrap: fn(Http) -> CheckKind = if kind == "SSL_GET" {
                comments.push(format!(
                    "{}: SSL_GET does not verify the certificate, nor does this check; to verify it, replace insecure_skip_verify with ca_file and server_name",
                    c.loc().line_only()
                ));
                CheckKind::Https
            } else {
                CheckKind::Http
            };
            let mut converted = one(CheckKind::Tcp);
            converted.checks = requests
                .into_iter()
                .map(|http| Check {
                    kind: wrap(http),
                    port,
                })
                .collect();
            return Ok(vec![converted]);
        }
    };
    Ok(vec![one(kind)])
}

/// `misc_path` as the checker's `command`: split at spaces, as keepalived
/// splits it; run through `/bin/sh -c` when it holds shell syntax or a
/// program that is not an absolute path (which the checker does not look
/// up in PATH).
fn misc_command(
    path: &str,
    at: &Loc,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let words: Vec<String> = path.split_whitespace().map(str::to_owned).collect();
    let shell = path.contains(|c: char| "|&;<>()$`\\\"'*?~{}".contains(c))
        || !words.first().is_some_and(|w| w.starts_with('/'));
    if !shell {
        return words;
    }
    let message =
        "misc_path has shell syntax or a program without an absolute path: run through /bin/sh -c";
    diags.push(at, Severity::Note, message);
    comments.push(format!("{}: {message}", at.line_only()));
    vec!["/bin/sh".into(), "-c".into(), path.to_owned()]
}

pub(super) fn timing(
    inherited: &Inherited,
    kind: &str,
    loc: &Loc,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Timing {
    let interval = inherited.delay_loop.unwrap_or(Duration::from_secs(60));
    let mut timeout = inherited.connect_timeout.unwrap_or(Duration::from_secs(5));
    let retry = inherited.retry.unwrap_or(1);
    let retry_delay =
        inherited
            .delay_before_retry
            .unwrap_or(if matches!(kind, "HTTP_GET" | "SSL_GET") {
                Duration::from_secs(3)
            } else {
                Duration::from_secs(1)
            });
    if timeout > interval {
        let message = format!(
            "connect_timeout {} is longer than delay_loop {}: the checker's timeout is at most its interval, so {}",
            yaml::duration(timeout),
            yaml::duration(interval),
            yaml::duration(interval)
        );
        diags.push(loc, Severity::Different, &message);
        comments.push(format!("{}: {message}", loc.line_only()));
        timeout = interval;
    }
    if retry > 0 && retry_delay != interval {
        let message = format!(
            "keepalived checks {retry} more time(s), {} apart, before a real server is down ({} after the first failure); the checker probes every interval, so fall {} takes {}",
            yaml::duration(retry_delay),
            yaml::duration(retry_delay * retry),
            retry + 1,
            yaml::duration(interval * retry)
        );
        diags.push(loc, Severity::Different, &message);
        comments.push(format!("{}: {message}", loc.line_only()));
    }
    Timing {
        interval,
        timeout,
        rise: 1,
        fall: retry.saturating_add(1),
    }
}

/// The requests of an HTTP_GET or SSL_GET: one per `url` (keepalived
/// needs every url to pass, as `checks:` needs every check to).
fn http(
    kind: &str,
    urls: &[&Statement],
    inherited: &Inherited,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Result<Vec<Http>, ParseError> {
    let base = Http {
        host: inherited.virtualhost.clone(),
        ..Http::default()
    };
    if urls.is_empty() {
        let message = format!("{kind} without url: the checker asks for /");
        comments.push(message.clone());
        return Ok(vec![Http {
            path: Some("/".into()),
            ..base
        }]);
    }
    urls.iter()
        .map(|url| one_url(url, base.clone(), comments, diags))
        .collect()
}

fn one_url(
    url: &Statement,
    mut http: Http,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Result<Http, ParseError> {
    let mut regex: Option<(String, Loc)> = None;
    let mut no_match = None;
    for s in url.children() {
        let key = s.keyword.text.as_str();
        match key {
            "path" => http.path = Some(one_arg(s, diags)?.text.clone()),
            "status_code" => {
                if s.args.is_empty() {
                    return Err(ParseError::new(
                        s.loc(),
                        "status_code needs a code or a range",
                    ));
                }
                for w in &s.args {
                    let ok = match w.text.split_once('-') {
                        Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
                        None => w.text.parse::<u16>().is_ok(),
                    };
                    if !ok {
                        return Err(ParseError::new(
                            &w.loc,
                            format!(
                                "{:?}: expected a status code or a range like 200-299",
                                w.text
                            ),
                        ));
                    }
                    http.expect_status.push(w.text.clone());
                }
            }
            "virtualhost" => http.host = Some(one_arg(s, diags)?.text.clone()),
            "regex" => regex = Some((one_arg(s, diags)?.text.clone(), s.loc().clone())),
            "regex_no_match" => no_match = Some(s.loc().clone()),
            "digest" => {
                // keepalived refuses a digest that is not 32 hex digits.
                let w = one_arg(s, diags)?;
                if w.text.len() != 32 || !w.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ParseError::new(
                        &w.loc,
                        format!("digest {:?}: expected an MD5 as 32 hex digits", w.text),
                    ));
                }
                http.body_md5 = Some(w.text.to_ascii_lowercase());
            }
            "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => {
                let message =
                    format!("{key} has no counterpart (body: is a Rust regex over the whole body)");
                diags.push(s.loc(), Severity::Dropped, &message);
                comments.push(format!("{}: {message}", s.loc().line_only()));
            }
            _ => diags.push(
                s.loc(),
                Severity::Dropped,
                format!("unknown keyword {key:?} in url"),
            ),
        }
    }
    match (regex, no_match) {
        (Some((_, at)), Some(_)) => {
            let message = "regex with regex_no_match (the body must not match): the checker has no negative match, the regex is left out";
            diags.push(&at, Severity::Dropped, message);
            comments.push(format!("{}: {message}", at.line_only()));
        }
        (Some((re, at)), None) => match regex::Regex::new(&re) {
            Ok(_) => http.body = Some(re),
            Err(e) => {
                let message =
                    format!("regex {re:?} is not a regex the checker reads ({e}); left out");
                diags.push(&at, Severity::Dropped, &message);
                comments.push(format!("{}: {message}", at.line_only()));
            }
        },
        _ => {}
    }
    if http.path.is_none() {
        http.path = Some("/".into());
    }
    Ok(http)
}
