//! `FLOOR_TOKIO=tasks`: the floor's `http` checks through an epoll set of
//! their own as with `FLOOR_TOKIO=set` (on_epoll_set.rs), but each real
//! server has a task of its own, as ipvs-checker's real servers have, that
//! wakes at its tick, hands its check to the set's task and is woken once
//! more with the check's result. Beside `set` it tells what a prober
//! built so would keep of the set's saving (see main.rs).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use super::on_epoll_set::{add, epoll_set, raw_fd, ready, EVENTS};
use super::{begin, step, Check, Counts, Kind, Schedule, TIMEOUT};

/// The checks under way, each at its slot (its sockets' tag in the set)
/// with where its result goes.
#[derive(Default)]
struct Under {
    checks: Vec<Option<(Check, oneshot::Sender<bool>)>>,
    free: Vec<usize>,
}

impl Under {
    /// Takes in `check`: its slot.
    fn put(&mut self, check: Check, result: oneshot::Sender<bool>) -> usize {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.checks.push(None);
            self.checks.len() - 1
        });
        self.checks[slot] = Some((check, result));
        slot
    }

    /// The check at `slot` ended: its socket closed (and so out of the
    /// set), its task told.
    fn finish(&mut self, slot: usize, passed: bool) {
        if let Some((_, result)) = self.checks.get_mut(slot).and_then(Option::take) {
            self.free.push(slot);
            let _ = result.send(passed);
        }
    }
}

/// The `http` checks of `kind`, a task a real server on the poll loop's
/// schedule, their sockets in one epoll set driven by one task.
pub(crate) fn run(kind: Kind, servers: Vec<SocketAddr>, interval: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio::task::LocalSet::new().block_on(&runtime, drive(kind, servers, interval))
}

async fn drive(kind: Kind, servers: Vec<SocketAddr>, interval: Duration) -> anyhow::Result<()> {
    let set = Rc::new(epoll_set()?);
    let kind = Rc::new(kind);
    let under = Rc::new(RefCell::new(Under::default()));
    let more = Rc::new(Notify::new());
    let counts = Rc::new(RefCell::new(Counts::default()));
    let schedule = Schedule::new(servers.len(), interval);
    let start = tokio::time::Instant::now();
    for (server, &addr) in servers.iter().enumerate() {
        let first = start + schedule.at(schedule.turn_of(server));
        let (set, kind, under, more, counts) = (
            set.clone(),
            kind.clone(),
            under.clone(),
            more.clone(),
            counts.clone(),
        );
        tokio::task::spawn_local(async move {
            let mut ticks = tokio::time::interval_at(first, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for turn in 0u64.. {
                ticks.tick().await;
                let mut passed = false;
                if let Ok(how) = begin(&kind, server, addr, turn) {
                    let (tx, rx) = oneshot::channel();
                    let fd = raw_fd(&how);
                    let check = Check {
                        server,
                        deadline: Instant::now() + TIMEOUT,
                        how,
                    };
                    let slot = under.borrow_mut().put(check, tx);
                    if add(set.get_ref(), fd, slot).is_ok() {
                        more.notify_one();
                        passed = rx.await.unwrap_or(false);
                    } else {
                        under.borrow_mut().finish(slot, false);
                    }
                }
                let mut counts = counts.borrow_mut();
                counts.made += 1;
                counts.failed += u64::from(!passed);
            }
        });
    }
    let reported = counts.clone();
    tokio::task::spawn_local(async move {
        let mut every =
            tokio::time::interval_at(start + Duration::from_secs(10), Duration::from_secs(10));
        loop {
            every.tick().await;
            reported.borrow().report();
        }
    });
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        let wake = under
            .borrow()
            .checks
            .iter()
            .flatten()
            .map(|(c, _)| c.deadline)
            .min();
        tokio::select! {
            biased;
            n = ready(&set, &mut events) => {
                for event in &events[..n?] {
                    let slot = event.u64 as usize;
                    let mut under = under.borrow_mut();
                    let ended = match under.checks.get_mut(slot) {
                        Some(Some((check, _))) => step(&kind, check),
                        _ => None,
                    };
                    if let Some(passed) = ended {
                        under.finish(slot, passed);
                    }
                }
            }
            () = more.notified() => {}
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {}
        }
        let now = Instant::now();
        let mut under = under.borrow_mut();
        for slot in 0..under.checks.len() {
            if under.checks[slot]
                .as_ref()
                .is_some_and(|(c, _)| now >= c.deadline)
            {
                counts.borrow_mut().timeouts += 1;
                under.finish(slot, false);
            }
        }
    }
}
