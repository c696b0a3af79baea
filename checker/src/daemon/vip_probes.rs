//! The daemon's side of `probe_through_vip`: the probe services made
//! before the first probe, checked with the table at every resync pass,
//! followed on reload, deleted when the checker stops (see
//! [`crate::reconcile::vip_probes`]); and, at start, a warning when the
//! director would drop the real servers' answers.

use std::path::Path;

use anyhow::Context as _;
use tracing::{info, warn};

use super::Daemon;
use crate::reconcile::{ManagedTable, Outcome, VipProbes};

/// Where the kernel keeps the IPv4 per-interface settings.
const CONF: &str = "/proc/sys/net/ipv4/conf";

impl<T: ManagedTable> Daemon<T> {
    /// Reads what the state file says a checker before this one made, and
    /// brings the table to this config's probe services (deleting the
    /// ones a killed checker left), before any probe starts.
    pub(super) fn start_vip_probes(&mut self) -> anyhow::Result<()> {
        match VipProbes::load(&self.config.vip_probes.state_file) {
            Ok(probes) => self.vip_probes = probes,
            // A checker that probes nothing through the VIP starts
            // without the default file's directory readable (a tarball
            // run as another user): it has nothing of its own to find.
            Err(e) if self.config.probe_services.is_empty() => {
                tracing::debug!("{e}: no probe service is configured, none is deleted");
            }
            Err(e) => return Err(e).context("cannot read the probe services' state file"),
        }
        let ipv4 = self
            .config
            .probe_services
            .iter()
            .any(|p| p.real_server.is_ipv4());
        if ipv4 {
            if let Some(problem) = martian_filter(Path::new(CONF)) {
                warn!("probe_through_vip: {problem}");
            }
        }
        self.sync_vip_probes();
        Ok(())
    }

    /// One pass over the probe services; each error logged once until it
    /// is gone.
    pub(super) fn sync_vip_probes(&mut self) {
        if self.config.probe_services.is_empty() && self.vip_probes.made().is_empty() {
            return;
        }
        let pass = self
            .vip_probes
            .sync(self.reconciler.table_mut(), &self.config.probe_services);
        for action in &pass.actions {
            info!("{action}");
        }
        self.announced
            .retain(|a| !a.starts_with("vip: ") || pass.errors.iter().any(|e| a[5..] == *e));
        for error in pass.errors {
            if self.announced.insert(format!("vip: {error}")) {
                warn!("{error}");
            }
        }
    }

    /// After a reload: its state file followed, its probe services made,
    /// before its probes start.
    pub(super) fn follow_vip_probes(&mut self) {
        if let Err(e) = self.vip_probes.set_file(&self.config.vip_probes.state_file) {
            if self.config.probe_services.is_empty() {
                tracing::debug!("{e}: no probe service is configured, none is deleted");
            } else {
                warn!("{e}: the probe services it records are not known, nor deleted; the state file before stays in use");
            }
        }
        self.sync_vip_probes();
    }

    /// Warns, once until it is mended, of a real server probed through
    /// the VIP whose probe service forwards otherwise than the table does
    /// (in weights mode the table is someone else's, and `forward` says
    /// what it should be): its probes would not take the clients' path.
    pub(super) fn compare_vip_forwards(&mut self, i: usize, outcome: &Outcome) {
        let service = &self.config.services[i];
        for rs in &service.real_servers {
            let Some(through) = rs.checks.iter().find_map(|c| c.through) else {
                continue;
            };
            let table = outcome
                .forwards
                .iter()
                .find(|(d, _)| *d == rs.key)
                .map(|(_, f)| *f);
            let text = format!(
                "probe_through_vip: the table forwards to real server {} of {} by {:?}, its config says {:?}: its probes through the VIP take another path than the clients'; set its forward as the table has it",
                rs.key, service.key, table.unwrap_or(through.forward), through.forward
            );
            if table.is_some_and(|f| f != through.forward) {
                if self.announced.insert(text.clone()) {
                    warn!("{text}");
                }
            } else {
                let mismatch = format!(
                    "probe_through_vip: the table forwards to real server {} of {} by ",
                    rs.key, service.key
                );
                self.announced.retain(|a| !a.starts_with(&mismatch));
            }
        }
    }

    /// When the checker stops: every probe service it made deleted.
    pub(super) fn remove_vip_probes(&mut self) {
        if self.vip_probes.made().is_empty() {
            return;
        }
        let pass = self.vip_probes.sync(self.reconciler.table_mut(), &[]);
        for action in &pass.actions {
            info!("{action}");
        }
        for error in &pass.errors {
            warn!("{error}");
        }
    }
}

/// What in the IPv4 settings under `conf` makes the director drop the
/// real servers' answers, which come from the VIP, one of its own
/// addresses: a packet from a local address is a martian unless
/// `accept_local` is on for the interface it arrives on, and strict
/// reverse-path filtering (`rp_filter` 1) drops it even then. The
/// interface toward the real servers is not known here: the warning is
/// for no interface having `accept_local`, or `all.rp_filter` strict.
pub(super) fn martian_filter(conf: &Path) -> Option<String> {
    let read = |iface: &str, key: &str| {
        std::fs::read_to_string(conf.join(iface).join(key))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    let interfaces: Vec<String> = std::fs::read_dir(conf)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "default" && n != "lo")
        .collect();
    let accepts = interfaces
        .iter()
        .any(|i| read(i, "accept_local") == Some(1));
    if !accepts {
        return Some(
            "net.ipv4.conf.*.accept_local is 0 on every interface: the real servers answer from the VIP, an address of this director, and the kernel drops such packets as martians, so every probe through the VIP would time out; set net.ipv4.conf.IFACE.accept_local=1 on the interface toward the real servers".into(),
        );
    }
    if read("all", "rp_filter") == Some(1) {
        return Some(
            "net.ipv4.conf.all.rp_filter is 1 (strict): the real servers' answers from the VIP fail it, so every probe through the VIP would time out; set it (and the interface's) to 2 (loose) or 0".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::memory::MemoryTable;
    use crate::reconcile::Reconciler;
    use crate::state::Shared;
    use ipvs::{DestinationConfig, ForwardMethod};

    #[test]
    fn a_table_forwarding_otherwise_than_the_config_is_said_until_mended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "defaults: {rise: 1, fall: 1}\nservices:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {address: 198.18.1.11:80, forward: dr, probe_through_vip: true}\n      - {address: 198.18.1.12:80}\n";
        let config = crate::config::parse(text, &dir.path().join("checker.yaml"), dir.path())
            .expect("valid");
        let service = config.services[0].key;
        let [probed, plain] = [0, 1].map(|i| config.services[0].real_servers[i].key);
        let mut table = MemoryTable::default();
        let nat = DestinationConfig::new(ForwardMethod::Masquerade, 1);
        table
            .dests
            .insert(service, [(probed, nat), (plain, nat)].into());
        let state = Shared::new(&config);
        let mut daemon = Daemon::new(config, Reconciler::new(table, false), state);
        let said = |daemon: &Daemon<MemoryTable>| {
            daemon
                .announced
                .iter()
                .filter(|a| a.starts_with("probe_through_vip: the table forwards"))
                .cloned()
                .collect::<Vec<_>>()
        };
        daemon.apply(0);
        let warned = said(&daemon);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("real server 198.18.1.11:80 of TCP 198.18.0.10:80 by Masquerade, its config says DirectRoute"),
            "{}",
            warned[0]
        );
        // Said once, not on every pass.
        daemon.apply(0);
        assert_eq!(said(&daemon), warned);
        let dr = DestinationConfig::new(ForwardMethod::DirectRoute, 1);
        daemon
            .reconciler
            .table_mut()
            .dests
            .insert(service, [(probed, dr), (plain, nat)].into());
        daemon.apply(0);
        assert!(said(&daemon).is_empty());
    }

    fn conf(settings: &[(&str, &str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (iface, key, value) in settings {
            std::fs::create_dir_all(dir.path().join(iface)).expect("mkdir");
            std::fs::write(dir.path().join(iface).join(key), format!("{value}\n")).expect("write");
        }
        dir
    }

    #[test]
    fn the_martian_filter_is_named() {
        let dropped = conf(&[
            ("all", "accept_local", "0"),
            ("eth0", "accept_local", "0"),
            ("lo", "accept_local", "1"),
        ]);
        let problem = martian_filter(dropped.path()).expect("no interface accepts");
        assert!(
            problem.starts_with("net.ipv4.conf.*.accept_local is 0"),
            "{problem}"
        );
        let strict = conf(&[("eth0", "accept_local", "1"), ("all", "rp_filter", "1")]);
        let problem = martian_filter(strict.path()).expect("strict");
        assert!(
            problem.starts_with("net.ipv4.conf.all.rp_filter is 1"),
            "{problem}"
        );
        let fine = conf(&[("eth0", "accept_local", "1"), ("all", "rp_filter", "2")]);
        assert_eq!(martian_filter(fine.path()), None);
    }
}
