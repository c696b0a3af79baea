//! The config's scalar values, each refused with its own message where it
//! is written: durations, rise and fall, weights, real server addresses,
//! the few names (`forward`, `protocol`, `family`), and optional regexes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipvs::{DestinationKey, ForwardMethod, ServiceKey, MAX_WEIGHT};
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A duration in Prometheus' grammar ([`ipvs_common::duration`]), more
/// than zero.
#[derive(Debug, Clone, Copy, Hash)]
pub(super) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ipvs_common::parse_positive_duration(&s)
            .map(Dur)
            .map_err(de::Error::custom)
    }
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
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl RsAddress {
    /// The destination this address stands for in `service`: a bare IP
    /// takes the service's port, or 0 in a firewall-mark service. Real
    /// servers and the sorry server follow this one rule.
    pub fn destination(&self, service: &ServiceKey) -> DestinationKey {
        let port = match (self.port, service) {
            (Some(port), _) => port,
            (None, ServiceKey::Addr { addr, .. }) => addr.port(),
            (None, ServiceKey::Fwmark { .. }) => 0,
        };
        DestinationKey::new(SocketAddr::new(self.ip, port))
    }
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

/// The forwarding method of `forward:`, masquerading (NAT) when unset.
pub(super) fn forward_method(forward: Option<Forward>) -> ForwardMethod {
    match forward.unwrap_or(Forward::Nat) {
        Forward::Nat => ForwardMethod::Masquerade,
        Forward::Dr => ForwardMethod::DirectRoute,
        Forward::Tun => ForwardMethod::Tunnel,
    }
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

/// An optional regex field (`body`, `expect`, `answer`) compiled by
/// `compile` (a text or a bytes regex); the error names the field.
pub(super) fn optional_regex<R>(
    field: &str,
    pattern: Option<&String>,
    compile: impl Fn(&str) -> Result<R, regex::Error>,
) -> Result<Option<R>, String> {
    pattern
        .map(|re| compile(re).map_err(|e| format!("invalid {field} regex: {e}")))
        .transpose()
}
