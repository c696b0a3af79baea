//! The sync daemon commands against a real kernel: started and stopped
//! with ipvsadm and with the crate, each seen by the other
//! (`ipvsadm -L --daemon`). Needs root and IPVS, so ignored in a plain
//! `cargo test`; the lab runs it (`lab/test`).
//!
//! The test works in a network namespace of its own, so it shares nothing
//! with the lab network of the other tests.

use lab_harness::run_in;

use ipvs::{Error, Ipvs, SyncDaemon, SyncState};

/// A namespace with a multicast-capable dummy interface `sync0`, deleted
/// when dropped.
struct Namespace(String);

impl Namespace {
    fn new() -> Self {
        let name = format!("ipvs-sync-{}", std::process::id());
        run_in(None, &format!("ip netns add {name}"));
        let ns = Namespace(name);
        // A dummy device has no IFF_MULTICAST, which the sync sockets need.
        ns.run("ip link set lo up && ip link add sync0 type dummy && ip link set sync0 multicast on up && ip addr add 198.18.5.1/24 dev sync0");
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    fn run(&self, script: &str) -> String {
        run_in(Some(&self.0), script)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// A daemon as `ipvsadm -L --daemon` (1.31) prints it.
fn as_ipvsadm(daemon: &SyncDaemon) -> String {
    let mut line = format!(
        "{} sync daemon (mcast={}, syncid={}",
        daemon.state, daemon.interface, daemon.sync_id
    );
    if let Some(len) = daemon.max_packet_len {
        line += &format!(", maxlen={len}");
    }
    if let Some(group) = daemon.multicast_group {
        line += &format!(", group={group}");
    }
    if let Some(port) = daemon.multicast_port {
        line += &format!(", port={port}");
    }
    if let Some(ttl) = daemon.multicast_ttl {
        line += &format!(", ttl={ttl}");
    }
    line + ")\n"
}

fn listed(ipvs: &mut Ipvs) -> String {
    ipvs.sync_daemons()
        .expect("GET_DAEMON")
        .iter()
        .map(as_ipvsadm)
        .collect()
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn sync_daemons_started_either_way_are_seen_both_ways() {
    let ns = Namespace::new();
    let mut ipvs = Ipvs::connect_in_netns(ns.path()).expect("connect");
    assert_eq!(ipvs.sync_daemons().expect("GET_DAEMON"), vec![]);
    assert_eq!(ns.run("ipvsadm -L --daemon"), "");

    // Started by ipvsadm, read by the crate.
    ns.run("ipvsadm --start-daemon master --mcast-interface sync0 --syncid 7");
    let daemons = ipvs.sync_daemons().expect("GET_DAEMON");
    assert_eq!(daemons.len(), 1);
    assert_eq!(daemons[0].state, SyncState::Master);
    assert_eq!(
        (daemons[0].interface.as_str(), daemons[0].sync_id),
        ("sync0", 7)
    );
    assert_eq!(listed(&mut ipvs), ns.run("ipvsadm -L --daemon"));

    // Started by the crate, read by ipvsadm.
    let backup = SyncDaemon::new(SyncState::Backup, "sync0", 9)
        .with_max_packet_len(1400)
        .with_multicast_group("239.1.2.3".parse().expect("group"))
        .with_multicast_port(8850)
        .with_multicast_ttl(3);
    ipvs.start_sync_daemon(&backup).expect("NEW_DAEMON");
    let shown = ns.run("ipvsadm -L --daemon");
    assert!(shown.contains(&as_ipvsadm(&backup)), "{shown}");
    assert_eq!(listed(&mut ipvs), shown);

    // What the kernel refuses is named, and changes nothing.
    assert!(matches!(
        ipvs.start_sync_daemon(&SyncDaemon::new(SyncState::Backup, "sync0", 1)),
        Err(Error::SyncDaemonRunning(SyncState::Backup))
    ));
    let mut ipvs2 = Ipvs::connect_in_netns(ns.path()).expect("connect");
    ipvs2
        .stop_sync_daemon(SyncState::Master)
        .expect("DEL_DAEMON");
    assert!(matches!(
        ipvs2.stop_sync_daemon(SyncState::Master),
        Err(Error::SyncDaemonNotRunning(SyncState::Master))
    ));
    assert!(matches!(
        ipvs.start_sync_daemon(&SyncDaemon::new(SyncState::Master, "nosuch0", 1)),
        Err(Error::InterfaceNotFound(_))
    ));
    assert_eq!(ns.run("ipvsadm -L --daemon"), as_ipvsadm(&backup));

    // Stopped by ipvsadm: gone for the crate.
    ns.run("ipvsadm --stop-daemon backup");
    assert_eq!(ipvs.sync_daemons().expect("GET_DAEMON"), vec![]);
}
