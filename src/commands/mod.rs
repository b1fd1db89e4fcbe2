//! One thin orchestrator per subcommand: the only place that wires layers together
//! (settings → desired → store → plan → render | apply → store).

mod apply;
mod common;
mod drift;
mod plan;
mod state;
mod tools;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cli::{Cli, ColorChoice, Command, Global};
use crate::render::Style;
use crate::{Error, Result};

pub use common::Context;

/// Exit codes (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success, or nothing to do.
    Ok,
    /// Changes or drift present (`plan --detailed-exitcode`, `drift`).
    Changes,
    /// Stopped by Ctrl-C after the requests in flight were finished and recorded.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Changes => 2,
            Exit::Interrupted => 130,
        }
    }
}

/// Runs the command line and prints any error on stderr.
pub fn main(cli: Cli) -> ExitCode {
    init_logging(&cli.global);
    match run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("{}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

fn error_text(e: &Error) -> String {
    match e {
        // Diagnostics already say "file:line:col: error: ...".
        Error::Invalid(d) => d.to_string(),
        other => format!("error: {other}"),
    }
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<Exit> {
    let ctx = Context::new(cli.global.clone());
    match cli.command {
        Command::Validate => plan::validate(&ctx),
        Command::Plan(args) => plan::plan(&ctx, &args),
        Command::Apply(args) => apply::apply(&ctx, &args),
        Command::Drift(args) => drift::drift(&ctx, &args),
        Command::Import => drift::import(&ctx),
        Command::State(cmd) => state::state(&ctx, &cmd),
        Command::Usersig(args) => tools::usersig(&ctx, &args),
        Command::Emulator(args) => tools::emulator(&ctx, &args),
        Command::Schema(args) => tools::schema(&args),
        Command::Completions(args) => tools::completions(&args),
    }
}

fn init_logging(global: &Global) {
    use tracing_subscriber::EnvFilter;
    let level = if global.quiet {
        "error"
    } else {
        match global.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("timattr={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_enabled(global.color, std::io::stderr().is_terminal()))
        .with_target(false)
        .try_init();
}

/// Colours only on terminals, never with `NO_COLOR` or `--color never`.
pub fn color_enabled(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// The style of stdout.
pub fn stdout_style(global: &Global) -> Style {
    Style {
        color: color_enabled(global.color, std::io::stdout().is_terminal()),
    }
}
