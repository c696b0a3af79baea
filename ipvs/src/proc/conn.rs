//! Streaming counter for `/proc/net/ip_vs_conn`, the kernel's connection
//! table, which netlink does not expose.
//!
//! The kernel prints it in `ip_vs_conn_seq_show`
//! (`net/netfilter/ipvs/ip_vs_conn.c`): a header, then one line per entry.
//!
//! ```text
//! Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//! TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED     898
//! UDP 0A640007 0000 0A000005 13C4 0A000106 13C4 ASSURED         179 sip a84b4c76e66710@pc33
//! ```
//!
//! with the format strings
//!
//! ```text
//! IPv4 service: "%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s\n"
//! IPv6 service: "%-3s %pI6 %04X %pI6 %04X %s %04X %-11s %7u%s\n"
//! ```
//!
//! - `Pro` is `ip_vs_proto_name()`: `IP`, `TCP`, `UDP`, `SCTP`, `ICMP`,
//!   `ICMPv6`, or `IP_<n>` for any other protocol number.
//! - `FromIP`/`ToIP` (client and virtual address) are in the service's
//!   family: 8 hex digits of the host-order IPv4 address, or the IPv6
//!   address in full (`%pI6`: 8 groups of 4 lower-case hex digits). Ports
//!   are 4 hex digits.
//! - `DestIP` is printed in the destination's own family (the `%s` of a
//!   buffer filled with `%08X` or `%pI6`), which can differ from the
//!   service's since Linux 3.18 (tunnelling an IPv6 service to IPv4 real
//!   servers and back).
//! - `State` is `ip_vs_state_name()`: the protocol's state table for
//!   connections (TCP `ESTABLISHED`…, UDP `UDP`, SCTP `ESTABLISHED`,
//!   `C-ECHOED`…), `NONE`/`ASSURED` for persistence templates, and `ERR!`
//!   or `?` when the kernel has no name.
//! - `Expires` is the remaining lifetime in seconds (`%7u`, so padded).
//! - `PEName PEData` follow only for entries with persistence-engine data
//!   (the `sip` engine's Call-ID), and are ignored for counting.
//!
//! The parser reads through one fixed buffer ([`MAX_LINE_LEN`] bytes, also
//! the longest line it accepts), parses fields by hand without allocating,
//! and only allocates when a new distinct key enters the counts, so memory
//! depends on the number of distinct (service, destination, state) keys,
//! never on the number of entries.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use rustc_hash::FxBuildHasher;

use super::{
    excerpt, open, parse_dec_u64, parse_hex_u64, FieldError, FieldErrorKind, Fields, LineReader,
    ProcError,
};

/// The connection table of the caller's network namespace.
pub const IP_VS_CONN_PATH: &str = "/proc/net/ip_vs_conn";

/// The longest line accepted, newline included; also the size of the
/// parser's one buffer. The kernel's longest line (IPv6 addresses with the
/// largest persistence-engine data) is under 500 bytes.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// The header the kernel prints first, for error messages.
const HEADER: &str =
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData";

/// The header's fields every kernel prints; `PEName PEData` were added
/// with persistence engines in Linux 2.6.37 and are accepted but optional.
const HEADER_FIELDS: [&[u8]; 9] = [
    b"Pro", b"FromIP", b"FPrt", b"ToIP", b"TPrt", b"DestIP", b"DPrt", b"State", b"Expires",
];

/// The protocol of an entry, as the `Pro` column prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnProtocol {
    /// `IP` (protocol 0): only persistence templates of fwmark services use
    /// it, with the fwmark in place of the virtual address.
    Ip,
    /// `TCP`.
    Tcp,
    /// `UDP`.
    Udp,
    /// `SCTP`.
    Sctp,
    /// `ICMP`.
    Icmp,
    /// `ICMPv6`.
    IcmpV6,
    /// `IP_<n>`: any other protocol number. Never holds a number that has a
    /// variant of its own ([`ConnProtocol::from_number`] sees to it).
    Other(u8),
}

impl ConnProtocol {
    /// The protocol with IP protocol number `number`.
    pub const fn from_number(number: u8) -> Self {
        match number {
            0 => Self::Ip,
            1 => Self::Icmp,
            6 => Self::Tcp,
            17 => Self::Udp,
            58 => Self::IcmpV6,
            132 => Self::Sctp,
            n => Self::Other(n),
        }
    }

    /// The IP protocol number (`IPPROTO_*`).
    pub const fn number(self) -> u8 {
        match self {
            Self::Ip => 0,
            Self::Icmp => 1,
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::IcmpV6 => 58,
            Self::Sctp => 132,
            Self::Other(n) => n,
        }
    }

    fn parse(field: &[u8]) -> Option<Self> {
        Some(match field {
            b"IP" => Self::Ip,
            b"TCP" => Self::Tcp,
            b"UDP" => Self::Udp,
            b"SCTP" => Self::Sctp,
            b"ICMP" => Self::Icmp,
            b"ICMPv6" => Self::IcmpV6,
            _ => {
                let number = parse_dec_u64(field.strip_prefix(b"IP_")?)?;
                Self::from_number(u8::try_from(number).ok()?)
            }
        })
    }
}

impl fmt::Display for ConnProtocol {
    /// The kernel's name: `TCP`, `IP_50`…
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("IP"),
            Self::Tcp => f.write_str("TCP"),
            Self::Udp => f.write_str("UDP"),
            Self::Sctp => f.write_str("SCTP"),
            Self::Icmp => f.write_str("ICMP"),
            Self::IcmpV6 => f.write_str("ICMPv6"),
            Self::Other(n) => write!(f, "IP_{n}"),
        }
    }
}

/// The longest state name [`StateName`] holds. The kernel's longest is 11
/// bytes today (`ESTABLISHED`) and was 16 in older SCTP tables
/// (`SHUTDOWN_ACK_CLI`); template state names are documented as at most 15.
pub const STATE_NAME_MAX: usize = 23;

/// A state name this crate does not know, stored inline so that
/// [`ConnState`] stays `Copy` and parsing never allocates for it.
///
/// Holds 1 to [`STATE_NAME_MAX`] bytes of printable ASCII (no spaces).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateName {
    len: u8,
    // Zero after `len`, so the derived equality and hash see only the name.
    bytes: [u8; STATE_NAME_MAX],
}

impl StateName {
    /// `name` as a state name, or `None` if it is empty, longer than
    /// [`STATE_NAME_MAX`] or not printable ASCII.
    pub fn new(name: &[u8]) -> Option<Self> {
        if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let mut bytes = [0; STATE_NAME_MAX];
        bytes.get_mut(..name.len())?.copy_from_slice(name);
        Some(Self {
            len: u8::try_from(name.len()).ok()?,
            bytes,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Always ASCII by construction.
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl PartialOrd for StateName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StateName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StateName").field(&self.as_str()).finish()
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `State` column of an entry. Names shared by protocols (`NONE`,
/// `ESTABLISHED`) are one variant; the entry's [`ConnProtocol`] tells them
/// apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnState {
    /// `NONE`: a TCP or SCTP connection that has seen no handshake yet, or
    /// a persistence template not yet assured.
    None,
    /// `ESTABLISHED` (TCP and SCTP).
    Established,
    /// `SYN_SENT` (TCP).
    SynSent,
    /// `SYN_RECV` (TCP).
    SynRecv,
    /// `FIN_WAIT` (TCP).
    FinWait,
    /// `TIME_WAIT` (TCP).
    TimeWait,
    /// `CLOSE` (TCP).
    Close,
    /// `CLOSE_WAIT` (TCP).
    CloseWait,
    /// `LAST_ACK` (TCP).
    LastAck,
    /// `LISTEN` (TCP).
    Listen,
    /// `SYNACK` (TCP).
    SynAck,
    /// `UDP`: the one state of UDP entries.
    Udp,
    /// `INIT1` (SCTP).
    SctpInit1,
    /// `INIT` (SCTP).
    SctpInit,
    /// `C-SENT` (SCTP cookie sent).
    SctpCookieSent,
    /// `C-REPLIED` (SCTP cookie replied).
    SctpCookieReplied,
    /// `C-WAIT` (SCTP cookie wait).
    SctpCookieWait,
    /// `COOKIE` (SCTP).
    SctpCookie,
    /// `C-ECHOED` (SCTP cookie echoed).
    SctpCookieEchoed,
    /// `S-SENT` (SCTP shutdown sent).
    SctpShutdownSent,
    /// `S-RECEIVED` (SCTP shutdown received).
    SctpShutdownReceived,
    /// `S-ACK-SENT` (SCTP shutdown ack sent).
    SctpShutdownAckSent,
    /// `REJECTED` (SCTP).
    SctpRejected,
    /// `CLOSED` (SCTP).
    SctpClosed,
    /// `ASSURED`: a persistence template that has seen traffic in both
    /// directions (only templates have this state).
    Assured,
    /// Any other name: `ERR!` or `?` (the kernel has no name for the state,
    /// as for AH/ESP entries), or the names of another kernel version
    /// (older kernels named SCTP states `INIT_CLI`, `COOKIE_ECHO_SER`…).
    Unknown(StateName),
}

/// The names the kernel prints, from `tcp_state_name_table`,
/// `udp_state_name_table`, `sctp_state_name_table` and
/// `ip_vs_ctpl_state_name_table`.
const KNOWN_STATES: [(&str, ConnState); 25] = [
    ("NONE", ConnState::None),
    ("ESTABLISHED", ConnState::Established),
    ("SYN_SENT", ConnState::SynSent),
    ("SYN_RECV", ConnState::SynRecv),
    ("FIN_WAIT", ConnState::FinWait),
    ("TIME_WAIT", ConnState::TimeWait),
    ("CLOSE", ConnState::Close),
    ("CLOSE_WAIT", ConnState::CloseWait),
    ("LAST_ACK", ConnState::LastAck),
    ("LISTEN", ConnState::Listen),
    ("SYNACK", ConnState::SynAck),
    ("UDP", ConnState::Udp),
    ("INIT1", ConnState::SctpInit1),
    ("INIT", ConnState::SctpInit),
    ("C-SENT", ConnState::SctpCookieSent),
    ("C-REPLIED", ConnState::SctpCookieReplied),
    ("C-WAIT", ConnState::SctpCookieWait),
    ("COOKIE", ConnState::SctpCookie),
    ("C-ECHOED", ConnState::SctpCookieEchoed),
    ("S-SENT", ConnState::SctpShutdownSent),
    ("S-RECEIVED", ConnState::SctpShutdownReceived),
    ("S-ACK-SENT", ConnState::SctpShutdownAckSent),
    ("REJECTED", ConnState::SctpRejected),
    ("CLOSED", ConnState::SctpClosed),
    ("ASSURED", ConnState::Assured),
];

impl ConnState {
    /// The state named `name`; unknown names become [`ConnState::Unknown`].
    /// `None` if `name` cannot be a state name at all (see [`StateName`]).
    pub fn parse(name: &[u8]) -> Option<Self> {
        KNOWN_STATES
            .iter()
            .find(|(known, _)| known.as_bytes() == name)
            .map(|&(_, state)| state)
            .or_else(|| StateName::new(name).map(Self::Unknown))
    }

    /// The name as the kernel prints it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(name) => name.as_str(),
            known => KNOWN_STATES
                .iter()
                .find(|(_, state)| state == known)
                .map_or("", |(name, _)| name),
        }
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The virtual-service side of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VirtualAddress {
    /// `ToIP:TPrt`, the virtual address and port the client connected to.
    /// Connections of fwmark services show up here too: the kernel prints
    /// the address the packet was sent to, not the mark.
    Addr(SocketAddr),
    /// The fwmark of a persistence template of a fwmark service (protocol
    /// `IP`): the kernel stores `htonl(fwmark)` in the first 32 bits of the
    /// virtual address, so it prints as `ToIP`.
    Fwmark(u32),
}

impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => addr.fmt(f),
            Self::Fwmark(mark) => write!(f, "fwmark {mark}"),
        }
    }
}

/// What entries are counted by: the virtual service side, the destination
/// and the state. The client is left out on purpose, so the number of keys
/// stays bounded by services × destinations × states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    /// The entry's protocol ([`ConnProtocol::Ip`] for fwmark templates).
    pub protocol: ConnProtocol,
    /// The virtual address and port, or the fwmark.
    pub virtual_address: VirtualAddress,
    /// The real server, `DestIP:DPrt`.
    pub destination: SocketAddr,
    /// The state.
    pub state: ConnState,
}

impl fmt::Display for ConnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} {}",
            self.protocol, self.virtual_address, self.destination, self.state
        )
    }
}

/// One line of the connection table, borrowed from the parser's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnEntry<'a> {
    /// `Pro`.
    pub protocol: ConnProtocol,
    /// `FromIP:FPrt`. For templates the address is masked with the
    /// service's persistence netmask and the port is 0.
    pub client: SocketAddr,
    /// `ToIP:TPrt`, or the fwmark for protocol `IP`.
    pub virtual_address: VirtualAddress,
    /// `DestIP:DPrt`.
    pub destination: SocketAddr,
    /// `State`.
    pub state: ConnState,
    /// `Expires`: seconds until the entry expires.
    pub expires_secs: u64,
    /// `PEName`, the persistence engine (`sip`), if the entry has PE data.
    pub pe_name: Option<&'a [u8]>,
    /// `PEData`, raw as the engine printed it (the SIP Call-ID).
    pub pe_data: Option<&'a [u8]>,
}

impl<'a> ConnEntry<'a> {
    /// Parses one line (without its newline) of `/proc/net/ip_vs_conn`.
    pub fn parse(line: &'a [u8]) -> Result<Self, FieldError> {
        let mut fields = Fields::new(line);

        let field = fields.expect("Pro")?;
        let protocol = ConnProtocol::parse(field).ok_or_else(|| {
            FieldError::new("Pro", FieldErrorKind::UnknownProtocol(excerpt(field)))
        })?;
        let client_ip = address(&mut fields, "FromIP")?;
        let client_port = port(&mut fields, "FPrt")?;
        let virtual_ip = address(&mut fields, "ToIP")?;
        if virtual_ip.is_ipv4() != client_ip.is_ipv4() {
            return Err(FieldError::new("ToIP", FieldErrorKind::FamilyMismatch));
        }
        let virtual_port = port(&mut fields, "TPrt")?;
        let dest_ip = address(&mut fields, "DestIP")?;
        let dest_port = port(&mut fields, "DPrt")?;
        let field = fields.expect("State")?;
        let state = ConnState::parse(field).ok_or_else(|| {
            FieldError::new("State", FieldErrorKind::InvalidState(excerpt(field)))
        })?;
        let field = fields.expect("Expires")?;
        let expires_secs = parse_dec_u64(field).ok_or_else(|| {
            FieldError::new("Expires", FieldErrorKind::InvalidDecimal(excerpt(field)))
        })?;
        // The PE data is whatever the engine wrote after the name, spaces
        // and all; it is not parsed.
        let pe_name = fields.next_field();
        let pe_data = Some(fields.rest()).filter(|rest| !rest.is_empty());

        let virtual_address = if protocol == ConnProtocol::Ip {
            VirtualAddress::Fwmark(fwmark(virtual_ip))
        } else {
            VirtualAddress::Addr(SocketAddr::new(virtual_ip, virtual_port))
        };
        Ok(Self {
            protocol,
            client: SocketAddr::new(client_ip, client_port),
            virtual_address,
            destination: SocketAddr::new(dest_ip, dest_port),
            state,
            expires_secs,
            pe_name,
            pe_data,
        })
    }

    /// Whether the entry is a persistence template rather than a
    /// connection; see [`is_template`] for the rule.
    pub fn is_template(&self) -> bool {
        is_template(self.protocol, self.client.port(), self.state)
    }

    /// The key this entry is counted under.
    pub fn key(&self) -> ConnKey {
        ConnKey {
            protocol: self.protocol,
            virtual_address: self.virtual_address,
            destination: self.destination,
            state: self.state,
        }
    }
}

/// Tells persistence templates from connections.
///
/// The kernel marks templates with `IP_VS_CONN_F_TEMPLATE`, which
/// `/proc/net/ip_vs_conn` does not print, so the rule works from what it
/// does print. `ip_vs_sched_persist()` (`ip_vs_core.c`) creates every
/// template with client port 0, and `ip_vs_state_name()` names a template's
/// state from its own table, `NONE` or `ASSURED`:
///
/// 1. Protocol `IP` is a template. Only fwmark templates are created with
///    `IPPROTO_IP` (their `ToIP` holds the mark); IPVS schedules no
///    connection of protocol 0.
/// 2. State `ASSURED` is a template: that name is only in the templates'
///    table, in no protocol's.
/// 3. State `NONE` with client port 0 is a template. `NONE` is also the
///    first state of a TCP or SCTP connection, but a connection has the
///    client's real source port, which is not 0.
/// 4. Anything else is a connection.
///
/// Known limits: a connection from client port 0 still in state `NONE`
/// counts as a template (a client cannot normally send from port 0); old
/// kernels that named a template's state through its protocol's table
/// (before `ip_vs_ctpl_state_name_table`) show UDP templates with state
/// `UDP`, and those count as connections.
pub fn is_template(protocol: ConnProtocol, client_port: u16, state: ConnState) -> bool {
    match (protocol, state) {
        (ConnProtocol::Ip, _) => true,
        (_, ConnState::Assured) => true,
        (_, ConnState::None) => client_port == 0,
        _ => false,
    }
}

fn address(fields: &mut Fields<'_>, name: &'static str) -> Result<IpAddr, FieldError> {
    let field = fields.expect(name)?;
    parse_address(field)
        .ok_or_else(|| FieldError::new(name, FieldErrorKind::InvalidAddress(excerpt(field))))
}

fn port(fields: &mut Fields<'_>, name: &'static str) -> Result<u16, FieldError> {
    let field = fields.expect(name)?;
    Some(field)
        .filter(|f| f.len() == 4)
        .and_then(parse_hex_u64)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| FieldError::new(name, FieldErrorKind::InvalidPort(excerpt(field))))
}

/// `%08X` of the host-order IPv4 address, or `%pI6`: exactly the widths
/// the kernel prints, so a truncated field is an error, not a different
/// address.
fn parse_address(field: &[u8]) -> Option<IpAddr> {
    match field.len() {
        8 => {
            let v4 = u32::try_from(parse_hex_u64(field)?).ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(v4)))
        }
        39 => {
            let mut segments = [0u16; 8];
            let mut groups = field.split(|&b| b == b':');
            for segment in &mut segments {
                let group = groups.next().filter(|g| g.len() == 4)?;
                *segment = u16::try_from(parse_hex_u64(group)?).ok()?;
            }
            if groups.next().is_some() {
                return None;
            }
            Some(IpAddr::V6(Ipv6Addr::from(segments)))
        }
        _ => None,
    }
}

/// The fwmark of a fwmark template: `htonl(fwmark)` in the first 32 bits
/// of the virtual address, whatever the family.
fn fwmark(virtual_ip: IpAddr) -> u32 {
    match virtual_ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.octets();
            u32::from_be_bytes([a, b, c, d])
        }
    }
}

fn check_header(line: &[u8]) -> Result<(), FieldError> {
    let mut fields = Fields::new(line);
    let required = HEADER_FIELDS
        .iter()
        .all(|&want| fields.next_field() == Some(want));
    let tail = match fields.next_field() {
        None => true,
        Some(b"PEName") => {
            fields.next_field() == Some(&b"PEData"[..]) && fields.next_field().is_none()
        }
        Some(_) => false,
    };
    if required && tail {
        Ok(())
    } else {
        Err(FieldError::new(
            "header",
            FieldErrorKind::Unexpected {
                expected: HEADER,
                found: excerpt(line),
            },
        ))
    }
}

/// Calls `visit` with every entry of a connection table read from
/// `reader`, in one pass through a fixed buffer, and returns the number of
/// entries.
///
/// The first line must be the kernel's header. An input with no line at
/// all is an empty table: the kernel always prints the header, but a read
/// racing with the `ip_vs` module's removal can see nothing.
pub fn for_each_entry<R, F>(reader: R, mut visit: F) -> Result<u64, ProcError>
where
    R: Read,
    F: FnMut(&ConnEntry<'_>),
{
    let mut lines = LineReader::new(reader, MAX_LINE_LEN);
    match lines.next_line()? {
        None => return Ok(0),
        Some(header) => check_header(header).map_err(|e| e.at(1))?,
    }
    let mut entries = 0;
    loop {
        let Some(line) = lines.next_line()? else {
            return Ok(entries);
        };
        match ConnEntry::parse(line) {
            Ok(entry) => visit(&entry),
            Err(e) => return Err(e.at(lines.line_number())),
        }
        entries += 1;
    }
}

/// Entries of a connection table counted per [`ConnKey`], persistence
/// templates apart from connections.
///
/// Like `ipvsadm -Lcn`, summed: the counts of one read, not a live view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnTableCounts {
    connections: Counts,
    templates: Counts,
    entries: u64,
}

/// Counts per key, hashed with FxHash: a key is a virtual service, a
/// real server and a state, and no client can choose one to collide with
/// another (its own address is not part of the key), so SipHash's defence
/// against chosen collisions buys nothing here and costs a large share of
/// counting a table (see lab/bench/README.md, conncost).
type Counts = HashMap<ConnKey, u64, FxBuildHasher>;

impl ConnTableCounts {
    /// Empty counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the connection table read from `reader` (the contents of
    /// `/proc/net/ip_vs_conn`); see [`for_each_entry`].
    pub fn read_from<R: Read>(reader: R) -> Result<Self, ProcError> {
        let mut counts = Self::new();
        for_each_entry(reader, |entry| counts.add(entry))?;
        Ok(counts)
    }

    /// Counts the connection table in the file at `path`, e.g.
    /// `/proc/<pid>/net/ip_vs_conn` for the network namespace of `<pid>`.
    pub fn read_path<P: AsRef<Path>>(path: P) -> Result<Self, ProcError> {
        Self::read_from(open(path.as_ref())?)
    }

    /// Counts one entry, as a template or a connection.
    pub fn add(&mut self, entry: &ConnEntry<'_>) {
        let map = if entry.is_template() {
            &mut self.templates
        } else {
            &mut self.connections
        };
        // `ConnKey` is `Copy`: only a key not seen before allocates (when
        // the map grows).
        *map.entry(entry.key()).or_insert(0) += 1;
        self.entries += 1;
    }

    /// Connections (not templates) per key, in no particular order.
    pub fn connections(&self) -> impl Iterator<Item = (&ConnKey, u64)> + '_ {
        self.connections.iter().map(|(key, &n)| (key, n))
    }

    /// Persistence templates per key, in no particular order.
    pub fn templates(&self) -> impl Iterator<Item = (&ConnKey, u64)> + '_ {
        self.templates.iter().map(|(key, &n)| (key, n))
    }

    /// Connections counted under `key`.
    pub fn connection_count(&self, key: &ConnKey) -> u64 {
        self.connections.get(key).copied().unwrap_or(0)
    }

    /// Templates counted under `key`.
    pub fn template_count(&self, key: &ConnKey) -> u64 {
        self.templates.get(key).copied().unwrap_or(0)
    }

    /// All connections.
    pub fn total_connections(&self) -> u64 {
        self.connections.values().sum()
    }

    /// All templates.
    pub fn total_templates(&self) -> u64 {
        self.templates.values().sum()
    }

    /// Entry lines parsed (connections and templates; the header is not
    /// an entry).
    pub fn entries(&self) -> u64 {
        self.entries
    }
}

/// Counts the connection table of the caller's network namespace
/// (`/proc/net/ip_vs_conn`, world-readable: no `CAP_NET_ADMIN` needed),
/// like `ipvsadm -Lcn`.
pub fn read_ip_vs_conn() -> Result<ConnTableCounts, ProcError> {
    ConnTableCounts::read_path(IP_VS_CONN_PATH)
}

#[cfg(test)]
mod tests;
