//! Helpers shared by the attribute modules: walking a buffer of netlink
//! attributes and reading fixed-size values, each failure naming the
//! attribute it came from (the kernel's uapi name) so a bad answer from the
//! kernel is reported as "IPVS_DEST_ATTR_WEIGHT: expected 4 bytes, got 2"
//! rather than a panic or a bare "invalid buffer".

use netlink_packet_core::{DecodeError, NlaBuffer, NlasIterator};

/// Every attribute in `buf`, as (type without flags, value). `what` names the
/// enclosing block for the error of a truncated attribute.
pub(crate) fn attributes<'a>(
    what: &'static str,
    buf: &'a [u8],
) -> impl Iterator<Item = Result<(u16, &'a [u8]), DecodeError>> + 'a {
    NlasIterator::new(buf).map(move |nla| {
        let nla: NlaBuffer<&[u8]> =
            nla.map_err(|e| DecodeError::from(format!("{what}: malformed attribute: {e}")))?;
        let (kind, length) = (nla.kind(), usize::from(nla.length()));
        // new_checked has verified 4 <= length <= buffer length.
        let value = nla.into_inner().get(4..length).ok_or_else(|| {
            DecodeError::from(format!("{what}: attribute {kind} overruns its buffer"))
        })?;
        Ok((kind, value))
    })
}

/// Parses every attribute of a nested block with `parse`.
pub(crate) fn parse_block<T>(
    what: &'static str,
    buf: &[u8],
    parse: impl Fn(u16, &[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    attributes(what, buf)
        .map(|attr| {
            let (kind, value) = attr?;
            parse(kind, value)
        })
        .collect()
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
