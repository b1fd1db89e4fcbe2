//! `timattr drift` and `timattr import`.

use super::common::Context;
use super::Exit;
use crate::cli::DriftArgs;
use crate::{Error, Result};

pub fn drift(_ctx: &Context, _args: &DriftArgs) -> Result<Exit> {
    Err(Error::msg("drift is not built yet"))
}

pub fn import(_ctx: &Context) -> Result<Exit> {
    Err(Error::msg("import is not built yet"))
}
