//! `timattr import`.

use super::{Context, Exit};
use crate::Result;

pub fn import(ctx: &Context) -> Result<Exit> {
    let (settings, desired) = ctx.load()?;
    let imported = crate::ops::import::import(&settings, desired)?;
    ctx.note(format!(
        "Import {}: read {} users, recorded live values of {} as last-applied; {} requests ({} retries) in {:.2} s. Run `timattr plan` to see the true differences.",
        if imported.interrupted.is_none() { "complete" } else { "interrupted" },
        imported.read,
        imported.recorded,
        imported.requests,
        imported.retries,
        imported.elapsed.as_secs_f64()
    ));
    Ok(match imported.interrupted {
        None => Exit::Ok,
        Some(signal) => Exit::Stopped(signal),
    })
}
