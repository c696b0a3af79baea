//! The errors of reading the `/proc/net/ip_vs*` files: each names the
//! 1-based line and the field it failed on, and quotes what was found.

use std::fmt;
use std::io;
use std::path::PathBuf;

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

#[cfg(test)]
mod tests {
    use super::*;

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
