//! `hooks:` of `defaults` and of a service: what runs on each event the
//! checker tells about (see [`crate::notify`]). A service's `hooks:`
//! replaces the defaults' whole (it is not merged: `hooks: {}` in a
//! service turns them off there); checker-wide events (started,
//! stopping) run the defaults' hooks.
//!
//! The webhook's TLS side is read like an https check's ([`super::tls`]):
//! `ca_file`, `client_cert` and `client_key`, relative to the config file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::fingerprint::Fingerprinting;
use super::scalars::Dur;
use super::tls::{self, TlsFields, TlsSettings};

/// How long a hook may run when the config does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Webhook retries after the first try, when the config does not say.
const DEFAULT_RETRIES: u32 = 2;

/// The wait before the first retry when the config does not say; it
/// doubles for each next one.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// Hooks running at once, at most, over the whole checker, when the
/// config does not say (`max_running_hooks`).
pub const DEFAULT_MAX_RUNNING_HOOKS: usize = 4;

/// The hooks of a service (or the defaults'): each optional.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// A program to run.
    pub exec: Option<ExecHook>,
    /// A URL to POST the event to.
    pub webhook: Option<Webhook>,
}

impl Hooks {
    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.exec.is_none() && self.webhook.is_none()
    }
}

/// `hooks.exec`: a program run with its arguments, never through a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecHook {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Killed with its process group after this long.
    pub timeout: Duration,
}

/// `hooks.webhook`: an HTTP(S) POST of the event as JSON.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where to POST (`http://` or `https://`).
    pub url: hyper::Uri,
    /// The longest one try may take, connection included.
    pub timeout: Duration,
    /// Tries after the first, on a connection error, a timeout, a 429 or
    /// a 5xx answer.
    pub retries: u32,
    /// The wait before the first retry; doubled for each next one.
    pub backoff: Duration,
    /// The TLS client configuration, for an `https://` URL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// `hooks:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    exec: Option<RawExec>,
    webhook: Option<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    argv: Vec<String>,
    timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    timeout: Option<Dur>,
    retries: Option<u32>,
    backoff: Option<Dur>,
    ca_file: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
}

/// Checks `raw` and reads the files it names (relative to `base`).
pub(super) fn resolve(raw: &RawHooks, base: &Path) -> Result<Hooks, String> {
    let exec = match &raw.exec {
        None => None,
        Some(e) => {
            match e.argv.first() {
                None => {
                    return Err(
                        "hooks.exec.argv: the list is empty: it needs at least the program".into(),
                    )
                }
                Some(program) if program.is_empty() => {
                    return Err("hooks.exec.argv: the program must not be empty".into())
                }
                Some(_) => {}
            }
            Some(ExecHook {
                argv: e.argv.clone(),
                timeout: e.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            })
        }
    };
    let webhook = match &raw.webhook {
        None => None,
        Some(w) => Some(webhook(w, base)?),
    };
    Ok(Hooks { exec, webhook })
}

fn webhook(w: &RawWebhook, base: &Path) -> Result<Webhook, String> {
    let url: hyper::Uri = w
        .url
        .parse()
        .map_err(|e| format!("hooks.webhook.url {:?}: {e}", w.url))?;
    let https = match url.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(format!(
                "hooks.webhook.url {:?}: expected an http:// or https:// URL",
                w.url
            ))
        }
    };
    if url.host().is_none_or(str::is_empty) {
        return Err(format!("hooks.webhook.url {:?}: no host", w.url));
    }
    let tls = if https {
        if w.ca_file.is_none() {
            return Err("hooks.webhook: an https URL needs ca_file (the CA that issued the receiver's certificate; the system's bundle will do, such as /etc/ssl/certs/ca-certificates.crt)".into());
        }
        let settings = TlsSettings::new(TlsFields {
            what: "a webhook",
            ca_file: w.ca_file.clone(),
            server_name: None,
            client_cert: w.client_cert.clone(),
            client_key: w.client_key.clone(),
            min_tls_version: None,
            insecure_skip_verify: None,
            full_handshake_interval: None,
        })
        .map_err(|e| format!("hooks.webhook: {e}"))?;
        // A webhook is sent with the TLS of the config it was loaded with:
        // nothing is kept over a reload, so no fingerprint.
        let unkept = &mut Fingerprinting::of(&"webhook");
        let check =
            tls::load(&settings, base, unkept).map_err(|e| format!("hooks.webhook: {e}"))?;
        Some(check.client)
    } else {
        for (name, set) in [
            ("ca_file", w.ca_file.is_some()),
            ("client_cert", w.client_cert.is_some()),
            ("client_key", w.client_key.is_some()),
        ] {
            if set {
                return Err(format!("hooks.webhook.{name} is only for an https:// URL"));
            }
        }
        None
    };
    Ok(Webhook {
        url,
        timeout: w.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
        retries: w.retries.unwrap_or(DEFAULT_RETRIES),
        backoff: w.backoff.map_or(DEFAULT_BACKOFF, |d| d.0),
        tls,
    })
}
