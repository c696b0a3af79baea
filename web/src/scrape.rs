//! A scrape's answer, the same for both daemons: the exposition in the
//! format the scraper asked for, encoded on the blocking pool (or, for a
//! daemon whose own work is timed, on a [`Background`] thread) and sent in
//! pieces as it is written ([`crate::stream`]), so an exposition of tens
//! of megabytes never exists whole; gzipped (at the fastest level: the
//! text is repetitive, level 1 already shrinks it twentyfold) when the
//! scraper accepts it, as Prometheus does by default.

use std::io::{self, Write};
use std::sync::mpsc;
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

/// Where a daemon whose own work is timed (the checker's probes) encodes
/// its scrapes: one at a time, on a thread of its own, so that scrapers
/// that come often or together take at most that thread's share of the
/// CPU beside the probes. A scrape of thousands of real servers costs a
/// large share of a core to encode and compress. Scrapes that waited
/// while another was encoded are answered together by one encoding, made
/// after they all came (so each sees what happened before it asked), sent
/// to each of them as it is written: three scrapers cost one encoding,
/// not three.
#[derive(Debug)]
pub struct Background {
    queue: mpsc::Sender<Waiting>,
}

/// A scrape waiting for the thread.
struct Waiting {
    format: Format,
    gzip: bool,
    writer: BodyWriter,
    encode: Encode,
}

type Encode = Box<dyn FnOnce(Format, &mut dyn Write) -> io::Result<()> + Send>;

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("format", &self.format)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl Background {
    /// Starts the thread, named `name`.
    pub fn start(name: &str) -> io::Result<Self> {
        let (queue, arrived) = mpsc::channel::<Waiting>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut waiting = std::collections::VecDeque::new();
                loop {
                    if waiting.is_empty() {
                        // Ends when the daemon drops its `Background`.
                        let Ok(first) = arrived.recv() else { return };
                        waiting.push_back(first);
                    }
                    waiting.extend(arrived.try_iter());
                    let Some(first) = waiting.pop_front() else {
                        continue;
                    };
                    let (alike, others): (Vec<_>, Vec<_>) = waiting
                        .drain(..)
                        .partition(|w: &Waiting| (w.format, w.gzip) == (first.format, first.gzip));
                    waiting = others.into();
                    serve(first, alike);
                }
            })?;
        Ok(Background { queue })
    }
}

/// Encodes `first`'s scrape once and sends it to `first` and to each of
/// `alike` (the same format and encoding) as it is written; a scraper
/// that goes away or stops reading is dropped, the others served.
fn serve(first: Waiting, alike: Vec<Waiting>) {
    let Waiting {
        format,
        gzip,
        writer,
        encode,
    } = first;
    let writers = std::iter::once(writer)
        .chain(alike.into_iter().map(|w| w.writer))
        .collect();
    let sent = write_body(gzip, FanOut { writers }, |out| encode(format, out)).map(|fan| {
        for writer in fan.writers {
            if let Err(error) = writer.finish() {
                tracing::debug!(%error, "scrape not sent to the end");
            }
        }
    });
    if let Err(error) = sent {
        // Only writing to the clients can fail: every one went away,
        // or stopped reading.
        tracing::debug!(%error, "scrape not sent to the end");
    }
}

/// The same bytes to several scrapers; one that fails a write (it went
/// away, or read nothing for [`CLIENT_STALL`]) is left out of the rest.
struct FanOut {
    writers: Vec<BodyWriter>,
}

impl Write for FanOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.writers.retain_mut(|w| w.write_all(data).is_ok());
        if self.writers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "every scraper went away",
            ));
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The answer to a scrape whose request carried `headers`: `encode`
/// writes the exposition in the negotiated format, on the blocking pool
/// or on `background`'s thread, into the streamed body (through gzip if
/// the scraper accepts it).
pub async fn response(
    headers: &HeaderMap,
    background: Option<&Background>,
    encode: impl FnOnce(Format, &mut dyn Write) -> io::Result<()> + Send + 'static,
) -> Response<Page> {
    let format = Format::negotiate(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let gzip = accepts_gzip(headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    let (writer, body) = stream::channel(PIECE, PIECES_WAITING, CLIENT_STALL);
    let waiting = Waiting {
        format,
        gzip,
        writer,
        encode: Box::new(encode),
    };
    let alone = match background {
        Some(background) => background.queue.send(waiting).err().map(|e| e.0),
        None => Some(waiting),
    };
    // Without the thread (none, or it is gone: it panicked), the pool
    // encodes each scrape on its own.
    if let Some(waiting) = alone {
        tokio::task::spawn_blocking(move || serve(waiting, Vec::new()));
    }
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
