//! keepalived.conf's tokens: words, double-quoted strings, `{` and `}`,
//! and the ends of lines (keepalived's grammar is line-oriented: a
//! keyword's arguments are the rest of its line). `#` and `!` start a
//! comment outside quotes. `include PATTERN` lines are replaced by the
//! tokens of the files they name, as keepalived reads them: a relative
//! pattern is relative to the including file's directory, globs and
//! csh-style braces (`{a,b}`) are expanded, matches read in sorted order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::import::diag::{Diagnostics, Loc, ParseError, Severity};

/// Includes nested deeper than this are taken for a cycle.
const MAX_INCLUDE_DEPTH: usize = 16;

/// A brace pattern expanding to more patterns than this is refused.
const MAX_BRACE_EXPANSION: usize = 1024;

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A word, or the contents of a quoted string.
    Word(String),
    /// `{`.
    Open,
    /// `}`.
    Close,
    /// The end of a line (of any file).
    Newline,
}

/// A token and where it starts.
#[derive(Debug, Clone)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Where it starts.
    pub loc: Loc,
}

/// The tokens of `path` and of every file it includes.
pub fn lex_file(path: &Path, notes: &mut Diagnostics) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    lex_into(path, 0, &mut tokens, notes)?;
    Ok(tokens)
}

fn lex_into(
    path: &Path,
    depth: usize,
    tokens: &mut Vec<Token>,
    notes: &mut Diagnostics,
) -> Result<(), ParseError> {
    let bytes =
        std::fs::read(path).map_err(|e| ParseError::file(path, format!("cannot read: {e}")))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            let loc = Loc {
                file: Arc::new(path.to_owned()),
                line,
                column,
            };
            return Err(ParseError::new(&loc, "not UTF-8 text"));
        }
    };
    let file = Arc::new(path.to_owned());
    for (index, line) in text.lines().enumerate() {
        let loc = Loc {
            file: file.clone(),
            line: index + 1,
            column: line.len() - line.trim_start().len() + 1,
        };
        // An include line is read raw: its pattern may hold braces.
        if let Some((keyword, rest)) = include_line(line) {
            let pattern = rest.trim();
            if pattern.is_empty() {
                return Err(ParseError::new(
                    &loc,
                    format!("{keyword} needs a file name"),
                ));
            }
            if pattern.split_whitespace().count() > 1 {
                return Err(ParseError::new(
                    &loc,
                    format!("{keyword} takes one file name (pattern)"),
                ));
            }
            if depth + 1 > MAX_INCLUDE_DEPTH {
                return Err(ParseError::new(
                    &loc,
                    format!(
                        "includes nested deeper than {MAX_INCLUDE_DEPTH}: a file includes itself?"
                    ),
                ));
            }
            let files = expand_include(path, pattern).map_err(|m| ParseError::new(&loc, m))?;
            if files.is_empty() {
                // keepalived's plain `include` goes on without a match.
                notes.push(
                    &loc,
                    Severity::Note,
                    format!(
                        "include {pattern:?} matches no file (keepalived goes on without it too)"
                    ),
                );
            }
            for f in files {
                lex_into(&f, depth + 1, tokens, notes)?;
            }
            continue;
        }
        tokens.extend(lex_line(&file, index + 1, line)?);
        tokens.push(Token {
            kind: Kind::Newline,
            loc: Loc {
                file: file.clone(),
                line: index + 1,
                column: line.chars().count() + 1,
            },
        });
    }
    Ok(())
}

/// The keyword and the rest (comment removed) of an include line.
fn include_line(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_start();
    let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    let (keyword, rest) = trimmed.split_at(end);
    if !is_include(keyword) {
        return None;
    }
    let rest = match rest.find(['#', '!']) {
        Some(at) => &rest[..at],
        None => rest,
    };
    Some((keyword, rest))
}

/// keepalived's include keyword and its variants (stricter checks on
/// missing files, which the import does not need to tell apart).
fn is_include(word: &str) -> bool {
    matches!(
        word,
        "include" | "includem" | "includer" | "includew" | "includeb"
    )
}

/// The tokens of one line (without the newline).
fn lex_line(file: &Arc<PathBuf>, line: usize, text: &str) -> Result<Vec<Token>, ParseError> {
    let loc = |column: usize| Loc {
        file: file.clone(),
        line,
        column,
    };
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' | '!' => break,
            '{' => {
                tokens.push(Token {
                    kind: Kind::Open,
                    loc: loc(i + 1),
                });
                i += 1;
            }
            '}' => {
                tokens.push(Token {
                    kind: Kind::Close,
                    loc: loc(i + 1),
                });
                i += 1;
            }
            '"' => {
                let start = i;
                let mut word = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ParseError::new(
                                &loc(start + 1),
                                "unterminated quoted string (a string ends on its line)",
                            ))
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if chars.get(i + 1) == Some(&'"') => {
                            word.push('"');
                            i += 2;
                        }
                        Some(c) => {
                            word.push(*c);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token {
                    kind: Kind::Word(word),
                    loc: loc(start + 1),
                });
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '{' | '}' | '"' | '#' | '!')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if tokens.is_empty() && (word.starts_with('$') || word.starts_with('@')) {
                    return Err(ParseError::new(
                        &loc(start + 1),
                        format!(
                            "{word:?}: keepalived's parameter substitution ($NAME) and conditional lines (@NAME) are not supported by the import; expand them first"
                        ),
                    ));
                }
                tokens.push(Token {
                    kind: Kind::Word(word),
                    loc: loc(start + 1),
                });
            }
        }
    }
    Ok(tokens)
}

/// The files an include pattern names, relative to the including file's
/// directory, braces then globs expanded, each expansion sorted.
fn expand_include(including: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let base = including.parent().unwrap_or(Path::new(""));
    let mut files = Vec::new();
    for expanded in expand_braces(pattern)? {
        let full = if Path::new(&expanded).is_absolute() {
            PathBuf::from(&expanded)
        } else {
            base.join(&expanded)
        };
        let Some(full_text) = full.to_str() else {
            return Err(format!("include {pattern:?}: the path is not UTF-8"));
        };
        let paths = glob::glob(full_text).map_err(|e| format!("include {pattern:?}: {e}"))?;
        let mut matched = Vec::new();
        for p in paths {
            let p = p.map_err(|e| format!("include {pattern:?}: {e}"))?;
            if p.is_file() {
                matched.push(p);
            }
        }
        matched.sort();
        files.extend(matched);
    }
    Ok(files)
}

/// csh-style brace expansion: `a{b,c{d,e}}f` is `abf`, `acdf`, `acef`.
/// An unmatched brace is kept as a character, as glob() does.
fn expand_braces(pattern: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    // The first `{` with its matching `}` and the top-level commas between.
    let mut open = None;
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, c) in chars.iter().enumerate() {
        match c {
            '{' => {
                if open.is_none() {
                    open = Some(i);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let (Some(open), Some(close)) = (open, close) else {
        return Ok(vec![pattern.to_owned()]);
    };
    let prefix: String = chars[..open].iter().collect();
    let suffix: String = chars[close + 1..].iter().collect();
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let alternative: String = chars[pair[0] + 1..pair[1]].iter().collect();
        for rest in expand_braces(&format!("{prefix}{alternative}{suffix}"))? {
            out.push(rest);
            if out.len() > MAX_BRACE_EXPANSION {
                return Err(format!(
                    "{pattern:?} expands to more than {MAX_BRACE_EXPANSION} patterns"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        lex_line(&Arc::new("t.conf".into()), 1, text)
            .expect("lexes")
            .into_iter()
            .map(|t| match t.kind {
                Kind::Word(w) => w,
                Kind::Open => "{".into(),
                Kind::Close => "}".into(),
                Kind::Newline => "\\n".into(),
            })
            .collect()
    }

    #[test]
    fn braces_quotes_and_both_comment_marks() {
        assert_eq!(
            words("real_server 10.0.0.1 80{weight 2}"),
            ["real_server", "10.0.0.1", "80", "{", "weight", "2", "}"]
        );
        assert_eq!(words(r#"  path "/a b#c" # a comment"#), ["path", "/a b#c"]);
        assert_eq!(words("lb_algo rr ! another comment"), ["lb_algo", "rr"]);
        assert_eq!(words(r#"regex "say \"ok\"""#), ["regex", "say \"ok\""]);
    }

    #[test]
    fn an_unterminated_string_is_an_error_at_its_quote() {
        let e = lex_line(&Arc::new("t.conf".into()), 7, r#"  path "/open"#).expect_err("fails");
        assert_eq!(
            e.to_string(),
            "t.conf:7:8: unterminated quoted string (a string ends on its line)"
        );
    }

    #[test]
    fn substitutions_are_refused_with_their_place() {
        let e = lex_line(&Arc::new("t.conf".into()), 3, "$VIP=10.0.0.1").expect_err("fails");
        assert!(
            e.to_string()
                .starts_with("t.conf:3:1: \"$VIP=10.0.0.1\": keepalived's parameter substitution"),
            "{e}"
        );
    }

    #[test]
    fn braces_expand_like_csh() {
        assert_eq!(
            expand_braces("a{b,c{d,e}}f").expect("expands"),
            ["abf", "acdf", "acef"]
        );
        assert_eq!(
            expand_braces("conf.d/*.conf").expect("expands"),
            ["conf.d/*.conf"]
        );
        assert_eq!(expand_braces("x{,y}").expect("expands"), ["x", "xy"]);
        assert_eq!(expand_braces("open{").expect("expands"), ["open{"]);
    }
}
