//! Helpers shared by the attribute modules: walking a buffer of netlink
//! attributes and reading fixed-size values, each failure naming the
//! attribute it came from (the kernel's uapi name) so a bad answer from the
//! kernel is reported as "IPVS_DEST_ATTR_WEIGHT: expected 4 bytes, got 2"
//! rather than a panic or a bare "invalid buffer".

use netlink_packet_core::DecodeError;

/// The flags in the top bits of an attribute's type (`NLA_F_NESTED`,
/// `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 =
    !(netlink_packet_core::NLA_F_NESTED | netlink_packet_core::NLA_F_NET_BYTEORDER);

/// Every attribute in `buf`, as (type without flags, value). `what` names the
/// enclosing block for the error of a truncated attribute; after an error
/// the walk ends.
///
/// Walked by hand rather than with netlink-packet-core's `NlasIterator`:
/// a table dump walks hundreds of thousands of attributes, decoding them is
/// most of what a large dump costs this side of the socket, and this loop
/// takes a fraction of the iterator's instructions (the dump benchmark is
/// in lab/bench/README.md).
pub(crate) fn attributes<'a>(
    what: &'static str,
    buf: &'a [u8],
) -> impl Iterator<Item = Result<(u16, &'a [u8]), DecodeError>> + 'a {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let (header, _) = match rest {
            [] => return None,
            [a, b, c, d, ..] => ([*a, *b, *c, *d], ()),
            short => {
                let left = short.len();
                rest = &[];
                return Some(Err(DecodeError::from(format!(
                    "{what}: malformed attribute: {left} bytes left, a header needs 4"
                ))));
            }
        };
        let length = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        let Some(value) = rest.get(4..length) else {
            let left = rest.len();
            rest = &[];
            return Some(Err(DecodeError::from(format!(
                "{what}: malformed attribute: attribute {kind} of length {length} in {left} bytes"
            ))));
        };
        // Attributes start at multiples of 4; the last one's padding may
        // be missing.
        rest = rest.get((length + 3) & !3..).unwrap_or_default();
        Some(Ok((kind, value)))
    })
}

/// Parses every attribute of a nested block with `parse`.
pub(crate) fn parse_block<T>(
    what: &'static str,
    buf: &[u8],
    parse: impl Fn(u16, &[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    // Sized by a first pass over the headers: a table dump decodes tens
    // of thousands of blocks, and growing each vector step by step was a
    // large part of its cost.
    let mut parsed = Vec::with_capacity(attributes(what, buf).count());
    for attr in attributes(what, buf) {
        let (kind, value) = attr?;
        parsed.push(parse(kind, value)?);
    }
    Ok(parsed)
}

fn fixed<const N: usize>(name: &str, value: &[u8]) -> Result<[u8; N], DecodeError> {
    value
        .try_into()
        .map_err(|_| DecodeError::from(format!("{name}: expected {N} bytes, got {}", value.len())))
}

pub(crate) fn u8_attr(name: &str, value: &[u8]) -> Result<u8, DecodeError> {
    Ok(fixed::<1>(name, value)?[0])
}

pub(crate) fn u16_attr(name: &str, value: &[u8]) -> Result<u16, DecodeError> {
    Ok(u16::from_ne_bytes(fixed(name, value)?))
}

/// A port or other value the kernel puts with `nla_put_be16`.
pub(crate) fn be16_attr(name: &str, value: &[u8]) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(fixed(name, value)?))
}

pub(crate) fn u32_attr(name: &str, value: &[u8]) -> Result<u32, DecodeError> {
    Ok(u32::from_ne_bytes(fixed(name, value)?))
}

pub(crate) fn u64_attr(name: &str, value: &[u8]) -> Result<u64, DecodeError> {
    Ok(u64::from_ne_bytes(fixed(name, value)?))
}

pub(crate) fn bytes4_attr(name: &str, value: &[u8]) -> Result<[u8; 4], DecodeError> {
    fixed(name, value)
}

pub(crate) fn bytes16_attr(name: &str, value: &[u8]) -> Result<[u8; 16], DecodeError> {
    fixed(name, value)
}

/// An address attribute: the kernel always sends the 16 bytes of
/// `union nf_inet_addr` (IPv4 in the first four); older user space sent
/// only four for IPv4, which is accepted too.
pub(crate) fn addr_attr(name: &str, value: &[u8]) -> Result<[u8; 16], DecodeError> {
    let mut addr = [0u8; 16];
    match value.len() {
        4 | 16 => {
            addr[..value.len()].copy_from_slice(value);
            Ok(addr)
        }
        len => Err(DecodeError::from(format!(
            "{name}: expected 4 or 16 bytes, got {len}"
        ))),
    }
}

/// A NUL-terminated string (`nla_put_string`); a missing terminator is
/// tolerated, bytes after the first NUL are ignored.
pub(crate) fn string_attr(name: &str, value: &[u8]) -> Result<String, DecodeError> {
    let text = value.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8(text.to_vec())
        .map_err(|_| DecodeError::from(format!("{name}: not valid UTF-8: {text:?}")))
}

/// Length of a string attribute's value on the wire, terminator included.
pub(crate) fn string_len(s: &str) -> usize {
    s.len() + 1
}

/// Writes `s` and its NUL terminator into `buf` (sized by [`string_len`]).
pub(crate) fn emit_string(buf: &mut [u8], s: &str) {
    let (text, nul) = buf.split_at_mut(s.len());
    text.copy_from_slice(s.as_bytes());
    nul.fill(0);
}
