//! keepalived's `virtual_server` blocks to checker services: the mapping
//! and its semantics. What keepalived does that the checker does not (or
//! does differently) is said at its place, in [`Diagnostics`] and in a
//! comment above the YAML node.
//!
//! Timing: keepalived checks every `delay_loop` (60 s unless set), gives
//! a connection `connect_timeout` (5 s), and after a failed check of a
//! real server that is up checks `retry` more times (1 unless set),
//! `delay_before_retry` apart (3 s for HTTP_GET and SSL_GET, 1 s for
//! TCP_CHECK), before it is down; one success brings it back. So `fall`
//! is `retry + 1`, `interval` is `delay_loop`, `rise` is 1; the retries'
//! own spacing has no counterpart (the checker probes every interval).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::tree::{Statement, Word};
use crate::config::Mode;
use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};
use crate::import::model::{
    self, Check, CheckKind, Forward, Http, Quorum, RealServer, Service, ServiceAddr, SorryServer,
    Timing,
};
use crate::import::yaml;

/// At most this many services from one address range of a group.
const MAX_RANGE: u32 = 1024;

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

/// A `virtual_server_group` entry: one service each.
#[derive(Debug, Clone)]
enum Member {
    Addr(SocketAddr, Loc),
    Fwmark(u32, Option<bool>, Loc),
}

fn group_members(group: &Statement) -> Result<Vec<Member>, ParseError> {
    let mut members = Vec::new();
    for s in group.children() {
        if s.keyword.text == "fwmark" {
            let mark = number(one_or_more(s, 1)?, "fwmark")?;
            let ipv6 = match s.args.get(1).map(|w| w.text.as_str()) {
                None => None,
                Some("inet") => Some(false),
                Some("inet6") => Some(true),
                Some(_) => return Err(ParseError::new(&s.args[1].loc, "expected inet or inet6")),
            };
            members.push(Member::Fwmark(mark, ipv6, s.loc().clone()));
            continue;
        }
        let Some(port) = s.args.first() else {
            return Err(ParseError::new(
                s.loc(),
                "a group address without a port: the import needs VIP PORT",
            ));
        };
        let port = number::<u16>(port, "port")?;
        for ip in ip_range(&s.keyword)? {
            members.push(Member::Addr(SocketAddr::new(ip, port), s.loc().clone()));
        }
    }
    Ok(members)
}

/// `10.0.0.1`, `10.0.0.1-10`, `10.0.0.250-10.0.1.10`, `10.0.0.8/29`, and
/// IPv6 with the last group ranged (`2001:db8::1-a`).
fn ip_range(word: &Word) -> Result<Vec<IpAddr>, ParseError> {
    let bad = |m: &str| ParseError::new(&word.loc, format!("{:?}: {m}", word.text));
    let text = word.text.as_str();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let (first, last): (u128, u128) = if let Some((addr, len)) = text.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| bad("invalid address"))?;
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = len.parse().map_err(|_| bad("invalid prefix length"))?;
        if len > bits {
            return Err(bad("prefix length too long"));
        }
        let n = to_int(ip);
        let host = if bits - len >= 128 {
            u128::MAX
        } else {
            (1u128 << (bits - len)) - 1
        };
        (n & !host, n | host)
    } else if let Some((addr, end)) = text.split_once('-') {
        let ip: IpAddr = addr.parse().map_err(|_| bad("invalid address"))?;
        let start = to_int(ip);
        let end_n = if let Ok(end_ip) = end.parse::<IpAddr>() {
            to_int(end_ip)
        } else if ip.is_ipv4() {
            let last: u128 = end
                .parse::<u8>()
                .map_err(|_| bad("invalid range end"))?
                .into();
            (start & !0xff) | last
        } else {
            let last =
                u128::from(u16::from_str_radix(end, 16).map_err(|_| bad("invalid range end"))?);
            (start & !0xffff) | last
        };
        (start, end_n)
    } else {
        return Err(bad("expected an IP address or a range"));
    };
    if last < first {
        return Err(bad("the range ends before it starts"));
    }
    if last - first >= u128::from(MAX_RANGE) {
        return Err(bad(&format!("more than {MAX_RANGE} addresses")));
    }
    let v4 = !text.contains(':');
    Ok((first..=last)
        .map(|n| {
            if v4 {
                IpAddr::from(std::net::Ipv4Addr::from(n as u32))
            } else {
                IpAddr::from(std::net::Ipv6Addr::from(n))
            }
        })
        .collect())
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Settings a virtual_server and a real_server pass down to checkers.
#[derive(Debug, Clone, Default)]
struct Inherited {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    inhibit_on_failure: Option<bool>,
    virtualhost: Option<String>,
}

impl Inherited {
    /// Takes `s` if it is one of the inherited settings.
    fn take(&mut self, s: &Statement, diags: &mut Diagnostics) -> Result<bool, ParseError> {
        match s.keyword.text.as_str() {
            "delay_loop" => self.delay_loop = Some(timer(one_arg(s, diags)?)?),
            "connect_timeout" => self.connect_timeout = Some(timer(one_arg(s, diags)?)?),
            "retry" | "nb_get_retry" | "nb_sock_retry" => {
                self.retry = Some(number(one_arg(s, diags)?, "retry")?)
            }
            "delay_before_retry" => self.delay_before_retry = Some(timer(one_arg(s, diags)?)?),
            "inhibit_on_failure" => self.inhibit_on_failure = Some(flag(s)?),
            "virtualhost" => self.virtualhost = Some(one_arg(s, diags)?.text.clone()),
            "warmup" => diags.push(
                s.loc(),
                Severity::Different,
                "warmup (a random delay before the first check) has no counterpart: the checker spreads its first probes itself",
            ),
            "alpha" => diags.push(
                s.loc(),
                Severity::Note,
                "alpha: managed mode always starts a real server it adds at weight 0 until its checks pass",
            ),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The parts of a virtual_server block that every service of it shares.
struct Pool {
    protocol: &'static str,
    scheduler: Option<String>,
    forward: Forward,
    persistence: Option<u32>,
    persistence_netmask: Option<String>,
    one_packet: bool,
    scheduler_flags: Vec<&'static str>,
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
            // (the packet's own port is used) and checks the port written.
            for rs in &mut service_real_servers {
                if let Some((ip, port)) = split_port(&rs.address) {
                    rs.address = ip.to_string();
                    if rs.check.port.is_none() && rs.check_address.is_none() && port != 0 {
                        rs.check.port = Some(port);
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

fn real_server(
    rs: &Statement,
    pool: &Pool,
    vs_inherited: &Inherited,
    mode: Mode,
    diags: &mut Diagnostics,
) -> Result<RealServer, ParseError> {
    let loc = rs.loc().clone();
    let managed = mode == Mode::Managed;
    let ip_word = one_or_more(rs, 1)?;
    let ip: IpAddr = ip_word.text.parse().map_err(|_| {
        ParseError::new(
            &ip_word.loc,
            format!("{:?}: invalid real server address", ip_word.text),
        )
    })?;
    let port = rs
        .args
        .get(1)
        .map(|w| number::<u16>(w, "port"))
        .transpose()?;
    let mut comments = vec![format!(
        "{}: real_server {}",
        loc.line_only(),
        model::address(ip, port)
    )];
    let mut inherited = vs_inherited.clone();
    let mut weight = 1;
    let mut method = pool.forward;
    let mut upper = None;
    let mut lower = None;
    let mut checkers = Vec::new();
    for s in rs.children() {
        if inherited.take(s, diags)? {
            continue;
        }
        let key = s.keyword.text.as_str();
        match key {
            "weight" => weight = number(one_arg(s, diags)?, "weight")?,
            "lvs_method" => method = forward(s, diags)?,
            "uthreshold" => upper = Some(number(one_arg(s, diags)?, "uthreshold")?),
            "lthreshold" => lower = Some(number(one_arg(s, diags)?, "lthreshold")?),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK"
            | "UDP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => checkers.push(s),
            "snmp_name" => {}
            "notify_up" | "notify_down" | "smtp_alert" => {
                let message = format!(
                    "{key} has no counterpart (the checker's /metrics and logs say each change)"
                );
                diags.push(s.loc(), Severity::Dropped, &message);
                comments.push(format!("{}: {message}", s.loc().line_only()));
            }
            _ => diags.push(
                s.loc(),
                Severity::Dropped,
                format!("unknown keyword {key:?} in real_server"),
            ),
        }
    }
    if managed && inherited.inhibit_on_failure != Some(true) {
        let message = "no inhibit_on_failure: keepalived removes a failed real server from the table; the checker sets its weight to 0 (connections drain, a persistent client stays until its template expires)";
        diags.push(&loc, Severity::Different, message);
        comments.push(message.into());
    }
    let supported = checkers.iter().position(|c| {
        matches!(
            c.keyword.text.as_str(),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET"
        )
    });
    for (i, c) in checkers.iter().enumerate() {
        if Some(i) == supported {
            continue;
        }
        let message = match supported {
            Some(_) => format!(
                "{}: a second checker; keepalived needs every checker to pass, the checker runs one check per real server",
                c.keyword.text
            ),
            None => format!(
                "{}: the checker has TCP, HTTP and HTTPS checks only; a TCP connect check to the real server's port stands in",
                c.keyword.text
            ),
        };
        diags.push(c.loc(), Severity::Dropped, &message);
        comments.push(format!("{}: {message}", c.loc().line_only()));
    }
    let (check, timing, check_address, source_address) = match supported.map(|i| checkers[i]) {
        Some(c) => checker(c, &inherited, port, &mut comments, diags)?,
        None => {
            if checkers.is_empty() {
                let message = "no checker block: keepalived never checks it (always up); a TCP connect check to its port stands in";
                diags.push(&loc, Severity::Different, message);
                comments.push(message.into());
            }
            let t = timing(&inherited, "TCP_CHECK", &loc, &mut comments, diags);
            (
                Check {
                    kind: CheckKind::Tcp,
                    port: None,
                },
                t,
                None,
                None,
            )
        }
    };
    Ok(RealServer {
        comments,
        address: model::address(ip, port),
        weight,
        forward: managed.then_some(method),
        upper_threshold: upper.filter(|u| managed && *u > 0),
        lower_threshold: lower.filter(|l| managed && *l > 0),
        check_address,
        source_address,
        timing,
        check,
    })
}

type Converted = (Check, Timing, Option<SocketAddr>, Option<IpAddr>);

fn checker(
    c: &Statement,
    rs_inherited: &Inherited,
    rs_port: Option<u16>,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Result<Converted, ParseError> {
    let kind = c.keyword.text.as_str();
    let mut inherited = rs_inherited.clone();
    let mut connect_ip: Option<IpAddr> = None;
    let mut connect_port: Option<u16> = None;
    let mut bindto = None;
    let mut urls = Vec::new();
    for s in c.children() {
        if inherited.take(s, diags)? {
            continue;
        }
        let key = s.keyword.text.as_str();
        match key {
            "connect_ip" => {
                let w = one_arg(s, diags)?;
                connect_ip = Some(w.text.parse().map_err(|_| ParseError::new(&w.loc, format!("{:?}: invalid connect_ip", w.text)))?);
            }
            "connect_port" => connect_port = Some(number(one_arg(s, diags)?, "connect_port")?),
            "bindto" => {
                let w = one_arg(s, diags)?;
                bindto = Some(w.text.parse().map_err(|_| ParseError::new(&w.loc, format!("{:?}: invalid bindto", w.text)))?);
            }
            "url" if kind != "TCP_CHECK" => urls.push(s),
            "log_all_failures" => {}
            "enable_sni" if kind == "SSL_GET" => comments.push(format!(
                "{}: enable_sni: the checker sends the host as SNI (server_name, else the Host header)",
                s.loc().line_only()
            )),
            "bind_port" | "bind_if" | "fwmark" | "http_protocol" | "fast_recovery" => {
                let message = format!("{kind} {key} has no counterpart in the checker");
                diags.push(s.loc(), Severity::Dropped, &message);
                comments.push(format!("{}: {message}", s.loc().line_only()));
            }
            _ => diags.push(s.loc(), Severity::Dropped, format!("unknown keyword {key:?} in {kind}")),
        }
    }
    let timing = timing(&inherited, kind, c.loc(), comments, diags);
    let (check_address, port) = match (connect_ip, connect_port) {
        (Some(ip), p) => match p.or(rs_port) {
            Some(p) => (Some(SocketAddr::new(ip, p)), None),
            None => {
                return Err(ParseError::new(
                    c.loc(),
                    "connect_ip without a port to connect to (set connect_port)",
                ))
            }
        },
        (None, p) => (None, p.filter(|p| Some(*p) != rs_port)),
    };
    let kind = match kind {
        "TCP_CHECK" => CheckKind::Tcp,
        _ => {
            let http = http(kind, &urls, &inherited, comments, diags)?;
            if kind == "SSL_GET" {
                comments.push(format!(
                    "{}: SSL_GET does not verify the certificate, nor does this check; to verify it, replace insecure_skip_verify with ca_file and server_name",
                    c.loc().line_only()
                ));
                CheckKind::Https(http)
            } else {
                CheckKind::Http(http)
            }
        }
    };
    Ok((Check { kind, port }, timing, check_address, bindto))
}

fn timing(
    inherited: &Inherited,
    kind: &str,
    loc: &Loc,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Timing {
    let interval = inherited.delay_loop.unwrap_or(Duration::from_secs(60));
    let mut timeout = inherited.connect_timeout.unwrap_or(Duration::from_secs(5));
    let retry = inherited.retry.unwrap_or(1);
    let retry_delay =
        inherited
            .delay_before_retry
            .unwrap_or(if matches!(kind, "HTTP_GET" | "SSL_GET") {
                Duration::from_secs(3)
            } else {
                Duration::from_secs(1)
            });
    if timeout > interval {
        let message = format!(
            "connect_timeout {} is longer than delay_loop {}: the checker's timeout is at most its interval, so {}",
            yaml::duration(timeout),
            yaml::duration(interval),
            yaml::duration(interval)
        );
        diags.push(loc, Severity::Different, &message);
        comments.push(format!("{}: {message}", loc.line_only()));
        timeout = interval;
    }
    if retry > 0 && retry_delay != interval {
        let message = format!(
            "keepalived checks {retry} more time(s), {} apart, before a real server is down ({} after the first failure); the checker probes every interval, so fall {} takes {}",
            yaml::duration(retry_delay),
            yaml::duration(retry_delay * retry),
            retry + 1,
            yaml::duration(interval * retry)
        );
        diags.push(loc, Severity::Different, &message);
        comments.push(format!("{}: {message}", loc.line_only()));
    }
    Timing {
        interval,
        timeout,
        rise: 1,
        fall: retry.saturating_add(1),
    }
}

fn http(
    kind: &str,
    urls: &[&Statement],
    inherited: &Inherited,
    comments: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Result<Http, ParseError> {
    let mut http = Http {
        host: inherited.virtualhost.clone(),
        ..Http::default()
    };
    let Some(url) = urls.first() else {
        let message = format!("{kind} without url: the checker asks for /");
        comments.push(message.clone());
        http.path = Some("/".into());
        return Ok(http);
    };
    for extra in &urls[1..] {
        let message =
            "a second url: keepalived needs every url to pass, the checker asks for one path";
        diags.push(extra.loc(), Severity::Dropped, message);
        comments.push(format!("{}: {message}", extra.loc().line_only()));
    }
    let mut regex: Option<(String, Loc)> = None;
    let mut no_match = None;
    for s in url.children() {
        let key = s.keyword.text.as_str();
        match key {
            "path" => http.path = Some(one_arg(s, diags)?.text.clone()),
            "status_code" => {
                if s.args.is_empty() {
                    return Err(ParseError::new(
                        s.loc(),
                        "status_code needs a code or a range",
                    ));
                }
                for w in &s.args {
                    let ok = match w.text.split_once('-') {
                        Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
                        None => w.text.parse::<u16>().is_ok(),
                    };
                    if !ok {
                        return Err(ParseError::new(
                            &w.loc,
                            format!(
                                "{:?}: expected a status code or a range like 200-299",
                                w.text
                            ),
                        ));
                    }
                    http.expect_status.push(w.text.clone());
                }
            }
            "virtualhost" => http.host = Some(one_arg(s, diags)?.text.clone()),
            "regex" => regex = Some((one_arg(s, diags)?.text.clone(), s.loc().clone())),
            "regex_no_match" => no_match = Some(s.loc().clone()),
            "digest" => {
                let message = "digest (an MD5 of the body) has no counterpart: the checker matches the body with a regex (body:), so the answer's content is not checked";
                diags.push(s.loc(), Severity::Dropped, message);
                comments.push(format!("{}: {message}", s.loc().line_only()));
            }
            "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => {
                let message =
                    format!("{key} has no counterpart (body: is a Rust regex over the whole body)");
                diags.push(s.loc(), Severity::Dropped, &message);
                comments.push(format!("{}: {message}", s.loc().line_only()));
            }
            _ => diags.push(
                s.loc(),
                Severity::Dropped,
                format!("unknown keyword {key:?} in url"),
            ),
        }
    }
    match (regex, no_match) {
        (Some((_, at)), Some(_)) => {
            let message = "regex with regex_no_match (the body must not match): the checker has no negative match, the regex is left out";
            diags.push(&at, Severity::Dropped, message);
            comments.push(format!("{}: {message}", at.line_only()));
        }
        (Some((re, at)), None) => match regex::Regex::new(&re) {
            Ok(_) => http.body = Some(re),
            Err(e) => {
                let message =
                    format!("regex {re:?} is not a regex the checker reads ({e}); left out");
                diags.push(&at, Severity::Dropped, &message);
                comments.push(format!("{}: {message}", at.line_only()));
            }
        },
        _ => {}
    }
    if http.path.is_none() {
        http.path = Some("/".into());
    }
    Ok(http)
}

fn forward(s: &Statement, diags: &mut Diagnostics) -> Result<Forward, ParseError> {
    let w = one_or_more(s, 1)?;
    let f = match w.text.to_ascii_uppercase().as_str() {
        "NAT" => Forward::Nat,
        "DR" => Forward::Dr,
        "TUN" => Forward::Tun,
        _ => {
            return Err(ParseError::new(
                &w.loc,
                format!("{:?}: expected NAT, DR or TUN", w.text),
            ))
        }
    };
    if let Some(extra) = s.args.get(1) {
        let ipip = s.args.len() == 3 && extra.text == "type" && s.args[2].text == "ipip";
        if !ipip {
            diags.push(
                &extra.loc,
                Severity::Dropped,
                "the tunnel type and checksum options have no counterpart: the checker's tun is IPIP",
            );
        }
    }
    Ok(f)
}

/// The value of `s`. keepalived reads one keyword per line (a brace
/// starts a new one) and ignores the words after its value, so
/// `connect_timeout 2 retry 0` sets no retry: said as a note.
fn one_arg<'a>(s: &'a Statement, diags: &mut Diagnostics) -> Result<&'a Word, ParseError> {
    match s.args.as_slice() {
        [w] => Ok(w),
        [] => Err(ParseError::new(
            s.loc(),
            format!("{} needs a value", s.keyword.text),
        )),
        [w, extra, ..] => {
            let rest: Vec<&str> = s.args[1..].iter().map(|w| w.text.as_str()).collect();
            diags.push(
                &extra.loc,
                Severity::Note,
                format!(
                    "{:?} after `{} {}` on the same line: keepalived reads one keyword a line and ignores it, and so does the import (put it on a line of its own)",
                    rest.join(" "),
                    s.keyword.text,
                    w.text
                ),
            );
            Ok(w)
        }
    }
}

/// The first argument of `s`, which needs at least `n`.
fn one_or_more(s: &Statement, n: usize) -> Result<&Word, ParseError> {
    if s.args.len() < n {
        return Err(ParseError::new(
            s.loc(),
            format!("{} needs {n} value(s)", s.keyword.text),
        ));
    }
    Ok(&s.args[0])
}

/// The `n`-th word of `s` (1-based, the keyword's arguments).
fn one_or_more_at(s: &Statement, n: usize) -> Result<&Word, ParseError> {
    s.args
        .get(n - 1)
        .ok_or_else(|| ParseError::new(s.loc(), format!("{} needs {n} value(s)", s.keyword.text)))
}

fn number<T: std::str::FromStr>(w: &Word, what: &str) -> Result<T, ParseError> {
    w.text.parse().map_err(|_| {
        ParseError::new(
            &w.loc,
            format!("{what} {:?}: expected a number in range", w.text),
        )
    })
}

/// keepalived's TIMER: seconds, with a fraction allowed (resolution: the
/// checker's milliseconds).
fn timer(w: &Word) -> Result<Duration, ParseError> {
    let seconds: f64 = w
        .text
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .ok_or_else(|| {
            ParseError::new(
                &w.loc,
                format!("{:?}: expected seconds, like 3 or 1.5", w.text),
            )
        })?;
    let millis = (seconds * 1000.0).round() as u64;
    if millis == 0 {
        return Err(ParseError::new(
            &w.loc,
            format!("{:?}: the checker needs at least 1 ms", w.text),
        ));
    }
    Ok(Duration::from_millis(millis))
}

/// A flag that may be bare or take a boolean.
fn flag(s: &Statement) -> Result<bool, ParseError> {
    match s.args.first().map(|w| w.text.to_ascii_lowercase()) {
        None => Ok(true),
        Some(v) if matches!(v.as_str(), "yes" | "true" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "no" | "false" | "off") => Ok(false),
        Some(v) => Err(ParseError::new(
            &s.args[0].loc,
            format!("{v:?}: expected yes or no"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn word(text: &str) -> Word {
        Word {
            text: text.into(),
            loc: Loc {
                file: Arc::new("k.conf".into()),
                line: 1,
                column: 1,
            },
        }
    }

    fn range(text: &str) -> Vec<String> {
        ip_range(&word(text))
            .expect("a range")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn group_ranges_expand_as_keepalived_writes_them() {
        assert_eq!(
            range("198.18.0.21-23"),
            ["198.18.0.21", "198.18.0.22", "198.18.0.23"]
        );
        assert_eq!(
            range("198.18.0.255-198.18.1.0"),
            ["198.18.0.255", "198.18.1.0"]
        );
        assert_eq!(range("198.18.0.8/31"), ["198.18.0.8", "198.18.0.9"]);
        assert_eq!(range("2001:db8::a-b"), ["2001:db8::a", "2001:db8::b"]);
        assert!(ip_range(&word("198.18.0.9-1")).is_err());
        assert!(
            ip_range(&word("198.18.0.0/8")).is_err(),
            "more than MAX_RANGE"
        );
    }

    #[test]
    fn timers_are_seconds_with_fractions() {
        assert_eq!(
            timer(&word("1.5")).expect("a timer"),
            Duration::from_millis(1500)
        );
        assert!(timer(&word("0")).is_err());
        assert!(timer(&word("soon")).is_err());
    }

    fn rs(weight: u32) -> RealServer {
        RealServer {
            comments: Vec::new(),
            address: "198.18.1.11:80".into(),
            weight,
            forward: None,
            upper_threshold: None,
            lower_threshold: None,
            check_address: None,
            source_address: None,
            timing: Timing {
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 1,
            },
            check: Check {
                kind: CheckKind::Tcp,
                port: None,
            },
        }
    }

    #[test]
    fn a_quorum_of_weights_is_a_count_of_real_servers() {
        let at = word("").loc;
        let mut diags = Diagnostics::default();
        let mut comments = Vec::new();
        // Equal weights: exact.
        let equal = [rs(2), rs(2), rs(2)];
        assert_eq!(
            min_up(Some(&(4, at.clone())), &equal, &mut comments, &mut diags),
            2
        );
        assert_eq!(diags.worst(), None);
        // Unequal: the heaviest reach it with this many, said as a difference.
        let unequal = [rs(5), rs(1), rs(1)];
        assert_eq!(
            min_up(Some(&(6, at.clone())), &unequal, &mut comments, &mut diags),
            2
        );
        assert_eq!(diags.worst(), Some(Severity::Different));
        // Out of reach: all of them.
        assert_eq!(
            min_up(Some(&(99, at)), &equal, &mut comments, &mut diags),
            3
        );
        assert_eq!(min_up(None, &equal, &mut comments, &mut diags), 1);
    }
}
