//! Where a setting came from ([`Loc`]), the error a file that does not
//! parse gives ([`ParseError`]), and what a conversion has to say about
//! the settings it could not carry over exactly ([`Diagnostics`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in a source file: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// The file, as the user named it or as an `include` resolved it.
    pub file: Arc<PathBuf>,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Loc {
    /// `FILE:LINE`, the form warnings and YAML comments use.
    pub fn line_only(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A source file that cannot be converted at all: no config is printed.
#[derive(Debug, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct ParseError {
    /// Where.
    pub loc: Loc,
    /// What is wrong, in the source format's terms.
    pub message: String,
}

impl ParseError {
    /// An error at `loc`.
    pub fn new(loc: &Loc, message: impl Into<String>) -> ParseError {
        ParseError {
            loc: loc.clone(),
            message: message.into(),
        }
    }

    /// An error about a whole file (it cannot be read, say): line 1, column 1.
    pub fn file(path: &Path, message: impl Into<String>) -> ParseError {
        ParseError {
            loc: Loc {
                file: Arc::new(path.to_owned()),
                line: 1,
                column: 1,
            },
            message: message.into(),
        }
    }
}

/// How far a converted setting is from the source's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing lost: said for information (a VRRP block left to keepalived).
    Note,
    /// Converted, but the checker behaves differently.
    Different,
    /// Not converted: no counterpart in the checker.
    Dropped,
}

/// One thing a conversion says about a source setting.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The setting's place.
    pub loc: Loc,
    /// How serious.
    pub severity: Severity,
    /// What happened, for stderr and the YAML comment.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.severity {
            Severity::Note => "note",
            Severity::Different => "warning: different",
            Severity::Dropped => "warning: dropped",
        };
        write!(f, "{}: {what}: {}", self.loc.line_only(), self.message)
    }
}

/// Everything a conversion said, in the order it said it. The same message
/// at several places (every real server of a pool without
/// `inhibit_on_failure`) is kept once, with the count of the others.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<(Diagnostic, usize)>,
}

impl Diagnostics {
    /// Records a diagnostic.
    pub fn push(&mut self, loc: &Loc, severity: Severity, message: impl Into<String>) {
        let message = message.into();
        if let Some((_, more)) = self
            .items
            .iter_mut()
            .find(|(d, _)| d.severity == severity && d.message == message)
        {
            *more += 1;
            return;
        }
        self.items.push((
            Diagnostic {
                loc: loc.clone(),
                severity,
                message,
            },
            0,
        ));
    }

    /// The worst severity said, if anything was.
    pub fn worst(&self) -> Option<Severity> {
        self.items.iter().map(|(d, _)| d.severity).max()
    }

    /// One line each, for stderr.
    pub fn lines(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|(d, more)| match more {
                0 => d.to_string(),
                n => format!("{d} (and {n} more like it)"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize) -> Loc {
        Loc {
            file: Arc::new("k.conf".into()),
            line,
            column: 3,
        }
    }

    #[test]
    fn the_same_message_is_said_once_with_a_count() {
        let mut d = Diagnostics::default();
        d.push(&at(4), Severity::Different, "removed on failure");
        d.push(&at(9), Severity::Different, "removed on failure");
        d.push(&at(12), Severity::Note, "VRRP left alone");
        assert_eq!(
            d.lines(),
            [
                "k.conf:4: warning: different: removed on failure (and 1 more like it)",
                "k.conf:12: note: VRRP left alone"
            ]
        );
        assert_eq!(d.worst(), Some(Severity::Different));
        assert_eq!(at(4).to_string(), "k.conf:4:3");
    }
}
