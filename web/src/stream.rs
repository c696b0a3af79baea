//! A response body that blocking code writes as it goes, so a large page
//! (the exporter's exposition of a big table) is sent piece by piece
//! instead of existing whole in memory first.
//!
//! [`channel`] gives a [`BodyWriter`] (an `io::Write` for a blocking
//! thread) and the [`StreamedBody`] to put in the response. The writer
//! hands over pieces of `chunk` bytes through a channel that holds at most
//! `depth` of them, so at most `chunk x (depth + 1)` bytes of the page are
//! in memory at once and a slow client slows the writer down instead of
//! making the pieces pile up. The body ends normally only after
//! [`BodyWriter::finish`]: a writer dropped before (its thread failed or
//! panicked) makes the body end with an error, so hyper cuts the
//! connection and the client sees a broken response rather than a short
//! one that looks complete. When the client goes away, the next write
//! fails with `BrokenPipe`, and when it stops reading for the writer's
//! stall limit, with `TimedOut`: either way the writer can stop.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

enum Piece {
    Data(Bytes),
    End,
}

/// A body written by a [`BodyWriter`] on another thread.
#[derive(Debug)]
pub struct StreamedBody {
    pieces: mpsc::Receiver<Piece>,
    ended: bool,
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Piece::Data(bytes) => write!(f, "Data({} bytes)", bytes.len()),
            Piece::End => f.write_str("End"),
        }
    }
}

/// Writes a [`StreamedBody`]; blocking, so for a blocking thread (a
/// write from inside the async runtime would panic).
#[derive(Debug)]
pub struct BodyWriter {
    buf: Vec<u8>,
    chunk: usize,
    pieces: mpsc::Sender<Piece>,
    /// The runtime whose timer bounds each wait for the client.
    runtime: Option<Handle>,
    stall: Duration,
}

/// A writer and the body it writes: pieces of `chunk` bytes, at most
/// `depth` of them waiting for the client. A client that takes none of
/// them for `stall` makes the next write fail (`TimedOut`), so a scraper
/// that stops reading cannot hold the writer's thread forever. Called
/// from within the runtime, whose timer measures `stall`; elsewhere the
/// writer waits without a bound.
pub fn channel(chunk: usize, depth: usize, stall: Duration) -> (BodyWriter, StreamedBody) {
    let (sender, receiver) = mpsc::channel(depth.max(1));
    (
        BodyWriter {
            buf: Vec::with_capacity(chunk),
            chunk: chunk.max(1),
            pieces: sender,
            runtime: Handle::try_current().ok(),
            stall,
        },
        StreamedBody {
            pieces: receiver,
            ended: false,
        },
    )
}

impl BodyWriter {
    fn send(&mut self, piece: Piece) -> io::Result<()> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the client went away");
        let Some(runtime) = &self.runtime else {
            return self.pieces.blocking_send(piece).map_err(|_| gone());
        };
        // Not an async context (a blocking thread, or a thread of the
        // daemon's own): waiting on the runtime's timer here is allowed.
        // The timer is made inside `block_on`, where the runtime is
        // entered: a thread of the daemon's own is outside it.
        let (stall, pieces) = (self.stall, &self.pieces);
        match runtime.block_on(async { tokio::time::timeout(stall, pieces.send(piece)).await }) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {:?}", self.stall),
            )),
        }
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        self.send(Piece::Data(Bytes::from(full)))
    }

    /// Sends what is buffered and ends the body normally.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_buffered()?;
        self.send(Piece::End)
    }
}

impl io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.chunk - self.buf.len();
        let taken = data.len().min(room);
        self.buf.extend_from_slice(&data[..taken]);
        if self.buf.len() >= self.chunk {
            self.send_buffered()?;
        }
        Ok(taken)
    }

    /// Pieces go out when full or at [`BodyWriter::finish`]: a flush
    /// (gzip's, say) does not make small ones.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.pieces.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::Data(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Piece::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the page's writer stopped before the end",
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
