//! How the transport reads an answer out of datagrams: acknowledgements,
//! errors, the end of a dump, stale messages, and damaged datagrams, which
//! must give an error and never a panic.

use std::ops::ControlFlow;

use proptest::prelude::*;

use crate::socket::{Answer, Failure};

const SEQUENCE: u32 = 7;
const IPVS_FAMILY: u16 = 0x22;

/// A netlink message: header, then `payload`, padded to 4 bytes.
pub(super) fn message(kind: u16, flags: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(16 + payload.len() as u32).to_ne_bytes());
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(&flags.to_ne_bytes());
    bytes.extend_from_slice(&sequence.to_ne_bytes());
    bytes.extend_from_slice(&0u32.to_ne_bytes());
    bytes.extend_from_slice(payload);
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    bytes
}

/// NLMSG_ERROR with `errno` (0 is an ACK) and the request's header after it.
pub(super) fn error(errno: i32, sequence: u32) -> Vec<u8> {
    let mut payload = (-errno).to_ne_bytes().to_vec();
    payload.extend(message(IPVS_FAMILY, 1, sequence, &[])[..16].iter());
    message(2, 0, sequence, &payload)
}

fn done(code: i32) -> Vec<u8> {
    message(3, 2, SEQUENCE, &code.to_ne_bytes())
}

/// Feeds `datagrams` in order; returns the payload lengths handed on and
/// how the answer ended.
fn read(datagrams: &[Vec<u8>]) -> (Vec<usize>, Result<bool, Failure>) {
    let mut answer = Answer {
        sequence: SEQUENCE,
        interrupted: false,
    };
    let mut seen = Vec::new();
    let mut each = |payload: &[u8], _kind: u16| {
        seen.push(payload.len());
        Ok(())
    };
    for datagram in datagrams {
        match answer.datagram(datagram, &mut each) {
            Ok(ControlFlow::Break(())) => return (seen, Ok(true)),
            Ok(ControlFlow::Continue(())) => {}
            Err(failure) => return (seen, Err(failure)),
        }
    }
    (seen, Ok(false))
}

#[test]
fn an_ack_ends_a_request() {
    let (seen, end) = read(&[error(0, SEQUENCE)]);
    assert!(seen.is_empty());
    assert!(matches!(end, Ok(true)));
}

#[test]
fn an_error_keeps_its_errno() {
    let (_, end) = read(&[error(libc::ESRCH, SEQUENCE)]);
    assert!(matches!(end, Err(Failure::Errno(libc::ESRCH))), "{end:?}");
}

#[test]
fn a_dump_spans_datagrams_until_done() {
    let mut first = message(IPVS_FAMILY, 2, SEQUENCE, &[1, 2, 3, 4]);
    first.extend(message(IPVS_FAMILY, 2, SEQUENCE, &[5; 8]));
    let second = [message(IPVS_FAMILY, 2, SEQUENCE, &[6; 12]), done(0)].concat();
    let (seen, end) = read(&[first, second]);
    assert_eq!(seen, vec![4, 8, 12]);
    assert!(matches!(end, Ok(true)));
}

#[test]
fn stale_messages_are_skipped() {
    let datagram = [
        message(IPVS_FAMILY, 2, SEQUENCE - 1, &[9; 4]),
        error(0, SEQUENCE - 1),
        done(0),
    ]
    .concat();
    let (seen, end) = read(&[datagram]);
    assert!(seen.is_empty());
    assert!(matches!(end, Ok(true)));
}

#[test]
fn a_failed_or_interrupted_dump_is_an_error() {
    let (_, end) = read(&[done(-libc::EMSGSIZE)]);
    assert!(
        matches!(end, Err(Failure::Errno(libc::EMSGSIZE))),
        "{end:?}"
    );
    let interrupted = [message(IPVS_FAMILY, 2 | 16, SEQUENCE, &[1; 4]), done(0)].concat();
    let (_, end) = read(&[interrupted]);
    assert!(matches!(end, Err(Failure::Interrupted)), "{end:?}");
}

#[test]
fn a_dump_interrupted_at_every_attempt_is_its_own_error() {
    let mut attempts = 0;
    let end: crate::Result<()> = crate::handle::retry_read(
        || "IPVS_CMD_GET_SERVICE".into(),
        || {
            attempts += 1;
            Err(Failure::Interrupted)
        },
    );
    let error = end.expect_err("never finished");
    assert!(
        matches!(
            error,
            crate::Error::DumpInterrupted { ref operation, attempts: 5 }
                if operation == "IPVS_CMD_GET_SERVICE"
        ),
        "{error:?}"
    );
    assert_eq!(attempts, 5);
    assert_eq!(
        error.to_string(),
        "IPVS_CMD_GET_SERVICE: the dump was interrupted by concurrent changes of the table 5 times in a row"
    );
    // An interruption that stops is no error.
    let mut attempts = 0;
    let end = crate::handle::retry_read(
        || "IPVS_CMD_GET_DEST".into(),
        || {
            attempts += 1;
            if attempts < 3 {
                Err(Failure::Interrupted)
            } else {
                Ok(attempts)
            }
        },
    );
    assert_eq!(end.expect("third attempt"), 3);
}

#[test]
fn values_the_kernel_would_refuse_are_typed_errors() {
    use crate::handle::{validate_destination, validate_service};
    use crate::{DestinationConfig, ForwardMethod, InvalidRequest, ServiceConfig};
    let refused = |result: crate::Result<()>| match result {
        Err(crate::Error::InvalidRequest(why)) => why,
        other => panic!("not refused: {other:?}"),
    };
    let config = DestinationConfig::new(ForwardMethod::Masquerade, 1);
    assert_eq!(
        refused(validate_destination(&config.with_thresholds(5, 10))),
        InvalidRequest::LowerThreshold {
            lower: 10,
            upper: 5
        }
    );
    assert_eq!(
        refused(validate_destination(&config.with_thresholds(u32::MAX, 0))),
        InvalidRequest::UpperThreshold { upper: u32::MAX }
    );
    assert_eq!(
        refused(validate_service(&ServiceConfig::new("a-scheduler-name"))).to_string(),
        "scheduler name \"a-scheduler-name\" must be 1 to 15 bytes"
    );
    assert_eq!(
        refused(validate_service(&ServiceConfig::new("sh").with_pe_name(""))),
        InvalidRequest::PeName {
            name: String::new()
        }
    );
    assert!(validate_service(&ServiceConfig::new("sh").with_pe_name("sip")).is_ok());
}

#[test]
fn truncated_messages_are_errors() {
    let mut datagram = message(IPVS_FAMILY, 2, SEQUENCE, &[1; 8]);
    datagram.truncate(20);
    let (_, end) = read(&[datagram]);
    assert!(
        matches!(end, Err(Failure::Decode(ref m)) if m.starts_with("netlink header")),
        "{end:?}"
    );
    let (_, end) = read(&[message(2, 0, SEQUENCE, &[1, 2])]);
    assert!(
        matches!(end, Err(Failure::Decode(ref m)) if m.starts_with("NLMSG_ERROR")),
        "{end:?}"
    );
}

proptest! {
    #[test]
    fn random_datagrams_never_panic(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..128), 1..4)) {
        let _ = read(&datagrams);
    }

    #[test]
    fn damaged_answers_never_panic(cut in 0usize..64, at in 0usize..64, byte in any::<u8>()) {
        let mut datagram = [message(IPVS_FAMILY, 2, SEQUENCE, &[1; 8]), error(0, SEQUENCE), done(0)].concat();
        let at = at % datagram.len();
        datagram[at] = byte;
        datagram.truncate(datagram.len().saturating_sub(cut));
        let _ = read(&[datagram]);
    }
}
