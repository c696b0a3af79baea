//! From [`super::raw`] to the typed config, one node at a time.
//!
//! Each typed node is validated inside its own `Deserialize` (a map visitor
//! that deserializes the raw struct and then runs its `TryFrom`), because
//! that is the one moment serde_yaml still knows the node's line and column
//! and attaches them to the error. A `#[serde(try_from)]` would run after
//! the node is done, and the error would point at the enclosing list.
//!
//! Two passes over the text: the first reads only `mode` and `defaults`,
//! the second everything else, with those two known, so that each service
//! is validated against what it inherits wherever `defaults` stands in the
//! file. The second pass reads them from a thread-local [`Context`] that
//! [`parse`] sets and clears, since serde gives a `Deserialize` impl no
//! other way to receive them through derived structs.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipvs::{
    AddressFamily, DestinationKey, ForwardMethod, Netmask, Protocol, ServiceFlags, ServiceKey,
    MAX_WEIGHT,
};
use regex::Regex;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{
    raw, Check, CheckKind, Config, HttpCheck, HttpsCheck, Mode, Quorum, RealServer, SorryServer,
    Timing, TlsCheck, TlsVersion, VirtualService,
};

/// Built-in timing when neither the defaults nor a service set it.
const DEFAULT_TIMING: Timing = Timing {
    interval: Duration::from_secs(2),
    timeout: Duration::from_secs(1),
    rise: 2,
    fall: 3,
};

/// A parse or validation error before the file name is added.
#[derive(Debug)]
pub(super) struct Located {
    pub location: Option<(usize, usize)>,
    pub message: String,
}

/// What the second pass needs to know while validating a service.
struct Context {
    base: PathBuf,
    mode: Mode,
    defaults: Inherited,
    services_seen: HashSet<ServiceKey>,
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
    check: Option<Arc<Check>>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Clears the context however [`parse`] returns.
struct ContextGuard;

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.borrow_mut().take());
    }
}

fn with_context<T>(f: impl FnOnce(&mut Context) -> T) -> T {
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        // parse() always sets it before deserializing a node that reads it.
        let context = c.as_mut().expect("config context is set by parse()");
        f(context)
    })
}

/// Both passes over `text`; relative file names resolve against `base`.
pub(super) fn parse(text: &str, base: &Path) -> Result<Config, Located> {
    let _guard = ContextGuard;
    CONTEXT.with(|c| {
        *c.borrow_mut() = Some(Context {
            base: base.to_owned(),
            mode: Mode::Weights,
            defaults: Inherited::default(),
            services_seen: HashSet::new(),
        })
    });
    if text.trim().is_empty() {
        return Err(Located {
            location: None,
            message: "the file is empty: it needs at least `services:`".into(),
        });
    }
    let preamble: raw::Preamble = serde_yaml::from_str(text).map_err(located)?;
    let mode = preamble.mode.unwrap_or(Mode::Weights);
    let defaults = preamble.defaults.map(inherit_defaults).unwrap_or_default();
    with_context(|c| {
        c.mode = mode;
        c.defaults = defaults;
    });
    let file: raw::File = serde_yaml::from_str(text).map_err(located)?;
    if file.services.is_empty() {
        return Err(Located {
            location: None,
            message: "services: the list is empty: nothing to check".into(),
        });
    }
    let state_file = match (mode, file.state_file) {
        (Mode::Managed, None) => {
            return Err(Located {
                location: None,
                message: "mode: managed needs state_file: the file where the checker records \
                          the services and real servers it created, the only ones it deletes"
                    .into(),
            })
        }
        (Mode::Managed, Some(path)) if path.trim().is_empty() => {
            return Err(Located {
                location: None,
                message: "state_file: must not be empty".into(),
            })
        }
        (Mode::Managed, Some(path)) => Some(base.join(path)),
        (Mode::Weights, Some(_)) => {
            return Err(Located {
                location: None,
                message: "state_file is only used in mode: managed (weights mode creates and \
                          deletes nothing)"
                    .into(),
            })
        }
        (Mode::Weights, None) => None,
    };
    Ok(Config {
        mode,
        state_file,
        set_expire_quiescent_template: file.set_expire_quiescent_template.unwrap_or(false),
        services: file.services,
    })
}

/// serde_yaml's error, its trailing " at line L column C" moved into
/// `location`.
fn located(e: serde_yaml::Error) -> Located {
    let mut message = e.to_string();
    let location = e.location().map(|l| (l.line(), l.column()));
    if let Some((line, column)) = location {
        let suffix = format!(" at line {line} column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    Located { location, message }
}

fn inherit_defaults(s: raw::Settings) -> Inherited {
    Inherited {
        interval: s.interval.map(|d| d.0),
        timeout: s.timeout.map(|d| d.0),
        rise: s.rise.map(|t| t.0),
        fall: s.fall.map(|t| t.0),
        weight: s.weight.map(|w| w.0),
        source: s.source_address,
        slow_start: s.slow_start.map(|d| d.0),
        check: s.check.map(Arc::new),
    }
}

/// Deserializes the raw struct `R` of a mapping and validates it into `T`
/// while the deserializer is still at that mapping (see the module docs).
struct ValidatingVisitor<R, T>(PhantomData<(R, T)>);

impl<'de, R, T> Visitor<'de> for ValidatingVisitor<R, T>
where
    R: Deserialize<'de>,
    T: TryFrom<R, Error = String>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let raw = R::deserialize(MapAccessDeserializer::new(map))?;
        T::try_from(raw).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValidatingVisitor::<raw::Check, Check>(PhantomData))
    }
}

impl<'de> Deserialize<'de> for VirtualService {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValidatingVisitor::<raw::Service, VirtualService>(
            PhantomData,
        ))
    }
}

/// A duration: `500ms`, `2s`, `1m30s`, `1h`; more than zero.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {s:?}: expected a number with a unit (ms, s, m, h), like 500ms, 2s or 1m30s")
    };
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!("duration {s:?} must be more than 0"));
    }
    Ok(total)
}

/// `rise` and `fall`: at least 1.
#[derive(Debug, Clone, Copy)]
pub(super) struct Threshold(pub u32);

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            0 => Err(de::Error::custom(
                "rise and fall must be at least 1 (consecutive results that change the state), got 0",
            )),
            n => Ok(Threshold(n)),
        }
    }
}

/// A weight IPVS accepts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Weight(pub u32);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        u32::try_from(n)
            .ok()
            .filter(|w| *w <= MAX_WEIGHT)
            .map(Weight)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "weight {n} is out of range: IPVS accepts 0 to {MAX_WEIGHT}"
                ))
            })
    }
}

/// A real server address: `IP:PORT`, `[IPv6]:PORT`, or a bare IP (the
/// service's port; port 0 for a firewall-mark service).
#[derive(Debug, Clone, Copy)]
pub(super) struct RsAddress {
    ip: IpAddr,
    port: Option<u16>,
}

impl<'de> Deserialize<'de> for RsAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(RsAddress {
                ip: addr.ip(),
                port: Some(addr.port()),
            });
        }
        s.parse::<IpAddr>()
            .map(|ip| RsAddress { ip, port: None })
            .map_err(|_| {
                de::Error::custom(format!(
                    "invalid real server address {s:?}: expected IP, IP:PORT or [IPv6]:PORT"
                ))
            })
    }
}

/// `forward:` of a real server.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Forward {
    Nat,
    Dr,
    Tun,
}

/// `protocol:` of a service.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Proto {
    Tcp,
    Udp,
    Sctp,
}

/// `family:` of a firewall-mark service.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Family {
    Ipv4,
    Ipv6,
}

impl TryFrom<raw::Service> for VirtualService {
    type Error = String;

    fn try_from(s: raw::Service) -> Result<Self, String> {
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
        let (mode, defaults) = with_context(|c| (c.mode, c.defaults.clone()));
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
            for rs in &s.real_servers {
                for (name, set) in [
                    ("forward", rs.forward.is_some()),
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
        // The kernel's IP_VS_SCHEDNAME_MAXLEN is 16 with the NUL; the
        // names are module suffixes (ip_vs_wrr).
        if scheduler.is_empty()
            || scheduler.len() > 15
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
                let port = match (sorry.address.port, &key) {
                    (Some(port), _) => port,
                    (None, ServiceKey::Addr { addr, .. }) => addr.port(),
                    (None, ServiceKey::Fwmark { .. }) => 0,
                };
                let sorry_key = DestinationKey::new(SocketAddr::new(sorry.address.ip, port));
                if sorry_key.family() != key.family() {
                    return Err(format!(
                        "quorum.sorry_server {sorry_key} is not of the service's address family"
                    ));
                }
                if s.real_servers.iter().any(|rs| {
                    rs.address.ip == sorry.address.ip
                        && rs.address.port.or(Some(port)) == Some(port)
                }) {
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
        let inherited = Inherited {
            interval: s.interval.map(|d| d.0).or(defaults.interval),
            timeout: s.timeout.map(|d| d.0).or(defaults.timeout),
            rise: s.rise.map(|t| t.0).or(defaults.rise),
            fall: s.fall.map(|t| t.0).or(defaults.fall),
            weight: s.weight.map(|w| w.0).or(defaults.weight),
            source: s.source_address.or(defaults.source),
            slow_start: s.slow_start.map(|d| d.0).or(defaults.slow_start),
            check: s.check.map(Arc::new).or(defaults.check),
        };
        let mut real_servers = Vec::with_capacity(s.real_servers.len());
        let mut seen = HashSet::new();
        for rs in s.real_servers {
            let real_server = real_server(&key, rs, &inherited)?;
            if !seen.insert(real_server.key) {
                return Err(format!("real server {} is listed twice", real_server.key));
            }
            real_servers.push(real_server);
        }
        if !with_context(|c| c.services_seen.insert(key)) {
            return Err(format!("service {key} is listed twice"));
        }
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
        })
    }
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

fn forward_method(forward: Option<Forward>) -> ForwardMethod {
    match forward.unwrap_or(Forward::Nat) {
        Forward::Nat => ForwardMethod::Masquerade,
        Forward::Dr => ForwardMethod::DirectRoute,
        Forward::Tun => ForwardMethod::Tunnel,
    }
}

/// One real server with what it inherits; errors name it, since they are
/// reported at its service's line.
fn real_server(
    service: &ServiceKey,
    rs: raw::RealServer,
    inherited: &Inherited,
) -> Result<RealServer, String> {
    let port = match (rs.address.port, service) {
        (Some(port), _) => port,
        (None, ServiceKey::Addr { addr, .. }) => addr.port(),
        (None, ServiceKey::Fwmark { .. }) => 0,
    };
    let key = DestinationKey::new(SocketAddr::new(rs.address.ip, port));
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
    let check = rs
        .check
        .map(Arc::new)
        .or_else(|| inherited.check.clone())
        .unwrap_or_else(|| {
            Arc::new(Check {
                port: None,
                kind: CheckKind::Tcp,
            })
        });
    let keep_alive = match &check.kind {
        CheckKind::Http(http) | CheckKind::Https(HttpsCheck { http, .. }) => http.keep_alive,
        CheckKind::Tcp => None,
    };
    if let Some(keep_alive) = keep_alive.filter(|k| *k <= timing.interval) {
        return Err(name(format!(
            "check keep_alive {keep_alive:?} is not longer than interval {:?}: no connection would serve a second probe",
            timing.interval
        )));
    }
    let target = match rs.check_address {
        Some(addr) => addr,
        None => SocketAddr::new(key.addr.ip(), check.port.unwrap_or(port)),
    };
    if target.port() == 0 {
        return Err(name(
            "no port to probe: set check.port or check_address (the real server has port 0)".into(),
        ));
    }
    let forward = forward_method(rs.forward);
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
        target,
        source: rs.source_address.or(inherited.source),
        timing,
        check,
    })
}

impl TryFrom<raw::Check> for Check {
    type Error = String;

    fn try_from(c: raw::Check) -> Result<Self, String> {
        if c.port == Some(0) {
            return Err("port must not be 0".into());
        }
        let http_fields = [
            ("method", c.method.is_some()),
            ("path", c.path.is_some()),
            ("host", c.host.is_some()),
            ("headers", c.headers.is_some()),
            ("expect_status", c.expect_status.is_some()),
            ("body", c.body.is_some()),
            ("keep_alive", c.keep_alive.is_some()),
        ];
        let tls_fields = [
            ("ca_file", c.ca_file.is_some()),
            ("server_name", c.server_name.is_some()),
            ("client_cert", c.client_cert.is_some()),
            ("client_key", c.client_key.is_some()),
            ("min_tls_version", c.min_tls_version.is_some()),
            ("insecure_skip_verify", c.insecure_skip_verify.is_some()),
            (
                "full_handshake_interval",
                c.full_handshake_interval.is_some(),
            ),
        ];
        let refuse = |fields: &[(&str, bool)], only: &str| -> Result<(), String> {
            match fields.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(format!(
                    "{name} is only for {only} checks, not type {}",
                    c.kind
                )),
                None => Ok(()),
            }
        };
        let kind = match c.kind.as_str() {
            "tcp" => {
                refuse(&http_fields, "http and https")?;
                refuse(&tls_fields, "https")?;
                CheckKind::Tcp
            }
            "http" => {
                refuse(&tls_fields, "https")?;
                CheckKind::Http(http_check(&c)?)
            }
            "https" => {
                let http = http_check(&c)?;
                CheckKind::Https(HttpsCheck {
                    http,
                    tls: tls_check(&c)?,
                })
            }
            other => {
                return Err(format!(
                    "unknown check type {other:?}: expected tcp, http or https"
                ))
            }
        };
        Ok(Check { port: c.port, kind })
    }
}

fn http_check(c: &raw::Check) -> Result<HttpCheck, String> {
    let method = match &c.method {
        Some(m) => hyper::Method::from_bytes(m.as_bytes())
            .map_err(|_| format!("invalid HTTP method {m:?}"))?,
        None => hyper::Method::GET,
    };
    let path = c.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || path.parse::<hyper::Uri>().is_err() {
        return Err(format!(
            "invalid path {path:?}: expected an absolute path like /health"
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in c.headers.iter().flatten() {
        let n = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let v = hyper::header::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value of header {name}: {value:?}"))?;
        if n == hyper::header::HOST {
            return Err("set the Host header with host:, not in headers".into());
        }
        headers.push((n, v));
    }
    if let Some(host) = &c.host {
        hyper::header::HeaderValue::from_str(host).map_err(|_| format!("invalid host {host:?}"))?;
    }
    let mut expect_status = Vec::new();
    for spec in c.expect_status.iter().flatten() {
        expect_status.push(status_range(spec)?);
    }
    if c.expect_status.is_some() && expect_status.is_empty() {
        return Err("expect_status is empty: no answer could pass".into());
    }
    if expect_status.is_empty() {
        expect_status.push((200, 299));
    }
    let body = match &c.body {
        Some(re) => Some(Regex::new(re).map_err(|e| format!("invalid body regex: {e}"))?),
        None => None,
    };
    Ok(HttpCheck {
        method,
        path,
        host: c.host.clone(),
        headers,
        expect_status,
        body,
        keep_alive: c.keep_alive.as_ref().map(|d| d.0),
    })
}

fn status_range(spec: &raw::StatusSpec) -> Result<(u16, u16), String> {
    let code = |n: u16, text: &str| {
        if (100..=599).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "invalid status {text:?} in expect_status: codes are 100 to 599"
            ))
        }
    };
    match spec {
        raw::StatusSpec::Code(n) => {
            let n = code(*n, &n.to_string())?;
            Ok((n, n))
        }
        raw::StatusSpec::Range(s) => {
            let bad =
                || format!("invalid status range {s:?} in expect_status: expected like 200-399");
            let (a, b) = s.split_once('-').ok_or_else(bad)?;
            let a: u16 = a.trim().parse().map_err(|_| bad())?;
            let b: u16 = b.trim().parse().map_err(|_| bad())?;
            let (a, b) = (code(a, s)?, code(b, s)?);
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
    }
}

/// How long an HTTPS check may resume TLS sessions before it makes a full
/// handshake again (which verifies the chain and reads the certificate's
/// expiry): a changed or expiring certificate is seen within this.
const DEFAULT_FULL_HANDSHAKE_INTERVAL: Duration = Duration::from_secs(300);

/// What an https check verifies the server's certificate with.
enum Verifier {
    /// The chain, against the CA file's certificates.
    Roots(Arc<rustls::client::WebPkiServerVerifier>),
    /// Nothing (`insecure_skip_verify`).
    Any(Arc<crate::prober::tls::AcceptAnyCertificate>),
}

fn tls_check(c: &raw::Check) -> Result<TlsCheck, String> {
    let base = with_context(|c| c.base.clone());
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    let insecure = c.insecure_skip_verify.unwrap_or(false);
    let min_version = match c.min_tls_version.as_deref() {
        None | Some("1.2") => TlsVersion::Tls12,
        Some("1.3") => TlsVersion::Tls13,
        Some(other) => {
            return Err(format!(
                "invalid min_tls_version {other:?}: expected \"1.2\" or \"1.3\""
            ))
        }
    };
    let server_name = match &c.server_name {
        Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
            format!("invalid server_name {name:?}: expected a DNS name or an IP address")
        })?),
        None => None,
    };
    let ca_file = c.ca_file.as_deref().map(resolve);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // One verifier (and below one client certificate resolver) for every
    // client config of this check: rustls resumes a session only with the
    // very ones that made it.
    let verifier = if insecure {
        Verifier::Any(Arc::new(crate::prober::tls::AcceptAnyCertificate(
            provider.clone(),
        )))
    } else {
        let Some(ca_file) = &ca_file else {
            return Err("an https check needs ca_file (the CA that issued the real servers' certificates), or insecure_skip_verify: true".into());
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "ca_file {} holds no PEM certificate",
                ca_file.display()
            ));
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?;
        Verifier::Roots(verifier)
    };
    let builder = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS settings: {e}"))?;
        Ok::<_, String>(match &verifier {
            Verifier::Roots(verifier) => builder.with_webpki_verifier(verifier.clone()),
            Verifier::Any(verifier) => builder
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone()),
        })
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder_all = builder(versions)?;
    let mut client = match (&c.client_cert, &c.client_key) {
        (None, None) => builder_all.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let (cert, key) = (resolve(cert), resolve(key));
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("client_cert {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "client_cert {} holds no PEM certificate",
                    cert.display()
                ));
            }
            let key_der = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("client_key {}: {e}", key.display()))?;
            builder_all
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("client_cert and client_key: {e}"))?
        }
        _ => return Err("client_cert and client_key go together: set both or neither".into()),
    };
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client_tls12 = match min_version {
        TlsVersion::Tls12 => {
            let mut tls12 = builder(&[&rustls::version::TLS12])?
                .with_client_cert_resolver(client.client_auth_cert_resolver.clone());
            tls12.alpn_protocols = client.alpn_protocols.clone();
            Some(Arc::new(tls12))
        }
        TlsVersion::Tls13 => None,
    };
    let client = Arc::new(client);
    Ok(TlsCheck {
        server_name,
        ca_file,
        min_version,
        insecure_skip_verify: insecure,
        client_auth: c.client_cert.is_some(),
        client,
        client_tls12,
        full_handshake_interval: c
            .full_handshake_interval
            .as_ref()
            .map_or(DEFAULT_FULL_HANDSHAKE_INTERVAL, |d| d.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "2", "s", "2x", "1.5s", "-1s", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
