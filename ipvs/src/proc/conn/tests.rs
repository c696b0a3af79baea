//! Tests of the connection-table counter. Inputs are in the exact format of
//! the kernel's `ip_vs_conn_seq_show`; `render` below re-implements its
//! `seq_printf` for generated entries.

// A test that unwraps fails with the value in its message, which is what a
// test should do.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::proc::alloc_count;

const MIXED: &[u8] = include_bytes!("../testdata/ip_vs_conn-mixed.txt");
const MIXED_COUNTS: &str = include_str!("../testdata/ip_vs_conn-mixed.counts");
const HEADER_ONLY: &[u8] = include_bytes!("../testdata/ip_vs_conn-header-only.txt");
const HEADER_LINE: &str =
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n";

/// Hands out its bytes a few at a time (sizes taken in turn from `sizes`),
/// so lines are split across the parser's buffer refills.
struct Trickle<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl<'a> Trickle<'a> {
    fn new(data: &'a [u8], sizes: Vec<usize>) -> Self {
        Self {
            data,
            sizes,
            next: 0,
        }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes.get(self.next).copied().unwrap_or(1).max(1);
        self.next = (self.next + 1) % self.sizes.len().max(1);
        let n = want.min(buf.len()).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = tail;
        Ok(n)
    }
}

/// The counts as sorted `connection|template <key> <n>` lines, the format
/// of the `.counts` golden files.
fn golden(counts: &ConnTableCounts) -> Vec<String> {
    let mut lines: Vec<String> = counts
        .connections()
        .map(|(key, n)| format!("connection {key} {n}"))
        .chain(
            counts
                .templates()
                .map(|(key, n)| format!("template {key} {n}")),
        )
        .collect();
    lines.sort();
    lines
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn counts_of(text: &str) -> Result<ConnTableCounts, ProcError> {
    ConnTableCounts::read_from(text.as_bytes())
}

/// The error message for a table made of the header and `lines`.
fn error_of(lines: &[&str]) -> String {
    let text = HEADER_LINE.to_owned() + &lines.join("\n") + "\n";
    match counts_of(&text) {
        Ok(counts) => panic!("parsed {counts:?} from {text:?}"),
        Err(e) => e.to_string(),
    }
}

fn v4(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn key(protocol: ConnProtocol, vip: &str, dest: &str, state: ConnState) -> ConnKey {
    ConnKey {
        protocol,
        virtual_address: VirtualAddress::Addr(v4(vip)),
        destination: v4(dest),
        state,
    }
}

// ---------------------------------------------------------------------
// Fixtures

#[test]
fn mixed_fixture_matches_its_golden_counts() {
    let counts = ConnTableCounts::read_from(MIXED).unwrap();
    assert_eq!(golden(&counts), sorted_lines(MIXED_COUNTS));
    assert_eq!(counts.entries(), 37);
    assert_eq!(counts.total_connections(), 30);
    assert_eq!(counts.total_templates(), 7);
}

#[test]
fn mixed_fixture_read_a_few_bytes_at_a_time() {
    let whole = ConnTableCounts::read_from(MIXED).unwrap();
    for sizes in [
        vec![1],
        vec![7],
        vec![1, 2, 3, 4, 5, 6, 7],
        vec![5, 1, 7, 2],
    ] {
        let trickled = ConnTableCounts::read_from(Trickle::new(MIXED, sizes.clone())).unwrap();
        assert_eq!(trickled, whole, "{sizes:?}");
    }
}

#[test]
fn lookups_by_key() {
    let counts = ConnTableCounts::read_from(MIXED).unwrap();
    let established = key(
        ConnProtocol::Tcp,
        "10.0.0.1:80",
        "10.0.1.1:80",
        ConnState::Established,
    );
    assert_eq!(counts.connection_count(&established), 2);
    assert_eq!(counts.template_count(&established), 0);
    let assured = key(
        ConnProtocol::Tcp,
        "10.0.0.2:443",
        "10.0.1.3:443",
        ConnState::Assured,
    );
    assert_eq!(counts.template_count(&assured), 2);
    assert_eq!(counts.connection_count(&assured), 0);
    let fwmark = ConnKey {
        protocol: ConnProtocol::Ip,
        virtual_address: VirtualAddress::Fwmark(2),
        destination: "[2001:db8:1::30]:0".parse().unwrap(),
        state: ConnState::None,
    };
    assert_eq!(counts.template_count(&fwmark), 1);
}

#[test]
fn header_only_and_empty_inputs_are_empty_tables() {
    for input in [HEADER_ONLY, b""] {
        let counts = ConnTableCounts::read_from(input).unwrap();
        assert_eq!(counts, ConnTableCounts::new());
        assert_eq!(counts.entries(), 0);
        assert_eq!(counts.connections().count(), 0);
        assert_eq!(counts.templates().count(), 0);
    }
}

#[test]
fn header_without_pe_columns_is_accepted() {
    // Kernels before persistence engines (2.6.37) had no PEName PEData.
    let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires\n\
                TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED     898\n";
    assert_eq!(counts_of(text).unwrap().total_connections(), 1);
}

#[test]
fn last_line_without_newline_and_crlf_endings_are_read() {
    let text = HEADER_LINE.replace('\n', "\r\n")
        + "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED     898\r\n"
        + "TCP 0A640002 D432 0A000001 0050 0A000101 0050 ESTABLISHED     897";
    assert_eq!(counts_of(&text).unwrap().total_connections(), 2);
}

#[test]
fn read_path_and_a_missing_file() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/proc/testdata/ip_vs_conn-mixed.txt"
    );
    assert_eq!(
        ConnTableCounts::read_path(path).unwrap(),
        ConnTableCounts::read_from(MIXED).unwrap()
    );
    let err = ConnTableCounts::read_path("/nonexistent/ip_vs_conn").unwrap_err();
    assert_eq!(
        err.to_string(),
        "IPVS is not available: /nonexistent/ip_vs_conn does not exist (run `modprobe ip_vs`)"
    );
}

#[test]
fn read_ip_vs_conn_reads_this_namespace_or_says_ipvs_is_missing() {
    // Whatever this machine has: a table, or IPVS not loaded.
    match read_ip_vs_conn() {
        Ok(_) | Err(ProcError::NotAvailable { .. }) => {}
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------
// Entries

#[test]
fn ipv4_entry() {
    let line = b"TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED     898";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!(
        entry,
        ConnEntry {
            protocol: ConnProtocol::Tcp,
            client: v4("10.100.0.1:54321"),
            virtual_address: VirtualAddress::Addr(v4("10.0.0.1:80")),
            destination: v4("10.0.1.1:80"),
            state: ConnState::Established,
            expires_secs: 898,
            pe_name: None,
            pe_data: None,
        }
    );
    assert!(!entry.is_template());
}

#[test]
fn ipv6_service_with_an_ipv4_destination() {
    let line = b"TCP 2001:0db8:ffff:0000:0000:0000:0000:0003 C002 \
                 2001:0db8:0000:0000:0000:0000:0000:0001 0050 0A000109 1F90 ESTABLISHED     870";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!(entry.client, "[2001:db8:ffff::3]:49154".parse().unwrap());
    assert_eq!(
        entry.virtual_address,
        VirtualAddress::Addr("[2001:db8::1]:80".parse().unwrap())
    );
    assert_eq!(entry.destination, v4("10.0.1.9:8080"));
}

#[test]
fn ipv4_service_with_an_ipv6_destination() {
    let line = b"TCP 0A640501 CB20 0A000006 0050 2001:0db8:0001:0000:0000:0000:0000:0020 0050 \
                 ESTABLISHED     860";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!(entry.destination, "[2001:db8:1::20]:80".parse().unwrap());
}

#[test]
fn fwmark_templates_carry_the_mark_in_either_family() {
    let line = b"IP  0A640401 0000 00000001 0000 0A000104 0000 ASSURED         360";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!(entry.protocol, ConnProtocol::Ip);
    assert_eq!(entry.virtual_address, VirtualAddress::Fwmark(1));
    assert!(entry.is_template());

    let line = b"IP  2001:0db8:ffff:0000:0000:0000:0000:0000 0000 \
                 fffe:0002:0000:0000:0000:0000:0000:0000 0000 \
                 2001:0db8:0001:0000:0000:0000:0000:0030 0000 NONE            120";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!(entry.virtual_address, VirtualAddress::Fwmark(0xfffe_0002));
    assert!(entry.is_template());
}

#[test]
fn sip_persistence_engine_data() {
    let line = b"UDP 0A640800 0000 0A000009 13C4 0A000107 13C4 ASSURED         179 \
                 sip a84b4c76e66710@pc33.example.com";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!(entry.pe_name, Some(&b"sip"[..]));
    assert_eq!(entry.pe_data, Some(&b"a84b4c76e66710@pc33.example.com"[..]));
    assert!(entry.is_template());
    // The data is raw: spaces and any byte are kept, not parsed.
    let line = b"UDP 0A640800 0000 0A000009 13C4 0A000107 13C4 NONE 1 sip a b\xff";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!(entry.pe_data, Some(&b"a b\xff"[..]));
    // A PE name without data.
    let line = b"UDP 0A640800 0000 0A000009 13C4 0A000107 13C4 NONE 1 sip";
    let entry = ConnEntry::parse(line).unwrap();
    assert_eq!((entry.pe_name, entry.pe_data), (Some(&b"sip"[..]), None));
}

#[test]
fn udp_and_sctp_states() {
    let udp = b"UDP 0A640601 80E8 0A000007 0035 0A000105 0035 UDP             299";
    assert_eq!(ConnEntry::parse(udp).unwrap().state, ConnState::Udp);
    for (name, state) in [
        ("INIT1", ConnState::SctpInit1),
        ("INIT", ConnState::SctpInit),
        ("C-SENT", ConnState::SctpCookieSent),
        ("C-REPLIED", ConnState::SctpCookieReplied),
        ("C-WAIT", ConnState::SctpCookieWait),
        ("COOKIE", ConnState::SctpCookie),
        ("C-ECHOED", ConnState::SctpCookieEchoed),
        ("ESTABLISHED", ConnState::Established),
        ("S-SENT", ConnState::SctpShutdownSent),
        ("S-RECEIVED", ConnState::SctpShutdownReceived),
        ("S-ACK-SENT", ConnState::SctpShutdownAckSent),
        ("REJECTED", ConnState::SctpRejected),
        ("CLOSED", ConnState::SctpClosed),
    ] {
        let line = format!(
            "SCTP 0A640701 0F1C 0A000008 0F1C 0A000106 0F1C {name:<11} {:>7}",
            30
        );
        let entry = ConnEntry::parse(line.as_bytes()).unwrap();
        assert_eq!(entry.state, state, "{name}");
        assert_eq!(entry.state.to_string(), name);
        assert!(!entry.is_template(), "{name}");
    }
}

#[test]
fn every_known_state_name_round_trips() {
    for (name, state) in KNOWN_STATES {
        assert_eq!(ConnState::parse(name.as_bytes()), Some(state));
        assert_eq!(state.as_str(), name);
    }
}

#[test]
fn unknown_state_names_are_kept_without_error() {
    // `ERR!` is what the kernel prints for AH/ESP (no state table); old
    // kernels had other SCTP names.
    for name in ["ERR!", "?", "BUG!", "COOKIE_ECHO_CLI", "SHUTDOWN_ACK_SENT"] {
        let state = ConnState::parse(name.as_bytes()).unwrap();
        assert!(matches!(state, ConnState::Unknown(_)), "{name}");
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
    }
    let longest = "X".repeat(STATE_NAME_MAX);
    assert_eq!(
        ConnState::parse(longest.as_bytes()).map(|s| s.to_string()),
        Some(longest.clone())
    );
    let too_long = longest + "X";
    assert_eq!(ConnState::parse(too_long.as_bytes()), None);
    assert_eq!(ConnState::parse(b""), None);
    assert_eq!(ConnState::parse(b"\xc3\xa9t\xc3\xa9"), None);
    assert_eq!(ConnState::parse(b"A\tB"), None);
    assert_eq!(
        format!("{:?}", StateName::new(b"ERR!").unwrap()),
        "StateName(\"ERR!\")"
    );
}

#[test]
fn state_names_order_by_name() {
    let a = StateName::new(b"ZZ").unwrap();
    let b = StateName::new(b"ZZA").unwrap();
    let c = StateName::new(b"A").unwrap();
    let mut names = [b, a, c];
    names.sort();
    assert_eq!(names.map(|n| n.to_string()), ["A", "ZZ", "ZZA"]);
}

#[test]
fn protocol_names_and_numbers() {
    for (name, protocol, number) in [
        ("IP", ConnProtocol::Ip, 0),
        ("ICMP", ConnProtocol::Icmp, 1),
        ("TCP", ConnProtocol::Tcp, 6),
        ("UDP", ConnProtocol::Udp, 17),
        ("ICMPv6", ConnProtocol::IcmpV6, 58),
        ("SCTP", ConnProtocol::Sctp, 132),
        ("IP_50", ConnProtocol::Other(50), 50),
        ("IP_255", ConnProtocol::Other(255), 255),
    ] {
        assert_eq!(ConnProtocol::parse(name.as_bytes()), Some(protocol));
        assert_eq!(protocol.to_string(), name);
        assert_eq!(protocol.number(), number);
        assert_eq!(ConnProtocol::from_number(number), protocol);
    }
    // The kernel never prints `IP_6`, but if it did it would be TCP.
    assert_eq!(ConnProtocol::parse(b"IP_6"), Some(ConnProtocol::Tcp));
    for bad in [&b"IP_256"[..], b"IP_", b"IP_-1", b"ip", b"tcp", b"IPX", b""] {
        assert_eq!(ConnProtocol::parse(bad), None, "{}", excerpt(bad));
    }
}

#[test]
fn displays() {
    let k = key(
        ConnProtocol::Tcp,
        "10.0.0.1:80",
        "10.0.1.1:80",
        ConnState::Established,
    );
    assert_eq!(k.to_string(), "TCP 10.0.0.1:80 -> 10.0.1.1:80 ESTABLISHED");
    assert_eq!(VirtualAddress::Fwmark(7).to_string(), "fwmark 7");
}

// ---------------------------------------------------------------------
// Template identification: one test per branch of `is_template`.

fn entry_kind(line: &str) -> bool {
    ConnEntry::parse(line.as_bytes()).unwrap().is_template()
}

#[test]
fn template_rule_1_protocol_ip_is_a_template_whatever_its_state() {
    assert!(entry_kind(
        "IP  0A640401 0000 00000001 0000 0A000104 0000 ASSURED         360"
    ));
    assert!(entry_kind(
        "IP  0A640401 0000 00000001 0000 0A000104 0000 NONE            360"
    ));
    // Even a state no kernel gives a template, or a non-zero client port.
    assert!(is_template(ConnProtocol::Ip, 1234, ConnState::Established));
}

#[test]
fn template_rule_2_assured_is_a_template() {
    assert!(entry_kind(
        "TCP 0A640100 0000 0A000002 01BB 0A000103 01BB ASSURED         300"
    ));
    assert!(entry_kind(
        "UDP 0A640800 0000 0A000009 13C4 0A000107 13C4 ASSURED         179 sip x"
    ));
    // No protocol has an ASSURED state, so the name alone decides.
    assert!(is_template(ConnProtocol::Tcp, 40000, ConnState::Assured));
}

#[test]
fn template_rule_3_none_with_client_port_0_is_a_template() {
    assert!(entry_kind(
        "TCP 0A640200 0000 0A000002 01BB 0A000103 01BB NONE            299"
    ));
    assert!(entry_kind(
        "SCTP 0A640700 0000 0A000008 0F1C 0A000106 0F1C NONE             34"
    ));
}

#[test]
fn template_rule_3_none_with_a_client_port_is_a_connection() {
    assert!(!entry_kind(
        "TCP 0A64000D D43D 0A000001 0050 0A000101 0050 NONE              1"
    ));
    assert!(!entry_kind(
        "SCTP 0A640705 0F1C 0A000008 0F1C 0A000106 0F1C NONE             34"
    ));
}

#[test]
fn template_rule_4_everything_else_is_a_connection() {
    // Connection states, even from client port 0.
    assert!(!entry_kind(
        "TCP 0A640001 0000 0A000001 0050 0A000101 0050 ESTABLISHED     898"
    ));
    assert!(!entry_kind(
        "UDP 0A640601 0000 0A000007 0035 0A000105 0035 UDP             299"
    ));
    // Unknown states.
    assert!(!entry_kind(
        "IP_50 0A640901 0000 0A00000A 0000 0A000108 0000 ERR!             60"
    ));
}

// ---------------------------------------------------------------------
// Errors: every branch, with its exact message.

const GOOD: &str = "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED     898";

#[test]
fn header_errors() {
    let err =
        counts_of("TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED 898\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: header: expected `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       \
         Expires PEName PEData`, found `TCP 0A640001 D431 0A000001 0050 0A000101 0050 \
         ESTABLISHED 898`"
    );
    // /proc/net/ip_vs_conn_sync has an Origin column: not this format.
    let sync = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires\n";
    assert_eq!(
        counts_of(sync).unwrap_err().to_string(),
        "line 1: header: expected `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       \
         Expires PEName PEData`, found `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       \
         Origin Expires`"
    );
    for header in [
        "\n",
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName\n",
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData X\n",
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires X\n",
    ] {
        let err = counts_of(header).unwrap_err().to_string();
        assert!(err.starts_with("line 1: header: expected"), "{err}");
    }
}

#[test]
fn entry_errors() {
    let cases: &[(&str, &str)] = &[
        ("", "line 2: Pro: missing"),
        ("   ", "line 2: Pro: missing"),
        (
            "XTP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED 898",
            "line 2: Pro: unknown protocol `XTP`",
        ),
        ("TCP", "line 2: FromIP: missing"),
        (
            "TCP 0A64001 D431 0A000001 0050 0A000101 0050 ESTABLISHED 898",
            "line 2: FromIP: invalid hex address `0A64001`",
        ),
        (
            "TCP 0A64000G D431 0A000001 0050 0A000101 0050 ESTABLISHED 898",
            "line 2: FromIP: invalid hex address `0A64000G`",
        ),
        (
            "TCP 2001:0db8:ffff:0000:0000:0000:0000:000 D431 0A000001 0050 0A000101 0050 NONE 1",
            "line 2: FromIP: invalid hex address `2001:0db8:ffff:0000:0000:0000:0000:000`",
        ),
        (
            "TCP 2001:0db8:ffff:0000:0000:0000:00000:003 D431 \
             2001:0db8:0000:0000:0000:0000:0000:0001 0050 0A000101 0050 NONE 1",
            "line 2: FromIP: invalid hex address `2001:0db8:ffff:0000:0000:0000:00000:003`",
        ),
        (
            "TCP 2001-0db8-ffff-0000-0000-0000-0000-0003 D431 \
             2001:0db8:0000:0000:0000:0000:0000:0001 0050 0A000101 0050 NONE 1",
            "line 2: FromIP: invalid hex address `2001-0db8-ffff-0000-0000-0000-0000-0003`",
        ),
        ("TCP 0A640001", "line 2: FPrt: missing"),
        (
            "TCP 0A640001 D43 0A000001 0050 0A000101 0050 ESTABLISHED 898",
            "line 2: FPrt: invalid hex port `D43`",
        ),
        (
            "TCP 0A640001 D43X 0A000001 0050 0A000101 0050 ESTABLISHED 898",
            "line 2: FPrt: invalid hex port `D43X`",
        ),
        ("TCP 0A640001 D431", "line 2: ToIP: missing"),
        (
            "TCP 0A640001 D431 0A00000! 0050 0A000101 0050 ESTABLISHED 898",
            "line 2: ToIP: invalid hex address `0A00000!`",
        ),
        (
            "TCP 0A640001 D431 2001:0db8:0000:0000:0000:0000:0000:0001 0050 0A000101 0050 NONE 1",
            "line 2: ToIP: address family differs from FromIP",
        ),
        ("TCP 0A640001 D431 0A000001", "line 2: TPrt: missing"),
        (
            "TCP 0A640001 D431 0A000001 00500 0A000101 0050 ESTABLISHED 898",
            "line 2: TPrt: invalid hex port `00500`",
        ),
        ("TCP 0A640001 D431 0A000001 0050", "line 2: DestIP: missing"),
        (
            "TCP 0A640001 D431 0A000001 0050 ZZZZ 0050 ESTABLISHED 898",
            "line 2: DestIP: invalid hex address `ZZZZ`",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101",
            "line 2: DPrt: missing",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 +050 ESTABLISHED 898",
            "line 2: DPrt: invalid hex port `+050`",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050",
            "line 2: State: missing",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED_FOR_A_VERY_LONG_TIME 898",
            "line 2: State: invalid state name `ESTABLISHED_FOR_A_VERY_LONG_TIME`",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ÉTABLI 898",
            "line 2: State: invalid state name `ÉTABLI`",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED",
            "line 2: Expires: missing",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED 8a",
            "line 2: Expires: invalid decimal number `8a`",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED -1",
            "line 2: Expires: invalid decimal number `-1`",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED 18446744073709551616",
            "line 2: Expires: invalid decimal number `18446744073709551616`",
        ),
        (
            "TCP 0A640001 D431 0A000001 0050 0A000101 0050\tESTABLISHED 898",
            "line 2: DPrt: invalid hex port `0050\\tESTABLISHED`",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(error_of(&[line]), *message, "{line:?}");
    }
}

#[test]
fn the_error_names_the_failing_line() {
    let lines = [GOOD; 16];
    let mut with_bad = lines.to_vec();
    with_bad.push("TCP 0A640001 D431 0A000001 0050 ZZZZ 0050 ESTABLISHED 898");
    assert_eq!(
        error_of(&with_bad),
        "line 18: DestIP: invalid hex address `ZZZZ`"
    );
}

#[test]
fn a_line_longer_than_the_buffer_is_an_error() {
    // The longest line that fits: MAX_LINE_LEN bytes with its newline.
    let pe_data = "x".repeat(MAX_LINE_LEN - GOOD.len() - " sip ".len() - 1);
    let longest = format!("{GOOD} sip {pe_data}");
    assert_eq!(longest.len() + 1, MAX_LINE_LEN);
    let text = format!("{HEADER_LINE}{longest}\n{GOOD}\n");
    assert_eq!(counts_of(&text).unwrap().total_connections(), 2);

    let text = format!("{HEADER_LINE}{GOOD}\n{longest}x\n{GOOD}\n");
    assert_eq!(
        counts_of(&text).unwrap_err().to_string(),
        "line 3: longer than 65536 bytes"
    );
    // Also when the reader hands it out a few bytes at a time.
    let err = ConnTableCounts::read_from(Trickle::new(text.as_bytes(), vec![4000, 7])).unwrap_err();
    assert_eq!(err.to_string(), "line 3: longer than 65536 bytes");
}

#[test]
fn a_read_error_names_the_line_being_read_and_keeps_its_source() {
    struct Fails<'a>(&'a [u8]);
    impl Read for Fails<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            self.0.read(buf)
        }
    }
    let text = format!("{HEADER_LINE}{GOOD}\n{GOOD}\nTCP 0A64");
    let err = ConnTableCounts::read_from(Fails(text.as_bytes())).unwrap_err();
    assert_eq!(err.to_string(), "line 4: read failed");
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("disk on fire"));
}

#[test]
fn for_each_entry_visits_every_entry_in_order() {
    let text = format!(
        "{HEADER_LINE}{GOOD}\n\
         UDP 0A640601 80E8 0A000007 0035 0A000105 0035 UDP             299\n"
    );
    let mut seen = Vec::new();
    let n = for_each_entry(text.as_bytes(), |entry| seen.push(entry.protocol)).unwrap();
    assert_eq!(n, 2);
    assert_eq!(seen, [ConnProtocol::Tcp, ConnProtocol::Udp]);
}

// ---------------------------------------------------------------------
// Memory: allocation depends on distinct keys, not on entries.

/// Ten lines with ten distinct keys.
fn ten_lines() -> String {
    (0..10)
        .map(|i| {
            format!("TCP 0A6400{i:02X} D431 0A000001 0050 0A0001{i:02X} 0050 ESTABLISHED     898\n")
        })
        .collect()
}

#[test]
fn two_hundred_thousand_lines_allocate_as_much_as_ten() {
    let ten = ten_lines();
    let small = format!("{HEADER_LINE}{ten}");
    let big = format!("{HEADER_LINE}{}", ten.repeat(20_000));

    let before = alloc_count::allocations();
    let small_counts = ConnTableCounts::read_from(small.as_bytes()).unwrap();
    let small_allocations = alloc_count::allocations() - before;

    let before = alloc_count::allocations();
    let big_counts = ConnTableCounts::read_from(big.as_bytes()).unwrap();
    let big_allocations = alloc_count::allocations() - before;

    assert_eq!(big_counts.entries(), 200_000);
    assert_eq!(big_counts.total_connections(), 200_000);
    assert_eq!(small_counts.connections.len(), 10);
    assert_eq!(big_counts.connections.len(), 10);
    assert_eq!(
        small_counts.connections.capacity(),
        big_counts.connections.capacity()
    );
    assert_eq!(
        small_counts.templates.capacity(),
        big_counts.templates.capacity()
    );
    // The buffer and the map's growth: the same few allocations for both.
    // (At least the buffer's: proof that the counter counts.)
    assert!(small_allocations >= 1);
    assert_eq!(small_allocations, big_allocations);
    assert!(big_allocations < 16, "{big_allocations}");
}

// ---------------------------------------------------------------------
// Properties

/// An entry to render in the kernel's format, with what it must count as.
#[derive(Debug, Clone)]
struct Generated {
    protocol: ConnProtocol,
    client: SocketAddr,
    virtual_address: VirtualAddress,
    /// The service's family, for printing a fwmark.
    service_v6: bool,
    destination: SocketAddr,
    state: ConnState,
    expires: u32,
    pe: Option<String>,
    template: bool,
}

/// `%08X` of a host-order IPv4 address, or `%pI6` (full, lower case).
fn kernel_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08X}", u32::from(v4)),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:04x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// One line as `ip_vs_conn_seq_show` prints it:
/// `"%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s\n"` (`%pI6` for IPv6).
fn render(g: &Generated) -> String {
    let (to_ip, to_port) = match g.virtual_address {
        VirtualAddress::Addr(addr) => (kernel_addr(addr.ip()), addr.port()),
        VirtualAddress::Fwmark(mark) => {
            let ip = if g.service_v6 {
                let octets = mark.to_be_bytes();
                let mut v6 = [0u8; 16];
                v6[..4].copy_from_slice(&octets);
                IpAddr::V6(Ipv6Addr::from(v6))
            } else {
                IpAddr::V4(Ipv4Addr::from(mark))
            };
            (kernel_addr(ip), 0)
        }
    };
    let pe =
        g.pe.as_deref()
            .map(|d| format!(" sip {d}"))
            .unwrap_or_default();
    format!(
        "{:<3} {} {:04X} {} {:04X} {} {:04X} {:<11} {:>7}{}\n",
        g.protocol.to_string(),
        kernel_addr(g.client.ip()),
        g.client.port(),
        to_ip,
        to_port,
        kernel_addr(g.destination.ip()),
        g.destination.port(),
        g.state.as_str(),
        g.expires,
        pe
    )
}

fn ip_in(v6: bool, n: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n)))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }
}

const TCP_STATES: [ConnState; 11] = [
    ConnState::None,
    ConnState::Established,
    ConnState::SynSent,
    ConnState::SynRecv,
    ConnState::FinWait,
    ConnState::TimeWait,
    ConnState::Close,
    ConnState::CloseWait,
    ConnState::LastAck,
    ConnState::Listen,
    ConnState::SynAck,
];
const SCTP_STATES: [ConnState; 14] = [
    ConnState::None,
    ConnState::SctpInit1,
    ConnState::SctpInit,
    ConnState::SctpCookieSent,
    ConnState::SctpCookieReplied,
    ConnState::SctpCookieWait,
    ConnState::SctpCookie,
    ConnState::SctpCookieEchoed,
    ConnState::Established,
    ConnState::SctpShutdownSent,
    ConnState::SctpShutdownReceived,
    ConnState::SctpShutdownAckSent,
    ConnState::SctpRejected,
    ConnState::SctpClosed,
];

/// Entries from small pools of services, destinations and states, so keys
/// repeat, as the kernel would print them.
fn generated() -> impl Strategy<Value = Generated> {
    (
        (0u8..3, any::<bool>(), 0u8..3, 1u8..4),
        (any::<bool>(), 0u8..4, 0u16..3),
        (any::<u16>(), 0usize..14, any::<bool>(), any::<u32>()),
        proptest::option::of("[a-zA-Z0-9@.]{1,40}"),
    )
        .prop_map(
            |(
                (kind, service_v6, vip, client_host),
                (dest_v6, dest_host, dest_port),
                (client_port, state_index, assured, expires),
                pe,
            )| {
                let client_ip = ip_in(service_v6, 100 + client_host);
                let vport = [80, 443, 0][usize::from(vip)];
                let destination = SocketAddr::new(
                    ip_in(dest_v6, 200 + dest_host),
                    [80, 8080, 0][usize::from(dest_port)],
                );
                let template_state = if assured {
                    ConnState::Assured
                } else {
                    ConnState::None
                };
                let pick = |states: &[ConnState]| states[state_index % states.len()];
                let protocol = [ConnProtocol::Tcp, ConnProtocol::Udp, ConnProtocol::Sctp]
                    [usize::from(vip) % 3];
                match kind {
                    // A connection: a real client port.
                    0 => {
                        let (protocol, state) = match client_port % 4 {
                            0 => (ConnProtocol::Tcp, pick(&TCP_STATES)),
                            1 => (ConnProtocol::Udp, ConnState::Udp),
                            2 => (ConnProtocol::Sctp, pick(&SCTP_STATES)),
                            _ => (
                                ConnProtocol::Other(50),
                                ConnState::Unknown(StateName::new(b"ERR!").unwrap()),
                            ),
                        };
                        Generated {
                            protocol,
                            client: SocketAddr::new(client_ip, client_port.max(1)),
                            virtual_address: VirtualAddress::Addr(SocketAddr::new(
                                ip_in(service_v6, vip),
                                vport,
                            )),
                            service_v6,
                            destination,
                            state,
                            expires,
                            pe: None,
                            template: false,
                        }
                    }
                    // A template of a persistent service: client port 0.
                    1 => Generated {
                        protocol,
                        client: SocketAddr::new(client_ip, 0),
                        virtual_address: VirtualAddress::Addr(SocketAddr::new(
                            ip_in(service_v6, vip),
                            vport,
                        )),
                        service_v6,
                        destination,
                        state: template_state,
                        expires,
                        pe: pe.filter(|_| protocol == ConnProtocol::Udp),
                        template: true,
                    },
                    // A template of a persistent fwmark service.
                    _ => Generated {
                        protocol: ConnProtocol::Ip,
                        client: SocketAddr::new(client_ip, 0),
                        virtual_address: VirtualAddress::Fwmark([1, 2, u32::MAX][usize::from(vip)]),
                        service_v6,
                        destination,
                        state: template_state,
                        expires,
                        pe: None,
                        template: true,
                    },
                }
            },
        )
}

proptest! {
    #[test]
    fn generated_tables_count_right(
        entries in proptest::collection::vec(generated(), 0..120),
        chunks in proptest::collection::vec(1usize..8, 1..6),
    ) {
        let mut text = HEADER_LINE.to_owned();
        let mut connections: HashMap<ConnKey, u64> = HashMap::new();
        let mut templates: HashMap<ConnKey, u64> = HashMap::new();
        for g in &entries {
            text.push_str(&render(g));
            let key = ConnKey {
                protocol: g.protocol,
                virtual_address: g.virtual_address,
                destination: g.destination,
                state: g.state,
            };
            let map = if g.template { &mut templates } else { &mut connections };
            *map.entry(key).or_default() += 1;
        }
        let counts = ConnTableCounts::read_from(Trickle::new(text.as_bytes(), chunks)).unwrap();
        let as_std = |counts: &Counts| counts.iter().map(|(k, n)| (*k, *n)).collect::<HashMap<_, _>>();
        prop_assert_eq!(as_std(&counts.connections), connections);
        prop_assert_eq!(as_std(&counts.templates), templates);
        prop_assert_eq!(counts.entries(), entries.len() as u64);
    }

    #[test]
    fn every_generated_line_parses_back(g in generated()) {
        let line = render(&g);
        let entry = ConnEntry::parse(line.trim_end_matches('\n').as_bytes()).unwrap();
        prop_assert_eq!(entry.protocol, g.protocol);
        prop_assert_eq!(entry.client, g.client);
        prop_assert_eq!(entry.virtual_address, g.virtual_address);
        prop_assert_eq!(entry.destination, g.destination);
        prop_assert_eq!(entry.state, g.state);
        prop_assert_eq!(entry.expires_secs, u64::from(g.expires));
        prop_assert_eq!(entry.pe_data, g.pe.as_deref().map(str::as_bytes));
        prop_assert_eq!(entry.is_template(), g.template);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = ConnTableCounts::read_from(&bytes[..]);
        let mut with_header = HEADER_LINE.as_bytes().to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = ConnTableCounts::read_from(&with_header[..]);
    }

    #[test]
    fn random_lines_of_plausible_fields_never_panic(
        lines in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    Just("TCP".to_owned()),
                    Just("IP".to_owned()),
                    Just("IP_300".to_owned()),
                    Just("0A000001".to_owned()),
                    Just("2001:0db8:0000:0000:0000:0000:0000:0001".to_owned()),
                    Just("0050".to_owned()),
                    Just("ESTABLISHED".to_owned()),
                    Just("NONE".to_owned()),
                    Just("  ".to_owned()),
                    "[0-9A-Fa-f:]{0,40}",
                    "\\PC{0,12}",
                ],
                0..14,
            ),
            0..20,
        ),
    ) {
        let mut text = HEADER_LINE.to_owned();
        for fields in &lines {
            text.push_str(&fields.join(" "));
            text.push('\n');
        }
        let _ = ConnTableCounts::read_from(text.as_bytes());
        for fields in &lines {
            let _ = ConnEntry::parse(fields.join(" ").as_bytes());
        }
    }
}

/// A manual benchmark: `cargo test -p ipvs --release --lib -- --ignored
/// conn_table_throughput --nocapture`.
#[test]
#[ignore = "benchmark; run by hand in release mode"]
fn conn_table_throughput() {
    let ten = ten_lines();
    let text = format!("{HEADER_LINE}{}", ten.repeat(100_000));
    let start = std::time::Instant::now();
    let counts = ConnTableCounts::read_from(text.as_bytes()).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(counts.entries(), 1_000_000);
    println!(
        "1,000,000 lines ({} MB) in {elapsed:?}: {:.0} lines/s",
        text.len() / 1_000_000,
        1e6 / elapsed.as_secs_f64()
    );
}
