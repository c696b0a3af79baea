//! `FLOOR_TOKIO=set`: the floor's `http` checks on a current-thread tokio
//! runtime without a task, a tokio socket or a timer a check. One task
//! drives them all through an epoll set of its own, which alone is
//! registered with the runtime: a check's socket is added to the set once
//! and leaves it as it closes, and the task sleeps until the set is ready,
//! the earliest deadline or the next group. Beside `FLOOR_TOKIO=1` and the
//! poll loop, it tells what a prober that keeps its sockets out of the
//! runtime would save (see main.rs).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{begin, end, step, Check, Counts, Kind, Pending, Schedule, TIMEOUT};

/// Events taken from the set at a time.
pub(crate) const EVENTS: usize = 256;

/// The `http` checks of `kind` on one task and an epoll set of its own,
/// on the poll loop's schedule.
pub(crate) fn run(kind: &Kind, servers: &[SocketAddr], interval: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(drive(kind, servers, interval))
}

async fn drive(kind: &Kind, servers: &[SocketAddr], interval: Duration) -> anyhow::Result<()> {
    let set = epoll_set()?;
    let schedule = Schedule::new(servers.len(), interval);
    let mut busy = vec![false; servers.len()];
    // Each check under way at its slot; the slot is its sockets' tag in
    // the set.
    let mut checks: Vec<Option<Check>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut counts = Counts::default();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let start = Instant::now();
    let mut turn: u64 = 0;
    let mut next_report = start + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        while start + schedule.at(turn) <= now {
            if schedule.late(now - (start + schedule.at(turn))) {
                counts.late_groups += 1;
            }
            for server in schedule.members(turn) {
                if std::mem::replace(&mut busy[server], true) {
                    continue;
                }
                let Ok(how) = begin(kind, server, servers[server], turn) else {
                    counts.made += 1;
                    counts.failed += 1;
                    busy[server] = false;
                    continue;
                };
                let slot = free.pop().unwrap_or_else(|| {
                    checks.push(None);
                    checks.len() - 1
                });
                let fd = raw_fd(&how);
                checks[slot] = Some(Check {
                    server,
                    deadline: Instant::now() + TIMEOUT,
                    how,
                });
                if add(set.get_ref(), fd, slot).is_err() {
                    finish(&mut checks, &mut free, slot, &mut busy, &mut counts, false);
                }
            }
            turn += 1;
        }
        if now >= next_report {
            counts.report();
            next_report += Duration::from_secs(10);
        }
        let wake = checks
            .iter()
            .flatten()
            .map(|c| c.deadline)
            .fold(start + schedule.at(turn), Instant::min);
        tokio::select! {
            biased;
            n = ready(&set, &mut events) => {
                for event in &events[..n?] {
                    let slot = event.u64 as usize;
                    let Some(check) = checks.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    // Edge-triggered: a step for each edge, a write on
                    // the connect's, a read on the answer's.
                    if let Some(passed) = step(kind, check) {
                        finish(&mut checks, &mut free, slot, &mut busy, &mut counts, passed);
                    }
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        for slot in 0..checks.len() {
            if checks[slot].as_ref().is_some_and(|c| now >= c.deadline) {
                counts.timeouts += 1;
                finish(&mut checks, &mut free, slot, &mut busy, &mut counts, false);
            }
        }
    }
}

/// The check at `slot` ended: counted, its socket closed (and so out of
/// the set), its slot free.
fn finish(
    checks: &mut [Option<Check>],
    free: &mut Vec<usize>,
    slot: usize,
    busy: &mut [bool],
    counts: &mut Counts,
    passed: bool,
) {
    if let Some(check) = checks[slot].take() {
        end(check.how, &mut busy[check.server]);
        free.push(slot);
        counts.made += 1;
        counts.failed += u64::from(!passed);
    }
}

/// A new epoll set, registered with the runtime.
pub(crate) fn epoll_set() -> anyhow::Result<AsyncFd<OwnedFd>> {
    // SAFETY: a plain system call; the descriptor it returns is ours.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        anyhow::bail!("epoll_create1: {}", std::io::Error::last_os_error());
    }
    // SAFETY: epoll_create1 returned a new descriptor, owned here; the
    // `AsyncFd` owns it, open and the same, until it drops.
    Ok(unsafe {
        AsyncFd::register_with_interest(OwnedFd::from_raw_fd(fd), Interest::READABLE)
            .map_err(|e| e.into_parts().1)?
    })
}

/// Waits until `set` has events and takes them into `events`: how many.
pub(crate) async fn ready(
    set: &AsyncFd<OwnedFd>,
    events: &mut [libc::epoll_event],
) -> std::io::Result<usize> {
    let mut ready = set.readable().await?;
    let room = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: events is a live buffer of at least `room` entries.
    let n = unsafe { libc::epoll_wait(set.get_ref().as_raw_fd(), events.as_mut_ptr(), room, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if n < room {
        ready.clear_ready();
    }
    Ok(usize::try_from(n).unwrap_or(0))
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
