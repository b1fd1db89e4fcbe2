//! `timattr drift [--fix]`.

use super::{Context, Exit};
use crate::cli::DriftArgs;
use crate::ops::drift::Checked;
use crate::ops::execute::Operation;
use crate::render::{drift, output, Format};
use crate::Result;

pub fn drift(ctx: &Context, args: &DriftArgs) -> Result<Exit> {
    let (settings, desired) = ctx.load()?;
    let (report, mut store) = match crate::ops::drift::check(&settings, desired, args.fix)? {
        Checked::NoState => {
            ctx.note(format!(
                "There is no state at {} yet: nothing is managed, so nothing can drift.",
                settings.state_dir.display()
            ));
            return Ok(Exit::Ok);
        }
        Checked::Interrupted(signal) => {
            ctx.note("Interrupted: the drift check did not finish.");
            return Ok(Exit::Stopped(signal));
        }
        Checked::Report(report, store) => (report, store),
    };
    output::to_stdout(|out| match Format::from(args.format) {
        Format::Text => drift::write_text(out, &report, ctx.style()),
        Format::Json => drift::write_json(out, &report),
        Format::Markdown => drift::write_markdown(out, &report),
    })?;
    output::append_step_summary(&drift::markdown_text(&report));
    if report.drifted.is_empty() {
        return Ok(Exit::Ok);
    }
    if !args.fix {
        return Ok(Exit::Changes);
    }
    ctx.note(format!(
        "Fixing: setting the last-applied values of {} users again.",
        report.drifted.len()
    ));
    let executed = crate::ops::drift::fix(&settings, &mut store, &report, ctx.global.quiet)?;
    super::apply::conclude(ctx, Operation::DriftFix, executed)
}
