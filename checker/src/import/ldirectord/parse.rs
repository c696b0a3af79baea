//! ldirectord.cf's line grammar: `key = value` lines; a `virtual=` (or
//! `virtual6=`) line at the start of a line opens a section that holds the
//! lines after it indented by at least four spaces or a tab; anything from
//! `#` to the end of a line is a comment, as ldirectord strips it (even
//! inside quotes). A quoted value (`request="/health"`) loses its quotes.

use std::path::Path;
use std::sync::Arc;

use crate::import::diag::{Loc, ParseError};

/// One `key = value` line.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The key, as written.
    pub key: String,
    /// The value, trimmed, quotes kept (only `real=` has several words).
    pub value: String,
    /// Where the key starts.
    pub loc: Loc,
    /// Where the value starts.
    pub value_loc: Loc,
}

impl Setting {
    /// The value without its surrounding double quotes, if it has them.
    pub fn unquoted(&self) -> Result<&str, ParseError> {
        let v = self.value.as_str();
        match v.strip_prefix('"') {
            Some(rest) => rest
                .strip_suffix('"')
                .ok_or_else(|| ParseError::new(&self.value_loc, "unterminated quoted string")),
            None => Ok(v),
        }
    }
}

/// A `virtual=` section.
#[derive(Debug, Clone)]
pub struct Virtual {
    /// The `virtual=` line itself.
    pub head: Setting,
    /// Its indented lines.
    pub settings: Vec<Setting>,
}

/// A whole file.
#[derive(Debug, Clone, Default)]
pub struct File {
    /// The lines outside any section.
    pub globals: Vec<Setting>,
    /// The sections, in order.
    pub virtuals: Vec<Virtual>,
}

/// Reads and parses `path`.
pub fn parse_file(path: &Path) -> Result<File, ParseError> {
    let bytes =
        std::fs::read(path).map_err(|e| ParseError::file(path, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        ParseError::new(
            &Loc {
                file: Arc::new(path.to_owned()),
                line,
                column: 1,
            },
            "not UTF-8 text",
        )
    })?;
    parse(&text, Arc::new(path.to_owned()))
}

/// Parses the text of a file named `file`.
pub fn parse(text: &str, file: Arc<std::path::PathBuf>) -> Result<File, ParseError> {
    let mut out = File::default();
    for (index, raw) in text.lines().enumerate() {
        let loc = |column: usize| Loc {
            file: file.clone(),
            line: index + 1,
            column,
        };
        let line = match raw.find('#') {
            Some(at) => &raw[..at],
            None => raw,
        };
        if line.trim().is_empty() {
            continue;
        }
        // Indentation as ldirectord counts it: a tab is four spaces.
        let mut indent = 0;
        let mut chars = 0;
        for c in line.chars() {
            match c {
                ' ' => indent += 1,
                '\t' => indent += 4,
                _ => break,
            }
            chars += 1;
        }
        let body = &line[line.len() - line.trim_start().len()..];
        let setting = setting(body, chars + 1, &loc)?;
        if indent == 0 {
            if matches!(setting.key.as_str(), "virtual" | "virtual6") {
                out.virtuals.push(Virtual {
                    head: setting,
                    settings: Vec::new(),
                });
            } else {
                out.globals.push(setting);
            }
        } else if indent < 4 {
            return Err(ParseError::new(
                &loc(1),
                format!("indented by {indent} space(s): a line of a virtual section is indented by at least 4 spaces or a tab, and a global line not at all"),
            ));
        } else {
            match out.virtuals.last_mut() {
                Some(v) => v.settings.push(setting),
                None => {
                    return Err(ParseError::new(
                        &loc(chars + 1),
                        "an indented line before any virtual= line",
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// `key = value` (spaces around `=` optional).
fn setting(body: &str, column: usize, loc: &dyn Fn(usize) -> Loc) -> Result<Setting, ParseError> {
    let Some((key, value)) = body.split_once('=') else {
        return Err(ParseError::new(
            &loc(column),
            format!("{:?}: expected key = value", body.trim_end()),
        ));
    };
    let key_trimmed = key.trim_end();
    if key_trimmed.is_empty()
        || !key_trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(ParseError::new(
            &loc(column),
            format!("{key_trimmed:?}: expected a key (letters and digits)"),
        ));
    }
    let value_offset = key.chars().count() + 1 + (value.len() - value.trim_start().len());
    let value = value.trim();
    if value.is_empty() {
        return Err(ParseError::new(
            &loc(column),
            format!("{key_trimmed} has no value"),
        ));
    }
    Ok(Setting {
        key: key_trimmed.to_owned(),
        value: value.to_owned(),
        loc: loc(column),
        value_loc: loc(column + value_offset),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<File, ParseError> {
        parse(text, Arc::new("l.cf".into()))
    }

    #[test]
    fn sections_hold_their_indented_lines() {
        let f = parse_text("checktimeout=3\n# a comment\nvirtual=198.18.0.10:80\n    real=198.18.1.11:80 masq 2\n\tscheduler = rr # trailing\n\nquiescent=no\n").expect("parses");
        assert_eq!(f.globals.len(), 2);
        assert_eq!(f.globals[1].key, "quiescent");
        assert_eq!(f.virtuals.len(), 1);
        let v = &f.virtuals[0];
        assert_eq!(v.head.value, "198.18.0.10:80");
        let keys: Vec<(&str, &str)> = v
            .settings
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            keys,
            [("real", "198.18.1.11:80 masq 2"), ("scheduler", "rr")]
        );
        assert_eq!(v.settings[1].value_loc.to_string(), "l.cf:5:14");
    }

    #[test]
    fn short_indentation_is_an_error_with_its_line() {
        let e =
            parse_text("virtual=198.18.0.10:80\n  real=198.18.1.11:80 masq\n").expect_err("fails");
        assert!(
            e.to_string()
                .starts_with("l.cf:2:1: indented by 2 space(s)"),
            "{e}"
        );
    }

    #[test]
    fn a_line_without_equals_is_an_error() {
        let e = parse_text("virtual=198.18.0.10:80\n    real 198.18.1.11:80\n").expect_err("fails");
        assert_eq!(
            e.to_string(),
            "l.cf:2:5: \"real 198.18.1.11:80\": expected key = value"
        );
    }
}
