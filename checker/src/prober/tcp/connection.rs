//! A probe's TCP connection, read and written through its runtime's set
//! of probe sockets (see [`super::set`]).

use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::set::{Direction, Readiness, Registered, Sent};
use super::Idle;

/// A probe's TCP connection. As it drops, its connection is reset and its
/// socket kept for the prober's next probe (see [`super::idle`]).
#[derive(Debug)]
pub struct Connection {
    socket: ManuallyDrop<Registered>,
    idle: Arc<Idle>,
    /// The address its socket is bound to, if any.
    source: Option<IpAddr>,
    /// Whether its `connect` is under way (or done): only then does its
    /// socket go back to `idle`; one whose `connect` failed at once, or
    /// that was never asked to connect, is closed.
    under_way: bool,
}

impl Connection {
    /// `socket` (non-blocking, in its runtime's set), to be connected by
    /// [`Connection::connect`]; bound to `source`, if any, and kept in
    /// `idle` once it has been under way.
    pub(super) fn new(socket: Registered, idle: &Arc<Idle>, source: Option<IpAddr>) -> Self {
        Connection {
            socket: ManuallyDrop::new(socket),
            idle: idle.clone(),
            source,
            under_way: false,
        }
    }

    /// Connects to `peer`. How the handshake ended is in the readiness it
    /// ends with, with no `getsockopt(SO_ERROR)` on a connection made: one
    /// made is writable and nothing else; one that failed (refused, reset,
    /// unreachable) is also closed for writing (`EPOLLHUP`, or `EPOLLERR`
    /// with `EPOLLOUT`), and only then is the error asked for (one system
    /// call fewer a probe, lab/bench/README.md, "2026-12-06, morning").
    /// `first`, the bytes the checker says first, are sent as the
    /// connection is made, by the set's task (see
    /// [`Registered::send_when_connected`]): what of them went is
    /// returned, and the caller sends the rest.
    pub(super) async fn connect(
        &mut self,
        peer: SocketAddr,
        first: Option<&Arc<[u8]>>,
    ) -> io::Result<Option<Sent>> {
        self.socket.connecting();
        if let Some(bytes) = first {
            self.socket.send_when_connected(bytes);
        }
        match self.socket.socket().connect(&peer.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        self.under_way = true;
        let sent = match first {
            Some(_) => std::future::poll_fn(|cx| self.socket.poll_first_sent(cx)).await?,
            None => None,
        };
        if sent.is_none() {
            std::future::poll_fn(|cx| self.poll_connected(cx)).await?;
        }
        Ok(sent)
    }

    fn poll_connected(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let seen = ready!(self.socket.poll_ready(cx, Direction::Write))?;
            if !seen.is_closed() {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = self.socket.socket().take_error()? {
                return Poll::Ready(Err(e));
            }
            match self.state_now()? {
                // Its last connection's hang-up, taken in before it
                // connected again (a runtime with threads may take an
                // event between the readiness dropped and the connect).
                State::Connecting => self.socket.clear_all(seen),
                State::Connected => return Poll::Ready(Ok(())),
                State::Closed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the connection closed as it was made",
                    )))
                }
            }
        }
    }

    /// The socket's state as the kernel has it now (`poll` with no wait),
    /// asked only when a hang-up came with no error.
    fn state_now(&self) -> io::Result<State> {
        let mut fd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&*self.socket),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: fd is a live struct naming an open socket; no wait.
        if unsafe { libc::poll(&mut fd, 1, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(if fd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            State::Closed
        } else if fd.revents & libc::POLLOUT != 0 {
            State::Connected
        } else {
            State::Connecting
        })
    }

    /// Sends each small write at once (`TCP_NODELAY`).
    pub fn set_nodelay(&self) -> io::Result<()> {
        self.socket.socket().set_tcp_nodelay(true)
    }

    /// `op`, a read or write of up to `len` bytes, once the socket is
    /// ready for `direction`, again while it finds nothing to do. One that
    /// moved fewer bytes than asked found the socket drained (a read) or
    /// full (a write): its readiness is spent as a `WouldBlock` would
    /// spend it, and the next waits for the socket's next event instead
    /// of making a call to find that out (as tokio's own streams do). A
    /// closed side is not spent: the next read finds the end.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        len: usize,
        mut op: impl FnMut(&socket2::Socket) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let seen: Readiness = ready!(self.socket.poll_ready(cx, direction))?;
            match op(self.socket.socket()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket.clear(direction, seen);
                }
                Ok(n) if n > 0 && n < len => {
                    self.socket.clear(direction, seen);
                    return Poll::Ready(Ok(n));
                }
                done => return Poll::Ready(done),
            }
        }
    }
}

enum State {
    Connecting,
    Connected,
    Closed,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: taken once, in its drop; never used after.
        let socket = unsafe { ManuallyDrop::take(&mut self.socket) };
        if self.under_way {
            socket.forget_wakers();
            self.idle.keep(socket, self.source);
        }
    }
}

impl std::os::fd::AsRawFd for Connection {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: recv only writes into the bytes it says it read, which
        // are then marked filled; none is read before.
        let unfilled: &mut [MaybeUninit<u8>] = unsafe { buf.unfilled_mut() };
        let len = unfilled.len();
        let n = ready!(self.poll_io(cx, Direction::Read, len, |socket| socket.recv(unfilled)))?;
        // SAFETY: recv initialized the first `n` of the unfilled bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // No SIGPIPE for a connection the server reset: an error instead.
        self.poll_io(cx, Direction::Write, buf.len(), |socket| {
            socket.send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|buf| buf.len()).sum();
        self.poll_io(cx, Direction::Write, len, |socket| {
            socket.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.socket().shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use socket2::{Domain, Socket, Type};

    use super::*;

    fn registered() -> Registered {
        let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None).expect("socket");
        Registered::new(socket).expect("added to the set")
    }

    /// A listener whose queue of connections is full: a connection to it
    /// stays in its handshake (the kernel drops its SYN).
    fn full_listener() -> (Socket, Vec<Socket>) {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        listener.listen(0).expect("listen");
        let addr = listener.local_addr().expect("address");
        let fillers = (0..3)
            .map(|_| {
                let socket =
                    Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None).expect("socket");
                let _ = socket.connect(&addr);
                socket
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        (listener, fillers)
    }

    #[tokio::test]
    async fn a_hang_up_left_from_the_sockets_last_connection_is_not_this_ones_failure() {
        // Still in its handshake: it waits on, not failed.
        let (listener, _fillers) = full_listener();
        let socket = registered();
        socket.connecting();
        let _ = socket
            .socket()
            .connect(&listener.local_addr().expect("address"));
        let connection = Connection::new(socket, &Arc::default(), None);
        assert!(matches!(connection.state_now(), Ok(State::Connecting)));
        connection.socket.event(libc::EPOLLHUP as u32);
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            std::future::poll_fn(|cx| connection.poll_connected(cx)),
        )
        .await;
        assert!(waited.is_err(), "still connecting: {waited:?}");

        // Made: connected.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let socket = registered();
        socket.connecting();
        let _ = socket
            .socket()
            .connect(&listener.local_addr().expect("address").into());
        let connection = Connection::new(socket, &Arc::default(), None);
        tokio::time::sleep(Duration::from_millis(50)).await;
        connection.socket.event(libc::EPOLLHUP as u32);
        let made = std::future::poll_fn(|cx| connection.poll_connected(cx)).await;
        assert!(made.is_ok(), "{made:?}");
    }

    #[tokio::test]
    async fn a_short_read_spends_the_readiness_and_the_next_waits_for_an_event() {
        use std::io::Write;
        use tokio::io::AsyncReadExt;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut connection = Connection::new(registered(), &Arc::default(), None);
        let addr = listener.local_addr().expect("address");
        connection.connect(addr, None).await.expect("connected");
        let (mut server, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 64];
        let read = |n: io::Result<usize>, buf: &[u8]| buf[..n.expect("read")].to_vec();

        server.write_all(b"first").expect("write");
        let n = connection.read(&mut buf).await;
        assert_eq!(read(n, &buf), b"first");
        // Fewer bytes than asked: drained. More that came meanwhile are
        // read once the set takes in their event, not before.
        server.write_all(b"second").expect("write");
        let mut read_buf = ReadBuf::new(&mut buf);
        let polled = std::future::poll_fn(|cx| {
            Poll::Ready(Pin::new(&mut connection).poll_read(cx, &mut read_buf))
        })
        .await;
        assert!(polled.is_pending(), "{polled:?}");
        let n = connection.read(&mut buf).await;
        assert_eq!(read(n, &buf), b"second");
        // The end is found after a short read too.
        server.write_all(b"third").expect("write");
        drop(server);
        let n = connection.read(&mut buf).await;
        assert_eq!(read(n, &buf), b"third");
        let n = tokio::time::timeout(Duration::from_secs(5), connection.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0))), "{n:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_fails_with_its_error() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address")
        };
        let first: Arc<[u8]> = Arc::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        for first in [None, Some(&first)] {
            let mut connection = Connection::new(registered(), &Arc::default(), None);
            let e = connection
                .connect(addr, first)
                .await
                .expect_err("nothing listens");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        }
    }
}
