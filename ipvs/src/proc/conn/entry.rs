//! One line of the connection table: its fields parsed without
//! allocating, and the rule that tells persistence templates from
//! connections; [`for_each_entry`] reads a whole table.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::key::{ConnKey, ConnProtocol, ConnState, VirtualAddress};
use super::MAX_LINE_LEN;
use crate::proc::{
    excerpt, parse_dec_u64, parse_hex_u64, FieldError, FieldErrorKind, Fields, LineReader,
    ProcError,
};

/// The header the kernel prints first, for error messages.
const HEADER: &str =
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData";

/// The header's fields every kernel prints; `PEName PEData` were added
/// with persistence engines in Linux 2.6.37 and are accepted but optional.
const HEADER_FIELDS: [&[u8]; 9] = [
    b"Pro", b"FromIP", b"FPrt", b"ToIP", b"TPrt", b"DestIP", b"DPrt", b"State", b"Expires",
];

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
