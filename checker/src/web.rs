//! The checker's pages, served by `ipvs_web::Server` (TLS and basic auth
//! from `--web.config.file` happen before): the status page at `/`
//! ([`page`], HTML over the same document as `/status`), the
//! metrics at `/metrics` (OpenMetrics, from [`crate::metrics`]) and every
//! real server's state at `/status` (JSON), both read from the daemon's
//! [`Shared`] state; `/-/healthy` (200 while it serves) and `/-/ready`
//! (200 once every service was reconciled once, 503 before).
//!
//! The metrics are OpenMetrics 1.0 when the scraper asks for it, as
//! Prometheus does, else the text format 0.0.4 (curl, `promtool check
//! metrics`), each written by the writer both daemons share
//! ([`ipvs_common::exposition`]) and negotiated as the exporter does.
//!
//! `/status` looks like
//!
//! ```json
//! {"services": [{"service": "TCP 198.18.0.10:80", "quorum_guard_active": false,
//!   "real_servers": [{"address": "198.18.1.11:80", "health": "down",
//!     "health_since": 1700000000.5, "weight": 0, "weight_desired": 0,
//!     "weight_configured": 3, "last_probe_success": false,
//!     "last_error": {"reason": "connect", "message": "connect: Connection refused (os error 111)",
//!       "since": 1700000000.1, "last": 1700000002.1},
//!     "checks": [{"type": "tcp", "last_success": false, "reason": "connect"}]}]}],
//!  "config_last_reload_successful": true}
//! ```
//!
//! with times in Unix seconds and `null` where nothing is known yet. A
//! drained real server has `"drained": {"by": "api", "user": "alice",
//! "reason": "kernel update", "since": 1700000000.5, "until": 1700007200.5}`
//! (`by`: `api`, `out_of_band` or `maintenance_dir`; `null` when not
//! drained).
//!
//! `/api/` is the admin API ([`crate::admin`]), off unless an [`Admin`] is
//! given ([`Pages::with_admin`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use ipvs_web::pages::{reject_method, text};
use ipvs_web::scrape::Background;
pub use ipvs_web::scrape::Page;

use crate::admin::Admin;
use crate::drain::Drain;
use crate::state::{Shared, State};

/// What the handler needs; cheap to clone for each request.
#[derive(Debug, Clone)]
pub struct Pages {
    state: Shared,
    admin: Option<Admin>,
    /// Where the scrapes are encoded: one at a time, on a thread of their
    /// own, so that scrapers, however many and often, take at most that
    /// thread's share of the CPU the probes need (on time, a probe is no
    /// false down). `None` if that thread could not start: the blocking
    /// pool.
    scrapes: Option<Arc<Background>>,
}

impl Pages {
    /// Pages over the daemon's `state`.
    pub fn new(state: Shared) -> Self {
        let scrapes = match Background::start("scrapes") {
            Ok(background) => Some(Arc::new(background)),
            Err(error) => {
                tracing::warn!(%error, "cannot start the scrapes' thread: scrapes are encoded beside the probes");
                None
            }
        };
        Pages {
            state,
            admin: None,
            scrapes,
        }
    }

    /// With the admin API on (`--web.enable-admin-api`).
    pub fn with_admin(mut self, admin: Admin) -> Self {
        self.admin = Some(admin);
        self
    }

    /// Answers one request: a scrape streamed, every other page whole.
    pub async fn handle<B>(self, request: Request<B>) -> Response<Page>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if request.uri().path() != "/metrics" {
            return self.page(request).await.map(Either::Left);
        }
        if let Some(refused) = reject_method(&request) {
            return refused.map(Either::Left);
        }
        // Written on the scrapes' thread, from a copy of the state taken
        // there (see [`ipvs_web::scrape`]).
        let state = self.state;
        ipvs_web::scrape::response(
            request.headers(),
            self.scrapes.as_deref(),
            move |format, out| crate::metrics::write(&state, format, out),
        )
        .await
    }

    /// Answers a request for any page but the metrics.
    async fn page<B>(self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if request.uri().path().starts_with("/api/") {
            return match &self.admin {
                Some(admin) => admin.handle(request).await,
                None => crate::admin::disabled(),
            };
        }
        if let Some(refused) = reject_method(&request) {
            return refused;
        }
        match request.uri().path() {
            "/status" => {
                let status = status(&self.state.lock());
                match serde_json::to_string_pretty(&status) {
                    Ok(mut body) => {
                        body.push('\n');
                        with_type(body, "application/json")
                    }
                    Err(e) => {
                        tracing::error!("cannot encode the status: {e}");
                        text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode status\n")
                    }
                }
            }
            "/-/healthy" => ipvs_web::pages::healthy(),
            "/-/ready" => ipvs_web::pages::ready(self.state.lock().reconciled),
            "/" => page::response(
                &status(&self.state.lock()),
                unix_seconds(SystemTime::now()),
                self.admin.is_some(),
            ),
            _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }
}

fn with_type(body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `weights` or `managed`.
    pub mode: String,
    /// Managed mode's state file (null in weights mode).
    pub state_file: Option<String>,
    /// Every configured service, in file order.
    pub services: Vec<ServiceStatus>,
    /// Managed mode's real servers that left the config and wait at weight
    /// 0 for their connections to end before they are deleted.
    pub removing: Vec<RemovingStatus>,
    /// Whether the last configuration reload succeeded.
    pub config_last_reload_successful: bool,
}

/// A real server being removed, in `/status`.
#[derive(Debug, Serialize)]
pub struct RemovingStatus {
    /// As `ipvsadm -Ln` names it: `TCP 198.18.0.10:80`.
    pub service: String,
    /// `198.18.1.11:80`.
    pub address: String,
    /// Its active connections at the last pass.
    pub active_connections: u32,
    /// When its removal began (Unix seconds).
    pub since: f64,
}

/// One service in `/status`.
#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    /// As `ipvsadm -Ln` names it: `TCP 198.18.0.10:80`, `FWM 1`.
    pub service: String,
    /// The quorum guard acts: it keeps failed real servers at their
    /// weight, or puts the sorry server in.
    pub quorum_guard_active: bool,
    /// Managed mode created this service (and may delete it).
    pub created_by_checker: bool,
    /// The sorry server, if configured.
    pub sorry_server: Option<SorryServerStatus>,
    /// Its real servers, in file order.
    pub real_servers: Vec<RealServerStatus>,
}

/// A service's sorry server in `/status`.
#[derive(Debug, Serialize)]
pub struct SorryServerStatus {
    /// `198.18.1.99:8080`.
    pub address: String,
    /// Whether it takes the traffic (the quorum guard is active).
    pub in_use: bool,
    /// Its weight in the IPVS table at the last reconciliation (null: not
    /// in the table).
    pub weight: Option<u32>,
    /// Its weight while in use, from the configuration.
    pub weight_configured: u32,
    /// Managed mode added it (and deletes it when not in use).
    pub created_by_checker: bool,
}

/// One real server in `/status`.
#[derive(Debug, Serialize)]
pub struct RealServerStatus {
    /// `198.18.1.11:80`, `[2001:db8::11]:80`.
    pub address: String,
    /// Managed mode created this real server (and may delete it).
    pub created_by_checker: bool,
    /// `unknown`, `up` or `down`.
    pub health: &'static str,
    /// When the health last changed (Unix seconds).
    pub health_since: f64,
    /// The weight in the IPVS table at the last reconciliation.
    pub weight: Option<u32>,
    /// The weight the checker wants (null while the health is unknown).
    pub weight_desired: Option<u32>,
    /// The weight from the configuration.
    pub weight_configured: u32,
    /// The last probe's result.
    pub last_probe_success: Option<bool>,
    /// The last failed probe, kept after recovery.
    pub last_error: Option<ErrorStatus>,
    /// The leaf certificate's not-after (Unix seconds), HTTPS only.
    pub tls_cert_not_after: Option<i64>,
    /// Its drain, if drained (weight 0 while still probed).
    pub drained: Option<DrainStatus>,
    /// Each of its checks, in config order, with its last result.
    pub checks: Vec<CheckStatus>,
}

/// One check of a real server in `/status`.
#[derive(Debug, Serialize)]
pub struct CheckStatus {
    /// Its type: `tcp`, `http`, `https`, ...
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether it passed in the last probe (null before the first).
    pub last_success: Option<bool>,
    /// Why it failed in the last probe, as in
    /// `ipvs_checker_check_last_failure_info` (null: it passed).
    pub reason: Option<&'static str>,
}

/// A drain in `/status`.
#[derive(Debug, Serialize)]
pub struct DrainStatus {
    /// `api`, `out_of_band` or `maintenance_dir`.
    pub by: &'static str,
    /// The basic auth user who asked (admin API).
    pub user: Option<String>,
    /// Why, as given; the file's name for `maintenance_dir`.
    pub reason: Option<String>,
    /// When it began (Unix seconds).
    pub since: f64,
    /// When it ends by itself (Unix seconds), if ever.
    pub until: Option<f64>,
}

impl From<&Drain> for DrainStatus {
    fn from(d: &Drain) -> Self {
        DrainStatus {
            by: d.by.as_str(),
            user: d.user.clone(),
            reason: d.reason.clone(),
            since: unix_seconds(d.since),
            until: d.until.map(unix_seconds),
        }
    }
}

/// A failed probe in `/status`.
#[derive(Debug, Serialize)]
pub struct ErrorStatus {
    /// The short reason, as in `ipvs_checker_last_failure_info`.
    pub reason: &'static str,
    /// The whole message.
    pub message: String,
    /// Start of the current run of failures with this reason.
    pub since: f64,
    /// The latest failure.
    pub last: f64,
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The status document of `state`.
pub fn status(state: &State) -> Status {
    let created = |s, d| state.owned.destinations.contains(&(s, d));
    Status {
        mode: state.mode.to_string(),
        state_file: state.state_file.as_ref().map(|p| p.display().to_string()),
        services: state
            .services()
            .iter()
            .map(|s| ServiceStatus {
                service: s.key.to_string(),
                quorum_guard_active: s.guard_active,
                created_by_checker: state.owned.services.contains(&s.key),
                sorry_server: s.quorum.and_then(|q| q.sorry_server).map(|sorry| {
                    SorryServerStatus {
                        address: sorry.key.addr.to_string(),
                        in_use: s.guard_active,
                        weight: s.sorry_weight,
                        weight_configured: sorry.weight,
                        created_by_checker: created(s.key, sorry.key),
                    }
                }),
                real_servers: s
                    .backends
                    .iter()
                    .map(|b| RealServerStatus {
                        address: b.key.addr.to_string(),
                        created_by_checker: created(s.key, b.key),
                        health: b.health.health().as_str(),
                        health_since: unix_seconds(b.health_since),
                        weight: b.current_weight,
                        weight_desired: b.desired_weight,
                        weight_configured: b.configured_weight,
                        last_probe_success: b.last_probe,
                        last_error: b.last_error.as_ref().map(|e| ErrorStatus {
                            reason: e.reason,
                            message: e.message.clone(),
                            since: unix_seconds(e.since),
                            last: unix_seconds(e.last),
                        }),
                        tls_cert_not_after: b.cert_not_after,
                        drained: state.drain(&s.key, &b.key).map(DrainStatus::from),
                        checks: b
                            .check_kinds
                            .iter()
                            .enumerate()
                            .map(|(i, kind)| {
                                let last = b.check_failures.get(i).copied();
                                CheckStatus {
                                    kind,
                                    last_success: last.map(|f| f.is_none()),
                                    reason: last.flatten(),
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        removing: state
            .removing
            .iter()
            .map(|((s, d), r)| RemovingStatus {
                service: s.to_string(),
                address: d.addr.to_string(),
                active_connections: r.active_connections,
                since: unix_seconds(r.since),
            })
            .collect(),
        config_last_reload_successful: state.reload_successful,
    }
}

pub mod page;

#[cfg(test)]
pub(crate) mod tests;
