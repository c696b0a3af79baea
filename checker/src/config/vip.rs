//! `probe_through_vip`: a DR or TUN real server probed through the
//! virtual address, so that the check covers its VIP binding (the VIP on
//! its loopback or tunnel, its ARP settings), not only its own address.
//!
//! The VIP is a local address of the director: a probe to it would stay
//! on the director. IPVS schedules locally made connections too (its
//! `LOCAL_OUT` hook), and looks a packet's firewall mark up before its
//! address: so each real server probed this way gets a fwmark service of
//! its own, the *probe service*, with a mark from `vip_probes:` and that
//! one real server as its only destination, forwarded as the real
//! server's service forwards (dr or tun). The probe's socket carries the
//! mark (`SO_MARK`) and connects to VIP:port; IPVS sends it to that real
//! server, which answers from the VIP straight to the director.
//!
//! Marks are given here, at load, in the order of the real servers'
//! addresses (then forwarding method): the same config gives the same
//! marks, so a checker started again finds its probe services as it left
//! them. [`crate::reconcile::vip_probes`] makes them in the table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipvs::{AddressFamily, DestinationKey, ForwardMethod, ServiceKey};

use super::scalars::{forward_method, Forward, RsAddress};
use super::{Check, CheckKind, Mode, VirtualService};

/// The first mark of the probe services when `vip_probes.first_mark` is
/// not set: `IP` in ASCII in the top bytes, far from the small marks
/// operators use and from kube-proxy's 0x4000 and 0x8000 bits.
pub const DEFAULT_FIRST_MARK: u32 = 0x4950_0000;

/// How many marks the probe services may use when `vip_probes.marks` is
/// not set.
pub const DEFAULT_MARKS: u32 = 4096;

/// Where the probe services are recorded when `vip_probes.state_file` is
/// not set.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/ipvs-checker/vip-probes.json";

/// `vip_probes:`: the marks the probe services take, and the file that
/// records which probe services this checker made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipProbes {
    /// The first mark (`first_mark`).
    pub first_mark: u32,
    /// How many marks from `first_mark` on are the checker's (`marks`).
    pub marks: u32,
    /// The record of the probe services made (`state_file`), read at
    /// start so that the ones a killed checker left are deleted.
    pub state_file: PathBuf,
}

impl Default for VipProbes {
    fn default() -> Self {
        VipProbes {
            first_mark: DEFAULT_FIRST_MARK,
            marks: DEFAULT_MARKS,
            state_file: DEFAULT_STATE_FILE.into(),
        }
    }
}

/// One probe service: a fwmark service whose only destination is one
/// real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeService {
    /// Its firewall mark, which the probes' sockets carry.
    pub mark: u32,
    /// The real server's address.
    pub real_server: IpAddr,
    /// How IPVS forwards to it: [`ForwardMethod::DirectRoute`] or
    /// [`ForwardMethod::Tunnel`].
    pub forward: ForwardMethod,
}

impl ProbeService {
    /// Its IPVS service, like `ipvsadm -A -f MARK`.
    pub fn key(&self) -> ServiceKey {
        let family = match self.real_server {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        ServiceKey::fwmark(self.mark, family)
    }

    /// Its destination: the real server, port 0 (DR and TUN do not
    /// change the port).
    pub fn destination(&self) -> DestinationKey {
        DestinationKey::new(SocketAddr::new(self.real_server, 0))
    }
}

/// How a check of a real server probed through the VIP is routed: the
/// real server, and the mark of its probe service (set by
/// [`assign_marks`] once the whole file is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Through {
    /// The real server's address.
    pub real_server: IpAddr,
    /// How its service forwards to it.
    pub forward: ForwardMethod,
    /// Its probe service's mark.
    pub mark: u32,
}

/// Why a check cannot go through the VIP, if it cannot: only checks that
/// connect over TCP can (IPVS schedules them, and the answer comes back
/// on the connection). A UDP server bound to the wildcard address answers
/// from the real server's own address, which a connected socket drops;
/// an ICMP echo is not scheduled by IPVS; a program makes its own
/// connections.
pub(super) fn refuse_check(check: &Check) -> Result<(), String> {
    match &check.kind {
        CheckKind::Tcp | CheckKind::Http(_) | CheckKind::Https(_) | CheckKind::Conversation(_) => {
            Ok(())
        }
        CheckKind::Dns(d) if d.tcp => Ok(()),
        CheckKind::Dns(_) => Err(
            "probe_through_vip works with checks that connect over TCP: set transport: tcp on the dns check"
                .into(),
        ),
        other => Err(format!(
            "probe_through_vip works with checks that connect over TCP (tcp, http, https, dns with transport: tcp), not type {}",
            other.name()
        )),
    }
}

/// Gives each real server probed through the VIP the mark of its probe
/// service: `first_mark` for the lowest address, then up, one per real
/// server (and forwarding method) however many services it is in; the
/// probe services to make. The error: more of them than `marks`.
pub(super) fn assign_marks(
    services: &mut [VirtualService],
    probes: &VipProbes,
) -> Result<Vec<ProbeService>, String> {
    // A route: the real server, and whether it is tunnelled (else DR).
    let route = |t: &Through| (t.real_server, t.forward == ForwardMethod::Tunnel);
    let routes: BTreeSet<(IpAddr, bool)> = services
        .iter()
        .flat_map(|s| &s.real_servers)
        .flat_map(|rs| &rs.checks)
        .filter_map(|c| c.through.as_ref().map(route))
        .collect();
    if routes.len() as u64 > u64::from(probes.marks) {
        return Err(format!(
            "vip_probes.marks is {}, but {} real servers are probed through their VIP: each needs a mark of its own",
            probes.marks,
            routes.len()
        ));
    }
    // (Fits: `vip_probes` checked that first_mark + marks - 1 does.)
    let marks: BTreeMap<(IpAddr, bool), u32> =
        routes.into_iter().zip(probes.first_mark..).collect();
    for check in services
        .iter_mut()
        .flat_map(|s| &mut s.real_servers)
        .flat_map(|rs| &mut rs.checks)
    {
        if let Some(through) = &mut check.through {
            through.mark = marks[&route(through)];
        }
    }
    Ok(marks
        .into_iter()
        .map(|((real_server, tunnel), mark)| ProbeService {
            mark,
            real_server,
            forward: if tunnel {
                ForwardMethod::Tunnel
            } else {
                ForwardMethod::DirectRoute
            },
        })
        .collect())
}

/// `vip_probes:` as written, checked: the marks must fit in 32 bits and
/// not be 0 (no mark).
pub(super) fn vip_probes(
    raw: Option<super::raw::VipProbes>,
    base: &std::path::Path,
) -> Result<VipProbes, String> {
    let raw = raw.unwrap_or_default();
    let first_mark = raw.first_mark.unwrap_or(DEFAULT_FIRST_MARK);
    let marks = raw.marks.unwrap_or(DEFAULT_MARKS);
    if first_mark == 0 {
        return Err("vip_probes.first_mark must not be 0 (a packet without a mark has 0)".into());
    }
    if marks == 0 {
        return Err("vip_probes.marks must be at least 1".into());
    }
    if first_mark.checked_add(marks - 1).is_none() {
        return Err(format!(
            "vip_probes: first_mark {first_mark:#x} and marks {marks} go past the largest mark, 0xffffffff"
        ));
    }
    let state_file = match raw.state_file {
        Some(path) if path.trim().is_empty() => {
            return Err("vip_probes.state_file: must not be empty".into())
        }
        Some(path) => base.join(path),
        None => DEFAULT_STATE_FILE.into(),
    };
    Ok(VipProbes {
        first_mark,
        marks,
        state_file,
    })
}

/// Where a real server probed through the VIP is probed: the VIP, and how
/// its probe service reaches it (the mark is given once the whole file is
/// read, see [`assign_marks`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct ThroughVip {
    pub vip: SocketAddr,
    pub through: Through,
}

/// The rules of `probe_through_vip`: a DR or TUN real server (in weights
/// mode `forward` says which, as the table has it) of a service with an
/// address, probed at that address rather than a `check_address`.
pub(super) fn through_vip(
    service: &ServiceKey,
    address: &RsAddress,
    check_address: Option<SocketAddr>,
    forward: Option<Forward>,
    mode: Mode,
) -> Result<ThroughVip, String> {
    let ServiceKey::Addr { addr: vip, .. } = *service else {
        return Err(
            "probe_through_vip needs a service with an address: a fwmark service has no one VIP to probe"
                .into(),
        );
    };
    if check_address.is_some() {
        return Err("set check_address or probe_through_vip, not both".into());
    }
    match (mode, forward) {
        (Mode::Weights, None) => Err(
            "probe_through_vip needs forward: dr or tun, as the table forwards to this real server (its probe service forwards the same way)"
                .into(),
        ),
        (_, Some(Forward::Dr | Forward::Tun)) => Ok(ThroughVip {
            vip,
            through: Through {
                real_server: address.ip,
                forward: forward_method(forward),
                mark: 0,
            },
        }),
        _ => Err(
            "probe_through_vip is for forward: dr or tun (a NAT real server answers through the director: probe its own address)"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> super::super::Config {
        super::super::parse(text, Path::new("c.yml"), Path::new("/etc/ipvs-checker"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn dr_and_tun_real_servers_get_marks_in_address_order() {
        let config = parse(
            "mode: managed\nstate_file: owned.json\n\
             defaults: {probe_through_vip: true}\n\
             services:\n\
             \x20 - address: 198.18.0.10:80\n\
             \x20   check: {type: http, path: /health}\n\
             \x20   real_servers:\n\
             \x20     - {address: 198.18.1.12:80, forward: tun}\n\
             \x20     - {address: 198.18.1.11:80, forward: dr}\n\
             \x20 - address: 198.18.0.11:53\n\
             \x20   checks: [{type: tcp}, {type: dns, name: www.lab.test, transport: tcp}]\n\
             \x20   real_servers:\n\
             \x20     - {address: 198.18.1.11:53, forward: dr}\n\
             \x20     - {address: 198.18.1.13:53, forward: dr, probe_through_vip: false}\n",
        );
        assert_eq!(config.vip_probes, VipProbes::default());
        assert_eq!(
            config.vip_probes.state_file,
            Path::new("/var/lib/ipvs-checker/vip-probes.json")
        );
        // One probe service per real server, however many services it
        // is in: the lowest address has the first mark.
        let dr = |rs: &str, mark| ProbeService {
            mark,
            real_server: rs.parse().expect("address"),
            forward: ForwardMethod::DirectRoute,
        };
        let rs2 = ProbeService {
            forward: ForwardMethod::Tunnel,
            ..dr("198.18.1.12", 0x4950_0001)
        };
        assert_eq!(
            config.probe_services,
            vec![dr("198.18.1.11", 0x4950_0000), rs2]
        );
        assert_eq!(
            rs2.key(),
            ServiceKey::fwmark(0x4950_0001, AddressFamily::Inet)
        );
        assert_eq!(rs2.destination().addr, "198.18.1.12:0".parse().expect("a"));
        // The probes go to the VIP, carrying their real server's mark.
        let web = &config.services[0].real_servers;
        assert_eq!(
            web[0].checks[0].target,
            "198.18.0.10:80".parse().expect("a")
        );
        assert_eq!(web[0].checks[0].through.map(|t| t.mark), Some(0x4950_0001));
        assert_eq!(web[1].checks[0].through.map(|t| t.mark), Some(0x4950_0000));
        let dns = &config.services[1].real_servers;
        assert!(dns[0]
            .checks
            .iter()
            .all(|c| c.target == "198.18.0.11:53".parse().expect("a")
                && c.through.map(|t| t.mark) == Some(0x4950_0000)));
        // Turned off for one real server: its own address, no mark.
        assert_eq!(
            dns[1].checks[0].target,
            "198.18.1.13:53".parse().expect("a")
        );
        assert_eq!(dns[1].checks[0].through, None);
        // `--config.check` says where each probe goes.
        let text = super::super::describe(&config);
        assert!(
            text.contains("  -> 198.18.1.12:80 tun weight 1 probe 198.18.0.10:80 through FWM 0x49500001 (tun to 198.18.1.12) every"),
            "{text}"
        );
        assert!(
            text.contains(
                "     and probe 198.18.0.11:53 through FWM 0x49500000 (dr to 198.18.1.11): dns"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("probe services: FWM 0x49500000 to 0x49500001, recorded in /var/lib/ipvs-checker/vip-probes.json\n"),
            "{text}"
        );
    }

    #[test]
    fn weights_mode_takes_forward_for_the_probe_service_and_the_marks_set() {
        let config = parse(
            "vip_probes: {first_mark: 0x100, marks: 2, state_file: probes.json}\n\
             services:\n\
             \x20 - address: 198.18.0.10:80\n\
             \x20   probe_through_vip: true\n\
             \x20   real_servers:\n\
             \x20     - {address: 198.18.1.11:80, forward: tun}\n\
             \x20     - {address: 198.18.1.12:80, forward: dr}\n",
        );
        assert_eq!(
            config.vip_probes,
            VipProbes {
                first_mark: 0x100,
                marks: 2,
                state_file: "/etc/ipvs-checker/probes.json".into(),
            }
        );
        let marks: Vec<(u32, ForwardMethod)> = config
            .probe_services
            .iter()
            .map(|p| (p.mark, p.forward))
            .collect();
        assert_eq!(
            marks,
            vec![
                (0x100, ForwardMethod::Tunnel),
                (0x101, ForwardMethod::DirectRoute)
            ]
        );
        // Without probe_through_vip, forward stays managed mode's.
        let e = super::super::parse(
            "services:\n  - address: 198.18.0.10:80\n    real_servers: [{address: 198.18.1.11:80, forward: dr}]\n",
            Path::new("c.yml"),
            Path::new("."),
        )
        .expect_err("forward in weights mode");
        assert!(
            e.to_string()
                .ends_with("real server 198.18.1.11: forward is only used in mode: managed"),
            "{e}"
        );
    }
}
