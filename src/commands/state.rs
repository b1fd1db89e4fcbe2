//! `timattr state list | show | export | restore | history`: the project file is enough, the
//! users files are never read.

use std::io::Write;

use super::{Context, Exit};
use crate::cli::StateCommand;
use crate::ops::state;
use crate::render::{output, report};
use crate::Result;

pub fn state(ctx: &Context, cmd: &StateCommand) -> Result<Exit> {
    let settings = ctx.settings()?;
    match cmd {
        StateCommand::List => {
            let mut out = output::stdout();
            state::list(&settings, |account| writeln!(out, "{account}"))?;
            output::written(out.flush())?;
        }
        StateCommand::Show { account } => {
            let shown = state::show(&settings, account)?;
            output::to_stdout(|out| report::write_account(out, &shown))?;
        }
        StateCommand::Export { out } => {
            let mut stdout = output::stdout();
            let exported = state::export(&settings, out.as_deref(), &mut stdout)?;
            output::written(stdout.flush())?;
            ctx.note(format!(
                "Exported {} accounts (lineage {}, serial {}).",
                exported.accounts, exported.lineage, exported.serial
            ));
        }
        StateCommand::Restore { file, force } => {
            let header = state::restore(&settings, file, *force)?;
            ctx.note(format!(
                "Restored {} accounts (lineage {}, serial {}).",
                header.accounts, header.lineage, header.serial
            ));
        }
        StateCommand::History => {
            let entries = state::history(&settings)?;
            output::to_stdout(|out| report::write_history(out, &entries))?;
        }
    }
    Ok(Exit::Ok)
}
