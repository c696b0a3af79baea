//! Streaming counter for `/proc/net/ip_vs_conn`, the kernel's connection
//! table, which netlink does not expose.
//!
//! The kernel prints it in `ip_vs_conn_seq_show`
//! (`net/netfilter/ipvs/ip_vs_conn.c`): a header, then one line per entry.
//!
//! ```text
//! Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//! TCP 0A640001 D431 0A000001 0050 0A000101 0050 ESTABLISHED     898
//! UDP 0A640007 0000 0A000005 13C4 0A000106 13C4 ASSURED         179 sip a84b4c76e66710@pc33
//! ```
//!
//! with the format strings
//!
//! ```text
//! IPv4 service: "%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s\n"
//! IPv6 service: "%-3s %pI6 %04X %pI6 %04X %s %04X %-11s %7u%s\n"
//! ```
//!
//! - `Pro` is `ip_vs_proto_name()`: `IP`, `TCP`, `UDP`, `SCTP`, `ICMP`,
//!   `ICMPv6`, or `IP_<n>` for any other protocol number.
//! - `FromIP`/`ToIP` (client and virtual address) are in the service's
//!   family: 8 hex digits of the host-order IPv4 address, or the IPv6
//!   address in full (`%pI6`: 8 groups of 4 lower-case hex digits). Ports
//!   are 4 hex digits.
//! - `DestIP` is printed in the destination's own family (the `%s` of a
//!   buffer filled with `%08X` or `%pI6`), which can differ from the
//!   service's since Linux 3.18 (tunnelling an IPv6 service to IPv4 real
//!   servers and back).
//! - `State` is `ip_vs_state_name()`: the protocol's state table for
//!   connections (TCP `ESTABLISHED`…, UDP `UDP`, SCTP `ESTABLISHED`,
//!   `C-ECHOED`…), `NONE`/`ASSURED` for persistence templates, and `ERR!`
//!   or `?` when the kernel has no name.
//! - `Expires` is the remaining lifetime in seconds (`%7u`, so padded).
//! - `PEName PEData` follow only for entries with persistence-engine data
//!   (the `sip` engine's Call-ID), and are ignored for counting.
//!
//! The parser reads through one fixed buffer ([`MAX_LINE_LEN`] bytes, also
//! the longest line it accepts), parses fields by hand without allocating,
//! and only allocates when a new distinct key enters the counts, so memory
//! depends on the number of distinct (service, destination, state) keys,
//! never on the number of entries.
//!
//! The pieces: `key` holds what entries are counted by (protocol, state,
//! virtual address), `entry` parses a line and tells templates from
//! connections, `counts` counts a whole table.

mod counts;
mod entry;
mod key;

pub use counts::{read_ip_vs_conn, ConnTableCounts};
pub use entry::{for_each_entry, is_template, ConnEntry};
pub use key::{ConnKey, ConnProtocol, ConnState, StateName, VirtualAddress, STATE_NAME_MAX};

#[cfg(test)]
use {
    super::{excerpt, ProcError},
    counts::Counts,
    key::KNOWN_STATES,
};

/// The connection table of the caller's network namespace.
pub const IP_VS_CONN_PATH: &str = "/proc/net/ip_vs_conn";

/// The longest line accepted, newline included; also the size of the
/// parser's one buffer. The kernel's longest line (IPv6 addresses with the
/// largest persistence-engine data) is under 500 bytes.
pub const MAX_LINE_LEN: usize = 64 * 1024;

#[cfg(test)]
mod tests;
