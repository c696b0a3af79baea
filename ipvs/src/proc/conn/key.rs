//! What the connection table's entries are counted by: the protocol, the
//! state and the virtual address of an entry, as the kernel prints them.

use std::fmt;
use std::net::SocketAddr;

use crate::proc::parse_dec_u64;

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

    pub(super) fn parse(field: &[u8]) -> Option<Self> {
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
pub(super) const KNOWN_STATES: [(&str, ConnState); 25] = [
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
