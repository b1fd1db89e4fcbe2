//! `timattr schema` and `timattr completions`: files for editors and shells.

use std::io::Write;

use super::Exit;
use crate::cli::{CompletionsArgs, SchemaArgs, SchemaKind};
use crate::render::output;
use crate::Result;

pub fn schema(args: &SchemaArgs) -> Result<Exit> {
    let schema = match args.kind {
        SchemaKind::Project => crate::schema::project(),
        SchemaKind::Users => crate::schema::users(),
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
