//! The keepalived conversion's tests: group ranges, timers, quorums.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::import::keepalived::args::timer;
use crate::import::keepalived::groups::ip_range;
use crate::import::keepalived::tree::Word;
use crate::import::model::{Check, CheckKind, Timing};

fn word(text: &str) -> Word {
    Word {
        text: text.into(),
        loc: Loc {
            file: Arc::new("k.conf".into()),
            line: 1,
            column: 1,
        },
    }
}

fn range(text: &str) -> Vec<String> {
    ip_range(&word(text))
        .expect("a range")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn group_ranges_expand_as_keepalived_writes_them() {
    assert_eq!(
        range("198.18.0.21-23"),
        ["198.18.0.21", "198.18.0.22", "198.18.0.23"]
    );
    assert_eq!(
        range("198.18.0.255-198.18.1.0"),
        ["198.18.0.255", "198.18.1.0"]
    );
    assert_eq!(range("198.18.0.8/31"), ["198.18.0.8", "198.18.0.9"]);
    assert_eq!(range("2001:db8::a-b"), ["2001:db8::a", "2001:db8::b"]);
    assert!(ip_range(&word("198.18.0.9-1")).is_err());
    assert!(
        ip_range(&word("198.18.0.0/8")).is_err(),
        "more than MAX_RANGE"
    );
}

#[test]
fn timers_are_seconds_with_fractions() {
    assert_eq!(
        timer(&word("1.5")).expect("a timer"),
        Duration::from_millis(1500)
    );
    assert!(timer(&word("0")).is_err());
    assert!(timer(&word("soon")).is_err());
}

fn rs(weight: u32) -> RealServer {
    RealServer {
        comments: Vec::new(),
        address: "198.18.1.11:80".into(),
        weight,
        forward: None,
        upper_threshold: None,
        lower_threshold: None,
        check_address: None,
        source_address: None,
        timing: Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
        },
        checks: vec![Check {
            kind: CheckKind::Tcp,
            port: None,
        }],
    }
}

#[test]
fn a_quorum_of_weights_is_a_count_of_real_servers() {
    let at = word("").loc;
    let mut diags = Diagnostics::default();
    let mut comments = Vec::new();
    // Equal weights: exact.
    let equal = [rs(2), rs(2), rs(2)];
    assert_eq!(
        min_up(Some(&(4, at.clone())), &equal, &mut comments, &mut diags),
        2
    );
    assert_eq!(diags.worst(), None);
    // Unequal: the heaviest reach it with this many, said as a difference.
    let unequal = [rs(5), rs(1), rs(1)];
    assert_eq!(
        min_up(Some(&(6, at.clone())), &unequal, &mut comments, &mut diags),
        2
    );
    assert_eq!(diags.worst(), Some(Severity::Different));
    // Out of reach: all of them.
    assert_eq!(
        min_up(Some(&(99, at)), &equal, &mut comments, &mut diags),
        3
    );
    assert_eq!(min_up(None, &equal, &mut comments, &mut diags), 1);
}
