//! `ipvs-checker import ldirectord FILE`: ldirectord.cf read by a line
//! grammar ([`parse`]), mapped to checker services ([`convert`]; the
//! `real=` and `fallback=` lines in `real`, the check's kind in `checks`,
//! the settings' values in `values`).

use std::path::Path;

use crate::config::Mode;
use crate::import::diag::{Diagnostics, ParseError};
use crate::import::model::Imported;

mod checks;
pub mod convert;
pub mod parse;
mod real;
mod values;

/// The services and global settings of the ldirectord config at `path`.
pub fn import(path: &Path, mode: Mode, diags: &mut Diagnostics) -> Result<Imported, ParseError> {
    let file = parse::parse_file(path)?;
    convert::convert(&file, mode, diags)
}
