//! `timattr state list | show | export | restore | history | rm`: the project file is enough,
//! the users files are never read.

use std::io::{IsTerminal, Write};

use super::{Context, Exit};
use crate::cli::{ListFormat, StateCommand};
use crate::ops::state;
use crate::render::{escape, output, report};
use crate::{Error, Result};

pub fn state(ctx: &Context, cmd: &StateCommand) -> Result<Exit> {
    let settings = ctx.settings()?;
    match cmd {
        StateCommand::List { format } => list(&settings, *format)?,
        StateCommand::Show { account, format } => {
            let shown = state::show(&settings, account)?;
            output::to_stdout(|out| match format {
                ListFormat::Text => report::write_account_text(out, &shown),
                ListFormat::Json => report::write_account(out, &shown),
            })?;
        }
        StateCommand::Export { out } => {
            // Gzip on a terminal is noise that can upset it; a pipe or a file is what was meant.
            if out.is_none() && std::io::stdout().is_terminal() {
                return Err(Error::msg(
                    "refusing to write a gzip backup to the terminal: use `timattr state export --out FILE`, or pipe it (`timattr state export > backup.jsonl.gz`)",
                ));
            }
            let mut stdout = output::binary_stdout();
            let exported = state::export(&settings, out.as_deref(), &mut stdout)?;
            output::written(stdout.flush())?;
            ctx.note(format!(
                "Exported {} (lineage {}, serial {}).",
                crate::render::count(exported.accounts as usize, "account", "accounts"),
                escape(&exported.lineage),
                exported.serial
            ));
        }
        StateCommand::Restore { file, force } => {
            let header = state::restore(&settings, file, *force)?;
            ctx.note(format!(
                "Restored {} (lineage {}, serial {}).",
                crate::render::count(header.accounts as usize, "account", "accounts"),
                escape(&header.lineage),
                header.serial
            ));
        }
        StateCommand::History { format } => {
            let entries = state::history(&settings)?;
            output::to_stdout(|out| match format {
                ListFormat::Text => report::write_history(out, &entries),
                ListFormat::Json => report::write_history_json(out, &entries),
            })?;
        }
        StateCommand::Rm { accounts } => {
            let (serial, forgot) = state::rm(&settings, accounts)?;
            // The count is what the history records: an account named twice is one account.
            let repeated = match accounts.len() - forgot {
                0 => String::new(),
                n => format!(
                    " ({} repeated, counted once)",
                    crate::render::count(n, "name", "names")
                ),
            };
            ctx.note(format!(
                "Forgot {}{repeated} (serial {serial}): no longer managed; their live values were not touched.",
                crate::render::count(forgot, "account", "accounts"),
            ));
        }
    }
    Ok(Exit::Ok)
}

/// One account per line (escaped), or a JSON array of account ids, streamed.
fn list(settings: &crate::settings::Settings, format: ListFormat) -> Result<()> {
    let mut out = output::stdout();
    match format {
        ListFormat::Text => state::list(settings, |account| writeln!(out, "{}", escape(account)))?,
        ListFormat::Json => {
            let mut first = true;
            state::list(settings, |account| {
                // One compact document, like every `--format json`.
                out.write_all(if first { b"[" } else { b"," })?;
                first = false;
                crate::render::json::to_safe_writer(&mut out, &account, false)
            })?;
            output::written(out.write_all(if first { b"[]\n" } else { b"]\n" }))?;
        }
    }
    output::written(out.flush())
}
