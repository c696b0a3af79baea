//! Unit tests of the wire layer: round trips of every attribute through
//! emit and parse (property tests), decoding errors that name the
//! attribute, and golden bytes captured from ipvsadm and the kernel.

mod fake_kernel;
mod golden;
mod malformed;
mod proc_captures;
mod roundtrip;
mod socket_errors;
mod transport;

use netlink_packet_core::Emitable;

use crate::message::IpvsMessage;

/// Emits `message` alone (genl header excluded).
pub(crate) fn emit(message: &IpvsMessage) -> Vec<u8> {
    let mut bytes = vec![0u8; message.buffer_len()];
    message.emit(&mut bytes);
    bytes
}
