//! Whose a probe's timeout is, the server's or the checker's, told by the
//! probe's socket.
//!
//! A probe's timer and its socket's events are both noticed by its thread
//! only when the thread gets to them, late when the thread is short of
//! CPU. The kernel does not wait for the thread: it takes the server's
//! SYN-ACK and answers as they come, and keeps them for the thread to
//! read. So when a probe's timeout passes, its socket shows whether the
//! server had its whole timeout and did not answer, however late the
//! thread was:
//! - the connection is still not made (`SYN_SENT`) a timeout after its
//!   SYN went out: the server's;
//! - nothing the server sent waits unread, and the checker's last bytes
//!   went out a timeout ago or more (where the server speaks first, as a
//!   banner protocol does: the SYN went out that long ago; bytes the
//!   kernel sends again for want of an acknowledgement are not new
//!   ones): the server's;
//! - something the server sent waits unread, or the checker's own bytes
//!   went out late (its thread got to them late), or it has yet to send
//!   what it says first: not known yet. The probe goes on until the
//!   server has had a whole timeout from the checker's last bytes, at
//!   most one more timeout; a probe still going then is the checker's.
//!
//! A datagram is judged the same way from when it was sent.
//!
//! An `exec` check's program is judged by its processes' waits for a CPU
//! (see [`super::cpu_wait`]): it had its timeout when the time since it
//! was asked for, less what it (and the checker's thread starting it)
//! waited for a CPU, is nine tenths of the timeout or more (a tenth, the
//! heartbeat's measure of late, left for what is not measured). Until
//! then it goes on, at most one more timeout; a program still going then
//! is the checker's. So a program that sleeps on a silent server is the
//! server's timeout however busy the machine, and one starved of CPU
//! gets to finish, or is late, not failed. A program not started yet a
//! timeout after it was asked for is owed its time in the same way.
//!
//! A probe with nothing to show (`icmp`), or one the kernel would not
//! describe, is left to the heartbeat's rule (see `crate::daemon`).

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use super::tcp::Idle;

/// The part of its timeout a probe may be delayed by and still be on
/// time: more is late (the heartbeat's measure, `crate::daemon`'s), and a
/// program that had all but this part of its timeout had it.
pub const LATE_PART: u32 = 10;

/// Whose a timed-out probe's timeout was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server had its whole timeout and did not answer.
    Server,
    /// The server answered, or still had time, when the checker gave up:
    /// its thread was that far behind.
    Checker,
}

/// The socket of one prober's probe in progress, if it has one, or its
/// program.
#[derive(Debug)]
pub struct Watch {
    watched: Mutex<Option<Watched>>,
    /// Whether the server speaks first on a connection (a banner), so that
    /// its time runs from the SYN, not from the checker's last bytes.
    server_speaks_first: bool,
    /// The prober's socket between its probes, which its next probe's
    /// connection is made from.
    idle: Arc<Idle>,
}

#[derive(Debug, Clone, Copy)]
enum Watched {
    Socket(Socket),
    Program(Program),
}

#[derive(Debug, Clone, Copy)]
struct Socket {
    /// Valid while the probe's future holds the socket: a prober keeps
    /// the socket it last named here until it ends (see [`Watch::connecting`]).
    fd: RawFd,
    /// Where it goes: checked again before a connected socket is read, a
    /// guard against judging another socket by the same number.
    peer: SocketAddr,
    /// When its first packet went out (the SYN, or the datagram).
    sent: Instant,
    datagram: bool,
}

#[derive(Debug, Clone, Copy)]
struct Program {
    /// Its leader's process id, valid while the probe's future holds the
    /// child (unreaped, the number is not reused); `None` while it is
    /// being started.
    pid: Option<u32>,
    /// When the probe asked for it to be started.
    asked: Instant,
    /// What starting it waited for a CPU on the checker's side.
    start_waited: Duration,
}

/// What the socket shows at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// The server (or the program checking it) had its whole timeout.
    ServerSilent,
    /// Not known before this instant.
    Until(Instant),
    /// The socket says nothing.
    Nothing,
}

impl Watch {
    /// A watch for a prober whose server speaks first or not.
    pub fn new(server_speaks_first: bool) -> Self {
        Watch {
            watched: Mutex::new(None),
            server_speaks_first,
            idle: Arc::default(),
        }
    }

    /// The prober's socket between its probes (see [`super::tcp::Idle`]).
    pub(super) fn idle(&self) -> &Arc<Idle> {
        &self.idle
    }

    fn lock(&self) -> MutexGuard<'_, Option<Watched>> {
        self.watched.lock()
    }

    /// `socket`'s SYN to `peer` goes out at `sent` (or just after). The
    /// prober keeps the socket open until its probe ends, or names
    /// another one here first.
    pub(super) fn connecting(&self, socket: &impl AsRawFd, peer: SocketAddr, sent: Instant) {
        *self.lock() = Some(Watched::Socket(Socket {
            fd: socket.as_raw_fd(),
            peer,
            sent,
            datagram: false,
        }));
    }

    /// `socket`, connected to `peer`, sent its datagram at `sent` (or just
    /// after). As for [`Watch::connecting`], it stays open until the
    /// probe ends.
    pub(super) fn sent_datagram(&self, socket: &impl AsRawFd, peer: SocketAddr, sent: Instant) {
        *self.lock() = Some(Watched::Socket(Socket {
            fd: socket.as_raw_fd(),
            peer,
            sent,
            datagram: true,
        }));
    }

    /// A program is being started, asked for at `asked`: until it runs,
    /// its time is not running out (a start that takes a timeout is the
    /// checker's, or its machine's).
    pub(super) fn starting(&self, asked: Instant) {
        *self.lock() = Some(Watched::Program(Program {
            pid: None,
            asked,
            start_waited: Duration::ZERO,
        }));
    }

    /// The program `pid` runs, asked for at `asked`, its start having
    /// waited `start_waited` for a CPU on the checker's side. The prober
    /// holds it unreaped until its probe ends.
    pub(super) fn running(&self, pid: u32, asked: Instant, start_waited: Duration) {
        *self.lock() = Some(Watched::Program(Program {
            pid: Some(pid),
            asked,
            start_waited,
        }));
    }

    /// Runs `probe` for `budget`, then for as long as its socket shows the
    /// server may still answer in time, at most `timeout` more. `Err` when
    /// it did not end: whose the timeout was, if the socket could tell.
    /// (`probe` pinned by the caller: taken by value, a probe's future
    /// would be held twice in this one's, as the argument and pinned, and
    /// copied between them.)
    pub(super) async fn within<F: Future>(
        &self,
        mut probe: Pin<&mut F>,
        budget: Duration,
        timeout: Duration,
    ) -> Result<F::Output, Option<Side>> {
        let started = Instant::now();
        let last = started + budget + timeout;
        let mut deadline = started + budget;
        let ended = loop {
            tokio::select! {
                biased;
                output = &mut probe => break Ok(output),
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            let now = Instant::now();
            match self.seen(now, timeout) {
                Seen::ServerSilent => break Err(Some(Side::Server)),
                Seen::Until(until) if now < last => deadline = until.min(last),
                Seen::Until(_) => break Err(Some(Side::Checker)),
                Seen::Nothing => break Err(None),
            }
        };
        *self.lock() = None;
        ended
    }

    /// What the socket shows at `now` of a probe with `timeout`.
    fn seen(&self, now: Instant, timeout: Duration) -> Seen {
        match *self.lock() {
            Some(Watched::Socket(socket)) => self.socket_seen(socket, now, timeout),
            Some(Watched::Program(program)) => program.seen(now, timeout),
            None => Seen::Nothing,
        }
    }

    fn socket_seen(&self, watched: Socket, now: Instant, timeout: Duration) -> Seen {
        // SAFETY: the prober holds the socket open while its probe runs
        // (see `Watched::fd`), and this runs inside the probe, in `within`.
        let fd = unsafe { BorrowedFd::borrow_raw(watched.fd) };
        match socket2::SockRef::from(&fd).peer_addr() {
            Ok(peer) if peer.as_socket() == Some(watched.peer) => {}
            // A connection still being made has no peer yet.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
            _ => return Seen::Nothing,
        }
        let Some(unread) = unread(&fd) else {
            return Seen::Nothing;
        };
        let more = Seen::Until(now + timeout);
        let server_since = |since: Instant| {
            let until = since + timeout;
            if now >= until {
                Seen::ServerSilent
            } else {
                Seen::Until(until)
            }
        };
        if watched.datagram {
            return if unread > 0 {
                more
            } else {
                server_since(watched.sent)
            };
        }
        let Some(info) = TcpInfo::of(&fd) else {
            return Seen::Nothing;
        };
        match info.state {
            TCP_SYN_SENT => server_since(watched.sent),
            TCP_ESTABLISHED if unread > 0 => more,
            TCP_ESTABLISHED if info.data_segs_out > 0 => {
                server_since(now.checked_sub(info.since_unanswered()).unwrap_or(now))
            }
            TCP_ESTABLISHED if self.server_speaks_first => server_since(watched.sent),
            // The checker has yet to send what it says first.
            TCP_ESTABLISHED => more,
            // The server closed its side or reset the connection; the
            // thread has yet to read it.
            TCP_CLOSE_WAIT | TCP_CLOSE => more,
            _ => Seen::Nothing,
        }
    }
}

impl Program {
    /// What its processes' waits for a CPU show at `now`.
    fn seen(&self, now: Instant, timeout: Duration) -> Seen {
        let Some(pid) = self.pid else {
            return Seen::Until(now + timeout);
        };
        let Some(waited) = super::cpu_wait::of_program(pid) else {
            return Seen::Nothing;
        };
        let since = now.saturating_duration_since(self.asked);
        let seen = had_its_time(since, waited + self.start_waited, now, timeout);
        tracing::debug!(
            pid,
            since = ?since,
            waited = ?waited,
            start_waited = ?self.start_waited,
            seen = ?seen,
            "a program's timeout passed"
        );
        seen
    }
}

/// A program asked for `since` ago that waited `waited` of it for a CPU,
/// at `now`: whether it had its `timeout` (nine tenths of it, off the run
/// queue), or until when it is owed the rest.
fn had_its_time(since: Duration, waited: Duration, now: Instant, timeout: Duration) -> Seen {
    let had = since.saturating_sub(waited);
    if had >= timeout - timeout / LATE_PART {
        Seen::ServerSilent
    } else {
        Seen::Until(now + (timeout - had))
    }
}

const TCP_ESTABLISHED: u8 = 1;
const TCP_SYN_SENT: u8 = 2;
const TCP_CLOSE: u8 = 7;
const TCP_CLOSE_WAIT: u8 = 8;

/// The few fields of the kernel's `tcp_info` read here.
struct TcpInfo {
    state: u8,
    /// Since data last went out on it, sent or sent again (since it was
    /// made, if none).
    last_data_sent: Duration,
    /// Segments with data the checker sent.
    data_segs_out: u32,
    /// The retransmission timeout, doubled `backoff` times since the
    /// oldest unacknowledged bytes were first sent.
    rto: Duration,
    backoff: u8,
}

impl TcpInfo {
    /// Since the checker's bytes that the server has yet to answer went
    /// out: since data last went out, unless the kernel is sending the
    /// oldest again for want of an acknowledgement (a server host that
    /// takes nothing in); each retransmission waits the timeout of the
    /// time, doubled after each, so the first sending was at least
    /// rto x (1 - 2^-backoff) before the last.
    fn since_unanswered(&self) -> Duration {
        let resent = match self.backoff {
            0 => Duration::ZERO,
            b => self.rto.mul_f64(1.0 - 0.5f64.powi(b.into())),
        };
        self.last_data_sent + resent
    }

    /// `TCP_INFO` of `fd`; `None` where the kernel gives less than the
    /// fields read (before Linux 4.6) or fails.
    fn of(fd: &BorrowedFd<'_>) -> Option<TcpInfo> {
        let info = tcp_info(fd)?;
        Some(TcpInfo {
            state: info.tcpi_state,
            last_data_sent: Duration::from_millis(info.tcpi_last_data_sent.into()),
            data_segs_out: info.tcpi_data_segs_out,
            rto: Duration::from_micros(info.tcpi_rto.into()),
            backoff: info.tcpi_backoff,
        })
    }
}

/// The kernel's `tcp_info` of `fd`; `None` where it gives less than the
/// fields read here (before Linux 4.6) or fails.
fn tcp_info(fd: &BorrowedFd<'_>) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain data, zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are valid for writes of len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let needed =
        std::mem::offset_of!(libc::tcp_info, tcpi_data_segs_out) + std::mem::size_of::<u32>();
    (rc == 0 && (len as usize) >= needed).then_some(info)
}

/// How many segments with data `fd` has received (tests count a peer's
/// writes by it: on loopback, with Nagle off, a small write is a segment).
#[cfg(test)]
pub(crate) fn data_segments_received(fd: &BorrowedFd<'_>) -> Option<u32> {
    tcp_info(fd).map(|info| info.tcpi_data_segs_in)
}

/// How many segments `fd` has received, its handshake's among them.
#[cfg(test)]
pub(crate) fn segments_received(fd: &BorrowedFd<'_>) -> Option<u32> {
    tcp_info(fd).map(|info| info.tcpi_segs_in)
}

/// Bytes received on `fd` and not read yet (for a datagram socket, the
/// next datagram's size); `None` if the kernel does not say.
fn unread(fd: &BorrowedFd<'_>) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to n.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    (rc == 0).then(|| usize::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_sent_again_count_from_their_first_sending() {
        let info = |backoff, rto_ms| TcpInfo {
            state: TCP_ESTABLISHED,
            last_data_sent: Duration::from_millis(100),
            data_segs_out: 1,
            rto: Duration::from_millis(rto_ms),
            backoff,
        };
        assert_eq!(info(0, 200).since_unanswered(), Duration::from_millis(100));
        // Sent at 0, again at 200 ms and at 600 ms (the timeout doubled
        // to 400, then 800 ms), the last 100 ms ago.
        assert_eq!(info(2, 800).since_unanswered(), Duration::from_millis(700));
    }

    #[test]
    fn a_program_is_owed_the_time_it_waited_for_a_cpu() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        let ms = Duration::from_millis;
        // Asleep or running its whole timeout, or all but a tenth.
        assert_eq!(had_its_time(second, ms(0), now, second), Seen::ServerSilent);
        assert_eq!(
            had_its_time(second, ms(100), now, second),
            Seen::ServerSilent
        );
        // 700 ms waiting for a CPU: owed 700 ms more.
        assert_eq!(
            had_its_time(second, ms(700), now, second),
            Seen::Until(now + ms(700))
        );
        // Owed what it waited since, too; until it had its time.
        assert_eq!(
            had_its_time(ms(1700), ms(900), now, second),
            Seen::Until(now + ms(200))
        );
        assert_eq!(
            had_its_time(ms(1700), ms(700), now, second),
            Seen::ServerSilent
        );
    }
}
