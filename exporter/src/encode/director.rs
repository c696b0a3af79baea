//! The series of the `director` collector: sync daemons, timeouts,
//! settings and drop defences.

use super::families::Families;
use crate::director::{Director, DEFENSES};
use ipvs_common::exposition::{Family, LabelSet};

/// Adds one namespace's director series, each label set starting with `base`.
pub(super) fn add_director(f: &mut Families, director: &Director, base: &LabelSet) {
    for state in ipvs::SyncState::ALL {
        let daemon = director.sync_daemons.iter().find(|d| d.state == state);
        f.sync_running
            .push(&base.with("state", state), u8::from(daemon.is_some()));
        let Some(daemon) = daemon else {
            continue;
        };
        let mut info = base.with("state", state);
        info.add_escaped("interface", &daemon.interface);
        info.add("sync_id", daemon.sync_id);
        // Empty where the kernel did not say (before Linux 4.3).
        let text = |value: Option<&dyn std::fmt::Display>| {
            value.map(|v| v.to_string()).unwrap_or_default()
        };
        for (name, value) in [
            (
                "max_packet_len",
                text(daemon.max_packet_len.as_ref().map(|v| v as _)),
            ),
            (
                "multicast_group",
                text(daemon.multicast_group.as_ref().map(|v| v as _)),
            ),
            (
                "multicast_port",
                text(daemon.multicast_port.as_ref().map(|v| v as _)),
            ),
            (
                "multicast_ttl",
                text(daemon.multicast_ttl.as_ref().map(|v| v as _)),
            ),
        ] {
            info.add(name, value);
        }
        f.sync_info.push(&info, 1);
    }
    let t = director.timeouts;
    for (protocol, seconds) in [("tcp", t.tcp), ("tcpfin", t.tcp_fin), ("udp", t.udp)] {
        f.timeout.push(&base.with("protocol", protocol), seconds);
    }
    for (sysctl, value) in &director.sysctls {
        if let Some(family) = f
            .sysctls
            .iter_mut()
            .find(|family| family.name() == sysctl.metric)
        {
            family.push(base, value);
        }
    }
    for defense in DEFENSES {
        let metric = format!("ipvs_sysctl_{defense}");
        if let Some(mode) = director.sysctl(&metric) {
            f.defense_active
                .push(&base.with("defense", defense), u8::from(mode >= 2));
        }
    }
}

/// The director families, in exposition order.
pub(super) fn director_families(f: &Families) -> impl Iterator<Item = &Family> {
    [&f.sync_running, &f.sync_info, &f.timeout]
        .into_iter()
        .chain(&f.sysctls)
        .chain([&f.defense_active])
}
