//! `ipvs-checker import keepalived FILE`: keepalived.conf read by a
//! hand-written tokenizer ([`lexer`], which also follows `include`) and
//! grammar ([`tree`]), its `virtual_server` blocks mapped to checker
//! services ([`convert`]; the groups' members in `groups`, the real
//! servers in `real_server`, their checkers in `checks` (what every
//! checker takes in `settings`, UDP_CHECK's keywords in `udp`,
//! SMTP_CHECK's in `smtp`), the keywords' arguments in `args`).

use std::path::Path;

use crate::config::Mode;
use crate::import::diag::{Diagnostics, ParseError};
use crate::import::model::Imported;

mod args;
mod checks;
pub mod convert;
mod groups;
pub mod lexer;
mod real_server;
mod settings;
mod smtp;
pub mod tree;
mod udp;

/// The services of the keepalived config at `path`.
pub fn import(path: &Path, mode: Mode, diags: &mut Diagnostics) -> Result<Imported, ParseError> {
    let tokens = lexer::lex_file(path, diags)?;
    let statements = tree::parse(&tokens)?;
    Ok(Imported {
        services: convert::convert(&statements, mode, diags)?,
        maintenance_dir: None,
    })
}
