//! `timattr doctor [--format text|json] [--record DIR]`.

use super::{Context, Exit};
use crate::cli::{DoctorArgs, ListFormat};
use crate::ops::doctor::{self, Options};
use crate::render::output;
use crate::Result;

pub fn doctor(ctx: &Context, args: &DoctorArgs) -> Result<Exit> {
    let report = doctor::run(&Options {
        config: ctx.global.config.clone(),
        record: args.record.clone(),
    })?;
    output::to_stdout(|out| match args.format {
        ListFormat::Text => crate::render::doctor::write_text(out, &report, ctx.style()),
        ListFormat::Json => crate::render::doctor::write_json(out, &report),
    })?;
    if let Some(dir) = &args.record {
        ctx.note(format!("Answers received are saved in {}.", dir.display()));
    }
    // The report says what failed and how to fix it; stdout carries it (a JSON document
    // included), so nothing is repeated on stderr.
    Ok(if report.ok() { Exit::Ok } else { Exit::Failed })
}
