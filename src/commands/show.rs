//! `timattr show PLANFILE`: a saved plan, printed as `plan` would have printed it, then the
//! checks `apply PLANFILE` would make (digest, app, freshness, content), each passing or
//! failing on stderr; exit 1 when one fails, so a pipeline can check before its apply job.

use super::{plan_context, Context, Exit};
use crate::cli::ShowArgs;
use crate::render::{Format, PlanContext};
use crate::{Error, Result};

pub fn show(ctx: &Context, args: &ShowArgs) -> Result<Exit> {
    let saved = crate::ops::saved::read(&args.planfile)?;
    let settings = ctx.settings();
    // The threshold the plan was made with; the project's when the file predates it.
    let pc = match (&saved.safety, &settings) {
        (Some(s), settings) => PlanContext {
            rate: settings.as_ref().map_or(100, |s| s.apply.rate_limit),
            max_removal_percent: s.max_removal_percent,
        },
        (None, Ok(settings)) => plan_context(settings),
        (None, Err(_)) => PlanContext {
            rate: 100,
            max_removal_percent: crate::settings::ApplySettings::default().max_removal_percent,
        },
    };
    super::plan::write(
        ctx,
        &saved.plan,
        &saved.state,
        pc,
        Format::from(args.format),
    )?;
    let checks = crate::ops::saved::checks(settings.as_ref().map_err(clone_error), &saved);
    let mut failed = Vec::new();
    for c in &checks {
        match &c.outcome {
            Ok(what) => ctx.note(format!("✓ {}: {what}", c.name)),
            Err(why) => {
                ctx.note(format!("✗ {}: {why}", c.name));
                failed.push(c.name);
            }
        }
    }
    if failed.is_empty() {
        ctx.note("`timattr apply` would accept this plan (against the current files and state).");
        return Ok(Exit::Ok);
    }
    Err(Error::msg(format!(
        "the saved plan fails {} ({}): `timattr apply {}` would refuse it",
        crate::render::count(failed.len(), "check", "checks"),
        failed.join(", "),
        args.planfile.display()
    )))
}

/// The project's error again, for each check that needs the project.
fn clone_error(e: &Error) -> Error {
    Error::msg(e.to_string())
}
