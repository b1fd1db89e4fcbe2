//! `timattr usersig`, `emulator`, `schema` and `completions`.

use super::common::Context;
use super::Exit;
use crate::cli::{CompletionsArgs, EmulatorArgs, SchemaArgs, UsersigArgs};
use crate::{Error, Result};

pub fn usersig(_ctx: &Context, _args: &UsersigArgs) -> Result<Exit> {
    Err(Error::msg("usersig is not built yet"))
}

pub fn emulator(_ctx: &Context, _args: &EmulatorArgs) -> Result<Exit> {
    Err(Error::msg("emulator is not built yet"))
}

pub fn schema(_args: &SchemaArgs) -> Result<Exit> {
    Err(Error::msg("schema is not built yet"))
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "timattr", &mut std::io::stdout());
    Ok(Exit::Ok)
}
