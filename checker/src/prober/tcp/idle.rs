//! A prober's socket between its probes.
//!
//! Every probe makes a new connection, but not a new socket. When a
//! probe's connection ends, its socket is disconnected (a `connect` to
//! `AF_UNSPEC`: a connection made is reset, as the close with a linger of
//! 0 reset it, and the socket is left unconnected, its port given back)
//! and kept for the prober's next probe, which connects it again, from a
//! new port. On the wire nothing changes. On the director a probe no
//! longer makes and closes a socket and sets its options again (three
//! system calls of nine, for the one that disconnects), nor does the
//! kernel make and free a socket and its file (lab/bench/README.md,
//! "2026-12-06, late night"). The socket stays in its runtime's epoll set
//! meanwhile (see [`super::set`]), so that neither is it added and taken
//! out again.
//!
//! A kept socket holds a descriptor between probes, one a real server
//! and check: at most a quarter of the open-files limit are kept, the
//! rest closed as before, so that the probes in flight and the web
//! server always have theirs.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, MutexGuard};

use super::Registered;

/// Sockets kept now, by every prober.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// The most sockets kept at once: a quarter of the open-files limit.
fn most_kept() -> usize {
    static MOST: OnceLock<usize> = OnceLock::new();
    *MOST.get_or_init(|| {
        ipvs_common::open_files::open_files_limit().map_or(256, |limit| {
            usize::try_from(limit / 4).unwrap_or(usize::MAX)
        })
    })
}

/// The socket a prober keeps for its next probe, if any.
#[derive(Debug, Default)]
pub struct Idle(Mutex<Option<Kept>>);

#[derive(Debug)]
struct Kept {
    socket: Registered,
    /// The address it is bound to, if any.
    source: Option<IpAddr>,
}

impl Idle {
    /// The socket kept, if it is bound as a new one would be (to
    /// `source`, or not at all); one bound otherwise is closed.
    pub fn take(&self, source: Option<IpAddr>) -> Option<Registered> {
        let kept = self.lock().take()?;
        KEPT.fetch_sub(1, Ordering::Relaxed);
        (kept.source == source).then_some(kept.socket)
    }

    /// Ends `socket`'s connection and keeps it (bound to `source`) for the
    /// next probe; closes it instead when one is kept already, or the
    /// budget of kept sockets is spent.
    pub fn keep(&self, socket: Registered, source: Option<IpAddr>) {
        self.keep_within(socket, source, most_kept());
    }

    /// [`Idle::keep`] with at most `most` sockets kept by every prober.
    fn keep_within(&self, socket: Registered, source: Option<IpAddr>, most: usize) {
        let mut slot = self.lock();
        if slot.is_some() {
            return;
        }
        // Its room first: past the budget the socket is dropped (closed)
        // without a disconnect made for nothing.
        if KEPT.fetch_add(1, Ordering::Relaxed) >= most {
            KEPT.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        // It stays in its runtime's set of probe sockets (see
        // [`super::set`]), unconnected.
        match disconnect(&socket) {
            Ok(()) => *slot = Some(Kept { socket, source }),
            Err(_) => {
                KEPT.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// The descriptor of the socket kept, if any.
    #[cfg(test)]
    pub fn kept_fd(&self) -> Option<std::os::fd::RawFd> {
        self.lock().as_ref().map(|kept| kept.socket.as_raw_fd())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Kept>> {
        self.0.lock()
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        if self.lock().take().is_some() {
            KEPT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Ends `socket`'s connection, with a reset if it was made, and leaves it
/// unconnected, ready to connect again.
pub fn disconnect(socket: &impl AsRawFd) -> std::io::Result<()> {
    let unspecified = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    let len = std::mem::size_of::<libc::sockaddr>() as libc::socklen_t;
    // SAFETY: a plain system call on an open socket, with a live address
    // of the length given.
    if unsafe { libc::connect(socket.as_raw_fd(), &unspecified, len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket in the runtime's set, connected to a listener on
    /// 127.0.0.1.
    async fn connected() -> (Registered, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        let socket = Registered::new(stream.into()).expect("added to the set");
        (socket, listener)
    }

    #[tokio::test]
    async fn a_socket_is_kept_within_the_budget_and_closed_past_it() {
        let idle = Idle::default();
        let (socket, _listener) = connected().await;
        idle.keep_within(socket, None, 0);
        assert_eq!(idle.kept_fd(), None, "no room: closed");
        let (socket, _listener) = connected().await;
        idle.keep_within(socket, None, usize::MAX);
        assert!(idle.kept_fd().is_some(), "room: kept");
        // One kept already: another is closed, the first stays.
        let kept = idle.kept_fd();
        let (socket, _listener) = connected().await;
        idle.keep_within(socket, None, usize::MAX);
        assert_eq!(idle.kept_fd(), kept);
        // Bound elsewhere than the next probe's socket would be: closed.
        let source = Some("127.0.0.1".parse().expect("address"));
        assert!(idle.take(source).is_none());
        assert_eq!(idle.kept_fd(), None);
    }
}
