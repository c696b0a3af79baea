//! keepalived.conf's grammar over the tokens of [`super::lexer`]: a file
//! is a list of statements, a statement a keyword with the words after
//! it on its line, and perhaps a `{ ... }` block of statements (its `{`
//! on the same line or the next one).

use super::lexer::{Kind, Token};
use crate::import::diag::{Loc, ParseError};

/// A word and where it is.
#[derive(Debug, Clone)]
pub struct Word {
    /// The text (quotes removed).
    pub text: String,
    /// Where it starts.
    pub loc: Loc,
}

/// One statement.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The first word.
    pub keyword: Word,
    /// The other words of its line.
    pub args: Vec<Word>,
    /// Its block, if it has one.
    pub block: Option<Vec<Statement>>,
}

impl Statement {
    /// The statement's place (its keyword's).
    pub fn loc(&self) -> &Loc {
        &self.keyword.loc
    }

    /// The statements of its block (none without one).
    pub fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// The statements of a token stream.
pub fn parse(tokens: &[Token]) -> Result<Vec<Statement>, ParseError> {
    let mut at = 0;
    let statements = block(tokens, &mut at, None)?;
    Ok(statements)
}

/// Statements until the `}` matching the `{` at `opened` (or the end of
/// the tokens at the top level).
fn block(
    tokens: &[Token],
    at: &mut usize,
    opened: Option<&Loc>,
) -> Result<Vec<Statement>, ParseError> {
    let mut statements: Vec<Statement> = Vec::new();
    // The statement being read, and whether its line has ended (so that a
    // `{` on the next line still opens its block).
    let mut current: Option<Statement> = None;
    let mut line_ended = false;
    while let Some(token) = tokens.get(*at) {
        *at += 1;
        match &token.kind {
            Kind::Word(text) => {
                let word = Word {
                    text: text.clone(),
                    loc: token.loc.clone(),
                };
                match &mut current {
                    Some(s) if !line_ended => s.args.push(word),
                    _ => {
                        statements.extend(current.take());
                        current = Some(Statement {
                            keyword: word,
                            args: Vec::new(),
                            block: None,
                        });
                        line_ended = false;
                    }
                }
            }
            Kind::Newline => line_ended = true,
            Kind::Open => {
                let Some(mut s) = current.take() else {
                    return Err(ParseError::new(
                        &token.loc,
                        "`{` without a keyword before it",
                    ));
                };
                s.block = Some(block(tokens, at, Some(&token.loc))?);
                statements.push(s);
                line_ended = false;
            }
            Kind::Close => {
                statements.extend(current.take());
                return match opened {
                    Some(_) => Ok(statements),
                    None => Err(ParseError::new(&token.loc, "`}` without a `{` to close")),
                };
            }
        }
    }
    statements.extend(current.take());
    match opened {
        Some(loc) => Err(ParseError::new(loc, "this `{` is never closed")),
        None => Ok(statements),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tokens(text: &str) -> Vec<Token> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.conf");
        std::fs::write(&path, text).expect("write");
        let mut notes = crate::import::diag::Diagnostics::default();
        let mut tokens = super::super::lexer::lex_file(&path, &mut notes).expect("lexes");
        // Stable file names in the messages.
        for t in &mut tokens {
            t.loc.file = Arc::new("t.conf".into());
        }
        tokens
    }

    fn shape(statements: &[Statement]) -> String {
        statements
            .iter()
            .map(|s| {
                let args: Vec<&str> = s.args.iter().map(|w| w.text.as_str()).collect();
                let mut out = format!("{}({})", s.keyword.text, args.join(" "));
                if let Some(b) = &s.block {
                    out.push_str(&format!("[{}]", shape(b)));
                }
                out
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn blocks_open_on_the_same_line_or_the_next() {
        let parsed = parse(&tokens("virtual_server 10.0.0.1 80\n{\n  lb_algo rr\n  real_server 10.0.1.1 80 { weight 2 }\n}\n")).expect("parses");
        assert_eq!(
            shape(&parsed),
            "virtual_server(10.0.0.1 80)[lb_algo(rr);real_server(10.0.1.1 80)[weight(2)]]"
        );
    }

    #[test]
    fn an_unclosed_block_names_its_brace() {
        let e = parse(&tokens("global_defs {\n  router_id a\n")).expect_err("fails");
        assert_eq!(e.to_string(), "t.conf:1:13: this `{` is never closed");
    }

    #[test]
    fn a_stray_close_is_an_error() {
        let e = parse(&tokens("lb_algo rr\n}\n")).expect_err("fails");
        assert_eq!(e.to_string(), "t.conf:2:1: `}` without a `{` to close");
    }
}
