//! The TCP stream under a TLS probe, whose client writes wait for the
//! stream's next read while the handshake goes on, so that the client's
//! last flight can leave in one segment with what follows it.
//!
//! In TLS 1.3, and when a TLS 1.2 session is resumed, the server's
//! Finished comes first and the client's Finished ends the handshake.
//! Written at once, as tokio-rustls writes it, that flight goes alone,
//! and the request follows in a write, a segment and a server wake-up of
//! its own. Held, it goes with the request: one write for the checker,
//! one read for the server. A flight the handshake still waits an answer
//! to is sent at its next read, as before, so the handshake costs no more
//! system calls.
//!
//! Only for a client whose every write is followed by a read (the
//! handshake, then an HTTP request or a conversation): a write is sent at
//! the latest before the next read or at a shutdown.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When held bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Handshaking: writes are held, and sent before the next read.
    Handshake,
    /// The handshake is over and the client speaks first: what is held
    /// goes with the next write, and a read meanwhile does not send it.
    ForNextWrite,
    /// Writes go at once (with what is still held ahead of them).
    No,
}

/// A stream whose writes are held during a TLS handshake (see the
/// module's documentation).
#[derive(Debug)]
pub struct HeldWrites<S> {
    inner: S,
    held: Vec<u8>,
    hold: Hold,
}

impl<S> HeldWrites<S> {
    /// `inner`, its handshake about to start.
    pub fn new(inner: S) -> Self {
        HeldWrites {
            inner,
            held: Vec::new(),
            hold: Hold::Handshake,
        }
    }

    /// The stream under it.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Holds `bytes` of the handshake, written past the holding's
    /// writes: the rest of a first flight the set did not send whole
    /// (see `super::https`).
    pub fn hold(&mut self, bytes: &[u8]) {
        self.held.extend_from_slice(bytes);
    }

    /// The handshake is over. If `client_speaks_first` (HTTP), the
    /// handshake's last flight, if one is held, goes with the client's
    /// first write: the server waits for both. Otherwise (a protocol whose
    /// server may speak first) it goes with the next write or before the
    /// next read, whichever comes first.
    pub fn handshake_done(&mut self, client_speaks_first: bool) {
        self.hold = if client_speaks_first && !self.held.is_empty() {
            Hold::ForNextWrite
        } else {
            Hold::No
        };
    }
}

impl<S: AsyncWrite + Unpin> HeldWrites<S> {
    /// Sends what is held.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is held and then `bufs`, in one system call where the
    /// socket takes it all; how many of `bufs`' bytes went.
    fn poll_write_after_held(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.hold == Hold::Handshake {
            let before = self.held.len();
            for buf in bufs {
                self.held.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(self.held.len() - before));
        }
        self.hold = Hold::No;
        while !self.held.is_empty() {
            let mut slices = Vec::with_capacity(bufs.len() + 1);
            slices.push(IoSlice::new(&self.held));
            slices.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n > self.held.len() {
                let sent = n - self.held.len();
                self.held.clear();
                return Poll::Ready(Ok(sent));
            }
            self.held.drain(..n);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeldWrites<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Waiting for the client's first write, a read sends nothing: the
        // server answers only once both have come.
        if this.hold != Hold::ForNextWrite {
            ready!(this.poll_send_held(cx))?;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeldWrites<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_after_held(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_after_held(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A flush while holding is what the holding is for: tokio-rustls
        // flushes each flight as it writes it.
        if this.hold == Hold::No {
            ready!(this.poll_send_held(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A stream that takes at most `most` bytes a write and keeps what
    /// each write and read was, in order; its reads find the stream's end.
    #[derive(Clone)]
    struct Wire {
        log: Arc<Mutex<Vec<String>>>,
        most: usize,
    }

    impl Wire {
        fn new(most: usize) -> Self {
            Wire {
                log: Arc::default(),
                most,
            }
        }

        fn log(&self) -> Vec<String> {
            self.log.lock().expect("lock").drain(..).collect()
        }
    }

    impl AsyncRead for Wire {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.log.lock().expect("lock").push("read".into());
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Wire {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let took = &all[..all.len().min(self.most)];
            let entry = format!("write {}", String::from_utf8_lossy(took));
            self.log.lock().expect("lock").push(entry);
            Poll::Ready(Ok(took.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.log.lock().expect("lock").push("shutdown".into());
            Poll::Ready(Ok(()))
        }
    }

    /// A stream over `wire` whose handshake wrote `flights` and then
    /// ended with `fin` written.
    async fn after_handshake(wire: &Wire, flights: &[&str]) -> HeldWrites<Wire> {
        let mut stream = HeldWrites::new(wire.clone());
        let mut byte = [0u8; 1];
        for flight in flights {
            stream.write_all(flight.as_bytes()).await.expect("write");
            stream.flush().await.expect("flush");
            let _ = stream.read(&mut byte).await;
        }
        stream.write_all(b"fin").await.expect("write");
        stream.flush().await.expect("flush");
        stream
    }

    #[tokio::test]
    async fn a_handshake_flight_goes_before_the_next_read_and_the_last_with_the_request() {
        let wire = Wire::new(usize::MAX);
        let mut byte = [0u8; 1];
        // Each flight goes before the read that waits for its answer, in
        // one write; the last waits.
        let mut stream = after_handshake(&wire, &["hel", "lo"]).await;
        assert_eq!(wire.log(), ["write hel", "read", "write lo", "read"]);

        // HTTP: the request's first write takes it, whatever was read
        // meanwhile; later writes go at once.
        stream.handshake_done(true);
        let _ = stream.read(&mut byte).await;
        stream.write_all(b"GET").await.expect("write");
        stream.flush().await.expect("flush");
        stream.write_all(b"more").await.expect("write");
        assert_eq!(wire.log(), ["read", "write finGET", "write more"]);
    }

    #[tokio::test]
    async fn where_the_server_may_speak_first_the_last_flight_goes_before_a_read() {
        let wire = Wire::new(usize::MAX);
        let mut byte = [0u8; 1];
        let mut stream = after_handshake(&wire, &[]).await;
        stream.handshake_done(false);
        let _ = stream.read(&mut byte).await;
        assert_eq!(wire.log(), ["write fin", "read"]);

        // Or with the first write, if that comes first; or at a flush.
        let mut stream = after_handshake(&wire, &[]).await;
        stream.handshake_done(false);
        stream.write_all(b"EHLO").await.expect("write");
        assert_eq!(wire.log(), ["write finEHLO"]);
        let mut stream = after_handshake(&wire, &[]).await;
        stream.handshake_done(false);
        stream.flush().await.expect("flush");
        assert_eq!(wire.log(), ["write fin"]);
    }

    #[tokio::test]
    async fn held_bytes_go_in_order_through_short_writes_and_at_a_shutdown() {
        let wire = Wire::new(2);
        let mut stream = after_handshake(&wire, &[]).await;
        stream.handshake_done(true);
        stream.write_all(b"GET").await.expect("write");
        assert_eq!(
            wire.log(),
            ["write fi", "write nG", "write ET"],
            "each write as much as the socket took, in order"
        );

        let mut stream = after_handshake(&wire, &[]).await;
        stream.handshake_done(true);
        stream.shutdown().await.expect("shutdown");
        assert_eq!(wire.log(), ["write fi", "write n", "shutdown"]);

        // With nothing held, a client speaking first writes at once.
        let mut stream = HeldWrites::new(wire.clone());
        stream.handshake_done(true);
        stream.write_all(b"GE").await.expect("write");
        assert_eq!(wire.log(), ["write GE"]);
    }
}
