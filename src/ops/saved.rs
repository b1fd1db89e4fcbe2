//! Saved plan files (`plan --out`, `apply FILE`): gzip-compressed JSON holding the changes and
//! the state's lineage and serial at planning time, and the checks that a saved plan still
//! applies: same app, same state.

use std::io::Read;
use std::path::Path;

use crate::plan::{Plan, Safety};
use crate::render::json::{SafetyDoc, StateRef};
use crate::settings::Settings;
use crate::store::interface::State;
use crate::{Error, Result};

/// Writes a saved plan, with its mass-removal verdict. The file is written beside its target
/// and renamed (DESIGN.md §8), so a failed write leaves the previous plan file intact.
pub fn save(path: &Path, plan: &Plan, state: &StateRef, safety: &Safety) -> Result<()> {
    crate::files::write_atomically(path, |out| {
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        crate::render::json::write_plan(&mut gz, plan, Some(state), Some(safety))?;
        gz.finish()?.flush()
    })
    .map_err(|e| Error::io(format!("cannot write plan file {}", path.display()), e))
}

/// The most a saved plan may inflate to (DESIGN.md §8). Plan JSON compresses about 5–15×, a
/// decompression bomb about 1000×: allowing 64× the file's size (at least 64 MiB) reads any
/// real plan and stops a bomb before it costs memory.
fn inflate_cap(compressed: u64) -> u64 {
    compressed.saturating_mul(64).max(64 << 20)
}

/// Reads a saved plan, and its mass-removal verdict when the file has one.
pub fn read(path: &Path) -> Result<(Plan, StateRef, Option<SafetyDoc>)> {
    read_plan(path).map_err(|e| match crate::files::doc_kind(path) {
        // Another of the tool's files: say which, not what its parser missed.
        Some(
            kind @ (crate::files::DocKind::Export | crate::files::DocKind::Plan { gzipped: false }),
        ) => Error::msg(format!(
            "{} is not a saved plan: this is {}",
            path.display(),
            kind.described()
        )),
        _ => e,
    })
}

fn read_plan(path: &Path) -> Result<(Plan, StateRef, Option<SafetyDoc>)> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read plan file {}", path.display()), e))?;
    let compressed = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    crate::files::gzip_reader_capped(file, inflate_cap(compressed), path.display().to_string())
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
pub fn check_not_stale(store: Option<&State>, state: &StateRef) -> Result<()> {
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
