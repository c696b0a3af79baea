//! `tcp`: the real server accepts a connection.
//!
//! Every probe's connection is closed with a reset (`SO_LINGER` 0), as
//! HAProxy closes its checks': the probe has read all it wanted, and an
//! orderly close would cost a FIN each way and leave a TIME_WAIT socket,
//! on the checker for a `tcp` check (500 real servers checked every
//! second: 30,000 of them) or on the real server for HTTP (which closes
//! first after `Connection: close`). In the lab VM that close was 13 % of
//! an HTTP probe's CPU (`shutdown` in a profile of `examples/probe-cost.rs`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use super::{Phase, Phases, ProbeError, Success, Target};

/// Opens a TCP connection to the target and closes it.
pub async fn probe(target: &Target, phases: &mut Phases) -> Result<Success, ProbeError> {
    connect(target, phases).await?;
    Ok(Success::default())
}

/// A TCP connection to the target from its source address, if set, timed
/// as the `connect` phase.
pub(super) async fn connect(target: &Target, phases: &mut Phases) -> Result<TcpStream, ProbeError> {
    phases.begin(Phase::Connect);
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ProbeError::Connect)?;
    // Not a blocking close: with a linger of 0, close() resets at once.
    socket.set_zero_linger().map_err(ProbeError::Connect)?;
    if let Some(source) = target.source {
        socket
            .bind(std::net::SocketAddr::new(source, 0))
            .map_err(ProbeError::Connect)?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(ProbeError::Connect)?;
    phases.end();
    Ok(stream)
}

/// A stream whose `shutdown` does nothing, so that closing it is the
/// drop's reset (see the module's comment), not a FIN first, and over TLS
/// no `close_notify` either: the answer has been read in full.
#[derive(Debug)]
pub(super) struct NoShutdown<S>(pub S);

impl<S: AsyncRead + Unpin> AsyncRead for NoShutdown<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoShutdown<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
