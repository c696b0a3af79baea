//! The exporter's pages: a landing page at `/`, the metrics at the
//! telemetry path, 404 elsewhere. Authentication and TLS happen before
//! (in `ipvs_web::Server`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use ipvs_web::pages::{reject_method, text};

use crate::collect::Collector;
use crate::encode::{encode, Format};

/// What the handler needs.
#[derive(Debug, Clone)]
pub struct Pages {
    /// The shared collector.
    pub collector: Arc<Collector>,
    /// `--web.telemetry-path`.
    pub telemetry_path: Arc<str>,
}

impl Pages {
    /// Answers one request.
    pub async fn handle<B>(self, request: Request<B>) -> Response<Full<Bytes>> {
        if let Some(refused) = reject_method(&request) {
            return refused;
        }
        let path = request.uri().path();
        if path == &*self.telemetry_path {
            let format =
                Format::negotiate(request.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
            let snapshot = self.collector.snapshot().await;
            let body = encode(&snapshot, format);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            response
        } else if path == "/" {
            let mut response =
                Response::new(Full::new(Bytes::from(landing_page(&self.telemetry_path))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        } else {
            text(StatusCode::NOT_FOUND, "Not Found\n")
        }
    }
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
