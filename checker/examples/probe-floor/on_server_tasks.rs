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

use ipvs_checker::prober::tcp::{epoll_set, take_events};

use super::on_epoll_set::{add, raw_fd, Slots, EVENTS};
use super::{begin, Check, Counts, Kind, Schedule, TIMEOUT};

/// A check under way, and where its result goes.
type Handed = (Check, oneshot::Sender<bool>);

/// Tells a check's task its result.
fn tell((_, result): Handed, passed: bool) {
    let _ = result.send(passed);
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
    let under: Rc<RefCell<Slots<Handed>>> = Rc::default();
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
                    let slot = under.borrow_mut().put((check, tx));
                    if add(set.get_ref(), fd, slot).is_ok() {
                        more.notify_one();
                        passed = rx.await.unwrap_or(false);
                    } else {
                        under.borrow_mut().take(slot);
                    }
                }
                counts.borrow_mut().ended(passed);
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
        let wake = under.borrow().iter().map(|(c, _)| c.deadline).min();
        tokio::select! {
            biased;
            n = take_events(&set, &mut events) => {
                under.borrow_mut().step_ready(&kind, &events[..n?], |(c, _)| c, tell);
            }
            () = more.notified() => {}
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {}
        }
        under.borrow_mut().take_expired(
            Instant::now(),
            |(c, _)| c.deadline,
            |handed| {
                counts.borrow_mut().timeouts += 1;
                tell(handed, false);
            },
        );
    }
}
