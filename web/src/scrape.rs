//! A scrape's answer, the same for both daemons: the exposition in the
//! format the scraper asked for, encoded on the blocking pool and sent in
//! pieces as it is written ([`crate::stream`]), so an exposition of tens
//! of megabytes never exists whole; gzipped (at the fastest level: the
//! text is repetitive, level 1 already shrinks it twentyfold) when the
//! scraper accepts it, as Prometheus does by default.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body_util::{Either, Full};
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY,
};
use hyper::Response;
use ipvs_common::exposition::Format;
use tokio::sync::Semaphore;

use crate::stream::{self, BodyWriter, StreamedBody};

/// A page: small ones whole, a scrape streamed as it is encoded.
pub type Page = Either<Full<Bytes>, StreamedBody>;

/// Pieces of the streamed exposition, and how many may wait for a slow
/// scraper: at most 5 x 64 KiB of it is in memory at once.
const PIECE: usize = 64 * 1024;
const PIECES_WAITING: usize = 4;

/// How long a scraper may take none of the exposition before the scrape
/// is cut: Prometheus gives up on a scrape after 10 s by default, and a
/// scraper that stops reading must not keep an encoder's thread.
const CLIENT_STALL: Duration = Duration::from_secs(30);

/// The answer to a scrape whose request carried `headers`: `encode`
/// writes the exposition in the negotiated format, on the blocking pool,
/// into the streamed body (through gzip if the scraper accepts it).
///
/// With `turns`, at most its permits of scrapes are encoded at once, the
/// others waiting for their turn before they start: a daemon whose own
/// work is timed (the checker's probes) keeps the CPU it needs when many
/// scrapers come together, each scrape costing a large exposition's
/// encoding and compression.
pub async fn response(
    headers: &HeaderMap,
    turns: Option<&Arc<Semaphore>>,
    encode: impl FnOnce(Format, &mut dyn Write) -> io::Result<()> + Send + 'static,
) -> Response<Page> {
    let format = Format::negotiate(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let gzip = accepts_gzip(headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    // Never closed: a turn always comes.
    let turn = match turns {
        Some(turns) => turns.clone().acquire_owned().await.ok(),
        None => None,
    };
    let (writer, body) = stream::channel(PIECE, PIECES_WAITING, CLIENT_STALL);
    tokio::task::spawn_blocking(move || {
        let sent = write_body(gzip, writer, |out| encode(format, out)).and_then(BodyWriter::finish);
        drop(turn);
        if let Err(error) = sent {
            // Only writing to the client can fail: it went away, or
            // stopped reading.
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
}

/// Writes what `encode` writes to `sink`, gzipped or not; returns the sink.
pub fn write_body<W: Write>(
    gzip: bool,
    mut sink: W,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<W> {
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
