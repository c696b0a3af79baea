//! The reader against answers made by proptest: any bytes end in an
//! answer or an error, never a panic; a body is read whole and exact,
//! whatever its framing and however the stream cuts it; the status line
//! alone says the status a whole head says.

use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use tokio::io::ReadBuf;

use super::*;

/// A stream that gives its pieces one read at a time.
struct Pieces(std::collections::VecDeque<Vec<u8>>);

impl Pieces {
    /// `bytes` cut at `cuts` (positions, in any order).
    fn new(bytes: &[u8], cuts: &[usize]) -> Self {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        at.dedup();
        Pieces(at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect())
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(mut piece) = self.0.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.0.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The whole body read from `stream`, or the error, and whether the
/// answer ended clean.
fn body(mut stream: Pieces, head_request: bool) -> Result<(u16, Vec<u8>, bool), ProbeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut answer = Answer::read(&mut stream, head_request, Needs::Head).await?;
        let mut body = Vec::new();
        while let Some(data) = answer.next().await? {
            body.extend_from_slice(data);
        }
        Ok((answer.status, body, answer.ended_clean()))
    })
}

/// The status read from `stream` by a check that needs only it.
fn status(mut stream: Pieces) -> Result<u16, ProbeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer = Answer::read(&mut stream, false, Needs::Status).await?;
        Ok(answer.status)
    })
}

/// A check of the status alone takes it from the status line, however
/// the line is cut and whatever follows; past interim answers; and an
/// answer that is not HTTP still fails it.
#[test]
fn a_status_alone_is_read_from_the_status_line() {
    let answers: &[(&[u8], &[usize], u16)] = &[
        (b"HTTP/1.1 200 OK\r\n\xff\x00 not a header\r\n", &[], 200),
        (b"HTTP/1.1 503 Service Unavailable\r\n", &[3, 9, 12], 503),
        (b"HTTP/1.0 204\r\n", &[], 204),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\n",
            &[26, 30],
            302,
        ),
    ];
    for (bytes, cuts, want) in answers {
        let got = status(Pieces::new(bytes, cuts));
        assert_eq!(
            got.ok(),
            Some(*want),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    for bytes in [
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"HTTP/1.1 200",
    ] {
        let e = status(Pieces::new(bytes, &[])).expect_err("not an answer's status line");
        assert_eq!(e.reason(), "http", "{e}");
    }
}

/// `body` in chunks of `sizes` (cycled, at least 1 byte each), with a
/// chunk extension on every other one and a trailer field.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let (mut at, mut i) = (0, 0);
    while at < body.len() {
        let size = sizes.get(i % sizes.len().max(1)).map_or(7, |s| s % 40 + 1);
        let end = (at + size).min(body.len());
        let extension = if i % 2 == 0 { ";x=1" } else { "" };
        out.extend_from_slice(format!("{:x}{extension}\r\n", end - at).as_bytes());
        out.extend_from_slice(&body[at..end]);
        out.extend_from_slice(b"\r\n");
        at = end;
        i += 1;
    }
    out.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    out
}

/// A buffer kept for the next answer comes back empty, so nothing of
/// one answer is read as the next's; one grown past a usual answer's
/// is not kept.
#[test]
fn a_kept_read_buffer_comes_back_empty() {
    let mut used = buffer();
    used.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\nstale");
    spare(used);
    let again = buffer();
    assert!(again.is_empty());
    assert!(again.capacity() >= READ);
    spare(again);
    let kept = SPARE.with_borrow(Vec::len);
    spare(Vec::with_capacity(4 * READ));
    assert_eq!(SPARE.with_borrow(Vec::len), kept);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_end_in_an_answer_or_an_error(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        head_request in any::<bool>(),
    ) {
        let whole = body(Pieces::new(&bytes, &cuts), head_request);
        let alone = status(Pieces::new(&bytes, &cuts));
        // What a whole head says of the status, its line alone says.
        if let Ok((want, _, _)) = whole {
            prop_assert_eq!(alone.ok(), Some(want));
        }
    }

    #[test]
    fn a_body_is_read_whole_whatever_its_framing_and_reads(
        payload in prop::collection::vec(any::<u8>(), 0..300),
        sizes in prop::collection::vec(any::<usize>(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        framing in 0..3u8,
    ) {
        let mut answer = match framing {
            0 => chunked(&payload, &sizes),
            1 => {
                let mut a = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", payload.len()).into_bytes();
                a.extend_from_slice(&payload);
                a
            }
            _ => {
                let mut a = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
                a.extend_from_slice(&payload);
                a
            }
        };
        // Framed answers end before what follows them; the last
        // one's end is the stream's.
        let framed = framing < 2;
        let end = answer.len();
        if framed {
            answer.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        }
        let total = answer.len();
        let (status, got, clean) = body(Pieces::new(&answer, &cuts), false).expect("an answer");
        prop_assert_eq!(status, 200);
        prop_assert_eq!(got, payload);
        prop_assert_eq!(self::status(Pieces::new(&answer, &cuts)).ok(), Some(200));
        // Bytes read with a framed answer's end keep its connection
        // from the next probe (bytes that come later are the kept
        // connection's next check's: `Kept::usable`).
        let apart = cuts.iter().map(|c| c % (total + 1)).any(|p| p >= end && p < total);
        prop_assert!(!(framed && !apart && clean));
    }
}
