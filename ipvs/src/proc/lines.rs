//! Reading the kernel's text: lines through one fixed buffer, the fields
//! of a line, and the hex and decimal numbers in them, without allocating.

use std::io::{self, Read};

use super::{FieldError, FieldErrorKind, ProcError};

/// Splits a line into the fields the kernel separates with (runs of)
/// spaces; `%-11s` and `%7u` pad with spaces, so runs are normal.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(line: &'a [u8]) -> Self {
        Self { rest: line }
    }

    /// The next field, if any.
    pub(crate) fn next_field(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let (_, tail) = self.rest.split_at_checked(start)?;
        let len = tail.iter().position(|&b| b == b' ').unwrap_or(tail.len());
        let (field, rest) = tail.split_at_checked(len)?;
        self.rest = rest;
        Some(field)
    }

    /// The next field, or a [`FieldErrorKind::Missing`] error naming it.
    pub(crate) fn expect(&mut self, name: &'static str) -> Result<&'a [u8], FieldError> {
        self.next_field()
            .ok_or(FieldError::new(name, FieldErrorKind::Missing))
    }

    /// What is left after the fields taken so far, without the spaces that
    /// separate it from them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        let start = self
            .rest
            .iter()
            .position(|&b| b != b' ')
            .unwrap_or(self.rest.len());
        self.rest.get(start..).unwrap_or_default()
    }
}

/// Value of one ASCII hex digit, either case.
#[inline]
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses 1 to 16 hex digits (no sign, no `0x`) into a `u64`.
pub(crate) fn parse_hex_u64(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 16 {
        return None;
    }
    field
        .iter()
        .try_fold(0u64, |acc, &b| Some((acc << 4) | u64::from(hex_digit(b)?)))
}

/// Parses 1 to 20 decimal digits (no sign) into a `u64`, refusing overflow.
pub(crate) fn parse_dec_u64(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return None,
        };
        acc.checked_mul(10)?.checked_add(digit)
    })
}

/// Reads lines from any [`Read`] through one fixed buffer allocated once:
/// a line is handed out as a slice of the buffer, so reading a file of a
/// million lines allocates no more than reading one of ten.
pub(crate) struct LineReader<R> {
    reader: R,
    buf: Box<[u8]>,
    /// Start of the bytes not yet handed out.
    start: usize,
    /// End of the bytes read so far.
    end: usize,
    /// Bytes in `start..scanned` are known to hold no newline, so a line
    /// that spans many refills is scanned once, not once per refill.
    scanned: usize,
    /// Lines handed out so far; the next line's 1-based number is one more.
    line: u64,
    eof: bool,
}

impl<R: Read> LineReader<R> {
    /// A reader whose lines can be at most `capacity` bytes long, newline
    /// included.
    pub(crate) fn new(reader: R, capacity: usize) -> Self {
        Self {
            reader,
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
            scanned: 0,
            line: 0,
            eof: false,
        }
    }

    /// The 1-based number of the line last handed out.
    pub(crate) fn line_number(&self) -> u64 {
        self.line
    }

    /// The next line, without its `\n` (nor a `\r` before it), or `None` at
    /// the end of the input. A last line without a newline is still a line.
    pub(crate) fn next_line(&mut self) -> Result<Option<&[u8]>, ProcError> {
        loop {
            let unscanned = self.buf.get(self.scanned..self.end).unwrap_or_default();
            // memchr: line ends are searched a word or a vector at a time,
            // not byte by byte (see lab/bench/README.md, conncost).
            if let Some(pos) = memchr::memchr(b'\n', unscanned) {
                let line_start = self.start;
                let line_end = self.scanned + pos;
                self.start = line_end + 1;
                self.scanned = self.start;
                self.line += 1;
                return Ok(Some(trim_cr(
                    self.buf.get(line_start..line_end).unwrap_or_default(),
                )));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start >= self.end {
                    return Ok(None);
                }
                let line_start = self.start;
                self.start = self.end;
                self.line += 1;
                return Ok(Some(trim_cr(
                    self.buf.get(line_start..self.end).unwrap_or_default(),
                )));
            }
            // Move the partial line to the front so the whole buffer is
            // free for it: the buffer bounds a line, not the file.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.scanned = self.end;
                self.start = 0;
            }
            let free = match self.buf.get_mut(self.end..) {
                Some(free) if !free.is_empty() => free,
                _ => {
                    return Err(ProcError::LineTooLong {
                        line: self.line + 1,
                        max: self.buf.len(),
                    })
                }
            };
            let room = free.len();
            match self.reader.read(free) {
                Ok(0) => self.eof = true,
                // `min`: a misbehaving reader must not move `end` past the
                // buffer.
                Ok(n) => self.end += n.min(room),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ProcError::Read {
                        line: self.line + 1,
                        source,
                    })
                }
            }
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failing test should panic with the value.
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, as a pipe or a slow file might.
    struct Trickle<'a> {
        data: &'a [u8],
        sizes: std::iter::Cycle<std::slice::Iter<'a, usize>>,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let want = self.sizes.next().copied().unwrap_or(1);
            let n = want.min(buf.len()).min(self.data.len());
            let (head, tail) = self.data.split_at(n);
            buf[..n].copy_from_slice(head);
            self.data = tail;
            Ok(n)
        }
    }

    fn lines_of(reader: impl Read, capacity: usize) -> Result<Vec<Vec<u8>>, ProcError> {
        let mut lines = LineReader::new(reader, capacity);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line()? {
            out.push(line.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn line_reader_splits_lines_across_refills() {
        let data = b"first\nsecond line\r\n\nlast without newline";
        let want: Vec<Vec<u8>> = vec![
            b"first".to_vec(),
            b"second line".to_vec(),
            b"".to_vec(),
            b"last without newline".to_vec(),
        ];
        for capacity in [21, 32, 4096] {
            let sizes = [1, 7, 3, 2, 5, 4, 6];
            let trickle = Trickle {
                data,
                sizes: sizes.iter().cycle(),
            };
            assert_eq!(lines_of(trickle, capacity).unwrap(), want, "{capacity}");
            assert_eq!(lines_of(&data[..], capacity).unwrap(), want, "{capacity}");
        }
        assert!(lines_of(&b""[..], 8).unwrap().is_empty());
    }

    #[test]
    fn line_reader_refuses_a_line_longer_than_its_buffer() {
        // A 20-byte line plus its newline does not fit in 20 bytes.
        let data = b"ok\nxxxxxxxxxxxxxxxxxxxx\n";
        let err = lines_of(&data[..], 20).unwrap_err();
        assert_eq!(err.to_string(), "line 2: longer than 20 bytes");
        // A 19-byte line plus its newline does.
        let data = b"ok\nxxxxxxxxxxxxxxxxxxx\n";
        assert_eq!(lines_of(&data[..], 20).unwrap().len(), 2);
        // A last line without a newline is held to the same limit.
        let data = b"ok\nxxxxxxxxxxxxxxxxxxx";
        assert_eq!(lines_of(&data[..], 20).unwrap().len(), 2);
    }

    #[test]
    fn line_reader_reports_read_errors_with_the_line() {
        struct FailAfter(usize);
        impl Read for FailAfter {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("device gone"));
                }
                self.0 -= 1;
                buf[..2].copy_from_slice(b"a\n");
                Ok(2)
            }
        }
        let err = lines_of(FailAfter(3), 64).unwrap_err();
        assert_eq!(err.to_string(), "line 4: read failed");
        let ProcError::Read { source, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(source.to_string(), "device gone");
    }

    #[test]
    fn line_reader_retries_interrupted_reads() {
        struct Interrupts(bool, &'static [u8]);
        impl Read for Interrupts {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 = !self.0;
                if self.0 {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                (&mut self.1).read(buf)
            }
        }
        let lines = lines_of(Interrupts(false, b"a\nb\n"), 64).unwrap();
        assert_eq!(lines, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn fields_split_on_runs_of_spaces() {
        let mut f = Fields::new(b"  TCP 0A  ESTABLISHED     7 sip a b ");
        assert_eq!(f.next_field(), Some(&b"TCP"[..]));
        assert_eq!(f.next_field(), Some(&b"0A"[..]));
        assert_eq!(f.next_field(), Some(&b"ESTABLISHED"[..]));
        assert_eq!(f.next_field(), Some(&b"7"[..]));
        assert_eq!(f.next_field(), Some(&b"sip"[..]));
        assert_eq!(f.rest(), b"a b ");
        assert_eq!(f.next_field(), Some(&b"a"[..]));
        assert_eq!(f.next_field(), Some(&b"b"[..]));
        assert_eq!(f.next_field(), None);
        assert_eq!(f.rest(), b"");
        assert_eq!(
            f.expect("PEData"),
            Err(FieldError::new("PEData", FieldErrorKind::Missing))
        );
    }

    #[test]
    fn hex_and_decimal() {
        assert_eq!(parse_hex_u64(b"0"), Some(0));
        assert_eq!(parse_hex_u64(b"aBcD"), Some(0xabcd));
        assert_eq!(parse_hex_u64(b"FFFFFFFFFFFFFFFF"), Some(u64::MAX));
        assert_eq!(parse_hex_u64(b"1FFFFFFFFFFFFFFFF"), None);
        assert_eq!(parse_hex_u64(b""), None);
        assert_eq!(parse_hex_u64(b"0x1"), None);
        assert_eq!(parse_dec_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_dec_u64(b"18446744073709551616"), None);
        assert_eq!(parse_dec_u64(b"-1"), None);
        assert_eq!(parse_dec_u64(b""), None);
    }
}
