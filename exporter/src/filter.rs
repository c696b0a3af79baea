//! Which services are exported (`--collector.services.include` /
//! `--collector.services.exclude`), for large Kubernetes-style tables
//! where only some services matter.
//!
//! A pattern is a regular expression (Rust `regex` syntax) that must match
//! the whole of a service's name as ipvsadm writes it:
//! `TCP/198.18.0.10:80`, `UDP/[2001:db8::10]:53`, `SCTP/...`, `FWM/1` (the
//! mark in decimal). A service is exported when it matches the include
//! pattern (if any) and not the exclude pattern (if any); its backends,
//! connection states and templates go with it.

use regex::Regex;

use ipvs::ServiceKey;

/// The include and exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct ServiceFilter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl ServiceFilter {
    /// A filter from the two patterns; an error names the bad one.
    pub fn new(include: Option<&str>, exclude: Option<&str>) -> Result<Self, PatternError> {
        Ok(ServiceFilter {
            include: include.map(|p| whole("include", p)).transpose()?,
            exclude: exclude.map(|p| whole("exclude", p)).transpose()?,
        })
    }

    /// Whether every service is exported.
    pub fn keeps_all(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether the service named `name` (see [`service_name`]) is exported.
    pub fn keeps(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(name))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// A pattern of `--collector.services.include` or `--collector.services.exclude`
/// that is not a regular expression. The message ends with the regex
/// crate's, which shows where the pattern went wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("--collector.services.{flag}: invalid pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// `include` or `exclude`.
    pub flag: &'static str,
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: regex::Error,
}

fn whole(flag: &'static str, pattern: &str) -> Result<Regex, PatternError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|reason| PatternError {
        flag,
        pattern: pattern.to_string(),
        reason,
    })
}

/// A service's name as ipvsadm writes it: `TCP/198.18.0.10:80`,
/// `TCP/[2001:db8::10]:80`, `FWM/1`.
pub fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => format!("{protocol}/{addr}"),
        ServiceKey::Fwmark { mark, .. } => format!("FWM/{mark}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::AddressFamily;

    fn key(text: &str) -> ServiceKey {
        ServiceKey::tcp(text.parse().expect("address"))
    }

    #[test]
    fn names_are_ipvsadm_s() {
        assert_eq!(service_name(&key("198.18.0.10:80")), "TCP/198.18.0.10:80");
        assert_eq!(
            service_name(&ServiceKey::udp("[2001:db8::10]:53".parse().expect("v6"))),
            "UDP/[2001:db8::10]:53"
        );
        assert_eq!(
            service_name(&ServiceKey::fwmark(1, AddressFamily::Inet)),
            "FWM/1"
        );
    }

    #[test]
    fn include_then_exclude_on_the_whole_name() {
        let filter = ServiceFilter::new(Some(r"TCP/198\.18\.0\.\d+:80|FWM/.*"), Some(r".*\.11:80"))
            .expect("patterns");
        assert!(filter.keeps("TCP/198.18.0.10:80"));
        assert!(!filter.keeps("TCP/198.18.0.11:80"), "excluded");
        assert!(filter.keeps("FWM/3"));
        assert!(!filter.keeps("UDP/198.18.0.10:53"), "not included");
        // Whole name: a pattern matching a part does not keep it.
        assert!(!filter.keeps("TCP/198.18.0.10:8080"));
        assert!(!filter.keeps_all());
    }

    #[test]
    fn no_pattern_keeps_everything() {
        let filter = ServiceFilter::new(None, None).expect("none");
        assert!(filter.keeps_all());
        assert!(filter.keeps("SCTP/[2001:db8::1]:9"));
        let only_exclude = ServiceFilter::new(None, Some("UDP/.*")).expect("exclude");
        assert!(only_exclude.keeps("TCP/198.18.0.10:80"));
        assert!(!only_exclude.keeps("UDP/198.18.0.10:53"));
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let error = ServiceFilter::new(Some("TCP/(198"), None)
            .expect_err("bad")
            .to_string();
        assert!(
            error.starts_with("--collector.services.include: invalid pattern \"TCP/(198\": "),
            "{error}"
        );
        let error = ServiceFilter::new(None, Some("["))
            .expect_err("bad")
            .to_string();
        assert!(
            error.starts_with("--collector.services.exclude: invalid pattern \"[\""),
            "{error}"
        );
    }
}

/// How much of the backend labels is kept (`--collector.backends.labels`).
/// Aggregating merges the backend series whose kept labels are equal: the
/// counters, weights and connection counts are summed, and
/// `ipvs_backend_info` (whose labels describe one real server) is left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendLabels {
    /// `remote_address` and `remote_port`: one series per real server.
    #[default]
    Full,
    /// `remote_address` only: real servers on one address (several ports,
    /// e.g. pods of one node) are summed.
    WithoutPort,
    /// Neither: one series per service, the sum of its real servers.
    PerService,
}

impl BackendLabels {
    /// Whether the label `name` of a real server is kept.
    pub fn keeps(self, name: &str) -> bool {
        match self {
            BackendLabels::Full => true,
            BackendLabels::WithoutPort => name != ipvs_common::labels::REMOTE_PORT,
            BackendLabels::PerService => {
                name != ipvs_common::labels::REMOTE_PORT
                    && name != ipvs_common::labels::REMOTE_ADDRESS
            }
        }
    }
}

/// A `--collector.backends.labels` value that is none of the modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {0:?} (use full, without-port or per-service)")]
pub struct InvalidBackendLabels(pub String);

impl std::str::FromStr for BackendLabels {
    type Err = InvalidBackendLabels;

    fn from_str(text: &str) -> Result<Self, InvalidBackendLabels> {
        match text {
            "full" => Ok(BackendLabels::Full),
            "without-port" => Ok(BackendLabels::WithoutPort),
            "per-service" => Ok(BackendLabels::PerService),
            _ => Err(InvalidBackendLabels(text.to_string())),
        }
    }
}
