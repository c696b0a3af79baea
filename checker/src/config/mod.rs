//! The checker's configuration: a YAML file read once ([`load`]) into typed,
//! validated values.
//!
//! ```yaml
//! mode: weights                 # or managed
//! defaults:                     # every service and real server may override these
//!   interval: 2s
//!   timeout: 1s
//!   rise: 2
//!   fall: 3
//!   check: {type: http, path: /health}
//! services:
//!   - protocol: tcp
//!     address: 198.18.0.10:443
//!     quorum: {min_up: 1}
//!     check:
//!       type: https
//!       ca_file: ca.pem          # relative to this file
//!       server_name: www.example.test
//!       full_handshake_interval: 5m  # TLS sessions resumed in between
//!       keep_alive: 30s          # probes over one connection, at most this long
//!     real_servers:
//!       - {address: 198.18.1.11:443, weight: 3}
//!       - {address: 198.18.1.12:443, check_address: 198.18.1.12:8443}
//! ```
//!
//! Reading is parse-then-validate: `raw` mirrors the file with
//! `deny_unknown_fields` and checked `scalars`; each `check:` block
//! (`checks`) and each service (`service`) is turned into its typed value
//! while serde_yaml still knows where that node is, so every error carries
//! file, line and column; `parse` runs the passes over the file. The files
//! an https check names are read once its block is parsed (`tls`).
//! The YAML itself is read by `ipvs_common::yaml`, as `--web.config.file` is.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipvs::{
    DestinationConfig, DestinationKey, ForwardMethod, Netmask, ServiceConfig, ServiceFlags,
    ServiceKey,
};
use regex::Regex;

mod checks;
mod conversation;
mod describe;
mod dns;
mod fingerprint;
mod hooks;
mod parse;
mod raw;
mod scalars;
mod service;
mod tls;
mod vip;

pub use conversation::preset_steps;
pub use describe::describe;
pub use dns::rcode_name;
pub use fingerprint::Fingerprint;
pub use hooks::{ExecHook, Hooks, Webhook, DEFAULT_MAX_RUNNING_HOOKS};
pub use ipvs_common::ConfigError;
pub use tls::AcceptAnyCertificate;
pub use vip::{ProbeService, Through, VipProbes};

#[cfg(test)]
mod tests;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What the checker may change in the IPVS table.
    pub mode: Mode,
    /// Where managed mode records the services and real servers it
    /// created (the ones it may delete); set in managed mode only.
    pub state_file: Option<PathBuf>,
    /// Set `net.ipv4.vs.expire_quiescent_template` to 1 at start and
    /// reload when a configured service is persistent (otherwise only warn).
    pub set_expire_quiescent_template: bool,
    /// Where the drains are kept across restarts, in both modes (see
    /// [`crate::drain`]); [`DEFAULT_DRAIN_FILE`] unless set.
    pub drain_file: PathBuf,
    /// What a weight changed out of band does.
    pub out_of_band: OutOfBand,
    /// A file here named after a real server drains it while it exists.
    pub maintenance_dir: Option<PathBuf>,
    /// Managed mode: the longest a real server that left the config stays
    /// at weight 0 waiting for its active connections to end before it is
    /// deleted ([`DEFAULT_DRAIN_TIMEOUT`] unless set).
    pub drain_timeout: Duration,
    /// The defaults' hooks: what checker-wide events (started, stopping)
    /// run, and a service without `hooks:` of its own.
    pub hooks: Arc<Hooks>,
    /// Hooks running at once, at most, over the whole checker
    /// (`max_running_hooks`; read at start, a reload does not change it).
    pub max_running_hooks: usize,
    /// The virtual services, in file order.
    pub services: Vec<VirtualService>,
    /// The marks and the state file of the probe services
    /// (`vip_probes:`, see [`vip`]).
    pub vip_probes: VipProbes,
    /// The probe services the real servers probed through their VIP need
    /// (`probe_through_vip`), by mark.
    pub probe_services: Vec<ProbeService>,
}

/// What the checker owns in the IPVS table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A sidecar to a table made by ipvsadm or keepalived: only the weights
    /// of the configured real servers change.
    Weights,
    /// The checker creates and updates the configured services and real
    /// servers itself (scheduler, forwarding method, persistence).
    Managed,
}

/// Where the drains are kept when the config does not say.
pub const DEFAULT_DRAIN_FILE: &str = "/var/lib/ipvs-checker/drains.json";

/// How long managed mode waits, at most, for the connections of a real
/// server that left the config, when the config does not say.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// What a weight someone changed in the table (`ipvsadm -e`) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfBand {
    /// A weight set to 0 is a drain (by `out_of_band`), kept until
    /// undrained or someone sets a non-zero weight; any other change is
    /// set back.
    #[default]
    Drain,
    /// Every change is set back, 0 included (strict enforcement).
    Restore,
}

/// One virtual service and its real servers.
#[derive(Debug, Clone)]
pub struct VirtualService {
    /// Which IPVS service.
    pub key: ServiceKey,
    /// The scheduler (`ipvsadm -s`), used in managed mode.
    pub scheduler: String,
    /// Scheduler flags and one-packet (`ipvsadm -b`, `-o`), used in
    /// managed mode; persistence is not among them (see `persistence`).
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (`ipvsadm -p`), used in managed mode.
    pub persistence: Option<u32>,
    /// Persistence netmask (`ipvsadm -M`), used in managed mode.
    pub netmask: Option<Netmask>,
    /// The quorum guard, if configured.
    pub quorum: Option<Quorum>,
    /// The real servers, in file order.
    pub real_servers: Vec<RealServer>,
    /// What runs on this service's events: its own `hooks:`, else the
    /// defaults'.
    pub hooks: Arc<Hooks>,
}

impl VirtualService {
    /// The settings managed mode gives the IPVS service.
    pub fn service_config(&self) -> ServiceConfig {
        let mut config = ServiceConfig::new(self.scheduler.clone());
        if let Some(timeout) = self.persistence {
            config = config.persistent(timeout);
            config.netmask = self.netmask;
        }
        config.flags |= self.flags;
        config
    }

    /// Whether clients stick to a real server (`ipvsadm -p`), as configured.
    pub fn is_persistent(&self) -> bool {
        self.persistence.is_some()
    }
}

/// The quorum guard of a service: what happens while fewer than `min_up`
/// of its real servers are up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// The fewest real servers up before the guard acts.
    pub min_up: u32,
    /// Switch to this server; without one, fail open (no failed real
    /// server is set to weight 0).
    pub sorry_server: Option<SorryServer>,
}

/// A server that takes the traffic while a service is below its quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SorryServer {
    /// Which IPVS destination.
    pub key: DestinationKey,
    /// Its weight while the guard is active.
    pub weight: u32,
    /// How packets reach it (managed mode adds it).
    pub forward: ForwardMethod,
}

/// One real server of a virtual service, with everything inherited from the
/// service and the defaults already applied.
#[derive(Debug, Clone)]
pub struct RealServer {
    /// Which IPVS destination.
    pub key: DestinationKey,
    /// The weight it gets while healthy.
    pub weight: u32,
    /// How packets reach it, used in managed mode.
    pub forward: ForwardMethod,
    /// Connection thresholds (`ipvsadm -x`, `-y`; 0 for none), used in
    /// managed mode.
    pub upper_threshold: u32,
    /// See `upper_threshold`.
    pub lower_threshold: u32,
    /// After a recovery, the weight ramps up to `weight` over this period.
    pub slow_start: Option<Duration>,
    /// The local address probes bind to, if set.
    pub source: Option<IpAddr>,
    /// Probe timing and thresholds.
    pub timing: Timing,
    /// The checks to run, at least one (`check:` is one, `checks:` may be
    /// several): a probe passes when every one passes.
    pub checks: Vec<CheckTarget>,
}

/// One check of a real server, and where it probes.
#[derive(Debug, Clone)]
pub struct CheckTarget {
    /// The check.
    pub check: Arc<Check>,
    /// Where the probe goes: the real server's address, or `check_address`,
    /// with the check's own port if it sets one; with
    /// `probe_through_vip`, the service's address (and the check's port).
    pub target: SocketAddr,
    /// Set with `probe_through_vip`: the real server the probe service
    /// sends the probe to, and its mark.
    pub through: Option<Through>,
}

impl RealServer {
    /// Whether `other` probes as this one does: the same checks (by their
    /// [`Fingerprint`]s) to the same places from the same source. A
    /// reload that leaves this so changes its timing at most, and its
    /// probers are kept.
    pub fn probes_as(&self, other: &RealServer) -> bool {
        self.source == other.source
            && self.checks.len() == other.checks.len()
            && self.checks.iter().zip(&other.checks).all(|(a, b)| {
                a.check.fingerprint == b.check.fingerprint
                    && a.target == b.target
                    && a.through == b.through
            })
    }

    /// The settings managed mode gives the destination, at `weight`.
    pub fn destination_config(&self, weight: u32) -> DestinationConfig {
        DestinationConfig::new(self.forward, weight)
            .with_thresholds(self.upper_threshold, self.lower_threshold)
    }
}

/// When to probe and how many results flip the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// The longest a probe may take, connection and answer included.
    pub timeout: Duration,
    /// Consecutive successes that make a down (or new) real server up.
    pub rise: u32,
    /// Consecutive failures that make an up (or new) real server down.
    pub fall: u32,
}

/// A health check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Probe this port instead of the real server's (a health port).
    pub port: Option<u16>,
    /// What the probe does.
    pub kind: CheckKind,
    /// Whether a reload left the check as it was (see [`Fingerprint`]).
    pub fingerprint: Fingerprint,
}

impl Check {
    /// The check a real server gets when none is configured: a TCP
    /// connection to its port.
    pub fn default_tcp() -> Self {
        Check {
            port: None,
            kind: CheckKind::Tcp,
            fingerprint: Fingerprint::of(&"the default tcp check"),
        }
    }
}

/// The probe types.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// A TCP connection that is opened and closed.
    Tcp,
    /// An HTTP/1.1 request.
    Http(HttpCheck),
    /// An HTTP/1.1 request over TLS.
    Https(HttpsCheck),
    /// `tcp` with `steps` (or a `preset`), or `tls: true`: a conversation
    /// over the connection.
    Conversation(ConversationCheck),
    /// An external program.
    Exec(ExecCheck),
    /// A DNS query.
    Dns(DnsCheck),
    /// A UDP datagram.
    Udp(UdpCheck),
    /// An ICMP echo request.
    Icmp,
}

/// A `udp` check: what is sent, and the reply expected (or none).
#[derive(Debug, Clone)]
pub struct UdpCheck {
    /// The datagram sent (`payload` or `payload_hex`; may be empty).
    pub payload: Vec<u8>,
    /// A regex the reply must match; unset, any reply passes, and so does
    /// no reply and no ICMP port unreachable until the timeout.
    pub expect: Option<regex::bytes::Regex>,
}

/// A `dns` check: the question, and what the answer must hold.
#[derive(Debug, Clone)]
pub struct DnsCheck {
    /// The name asked for (fully qualified).
    pub name: hickory_proto::rr::Name,
    /// The record type asked for (A unless set).
    pub query_type: hickory_proto::rr::RecordType,
    /// Over TCP (`transport: tcp`) instead of UDP.
    pub tcp: bool,
    /// The rcode the answer must have (NOERROR, 0, unless set).
    pub rcode: u16,
    /// A regex one answer record's data must match, if set.
    pub answer: Option<Regex>,
    /// An address one A or AAAA answer record must hold, if set.
    pub answer_address: Option<IpAddr>,
    /// The RD bit: ask a resolver to recurse (on unless set, as a
    /// resolver's clients ask; an authoritative server ignores it).
    pub recursion_desired: bool,
    /// The query as sent, made once: its id (the first two bytes) is 0,
    /// and each probe writes its own.
    pub query: Vec<u8>,
}

/// An `exec` check: the program, run without a shell.
#[derive(Debug, Clone)]
pub struct ExecCheck {
    /// The program (an absolute path) and its arguments, placeholders
    /// (`{rs_address}`, ...) not yet replaced.
    pub command: Vec<String>,
    /// More environment variables for it.
    pub env: Vec<(String, String)>,
    /// Exit status 2 to 255 passes and sets the weight to the status less
    /// 2 (keepalived's `misc_dynamic`).
    pub dynamic_weight: bool,
}

impl ExecCheck {
    /// The placeholders of `command` arguments, each with the environment
    /// variable that carries the same value: the address and port probed
    /// (the real server's, or `check_address`, or the check's `port`),
    /// and the virtual service's address, port, protocol (`tcp`, `udp`,
    /// `sctp`, `fwm`) and firewall mark (empty where they do not apply).
    pub const PLACEHOLDERS: &'static [(&'static str, &'static str)] = &[
        ("{rs_address}", "IPVS_CHECKER_RS_ADDRESS"),
        ("{rs_port}", "IPVS_CHECKER_RS_PORT"),
        ("{vs_address}", "IPVS_CHECKER_VS_ADDRESS"),
        ("{vs_port}", "IPVS_CHECKER_VS_PORT"),
        ("{vs_protocol}", "IPVS_CHECKER_VS_PROTOCOL"),
        ("{vs_fwmark}", "IPVS_CHECKER_VS_FWMARK"),
    ];
}

/// A `tcp` check that talks: steps over the connection, in TLS if set.
#[derive(Debug, Clone)]
pub struct ConversationCheck {
    /// The preset the steps come from, if any (`smtp`, `imap`, ...).
    pub preset: Option<&'static str>,
    /// What to send and expect, in order (none: the connection, or the
    /// TLS handshake, is all).
    pub steps: Vec<Step>,
    /// Implicit TLS from the first byte, verified as an https check's.
    pub tls: Option<TlsCheck>,
}

/// One step of a conversation.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Read until what was read since the last match matches.
    Expect(regex::bytes::Regex),
}

impl CheckKind {
    /// Whether the probe goes to a port (every type but `exec` and `icmp`).
    pub fn needs_port(&self) -> bool {
        !matches!(self, CheckKind::Exec(_) | CheckKind::Icmp)
    }

    /// The type's name in the config (`type:`).
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(_) => "http",
            CheckKind::Https(_) => "https",
            CheckKind::Conversation(_) => "tcp",
            CheckKind::Exec(_) => "exec",
            CheckKind::Dns(_) => "dns",
            CheckKind::Udp(_) => "udp",
            CheckKind::Icmp => "icmp",
        }
    }
}

/// An HTTPS check: the request, and how the server's certificate is verified.
#[derive(Debug, Clone)]
pub struct HttpsCheck {
    /// The request and the expected answer.
    pub http: HttpCheck,
    /// The TLS side.
    pub tls: TlsCheck,
}

/// An MD5 digest; written as 32 lowercase hex digits, as `md5sum` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Md5(pub [u8; 16]);

impl fmt::Display for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The request an HTTP(S) check sends and the answer it accepts.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// The request method (`GET` unless set).
    pub method: hyper::Method,
    /// The request target (`/` unless set).
    pub path: String,
    /// The Host header (the target address unless set).
    pub host: Option<String>,
    /// More request headers; one named as a header the checker sends
    /// (`User-Agent`) replaces it.
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// Accepted status codes (200-299 unless set).
    pub expect_status: Vec<(u16, u16)>,
    /// A regex the body must match, if set.
    pub body: Option<Regex>,
    /// The MD5 the whole body must have, if set (`body_md5`, keepalived's
    /// `digest`).
    pub body_md5: Option<Md5>,
    /// How long one connection may serve probes (`keep_alive`): unset, a
    /// new connection per probe, as keepalived and ldirectord make. Set,
    /// the probes go over one kept-alive connection (HTTP/1.1, and for
    /// HTTPS one TLS handshake) until it is this old, fails, or a full
    /// TLS handshake is due; so a real server that stops accepting new
    /// connections but still serves its open ones is seen within this
    /// long (plus the probes `fall` needs).
    pub keep_alive: Option<Duration>,
}

/// The TLS side of an HTTPS check.
#[derive(Debug, Clone)]
pub struct TlsCheck {
    /// The name sent as SNI and verified against the certificate; when
    /// unset, the Host header, else the target IP.
    pub server_name: Option<rustls_pki_types::ServerName<'static>>,
    /// The private CA file, if set (otherwise nothing is trusted unless
    /// verification is off).
    pub ca_file: Option<PathBuf>,
    /// The oldest TLS version accepted.
    pub min_version: TlsVersion,
    /// Verification is off: any certificate is accepted.
    pub insecure_skip_verify: bool,
    /// Whether a client certificate is presented (mTLS).
    pub client_auth: bool,
    /// The client configuration built from the above.
    pub client: Arc<rustls::ClientConfig>,
    /// The same, offering TLS 1.2 only (`None` with `min_tls_version:
    /// "1.3"`): a TLS 1.2 session is resumed with it, since a ClientHello
    /// that offers TLS 1.3 carries a key share, made for every probe and
    /// never used when the server resumes TLS 1.2.
    pub client_tls12: Option<Arc<rustls::ClientConfig>>,
    /// Sessions are resumed (no certificate sent or verified) for at most
    /// this long after a full handshake (`full_handshake_interval`, 5m
    /// unless set).
    pub full_handshake_interval: Duration,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base)
}

/// Validates config `text`, naming `file` in errors and resolving relative
/// paths in it against `base`.
pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
    parse::parse(text, file, base)
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Weights => "weights",
            Mode::Managed => "managed",
        })
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}
