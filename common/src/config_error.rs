//! A config file that cannot be used, with where and why: both daemons'
//! files (the checker's `--config.file`, either's `--web.config.file`)
//! report their mistakes the same way, `FILE:LINE:COLUMN: what is wrong`,
//! or `FILE: what is wrong` when the mistake is not at one place (a
//! missing key, a file it names that cannot be read).

use std::fmt;
use std::path::{Path, PathBuf};

/// A config file error: the file, the place in it when there is one, and
/// what is wrong (led by the path of the key, like `services[0].check:`,
/// when the YAML parser knows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The 1-based line and column, when the mistake is at one place.
    pub location: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A mistake about the whole file, or not at one place in it.
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            location: None,
            message: message.into(),
        }
    }

    /// A file that could not be read.
    pub fn unreadable(file: &Path, error: &std::io::Error) -> Self {
        ConfigError::new(file, format!("cannot read: {error}"))
    }

    /// serde_yaml's error on `text`, the contents of `file`: its trailing
    /// " at line L column C" becomes the location. serde_yaml places an
    /// unknown key of the top level nowhere or at the document's start, so
    /// such a key is found at the start of a line of `text`.
    pub fn yaml(file: &Path, text: &str, error: &serde_yaml::Error) -> Self {
        let mut message = error.to_string();
        let mut location = error.location().map(|l| (l.line(), l.column()));
        if let Some((line, column)) = location {
            let suffix = format!(" at line {line} column {column}");
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        // For the top-level mapping serde_yaml gives no place, or the
        // document's start.
        if matches!(location, None | Some((1, 1))) {
            if let Some(line) = top_level_key(text, &message) {
                location = Some((line, 1));
            }
        }
        ConfigError {
            file: file.to_owned(),
            location,
            message,
        }
    }
}

/// The 1-based line of the unknown top-level key an ``unknown field `KEY` ``
/// message names.
fn top_level_key(text: &str, message: &str) -> Option<usize> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let line = text.lines().position(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })?;
    Some(line + 1)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialized
    struct File {
        name: String,
        list: Vec<u32>,
    }

    fn error_of(text: &str) -> String {
        let error = serde_yaml::from_str::<File>(text).expect_err("invalid");
        ConfigError::yaml(Path::new("/etc/a.yml"), text, &error).to_string()
    }

    #[test]
    fn file_line_column_and_message() {
        assert_eq!(
            error_of("name: a\nlist: [1, x]\n"),
            "/etc/a.yml:2:11: list[1]: invalid type: string \"x\", expected u32"
        );
        // A syntax error keeps the inner place its message names.
        assert_eq!(
            error_of("name: a\nlist:\n  - 1\n - 2\n"),
            "/etc/a.yml:4:2: did not find expected key at line 4 column 2, while parsing a block mapping"
        );
    }

    #[test]
    fn unknown_top_level_key_is_found_by_its_line() {
        assert_eq!(
            error_of("# a\nname: a\nlist: []\nnmae : b\n"),
            "/etc/a.yml:4:1: unknown field `nmae`, expected `name` or `list`"
        );
    }

    #[test]
    fn not_at_one_place() {
        assert_eq!(
            error_of("name: a\n"),
            "/etc/a.yml:1:1: missing field `list`"
        );
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            ConfigError::unreadable(Path::new("b.yml"), &io).to_string(),
            "b.yml: cannot read: entity not found"
        );
    }
}
