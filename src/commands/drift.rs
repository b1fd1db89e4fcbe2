//! `timattr drift [--fix [--auto-approve]]`.

use std::io::IsTerminal;

use super::{plan_context, Context, Exit};
use crate::cli::DriftArgs;
use crate::ops::drift::Checked;
use crate::ops::execute::Operation;
use crate::render::{drift, output, text, Format};
use crate::{Error, Result};

pub fn drift(ctx: &Context, args: &DriftArgs) -> Result<Exit> {
    let settings = ctx.settings_with(args.concurrency)?;
    // Refused before anything is read: a fix changes the app and nobody can be asked.
    if args.fix && !args.auto_approve && !std::io::stdin().is_terminal() {
        return Err(Error::msg(
            "refusing to fix drift without confirmation: stdin is not a terminal; review `timattr drift` and run again with --fix --auto-approve",
        ));
    }
    let (report, mut store) = match crate::ops::drift::check(&settings, args.fix)? {
        // A scheduled check whose state was lost must fail, not report "no drift" (§6).
        Checked::NoState => {
            return Err(Error::msg(format!(
                "there is no {}: nothing is recorded as applied, so drift cannot be checked; restore a backup (`timattr state restore FILE`) or adopt the app (`timattr import`)",
                settings.state.describe()
            )))
        }
        Checked::Interrupted(signal) => {
            ctx.note("Interrupted: the drift check did not finish.");
            return Ok(Exit::Stopped(signal));
        }
        Checked::Report(report, store) => (report, store),
    };
    let format = Format::from(args.format);
    output::to_stdout(|out| match format {
        Format::Text => drift::write_text(out, &report, ctx.style()),
        Format::Json => drift::write_json(out, &report),
        Format::Markdown => drift::write_markdown(out, &report),
    })?;
    output::append_step_summary(&drift::markdown_text(&report));
    if !report.has_drift() {
        return Ok(Exit::Ok);
    }
    if !args.fix {
        return Ok(Exit::Changes);
    }
    // Accounts that no longer exist cannot be repaired: a fix names them and fails.
    let gone = (!report.gone.is_empty()).then(|| drift::gone_error(&report.gone));
    if report.drifted.is_empty() {
        return Err(gone.unwrap_or_else(|| Error::msg("nothing to repair")));
    }
    let repairs = report.fix_plan();
    // The repairs, as a plan: on stdout with the text report, on stderr beside JSON or markdown.
    let mut shown = Vec::new();
    text::write_plan(&mut shown, &repairs, plan_context(&settings), ctx.style())
        .map_err(|e| Error::io("cannot write output", e))?;
    // Tags are named only when some are missing: a project without tags reads as before.
    let tags = report.drifted_tags() > 0;
    let shown = format!(
        "\nRepairs (the last-applied values set again{}):\n{}",
        if tags {
            ", the missing tags added back"
        } else {
            ""
        },
        String::from_utf8_lossy(&shown)
    );
    if format == Format::Text {
        output::to_stdout(|out| std::io::Write::write_all(out, shown.as_bytes()))?;
    } else {
        ctx.note(shown.trim_end());
    }
    if !args.auto_approve {
        super::apply::ask(
            if tags {
                "Do you want to set these values and add these tags again? Only 'yes' will be accepted: "
            } else {
                "Do you want to set these values again? Only 'yes' will be accepted: "
            },
            "fix cancelled: nothing was sent",
        )?;
    }
    let executed = crate::ops::drift::fix(&settings, &mut store, &report, ctx.global.quiet)?;
    let exit = super::apply::conclude(ctx, Operation::DriftFix, executed)?;
    match gone {
        Some(e) if exit == Exit::Ok => Err(e),
        _ => Ok(exit),
    }
}
