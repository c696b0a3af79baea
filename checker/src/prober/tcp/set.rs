//! The epoll set of a runtime's probe sockets.
//!
//! tokio adds a socket to its epoll set as it takes it and removes it as
//! it lets it go: two `epoll_ctl` calls, and a registration made and
//! freed, for each probe. Nor can a socket stay in tokio's set between
//! probes: disconnected (see [`super::idle`]), it shows a hang-up, which
//! tokio keeps as final. So a probe's socket is added once, as it is
//! made, to an epoll set of its runtime's own, and stays there while it
//! is kept between probes: a probe then connects, writes and reads with no
//! `epoll_ctl` at all. The set alone is registered with the runtime; a
//! task of the runtime takes its events and wakes the probes whose
//! sockets are ready (lab/bench/README.md has what it saves).
//!
//! The set is edge-triggered: an event says a socket became ready, and
//! its readiness is kept here until a read or a write finds it spent. An
//! event carries the socket's state when it is taken, not when it came,
//! so one that comes for a socket's last connection after the socket
//! connected again tells that connection's state; the readiness kept for
//! the last connection is dropped as it connects again
//! ([`Registered::connecting`]).
//!
//! A probe whose first bytes are its own (an HTTP request) leaves them
//! here as it connects ([`Registered::send_when_connected`]): the set's
//! task sends them as it takes the event that says the connection is
//! made, and the probe is woken once, by the answer, instead of once to
//! write and once to read (lab/bench/README.md, "2026-12-07, late
//! morning").

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};
use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::{Handle, Id};

/// Events taken from the set at a time.
const EVENTS: usize = 256;

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const RDHUP: u32 = libc::EPOLLRDHUP as u32;
const HUP: u32 = libc::EPOLLHUP as u32;
const ERR: u32 = libc::EPOLLERR as u32;

/// A way a socket is ready: what an event must say for it, and what a
/// read or write that finds nothing to do takes away.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Read,
    Write,
}

impl Direction {
    fn ready(self) -> u32 {
        match self {
            Direction::Read => IN | RDHUP | HUP | ERR,
            Direction::Write => OUT | HUP | ERR,
        }
    }

    fn spent(self) -> u32 {
        match self {
            Direction::Read => IN,
            Direction::Write => OUT,
        }
    }
}

/// A socket's readiness as an event left it: its epoll bits, and the
/// count of its events then (see [`Registered::clear`]).
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    bits: u32,
    tick: u32,
}

impl Readiness {
    /// Closed for writing: a hang-up or an error.
    pub fn is_closed(self) -> bool {
        self.bits & (HUP | ERR) != 0
    }
}

/// A probe's first bytes, sent by the set's task as the connection is
/// made: how many went, and when.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub len: usize,
    pub at: Instant,
}

/// First bytes waiting for their connection (see
/// [`Registered::send_when_connected`]).
#[derive(Debug)]
struct FirstBytes {
    /// The entry's socket: open while its entry has the generation it was
    /// left with.
    fd: RawFd,
    bytes: Arc<[u8]>,
    sent: Option<Sent>,
}

impl FirstBytes {
    /// Sends them, without waiting: how many went, if any did (none while
    /// the connection is not made, or if it failed).
    fn send(&self) -> Option<usize> {
        // SAFETY: fd is open (see the field); bytes is a live buffer of
        // its length. MSG_NOSIGNAL: a reset connection is an error, not
        // a SIGPIPE.
        let n = unsafe {
            libc::send(
                self.fd,
                self.bytes.as_ptr().cast(),
                self.bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).ok().filter(|&n| n > 0)
    }
}

/// An epoll set and what is known of its sockets.
#[derive(Debug)]
pub struct Set {
    epoll: AsyncFd<OwnedFd>,
    runtime: Id,
    entries: Mutex<Entries>,
    /// Whether its task still runs: not once its runtime shut down.
    driven: AtomicBool,
}

#[derive(Debug, Default)]
struct Entries {
    slots: Vec<Entry>,
    free: Vec<u32>,
}

/// A socket's place in the set.
#[derive(Debug, Default)]
struct Entry {
    /// Counts the sockets the slot has had; an event is tagged with it,
    /// so that a late one for a socket closed is not taken for the next.
    generation: u32,
    /// Counts its events.
    tick: u32,
    ready: u32,
    reader: Option<Waker>,
    writer: Option<Waker>,
    first: Option<FirstBytes>,
}

thread_local! {
    /// The sets made on this thread, each with its runtime.
    static SETS: std::cell::RefCell<Vec<Arc<Set>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Set {
    /// The set of the runtime this is called on, made (and its task
    /// started) if it has none yet on this thread.
    pub fn current() -> io::Result<Arc<Set>> {
        let runtime = Handle::current();
        let id = runtime.id();
        SETS.with_borrow_mut(|sets| {
            sets.retain(|set| set.driven.load(Ordering::Acquire));
            if let Some(set) = sets.iter().find(|set| set.runtime == id) {
                return Ok(set.clone());
            }
            let set = Arc::new(Set::new(id)?);
            runtime.spawn(drive(Driven(set.clone())));
            sets.push(set.clone());
            Ok(set)
        })
    }

    fn new(runtime: Id) -> io::Result<Set> {
        Ok(Set {
            epoll: epoll_set()?,
            runtime,
            entries: Mutex::default(),
            driven: AtomicBool::new(true),
        })
    }

    /// Whether it is the set of the runtime this is called on.
    pub fn is_current(&self) -> bool {
        Handle::try_current().is_ok_and(|runtime| runtime.id() == self.runtime)
            && self.driven.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock()
    }

    /// Takes in each of `events`, sends the first bytes of connections
    /// they say are made, and wakes the probes waiting for what they say
    /// (gathered into `wakers` first, woken out of the lock).
    fn dispatch(&self, events: &[libc::epoll_event], wakers: &mut Vec<Waker>) {
        {
            let mut entries = self.lock();
            let mut now = None;
            for event in events {
                let (generation, slot) = untag(event.u64);
                let Some(entry) = entries.slots.get_mut(slot as usize) else {
                    continue;
                };
                if entry.generation != generation {
                    continue;
                }
                let bits = event.events;
                entry.ready |= bits;
                entry.tick = entry.tick.wrapping_add(1);
                // Writable and not closed: the connection is made.
                if bits & (OUT | HUP | ERR) == OUT {
                    if let Some(first) = entry.first.as_mut().filter(|f| f.sent.is_none()) {
                        if let Some(len) = first.send() {
                            let at = *now.get_or_insert_with(Instant::now);
                            first.sent = Some(Sent { len, at });
                        }
                    }
                }
                if bits & Direction::Read.ready() != 0 {
                    wakers.extend(entry.reader.take());
                }
                // Its bytes sent whole, the probe waits for the answer
                // (or a hang-up), not for room to write.
                let answer_awaited = entry
                    .first
                    .as_ref()
                    .is_some_and(|f| f.sent.is_some_and(|sent| sent.len == f.bytes.len()));
                if bits & Direction::Write.ready() != 0 && !answer_awaited {
                    wakers.extend(entry.writer.take());
                }
            }
        }
        wakers.drain(..).for_each(Waker::wake);
    }

    /// Wakes every probe waiting: the set's task stopped, and each is to
    /// find out (see [`Registered::poll_ready`]).
    fn stop(&self) {
        self.driven.store(false, Ordering::Release);
        let wakers: Vec<Waker> = self
            .lock()
            .slots
            .iter_mut()
            .flat_map(|entry| [entry.reader.take(), entry.writer.take()])
            .flatten()
            .collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A set while its task runs: stopped as the task is dropped, which its
/// runtime does as it shuts down (polled or not yet).
struct Driven(Arc<Set>);

impl Drop for Driven {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A new epoll set, registered with the runtime this is called on: ready
/// to read when it has events.
pub fn epoll_set() -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: a plain system call; the descriptor it returns is ours.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: epoll_create1 returned a new descriptor, owned from here;
    // the `AsyncFd` owns it, open and the same, until it drops.
    unsafe {
        AsyncFd::register_with_interest(OwnedFd::from_raw_fd(fd), Interest::READABLE)
            .map_err(|e| e.into_parts().1)
    }
}

/// Waits until `set` has events and takes them into `events` (with no
/// wait of the kernel's): how many. The runtime is told the set is spent
/// only when it had fewer than `events` holds.
pub async fn take_events(
    set: &AsyncFd<OwnedFd>,
    events: &mut [libc::epoll_event],
) -> io::Result<usize> {
    let mut ready = set.readable().await?;
    let room = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: events is a live buffer of at least `room` entries.
    let n = unsafe { libc::epoll_wait(set.as_raw_fd(), events.as_mut_ptr(), room, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n < room {
        ready.clear_ready();
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The set's task: takes its events as they come, for as long as its
/// runtime runs.
async fn drive(driven: Driven) {
    let set = &driven.0;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut wakers = Vec::new();
    loop {
        match take_events(&set.epoll, &mut events).await {
            Ok(n) => set.dispatch(&events[..n], &mut wakers),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!("the probe sockets' epoll set: {e}");
                return;
            }
        }
    }
}

/// `cx`'s waker kept in `waiting`, unless the one there wakes the same
/// task already.
fn keep_waker(waiting: &mut Option<Waker>, cx: &Context<'_>) {
    match waiting {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *waiting = Some(cx.waker().clone()),
    }
}

/// A wait's error on a set whose runtime stopped.
fn stopped() -> io::Error {
    io::Error::other("the probe sockets' epoll set stopped with its runtime")
}

fn tag(generation: u32, slot: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(slot)
}

fn untag(data: u64) -> (u32, u32) {
    ((data >> 32) as u32, data as u32)
}

/// A socket in its runtime's set. As it drops, its place is given up and
/// it closes (which takes it out of the set).
#[derive(Debug)]
pub struct Registered {
    socket: Socket,
    set: Arc<Set>,
    slot: u32,
    generation: u32,
}

impl Registered {
    /// Adds `socket` to the set of the runtime this is called on.
    pub fn new(socket: Socket) -> io::Result<Registered> {
        let set = Set::current()?;
        let (slot, generation) = {
            let mut entries = set.lock();
            let slot = match entries.free.pop() {
                Some(slot) => slot,
                None => {
                    let slot = u32::try_from(entries.slots.len())
                        .map_err(|_| io::Error::other("the probe sockets' epoll set is full"))?;
                    entries.slots.push(Entry::default());
                    slot
                }
            };
            (slot, entries.slots[slot as usize].generation)
        };
        let registered = Registered {
            socket,
            set,
            slot,
            generation,
        };
        let mut event = libc::epoll_event {
            events: IN | OUT | RDHUP | libc::EPOLLET as u32,
            u64: tag(generation, slot),
        };
        // SAFETY: event is a live struct; both descriptors are open.
        let added = unsafe {
            libc::epoll_ctl(
                registered.set.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                registered.socket.as_raw_fd(),
                &mut event,
            )
        };
        if added < 0 {
            // Its errno kept: ENOSPC, the epoll watch limit reached, is the
            // checker's own want, not the server's failure
            // (`daemon::reports`'s `CheckerFault::Exhausted`).
            return Err(io::Error::last_os_error());
        }
        Ok(registered)
    }

    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Whether its set is the one of the runtime this is called on: a
    /// socket kept from a probe on another runtime is not (its events
    /// would wake no one once that runtime stopped).
    pub fn in_current_set(&self) -> bool {
        self.set.is_current()
    }

    /// Drops the readiness kept from its last connection: it is to
    /// connect again.
    pub fn connecting(&self) {
        self.with_entry(|entry| {
            entry.ready = 0;
            entry.tick = entry.tick.wrapping_add(1);
            entry.first = None;
        });
    }

    /// `bytes` to be sent by the set's task as it takes the event saying
    /// that the connection this socket is making is made (after
    /// [`Registered::connecting`], before the connect): see
    /// [`Registered::poll_first_sent`].
    pub fn send_when_connected(&self, bytes: &Arc<[u8]>) {
        let fd = self.socket.as_raw_fd();
        self.with_entry(|entry| {
            entry.first = Some(FirstBytes {
                fd,
                bytes: bytes.clone(),
                sent: None,
            });
        });
    }

    /// For a connection whose first bytes were left to the set
    /// ([`Registered::send_when_connected`]): what of them was sent, once
    /// the connection is made; `None` if it was made, or failed, without
    /// them sent, and the probe is to see to both as for any connection.
    /// Until then the probe waits for the answer as much as for the
    /// connection: once they are sent, only the answer (or a hang-up)
    /// wakes it.
    pub fn poll_first_sent(&self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Sent>>> {
        if !self.set.driven.load(Ordering::Acquire) {
            return Poll::Ready(Err(stopped()));
        }
        self.with_entry(|entry| {
            if let Some(sent) = entry.first.as_ref().and_then(|first| first.sent) {
                entry.first = None;
                return Poll::Ready(Ok(Some(sent)));
            }
            if entry.ready & Direction::Write.ready() != 0 {
                entry.first = None;
                return Poll::Ready(Ok(None));
            }
            keep_waker(&mut entry.reader, cx);
            keep_waker(&mut entry.writer, cx);
            Poll::Pending
        })
    }

    /// Ready for `direction` as an event said; or the waker of `cx` kept
    /// to be woken by the next event for it.
    pub fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<Readiness>> {
        if !self.set.driven.load(Ordering::Acquire) {
            return Poll::Ready(Err(stopped()));
        }
        self.with_entry(|entry| {
            if entry.ready & direction.ready() != 0 {
                return Poll::Ready(Ok(Readiness {
                    bits: entry.ready,
                    tick: entry.tick,
                }));
            }
            let waiting = match direction {
                Direction::Read => &mut entry.reader,
                Direction::Write => &mut entry.writer,
            };
            keep_waker(waiting, cx);
            Poll::Pending
        })
    }

    /// A read or a write found nothing to do at `seen`: it is not ready
    /// that way any more, unless an event came since.
    pub fn clear(&self, direction: Direction, seen: Readiness) {
        self.clear_bits(direction.spent(), seen);
    }

    /// A hang-up or error seen at `seen` was an event's for a connection
    /// before (see [`super::Connection`]'s connect): all of it is dropped,
    /// unless an event came since.
    pub fn clear_all(&self, seen: Readiness) {
        self.clear_bits(u32::MAX, seen);
    }

    fn clear_bits(&self, bits: u32, seen: Readiness) {
        self.with_entry(|entry| {
            if entry.tick == seen.tick {
                entry.ready &= !bits;
            }
        });
    }

    /// Lets go of the wakers kept, and of first bytes not sent: the
    /// probe waiting is over.
    pub fn forget_wakers(&self) {
        self.with_entry(|entry| {
            entry.reader = None;
            entry.writer = None;
            entry.first = None;
        });
    }

    /// Takes in an event saying `bits`, as the set's task would.
    #[cfg(test)]
    pub fn event(&self, bits: u32) {
        let event = libc::epoll_event {
            events: bits,
            u64: tag(self.generation, self.slot),
        };
        self.set.dispatch(&[event], &mut Vec::new());
    }

    fn with_entry<T>(&self, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut entries = self.set.lock();
        match entries.slots.get_mut(self.slot as usize) {
            Some(entry) if entry.generation == self.generation => f(entry),
            // Never: a slot stays this socket's until it drops.
            _ => f(&mut Entry::default()),
        }
    }
}

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut entries = self.set.lock();
        if let Some(entry) = entries.slots.get_mut(self.slot as usize) {
            if entry.generation == self.generation {
                *entry = Entry {
                    generation: entry.generation.wrapping_add(1),
                    ..Entry::default()
                };
                entries.free.push(self.slot);
            }
        }
        // The socket closes as the fields drop, which takes it out of the
        // set; an event of it still to come has the slot's old generation.
    }
}

#[cfg(test)]
mod tests;
