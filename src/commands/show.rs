//! `timattr show PLANFILE`: a saved plan, printed as `plan` would have printed it.

use super::{plan_context, Context, Exit};
use crate::cli::ShowArgs;
use crate::render::{Format, PlanContext};
use crate::Result;

pub fn show(ctx: &Context, args: &ShowArgs) -> Result<Exit> {
    let (plan, state, safety) = crate::ops::saved::read(&args.planfile)?;
    // The threshold the plan was made with; the project's when the file predates it.
    let pc = match (safety, ctx.settings()) {
        (Some(s), settings) => PlanContext {
            rate: settings.map_or(100, |s| s.apply.rate_limit),
            max_removal_percent: s.max_removal_percent,
        },
        (None, Ok(settings)) => plan_context(&settings),
        (None, Err(_)) => PlanContext {
            rate: 100,
            max_removal_percent: crate::settings::ApplySettings::default().max_removal_percent,
        },
    };
    super::plan::write(ctx, &plan, &state, pc, Format::from(args.format))?;
    Ok(Exit::Ok)
}
