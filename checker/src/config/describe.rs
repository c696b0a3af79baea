//! What `--config.check` prints: each service and real server with its
//! checks, one line per check ([`describe`]).

use std::fmt;

use ipvs::{ForwardMethod, ServiceFlags};

use super::{
    rcode_name, Check, CheckKind, CheckTarget, Config, HttpCheck, HttpsCheck, Mode, Step, TlsCheck,
};

impl fmt::Display for Check {
    /// One line, as `--config.check` prints it: `https GET /health expect
    /// 200-299 server_name=www.example.test ca_file=/etc/ca.pem`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let http = |f: &mut fmt::Formatter<'_>, h: &HttpCheck| -> fmt::Result {
            write!(f, " {} {}", h.method, h.path)?;
            if let Some(host) = &h.host {
                write!(f, " host={host}")?;
            }
            let codes: Vec<String> = h
                .expect_status
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            write!(f, " expect {}", codes.join(","))?;
            if let Some(body) = &h.body {
                write!(f, " body=/{}/", body.as_str())?;
            }
            if let Some(md5) = &h.body_md5 {
                write!(f, " body_md5={md5}")?;
            }
            if let Some(keep_alive) = h.keep_alive {
                write!(f, " keep_alive={keep_alive:?}")?;
            }
            Ok(())
        };
        match &self.kind {
            CheckKind::Tcp => f.write_str("tcp connect")?,
            CheckKind::Http(h) => {
                f.write_str("http")?;
                http(f, h)?;
            }
            CheckKind::Conversation(c) => {
                f.write_str("tcp")?;
                if let Some(preset) = c.preset {
                    write!(f, " preset={preset}")?;
                }
                for step in &c.steps {
                    match step {
                        Step::Send(bytes) => write!(f, " send \"{}\"", bytes.escape_ascii())?,
                        Step::Expect(re) => write!(f, " expect /{}/", re.as_str())?,
                    }
                }
                if let Some(tls) = &c.tls {
                    f.write_str(" tls")?;
                    tls_settings(f, tls)?;
                }
            }
            CheckKind::Exec(e) => {
                write!(f, "exec {:?}", e.command)?;
                for (name, value) in &e.env {
                    write!(f, " {name}={value:?}")?;
                }
                if e.dynamic_weight {
                    f.write_str(" dynamic_weight")?;
                }
            }
            CheckKind::Icmp => f.write_str("icmp echo")?,
            CheckKind::Udp(u) => {
                write!(f, "udp send \"{}\"", u.payload.escape_ascii())?;
                match &u.expect {
                    Some(re) => write!(f, " expect /{}/", re.as_str())?,
                    None => f.write_str(" expect no port unreachable")?,
                }
            }
            CheckKind::Dns(d) => {
                write!(
                    f,
                    "dns {} {} over {} expect {}",
                    d.name,
                    d.query_type,
                    if d.tcp { "tcp" } else { "udp" },
                    rcode_name(d.rcode)
                )?;
                if let Some(re) = &d.answer {
                    write!(f, " answer=/{}/", re.as_str())?;
                }
                if let Some(address) = d.answer_address {
                    write!(f, " answer_address={address}")?;
                }
                if !d.recursion_desired {
                    f.write_str(" no_rd")?;
                }
            }
            CheckKind::Https(HttpsCheck { http: h, tls }) => {
                f.write_str("https")?;
                http(f, h)?;
                tls_settings(f, tls)?;
            }
        }
        Ok(())
    }
}

/// The TLS settings of a check, as `--config.check` prints them.
fn tls_settings(f: &mut fmt::Formatter<'_>, tls: &TlsCheck) -> fmt::Result {
    if let Some(name) = &tls.server_name {
        write!(f, " server_name={}", name.to_str())?;
    }
    if let Some(ca) = &tls.ca_file {
        write!(f, " ca_file={}", ca.display())?;
    }
    write!(f, " min_tls={}", tls.min_version)?;
    if tls.client_auth {
        f.write_str(" client_cert")?;
    }
    if tls.insecure_skip_verify {
        f.write_str(" INSECURE_SKIP_VERIFY")?;
    }
    Ok(())
}

/// What `--config.check` prints: each service and real server with its
/// weight, probe target, timing and check, like `ipvsadm -Ln` indented.
pub fn describe(config: &Config) -> String {
    use std::fmt::Write as _;
    let mut out = format!("mode: {}\n", config.mode);
    if let Some(file) = &config.state_file {
        let _ = writeln!(out, "state_file: {}", file.display());
    }
    for service in &config.services {
        let _ = write!(out, "{}", service.key);
        if config.mode == Mode::Managed {
            let _ = write!(out, " {}", service.scheduler);
            let flags = service.flags.scheduler_flag_names(&service.scheduler);
            if !flags.is_empty() {
                let _ = write!(out, " ({})", flags.join(","));
            }
            if service.flags.contains(ServiceFlags::ONE_PACKET) {
                let _ = write!(out, " ops");
            }
            if let Some(p) = service.persistence {
                let _ = write!(out, " persistent {p}");
                if let Some(mask) = service.netmask {
                    let _ = write!(out, " mask {mask}");
                }
            }
        }
        if let Some(q) = service.quorum {
            let _ = write!(out, " quorum min_up={}", q.min_up);
            if let Some(sorry) = q.sorry_server {
                let _ = write!(out, " sorry_server {} weight {}", sorry.key, sorry.weight);
            }
        }
        out.push('\n');
        for rs in &service.real_servers {
            let t = rs.timing;
            let mut managed = String::new();
            if config.mode == Mode::Managed {
                managed = format!(" {}", forward_name(rs.forward));
                if rs.upper_threshold != 0 || rs.lower_threshold != 0 {
                    managed += &format!(" x {} y {}", rs.upper_threshold, rs.lower_threshold);
                }
            }
            if let Some(p) = rs.slow_start {
                managed += &format!(" slow_start {p:?}");
            }
            let first = &rs.checks[0];
            let _ = writeln!(
                out,
                "  -> {}{managed} weight {} probe {} every {:?} timeout {:?} rise {} fall {}{}: {}",
                rs.key,
                rs.weight,
                probe_target(first),
                t.interval,
                t.timeout,
                t.rise,
                t.fall,
                rs.source.map(|s| format!(" from {s}")).unwrap_or_default(),
                first.check
            );
            // Every further check on a line of its own under the first.
            for more in &rs.checks[1..] {
                let _ = writeln!(out, "     and probe {}: {}", probe_target(more), more.check);
            }
        }
    }
    if let (Some(first), Some(last)) = (config.probe_services.first(), config.probe_services.last())
    {
        let _ = writeln!(
            out,
            "probe services: FWM {:#x} to {:#x}, recorded in {}",
            first.mark,
            last.mark,
            config.vip_probes.state_file.display()
        );
    }
    out
}

/// Where a check probes: its address, and through which probe service
/// when it goes through the VIP.
fn probe_target(check: &CheckTarget) -> String {
    match check.through {
        Some(t) => format!(
            "{} through FWM {:#x} ({} to {})",
            check.target,
            t.mark,
            forward_name(t.forward),
            t.real_server
        ),
        None => check.target.to_string(),
    }
}

/// The config's name of a forwarding method.
fn forward_name(forward: ForwardMethod) -> &'static str {
    match forward {
        ForwardMethod::Masquerade => "nat",
        ForwardMethod::DirectRoute => "dr",
        ForwardMethod::Tunnel => "tun",
        _ => "local",
    }
}
