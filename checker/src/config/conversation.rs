//! The `steps:` of a `tcp` check, and the presets that stand for the
//! usual ones (`preset: smtp`): each protocol's greeting and a polite
//! goodbye, as its RFC or documentation has them.

use regex::bytes::Regex;
use serde::Deserialize;

use super::Step;

/// One `steps:` entry as written: exactly one of its keys.
#[derive(Debug, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    send: Option<String>,
    send_hex: Option<String>,
    expect: Option<String>,
}

/// The presets, each as steps written in the config's own terms.
const PRESETS: &[(&str, &[(&str, &str)])] = &[
    // RFC 5321: a 220 greeting (the last line of a multi-line one has a
    // space after the code), 250 to EHLO, 221 to QUIT.
    (
        "smtp",
        &[
            ("expect", r"(?m)^220 "),
            ("send", "EHLO ipvs-checker\r\n"),
            ("expect", r"(?m)^250 "),
            ("send", "QUIT\r\n"),
            ("expect", r"(?m)^221"),
        ],
    ),
    // RFC 9051: an untagged OK (or PREAUTH) greeting; LOGOUT's tagged OK.
    (
        "imap",
        &[
            ("expect", r"^\* (OK|PREAUTH)"),
            ("send", "A1 LOGOUT\r\n"),
            ("expect", r"(?m)^A1 OK"),
        ],
    ),
    // RFC 1939: +OK greeting, +OK to QUIT.
    (
        "pop3",
        &[
            ("expect", r"^\+OK"),
            ("send", "QUIT\r\n"),
            ("expect", r"^\+OK"),
        ],
    ),
    // Redis' inline command: PING answers +PONG (an -ERR or -NOAUTH
    // fails).
    ("redis", &[("send", "PING\r\n"), ("expect", r"^\+PONG\r\n")]),
    // MySQL's first packet: a 3-byte length, sequence 0 and protocol
    // version 10 (an error packet, 0xff, fails: too many connections, a
    // blocked host).
    ("mysql", &[("expect", r"(?s-u)^.{3}\x00\x0a")]),
];

/// The steps of the preset `name`, as written in a config (`("send",
/// TEXT)`, `("expect", REGEX)`), for a config written from another
/// tool's (`ipvs-checker import`).
pub fn preset_steps(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The names of the presets, for messages and docs.
pub(super) fn preset_names() -> String {
    let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
    match names.split_last() {
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The steps of `preset`, and its name as a static string.
pub(super) fn preset(name: &str) -> Result<(&'static str, Vec<Step>), String> {
    let Some((name, steps)) = PRESETS.iter().find(|(n, _)| *n == name) else {
        return Err(format!(
            "unknown preset {name:?}: expected {}",
            preset_names()
        ));
    };
    let raw: Vec<RawStep> = steps
        .iter()
        .map(|(key, value)| {
            let value = Some((*value).to_owned());
            match *key {
                "send" => RawStep {
                    send: value,
                    send_hex: None,
                    expect: None,
                },
                _ => RawStep {
                    send: None,
                    send_hex: None,
                    expect: value,
                },
            }
        })
        .collect();
    Ok((name, steps_of(&raw)?))
}

/// The steps as written, checked.
pub(super) fn steps_of(raw: &[RawStep]) -> Result<Vec<Step>, String> {
    let mut steps = Vec::with_capacity(raw.len());
    for (index, step) in raw.iter().enumerate() {
        let number = index + 1;
        let step = match (&step.send, &step.send_hex, &step.expect) {
            (Some(text), None, None) if !text.is_empty() => Step::Send(text.clone().into_bytes()),
            (None, Some(hex), None) => Step::Send(from_hex(hex).ok_or_else(|| {
                format!("invalid send_hex {hex:?} in step {number}: expected pairs of hex digits, like 0d0a")
            })?),
            (None, None, Some(re)) => Step::Expect(
                Regex::new(re).map_err(|e| format!("invalid expect regex in step {number}: {e}"))?,
            ),
            (Some(_), None, None) => {
                return Err(format!("send in step {number} is empty: nothing to send"))
            }
            _ => {
                return Err(format!(
                    "step {number} must have exactly one of send, send_hex or expect"
                ))
            }
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Bytes from hex digits in pairs (spaces between pairs allowed).
pub(super) fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}
