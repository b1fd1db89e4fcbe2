//! `timattr validate` and `timattr plan`.

use super::{Context, Exit};
use crate::cli::PlanArgs;
use crate::render::{self, output, Format};
use crate::Result;

pub fn validate(ctx: &Context) -> Result<Exit> {
    let (settings, desired) = ctx.load()?;
    let values: usize = desired.accounts.iter().map(|(_, a)| a.len()).sum();
    ctx.note(format!(
        "{}: valid ({} users, {} attribute values, {} attribute names).",
        settings.project_file.display(),
        desired.accounts.len(),
        values,
        settings.attributes.len()
    ));
    Ok(Exit::Ok)
}

pub fn plan(ctx: &Context, args: &PlanArgs) -> Result<Exit> {
    let started = std::time::Instant::now();
    let (settings, desired) = ctx.load()?;
    tracing::info!(accounts = desired.accounts.len(), elapsed = ?started.elapsed(), "loaded the desired state");
    let (plan, state) = crate::ops::plan::plan(&settings, desired)?;
    tracing::info!(changes = plan.changes.len(), elapsed = ?started.elapsed(), "planned");
    if let Some(out) = &args.out {
        crate::ops::saved::save(out, &plan, &state)?;
        ctx.note(format!(
            "Saved the plan to {}; apply it with `timattr apply {}`.",
            out.display(),
            out.display()
        ));
    }
    let rate = settings.apply.rate_limit;
    output::to_stdout(|out| match Format::from(args.format) {
        Format::Text => render::text::write_plan(out, &plan, rate, ctx.style()),
        Format::Json => render::json::write_plan(out, &plan, None),
        Format::Markdown => render::markdown::write_plan(out, &plan, rate),
    })?;
    output::append_step_summary(&render::markdown::plan_markdown(&plan, rate));
    if let Some(why) = crate::ops::plan::mass_removal(&plan, &settings) {
        ctx.note(format!("warning: {why}"));
    }
    tracing::info!(elapsed = ?started.elapsed(), "rendered");
    let exit = if args.detailed_exitcode && !plan.is_empty() {
        Exit::Changes
    } else {
        Exit::Ok
    };
    // Freeing a million accounts one by one only delays the exit; the OS takes it all back.
    std::mem::forget(plan);
    Ok(exit)
}
