//! IPVS gone under a running checker (the ip_vs module unloaded): said
//! once, tried again after a wait that doubles at each failed try, said
//! again when it is back. The tries back off because each one may make the
//! kernel run modprobe (it loads the module of a generic netlink family
//! asked for by name), and a warning per service every second says nothing
//! the first did not.

use std::time::{Duration, Instant};

use tracing::{info, warn};

/// The first wait before trying IPVS again, doubled at each failure up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether IPVS is gone, and if so since when and when to try again.
#[derive(Debug, Default)]
pub(super) struct IpvsAbsence {
    pub(super) gone: Option<Gone>,
}

/// IPVS gone: since when, and when to try again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gone {
    pub(super) since: Instant,
    pub(super) retry_at: Instant,
    pub(super) backoff: Duration,
}

impl IpvsAbsence {
    /// Whether IPVS is gone and its next try is not due at `now`: the
    /// table is left alone until then.
    pub(super) fn waiting(&self, now: Instant) -> bool {
        self.gone.is_some_and(|gone| now < gone.retry_at)
    }

    /// A read of the table at `now` found IPVS gone.
    pub(super) fn failed(&mut self, now: Instant) {
        match &mut self.gone {
            None => {
                warn!(
                    "IPVS is not available (the ip_vs module unloaded?): no weight can be set; trying again in {FIRST_BACKOFF:?}, then less often, at least every {MAX_BACKOFF:?}"
                );
                self.gone = Some(Gone {
                    since: now,
                    retry_at: now + FIRST_BACKOFF,
                    backoff: FIRST_BACKOFF,
                });
            }
            Some(gone) => {
                gone.backoff = (gone.backoff * 2).min(MAX_BACKOFF);
                gone.retry_at = now + gone.backoff;
            }
        }
    }

    /// A read of the table worked.
    pub(super) fn back(&mut self) {
        if let Some(gone) = self.gone.take() {
            info!(after = ?gone.since.elapsed(), "IPVS is back: the table is reconciled again");
        }
    }
}
