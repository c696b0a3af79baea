//! The status page at `/`: for a person at a browser, as HAProxy's
//! statistics page, every service and real server with its health, its
//! weights (in the table, desired, configured), its drain, its last error
//! and how old it is, its certificate's expiry and its checks. It is drawn
//! from the same [`Status`] document `/status` serves, made by
//! [`super::status`], so the page and the JSON cannot disagree.
//!
//! The table needs no JavaScript: the page reloads itself every
//! [`REFRESH_SECONDS`] (`<meta http-equiv="refresh">`). With the admin API
//! on (`--web.enable-admin-api`) each configured real server gets a drain
//! or an undrain button, and a small inline script posts the admin API's
//! JSON ([`crate::admin`]) with `fetch` to the page's own origin: the
//! browser sends the basic auth it logged in with, and the API applies its
//! checks (auth, JSON only, same origin) as to any other client. While
//! scripts run, the script does the reloading instead (the meta refresh is
//! then inside `<noscript>`), so that a reload never cuts off a request in
//! flight. Without JavaScript the buttons are inert, and the page says so.
//!
//! Nothing is loaded from elsewhere (directors are often offline): the style
//! and the script are inline, and the `Content-Security-Policy` allows them
//! by their hashes and nothing else: no other source, no other script, no
//! form, no framing (so no other site can lay the buttons under a decoy).
//! Every value is HTML-escaped ([`Escaped`]): names and messages come from
//! the config, the network and the API's callers.

use std::fmt::{self, Display, Write as _};
use std::sync::LazyLock;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;

use super::{ErrorStatus, RealServerStatus, ServiceStatus, Status};
use crate::admin::{DRAIN_PATH, UNDRAIN_PATH};
use crate::drain::By;
use crate::status::{age, created_mark, quorum_guard_note, utc, weight_or_dash, when};

/// How often the page reloads itself. A person watching sees a change
/// within this; faster would cost the checker for no one's benefit.
pub const REFRESH_SECONDS: u32 = 5;

/// A certificate that ends within this many days is marked.
const CERT_WARNING_DAYS: i64 = 14;

const STYLE: &str = "\
body{font-family:sans-serif;font-size:14px;margin:1em;color:#222}\
h1{font-size:20px;margin:0 0 .3em}\
p.meta{color:#555;margin:.2em 0 .8em}\
table{border-collapse:collapse;margin-bottom:1em}\
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}\
thead th{background:#ddd}\
tr.service th{background:#cde;text-align:left}\
td.num{text-align:right}\
td.since,td.health{white-space:nowrap}\
tr.up td.health{background:#9e9}\
tr.down td.health{background:#f88}\
tr.unknown td.health{background:#ddd}\
tr.drained td.health,tr.drained td.drain{background:#9cf}\
tr.sorry td{color:#555}\
.old{color:#888}\
.expiring{background:#fd8}\
.expired{background:#f88}\
.banner{background:#fd8;padding:4px 8px}\
#result:empty{display:none}\
#result{background:#eee;padding:4px 8px}\
";

/// The drain and undrain buttons' script: the request goes to the path in
/// the button's `data-path` (the admin API's), with the service and the
/// real server its row names; the answer is shown after the reload.
const SCRIPT: &str = r#"
"use strict";
const KEY = "ipvs-checker-result";
const result = document.getElementById("result");
const refresh = Number(document.body.dataset.refresh) * 1000;
let busy = false;
if (sessionStorage.getItem(KEY)) {
  result.textContent = sessionStorage.getItem(KEY);
  sessionStorage.removeItem(KEY);
}
setInterval(() => { if (!busy) location.reload(); }, refresh);
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-path]");
  if (!button || busy) return;
  busy = true;
  button.disabled = true;
  const what = button.textContent + " " + button.dataset.realServer + ": ";
  try {
    const response = await fetch(location.origin + button.dataset.path, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({service: button.dataset.service, real_server: button.dataset.realServer}),
    });
    const text = (await response.text()).trim();
    if (response.ok) {
      sessionStorage.setItem(KEY, what + text);
      location.reload();
      return;
    }
    result.textContent = what + response.status + " " + text;
  } catch (error) {
    result.textContent = what + error;
  }
  button.disabled = false;
  busy = false;
});
"#;

/// `sha256-...` of `text`, as a Content-Security-Policy source.
fn csp_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// The page's Content-Security-Policy: its own style and script, requests
/// to its own origin (the admin API), nothing else.
pub static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    )
});

/// The page as an HTTP response, with its headers.
pub fn response(status: &Status, now: f64, admin: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(render(status, now, admin))));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // A live page: a copy kept anywhere is wrong at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(policy) = HeaderValue::from_str(&CONTENT_SECURITY_POLICY) {
        headers.insert(HeaderName::from_static("content-security-policy"), policy);
    }
    // For browsers older than frame-ancestors.
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Text made safe for HTML, in an element or a quoted attribute.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// The page's columns, in order; `Action` only with the admin API.
const COLUMNS: [&str; 10] = [
    "Real server",
    "Health",
    "Since",
    "Weight",
    "Desired",
    "Configured",
    "Drain",
    "Last error",
    "Certificate expires",
    "Checks",
];

/// The page of `status` at `now` (Unix seconds); drain and undrain buttons
/// when `admin`.
pub fn render(status: &Status, now: f64, admin: bool) -> String {
    let mut out = String::with_capacity(4096 + 1024 * status.services.len());
    let refresh = format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">");
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{}\n\
         <title>IPVS Checker</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-refresh=\"{REFRESH_SECONDS}\">\n<h1>IPVS Checker</h1>\n\
         <p class=\"meta\">version {}, {} mode{}; at {} UTC, reloaded every {REFRESH_SECONDS} s. \
         <a href=\"/metrics\">Metrics</a> · <a href=\"/status\">Status (JSON)</a></p>\n",
        // With the script, the script reloads (never during a request).
        if admin {
            format!("<noscript>{refresh}</noscript>")
        } else {
            refresh
        },
        env!("CARGO_PKG_VERSION"),
        Escaped(&status.mode),
        status
            .state_file
            .as_deref()
            .map_or(String::new(), |f| format!(" (state file {})", Escaped(f))),
        utc(now),
    );
    if !status.config_last_reload_successful {
        out.push_str("<p class=\"banner\">The last configuration reload failed: the previous configuration is running (see the log).</p>\n");
    }
    if admin {
        out.push_str(
            "<p id=\"result\" role=\"status\"></p>\n<noscript><p class=\"banner\">Drain and undrain \
             need JavaScript (or <code>ipvs-checker drain</code> and <code>undrain</code>).</p></noscript>\n",
        );
    }
    out.push_str("<table>\n<thead><tr>");
    let columns = if admin {
        COLUMNS.len() + 1
    } else {
        COLUMNS.len()
    };
    for column in COLUMNS.iter().chain(admin.then_some(&"Action")) {
        let _ = write!(out, "<th>{column}</th>");
    }
    out.push_str("</tr></thead>\n");
    for service in &status.services {
        service_rows(&mut out, service, now, admin, columns);
    }
    out.push_str("</table>\n");
    if status.services.iter().any(created_any) {
        let _ = writeln!(
            out,
            "<p>* created by this checker (managed mode, recorded in its state file): the only entries it deletes.</p>"
        );
    }
    if !status.removing.is_empty() {
        out.push_str("<h2>Removing</h2>\n<p>Left the config: weight 0, deleted when their active connections end or at <code>drain_timeout</code>.</p>\n<table>\n<thead><tr><th>Service</th><th>Real server</th><th>Active connections</th><th>Since</th></tr></thead>\n");
        for r in &status.removing {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                Escaped(&r.service),
                Escaped(&r.address),
                r.active_connections,
                when(r.since, now)
            );
        }
        out.push_str("</table>\n");
    }
    if admin {
        let _ = writeln!(out, "<script>{SCRIPT}</script>");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn created_any(service: &ServiceStatus) -> bool {
    service.created_by_checker
        || service.real_servers.iter().any(|r| r.created_by_checker)
        || service
            .sorry_server
            .as_ref()
            .is_some_and(|s| s.created_by_checker)
}

/// A service's heading row, its real servers' rows and its sorry server's.
fn service_rows(out: &mut String, service: &ServiceStatus, now: f64, admin: bool, columns: usize) {
    let guard = quorum_guard_note(service.quorum_guard_active, service.sorry_server.is_some())
        .map_or(String::new(), |note| format!(" ({note})"));
    let name = Escaped(&service.service);
    let _ = writeln!(
        out,
        "<tbody data-service=\"{name}\">\n<tr class=\"service\"><th colspan=\"{columns}\">{name}{}{guard}</th></tr>",
        created_mark(service.created_by_checker)
    );
    for rs in &service.real_servers {
        server_row(out, &service.service, rs, now, admin);
    }
    if let Some(sorry) = &service.sorry_server {
        let (health, desired) = match sorry.in_use {
            true => ("sorry server, in use", sorry.weight_configured),
            false => ("sorry server, standby", 0),
        };
        let _ = writeln!(
            out,
            "<tr class=\"sorry\"><td>{}{}</td><td class=\"health\">{health}</td><td></td>\
             <td class=\"num weight\">{}</td><td class=\"num\">{desired}</td><td class=\"num\">{}</td>{}</tr>",
            Escaped(&sorry.address),
            created_mark(sorry.created_by_checker),
            weight_or_dash(sorry.weight),
            sorry.weight_configured,
            "<td></td>".repeat(columns - 6),
        );
    }
    out.push_str("</tbody>\n");
}

/// A Unix time as a `<time datetime>`: `2023-11-14T22:13:20.500Z`.
fn datetime(unix: f64) -> String {
    let millis = (unix.fract() * 1000.0).floor().clamp(0.0, 999.0) as u32;
    format!("{}.{millis:03}Z", utc(unix).replace(' ', "T"))
}

/// One real server's row.
fn server_row(out: &mut String, service: &str, rs: &RealServerStatus, now: f64, admin: bool) {
    let address = Escaped(&rs.address);
    let _ = write!(
        out,
        "<tr class=\"rs {}{}\" data-real-server=\"{address}\"><td>{address}{}</td>\
         <td class=\"health\">{}{}</td><td class=\"since\"><time datetime=\"{}\">{}</time></td>\
         <td class=\"num weight\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
        rs.health,
        if rs.drained.is_some() { " drained" } else { "" },
        created_mark(rs.created_by_checker),
        rs.health,
        if rs.drained.is_some() {
            ", drained"
        } else {
            ""
        },
        datetime(rs.health_since),
        when(rs.health_since, now),
        weight_or_dash(rs.weight),
        weight_or_dash(rs.weight_desired),
        rs.weight_configured,
    );
    out.push_str("<td class=\"drain\">");
    if let Some(d) = &rs.drained {
        let _ = write!(out, "by {}", d.by);
        if let Some(user) = &d.user {
            let _ = write!(out, " ({})", Escaped(user));
        }
        let _ = write!(out, " since {}", when(d.since, now));
        if let Some(until) = d.until {
            let _ = write!(out, " until {} (in {})", utc(until), age(until - now));
        }
        if let Some(reason) = &d.reason {
            let _ = write!(out, ": {}", Escaped(reason));
        }
    }
    out.push_str("</td><td class=\"error\">");
    if let Some(e) = &rs.last_error {
        last_error(out, e, rs.last_probe_success == Some(true), now);
    }
    out.push_str("</td>");
    match rs.tls_cert_not_after {
        Some(t) => {
            let left = t as f64 - now;
            let (class, text) = match left {
                l if l <= 0.0 => ("cert expired", format!("expired {} ago", age(-l))),
                l if l < (CERT_WARNING_DAYS * 86_400) as f64 => {
                    ("cert expiring", format!("in {}", age(l)))
                }
                l => ("cert", format!("in {}", age(l))),
            };
            let _ = write!(out, "<td class=\"{class}\">{} ({text})</td>", utc(t as f64));
        }
        None => out.push_str("<td class=\"cert\"></td>"),
    }
    out.push_str("<td class=\"checks\">");
    for (i, check) in rs.checks.iter().enumerate() {
        let result = match (check.last_success, check.reason) {
            (None, _) => "-",
            (Some(true), _) => "ok",
            (Some(false), reason) => reason.unwrap_or("failed"),
        };
        let _ = write!(
            out,
            "{}{}: {result}",
            if i > 0 { ", " } else { "" },
            check.kind
        );
    }
    out.push_str("</td>");
    if admin {
        out.push_str("<td class=\"action\">");
        action(out, service, rs);
        out.push_str("</td>");
    }
    out.push_str("</tr>\n");
}

/// The last error: reason and message, and how long ago; greyed once the
/// server's probes pass again (it is kept after recovery).
fn last_error(out: &mut String, e: &ErrorStatus, past: bool, now: f64) {
    let _ = write!(
        out,
        "<span{}>{}: {} <small>(last {} ago; since {})</small></span>",
        if past { " class=\"old\"" } else { "" },
        e.reason,
        Escaped(&e.message),
        age(now - e.last),
        when(e.since, now),
    );
}

/// The drain or undrain button of a real server; none for a maintenance
/// file's drain, which only removing the file ends.
fn action(out: &mut String, service: &str, rs: &RealServerStatus) {
    let (label, path) = match &rs.drained {
        Some(d) if d.by == By::MaintenanceDir.as_str() => {
            out.push_str("maintenance file");
            return;
        }
        Some(_) => ("Undrain", UNDRAIN_PATH),
        None => ("Drain", DRAIN_PATH),
    };
    let _ = write!(
        out,
        "<button type=\"button\" data-path=\"{path}\" data-service=\"{}\" data-real-server=\"{}\">{label}</button>",
        Escaped(service),
        Escaped(&rs.address)
    );
}

#[cfg(test)]
mod tests;
