//! `icmp`: an echo request to the real server's address, and its echo
//! reply (IPv4 and IPv6).
//!
//! The socket is an ICMP datagram socket ("ping socket") where
//! `net.ipv4.ping_group_range` holds one of the checker's groups (the
//! kernel then sets the echo id and the checksum and hands over only the
//! replies to this socket), else a raw socket, which needs CAP_NET_RAW
//! (and sees every ICMP packet: replies are told apart by id and
//! sequence). Neither allowed is reason `icmp`, saying which to grant.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Phase, Phases, ProbeError, Success, Target};

/// The sequence numbers of this process's echo requests.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// The bytes after the echo header: the checker's name, so that a
/// capture shows who is asking.
const PAYLOAD: &[u8] = b"ipvs-checker";

/// Sends one echo request and waits for its reply.
pub async fn probe(target: &Target, phases: &mut Phases) -> Result<Success, ProbeError> {
    let ip = target.addr.ip();
    let (socket, raw) = open(ip)?;
    if let Some(source) = target.source {
        socket
            .bind(&SockAddr::from(SocketAddr::new(source, 0)))
            .map_err(|e| ProbeError::Icmp(format!("binding to {source}: {e}")))?;
    }
    socket
        .connect(&SockAddr::from(SocketAddr::new(ip, 0)))
        .map_err(ProbeError::Connect)?;
    socket
        .set_nonblocking(true)
        .map_err(|e| ProbeError::Icmp(e.to_string()))?;
    // tokio's UDP socket is a datagram socket's send and receive, which is
    // all an ICMP socket (datagram or raw) needs.
    let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))
        .map_err(|e| ProbeError::Icmp(e.to_string()))?;
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    // A raw socket's id is ours to choose; a datagram socket's is set by
    // the kernel (its local port), which also filters the replies.
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let request = echo_request(ip.is_ipv4(), id, sequence);
    phases.begin(Phase::Response);
    socket.send(&request).await.map_err(ProbeError::Connect)?;
    let mut buf = [0u8; 2048];
    loop {
        let n = socket.recv(&mut buf).await.map_err(ProbeError::Connect)?;
        if is_reply(&buf[..n], ip.is_ipv4(), raw, id, sequence) {
            phases.end();
            return Ok(Success::default());
        }
    }
}

/// A datagram socket if allowed, else a raw one; and whether it is raw.
fn open(ip: IpAddr) -> Result<(Socket, bool), ProbeError> {
    let (domain, protocol) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let denied = |e: &io::Error| {
        matches!(e.kind(), io::ErrorKind::PermissionDenied) || e.raw_os_error() == Some(libc::EPERM)
    };
    match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => return Ok((s, false)),
        Err(e) if denied(&e) => {}
        Err(e) => return Err(ProbeError::Icmp(format!("ICMP socket: {e}"))),
    }
    match Socket::new(domain, Type::RAW, Some(protocol)) {
        Ok(s) => Ok((s, true)),
        Err(e) if denied(&e) => Err(ProbeError::Icmp(
            "no ICMP socket allowed: add one of the checker's groups to net.ipv4.ping_group_range (an ICMP datagram socket, for IPv4 and IPv6), or give it CAP_NET_RAW (a raw socket)".into(),
        )),
        Err(e) => Err(ProbeError::Icmp(format!("raw ICMP socket: {e}"))),
    }
}

/// An echo request: type, code, checksum, id, sequence, payload.
pub(super) fn echo_request(v4: bool, id: u16, sequence: u16) -> Vec<u8> {
    let mut packet = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    if v4 {
        // ICMPv6's checksum covers a pseudo-header: the kernel fills it in.
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071).
pub(super) fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` is the echo reply to our request: after the IPv4
/// header a raw IPv4 socket includes, type 0 (129 for IPv6), and our
/// sequence (and id, on a raw socket).
pub(super) fn is_reply(packet: &[u8], v4: bool, raw: bool, id: u16, sequence: u16) -> bool {
    let icmp = if v4 && raw {
        let Some(first) = packet.first() else {
            return false;
        };
        let header = usize::from(first & 0x0f) * 4;
        packet.get(header..).unwrap_or(&[])
    } else {
        packet
    };
    if icmp.len() < 8 {
        return false;
    }
    let reply_type = if v4 { 0 } else { 129 };
    let same_id = !raw || icmp[4..6] == id.to_be_bytes();
    icmp[0] == reply_type && same_id && icmp[6..8] == sequence.to_be_bytes()
}
