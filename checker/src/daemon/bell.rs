//! A probe task's bell: how the loop (new settings) and its service's
//! hurries (see [`super::hurries`]) wake the task.
//!
//! A probe task waits for its tick, its settings and its service's
//! failure hurries together, before every probe and during it. A wait on
//! a `watch` channel's `changed()` joins the channel's list of waiters
//! under its lock and leaves it when the wait ends, for each channel and
//! each probe, though settings and hurries seldom change: a share of a
//! probe's instructions near its HTTP answer's header parsing
//! (lab/bench/README.md, "2026-12-07, morning"). A task's waker is kept
//! in its bell instead, registered again only when the task's waker
//! changes; whoever changes what the task follows rings the bell, and
//! the task sees what changed on its channels (`has_changed`).

use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::watch;

/// One probe task's bell.
#[derive(Debug, Default)]
pub(super) struct Bell {
    waker: AtomicWaker,
}

impl Bell {
    /// Wakes the task, if it waits at [`Bell::until`].
    pub fn ring(&self) {
        self.waker.wake();
    }

    /// Waits until `ready` gives a value, asked at every wake-up of the
    /// task while waiting. Whatever makes it give one rings the bell
    /// after.
    pub async fn until<T>(&self, mut ready: impl FnMut() -> Option<T>) -> T {
        std::future::poll_fn(|cx| {
            if let Some(value) = ready() {
                return Poll::Ready(value);
            }
            self.waker.register(cx.waker());
            // A ring between the first look and the registration woke no
            // one: look again.
            match ready() {
                Some(value) => Poll::Ready(value),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Waits until `channel` holds a value the task has not seen (then
    /// marked seen): `true`; or until its sender is gone: `false`.
    pub async fn until_changed<T>(&self, channel: &mut watch::Receiver<T>) -> bool {
        self.until(|| match channel.has_changed() {
            Ok(false) => None,
            Ok(true) => {
                channel.mark_unchanged();
                Some(true)
            }
            Err(_) => Some(false),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_ring_from_another_thread_wakes_the_waiting_task_and_it_sees_the_change() {
        let bell = Arc::new(Bell::default());
        let changed = Arc::new(AtomicBool::new(false));
        let waiting = tokio::spawn({
            let (bell, changed) = (bell.clone(), changed.clone());
            async move {
                bell.until(|| changed.load(Ordering::Acquire).then_some(7))
                    .await
            }
        });
        // The task waits before the change.
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        std::thread::spawn(move || {
            changed.store(true, Ordering::Release);
            bell.ring();
        })
        .join()
        .expect("ringer");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(got, 7);
    }

    #[tokio::test]
    async fn a_change_made_before_the_wait_is_seen_without_a_ring() {
        let bell = Bell::default();
        assert_eq!(bell.until(|| Some("now")).await, "now");
    }
}
