//! Unit tests of the wire layer: round trips of every attribute through
//! emit and parse (property tests), decoding errors that name the
//! attribute, and golden bytes captured from ipvsadm and the kernel.

mod golden;
mod malformed;
mod roundtrip;

use netlink_packet_core::{Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

use crate::message::IpvsMessage;

/// A whole netlink datagram for `message`, as [`crate::socket`] sends it.
pub(crate) fn packet(message: IpvsMessage, family_id: u16, flags: u16, sequence: u32) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(message);
    genl.set_resolved_family_id(family_id);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    packet.finalize();
    let mut bytes = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

/// The IPVS message in a netlink datagram (the header's port id and
/// sequence number are not checked).
pub(crate) fn unpacket(bytes: &[u8]) -> IpvsMessage {
    use netlink_packet_core::{NetlinkBuffer, ParseableParametrized};
    let buffer = NetlinkBuffer::new_checked(bytes).expect("netlink header");
    GenlMessage::<IpvsMessage>::parse_with_param(buffer.payload(), buffer.message_type())
        .expect("IPVS message")
        .payload
}

/// Emits `message` alone (genl header excluded).
pub(crate) fn emit(message: &IpvsMessage) -> Vec<u8> {
    let mut bytes = vec![0u8; message.buffer_len()];
    message.emit(&mut bytes);
    bytes
}
