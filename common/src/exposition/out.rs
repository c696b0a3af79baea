//! The exposition being written, handed to the sink in pieces.

use std::io::Write;

use super::Format;

/// The size of the pieces handed to the sink.
pub(super) const CHUNK: usize = 64 * 1024;

/// The exposition being written: a small buffer handed to the sink each
/// time it fills, so that a compressed exposition never exists whole
/// uncompressed.
pub struct Out<'w> {
    pub(super) buf: String,
    sink: &'w mut dyn Write,
    error: Option<std::io::Error>,
}

impl<'w> Out<'w> {
    /// An exposition written to `sink`.
    pub fn new(sink: &'w mut dyn Write) -> Self {
        Out {
            buf: String::with_capacity(CHUNK + 4096),
            sink,
            error: None,
        }
    }

    /// Hands the buffer to the sink once it holds a chunk.
    #[inline]
    pub(super) fn spill(&mut self) {
        if self.buf.len() >= CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(error) = self.sink.write_all(self.buf.as_bytes()) {
                self.error = Some(error);
            }
        }
        self.buf.clear();
    }

    /// Ends the exposition (`# EOF` in OpenMetrics) and hands what is left
    /// to the sink; the first error the sink returned, if any (nothing
    /// more was written after it).
    pub fn finish(mut self, format: Format) -> std::io::Result<()> {
        if format == Format::OpenMetrics {
            self.buf.push_str("# EOF\n");
        }
        self.flush();
        match self.error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Writes one sample line of a family whose header
    /// ([`super::Family::header`]) was just written: `labels` rendered
    /// (`{...}` or empty).
    #[inline]
    pub fn sample(&mut self, name: &str, labels: &str, value: u64) {
        self.buf.push_str(name);
        self.buf.push_str(labels);
        self.buf.push(' ');
        push_decimal(&mut self.buf, value);
        self.buf.push('\n');
        self.spill();
    }
}

impl std::fmt::Debug for Out<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out")
            .field("buffered", &self.buf.len())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// `value` in decimal, through itoa rather than `core::fmt`: every sample
/// of the exporter's table goes through here, and `fmt`'s general
/// machinery (`write`, `pad_integral`) would be much of a sample line's
/// cost (figures in lab/bench/README.md, encode-cost).
#[inline]
pub(super) fn push_decimal(out: &mut String, value: u64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// What `encode` writes, as text: an exposition made whole, for a caller
/// that does not stream it.
pub fn into_text(encode: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> String {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = encode(&mut bytes);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_display_writes_them() {
        for value in [0, 7, 10, 99, 1_000_000, u64::from(u32::MAX) + 1, u64::MAX] {
            let mut out = String::from("x ");
            push_decimal(&mut out, value);
            assert_eq!(out, format!("x {value}"));
        }
    }
}
