//! Parsers for the kernel's `/proc/net/ip_vs*` files.
//!
//! Two things are only, or most cheaply, available here rather than over
//! the `IPVS` generic netlink family:
//!
//! - The connection table. Netlink reports per-destination counters
//!   (active, inactive and persistent connections) but not the entries
//!   themselves; `/proc/net/ip_vs_conn` lists every entry with its state,
//!   including persistence templates. [`ConnTableCounts`] reads it in one
//!   streaming pass and counts entries per (virtual service, destination,
//!   state), keeping templates apart from connections.
//! - Access without privileges. Every netlink operation of the family,
//!   reads included, needs `CAP_NET_ADMIN`, while the `/proc/net/ip_vs*`
//!   files are world-readable. [`read_ip_vs_stats`] gives the global
//!   totals and rates of `/proc/net/ip_vs_stats` to an unprivileged
//!   exporter.
//!
//! Both files are per network namespace: [`read_ip_vs_conn`] and
//! [`read_ip_vs_stats`] read the caller's; `/proc/<pid>/net/ip_vs_conn`
//! (through [`ConnTableCounts::read_path`]) reads the namespace of `<pid>`.
//!
//! Reading a large connection table is expensive in the kernel itself:
//! every `read(2)` restarts the walk of its connection hash table from the
//! first bucket up to the file position (`ip_vs_conn_seq_start`), and
//! `seq_file` hands out about a page per call, so the kernel's cost grows
//! with the square of the table (the lab measured 15–30 s for 190,000
//! entries on an emulated CPU). Parsing is not the bottleneck (millions of
//! lines a second); callers should still not read the table more often
//! than they need.
//!
//! Nothing here panics on what a file contains: every malformed line is a
//! [`ProcError`] that names the 1-based line and the column it failed on.

mod conn;
mod stats;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use conn::{
    for_each_entry, is_template, read_ip_vs_conn, ConnEntry, ConnKey, ConnProtocol, ConnState,
    ConnTableCounts, StateName, VirtualAddress, IP_VS_CONN_PATH, MAX_LINE_LEN, STATE_NAME_MAX,
};
pub use stats::{read_ip_vs_stats, GlobalStats, IP_VS_STATS_PATH};

/// An error reading or parsing one of the `/proc/net/ip_vs*` files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcError {
    /// The file does not exist: the `ip_vs` module is not loaded (or the
    /// kernel has no IPVS, or `/proc` is not mounted).
    #[error("IPVS is not available: {} does not exist (run `modprobe ip_vs`)", path.display())]
    NotAvailable {
        /// The file that was opened.
        path: PathBuf,
    },
    /// The file exists but could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file that was opened.
        path: PathBuf,
        /// Why it could not be opened.
        #[source]
        source: io::Error,
    },
    /// Reading failed part way.
    #[error("line {line}: read failed")]
    Read {
        /// The 1-based line that was being read.
        line: u64,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// A line does not fit in the parser's fixed buffer.
    #[error("line {line}: longer than {max} bytes")]
    LineTooLong {
        /// The 1-based line.
        line: u64,
        /// The longest line the parser accepts.
        max: usize,
    },
    /// A line is not in the kernel's format.
    #[error("line {line}: {error}")]
    Parse {
        /// The 1-based line.
        line: u64,
        /// Which field failed, and why.
        error: FieldError,
    },
}

/// A field of a line that is not in the kernel's format.
///
/// Displays as `<field>: <what is wrong>`, e.g.
/// ``DestIP: invalid hex address `ZZZZ` ``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as the file's header spells it (`DestIP`, `FPrt`,
    /// `State`…), or `header` for a header line.
    pub field: &'static str,
    /// What is wrong with it.
    pub kind: FieldErrorKind,
}

impl FieldError {
    pub(crate) fn new(field: &'static str, kind: FieldErrorKind) -> Self {
        Self { field, kind }
    }

    pub(crate) fn at(self, line: u64) -> ProcError {
        ProcError::Parse { line, error: self }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind)
    }
}

impl std::error::Error for FieldError {}

/// What is wrong with a field. The `String`s hold an excerpt of the text
/// that was found (made only when there is an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// The line ended before this field.
    #[error("missing")]
    Missing,
    /// Not an IPv4 address as 8 hex digits nor an IPv6 address as 8 groups
    /// of 4 hex digits.
    #[error("invalid hex address `{0}`")]
    InvalidAddress(String),
    /// Not a port as 4 hex digits.
    #[error("invalid hex port `{0}`")]
    InvalidPort(String),
    /// Not a protocol name the kernel prints.
    #[error("unknown protocol `{0}`")]
    UnknownProtocol(String),
    /// A state name that is empty, too long or not printable ASCII.
    #[error("invalid state name `{0}`")]
    InvalidState(String),
    /// Not a decimal number that fits in 64 bits.
    #[error("invalid decimal number `{0}`")]
    InvalidDecimal(String),
    /// Not a hexadecimal number that fits in 64 bits.
    #[error("invalid hex number `{0}`")]
    InvalidHex(String),
    /// The kernel prints the client and virtual addresses in the same
    /// family; this line does not.
    #[error("address family differs from FromIP")]
    FamilyMismatch,
    /// A fixed text (a header) differs from the kernel's.
    #[error("expected `{expected}`, found `{found}`")]
    Unexpected {
        /// What the kernel prints.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// A line the kernel leaves empty is not.
    #[error("expected an empty line, found `{0}`")]
    NotEmpty(String),
    /// More fields than the kernel prints.
    #[error("unexpected extra field `{0}`")]
    Extra(String),
}

/// The longest excerpt of input quoted in an error message, in bytes.
const EXCERPT_MAX: usize = 96;

/// Quotes input in an error message: lossy UTF-8, control characters
/// escaped (so a binary file cannot garble a terminal), and cut at
/// [`EXCERPT_MAX`] bytes.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let (shown, cut) = match bytes.get(..EXCERPT_MAX) {
        Some(head) if bytes.len() > EXCERPT_MAX => (head, true),
        _ => (bytes, false),
    };
    let mut out = String::with_capacity(shown.len() + 4);
    for c in String::from_utf8_lossy(shown).chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if cut {
        out.push('…');
    }
    out
}

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
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
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

/// Opens a `/proc` file, telling "IPVS is not loaded" apart from other
/// failures.
pub(crate) fn open(path: &Path) -> Result<File, ProcError> {
    File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ProcError::NotAvailable {
                path: path.to_path_buf(),
            }
        } else {
            ProcError::Open {
                path: path.to_path_buf(),
                source,
            }
        }
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

    #[test]
    fn excerpt_escapes_and_cuts() {
        assert_eq!(excerpt(b"ZZZZ"), "ZZZZ");
        assert_eq!(excerpt(b"a\tb\x01"), "a\\tb\\u{1}");
        assert_eq!(excerpt(b"\xff"), "\u{fffd}");
        assert_eq!(excerpt(b"\"q\" 'q'"), "\"q\" 'q'");
        let long = [b'x'; 100];
        assert_eq!(excerpt(&long), format!("{}…", "x".repeat(EXCERPT_MAX)));
    }

    #[test]
    fn error_messages() {
        let e = FieldError::new("DestIP", FieldErrorKind::InvalidAddress("ZZZZ".into())).at(17);
        assert_eq!(e.to_string(), "line 17: DestIP: invalid hex address `ZZZZ`");
        let e = ProcError::NotAvailable {
            path: "/proc/net/ip_vs_conn".into(),
        };
        assert_eq!(
            e.to_string(),
            "IPVS is not available: /proc/net/ip_vs_conn does not exist (run `modprobe ip_vs`)"
        );
        let e = ProcError::Open {
            path: "/x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.to_string(), "cannot open /x");
        assert!(std::error::Error::source(&e).is_some());
    }
}

/// A global allocator for this crate's test binary that counts the
/// allocations made by the current thread, so a test can prove that the
/// connection-table parser does not allocate per line.
#[cfg(test)]
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        // `const` initialisation: reading it never allocates, which an
        // allocator needs.
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator;
    // counting touches only a thread-local `Cell`.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            bump();
            // SAFETY: same contract as our caller's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            bump();
            // SAFETY: same contract as our caller's.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            bump();
            // SAFETY: same contract as our caller's.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as our caller's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    fn bump() {
        // `try_with`: the thread-local may already be gone while a thread
        // exits, and an allocator must not panic.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get().wrapping_add(1)));
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations (and reallocations) made so far by this thread.
    pub(crate) fn allocations() -> u64 {
        ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
    }
}
