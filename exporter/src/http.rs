//! The exporter's pages: a landing page at `/`, the metrics at the
//! telemetry path, `/-/healthy` (200 while it serves) and `/-/ready` (200
//! once a collection has finished: IPVS read, or known to be absent), 404
//! elsewhere. Authentication and TLS happen before
//! (in `ipvs_web::Server`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use ipvs_web::pages::{reject_method, text};

use crate::collect::Collector;
use crate::encode::{encode_to, Format};
use crate::snapshot::Snapshot;

/// What the handler needs.
#[derive(Debug, Clone)]
pub struct Pages {
    /// The shared collector.
    pub collector: Arc<Collector>,
    /// `--web.telemetry-path`.
    pub telemetry_path: Arc<str>,
}

pub use ipvs_web::scrape::Page;

impl Pages {
    /// Answers one request.
    pub async fn handle<B>(self, request: Request<B>) -> Response<Page> {
        if let Some(refused) = reject_method(&request) {
            return refused.map(Either::Left);
        }
        let path = request.uri().path();
        if path == &*self.telemetry_path {
            let exposition = self.collector.exposition().await;
            // Encoding a large table takes a while and blocks: see
            // [`ipvs_web::scrape`]. Scrapes are encoded side by side: the
            // exporter has no timed work of its own that they could starve.
            ipvs_web::scrape::response(request.headers(), None, move |format, out| {
                let written = exposition.encode_to(format, out);
                drop(exposition);
                // The encoder's label sets are freed: give the memory back
                // rather than keep a scrape's peak resident between scrapes.
                crate::memory::release();
                written
            })
            .await
        } else if path == "/-/healthy" {
            ipvs_web::pages::healthy().map(Either::Left)
        } else if path == "/-/ready" {
            ipvs_web::pages::ready(self.collector.is_ready()).map(Either::Left)
        } else if path == "/" {
            let mut response = Response::new(Either::Left(Full::new(Bytes::from(landing_page(
                &self.telemetry_path,
            )))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        } else {
            text(StatusCode::NOT_FOUND, "Not Found\n").map(Either::Left)
        }
    }
}

/// The body of a scrape of `snapshot`, whole (for tests and measurements).
pub fn exposition(snapshot: &Snapshot, format: Format, gzip: bool) -> std::io::Result<Vec<u8>> {
    ipvs_web::scrape::write_body(gzip, Vec::new(), |out| encode_to(snapshot, format, out))
}

/// The landing page, linking to the metrics.
pub fn landing_page(telemetry_path: &str) -> String {
    let path = html_escape(telemetry_path);
    format!(
        "<!DOCTYPE html>\n<html>\n<head><title>IPVS Exporter</title></head>\n<body>\n\
         <h1>IPVS Exporter</h1>\n<p>Prometheus exporter for the Linux IPVS (LVS) load balancer, version {}.</p>\n\
         <p><a href=\"{path}\">Metrics</a></p>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
