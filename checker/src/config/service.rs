//! A `services:` entry, from [`raw::Service`] to a [`VirtualService`]:
//! the rules across its fields, its real servers with what they inherit
//! (from the service, then `defaults`), and its checks built.
//!
//! A service needs to know what the file says elsewhere (`mode`,
//! `defaults`, the services before it): [`ServiceSeed`] carries that
//! [`Context`] into the service's own deserialization, where serde_yaml
//! still knows the service's line and column and attaches them to its
//! errors.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipvs::constants::IP_VS_SCHEDNAME_MAXLEN;
use ipvs::{
    AddressFamily, DestinationKey, Netmask, Protocol, ServiceFlags, ServiceKey, MAX_WEIGHT,
};
use serde::de::{self, value::MapAccessDeserializer, DeserializeSeed, Deserializer, MapAccess};
use serde::Deserialize;

use super::checks::CheckNode;
use super::hooks::{self, Hooks, RawHooks};
use super::scalars::{forward_method, Family, Proto};
use super::{
    raw, vip, Check, CheckKind, CheckTarget, HttpsCheck, Mode, Quorum, RealServer, SorryServer,
    Timing, VirtualService,
};

/// Built-in timing when neither the defaults nor a service set it.
const DEFAULT_TIMING: Timing = Timing {
    interval: Duration::from_secs(2),
    timeout: Duration::from_secs(1),
    rise: 2,
    fall: 3,
};

/// What validating a service needs from the rest of the file.
#[derive(Debug)]
pub(super) struct Context {
    /// Where relative file names start.
    base: PathBuf,
    mode: Mode,
    defaults: Inherited,
    services_seen: HashSet<ServiceKey>,
    /// Each check node built so far, by the node's address; the node is
    /// kept so that the address is not reused while this lives. A check
    /// shared by many real servers (the service's, the defaults') is
    /// built once, and its files read once.
    checks: HashMap<usize, (Arc<CheckNode>, Arc<Check>)>,
    /// The defaults' `hooks:` as written, until [`Context::build_default_hooks`].
    default_hooks_raw: Option<RawHooks>,
    /// The defaults' hooks, which a service without `hooks:` runs.
    pub default_hooks: Arc<Hooks>,
}

impl Context {
    /// The context of a file whose relative names start at `base`, with
    /// its `mode` and `defaults` (read by the first pass).
    /// The error is a rule of `defaults` broken (`check` and `checks`
    /// both set).
    pub fn new(base: &Path, mode: Mode, defaults: Option<raw::Settings>) -> Result<Self, String> {
        let defaults = defaults.unwrap_or_default();
        let checks = own_checks(defaults.check, defaults.checks)?;
        Ok(Context {
            base: base.to_owned(),
            mode,
            defaults: Inherited {
                interval: defaults.interval.map(|d| d.0),
                timeout: defaults.timeout.map(|d| d.0),
                rise: defaults.rise.map(|t| t.0),
                fall: defaults.fall.map(|t| t.0),
                weight: defaults.weight.map(|w| w.0),
                source: defaults.source_address,
                slow_start: defaults.slow_start.map(|d| d.0),
                through_vip: defaults.probe_through_vip,
                checks,
            },
            services_seen: HashSet::new(),
            checks: HashMap::new(),
            default_hooks_raw: defaults.hooks,
            default_hooks: Arc::default(),
        })
    }

    /// Checks the defaults' hooks and reads their files.
    pub fn build_default_hooks(&mut self) -> Result<(), String> {
        if let Some(raw) = self.default_hooks_raw.take() {
            self.default_hooks =
                Arc::new(hooks::resolve(&raw, &self.base).map_err(|e| format!("defaults.{e}"))?);
        }
        Ok(())
    }

    /// Builds the defaults' checks, if set, so that their files are read
    /// (and a broken one reported) even when every service sets its own.
    pub fn build_default_check(&mut self) -> Result<(), String> {
        for node in self.defaults.checks.clone().iter().flatten() {
            self.check(node)
                .map_err(|e| format!("defaults.check: {e}"))?;
        }
        Ok(())
    }

    /// The check of `node`, built once.
    fn check(&mut self, node: &Arc<CheckNode>) -> Result<Arc<Check>, String> {
        let id = Arc::as_ptr(node) as usize;
        if let Some((_, check)) = self.checks.get(&id) {
            return Ok(check.clone());
        }
        let check = Arc::new(node.resolve(&self.base)?);
        self.checks.insert(id, (node.clone(), check.clone()));
        Ok(check)
    }
}

/// Settings a level passes down to the next, each unset unless some level
/// above set it.
#[derive(Debug, Clone, Default)]
struct Inherited {
    interval: Option<Duration>,
    timeout: Option<Duration>,
    rise: Option<u32>,
    fall: Option<u32>,
    weight: Option<u32>,
    source: Option<IpAddr>,
    slow_start: Option<Duration>,
    /// `probe_through_vip`.
    through_vip: Option<bool>,
    /// `check:` (one) or `checks:` (all must pass).
    checks: Option<Vec<Arc<CheckNode>>>,
}

/// A level's own checks: `check:` is a list of one; both set, or an
/// empty `checks:`, is an error.
fn own_checks(
    check: Option<CheckNode>,
    checks: Option<Vec<CheckNode>>,
) -> Result<Option<Vec<Arc<CheckNode>>>, String> {
    match (check, checks) {
        (Some(_), Some(_)) => {
            Err("set check (one check) or checks (several, all must pass), not both".into())
        }
        (Some(one), None) => Ok(Some(vec![Arc::new(one)])),
        (None, Some(list)) if list.is_empty() => Err(
            "checks is empty: list at least one check, or leave it out for a tcp connect".into(),
        ),
        (None, Some(list)) => Ok(Some(list.into_iter().map(Arc::new).collect())),
        (None, None) => Ok(None),
    }
}

/// Deserializes one service mapping and validates it in `Context`.
pub(super) struct ServiceSeed<'a>(pub &'a mut Context);

impl<'de> DeserializeSeed<'de> for ServiceSeed<'_> {
    type Value = VirtualService;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<VirtualService, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for ServiceSeed<'_> {
    type Value = VirtualService;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<VirtualService, A::Error> {
        let raw = raw::Service::deserialize(MapAccessDeserializer::new(map))?;
        // Still at the service's mapping: the error gets its place.
        service(raw, self.0).map_err(de::Error::custom)
    }
}

/// A service deserialized on its own, outside a config file: validated as
/// in `mode: weights` with no defaults, relative file names against the
/// current directory.
impl<'de> Deserialize<'de> for VirtualService {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut context =
            Context::new(Path::new(""), Mode::Weights, None).map_err(de::Error::custom)?;
        ServiceSeed(&mut context).deserialize(d)
    }
}

fn service(s: raw::Service, context: &mut Context) -> Result<VirtualService, String> {
    let key = match (s.address, s.fwmark) {
        (Some(_), Some(_)) => {
            return Err("set either address or fwmark, not both".into());
        }
        (None, None) => {
            return Err("a service needs an address (with protocol) or a fwmark".into());
        }
        (Some(addr), None) => {
            if s.family.is_some() {
                return Err("family is only for fwmark services (the address says it)".into());
            }
            match s.protocol.unwrap_or(Proto::Tcp) {
                Proto::Tcp => ServiceKey::tcp(addr),
                Proto::Udp => ServiceKey::udp(addr),
                Proto::Sctp => ServiceKey::sctp(addr),
            }
        }
        (None, Some(mark)) => {
            if s.protocol.is_some() {
                return Err(
                    "protocol is not for fwmark services: the mark selects the packets".into(),
                );
            }
            if mark == 0 {
                return Err("fwmark must not be 0".into());
            }
            let family = match s.family.unwrap_or(Family::Ipv4) {
                Family::Ipv4 => AddressFamily::Inet,
                Family::Ipv6 => AddressFamily::Inet6,
            };
            ServiceKey::fwmark(mark, family)
        }
    };
    let mode = context.mode;
    if mode == Mode::Weights {
        for (name, set) in [
            ("scheduler", s.scheduler.is_some()),
            ("scheduler_flags", s.scheduler_flags.is_some()),
            ("one_packet", s.one_packet.is_some()),
            ("persistence", s.persistence.is_some()),
            ("persistence_netmask", s.persistence_netmask.is_some()),
        ] {
            if set {
                return Err(format!("{name} is only used in mode: managed"));
            }
        }
        let defaults_through_vip = context.defaults.through_vip;
        for rs in &s.real_servers {
            // The probe service of `probe_through_vip` forwards as the
            // table's real server does, which weights mode is told.
            let through_vip = rs
                .probe_through_vip
                .or(s.probe_through_vip)
                .or(defaults_through_vip)
                .unwrap_or(false);
            for (name, set) in [
                ("forward", rs.forward.is_some() && !through_vip),
                ("upper_threshold", rs.upper_threshold.is_some()),
                ("lower_threshold", rs.lower_threshold.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "real server {}: {name} is only used in mode: managed",
                        rs.address.ip
                    ));
                }
            }
        }
    }
    let scheduler = s.scheduler.unwrap_or_else(|| "wlc".into());
    // The names are kernel module suffixes (ip_vs_wrr), and the kernel's
    // limit counts the NUL.
    if scheduler.is_empty()
        || scheduler.len() >= IP_VS_SCHEDNAME_MAXLEN
        || !scheduler
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "invalid scheduler {scheduler:?}: expected a kernel scheduler name such as rr, wrr, lc, wlc, sh or mh"
        ));
    }
    let mut flags = ServiceFlags::default();
    for name in s.scheduler_flags.iter().flatten() {
        let flag = match (scheduler.as_str(), name.as_str()) {
            ("sh", "sh-fallback") | ("mh", "mh-fallback") => ServiceFlags::SCHED1,
            ("sh", "sh-port") | ("mh", "mh-port") => ServiceFlags::SCHED2,
            _ => {
                return Err(format!(
                    "scheduler flag {name:?} does not belong to scheduler {scheduler}: \
                     sh takes sh-fallback and sh-port, mh takes mh-fallback and mh-port"
                ))
            }
        };
        flags |= flag;
    }
    if s.one_packet == Some(true) {
        if !matches!(
            key,
            ServiceKey::Addr {
                protocol: Protocol::Udp,
                ..
            }
        ) {
            return Err("one_packet is only for UDP services".into());
        }
        flags |= ServiceFlags::ONE_PACKET;
    }
    if s.persistence == Some(0) {
        return Err("persistence must be at least 1 (seconds); leave it out for none".into());
    }
    let netmask = match &s.persistence_netmask {
        None => None,
        Some(_) if s.persistence.is_none() => {
            return Err("persistence_netmask needs persistence".into());
        }
        Some(text) => Some(netmask(text, key.family())?),
    };
    if s.real_servers.is_empty() {
        return Err(format!("service {key} has no real servers"));
    }
    let mut sorry_server = None;
    if let Some(q) = &s.quorum {
        if let Some(sorry) = &q.sorry_server {
            let sorry_key = sorry.address.destination(&key);
            if sorry_key.family() != key.family() {
                return Err(format!(
                    "quorum.sorry_server {sorry_key} is not of the service's address family"
                ));
            }
            if s.real_servers
                .iter()
                .any(|rs| rs.address.destination(&key) == sorry_key)
            {
                return Err(format!(
                    "quorum.sorry_server {sorry_key} is also a real server of the service"
                ));
            }
            if mode == Mode::Weights && sorry.forward.is_some() {
                return Err("quorum.sorry_server.forward is only used in mode: managed".into());
            }
            let weight = sorry.weight.map(|w| w.0).unwrap_or(1);
            if weight == 0 {
                return Err("quorum.sorry_server.weight must be at least 1".into());
            }
            sorry_server = Some(SorryServer {
                key: sorry_key,
                weight,
                forward: forward_method(sorry.forward),
            });
        }
        if q.min_up == 0 {
            return Err("quorum.min_up must be at least 1".into());
        }
        if q.min_up as usize > s.real_servers.len() {
            return Err(format!(
                "quorum.min_up {} is more than the service's {} real servers",
                q.min_up,
                s.real_servers.len()
            ));
        }
    }
    let defaults = &context.defaults;
    let inherited = Inherited {
        interval: s.interval.map(|d| d.0).or(defaults.interval),
        timeout: s.timeout.map(|d| d.0).or(defaults.timeout),
        rise: s.rise.map(|t| t.0).or(defaults.rise),
        fall: s.fall.map(|t| t.0).or(defaults.fall),
        weight: s.weight.map(|w| w.0).or(defaults.weight),
        source: s.source_address.or(defaults.source),
        slow_start: s.slow_start.map(|d| d.0).or(defaults.slow_start),
        through_vip: s.probe_through_vip.or(defaults.through_vip),
        checks: own_checks(s.check, s.checks)?.or_else(|| defaults.checks.clone()),
    };
    for node in inherited.checks.iter().flatten() {
        // The service's own check is built even if every real server sets
        // its own, so a broken file in it is reported.
        context.check(node).map_err(|e| format!("check: {e}"))?;
    }
    let mut real_servers = Vec::with_capacity(s.real_servers.len());
    let mut seen = HashSet::new();
    for rs in s.real_servers {
        let real_server = real_server(&key, rs, &inherited, context)?;
        if !seen.insert(real_server.key) {
            return Err(format!("real server {} is listed twice", real_server.key));
        }
        real_servers.push(real_server);
    }
    if !context.services_seen.insert(key) {
        return Err(format!("service {key} is listed twice"));
    }
    // A service's own hooks replace the defaults' whole.
    let hooks = match &s.hooks {
        Some(raw) => Arc::new(hooks::resolve(raw, &context.base)?),
        None => context.default_hooks.clone(),
    };
    Ok(VirtualService {
        key,
        scheduler,
        flags,
        persistence: s.persistence,
        netmask,
        quorum: s.quorum.map(|q| Quorum {
            min_up: q.min_up,
            sorry_server,
        }),
        real_servers,
        hooks,
    })
}

/// `persistence_netmask`: a dotted IPv4 mask for an IPv4 service, a prefix
/// length (1 to 128) for an IPv6 one.
fn netmask(text: &str, family: AddressFamily) -> Result<Netmask, String> {
    match family {
        AddressFamily::Inet => {
            let mask: std::net::Ipv4Addr = text.parse().map_err(|_| {
                format!("invalid persistence_netmask {text:?}: an IPv4 service takes a mask like 255.255.255.0")
            })?;
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!(
                    "invalid persistence_netmask {text:?}: the ones must be contiguous, like 255.255.255.0"
                ));
            }
            Ok(Netmask::V4(mask))
        }
        AddressFamily::Inet6 => match text.parse::<u32>() {
            Ok(plen @ 1..=128) => Ok(Netmask::V6(plen)),
            _ => Err(format!(
                "invalid persistence_netmask {text:?}: an IPv6 service takes a prefix length from 1 to 128"
            )),
        },
    }
}

/// One real server with what it inherits; errors name it, since they are
/// reported at its service's line.
fn real_server(
    service: &ServiceKey,
    rs: raw::RealServer,
    inherited: &Inherited,
    context: &mut Context,
) -> Result<RealServer, String> {
    let key = rs.address.destination(service);
    let name = |what: String| format!("real server {key}: {what}");
    let timing = Timing {
        interval: rs
            .interval
            .map(|d| d.0)
            .or(inherited.interval)
            .unwrap_or(DEFAULT_TIMING.interval),
        timeout: rs
            .timeout
            .map(|d| d.0)
            .or(inherited.timeout)
            .unwrap_or(DEFAULT_TIMING.timeout),
        rise: rs
            .rise
            .map(|t| t.0)
            .or(inherited.rise)
            .unwrap_or(DEFAULT_TIMING.rise),
        fall: rs
            .fall
            .map(|t| t.0)
            .or(inherited.fall)
            .unwrap_or(DEFAULT_TIMING.fall),
    };
    if timing.timeout > timing.interval {
        return Err(name(format!(
            "timeout {:?} is longer than interval {:?}",
            timing.timeout, timing.interval
        )));
    }
    let forward = forward_method(rs.forward);
    let through = match rs.probe_through_vip.or(inherited.through_vip) {
        Some(true) => Some(
            vip::through_vip(
                service,
                &rs.address,
                rs.check_address,
                rs.forward,
                context.mode,
            )
            .map_err(name)?,
        ),
        _ => None,
    };
    let nodes = own_checks(rs.check, rs.checks)
        .map_err(name)?
        .or_else(|| inherited.checks.clone());
    let mut checks = Vec::new();
    for node in nodes.iter().flatten() {
        let check = context
            .check(node)
            .map_err(|e| name(format!("check: {e}")))?;
        checks.push(check_target(&key, rs.check_address, check, &timing, through).map_err(name)?);
    }
    if checks.is_empty() {
        let tcp = Arc::new(Check::default_tcp());
        checks.push(check_target(&key, rs.check_address, tcp, &timing, through).map_err(name)?);
    }
    let upper_threshold = rs.upper_threshold.unwrap_or(0);
    let lower_threshold = rs.lower_threshold.unwrap_or(0);
    if upper_threshold > MAX_WEIGHT {
        return Err(name(format!(
            "upper_threshold {upper_threshold} is out of range: IPVS accepts 0 to {MAX_WEIGHT}"
        )));
    }
    if lower_threshold > upper_threshold {
        return Err(name(format!(
            "lower_threshold {lower_threshold} is above upper_threshold {upper_threshold} (the kernel refuses it; 0 is none)"
        )));
    }
    Ok(RealServer {
        key,
        weight: rs.weight.map(|w| w.0).or(inherited.weight).unwrap_or(1),
        forward,
        upper_threshold,
        lower_threshold,
        slow_start: rs.slow_start.map(|d| d.0).or(inherited.slow_start),
        source: rs.source_address.or(inherited.source),
        timing,
        checks,
    })
}

/// One check of a real server with where it probes: `check_address`
/// moves every check's probe to its address, and gives its port to the
/// checks that set none (`port:`); else the real server's own.
fn check_target(
    key: &DestinationKey,
    check_address: Option<SocketAddr>,
    check: Arc<Check>,
    timing: &Timing,
    through: Option<vip::ThroughVip>,
) -> Result<CheckTarget, String> {
    if through.is_some() {
        vip::refuse_check(&check)?;
    }
    let keep_alive = match &check.kind {
        CheckKind::Http(http) | CheckKind::Https(HttpsCheck { http, .. }) => http.keep_alive,
        _ => None,
    };
    if let Some(keep_alive) = keep_alive.filter(|k| *k <= timing.interval) {
        return Err(format!(
            "check keep_alive {keep_alive:?} is not longer than interval {:?}: no connection would serve a second probe",
            timing.interval
        ));
    }
    let base = match through {
        // The probe goes to the VIP (the service's address, see
        // `through_vip`), IPVS takes it to the real server.
        Some(t) => t.vip,
        None => check_address.unwrap_or(key.addr),
    };
    let target = SocketAddr::new(base.ip(), check.port.unwrap_or(base.port()));
    if target.port() == 0 && check.kind.needs_port() {
        return Err(
            "no port to probe: set check.port or check_address (the real server has port 0)".into(),
        );
    }
    Ok(CheckTarget {
        check,
        target,
        through: through.map(|t| t.through),
    })
}
