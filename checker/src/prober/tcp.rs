//! `tcp`: the real server accepts a connection.
//!
//! Every probe's connection ends with a reset (its socket disconnected and
//! kept for the next probe, see [`idle`]; or, not kept, closed with
//! `SO_LINGER` 0), as HAProxy closes its checks': the probe has read all
//! it wanted, and an orderly close would cost a FIN each way and leave a
//! TIME_WAIT socket, on the checker for a `tcp` check (one per probe for
//! a minute: tens of thousands at hundreds of real servers) or on the
//! real server for HTTP (which closes first after `Connection: close`),
//! and the close was a large part of an HTTP probe's CPU in a profile
//! (lab/bench/README.md).
//!
//! A probe through the VIP (`probe_through_vip`, see
//! [`crate::config::ProbeService`]) is made here too: its socket carries
//! the probe service's mark and is bound to the director's own address
//! toward the real server, which the real server's answer (from the VIP)
//! comes back to.

mod idle;

use std::io;
use std::mem::ManuallyDrop;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

pub use idle::{disconnect, Idle};

use super::{Phase, Phases, ProbeError, Success, Target, Watch};
use crate::config::Through;

/// Opens a TCP connection to the target and closes it.
pub async fn probe(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Success, ProbeError> {
    connect(target, watch, phases).await?;
    Ok(Success::default())
}

/// A TCP connection to the target from its source address, if set, timed
/// as the `connect` phase, its socket named to `watch`.
pub(super) async fn connect(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Connection, ProbeError> {
    open(target, watch, phases, false).await
}

/// [`connect`] for a connection whose first bytes are the checker's (an
/// HTTP request, a ClientHello, a DNS query): the handshake's last ACK is
/// not sent alone but with them (`TCP_QUICKACK` off before the connect).
/// That is one segment fewer each way, and the server, woken once by the
/// connection with its first bytes, is not woken first for the connection
/// alone (lab/bench/README.md has what it saves). Once connected the
/// kernel acknowledges at once again, so no answer waits for a delayed
/// ACK. (Not for a connection made ahead of a full handshake's turn: it
/// may wait, and the server sees it made at once.)
pub(super) async fn connect_to_send(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
) -> Result<Connection, ProbeError> {
    open(target, watch, phases, true).await
}

async fn open(
    target: &Target,
    watch: &Watch,
    phases: &mut Phases,
    ack_with_first_bytes: bool,
) -> Result<Connection, ProbeError> {
    let began = phases.begin(Phase::Connect);
    let source = match target.through {
        Some(through) => match target.source {
            Some(source) => Some(source),
            None => Some(source_toward(through, target.addr.ip()).map_err(ProbeError::Connect)?),
        },
        None => target.source,
    };
    let socket = match watch.idle().take(source) {
        Some(socket) => socket,
        None => new_socket(target, source).map_err(ProbeError::Connect)?,
    };
    if ack_with_first_bytes {
        // Only a saving: a kernel that refuses it sends the ACK alone.
        let _ = socket.set_tcp_quickack(false);
    }
    watch.connecting(&socket, target.addr, began);
    let connection = Connection::connect(socket, target.addr, watch.idle(), source)
        .await
        .map_err(ProbeError::Connect)?;
    phases.end();
    Ok(connection)
}

/// A socket for `target`'s probes, bound to `source` if set.
fn new_socket(target: &Target, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target.addr),
        Type::STREAM.nonblocking(),
        None,
    )?;
    // Not a blocking close: with a linger of 0, close() resets at once.
    socket.set_linger(Some(Duration::ZERO))?;
    if let Some(through) = target.through {
        socket.set_mark(through.mark).map_err(mark_error)?;
    }
    if let Some(source) = source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    Ok(socket)
}

/// A probe's TCP connection. As it drops, its connection is reset and its
/// socket kept for the prober's next probe (see [`idle`]).
#[derive(Debug)]
pub struct Connection {
    stream: ManuallyDrop<TcpStream>,
    idle: Arc<Idle>,
    /// The address its socket is bound to, if any.
    source: Option<IpAddr>,
}

impl Connection {
    /// Connects the non-blocking `socket` to `peer`, as tokio's
    /// `TcpSocket::connect` does but without its `getsockopt(SO_ERROR)`
    /// on a connection made: how the handshake ended is in the readiness
    /// it ends with. A connection made is writable and nothing else; one
    /// that failed (refused, reset, unreachable) is also closed for
    /// writing (`EPOLLHUP`, or `EPOLLERR` with `EPOLLOUT`), and only then
    /// is the error asked for. One system call fewer a probe
    /// (lab/bench/README.md, "2026-12-06, morning"). Once the `connect`
    /// is under way, the socket goes back to `idle` whether the connection
    /// is made or fails; one whose `connect` fails at once is closed.
    async fn connect(
        socket: Socket,
        peer: SocketAddr,
        idle: &Arc<Idle>,
        source: Option<IpAddr>,
    ) -> io::Result<Connection> {
        match socket.connect(&peer.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let connection = Connection {
            stream: ManuallyDrop::new(TcpStream::from_std(socket.into())?),
            idle: idle.clone(),
            source,
        };
        let ready = connection.ready(Interest::WRITABLE).await?;
        if ready.is_write_closed() {
            return Err(connection.take_error()?.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection closed as it was made",
                )
            }));
        }
        Ok(connection)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: taken once, in its drop; never used after.
        let stream = unsafe { ManuallyDrop::take(&mut self.stream) };
        self.idle.keep(stream, self.source);
    }
}

impl std::ops::Deref for Connection {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl std::os::fd::AsRawFd for Connection {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_shutdown(cx)
    }
}

/// `SO_MARK`'s error, saying what it needs.
fn mark_error(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::PermissionDenied {
        io::Error::new(
            e.kind(),
            format!("setting the probe service's mark (SO_MARK) needs CAP_NET_ADMIN: {e}"),
        )
    } else {
        io::Error::new(
            e.kind(),
            format!("setting the probe service's mark (SO_MARK): {e}"),
        )
    }
}

/// The address the director sends from toward the real server, as its
/// routes say (a UDP socket connected there: no packet is sent). Bound to
/// it, the probe's connection gets the real server's answer; left to
/// itself the kernel would send from the VIP, the route to a local
/// address's own source, and the answer would stay on the real server.
pub(super) fn source_toward(through: Through, vip: IpAddr) -> io::Result<IpAddr> {
    let any: IpAddr = match through.real_server {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = std::net::UdpSocket::bind((any, 0))?;
    // The port is not used: nothing is sent.
    socket.connect((through.real_server, 9))?;
    let source = socket.local_addr()?.ip();
    if source == vip {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "the route to real server {} has the VIP {vip} as its source: set source_address to the director's own address toward it",
                through.real_server
            ),
        ));
    }
    Ok(source)
}
