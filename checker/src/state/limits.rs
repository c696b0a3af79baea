//! How many probes and programs the checker lets run at once now (see
//! `daemon::admission`), for the metrics.

/// The limits as they are now; none before the probes start.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Probes allowed in flight at once on each probe thread.
    probes: Vec<usize>,
    /// `exec` checks' programs allowed to run at once.
    programs: Option<usize>,
}

impl Limits {
    /// Probes allowed in flight at once, over every probe thread.
    pub fn probes(&self) -> Option<usize> {
        (!self.probes.is_empty()).then(|| self.probes.iter().sum())
    }

    /// Probe thread `shard` allows `limit` probes in flight at once now.
    pub fn set_probes(&mut self, shard: usize, limit: usize) {
        if self.probes.len() <= shard {
            self.probes.resize(shard + 1, 0);
        }
        self.probes[shard] = limit;
    }

    /// `exec` checks' programs allowed to run at once.
    pub fn programs(&self) -> Option<usize> {
        self.programs
    }

    /// `limit` programs are allowed to run at once now.
    pub fn set_programs(&mut self, limit: usize) {
        self.programs = Some(limit);
    }
}
