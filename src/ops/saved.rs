//! Saved plan files (`plan --out`, `apply FILE`): gzip-compressed JSON holding the changes and
//! the state's lineage and serial at planning time, and the checks that a saved plan still
//! applies: same app, same state.

use std::io::{Read, Write};
use std::path::Path;

use crate::plan::Plan;
use crate::render::json::StateRef;
use crate::settings::Settings;
use crate::store::Store;
use crate::{Error, Result};

/// Writes a saved plan.
pub fn save(path: &Path, plan: &Plan, state: &StateRef) -> Result<()> {
    let context = || format!("cannot write plan file {}", path.display());
    let file = std::fs::File::create(path).map_err(|e| Error::io(context(), e))?;
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    crate::render::json::write_plan(&mut gz, plan, Some(state))
        .map_err(|e| Error::io(context(), e))?;
    gz.finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::io(context(), e))
}

/// Reads a saved plan.
pub fn read(path: &Path) -> Result<(Plan, StateRef)> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read plan file {}", path.display()), e))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .map_err(|e| {
            Error::msg(format!(
                "{} is not a saved plan (gzip JSON from `timattr plan --out`): {e}",
                path.display()
            ))
        })?;
    crate::render::json::read_saved(&bytes)
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}

/// A saved plan applies only to the app it was made for.
pub fn check_same_app(settings: &Settings, state: &StateRef) -> Result<()> {
    if state.sdkappid != settings.sdkappid || state.endpoint_host != settings.endpoint.host() {
        return Err(Error::msg(format!(
            "the saved plan is for sdkappid {} at {}, but the project is sdkappid {} at {}",
            state.sdkappid,
            state.endpoint_host,
            settings.sdkappid,
            settings.endpoint.host()
        )));
    }
    Ok(())
}

/// A saved plan applies only to the exact state it was made against.
pub fn check_not_stale(store: Option<&Store>, state: &StateRef) -> Result<()> {
    let (lineage, serial) = match store {
        Some(s) => (Some(s.meta().lineage.as_str()), s.meta().serial),
        None => (None, 0),
    };
    let same = match (&state.lineage, lineage) {
        (Some(p), Some(s)) => p == s && state.serial == serial,
        // Planned before any store existed: fine while nothing has been applied since.
        (None, _) => serial == 0,
        (Some(_), None) => false,
    };
    if !same {
        return Err(Error::msg(format!(
            "saved plan is stale: it was made at serial {} (lineage {}), but the state is now at serial {} (lineage {}); run `timattr plan --out FILE` again and review the new plan",
            state.serial,
            state.lineage.as_deref().unwrap_or("none"),
            serial,
            lineage.unwrap_or("none"),
        )));
    }
    Ok(())
}
