//! Entry points for coverage-guided fuzzing (the `fuzz/` crate,
//! cargo-fuzz): the decoders of what the kernel sends, over any bytes.
//! Built only with the `fuzzing` feature, and not part of the API.

use netlink_packet_core::ParseableParametrized;
use netlink_packet_generic::GenlMessage;

use crate::constants::IPVS_CMD_ATTR_DEST;
use crate::destination::Destination;
use crate::message::IpvsMessage;
use crate::service::AddressFamily;
use crate::socket::{Answer, GENL_HEADER_LEN};

/// `bytes` as one datagram of an answer the transport reads: every message
/// of the answer's sequence (the first message's) decoded as the handle
/// decodes them, as a whole IPVS message (services, info, config) and
/// attribute by attribute (the destination dumps' path).
pub fn netlink_datagram(bytes: &[u8]) {
    let sequence = bytes
        .get(8..12)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    let mut answer = Answer {
        sequence,
        interrupted: false,
    };
    let _ = answer.datagram(bytes, &mut |payload, message_type| {
        if let Ok(message) = GenlMessage::<IpvsMessage>::parse_with_param(payload, message_type) {
            let _ = crate::handle::service_of(message.payload);
        }
        if let Some(attrs) = payload.get(GENL_HEADER_LEN..) {
            for (kind, value) in crate::nla::attributes("IPVS message", attrs).flatten() {
                if kind == IPVS_CMD_ATTR_DEST {
                    let _ = Destination::decode(value, AddressFamily::Inet);
                    let _ = Destination::decode(value, AddressFamily::Inet6);
                    let _ = Destination::decode_settings(value, AddressFamily::Inet);
                }
            }
        }
        Ok(())
    });
}
