//! `timattr apply [PLANFILE]`: the review happens on this terminal; the rest is
//! [`crate::ops::apply`].

use std::io::{BufRead, IsTerminal, Write};

use super::{Context, Exit};
use crate::cli::ApplyArgs;
use crate::ops::apply::{Applied, ApplyOptions, Review};
use crate::ops::execute::{Executed, Operation};
use crate::plan::Plan;
use crate::render::{output, report, text, PlanContext};
use crate::{Error, Result};

pub fn apply(ctx: &Context, args: &ApplyArgs) -> Result<Exit> {
    let settings = ctx.settings_with(args.concurrency)?;
    let opts = ApplyOptions {
        planfile: args.planfile.clone(),
        auto_approve: args.auto_approve,
        dry_run: args.dry_run,
        allow_mass_removal: args.allow_mass_removal,
        targets: args.targets.clone(),
        interactive: std::io::stdin().is_terminal(),
        quiet: ctx.global.quiet,
    };
    let mut review = Terminal {
        ctx,
        plan: super::plan_context(&settings),
        family: settings.api,
    };
    match crate::ops::apply::apply(&settings, &opts, &mut review)? {
        Applied::DryRun | Applied::NothingToDo => Ok(Exit::Ok),
        Applied::Executed(executed) => conclude(ctx, Operation::Apply, *executed),
    }
}

/// The plan on stdout, notes on stderr, the question on the terminal.
pub struct Terminal<'a> {
    pub ctx: &'a Context,
    pub plan: PlanContext,
    /// Whose command names a dry run lists.
    pub family: crate::api::Family,
}

impl Review for Terminal<'_> {
    fn show_plan(&mut self, plan: &Plan) -> Result<()> {
        output::to_stdout(|out| text::write_plan(out, plan, self.plan, self.ctx.style()))
    }

    fn show_requests(&mut self, plan: &Plan) -> Result<()> {
        output::to_stdout(|out| text::write_requests_of(out, plan, self.family))
    }

    fn note(&mut self, message: &str) {
        self.ctx.note(message);
    }

    /// Asks on the terminal (`ops::apply` has already refused a non-terminal stdin).
    fn confirm(&mut self) -> Result<()> {
        ask(
            "Do you want to apply these changes? Only 'yes' will be accepted: ",
            "apply cancelled: nothing was sent",
        )
    }
}

/// Asks `question` on the terminal; anything but `yes` is the error `cancelled`.
pub fn ask(question: &str, cancelled: &str) -> Result<()> {
    let mut err = crate::redact::Writer::new(std::io::stderr());
    let _ = write!(err, "\n{question}");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io("cannot read the answer", e))?;
    if answer.trim() != "yes" {
        return Err(Error::msg(cancelled.to_owned()));
    }
    Ok(())
}

/// Prints the final line of an apply or a fix and what to do next, puts the result in the
/// step summary; the exit code.
pub fn conclude(ctx: &Context, operation: Operation, executed: Executed) -> Result<Exit> {
    let label = match operation {
        Operation::Apply => "Apply",
        Operation::DriftFix => "Fix",
    };
    let again = match operation {
        Operation::Apply => "timattr apply",
        Operation::DriftFix => "timattr drift --fix",
    };
    ctx.note(report::apply_line(
        label,
        &executed.totals,
        ctx.global.verbose > 0,
    ));
    if executed.tags_added + executed.tags_removed > 0 {
        ctx.note(format!(
            "Tags: {} added, {} removed.",
            executed.tags_added, executed.tags_removed
        ));
    }
    let stopped_by = match (&executed.error, executed.interrupted) {
        (Some(e), _) => Some(super::error_text(e)),
        (None, Some(signal)) => Some(
            match signal {
                crate::apply::Signal::Interrupt => "interrupted (Ctrl-C)",
                crate::apply::Signal::Terminate => "terminated (SIGTERM)",
                crate::apply::Signal::Hangup => "hung up (SIGHUP)",
            }
            .to_owned(),
        ),
        (None, None) => None,
    };
    // Accounts whose tags the API refused are named whatever else happened (also in the
    // step summary, when nothing else stopped the run).
    let refused = (!executed.refused.is_empty())
        .then(|| crate::ops::execute::refused_error(&executed.refused, again));
    let stopped_by = stopped_by.or_else(|| refused.as_ref().map(super::error_text));
    let outcome = report::Outcome {
        label,
        totals: &executed.totals,
        batches_ok: executed.batches_ok,
        batches_failed: executed.batches_failed,
        batches_not_sent: executed.batches_not_sent,
        batches_unrecorded: executed.unrecorded_batches,
        serial: executed.serial,
        stopped_by,
    };
    output::append_step_summary(&report::outcome_markdown(&outcome));
    if let Some(e) = executed.error {
        if let Some(r) = refused {
            crate::redact::eprintln(&super::error_text(&r));
        }
        ctx.note(format!(
            "Stopped: {}. {}; run `{again}` again once the cause is fixed.",
            report::batches_line(&outcome),
            report::recorded_note(&outcome)
        ));
        return Err(e);
    }
    if let Some(signal) = executed.interrupted {
        ctx.note(format!(
            "Interrupted: the requests in flight were finished and recorded; {}. Run `{again}` again to continue.",
            report::batches_line(&outcome)
        ));
        if let Some(r) = refused {
            crate::redact::eprintln(&super::error_text(&r));
        }
        return Ok(Exit::Stopped(signal));
    }
    match refused {
        Some(r) => Err(r),
        None => Ok(Exit::Ok),
    }
}
