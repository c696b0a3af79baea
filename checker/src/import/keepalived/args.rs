//! The statement-argument helpers of the keepalived conversion: a
//! keyword's value, numbers, timers, flags and the forwarding method.

use std::time::Duration;

use super::tree::{Statement, Word};
use crate::import::diag::{Diagnostics, ParseError, Severity};
use crate::import::model::Forward;

pub(super) fn forward(s: &Statement, diags: &mut Diagnostics) -> Result<Forward, ParseError> {
    let w = one_or_more(s, 1)?;
    let f = match w.text.to_ascii_uppercase().as_str() {
        "NAT" => Forward::Nat,
        "DR" => Forward::Dr,
        "TUN" => Forward::Tun,
        _ => {
            return Err(ParseError::new(
                &w.loc,
                format!("{:?}: expected NAT, DR or TUN", w.text),
            ))
        }
    };
    if let Some(extra) = s.args.get(1) {
        let ipip = s.args.len() == 3 && extra.text == "type" && s.args[2].text == "ipip";
        if !ipip {
            diags.push(
                &extra.loc,
                Severity::Dropped,
                "the tunnel type and checksum options have no counterpart: the checker's tun is IPIP",
            );
        }
    }
    Ok(f)
}

/// The value of `s`. keepalived reads one keyword per line (a brace
/// starts a new one) and ignores the words after its value, so
/// `connect_timeout 2 retry 0` sets no retry: said as a note.
pub(super) fn one_arg<'a>(
    s: &'a Statement,
    diags: &mut Diagnostics,
) -> Result<&'a Word, ParseError> {
    match s.args.as_slice() {
        [w] => Ok(w),
        [] => Err(ParseError::new(
            s.loc(),
            format!("{} needs a value", s.keyword.text),
        )),
        [w, extra, ..] => {
            let rest: Vec<&str> = s.args[1..].iter().map(|w| w.text.as_str()).collect();
            diags.push(
                &extra.loc,
                Severity::Note,
                format!(
                    "{:?} after `{} {}` on the same line: keepalived reads one keyword a line and ignores it, and so does the import (put it on a line of its own)",
                    rest.join(" "),
                    s.keyword.text,
                    w.text
                ),
            );
            Ok(w)
        }
    }
}

/// The first argument of `s`, which needs at least `n`.
pub(super) fn one_or_more(s: &Statement, n: usize) -> Result<&Word, ParseError> {
    if s.args.len() < n {
        return Err(ParseError::new(
            s.loc(),
            format!("{} needs {n} value(s)", s.keyword.text),
        ));
    }
    Ok(&s.args[0])
}

/// The `n`-th word of `s` (1-based, the keyword's arguments).
pub(super) fn one_or_more_at(s: &Statement, n: usize) -> Result<&Word, ParseError> {
    s.args
        .get(n - 1)
        .ok_or_else(|| ParseError::new(s.loc(), format!("{} needs {n} value(s)", s.keyword.text)))
}

pub(super) fn number<T: std::str::FromStr>(w: &Word, what: &str) -> Result<T, ParseError> {
    w.text.parse().map_err(|_| {
        ParseError::new(
            &w.loc,
            format!("{what} {:?}: expected a number in range", w.text),
        )
    })
}

/// keepalived's TIMER: seconds, with a fraction allowed (resolution: the
/// checker's milliseconds).
pub(super) fn timer(w: &Word) -> Result<Duration, ParseError> {
    let seconds: f64 = w
        .text
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .ok_or_else(|| {
            ParseError::new(
                &w.loc,
                format!("{:?}: expected seconds, like 3 or 1.5", w.text),
            )
        })?;
    let millis = (seconds * 1000.0).round() as u64;
    if millis == 0 {
        return Err(ParseError::new(
            &w.loc,
            format!("{:?}: the checker needs at least 1 ms", w.text),
        ));
    }
    Ok(Duration::from_millis(millis))
}

/// A flag that may be bare or take a boolean.
pub(super) fn flag(s: &Statement) -> Result<bool, ParseError> {
    match s.args.first().map(|w| w.text.to_ascii_lowercase()) {
        None => Ok(true),
        Some(v) if matches!(v.as_str(), "yes" | "true" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "no" | "false" | "off") => Ok(false),
        Some(v) => Err(ParseError::new(
            &s.args[0].loc,
            format!("{v:?}: expected yes or no"),
        )),
    }
}
