//! keepalived's UDP_CHECK to the checker's `udp` check.
//!
//! keepalived sends `payload` (random bytes unless set) from a connected
//! socket. Without `require_reply` a reply, or silence until
//! `connect_timeout`, passes, and an ICMP destination unreachable fails.
//! With it, the first reply decides: its length must be within
//! `min_reply_length` (0) and `max_reply_length` (255), and its bytes must
//! equal the `require_reply` bytes as far as both go (so a reply shorter
//! than them passes if it starts them), a hex digit `x` matching any four
//! bits. The checker's `expect` regex over the reply says all of that.
//!
//! keepalived's hex strings: words of hex digits, read two at a time, a
//! word's odd last digit a byte of its own (`1 abc` is 01 ab 0c).

use super::args::{number, one_arg};
use super::tree::{Statement, Word};
use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};
use crate::import::model::CheckKind;

/// The longest UDP payload over IPv4: a `max_reply_length` at or above it
/// bounds nothing.
const UDP_PAYLOAD_MAX: usize = 65_507;

/// keepalived's `max_reply_length` unless set.
const DEFAULT_MAX_REPLY: usize = 255;

/// The most replies shorter than the `require_reply` bytes the regex
/// lists one by one: each is a branch as long as itself, so a long
/// pattern would make a regex the checker refuses as too large.
const MAX_SHORT_REPLIES: usize = 64;

/// A byte of a hex string: its value, and whether each half is `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HexByte {
    value: u8,
    high_any: bool,
    low_any: bool,
}

/// The UDP_CHECK keywords, as read.
#[derive(Debug, Default)]
pub(super) struct UdpOptions {
    payload: Option<Vec<u8>>,
    /// `require_reply`, with its bytes (none for a bare `require_reply`).
    require_reply: Option<(Vec<HexByte>, Loc)>,
    min_reply: Option<(usize, Loc)>,
    max_reply: Option<(usize, Loc)>,
}

impl UdpOptions {
    /// Takes `s` if it is a UDP_CHECK keyword.
    pub(super) fn take(
        &mut self,
        s: &Statement,
        diags: &mut Diagnostics,
    ) -> Result<bool, ParseError> {
        match s.keyword.text.as_str() {
            "payload" => {
                let bytes = hex_string(s, false)?;
                if bytes.is_empty() {
                    return Err(ParseError::new(s.loc(), "payload needs a hex string"));
                }
                self.payload = Some(bytes.iter().map(|b| b.value).collect());
            }
            "require_reply" => self.require_reply = Some((hex_string(s, true)?, s.loc().clone())),
            "min_reply_length" => self.min_reply = Some((length(s, diags)?, s.loc().clone())),
            "max_reply_length" => self.max_reply = Some((length(s, diags)?, s.loc().clone())),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The `udp` check, with what differs said at `at` (the UDP_CHECK).
    pub(super) fn check(
        self,
        at: &Loc,
        comments: &mut Vec<String>,
        diags: &mut Diagnostics,
    ) -> Result<CheckKind, ParseError> {
        let mut say = |loc: &Loc, severity: Severity, message: &str| {
            diags.push(loc, severity, message);
            comments.push(format!("{}: {message}", loc.line_only()));
        };
        if self.payload.is_none() {
            say(
                at,
                Severity::Different,
                "UDP_CHECK without payload: keepalived sends random bytes, the checker an empty datagram",
            );
        }
        let payload_hex = self.payload.map(|bytes| {
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let Some((pattern, _)) = self.require_reply else {
            for (_, loc) in self.min_reply.iter().chain(&self.max_reply) {
                say(
                    loc,
                    Severity::Note,
                    "a reply length without require_reply: keepalived ignores it, and so does the import",
                );
            }
            say(
                at,
                Severity::Different,
                "UDP_CHECK without require_reply: a reply or silence passes under both; keepalived fails on any ICMP destination unreachable (host, network, port), the checker on a port unreachable only",
            );
            return Ok(CheckKind::Udp {
                payload_hex,
                expect: None,
            });
        };
        let min = self.min_reply.as_ref().map_or(0, |(n, _)| *n);
        let max = self
            .max_reply
            .as_ref()
            .map_or(DEFAULT_MAX_REPLY, |(n, _)| *n);
        if min > max {
            let loc = self.min_reply.as_ref().map_or(at, |(_, loc)| loc);
            return Err(ParseError::new(
                loc,
                format!("min_reply_length {min} is above max_reply_length {max}: keepalived's check could never pass"),
            ));
        }
        say(
            at,
            Severity::Note,
            "require_reply: keepalived judges the first reply, the checker passes on any reply that matches before the timeout",
        );
        let n = pattern.len();
        let mut short = short_replies(n, min, max);
        if short.len() > MAX_SHORT_REPLIES {
            let message = format!(
                "a reply shorter than require_reply's {n} bytes that starts them passes under keepalived; here the reply must hold the first {} of them",
                n.min(max)
            );
            say(at, Severity::Different, &message);
            // Only the longest such reply, where max_reply_length cuts it.
            short = if max < n { max..max + 1 } else { 0..0 };
        }
        Ok(CheckKind::Udp {
            payload_hex,
            expect: Some(reply_regex(&pattern, min, max, short)),
        })
    }
}

/// A length of `s`: 0 to 65535, as keepalived reads it.
fn length(s: &Statement, diags: &mut Diagnostics) -> Result<usize, ParseError> {
    let n: u16 = number(one_arg(s, diags)?, s.keyword.text.as_str())?;
    Ok(usize::from(n))
}

/// The bytes of the hex string in `s`'s words; `x` allowed for a half
/// when `wildcards`.
fn hex_string(s: &Statement, wildcards: bool) -> Result<Vec<HexByte>, ParseError> {
    let mut bytes = Vec::new();
    for word in &s.args {
        let digits = word
            .text
            .chars()
            .map(|c| digit(c, wildcards).ok_or_else(|| bad_digit(word, c, wildcards)))
            .collect::<Result<Vec<_>, _>>()?;
        for pair in digits.chunks(2) {
            bytes.push(match *pair {
                [(high, high_any), (low, low_any)] => HexByte {
                    value: high << 4 | low,
                    high_any,
                    low_any,
                },
                [(low, low_any)] => HexByte {
                    value: low,
                    high_any: false,
                    low_any,
                },
                _ => continue,
            });
        }
    }
    Ok(bytes)
}

/// A hex digit's value and whether it is `x`.
fn digit(c: char, wildcards: bool) -> Option<(u8, bool)> {
    match c {
        'x' | 'X' if wildcards => Some((0, true)),
        _ => c
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .map(|d| (d, false)),
    }
}

fn bad_digit(word: &Word, c: char, wildcards: bool) -> ParseError {
    let allowed = if wildcards {
        "hex digits and x"
    } else {
        "hex digits"
    };
    ParseError::new(
        &word.loc,
        format!(
            "{:?}: {c:?} in a hex string (expected {allowed})",
            word.text
        ),
    )
}

/// The lengths of the replies shorter than the `n` bytes of a pattern
/// that keepalived passes when they start it.
fn short_replies(n: usize, min: usize, max: usize) -> std::ops::Range<usize> {
    min..n.min(max.saturating_add(1))
}

/// The `expect` regex that passes the replies keepalived passes: length
/// in `min..=max`, and the `pattern`'s bytes as far as both go (for a
/// reply shorter than the pattern, only if its length is in `short`).
fn reply_regex(
    pattern: &[HexByte],
    min: usize,
    max: usize,
    short: std::ops::Range<usize>,
) -> String {
    let n = pattern.len();
    let mut branches = Vec::new();
    if max >= n {
        // The whole pattern, then any bytes up to the length bounds.
        let from = min.saturating_sub(n);
        let tail = if max >= UDP_PAYLOAD_MAX {
            format!(".{{{from},}}")
        } else if max == n {
            String::new()
        } else {
            format!(".{{{from},{}}}", max - n)
        };
        branches.push(format!("{}{tail}", bytes_regex(pattern)));
    }
    // A reply shorter than the pattern that starts it.
    for len in short.rev() {
        branches.push(bytes_regex(&pattern[..len]));
    }
    let body = match branches.as_slice() {
        [one] => one.clone(),
        _ => format!("(?:{})", branches.join("|")),
    };
    format!("(?s-u)\\A{body}\\z")
}

fn bytes_regex(bytes: &[HexByte]) -> String {
    bytes.iter().map(|b| byte_regex(*b)).collect()
}

/// One byte as a regex over bytes (`(?s-u)`: `.` is any byte).
fn byte_regex(b: HexByte) -> String {
    match (b.high_any, b.low_any) {
        (false, false) => format!("\\x{:02x}", b.value),
        (true, true) => ".".into(),
        (false, true) => format!("[\\x{:02x}-\\x{:02x}]", b.value & 0xf0, b.value | 0x0f),
        (true, false) => {
            let low = b.value & 0x0f;
            let each: String = (0..16u8)
                .map(|high| format!("\\x{:02x}", high << 4 | low))
                .collect();
            format!("[{each}]")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str) -> Word {
        Word {
            text: text.into(),
            loc: Loc {
                file: std::sync::Arc::new("k.conf".into()),
                line: 1,
                column: 1,
            },
        }
    }

    fn hex(text: &str) -> Vec<HexByte> {
        let s = Statement {
            keyword: word("require_reply"),
            args: text.split_whitespace().map(word).collect(),
            block: None,
        };
        hex_string(&s, true).expect("a hex string")
    }

    fn values(bytes: &[HexByte]) -> Vec<u8> {
        bytes.iter().map(|b| b.value).collect()
    }

    #[test]
    fn hex_strings_read_as_keepalived_reads_them() {
        // keepalived's manual's own example.
        assert_eq!(
            values(&hex("Ab12f 3 456 546443123")),
            [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        let wild = hex("1x X2 xx");
        assert_eq!(
            wild.iter()
                .map(|b| (b.high_any, b.low_any))
                .collect::<Vec<_>>(),
            [(false, true), (true, false), (true, true)]
        );
    }

    fn passes(pattern: &str, min: usize, max: usize, reply: &[u8]) -> bool {
        let pattern = hex(pattern);
        let short = short_replies(pattern.len(), min, max);
        let re = regex::bytes::Regex::new(&reply_regex(&pattern, min, max, short)).expect("regex");
        re.is_match(reply)
    }

    #[test]
    fn the_reply_regex_passes_what_keepalived_passes() {
        // The bytes as far as both go; x is any half.
        assert!(passes("de ad", 0, 255, b"\xde\xad"));
        assert!(passes("de ad", 0, 255, b"\xde\xad and more"));
        assert!(passes("de ad", 0, 255, b"\xde"));
        assert!(passes("de ad", 0, 255, b""));
        assert!(!passes("de ad", 0, 255, b"\xde\xae"));
        assert!(!passes("de ad", 0, 255, b"\xdf"));
        assert!(passes("dx xd", 0, 255, b"\xd7\x3d"));
        assert!(!passes("dx xd", 0, 255, b"\xc7\x3d"));
        assert!(!passes("dx xd", 0, 255, b"\xd7\x3e"));
        // The length bounds.
        assert!(!passes("de ad", 2, 255, b"\xde"));
        assert!(passes("de ad", 2, 255, b"\xde\xad"));
        assert!(!passes("de ad", 0, 3, b"\xde\xad\x00\x00"));
        assert!(passes("de ad", 0, 3, b"\xde\xad\n"));
        assert!(!passes("", 0, 255, &[0; 256]));
        assert!(passes("", 0, 65535, &[0; 4096]));
        assert!(!passes("", 1, 255, b""));
        // A bound shorter than the pattern: only its prefixes.
        assert!(passes("de ad be ef", 0, 2, b"\xde\xad"));
        assert!(!passes("de ad be ef", 0, 2, b"\xde\xad\xbe"));
    }

    #[test]
    fn a_long_pattern_needs_the_whole_of_it_and_says_so() {
        let long = "ab".repeat(300);
        let s = Statement {
            keyword: word("UDP_CHECK"),
            args: Vec::new(),
            block: None,
        };
        let options = UdpOptions {
            payload: Some(vec![0]),
            require_reply: Some((hex(&long), s.loc().clone())),
            max_reply: Some((1000, s.loc().clone())),
            ..UdpOptions::default()
        };
        let re = long_check(options);
        assert!(re.is_match(&[0xab; 300]));
        assert!(!re.is_match(&[0xab; 299]));
        // max_reply_length (255 unless set) below the pattern's length:
        // a reply of its first 255 bytes.
        let options = UdpOptions {
            require_reply: Some((hex(&long), s.loc().clone())),
            ..UdpOptions::default()
        };
        let re = long_check(options);
        assert!(re.is_match(&[0xab; 255]));
        assert!(!re.is_match(&[0xab; 254]));
    }

    /// The regex of a check whose pattern is too long to list its
    /// shorter replies: said as a difference.
    fn long_check(options: UdpOptions) -> regex::bytes::Regex {
        let at = word("UDP_CHECK").loc;
        let mut diags = Diagnostics::default();
        let CheckKind::Udp {
            expect: Some(expect),
            ..
        } = options
            .check(&at, &mut Vec::new(), &mut diags)
            .expect("converts")
        else {
            panic!("a udp check with expect");
        };
        assert_eq!(diags.worst(), Some(Severity::Different));
        regex::bytes::Regex::new(&expect).expect("the checker's regex compiles")
    }
}
