//! `timattr validate` and `timattr plan`.

use std::io::IsTerminal;

use super::{plan_context, Context, Exit};
use std::io::Write;

use crate::cli::{PlanArgs, ValidateArgs, ValidateFormat};
use crate::ops::plan::Targets;
use crate::plan::Plan;
use crate::render::json::StateRef;
use crate::render::{self, count, output, Format, PlanContext};
use crate::{Error, Result};

pub fn validate(ctx: &Context, args: &ValidateArgs) -> Result<Exit> {
    let loaded = ctx.load();
    if args.format == ValidateFormat::Codeclimate {
        // The report is the artifact GitLab reads: written whether the files are valid or not.
        let report = match &loaded {
            Err(Error::Invalid(d)) => render::ci::codeclimate(d),
            _ => render::ci::codeclimate(&Default::default()),
        };
        output::to_stdout(|out| out.write_all(report.as_bytes()))?;
    }
    let (settings, desired) = loaded?;
    let values: usize = desired.accounts.iter().map(|(_, a)| a.attrs.len()).sum();
    let tags: usize = desired.accounts.iter().map(|(_, a)| a.tags.len()).sum();
    // Projects without tags keep their summary word for word.
    let tags = if tags == 0 {
        String::new()
    } else {
        format!(", {}", count(tags, "tag", "tags"))
    };
    ctx.note(format!(
        "{}: valid ({}, {}{tags}, {}).",
        settings.project_file.display(),
        count(desired.accounts.len(), "user", "users"),
        count(values, "attribute value", "attribute values"),
        count(
            settings.attributes.len(),
            "attribute name",
            "attribute names"
        )
    ));
    Ok(Exit::Ok)
}

pub fn plan(ctx: &Context, args: &PlanArgs) -> Result<Exit> {
    let started = std::time::Instant::now();
    let targets = Targets::new(&args.targets)?;
    let settings = ctx.settings()?;
    // The store is opened while the users files load.
    let (plan, state, accounts) = crate::ops::plan::plan_files(&settings, &targets)?;
    tracing::info!(accounts, changes = plan.changes.len(), elapsed = ?started.elapsed(), "planned");
    if state.lineage.is_none() {
        ctx.note(format!(
            "warning: there is no state at {} yet, so everything is new; if the app already has values, `timattr import` adopts them first.",
            settings.state_dir.display()
        ));
    }
    let pc = plan_context(&settings);
    if let Some(out) = &args.out {
        let digest =
            crate::ops::saved::save(out, &plan, &state, &plan.safety(pc.max_removal_percent))?;
        ctx.note(format!(
            "Saved the plan to {} ({digest}); apply it with `timattr apply {}`.",
            out.display(),
            out.display()
        ));
    }
    let format = Format::from(args.format);
    write(ctx, &plan, &state, pc, format)?;
    // The text and markdown views say it at their top; stderr says it too for a plan piped
    // elsewhere, but not when stdout is the same terminal (once is enough).
    let shown = format != Format::Json && std::io::stdout().is_terminal();
    if let Some(why) = crate::ops::plan::mass_removal(&plan, &settings).filter(|_| !shown) {
        ctx.note(format!("warning: apply would refuse: {why}"));
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

/// A plan on stdout in `format`, and its markdown in the GitHub step summary.
pub fn write(
    ctx: &Context,
    plan: &Plan,
    state: &StateRef,
    pc: PlanContext,
    format: Format,
) -> Result<()> {
    output::to_stdout(|out| match format {
        Format::Text => render::text::write_plan(out, plan, pc, ctx.style()),
        Format::Json => {
            let safety = plan.safety(pc.max_removal_percent);
            render::json::write_plan(out, plan, Some(state), Some(&safety))
        }
        Format::Markdown => render::markdown::write_plan(out, plan, pc),
    })?;
    output::append_step_summary(&render::markdown::plan_markdown(plan, pc));
    Ok(())
}
