//! Writes a [`model::Config`] as the checker's YAML, with the comments each
//! node carries. Strings are written as JSON strings, which YAML reads as
//! double-quoted scalars, so no value can change the document's shape.
//! Timing and check settings shared by every real server of a service are
//! written once, on the service.

use std::fmt::Write as _;
use std::time::Duration;

use super::model::{self, Check, CheckKind, Http, RealServer, Service, ServiceAddr, Step, Timing};
use crate::config::Mode;

/// The YAML text of `config`.
pub fn write(config: &model::Config) -> String {
    let mut out = String::new();
    for line in &config.header {
        comment(&mut out, 0, line);
    }
    let mode = match config.mode {
        Mode::Managed => "managed",
        Mode::Weights => "weights",
    };
    let _ = writeln!(out, "mode: {mode}");
    if let Some(state_file) = &config.state_file {
        let _ = writeln!(out, "state_file: {}", quote(state_file));
    }
    if let Some(dir) = &config.maintenance_dir {
        let _ = writeln!(out, "maintenance_dir: {}", quote(dir));
    }
    if config.services.is_empty() {
        let _ = writeln!(out, "services: []");
        return out;
    }
    let _ = writeln!(out, "services:");
    for service in &config.services {
        write_service(&mut out, service);
    }
    out
}

fn write_service(out: &mut String, s: &Service) {
    for line in &s.comments {
        comment(out, 2, line);
    }
    let mut fields: Vec<String> = Vec::new();
    match s.addr {
        ServiceAddr::Addr { protocol, address } => {
            fields.push(format!("protocol: {protocol}"));
            fields.push(format!("address: {}", quote(&address.to_string())));
        }
        ServiceAddr::Fwmark { mark, ipv6 } => {
            fields.push(format!("fwmark: {mark}"));
            if ipv6 {
                fields.push("family: ipv6".into());
            }
        }
    }
    if let Some(scheduler) = &s.scheduler {
        fields.push(format!("scheduler: {}", quote(scheduler)));
    }
    if !s.scheduler_flags.is_empty() {
        fields.push(format!(
            "scheduler_flags: [{}]",
            s.scheduler_flags.join(", ")
        ));
    }
    if s.one_packet {
        fields.push("one_packet: true".into());
    }
    if let Some(p) = s.persistence {
        fields.push(format!("persistence: {p}"));
    }
    if let Some(mask) = &s.persistence_netmask {
        fields.push(format!("persistence_netmask: {}", quote(mask)));
    }
    for (i, field) in fields.iter().enumerate() {
        let lead = if i == 0 { "  - " } else { "    " };
        let _ = writeln!(out, "{lead}{field}");
    }
    if let Some(q) = &s.quorum {
        for line in &q.comments {
            comment(out, 4, line);
        }
        let _ = writeln!(out, "    quorum:");
        let _ = writeln!(out, "      min_up: {}", q.min_up);
        if let Some(sorry) = &q.sorry_server {
            let mut parts = vec![
                format!("address: {}", quote(&sorry.address)),
                format!("weight: {}", sorry.weight),
            ];
            if let Some(f) = sorry.forward {
                parts.push(format!("forward: {}", f.as_str()));
            }
            let _ = writeln!(out, "      sorry_server: {{{}}}", parts.join(", "));
        }
    }
    let shared_timing = shared(&s.real_servers, |rs| rs.timing);
    let shared_checks = shared(&s.real_servers, |rs| rs.checks.clone());
    if let Some(t) = shared_timing {
        write_timing(out, 4, &t);
    }
    if let Some(c) = &shared_checks {
        write_checks(out, 4, c);
    }
    let _ = writeln!(out, "    real_servers:");
    for rs in &s.real_servers {
        write_real_server(out, rs, shared_timing.is_none(), shared_checks.is_none());
    }
}

fn write_real_server(out: &mut String, rs: &RealServer, timing: bool, with_check: bool) {
    for line in &rs.comments {
        comment(out, 6, line);
    }
    let _ = writeln!(out, "      - address: {}", quote(&rs.address));
    let _ = writeln!(out, "        weight: {}", rs.weight);
    if let Some(f) = rs.forward {
        let _ = writeln!(out, "        forward: {}", f.as_str());
    }
    if let Some(u) = rs.upper_threshold {
        let _ = writeln!(out, "        upper_threshold: {u}");
    }
    if let Some(l) = rs.lower_threshold {
        let _ = writeln!(out, "        lower_threshold: {l}");
    }
    if let Some(a) = rs.check_address {
        let _ = writeln!(out, "        check_address: {}", quote(&a.to_string()));
    }
    if let Some(a) = rs.source_address {
        let _ = writeln!(out, "        source_address: {}", quote(&a.to_string()));
    }
    if timing {
        write_timing(out, 8, &rs.timing);
    }
    if with_check {
        write_checks(out, 8, &rs.checks);
    }
}

/// `check:` for one, `checks:` (all must pass) for several.
fn write_checks(out: &mut String, indent: usize, checks: &[Check]) {
    let pad = " ".repeat(indent);
    match checks {
        [one] => {
            let _ = writeln!(out, "{pad}check: {}", check(one));
        }
        several => {
            let _ = writeln!(out, "{pad}checks:");
            for c in several {
                let _ = writeln!(out, "{pad}  - {}", check(c));
            }
        }
    }
}

fn write_timing(out: &mut String, indent: usize, t: &Timing) {
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}interval: {}", duration(t.interval));
    let _ = writeln!(out, "{pad}timeout: {}", duration(t.timeout));
    let _ = writeln!(out, "{pad}rise: {}", t.rise);
    let _ = writeln!(out, "{pad}fall: {}", t.fall);
}

/// The value every real server has, if they all have the same.
fn shared<T: PartialEq>(real_servers: &[RealServer], get: impl Fn(&RealServer) -> T) -> Option<T> {
    let mut values = real_servers.iter().map(get);
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

/// A check as a flow mapping.
fn check(c: &Check) -> String {
    let mut parts = Vec::new();
    match &c.kind {
        CheckKind::Tcp => parts.push("type: tcp".to_string()),
        CheckKind::Http(http) => {
            parts.push("type: http".into());
            http_parts(&mut parts, http);
        }
        CheckKind::Https(http) => {
            parts.push("type: https".into());
            http_parts(&mut parts, http);
            parts.push("insecure_skip_verify: true".into());
        }
        CheckKind::Preset(preset) => parts.push(format!("type: tcp, preset: {preset}")),
        CheckKind::Conversation(steps) => {
            let steps: Vec<String> = steps
                .iter()
                .map(|step| match step {
                    Step::Send(text) => format!("{{send: {}}}", quote(text)),
                    Step::Expect(re) => format!("{{expect: {}}}", quote(re)),
                })
                .collect();
            parts.push(format!("type: tcp, steps: [{}]", steps.join(", ")));
        }
        CheckKind::Icmp => parts.push("type: icmp".into()),
        CheckKind::Udp {
            payload_hex,
            expect,
        } => {
            parts.push("type: udp".into());
            if let Some(hex) = payload_hex {
                parts.push(format!("payload_hex: {}", quote(hex)));
            }
            if let Some(re) = expect {
                parts.push(format!("expect: {}", quote(re)));
            }
        }
        CheckKind::Dns {
            name,
            query_type,
            answer_address,
            answer,
        } => {
            parts.push(format!(
                "type: dns, name: {}, query_type: {query_type}",
                quote(name)
            ));
            if let Some(address) = answer_address {
                parts.push(format!("answer_address: {}", quote(&address.to_string())));
            }
            if let Some(re) = answer {
                parts.push(format!("answer: {}", quote(re)));
            }
        }
        CheckKind::Exec {
            command,
            dynamic_weight,
        } => {
            let args: Vec<String> = command.iter().map(|a| quote(a)).collect();
            parts.push(format!("type: exec, command: [{}]", args.join(", ")));
            if *dynamic_weight {
                parts.push("dynamic_weight: true".into());
            }
        }
    }
    if let Some(port) = c.port {
        parts.push(format!("port: {port}"));
    }
    format!("{{{}}}", parts.join(", "))
}

fn http_parts(parts: &mut Vec<String>, http: &Http) {
    if let Some(m) = &http.method {
        parts.push(format!("method: {}", quote(m)));
    }
    if let Some(p) = &http.path {
        parts.push(format!("path: {}", quote(p)));
    }
    if let Some(h) = &http.host {
        parts.push(format!("host: {}", quote(h)));
    }
    if !http.expect_status.is_empty() {
        let codes: Vec<String> = http
            .expect_status
            .iter()
            .map(|s| match s.parse::<u16>() {
                Ok(code) => code.to_string(),
                Err(_) => quote(s),
            })
            .collect();
        parts.push(format!("expect_status: [{}]", codes.join(", ")));
    }
    if let Some(b) = &http.body {
        parts.push(format!("body: {}", quote(b)));
    }
    if let Some(md5) = &http.body_md5 {
        parts.push(format!("body_md5: {}", quote(md5)));
    }
}

/// `2s`, or `1500ms` when not whole seconds.
pub fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A YAML double-quoted scalar (a JSON string).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `# text` lines at `indent`, one per line of `text`.
fn comment(out: &mut String, indent: usize, text: &str) {
    let pad = " ".repeat(indent);
    for line in text.lines() {
        if line.is_empty() {
            let _ = writeln!(out, "{pad}#");
        } else {
            let _ = writeln!(out, "{pad}# {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_seconds_or_milliseconds() {
        assert_eq!(duration(Duration::from_secs(60)), "60s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn strings_cannot_break_out_of_their_scalar() {
        assert_eq!(quote("a\"b\n# c: d"), r#""a\"b\n# c: d""#);
    }
}
