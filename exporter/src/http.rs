//! The exporter's pages: a landing page at `/`, the metrics at the
//! telemetry path, `/-/healthy` (200 while it serves) and `/-/ready` (200
//! once a collection has finished: IPVS read, or known to be absent), 404
//! elsewhere. Authentication and TLS happen before
//! (in `ipvs_web::Server`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body_util::{Either, Full};
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Request, Response, StatusCode};

use ipvs_web::pages::{reject_method, text};
use ipvs_web::stream::{self, BodyWriter, StreamedBody};

use crate::collect::Collector;
use crate::encode::{encode_to, Exposition, Format};
use crate::snapshot::Snapshot;

/// What the handler needs.
#[derive(Debug, Clone)]
pub struct Pages {
    /// The shared collector.
    pub collector: Arc<Collector>,
    /// `--web.telemetry-path`.
    pub telemetry_path: Arc<str>,
}

/// A page: small ones whole, the metrics streamed as they are encoded.
pub type Page = Either<Full<Bytes>, StreamedBody>;

/// Pieces of the streamed exposition, and how many may wait for a slow
/// scraper: at most 5 x 64 KiB of it is in memory at once.
const PIECE: usize = 64 * 1024;
const PIECES_WAITING: usize = 4;

/// How long a scraper may take none of the exposition before the scrape
/// is cut: Prometheus gives up on a scrape after 10 s by default, and a
/// scraper that stops reading must not keep an encoder's thread.
const CLIENT_STALL: Duration = Duration::from_secs(30);

impl Pages {
    /// Answers one request.
    pub async fn handle<B>(self, request: Request<B>) -> Response<Page> {
        if let Some(refused) = reject_method(&request) {
            return refused.map(Either::Left);
        }
        let path = request.uri().path();
        if path == &*self.telemetry_path {
            let format =
                Format::negotiate(request.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
            let gzip = accepts_gzip(
                request
                    .headers()
                    .get(ACCEPT_ENCODING)
                    .and_then(|v| v.to_str().ok()),
            );
            let exposition = self.collector.exposition().await;
            // Encoding a large table takes a while and blocks: it runs on
            // the blocking pool and sends the page in pieces as it goes, so
            // a large table's exposition (tens of megabytes of text) never
            // exists whole.
            let (writer, body) = stream::channel(PIECE, PIECES_WAITING, CLIENT_STALL);
            tokio::task::spawn_blocking(move || {
                let sent = write_exposition(&exposition, format, gzip, writer)
                    .and_then(BodyWriter::finish);
                drop(exposition);
                // The encoder's label sets are freed: give the memory back
                // rather than keep a scrape's peak resident between scrapes.
                crate::memory::release();
                if let Err(error) = sent {
                    // Only writing to the client can fail: it went away,
                    // or stopped reading.
                    tracing::debug!(%error, "scrape not sent to the end");
                }
            });
            let mut response = Response::new(Either::Right(body));
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
            if gzip {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
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

/// Writes the body of a scrape to `sink`: the exposition, gzipped (at the
/// fastest level: the exposition is repetitive, level 1 already shrinks it
/// twentyfold) when the scraper accepts it, as Prometheus does by default.
/// Returns the sink.
pub fn write_exposition<W: Write>(
    exposition: &Exposition,
    format: Format,
    gzip: bool,
    sink: W,
) -> std::io::Result<W> {
    write_body(gzip, sink, |out| exposition.encode_to(format, out))
}

/// The body of a scrape of `snapshot`, whole (for tests and measurements).
pub fn exposition(snapshot: &Snapshot, format: Format, gzip: bool) -> std::io::Result<Vec<u8>> {
    write_body(gzip, Vec::new(), |out| encode_to(snapshot, format, out))
}

/// Writes what `encode` writes to `sink`, gzipped or not.
fn write_body<W: Write>(
    gzip: bool,
    mut sink: W,
    encode: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<W> {
    if gzip {
        let mut encoder = GzEncoder::new(sink, Compression::fast());
        encode(&mut encoder)?;
        encoder.finish()
    } else {
        encode(&mut sink)?;
        Ok(sink)
    }
}

/// Whether an `Accept-Encoding` header accepts gzip (`gzip` or `x-gzip`
/// with a non-zero quality).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    header.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip"))
            && parts.all(|param| match param.split_once('=') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => {
                    value.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
                }
                _ => true,
            })
    })
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
