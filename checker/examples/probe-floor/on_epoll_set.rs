//! `FLOOR_TOKIO=set`: the floor's `http` checks on a current-thread tokio
//! runtime without a task, a tokio socket or a timer a check. One task
//! drives them all through an epoll set of its own, which alone is
//! registered with the runtime: a check's socket is added to the set once
//! and leaves it as it closes, and the task sleeps until the set is ready,
//! the earliest deadline or the next group. Beside `FLOOR_TOKIO=1` and the
//! poll loop, it tells what a prober that keeps its sockets out of the
//! runtime would save (see main.rs). `FLOOR_TOKIO=set-reuse` keeps each
//! real server's socket in the set between its checks, tagged with the
//! server: disconnected as a check ends and connected again for the next
//! (as `FLOOR_TOKIO=reuse`), so a check adds nothing to the set.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ipvs_checker::prober::tcp::{epoll_set, take_events};

use super::{begin, connect_from, end, step, Check, Counts, Kind, Pending, Schedule, TIMEOUT};

/// Events taken from the set at a time.
pub(crate) const EVENTS: usize = 256;

/// The `http` checks of `kind` on one task and an epoll set of its own,
/// on the poll loop's schedule.
pub(crate) fn run(
    kind: &Kind,
    servers: &[SocketAddr],
    interval: Duration,
    reuse: bool,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(drive(kind, servers, interval, reuse))
}

async fn drive(
    kind: &Kind,
    servers: &[SocketAddr],
    interval: Duration,
    reuse: bool,
) -> anyhow::Result<()> {
    let set = epoll_set()?;
    let schedule = Schedule::new(servers.len(), interval);
    let mut busy = vec![false; servers.len()];
    // With `reuse`, each server's socket between its checks, and its
    // checks at its own slot (the tag its socket has in the set).
    let mut kept: Vec<Option<TcpStream>> = servers.iter().map(|_| None).collect();
    let mut checks: Slots<Check> = if reuse {
        Slots::fixed()
    } else {
        Slots::default()
    };
    let finish = |check: Check, kept: &mut Vec<Option<TcpStream>>, busy: &mut Vec<bool>| {
        let server = check.server;
        match check.how {
            Pending::Http(stream, _) if reuse => {
                if ipvs_checker::prober::tcp::disconnect(&stream).is_ok() {
                    kept[server] = Some(stream);
                }
                busy[server] = false;
            }
            how => end(how, &mut busy[server]),
        }
    };
    let mut counts = Counts::default();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let start = Instant::now();
    let mut turn: u64 = 0;
    let mut next_report = start + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        let (due, late) = schedule.due(start, now, &mut turn);
        counts.late_groups += late;
        for (t, server) in due.flat_map(|t| schedule.members(t).map(move |s| (t, s))) {
            if std::mem::replace(&mut busy[server], true) {
                continue;
            }
            let again = kept[server].take();
            let in_set = again.is_some();
            let begun = match again {
                Some(socket) => connect_from(socket.into(), servers[server])
                    .map(|stream| Pending::Http(stream, None)),
                None => begin(kind, server, servers[server], t),
            };
            let Ok(how) = begun else {
                busy[server] = false;
                counts.ended(false);
                continue;
            };
            let fd = raw_fd(&how);
            let check = Check {
                server,
                deadline: Instant::now() + TIMEOUT,
                how,
            };
            let slot = if reuse {
                checks.put_at(server, check);
                server
            } else {
                checks.put(check)
            };
            if !in_set && add(set.get_ref(), fd, slot).is_err() {
                if let Some(check) = checks.take(slot) {
                    finish(check, &mut kept, &mut busy);
                }
                counts.ended(false);
            }
        }
        if now >= next_report {
            counts.report();
            next_report += Duration::from_secs(10);
        }
        let wake = checks
            .iter()
            .map(|c| c.deadline)
            .fold(start + schedule.at(turn), Instant::min);
        tokio::select! {
            biased;
            n = take_events(&set, &mut events) => {
                checks.step_ready(kind, &events[..n?], |c| c, |check, passed| {
                    finish(check, &mut kept, &mut busy);
                    counts.ended(passed);
                });
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        checks.take_expired(
            Instant::now(),
            |c| c.deadline,
            |check| {
                counts.timeouts += 1;
                finish(check, &mut kept, &mut busy);
                counts.ended(false);
            },
        );
    }
}

/// What is under way through a set, each at a slot: its socket's tag in
/// the set. A check's socket leaves the set as it closes, when the check
/// is taken out and dropped.
pub(crate) struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
    /// Each item put at the slot it names ([`Slots::put_at`]): no slot
    /// is taken from the free ones.
    fixed: bool,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
            fixed: false,
        }
    }
}

impl<T> Slots<T> {
    /// Slots whose items are each put at a slot of their own.
    pub(crate) fn fixed() -> Self {
        Slots {
            fixed: true,
            ..Slots::default()
        }
    }

    /// Takes in `item` at `slot` (of [`Slots::fixed`] slots).
    pub(crate) fn put_at(&mut self, slot: usize, item: T) {
        if self.items.len() <= slot {
            self.items.resize_with(slot + 1, || None);
        }
        self.items[slot] = Some(item);
    }

    /// Takes in `item`: its slot.
    pub(crate) fn put(&mut self, item: T) -> usize {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.items.push(None);
            self.items.len() - 1
        });
        self.items[slot] = Some(item);
        slot
    }

    /// Takes the item at `slot` out, the slot free.
    pub(crate) fn take(&mut self, slot: usize) -> Option<T> {
        let item = self.items.get_mut(slot).and_then(Option::take)?;
        if !self.fixed {
            self.free.push(slot);
        }
        Some(item)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().flatten()
    }

    /// Steps the check (`check` of its item) of each slot that `events`
    /// name, once an event (edge-triggered: a write on the connect's
    /// edge, a read on the answer's); each that ended is taken out and
    /// given to `ended` with whether it passed.
    pub(crate) fn step_ready(
        &mut self,
        kind: &Kind,
        events: &[libc::epoll_event],
        check: impl Fn(&mut T) -> &mut Check,
        mut ended: impl FnMut(T, bool),
    ) {
        for event in events {
            let slot = event.u64 as usize;
            let Some(item) = self.items.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if let Some(passed) = step(kind, check(item)) {
                if let Some(item) = self.take(slot) {
                    ended(item, passed);
                }
            }
        }
    }

    /// Takes out each item whose `deadline` is past at `now`, and gives
    /// it to `expired`.
    pub(crate) fn take_expired(
        &mut self,
        now: Instant,
        deadline: impl Fn(&T) -> Instant,
        mut expired: impl FnMut(T),
    ) {
        for slot in 0..self.items.len() {
            if self.items[slot]
                .as_ref()
                .is_some_and(|i| now >= deadline(i))
            {
                if let Some(item) = self.take(slot) {
                    expired(item);
                }
            }
        }
    }
}

/// The socket of an `http` check (the only kind run here).
pub(crate) fn raw_fd(how: &Pending) -> i32 {
    match how {
        Pending::Http(stream, _) => stream.as_raw_fd(),
        _ => -1,
    }
}

/// Adds `fd` to the epoll set `set`, edge-triggered for both directions,
/// tagged `slot`.
pub(crate) fn add(set: &OwnedFd, fd: i32, slot: usize) -> std::io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: slot as u64,
    };
    // SAFETY: event is a live struct; both descriptors are open.
    if unsafe { libc::epoll_ctl(set.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
