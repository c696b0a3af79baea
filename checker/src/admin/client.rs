//! `ipvs-checker drain` and `ipvs-checker undrain`: one request to the
//! running daemon's admin API, over the same client (TLS, basic auth,
//! timeout) as `ipvs-checker status`.

use anyhow::{anyhow, bail, Context as _};
use hyper::{Method, StatusCode};

use super::{DrainRequest, DRAIN_PATH, UNDRAIN_PATH};
use crate::status::{self, PASSWORD_ENV};

/// `ipvs-checker drain` arguments.
#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// The service, as `ipvs-checker status` shows it: TCP/198.18.0.10:80
    /// (or 198.18.0.10:80), UDP/[2001:db8::10]:53, FWM/1.
    pub service: String,
    /// The real server: 198.18.1.11:80, or the address alone when the
    /// service has it on one port.
    pub real_server: String,
    /// Why it is drained (shown by `ipvs-checker status` and /status).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Undrain it by itself after this long (e.g. 30m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = check_duration)]
    pub until: Option<String>,
    /// How to reach the daemon.
    #[command(flatten)]
    pub web: status::Args,
}

/// `ipvs-checker undrain` arguments.
#[derive(Debug, clap::Args)]
pub struct UndrainArgs {
    /// The service, as for `drain`.
    pub service: String,
    /// The real server, as for `drain`.
    pub real_server: String,
    /// How to reach the daemon.
    #[command(flatten)]
    pub web: status::Args,
}

/// The duration checked here, sent as written (the daemon checks it too).
fn check_duration(text: &str) -> Result<String, String> {
    ipvs_common::parse_positive_duration(text).map(|_| text.to_owned())
}

/// Drains a real server; prints what the daemon did.
pub fn drain(args: &DrainArgs) -> anyhow::Result<()> {
    let body = DrainRequest {
        service: args.service.clone(),
        real_server: args.real_server.clone(),
        reason: args.reason.clone(),
        until: args.until.clone(),
    };
    send(&args.web, DRAIN_PATH, &body)
}

/// Undrains a real server; prints what the daemon did.
pub fn undrain(args: &UndrainArgs) -> anyhow::Result<()> {
    let body = DrainRequest {
        service: args.service.clone(),
        real_server: args.real_server.clone(),
        ..DrainRequest::default()
    };
    send(&args.web, UNDRAIN_PATH, &body)
}

fn send(web: &status::Args, path: &str, body: &DrainRequest) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let password = std::env::var(PASSWORD_ENV).ok();
    let json = serde_json::to_string(body)?;
    let (code, answer) = runtime.block_on(status::exchange(
        web,
        password.as_deref(),
        Method::POST,
        path,
        Some(json),
    ))?;
    let text = String::from_utf8_lossy(&answer).trim().to_owned();
    match code {
        StatusCode::OK => {
            println!("{text}");
            Ok(())
        }
        StatusCode::UNAUTHORIZED => Err(status::unauthorized(web)),
        // The daemon's own words: the API is off, or what is not found.
        StatusCode::FORBIDDEN | StatusCode::CONFLICT | StatusCode::BAD_REQUEST => {
            Err(anyhow!("{text}"))
        }
        StatusCode::NOT_FOUND if text == "Not Found" => bail!(
            "{} has no admin API: is it ipvs-checker, and a version with drains?",
            web.url
        ),
        StatusCode::NOT_FOUND => Err(anyhow!("{text}")),
        other => bail!("{}{path} answered {other}: {text}", web.url),
    }
}
