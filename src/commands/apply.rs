//! `timattr apply [PLANFILE]`: the review happens on this terminal; the rest is
//! [`crate::ops::apply`].

use std::io::{BufRead, IsTerminal, Write};

use super::{Context, Exit};
use crate::cli::ApplyArgs;
use crate::ops::apply::{Applied, ApplyOptions, Review};
use crate::ops::execute::{Executed, Operation};
use crate::plan::Plan;
use crate::render::{output, report, text};
use crate::{Error, Result};

pub fn apply(ctx: &Context, args: &ApplyArgs) -> Result<Exit> {
    let settings = ctx.settings()?;
    let opts = ApplyOptions {
        planfile: args.planfile.clone(),
        auto_approve: args.auto_approve,
        dry_run: args.dry_run,
        allow_mass_removal: args.allow_mass_removal,
        interactive: std::io::stdin().is_terminal(),
        quiet: ctx.global.quiet,
    };
    let mut review = Terminal {
        ctx,
        rate: settings.apply.rate_limit,
    };
    match crate::ops::apply::apply(&settings, &opts, &mut review)? {
        Applied::DryRun | Applied::NothingToDo => Ok(Exit::Ok),
        Applied::Executed(executed) => conclude(ctx, Operation::Apply, executed),
    }
}

/// The plan on stdout, notes on stderr, the question on the terminal.
struct Terminal<'a> {
    ctx: &'a Context,
    rate: u32,
}

impl Review for Terminal<'_> {
    fn show_plan(&mut self, plan: &Plan) -> Result<()> {
        output::to_stdout(|out| text::write_plan(out, plan, self.rate, self.ctx.style()))
    }

    fn show_requests(&mut self, plan: &Plan) -> Result<()> {
        output::to_stdout(|out| text::write_requests(out, plan))
    }

    fn note(&mut self, message: &str) {
        self.ctx.note(message);
    }

    /// Asks on the terminal (`ops::apply` has already refused a non-terminal stdin).
    fn confirm(&mut self) -> Result<()> {
        eprint!("\nDo you want to apply these changes? Only 'yes' will be accepted: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Error::io("cannot read the answer", e))?;
        if answer.trim() != "yes" {
            return Err(Error::msg("apply cancelled: nothing was sent"));
        }
        Ok(())
    }
}

/// Prints the final line of an apply or a fix and what to do next; the exit code.
pub fn conclude(ctx: &Context, operation: Operation, executed: Executed) -> Result<Exit> {
    let label = match operation {
        Operation::Apply => "Apply",
        Operation::DriftFix => "Fix",
    };
    ctx.note(report::apply_line(label, &executed.totals));
    if let Some(e) = executed.error {
        if matches!(e, Error::Api(_)) {
            ctx.note(format!(
                "Stopped: {} batches not sent. Everything the API confirmed is recorded; run `timattr apply` again once the cause is fixed.",
                executed.batches_not_sent
            ));
        }
        return Err(e);
    }
    if let Some(signal) = executed.interrupted {
        ctx.note(format!(
            "Interrupted: the requests in flight were finished and recorded; {} batches not sent. Run `timattr apply` again to continue.",
            executed.batches_not_sent
        ));
        return Ok(Exit::Stopped(signal));
    }
    Ok(Exit::Ok)
}
