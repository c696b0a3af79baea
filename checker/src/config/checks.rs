//! A `check:` block, from the YAML to a [`CheckNode`]: every rule of the
//! block itself (type, fields that belong to the type, method, path,
//! headers, status codes, body regex, the TLS settings) is checked in the
//! node's own `Deserialize`, where serde_yaml still knows its line and
//! column. The files an https check names are read later, when the node
//! becomes a [`Check`] ([`CheckNode::resolve`], see [`super::tls`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use regex::Regex;
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::conversation::{self, RawStep};
use super::dns::{self, DnsFields};
use super::fingerprint::Fingerprinting;
use super::scalars::{optional_regex, Dur};
use super::tls::{self, TlsFields, TlsSettings};
use super::{
    Check, CheckKind, ConversationCheck, DnsCheck, ExecCheck, HttpCheck, HttpsCheck, Md5, Step,
    UdpCheck,
};

/// A `check:` block as written: one struct for every type, so that a
/// field of the wrong type is reported by name rather than as an unknown
/// key.
#[derive(Debug, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(rename = "type")]
    kind: String,
    port: Option<u16>,
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    expect_status: Option<Vec<StatusSpec>>,
    body: Option<String>,
    body_md5: Option<String>,
    keep_alive: Option<Dur>,
    ca_file: Option<String>,
    server_name: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    min_tls_version: Option<String>,
    insecure_skip_verify: Option<bool>,
    full_handshake_interval: Option<Dur>,
    tls: Option<bool>,
    steps: Option<Vec<RawStep>>,
    preset: Option<String>,
    command: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    dynamic_weight: Option<bool>,
    name: Option<String>,
    query_type: Option<String>,
    transport: Option<String>,
    expect_rcode: Option<String>,
    answer: Option<String>,
    answer_address: Option<std::net::IpAddr>,
    recursion_desired: Option<bool>,
    payload: Option<String>,
    payload_hex: Option<String>,
    expect: Option<String>,
}

/// `expect_status` entries: `200` or `"200-399"`.
#[derive(Debug, Hash, Deserialize)]
#[serde(untagged)]
enum StatusSpec {
    Code(u16),
    Range(String),
}

/// A validated `check:` block whose files are not read yet.
#[derive(Debug)]
pub(super) struct CheckNode {
    port: Option<u16>,
    kind: NodeKind,
    /// The block as written, to which the files' bytes are added.
    written: Fingerprinting,
}

#[derive(Debug)]
enum NodeKind {
    Tcp,
    Http(HttpCheck),
    Https(HttpCheck, TlsSettings),
    Conversation {
        preset: Option<&'static str>,
        steps: Vec<Step>,
        tls: Option<TlsSettings>,
    },
    Exec(ExecCheck),
    Dns(DnsCheck),
    Udp(UdpCheck),
    Icmp,
}

impl CheckNode {
    /// The check, with the files it names read (relative names against
    /// `base`); the error names the file and why.
    pub fn resolve(&self, base: &Path) -> Result<Check, String> {
        let mut fingerprint = self.written.clone();
        let kind = match &self.kind {
            NodeKind::Tcp => CheckKind::Tcp,
            NodeKind::Http(http) => CheckKind::Http(http.clone()),
            NodeKind::Https(http, settings) => CheckKind::Https(HttpsCheck {
                http: http.clone(),
                tls: tls::load(settings, base, &mut fingerprint)?,
            }),
            NodeKind::Exec(e) => CheckKind::Exec(e.clone()),
            NodeKind::Dns(d) => CheckKind::Dns(d.clone()),
            NodeKind::Udp(u) => CheckKind::Udp(u.clone()),
            NodeKind::Icmp => CheckKind::Icmp,
            NodeKind::Conversation { preset, steps, tls } => {
                CheckKind::Conversation(ConversationCheck {
                    preset: *preset,
                    steps: steps.clone(),
                    tls: match tls {
                        Some(settings) => Some(tls::load(settings, base, &mut fingerprint)?),
                        None => None,
                    },
                })
            }
        };
        Ok(Check {
            port: self.port,
            kind,
            fingerprint: fingerprint.finish(),
        })
    }
}

impl<'de> Deserialize<'de> for CheckNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CheckVisitor)
    }
}

/// A check deserialized on its own, outside a config file: the files it
/// names are read at once, relative names against the current directory.
impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CheckNode::deserialize(d)?
            .resolve(Path::new(""))
            .map_err(de::Error::custom)
    }
}

/// Deserializes the raw block and validates it while the deserializer is
/// still at it, so that an error carries the block's line and column (a
/// `#[serde(try_from)]` runs after the block is done, and its error would
/// point at the enclosing mapping).
struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = CheckNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CheckNode, A::Error> {
        let raw = RawCheck::deserialize(MapAccessDeserializer::new(map))?;
        check_node(raw).map_err(de::Error::custom)
    }
}

fn check_node(c: RawCheck) -> Result<CheckNode, String> {
    let written = Fingerprinting::of(&c);
    if c.port == Some(0) {
        return Err("port must not be 0".into());
    }
    let http_fields = [
        ("method", c.method.is_some()),
        ("path", c.path.is_some()),
        ("host", c.host.is_some()),
        ("headers", c.headers.is_some()),
        ("expect_status", c.expect_status.is_some()),
        ("body", c.body.is_some()),
        ("body_md5", c.body_md5.is_some()),
        ("keep_alive", c.keep_alive.is_some()),
    ];
    let tls_fields = [
        ("ca_file", c.ca_file.is_some()),
        ("server_name", c.server_name.is_some()),
        ("client_cert", c.client_cert.is_some()),
        ("client_key", c.client_key.is_some()),
        ("min_tls_version", c.min_tls_version.is_some()),
        ("insecure_skip_verify", c.insecure_skip_verify.is_some()),
        (
            "full_handshake_interval",
            c.full_handshake_interval.is_some(),
        ),
    ];
    let refuse = |fields: &[(&str, bool)], only: &str| -> Result<(), String> {
        match fields.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(format!(
                "{name} is only for {only} checks, not type {}",
                c.kind
            )),
            None => Ok(()),
        }
    };
    let conversation_fields = [
        ("tls", c.tls.is_some()),
        ("steps", c.steps.is_some()),
        ("preset", c.preset.is_some()),
    ];
    if c.kind != "tcp" {
        refuse(&conversation_fields, "tcp")?;
    }
    let exec_fields = [
        ("command", c.command.is_some()),
        ("env", c.env.is_some()),
        ("dynamic_weight", c.dynamic_weight.is_some()),
    ];
    if c.kind != "exec" {
        refuse(&exec_fields, "exec")?;
    }
    let dns_fields = DnsFields {
        name: c.name.clone(),
        query_type: c.query_type.clone(),
        transport: c.transport.clone(),
        expect_rcode: c.expect_rcode.clone(),
        answer: c.answer.clone(),
        answer_address: c.answer_address,
        recursion_desired: c.recursion_desired,
    };
    if c.kind != "dns" {
        refuse(&dns_fields.set(), "dns")?;
    }
    let udp_fields = [
        ("payload", c.payload.is_some()),
        ("payload_hex", c.payload_hex.is_some()),
        ("expect", c.expect.is_some()),
    ];
    if c.kind != "udp" {
        refuse(&udp_fields, "udp")?;
    }
    let kind = match c.kind.as_str() {
        "tcp" => {
            refuse(&http_fields, "http and https")?;
            let tls = c.tls.unwrap_or(false);
            if !tls {
                if let Some((name, _)) = tls_fields.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "{name} is only for https checks and tcp checks with tls: true"
                    ));
                }
            }
            let (preset, steps) = match (&c.preset, &c.steps) {
                (Some(_), Some(_)) => {
                    return Err("set preset or steps, not both (a preset is its steps)".into())
                }
                (Some(name), None) => {
                    let (name, steps) = conversation::preset(name)?;
                    (Some(name), steps)
                }
                (None, Some(raw)) => (None, conversation::steps_of(raw)?),
                (None, None) => (None, Vec::new()),
            };
            if c.steps.as_ref().is_some_and(Vec::is_empty) {
                return Err(
                    "steps is empty: list send and expect steps, or leave it out for a connect"
                        .into(),
                );
            }
            if !tls && preset.is_none() && steps.is_empty() {
                NodeKind::Tcp
            } else {
                let tls = if tls {
                    Some(tls_settings(&c, "a tcp check with tls: true")?)
                } else {
                    None
                };
                NodeKind::Conversation { preset, steps, tls }
            }
        }
        "http" => {
            refuse(&tls_fields, "https")?;
            NodeKind::Http(http_check(&c)?)
        }
        "https" => NodeKind::Https(http_check(&c)?, tls_settings(&c, "an https check")?),
        "exec" => {
            refuse(&http_fields, "http and https")?;
            refuse(&tls_fields, "https")?;
            NodeKind::Exec(exec_check(&c)?)
        }
        "icmp" => {
            refuse(&http_fields, "http and https")?;
            refuse(&tls_fields, "https")?;
            if c.port.is_some() {
                return Err(
                    "port is not for icmp checks: an echo request goes to an address".into(),
                );
            }
            NodeKind::Icmp
        }
        "udp" => {
            refuse(&http_fields, "http and https")?;
            refuse(&tls_fields, "https")?;
            NodeKind::Udp(udp_check(&c)?)
        }
        "dns" => {
            refuse(&http_fields, "http and https")?;
            refuse(&tls_fields, "https")?;
            NodeKind::Dns(dns::dns_check(&dns_fields)?)
        }
        other => {
            return Err(format!(
                "unknown check type {other:?}: expected tcp, http, https, exec, dns, udp or icmp"
            ))
        }
    };
    Ok(CheckNode {
        port: c.port,
        kind,
        written,
    })
}

/// An `exec` check's fields, checked. The program itself is not looked
/// at: a config converted on another machine (`ipvs-checker import`)
/// names programs that may exist only on the director; one missing there
/// fails every probe with reason `exec`, naming it.
fn exec_check(c: &RawCheck) -> Result<ExecCheck, String> {
    let command = c.command.clone().unwrap_or_default();
    let Some(program) = command.first() else {
        return Err("an exec check needs command: the program and its arguments, like [/usr/local/bin/check-db, \"{rs_address}\"]".into());
    };
    if !program.starts_with('/') {
        return Err(format!(
            "command {program:?}: the program must be an absolute path (it runs without a shell or PATH)"
        ));
    }
    let known: Vec<&str> = ExecCheck::PLACEHOLDERS.iter().map(|(p, _)| *p).collect();
    for arg in &command {
        if let Some(unknown) = unknown_placeholder(arg, &known) {
            return Err(format!(
                "unknown placeholder {unknown} in command: expected {}",
                known.join(", ")
            ));
        }
    }
    let mut env = Vec::new();
    for (name, value) in c.env.iter().flatten() {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(format!("invalid env variable {name:?}"));
        }
        if name.starts_with("IPVS_CHECKER_") {
            return Err(format!(
                "env {name}: the IPVS_CHECKER_ variables are the checker's (the real server and its service)"
            ));
        }
        env.push((name.clone(), value.clone()));
    }
    Ok(ExecCheck {
        command,
        env,
        dynamic_weight: c.dynamic_weight.unwrap_or(false),
    })
}

/// The first `{word}` in `arg` that is not one of `known`.
fn unknown_placeholder<'a>(arg: &'a str, known: &[&str]) -> Option<&'a str> {
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let tail = &rest[open..];
        let close = tail.find('}')?;
        let candidate = &tail[..=close];
        let word = &candidate[1..candidate.len() - 1];
        if !word.is_empty()
            && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            && !known.contains(&candidate)
        {
            return Some(candidate);
        }
        rest = &tail[1..];
    }
    None
}

/// A `udp` check's fields, checked.
fn udp_check(c: &RawCheck) -> Result<UdpCheck, String> {
    let payload = match (&c.payload, &c.payload_hex) {
        (Some(_), Some(_)) => return Err("set payload or payload_hex, not both".into()),
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(hex)) => conversation::from_hex(hex).ok_or_else(|| {
            format!("invalid payload_hex {hex:?}: expected pairs of hex digits, like 0d0a")
        })?,
        (None, None) => Vec::new(),
    };
    let expect = optional_regex("expect", c.expect.as_ref(), regex::bytes::Regex::new)?;
    Ok(UdpCheck { payload, expect })
}

/// The TLS settings of `c`, `what` naming the check in an error.
fn tls_settings(c: &RawCheck, what: &'static str) -> Result<TlsSettings, String> {
    TlsSettings::new(TlsFields {
        what,
        ca_file: c.ca_file.clone(),
        server_name: c.server_name.clone(),
        client_cert: c.client_cert.clone(),
        client_key: c.client_key.clone(),
        min_tls_version: c.min_tls_version.clone(),
        insecure_skip_verify: c.insecure_skip_verify,
        full_handshake_interval: c.full_handshake_interval.as_ref().map(|d| d.0),
    })
}

fn http_check(c: &RawCheck) -> Result<HttpCheck, String> {
    let method = match &c.method {
        Some(m) => hyper::Method::from_bytes(m.as_bytes())
            .map_err(|_| format!("invalid HTTP method {m:?}"))?,
        None => hyper::Method::GET,
    };
    let path = c.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || path.parse::<hyper::Uri>().is_err() {
        return Err(format!(
            "invalid path {path:?}: expected an absolute path like /health"
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in c.headers.iter().flatten() {
        let n = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let v = hyper::header::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value of header {name}: {value:?}"))?;
        if n == hyper::header::HOST {
            return Err("set the Host header with host:, not in headers".into());
        }
        headers.push((n, v));
    }
    if let Some(host) = &c.host {
        hyper::header::HeaderValue::from_str(host).map_err(|_| format!("invalid host {host:?}"))?;
    }
    let mut expect_status = Vec::new();
    for spec in c.expect_status.iter().flatten() {
        expect_status.push(status_range(spec)?);
    }
    if c.expect_status.is_some() && expect_status.is_empty() {
        return Err("expect_status is empty: no answer could pass".into());
    }
    if expect_status.is_empty() {
        expect_status.push((200, 299));
    }
    let body = optional_regex("body", c.body.as_ref(), Regex::new)?;
    let body_md5 = c.body_md5.as_deref().map(md5_digest).transpose()?;
    Ok(HttpCheck {
        method,
        path,
        host: c.host.clone(),
        headers,
        expect_status,
        body,
        body_md5,
        keep_alive: c.keep_alive.as_ref().map(|d| d.0),
    })
}

/// `body_md5`: an MD5 as 32 hex digits (either case), keepalived's
/// `digest`.
fn md5_digest(hex: &str) -> Result<Md5, String> {
    conversation::from_hex(hex)
        .filter(|_| hex.len() == 32)
        .and_then(|bytes| bytes.try_into().ok())
        .map(Md5)
        .ok_or_else(|| {
            format!(
                "invalid body_md5 {hex:?}: expected an MD5 as 32 hex digits, like eff5bc1ef8ec9d03e640fc4370f5eacd (`md5sum` of the page)"
            )
        })
}

fn status_range(spec: &StatusSpec) -> Result<(u16, u16), String> {
    let code = |n: u16, text: &str| {
        if (100..=599).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "invalid status {text:?} in expect_status: codes are 100 to 599"
            ))
        }
    };
    match spec {
        StatusSpec::Code(n) => {
            let n = code(*n, &n.to_string())?;
            Ok((n, n))
        }
        StatusSpec::Range(s) => {
            let bad =
                || format!("invalid status range {s:?} in expect_status: expected like 200-399");
            let (a, b) = s.split_once('-').ok_or_else(bad)?;
            let a: u16 = a.trim().parse().map_err(|_| bad())?;
            let b: u16 = b.trim().parse().map_err(|_| bad())?;
            let (a, b) = (code(a, s)?, code(b, s)?);
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
    }
}
