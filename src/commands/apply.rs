//! `timattr apply`.

use super::common::Context;
use super::Exit;
use crate::cli::ApplyArgs;
use crate::{Error, Result};

pub fn apply(_ctx: &Context, _args: &ApplyArgs) -> Result<Exit> {
    Err(Error::msg("apply is not built yet"))
}
