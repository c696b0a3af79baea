//! An HTTP/1.1 answer read off a probe's stream: its status line alone
//! when the check needs only the status, else its head parsed with
//! httparse and its body read by its framing (RFC 9112, section 6) as far
//! as the check needs it, and no further.
//!
//! What a probe needs of HTTP is small: one request written as it was made
//! once ([`super::Template`]), one answer's status, at times its body, and
//! whether the connection can carry the next probe. A client library's
//! connection task, request and header maps cost more than that per probe
//! (lab/bench/README.md, "2026-12-05, evening").

use std::cell::RefCell;
use std::mem::MaybeUninit;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::super::ProbeError;

/// The longest head (status line and headers) read; a longer one fails
/// the probe. Also the longest chunk-size line or trailer section.
const HEAD_LIMIT: usize = 64 * 1024;
/// The most header fields a head may have.
const HEADERS: usize = 100;
/// What a read asks for at least: a health page's whole answer in one.
const READ: usize = 4096;

/// The most read buffers a thread keeps for its next answers: two a
/// probe (its answer's, and its body's kept for a regex) for as many
/// probes as a thread has in flight by default
/// (`--checker.max-concurrency`). A group of probes is in flight at once,
/// so with fewer kept many of a group's buffers were allocated anew
/// (lab/bench/README.md, "2026-12-07, morning"). The pool holds no more
/// than were in use at once.
const SPARE_BUFFERS: usize = 512;

thread_local! {
    /// Read buffers of the answers read on this thread (and the bodies
    /// kept for a regex), for its next ones: glibc serves a request of
    /// [`READ`] bytes from its large bins, first merging its fast bins,
    /// so a buffer allocated for every probe sent the probe's other
    /// allocations down the slow path too (lab/bench/README.md,
    /// "2026-12-06, early morning").
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer of at least [`READ`] bytes.
pub(super) fn buffer() -> Vec<u8> {
    SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(READ))
}

/// `buf` kept for a next answer on this thread, unless it grew past a
/// usual answer's or enough are kept.
pub(super) fn spare(mut buf: Vec<u8>) {
    if buf.capacity() > 2 * READ {
        return;
    }
    buf.clear();
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < SPARE_BUFFERS {
            spare.push(buf);
        }
    });
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// At the end of the stream (no length given).
    Close,
    /// Before a chunk's size line.
    ChunkSize,
    /// Bytes left of a chunk.
    ChunkData(u64),
    /// Before the line end after a chunk.
    ChunkEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailers,
    /// Read to its end.
    Done,
}

/// An answer whose head was read; its body is read with [`Answer::next`].
pub(super) struct Answer<'s, S> {
    stream: &'s mut S,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    at: usize,
    /// Its status code.
    pub status: u16,
    /// Whether the server keeps the connection for another request:
    /// HTTP/1.1, without `Connection: close`.
    pub keeps: bool,
    body: Body,
}

/// What a head says.
struct Head {
    len: usize,
    status: u16,
    keeps: bool,
    body: Body,
}

/// What of an answer a check needs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Needs {
    /// Its status alone: the probe ends with a reset, so what follows the
    /// status line (its headers, its body) is neither read nor parsed.
    Status,
    /// Its head, for the status and the body's framing (a body to read,
    /// a connection to keep).
    Head,
}

/// The final status of the status line `buf` begins with (`HTTP/1.x`,
/// three digits, then a space or the line's end), if it has one; `None`
/// for an interim 1xx answer, a line not yet whole enough, or not in that
/// form (left to [`parse`], which says what is wrong).
fn final_status(buf: &[u8]) -> Option<u16> {
    let line = buf.get(..13)?;
    let digits = &line[9..12];
    let formed = line.starts_with(b"HTTP/1.")
        && line[7].is_ascii_digit()
        && line[8] == b' '
        && digits.iter().all(u8::is_ascii_digit)
        && matches!(line[12], b' ' | b'\r');
    if !formed {
        return None;
    }
    let status = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    // An interim answer's head is read past by the full parse.
    (!interim(status)).then_some(status)
}

/// An interim answer (1xx but 101, Switching Protocols): the final one
/// follows it.
fn interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// A head parsed from `buf`: `None` while it is incomplete. `head_request`:
/// the answer to a HEAD request, which has no body whatever its head says.
fn parse(buf: &[u8], head_request: bool) -> Result<Option<Head>, ProbeError> {
    // Left uninitialised: httparse writes each field it finds, and only
    // those are read.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > HEAD_LIMIT => {
            return Err(ProbeError::Http(format!(
                "the answer's head is longer than {} KiB",
                HEAD_LIMIT / 1024
            )))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ProbeError::Http(format!("not an HTTP answer: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut close = false;
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for field in response.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            close |= field
                .value
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding of the last field says whether it is chunked.
            let codings = String::from_utf8_lossy(field.value);
            let last = codings.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(field.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    ProbeError::Http(format!(
                        "invalid Content-Length {:?}",
                        String::from_utf8_lossy(field.value)
                    ))
                })?;
            if length.is_some_and(|l| l != value) {
                return Err(ProbeError::Http("two different Content-Lengths".into()));
            }
            length = Some(value);
        }
    }
    let body = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Body::Done
    } else {
        match (chunked, length) {
            (Some(true), _) => Body::ChunkSize,
            (Some(false), _) => Body::Close,
            (None, Some(length)) => Body::Length(length),
            (None, None) => Body::Close,
        }
    };
    Ok(Some(Head {
        len,
        status,
        keeps: response.version == Some(1) && !close,
        body,
    }))
}

impl<'s, S: AsyncRead + Unpin> Answer<'s, S> {
    /// Reads an answer's head from `stream` (past any interim 1xx answer),
    /// or, if the check `needs` only its status, its status line.
    pub(super) async fn read(
        stream: &'s mut S,
        head_request: bool,
        needs: Needs,
    ) -> Result<Self, ProbeError> {
        let mut answer = Answer {
            stream,
            buf: buffer(),
            at: 0,
            status: 0,
            keeps: false,
            body: Body::Done,
        };
        loop {
            // Nothing to parse before the first read (nor after an
            // interim answer that ended the bytes read).
            let unread = &answer.buf[answer.at..];
            if needs == Needs::Status {
                if let Some(status) = final_status(unread) {
                    // The rest unread: neither its framing nor the
                    // connection's reuse is known.
                    answer.status = status;
                    answer.body = Body::Close;
                    return Ok(answer);
                }
            }
            let head = if unread.is_empty() {
                None
            } else {
                parse(unread, head_request)?
            };
            match head {
                Some(head) if interim(head.status) => {
                    answer.at += head.len;
                }
                Some(head) => {
                    answer.at += head.len;
                    answer.status = head.status;
                    answer.keeps = head.keeps;
                    answer.body = head.body;
                    return Ok(answer);
                }
                None => {
                    if answer.fill().await? == 0 {
                        return Err(ProbeError::Http(
                            "the connection closed before an answer".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Reads more of the stream into `buf`; how much (0 at its end).
    async fn fill(&mut self) -> Result<usize, ProbeError> {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at >= READ {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.reserve(READ);
        self.stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| ProbeError::Http(format!("reading the answer: {e}")))
    }

    /// Reads more, the stream's end being an error: `what` was cut.
    async fn fill_within(&mut self, what: &str) -> Result<(), ProbeError> {
        if self.buf.len() - self.at > HEAD_LIMIT {
            return Err(ProbeError::Http(format!(
                "{what} is longer than {} KiB",
                HEAD_LIMIT / 1024
            )));
        }
        match self.fill().await? {
            0 => Err(ProbeError::Http(format!(
                "the connection closed within {what}"
            ))),
            _ => Ok(()),
        }
    }

    /// Up to `left` bytes of what was read, reading if nothing is.
    async fn take(&mut self, left: u64, what: &str) -> Result<(usize, usize), ProbeError> {
        if self.at == self.buf.len() {
            self.fill_within(what).await?;
        }
        let n = (self.buf.len() - self.at).min(usize::try_from(left).unwrap_or(usize::MAX));
        let taken = (self.at, self.at + n);
        self.at += n;
        Ok(taken)
    }

    /// The body's next bytes; `None` at its end.
    pub(super) async fn next(&mut self) -> Result<Option<&[u8]>, ProbeError> {
        loop {
            let (from, to) = match self.body {
                Body::Done => return Ok(None),
                Body::Length(0) => {
                    self.body = Body::Done;
                    return Ok(None);
                }
                Body::Length(left) => {
                    let (from, to) = self.take(left, "the body").await?;
                    self.body = Body::Length(left - (to - from) as u64);
                    (from, to)
                }
                Body::Close => {
                    if self.at == self.buf.len() && self.fill().await? == 0 {
                        self.body = Body::Done;
                        return Ok(None);
                    }
                    let from = self.at;
                    self.at = self.buf.len();
                    (from, self.at)
                }
                Body::ChunkSize => {
                    match httparse::parse_chunk_size(&self.buf[self.at..]) {
                        Ok(httparse::Status::Complete((len, size))) => {
                            self.at += len;
                            self.body = match size {
                                0 => Body::Trailers,
                                size => Body::ChunkData(size),
                            };
                        }
                        Ok(httparse::Status::Partial) => {
                            self.fill_within("a chunk's size line").await?
                        }
                        Err(_) => return Err(ProbeError::Http("invalid chunk size line".into())),
                    }
                    continue;
                }
                Body::ChunkData(left) => {
                    let (from, to) = self.take(left, "a chunk").await?;
                    let left = left - (to - from) as u64;
                    if left == 0 {
                        self.body = Body::ChunkEnd;
                    } else {
                        self.body = Body::ChunkData(left);
                    }
                    (from, to)
                }
                Body::ChunkEnd => {
                    if self.buf.len() - self.at < 2 {
                        self.fill_within("a chunk").await?;
                        continue;
                    }
                    if &self.buf[self.at..self.at + 2] != b"\r\n" {
                        return Err(ProbeError::Http("a chunk longer than its size".into()));
                    }
                    self.at += 2;
                    self.body = Body::ChunkSize;
                    continue;
                }
                Body::Trailers => {
                    let rest = &self.buf[self.at..];
                    match rest.windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            self.at += 2;
                            self.body = Body::Done;
                        }
                        Some(line) => self.at += line + 2,
                        None => self.fill_within("the trailer fields").await?,
                    }
                    continue;
                }
            };
            if to > from {
                return Ok(Some(&self.buf[from..to]));
            }
        }
    }

    /// Whether the stream gave nothing past the answer read to its end:
    /// then the connection can carry another request.
    pub(super) fn ended_clean(&self) -> bool {
        self.body == Body::Done && self.at == self.buf.len()
    }
}

impl<S> Drop for Answer<'_, S> {
    fn drop(&mut self) {
        spare(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests;
