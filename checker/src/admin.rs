//! The admin API: `POST /api/v1/drain` and `POST /api/v1/undrain`, which
//! `ipvs-checker drain` and `undrain` call (see [`client`]).
//!
//! It is off unless the daemon runs with `--web.enable-admin-api`
//! (Prometheus' convention for an API that changes state): then
//! `/api/...` answers 403 saying so. It is served by the same endpoint as
//! `/metrics`, so `--web.config.file`'s TLS and basic auth apply to it
//! before a request gets here.
//!
//! A request is a JSON document:
//!
//! ```json
//! {"service": "TCP/198.18.0.10:80", "real_server": "198.18.1.11:80",
//!  "reason": "kernel update", "until": "2h"}
//! ```
//!
//! (`reason` and `until` for a drain only, both optional). The web side
//! only parses it: the daemon's loop, which owns the drains, applies it
//! ([`Command`]) and answers 200 with what it did, 404 when no configured
//! service or real server has that name, 409 when the loop will not do it
//! (undraining a maintenance file's drain), 500 when the drain file could
//! not be written (the drain is then not made).
//!
//! Cross-site requests are refused: a browser logged in with basic auth
//! (the status page's drain buttons, [`crate::web::page`]) sends its
//! credentials with any request to this origin, a form on another site
//! included. So a request must say `Content-Type: application/json` (415
//! otherwise), which a form cannot send, and which a script of another
//! origin can send only after a CORS preflight this API never grants; and
//! a browser's `Sec-Fetch-Site` other than `same-origin` (or `none`) is
//! refused with 403. Clients other than browsers send no `Sec-Fetch-Site`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use ipvs::{DestinationKey, ServiceKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;

pub mod client;

/// Where a drain is asked for.
pub const DRAIN_PATH: &str = "/api/v1/drain";
/// Where an undrain is asked for.
pub const UNDRAIN_PATH: &str = "/api/v1/undrain";

/// The most of a request body read: a few names and a reason.
const MAX_BODY: usize = 64 << 10;

/// How long a client has to send a request's body. The server bounds
/// only the head: a body sent a byte a second would otherwise hold its
/// connection, one of `--web.max-connections`, for as long as it takes.
const BODY_READ: Duration = Duration::from_secs(10);

/// How long the web side waits for the loop's answer: the loop may be
/// in a slow netlink call, never this long unless it is stuck.
const LOOP_ANSWER: Duration = Duration::from_secs(10);

/// The body of a drain or undrain request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// The service as `ipvs-checker status` or ipvsadm name it:
    /// `TCP/198.18.0.10:80`, `TCP 198.18.0.10:80`, `198.18.0.10:80` (TCP),
    /// `UDP/[2001:db8::10]:53`, `FWM/1`.
    pub service: String,
    /// The real server: `198.18.1.11:80`, or its address alone when the
    /// service has it on one port only.
    pub real_server: String,
    /// Why (drain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the drain lasts, as `30m`, `2h` (drain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// What the loop is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// Drain a real server.
    Drain {
        /// The service's name, as given.
        service: String,
        /// The real server's name, as given.
        real_server: String,
        /// Why.
        reason: Option<String>,
        /// For how long.
        until: Option<Duration>,
        /// The basic auth user who asked.
        user: Option<String>,
    },
    /// Undrain a real server.
    Undrain {
        /// The service's name, as given.
        service: String,
        /// The real server's name, as given.
        real_server: String,
    },
}

/// Why the loop did not do an [`Order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No configured service or real server has that name.
    NotFound(String),
    /// It cannot be done that way.
    Conflict(String),
    /// It failed (the drain file could not be written).
    Failed(String),
}

/// An order and where its answer goes.
#[derive(Debug)]
pub struct Command {
    /// What to do.
    pub order: Order,
    /// What was done, or why not.
    pub reply: oneshot::Sender<Result<String, Refusal>>,
}

/// The web side of the admin API: sends orders to the loop.
#[derive(Debug, Clone)]
pub struct Admin {
    loop_tx: mpsc::Sender<Command>,
    /// [`BODY_READ`], shorter in tests.
    body_read: Duration,
}

impl Admin {
    /// An API whose orders go to `loop_tx` (the daemon's, see
    /// `daemon::Running::admin`).
    pub fn new(loop_tx: mpsc::Sender<Command>) -> Self {
        Admin {
            loop_tx,
            body_read: BODY_READ,
        }
    }

    /// Answers a request under `/api/`.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path().to_owned();
        if path != DRAIN_PATH && path != UNDRAIN_PATH {
            return answer(StatusCode::NOT_FOUND, format!("no such API: {path}"));
        }
        if request.method() != Method::POST {
            let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, format!("{path} takes POST"));
            response
                .headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        if let Some(refused) = cross_site(&request) {
            return refused;
        }
        let user = basic_auth_user(&request);
        let body = Limited::new(request.into_body(), MAX_BODY).collect();
        let bytes = match tokio::time::timeout(self.body_read, body).await {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            }
            Err(_) => {
                return answer(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body did not arrive within {:?}", self.body_read),
                )
            }
        };
        let body: DrainRequest = match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(e) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not a drain request: {e}"),
                )
            }
        };
        let order = if path == DRAIN_PATH {
            let until = match body
                .until
                .as_deref()
                .map(ipvs_common::parse_positive_duration)
            {
                None => None,
                Some(Ok(until)) => Some(until),
                Some(Err(e)) => return answer(StatusCode::BAD_REQUEST, format!("until: {e}")),
            };
            Order::Drain {
                service: body.service,
                real_server: body.real_server,
                reason: body.reason.filter(|r| !r.trim().is_empty()),
                until,
                user,
            }
        } else {
            Order::Undrain {
                service: body.service,
                real_server: body.real_server,
            }
        };
        let (reply, answered) = oneshot::channel();
        if self.loop_tx.send(Command { order, reply }).await.is_err() {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon's loop has stopped".into(),
            );
        }
        match tokio::time::timeout(LOOP_ANSWER, answered).await {
            Ok(Ok(Ok(done))) => answer(StatusCode::OK, done),
            Ok(Ok(Err(Refusal::NotFound(why)))) => answer(StatusCode::NOT_FOUND, why),
            Ok(Ok(Err(Refusal::Conflict(why)))) => answer(StatusCode::CONFLICT, why),
            Ok(Ok(Err(Refusal::Failed(why)))) => answer(StatusCode::INTERNAL_SERVER_ERROR, why),
            Ok(Err(_)) => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon's loop has stopped".into(),
            ),
            Err(_) => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the daemon's loop did not answer within {LOOP_ANSWER:?} (it is stuck: see its log)"),
            ),
        }
    }
}

/// The refusal of a request a page of another site could have made (see
/// the module's doc), or `None`.
fn cross_site<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let header = |name| {
        request.headers().get(name).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
    };
    let media_type = header(CONTENT_TYPE.as_str());
    let media_type = media_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or("").trim());
    if media_type != Some("application/json") {
        return Some(answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the admin API takes JSON: send Content-Type: application/json (not {})",
                media_type.unwrap_or("none")
            ),
        ));
    }
    match header("sec-fetch-site").as_deref() {
        None | Some("same-origin") | Some("none") => None,
        Some(site) => Some(answer(
            StatusCode::FORBIDDEN,
            format!("a {site} request to the admin API is refused (Sec-Fetch-Site): use the checker's own page or ipvs-checker drain"),
        )),
    }
}

/// The answer when `--web.enable-admin-api` was not given.
pub fn disabled() -> Response<Full<Bytes>> {
    answer(
        StatusCode::FORBIDDEN,
        "the admin API is off: start ipvs-checker with --web.enable-admin-api".into(),
    )
}

fn answer(status: StatusCode, mut text: String) -> Response<Full<Bytes>> {
    text.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The user of a basic auth header (the server has checked it already).
fn basic_auth_user<B>(request: &Request<B>) -> Option<String> {
    let header = request.headers().get(hyper::header::AUTHORIZATION)?;
    ipvs_web::auth::credentials(header.as_bytes()).map(|(user, _)| user)
}

/// A service's name reduced for comparison: `/` as a space, spaces
/// collapsed, upper case (`tcp/198.18.0.10:80` is `TCP 198.18.0.10:80`,
/// as `ServiceKey` writes it).
fn normal(name: &str) -> String {
    name.replace('/', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// The configured service and real server `service` and `real_server`
/// name: the service's index in `config.services` and both keys, or why
/// none.
pub fn resolve(
    config: &Config,
    service: &str,
    real_server: &str,
) -> Result<(usize, ServiceKey, DestinationKey), Refusal> {
    let wanted = normal(service);
    let found = config.services.iter().position(|s| {
        let name = normal(&s.key.to_string());
        let tcp = matches!(
            s.key,
            ServiceKey::Addr {
                protocol: ipvs::Protocol::Tcp,
                ..
            }
        );
        // A bare address is a TCP service, as with ipvsadm -t.
        name == wanted || (tcp && name == format!("TCP {wanted}"))
    });
    let Some(i) = found else {
        let names: Vec<String> = config.services.iter().map(|s| s.key.to_string()).collect();
        return Err(Refusal::NotFound(format!(
            "no configured service is {service:?} (configured: {})",
            names.join(", ")
        )));
    };
    let s = &config.services[i];
    let matching: Vec<DestinationKey> = match real_server.trim().parse::<std::net::SocketAddr>() {
        Ok(addr) => s
            .real_servers
            .iter()
            .filter(|rs| rs.key.addr == addr)
            .map(|rs| rs.key)
            .collect(),
        Err(_) => match real_server.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => s
                .real_servers
                .iter()
                .filter(|rs| rs.key.addr.ip() == ip)
                .map(|rs| rs.key)
                .collect(),
            Err(_) => {
                return Err(Refusal::NotFound(format!(
                    "{real_server:?} is not a real server's address (198.18.1.11:80, [2001:db8::11]:80, or the address alone)"
                )))
            }
        },
    };
    match matching.as_slice() {
        [one] => Ok((i, s.key, *one)),
        [] => {
            let names: Vec<String> = s.real_servers.iter().map(|rs| rs.key.to_string()).collect();
            Err(Refusal::NotFound(format!(
                "{} has no real server {real_server:?} (configured: {})",
                s.key,
                names.join(", ")
            )))
        }
        several => {
            let names: Vec<String> = several.iter().map(|d| d.to_string()).collect();
            Err(Refusal::NotFound(format!(
                "{real_server:?} names several real servers of {}: {}; give the port",
                s.key,
                names.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests;
