//! `timattr schema`, `timattr completions`, `timattr man` and `timattr version`: files for
//! editors, shells and `man`, and what the binary was built from.

use std::io::Write;

use super::Exit;
use crate::cli::{CompletionsArgs, SchemaArgs, SchemaKind};
use crate::render::output;
use crate::Result;

pub fn schema(args: &SchemaArgs) -> Result<Exit> {
    let schema = match args.kind {
        SchemaKind::Project => crate::schema::project(),
        SchemaKind::Users => crate::schema::users(),
        kind => crate::schema::output(kind),
    };
    output::to_stdout(|out| {
        serde_json::to_writer_pretty(&mut *out, &schema)?;
        writeln!(out)
    })?;
    Ok(Exit::Ok)
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "timattr", &mut script);
    output::to_stdout(|out| out.write_all(&script))?;
    Ok(Exit::Ok)
}

/// `timattr version`: the same text as `--version`.
pub fn version() -> Result<Exit> {
    output::to_stdout(|out| writeln!(out, "timattr {}", crate::cli::LONG_VERSION))?;
    Ok(Exit::Ok)
}

/// `timattr man`: the manual page (roff) of the command line: its options and commands.
pub fn man() -> Result<Exit> {
    use clap::CommandFactory;
    let mut page = Vec::new();
    // The page is committed and shipped: only the version, not the commit it was built from.
    let cmd = crate::cli::Cli::command().long_version(None);
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| crate::Error::io("cannot render the manual page", e))?;
    output::to_stdout(|out| out.write_all(&page))?;
    Ok(Exit::Ok)
}
