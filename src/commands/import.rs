//! `timattr import [--auto-approve]`.

use std::io::IsTerminal;

use super::apply::ask;
use super::{Context, Exit};
use crate::cli::ImportArgs;
use crate::ops::import::{Adoption, ImportOptions};
use crate::plan::Plan;
use crate::render::{count, output, text, Style};
use crate::Result;

pub fn import(ctx: &Context, args: &ImportArgs) -> Result<Exit> {
    let settings = ctx.settings_with(args.concurrency)?;
    let desired = crate::desired::load_users(&settings)?;
    let opts = ImportOptions {
        auto_approve: args.auto_approve,
        interactive: std::io::stdin().is_terminal(),
    };
    let imported = crate::ops::import::import(&settings, desired, opts, &mut Terminal { ctx })?;
    ctx.note(format!(
        "Import {}: read {}, recorded live values of {} as last-applied; {} ({}) in {:.2} s. Run `timattr plan` to see the true differences.",
        if imported.interrupted.is_none() { "complete" } else { "interrupted" },
        count(imported.read, "user", "users"),
        imported.recorded,
        count(imported.requests as usize, "request", "requests"),
        count(imported.retries as usize, "retry", "retries"),
        imported.elapsed.as_secs_f64()
    ));
    if !imported.gone.is_empty() {
        let shown: Vec<String> = imported
            .gone
            .iter()
            .take(20)
            .map(|a| crate::escape::escape(a).into_owned())
            .collect();
        ctx.note(format!(
            "Skipped {} that the app does not have (70107: the account does not exist): {}{}. Nothing was recorded for {}; the next plan still shows {} to apply, so check the ids or remove them from the users files.",
            count(imported.gone.len(), "account", "accounts"),
            shown.join(", "),
            if imported.gone.len() > 20 { ", …" } else { "" },
            if imported.gone.len() == 1 { "it" } else { "them" },
            if imported.gone.len() == 1 { "it" } else { "them" },
        ));
    }
    report_violations(ctx, &imported.policy_violations);
    Ok(match imported.interrupted {
        None => Exit::Ok,
        Some(signal) => Exit::Stopped(signal),
    })
}

/// Live values outside the project's policies, on stderr beside the other notes and in the
/// GitHub step summary; they were recorded as they are.
fn report_violations(ctx: &Context, violations: &[crate::policy::Violation]) {
    if violations.is_empty() {
        return;
    }
    let mut shown = Vec::new();
    if crate::render::policy::write_text(&mut shown, violations, Style::default()).is_ok() {
        ctx.note(String::from_utf8_lossy(&shown).trim_end());
    }
    let mut md = String::from("### timattr import\n");
    crate::render::policy::push_markdown(&mut md, violations);
    output::append_step_summary(&md);
}

struct Terminal<'a> {
    ctx: &'a Context,
}

impl Adoption for Terminal<'_> {
    fn show(&mut self, preview: &Plan) -> Result<()> {
        let style = self.ctx.style();
        output::to_stdout(|out| {
            for change in &preview.changes {
                text::write_change(out, preview, change, style)?;
            }
            Ok(())
        })?;
        let s = preview.summary();
        // Tags are named only when some change: a project without tags reads as before.
        let tags = match (s.tags_added, s.tags_removed) {
            (0, 0) => String::new(),
            (added, 0) => format!(", {} adopted", count(added, "tag", "tags")),
            (added, dropped) => format!(
                ", {} adopted, {} not live dropped",
                count(added, "tag", "tags"),
                count(dropped, "tag", "tags")
            ),
        };
        self.ctx.note(if preview.changes.is_empty() {
            "Nothing to adopt: the state already holds the live values of the desired users.".to_owned()
        } else {
            format!(
                "\nImport would record the live values above as last-applied: {} new to the state, {} with other last-applied values ({}{tags}); nothing is sent to the app.",
                count(s.add, "user", "users"),
                count(s.change, "user", "users"),
                count(s.values, "attribute value", "attribute values"),
            )
        });
        Ok(())
    }

    fn confirm(&mut self) -> Result<()> {
        ask(
            "Do you want to record these values as last-applied? Only 'yes' will be accepted: ",
            "import cancelled: nothing was recorded",
        )
    }
}
