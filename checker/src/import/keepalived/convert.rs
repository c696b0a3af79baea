//! keepalived's `virtual_server` blocks to checker services: the mapping
//! and its semantics. What keepalived does that the checker does not (or
//! does differently) is said at its place, in [`Diagnostics`] and in a
//! comment above the YAML node.
//!
//! Here the entry point and the `virtual_server` blocks; their groups'
//! members in `groups`, their real servers in `real_server`, the checkers
//! in `checks` (with the timing), the keywords' arguments in `args`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::args::{forward, number, one_arg, one_or_more, one_or_more_at};
use super::groups::{group_members, Member};
use super::real_server::{real_server, Pool};
use super::settings::Inherited;
use super::tree::Statement;
use crate::config::Mode;
use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};
use crate::import::model::{
    self, CheckKind, Forward, Quorum, RealServer, Service, ServiceAddr, SorryServer,
};

/// Top-level blocks that configure VRRP and the daemon, left to keepalived.
const LEFT_ALONE: &[&str] = &[
    "global_defs",
    "vrrp_instance",
    "vrrp_sync_group",
    "vrrp_script",
    "vrrp_track_process",
    "vrrp_track_file",
    "track_file",
    "garp_group",
    "linkbeat_interfaces",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "bfd_instance",
    "net_namespace",
    "instance",
    "use_pid_dir",
];

/// The services of a parsed keepalived.conf.
pub fn convert(
    statements: &[Statement],
    mode: Mode,
    diags: &mut Diagnostics,
) -> Result<Vec<Service>, ParseError> {
    let mut groups: HashMap<String, Vec<Member>> = HashMap::new();
    for s in statements
        .iter()
        .filter(|s| s.keyword.text == "virtual_server_group")
    {
        let name = one_arg(s, diags)?;
        groups.insert(name.text.clone(), group_members(s)?);
    }
    let mut services = Vec::new();
    let mut left_alone: Vec<(String, Loc)> = Vec::new();
    for s in statements {
        match s.keyword.text.as_str() {
            "virtual_server_group" => {}
            "virtual_server" => services.extend(virtual_server(s, &groups, mode, diags)?),
            other => {
                if !left_alone.iter().any(|(k, _)| k == other) {
                    left_alone.push((other.to_owned(), s.loc().clone()));
                }
            }
        }
    }
    if let Some((_, loc)) = left_alone.first() {
        let (known, unknown): (Vec<_>, Vec<_>) = left_alone
            .iter()
            .partition(|(k, _)| LEFT_ALONE.contains(&k.as_str()));
        if !known.is_empty() {
            let names: Vec<&str> = known.iter().map(|(k, _)| k.as_str()).collect();
            diags.push(
                loc,
                Severity::Note,
                format!(
                    "left to keepalived (VRRP and daemon settings): {}",
                    names.join(", ")
                ),
            );
        }
        for (k, loc) in unknown {
            diags.push(
                loc,
                Severity::Dropped,
                format!("unknown top-level keyword {k:?}"),
            );
        }
    }
    Ok(services)
}

fn virtual_server(
    vs: &Statement,
    groups: &HashMap<String, Vec<Member>>,
    mode: Mode,
    diags: &mut Diagnostics,
) -> Result<Vec<Service>, ParseError> {
    let loc = vs.loc().clone();
    let managed = mode == Mode::Managed;
    // Which services: an address, a mark, or a group's members.
    let first = vs.args.first().ok_or_else(|| {
        ParseError::new(
            &loc,
            "virtual_server needs VIP PORT, fwmark N or group NAME",
        )
    })?;
    let (members, origin) = match first.text.as_str() {
        "fwmark" => (
            vec![Member::Fwmark(
                number(one_or_more_at(vs, 2)?, "fwmark")?,
                None,
                loc.clone(),
            )],
            format!("virtual_server fwmark {}", vs.args[1].text),
        ),
        "group" => {
            let name = one_or_more_at(vs, 2)?;
            let members = groups.get(&name.text).ok_or_else(|| {
                ParseError::new(
                    &name.loc,
                    format!("no virtual_server_group {:?}", name.text),
                )
            })?;
            (
                members.clone(),
                format!("virtual_server group {}", name.text),
            )
        }
        _ => {
            let ip: IpAddr = first.text.parse().map_err(|_| {
                ParseError::new(
                    &first.loc,
                    format!("{:?}: invalid virtual server address", first.text),
                )
            })?;
            let port = vs.args.get(1).ok_or_else(|| {
                ParseError::new(
                    &loc,
                    "a virtual server without a port: the import needs VIP PORT",
                )
            })?;
            let port: u16 = number(port, "port")?;
            (
                vec![Member::Addr(SocketAddr::new(ip, port), loc.clone())],
                format!("virtual_server {} {port}", first.text),
            )
        }
    };
    let mut pool = Pool {
        protocol: "",
        scheduler: None,
        forward: Forward::Nat,
        persistence: None,
        persistence_netmask: None,
        one_packet: false,
        scheduler_flags: Vec::new(),
    };
    let mut inherited = Inherited::default();
    let mut comments = vec![format!("{}: {origin}", loc.line_only())];
    let mut rs_statements = Vec::new();
    let mut quorum: Option<(u32, Loc)> = None;
    let mut hysteresis: Option<(u32, Loc)> = None;
    let mut quorum_scripts: Vec<Loc> = Vec::new();
    let mut sorry: Option<(IpAddr, Option<u16>, Loc)> = None;
    let mut sorry_forward: Option<Forward> = None;
    let mut sorry_inhibit: Option<Loc> = None;
    let mut sched_flags: Vec<(String, Loc)> = Vec::new();
    let mut ipv6_family: Option<bool> = None;
    for s in vs.children() {
        if inherited.take(s, diags)? {
            continue;
        }
        let key = s.keyword.text.as_str();
        match key {
            "protocol" => {
                let p = one_arg(s, diags)?;
                pool.protocol = match p.text.to_ascii_uppercase().as_str() {
                    "TCP" => "tcp",
                    "UDP" => "udp",
                    "SCTP" => "sctp",
                    _ => {
                        return Err(ParseError::new(
                            &p.loc,
                            format!("protocol {:?}: expected TCP, UDP or SCTP", p.text),
                        ))
                    }
                };
            }
            "lb_algo" | "lvs_sched" => pool.scheduler = Some(one_arg(s, diags)?.text.clone()),
            "lb_kind" | "lvs_method" => pool.forward = forward(s, diags)?,
            "persistence_timeout" => {
                // Without a value keepalived uses 6 minutes.
                pool.persistence = Some(match s.args.first() {
                    Some(w) => number(w, "persistence_timeout")?,
                    None => 360,
                });
            }
            "persistence_granularity" => {
                pool.persistence_netmask = Some(one_arg(s, diags)?.text.clone())
            }
            "ops" => pool.one_packet = true,
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2"
            | "flag-3" => sched_flags.push((key.to_owned(), s.loc().clone())),
            "quorum" => quorum = Some((number(one_arg(s, diags)?, "quorum")?, s.loc().clone())),
            "hysteresis" => {
                hysteresis = Some((number(one_arg(s, diags)?, "hysteresis")?, s.loc().clone()))
            }
            "quorum_up" | "quorum_down" => quorum_scripts.push(s.loc().clone()),
            "sorry_server" => {
                let ip_word = one_or_more(s, 1)?;
                let ip: IpAddr = ip_word.text.parse().map_err(|_| {
                    ParseError::new(
                        &ip_word.loc,
                        format!("{:?}: invalid sorry server address", ip_word.text),
                    )
                })?;
                let port = s
                    .args
                    .get(1)
                    .map(|w| number::<u16>(w, "port"))
                    .transpose()?;
                sorry = Some((ip, port, s.loc().clone()));
            }
            "sorry_server_inhibit" => sorry_inhibit = Some(s.loc().clone()),
            "sorry_server_lvs_method" => sorry_forward = Some(forward(s, diags)?),
            "ip_family" => {
                ipv6_family = Some(match one_arg(s, diags)?.text.as_str() {
                    "inet" => false,
                    "inet6" => true,
                    other => {
                        return Err(ParseError::new(
                            s.loc(),
                            format!("ip_family {other:?}: expected inet or inet6"),
                        ))
                    }
                })
            }
            "real_server" => rs_statements.push(s),
            "snmp_name" => {}
            "persistence_engine" => diags.push(
                s.loc(),
                Severity::Dropped,
                "persistence_engine (sip) has no counterpart in the checker's services",
            ),
            "ha_suspend" | "omega" | "smtp_alert" => diags.push(
                s.loc(),
                Severity::Dropped,
                format!("{key} has no counterpart in the checker"),
            ),
            _ => diags.push(
                s.loc(),
                Severity::Dropped,
                format!("unknown keyword {key:?} in virtual_server"),
            ),
        }
    }
    if pool.protocol.is_empty() && !matches!(members.first(), Some(Member::Fwmark(..))) {
        diags.push(
            &loc,
            Severity::Note,
            "no protocol: keepalived (2.2.7) makes a UDP service, and so does the import; add `protocol TCP` to both if you meant TCP",
        );
        pool.protocol = "udp";
    }
    let scheduler_name = pool.scheduler.clone().unwrap_or_else(|| "wlc".into());
    for (flag, at) in sched_flags {
        let mapped = match (scheduler_name.as_str(), flag.as_str()) {
            ("sh", "sh-fallback" | "flag-1") => Some("sh-fallback"),
            ("sh", "sh-port" | "flag-2") => Some("sh-port"),
            ("mh", "mh-fallback" | "flag-1") => Some("mh-fallback"),
            ("mh", "mh-port" | "flag-2") => Some("mh-port"),
            _ => None,
        };
        match mapped {
            Some(f) if !pool.scheduler_flags.contains(&f) => pool.scheduler_flags.push(f),
            Some(_) => {}
            None => diags.push(
                &at,
                Severity::Dropped,
                format!("{flag} with scheduler {scheduler_name}: the checker sets only the sh and mh flags"),
            ),
        }
    }
    if pool.one_packet && pool.protocol != "udp" {
        diags.push(
            &loc,
            Severity::Dropped,
            "ops on a service that is not UDP: the checker allows one_packet on UDP only",
        );
        pool.one_packet = false;
    }
    if pool.scheduler.is_none() && managed {
        comments.push("no lb_algo: the kernel's default, wlc, as keepalived leaves it".into());
        pool.scheduler = Some("wlc".into());
    }

    let mut real_servers = Vec::new();
    for rs in rs_statements {
        real_servers.push(real_server(rs, &pool, &inherited, mode, diags)?);
    }
    if real_servers.is_empty() {
        diags.push(
            &loc,
            Severity::Dropped,
            format!("{origin} has no real_server: the checker needs at least one, the service is left out"),
        );
        return Ok(Vec::new());
    }

    let quorum = match sorry {
        Some((ip, port, sorry_loc)) => {
            let mut q_comments = Vec::new();
            let min_up = min_up(quorum.as_ref(), &real_servers, &mut q_comments, diags);
            if min_up > 1 {
                let message = "with its sorry server in, keepalived takes out the real servers still up; the checker keeps them serving beside it";
                diags.push(&sorry_loc, Severity::Different, message);
                q_comments.push(format!("{}: {message}", sorry_loc.line_only()));
            }
            if let Some((h, at)) = &hysteresis {
                if *h > 0 {
                    let message = format!("hysteresis {h} has no counterpart: the quorum is gained and lost at min_up");
                    diags.push(at, Severity::Different, &message);
                    q_comments.push(format!("{}: {message}", at.line_only()));
                }
            }
            if let Some(at) = &sorry_inhibit {
                let message = "sorry_server_inhibit: keepalived keeps the sorry server at weight 0 once the quorum is back; managed mode deletes it";
                diags.push(at, Severity::Different, message);
                q_comments.push(format!("{}: {message}", at.line_only()));
            }
            if !managed {
                let message = "weights mode: the sorry server must be in keepalived's table at weight 0 (e.g. a real_server with weight 0 and no checker)";
                diags.push(&sorry_loc, Severity::Different, message);
                q_comments.push(format!("{}: {message}", sorry_loc.line_only()));
            }
            q_comments.insert(0, format!("{}: sorry_server", sorry_loc.line_only()));
            Some(Quorum {
                comments: q_comments,
                min_up,
                sorry_server: Some(SorryServer {
                    address: model::address(ip, port),
                    weight: 1,
                    forward: managed.then_some(sorry_forward.unwrap_or(pool.forward)),
                }),
            })
        }
        None => {
            let set = quorum
                .as_ref()
                .filter(|(q, _)| *q != 1)
                .map(|(_, l)| l.clone());
            for at in set.iter().chain(&quorum_scripts) {
                diags.push(
                    at,
                    Severity::Dropped,
                    "a quorum without sorry_server only runs keepalived's quorum_up/quorum_down scripts; not converted (the checker's quorum without a sorry server fails open instead: add quorum: {min_up: N} if you want that)",
                );
            }
            None
        }
    };

    let ipv6_rs = real_servers
        .first()
        .is_some_and(|rs| rs.address.starts_with('[') || rs.address.contains("::"));
    let mut services = Vec::new();
    for member in members {
        let (addr, member_loc) = match member {
            Member::Addr(address, at) => (
                ServiceAddr::Addr {
                    protocol: pool.protocol,
                    address,
                },
                at,
            ),
            Member::Fwmark(mark, family, at) => (
                ServiceAddr::Fwmark {
                    mark,
                    ipv6: family.or(ipv6_family).unwrap_or(ipv6_rs),
                },
                at,
            ),
        };
        let mut service_real_servers = real_servers.clone();
        if matches!(addr, ServiceAddr::Fwmark { .. }) {
            // keepalived adds a fwmark service's real servers with port 0
            // (the packet's own port is used) and checks the port written
            // (an echo request has none).
            for rs in &mut service_real_servers {
                if let Some((ip, port)) = split_port(&rs.address) {
                    rs.address = ip.to_string();
                    if rs.check_address.is_none() && port != 0 {
                        for check in &mut rs.checks {
                            if check.port.is_none() && check.kind != CheckKind::Icmp {
                                check.port = Some(port);
                            }
                        }
                    }
                }
            }
        }
        let mut service_comments = comments.clone();
        if member_loc != loc {
            service_comments.push(format!("{}: a member of the group", member_loc.line_only()));
        }
        services.push(Service {
            comments: service_comments,
            addr,
            scheduler: if managed {
                pool.scheduler.clone()
            } else {
                None
            },
            scheduler_flags: if managed {
                pool.scheduler_flags.clone()
            } else {
                Vec::new()
            },
            one_packet: managed && pool.one_packet,
            persistence: if managed { pool.persistence } else { None },
            persistence_netmask: if managed {
                pool.persistence_netmask.clone()
            } else {
                None
            },
            quorum: quorum.clone(),
            real_servers: service_real_servers,
        });
    }
    Ok(services)
}

/// The IP and port of an `IP:PORT` or `[IPv6]:PORT` address.
fn split_port(address: &str) -> Option<(IpAddr, u16)> {
    address
        .parse::<SocketAddr>()
        .ok()
        .map(|a| (a.ip(), a.port()))
}

/// keepalived's quorum is a sum of weights of the real servers up; the
/// checker's a count of them. Exact when every real server has the same
/// weight.
fn min_up(
    quorum: Option<&(u32, Loc)>,
    real_servers: &[RealServer],
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> u32 {
    let Some((q, at)) = quorum.filter(|(q, _)| *q > 1) else {
        return 1;
    };
    let n = u32::try_from(real_servers.len()).unwrap_or(u32::MAX);
    let weights: Vec<u32> = real_servers.iter().map(|rs| rs.weight).collect();
    let max = weights.iter().copied().max().unwrap_or(1).max(1);
    let uniform = weights.iter().all(|w| *w == weights[0]);
    let min_up = q.div_ceil(max).clamp(1, n.max(1));
    let message = if uniform && weights[0] > 0 && q.div_ceil(max) <= n {
        comments.push(format!(
            "{}: quorum {q} (a sum of weights) is {min_up} real servers of weight {max} up",
            at.line_only()
        ));
        return min_up;
    } else if q.div_ceil(max) > n {
        format!("quorum {q} is more than all real servers' weights can reach; min_up is all {n} of them")
    } else {
        format!("quorum {q} is a sum of unequal weights; min_up {min_up} counts real servers (the heaviest ones reach {q} with {min_up} up)")
    };
    diags.push(at, Severity::Different, &message);
    comments.push(format!("{}: {message}", at.line_only()));
    min_up
}

#[cfg(test)]
mod tests;
