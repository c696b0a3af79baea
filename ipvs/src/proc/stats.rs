//! Parser of `/proc/net/ip_vs_stats`, the global IPVS counters and rates
//! of a network namespace.
//!
//! The kernel prints it in `ip_vs_stats_show` (`net/netfilter/ipvs/ip_vs_ctl.c`):
//!
//! ```text
//!    Total Incoming Outgoing         Incoming         Outgoing
//!    Conns  Packets  Packets            Bytes            Bytes
//!      2A7    1B3F0    17D44          1C2E5A3         2F1B88C0
//!
//!  Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
//!        3       5C       51             5E2B            A1F04
//! ```
//!
//! Numbers are hex, `%8LX %8LX %8LX %16LX %16LX`: the widths are minimums,
//! so a counter past 32 bits runs into its neighbour's padding but stays
//! space-separated. (Older kernels printed the first three of each line
//! with `%8X` of 32-bit counters: the same parsing reads them.)

use std::io::Read;
use std::path::Path;

use super::{
    excerpt, open, parse_hex_u64, FieldError, FieldErrorKind, Fields, LineReader, ProcError,
};

/// The global statistics of the caller's network namespace.
pub const IP_VS_STATS_PATH: &str = "/proc/net/ip_vs_stats";

/// The file is six short lines; this bounds a line of anything else.
const MAX_LINE_LEN: usize = 4096;

const TOTALS_HEADER: [&str; 2] = [
    "Total Incoming Outgoing Incoming Outgoing",
    "Conns Packets Packets Bytes Bytes",
];
const RATES_HEADER: &str = "Conns/s Pkts/s Pkts/s Bytes/s Bytes/s";

/// IPVS totals since the `ip_vs` module was loaded (or the namespace
/// created), and the rates the kernel's estimator computed over its last
/// interval (about two seconds), as `/proc/net/ip_vs_stats` prints them.
///
/// Field names follow the kernel's `struct ip_vs_kstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GlobalStats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in (client to real server).
    pub inpkts: u64,
    /// Packets out (real server to client; NAT only).
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out (NAT only).
    pub outbytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Packets in per second.
    pub inpps: u64,
    /// Packets out per second.
    pub outpps: u64,
    /// Bytes in per second.
    pub inbps: u64,
    /// Bytes out per second.
    pub outbps: u64,
}

impl GlobalStats {
    /// Parses the contents of `/proc/net/ip_vs_stats` read from `reader`.
    pub fn read_from<R: Read>(reader: R) -> Result<Self, ProcError> {
        let mut lines = LineReader::new(reader, MAX_LINE_LEN);

        for (number, expected) in (1..).zip(TOTALS_HEADER) {
            header(lines.next_line()?, expected).map_err(|e| e.at(number))?;
        }
        let [conns, inpkts, outpkts, inbytes, outbytes] = values(
            lines.next_line()?,
            ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"],
        )
        .map_err(|e| e.at(3))?;

        match lines.next_line()? {
            Some(line) if !Fields::new(line).rest().is_empty() => {
                let kind = FieldErrorKind::NotEmpty(excerpt(line));
                return Err(FieldError::new("separator", kind).at(4));
            }
            Some(_) => {}
            None => return Err(FieldError::new("separator", FieldErrorKind::Missing).at(4)),
        }

        header(lines.next_line()?, RATES_HEADER).map_err(|e| e.at(5))?;
        let [cps, inpps, outpps, inbps, outbps] = values(
            lines.next_line()?,
            ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"],
        )
        .map_err(|e| e.at(6))?;

        // The kernel prints nothing more; anything after is not its format.
        if let Some(line) = lines.next_line()? {
            let kind = FieldErrorKind::Extra(excerpt(line));
            return Err(FieldError::new("end of file", kind).at(7));
        }
        Ok(Self {
            conns,
            inpkts,
            outpkts,
            inbytes,
            outbytes,
            cps,
            inpps,
            outpps,
            inbps,
            outbps,
        })
    }

    /// Parses the file at `path`, e.g. `/proc/<pid>/net/ip_vs_stats` for
    /// the network namespace of `<pid>`.
    pub fn read_path<P: AsRef<Path>>(path: P) -> Result<Self, ProcError> {
        Self::read_from(open(path.as_ref())?)
    }
}

/// Reads the global statistics of the caller's network namespace
/// (`/proc/net/ip_vs_stats`, world-readable: no `CAP_NET_ADMIN` needed),
/// like `ipvsadm -Ln --stats` prints for the whole table.
pub fn read_ip_vs_stats() -> Result<GlobalStats, ProcError> {
    GlobalStats::read_path(IP_VS_STATS_PATH)
}

/// Checks a header line, comparing words so the padding does not matter.
fn header(line: Option<&[u8]>, expected: &'static str) -> Result<(), FieldError> {
    let line = line.ok_or(FieldError::new("header", FieldErrorKind::Missing))?;
    let mut fields = Fields::new(line);
    let matches = expected
        .split(' ')
        .all(|word| fields.next_field() == Some(word.as_bytes()))
        && fields.next_field().is_none();
    if matches {
        Ok(())
    } else {
        Err(FieldError::new(
            "header",
            FieldErrorKind::Unexpected {
                expected,
                found: excerpt(line),
            },
        ))
    }
}

/// Parses a line of five hex numbers named `names`.
fn values(line: Option<&[u8]>, names: [&'static str; 5]) -> Result<[u64; 5], FieldError> {
    let [first, ..] = names;
    let line = line.ok_or(FieldError::new(first, FieldErrorKind::Missing))?;
    let mut fields = Fields::new(line);
    let mut out = [0; 5];
    for (slot, name) in out.iter_mut().zip(names) {
        let field = fields.expect(name)?;
        *slot = parse_hex_u64(field)
            .ok_or_else(|| FieldError::new(name, FieldErrorKind::InvalidHex(excerpt(field))))?;
    }
    if let Some(extra) = fields.next_field() {
        let [.., last] = names;
        return Err(FieldError::new(last, FieldErrorKind::Extra(excerpt(extra))));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failing test should panic with the value.
mod tests {
    use super::*;

    const FIXTURE: &[u8] = include_bytes!("testdata/ip_vs_stats.txt");
    const WIDE: &[u8] = include_bytes!("testdata/ip_vs_stats-wide.txt");

    fn parse(text: &str) -> Result<GlobalStats, ProcError> {
        GlobalStats::read_from(text.as_bytes())
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(stats) => panic!("parsed {stats:?} from {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn fixture() {
        let stats = GlobalStats::read_from(FIXTURE).unwrap();
        assert_eq!(
            stats,
            GlobalStats {
                conns: 0x2A7,
                inpkts: 0x1B3F0,
                outpkts: 0x17D44,
                inbytes: 0x1C2E5A3,
                outbytes: 0x2F1B88C0,
                cps: 3,
                inpps: 0x5C,
                outpps: 0x51,
                inbps: 0x5E2B,
                outbps: 0xA1F04,
            }
        );
    }

    #[test]
    fn counters_wider_than_their_columns() {
        let stats = GlobalStats::read_from(WIDE).unwrap();
        assert_eq!(stats.conns, 0x1_0000_0000);
        assert_eq!(stats.inpkts, 0x2_3456_789A);
        assert_eq!(stats.outpkts, 0xFF_FFFF_FFFF);
        assert_eq!(stats.inbytes, u64::MAX);
        assert_eq!(stats.outbytes, 0);
        assert_eq!(stats.cps, 0);
    }

    #[test]
    fn read_path_reports_a_missing_file_as_ipvs_not_loaded() {
        let err = GlobalStats::read_path("/nonexistent/ip_vs_stats").unwrap_err();
        assert_eq!(
            err.to_string(),
            "IPVS is not available: /nonexistent/ip_vs_stats does not exist (run `modprobe ip_vs`)"
        );
    }

    #[test]
    fn read_path_reads_a_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/proc/testdata/ip_vs_stats.txt"
        );
        assert_eq!(
            GlobalStats::read_path(path).unwrap(),
            GlobalStats::read_from(FIXTURE).unwrap()
        );
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let text = std::str::from_utf8(FIXTURE).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let with = |n: usize, replacement: &str| {
            let mut l = lines.clone();
            l[n] = replacement;
            l.join("\n") + "\n"
        };
        assert_eq!(error(""), "line 1: header: missing");
        assert_eq!(
            error(&with(0, "CPU    Conns  Packets")),
            "line 1: header: expected `Total Incoming Outgoing Incoming Outgoing`, \
             found `CPU    Conns  Packets`"
        );
        assert_eq!(
            error(&with(
                1,
                "   Conns  Packets  Packets            Bytes            Bytes   Extra"
            )),
            "line 2: header: expected `Conns Packets Packets Bytes Bytes`, \
             found `   Conns  Packets  Packets            Bytes            Bytes   Extra`"
        );
        assert_eq!(error(&lines[..2].join("\n")), "line 3: Conns: missing");
        assert_eq!(
            error(&with(2, "     2A7    1B3F0")),
            "line 3: OutPkts: missing"
        );
        assert_eq!(
            error(&with(
                2,
                "     2A7    1B3F0    17D44          1C2E5A3         2F1B88CG"
            )),
            "line 3: OutBytes: invalid hex number `2F1B88CG`"
        );
        assert_eq!(
            error(&with(2, "     2A7    1B3F0    17D44          1C2E5A3  1 2")),
            "line 3: OutBytes: unexpected extra field `2`"
        );
        assert_eq!(
            error(&with(2, "     2A7    1B3F0    17D44  10000000000000000 0")),
            "line 3: InBytes: invalid hex number `10000000000000000`"
        );
        assert_eq!(error(&lines[..3].join("\n")), "line 4: separator: missing");
        assert_eq!(
            error(&with(3, "x")),
            "line 4: separator: expected an empty line, found `x`"
        );
        assert_eq!(
            error(&with(4, " Conns/s")),
            "line 5: header: expected `Conns/s Pkts/s Pkts/s Bytes/s Bytes/s`, found ` Conns/s`"
        );
        assert_eq!(error(&lines[..5].join("\n")), "line 6: CPS: missing");
        assert_eq!(
            error(&with(5, "       3       5C       51             5E2B   -1")),
            "line 6: OutBPS: invalid hex number `-1`"
        );
        assert_eq!(
            error(&(text.to_owned() + "more\n")),
            "line 7: end of file: unexpected extra field `more`"
        );
    }

    #[test]
    fn a_separator_line_of_spaces_is_empty() {
        let text = std::str::from_utf8(FIXTURE)
            .unwrap()
            .replacen("\n\n", "\n   \n", 1);
        assert_eq!(
            parse(&text).unwrap(),
            GlobalStats::read_from(FIXTURE).unwrap()
        );
    }

    #[test]
    fn a_long_line_is_an_error() {
        let text = format!("{}\n", "x".repeat(MAX_LINE_LEN));
        assert_eq!(error(&text), "line 1: longer than 4096 bytes");
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = GlobalStats::read_from(&bytes[..]);
        }

        #[test]
        fn any_values_round_trip(values in proptest::array::uniform10(proptest::num::u64::ANY)) {
            let [a, b, c, d, e, f, g, h, i, j] = values;
            let text = format!(
                "   Total Incoming Outgoing         Incoming         Outgoing\n\
                 \x20  Conns  Packets  Packets            Bytes            Bytes\n\
                 {a:8X} {b:8X} {c:8X} {d:16X} {e:16X}\n\n\
                 \x20Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n\
                 {f:8X} {g:8X} {h:8X} {i:16X} {j:16X}\n"
            );
            let stats = parse(&text).unwrap();
            proptest::prop_assert_eq!(
                [stats.conns, stats.inpkts, stats.outpkts, stats.inbytes, stats.outbytes,
                 stats.cps, stats.inpps, stats.outpps, stats.inbps, stats.outbps],
                values
            );
        }
    }
}
