//! One thin handler per subcommand: parse the arguments into an operation's options, call one
//! operation of [`crate::ops`], render what it returns, and map the outcome to an exit code.

mod apply;
mod doctor;
mod drift;
mod emulator;
mod import;
mod plan;
mod schema;
mod show;
mod state;
mod usersig;

use std::process::ExitCode;

use crate::apply::Signal;
use crate::cli::{Cli, ColorChoice, Command, Global};
use crate::model::Desired;
use crate::render::{PlanContext, Style};
use crate::settings::Settings;
use crate::{Error, Result};

/// Exit codes (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success, or nothing to do.
    Ok,
    /// Changes or drift present (`plan --detailed-exitcode`, `drift`).
    Changes,
    /// A check failed and the output already says which (`doctor`): exit 1 without an
    /// error message of its own.
    Failed,
    /// Stopped by a signal after the requests in flight were finished and recorded.
    Stopped(Signal),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Changes => 2,
            Exit::Failed => 1,
            // 128 + the signal's number, as shells report it.
            Exit::Stopped(Signal::Interrupt) => 130,
            Exit::Stopped(Signal::Terminate) => 143,
            Exit::Stopped(Signal::Hangup) => 129,
        }
    }
}

/// Runs the command line and prints any error on stderr.
pub fn main(cli: Cli) -> ExitCode {
    crate::redact::register_environment();
    // A panic's message passes the redaction step like every other output.
    std::panic::set_hook(Box::new(|info| {
        crate::redact::eprintln(&crate::render::escape_text(&info.to_string()));
    }));
    init_logging(&cli.global);
    match run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            crate::redact::eprintln(&error_text(&e));
            // On the lines of the pull request's diff, too (DESIGN.md §2).
            if let Error::Invalid(d) = &e {
                if crate::render::ci::in_github_actions() {
                    let annotations = crate::render::ci::github_annotations(d);
                    crate::redact::eprintln(annotations.trim_end_matches('\n'));
                }
            }
            ExitCode::from(1)
        }
    }
}

/// Prints a clap error or `--help`/`--version`. Usage errors exit 1, not clap's 2: exit 2
/// means "changes present" (DESIGN.md §2), and a typo must never read as that.
pub fn usage(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn error_text(e: &Error) -> String {
    let text = match e {
        // Diagnostics already say "file:line:col: error: ...".
        Error::Invalid(d) => d.to_string(),
        other => format!("error: {other}"),
    };
    // Errors quote account ids, file content and server text: none of it may move the cursor
    // (DESIGN.md §8).
    crate::render::escape_text(&text)
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<Exit> {
    let ctx = Context {
        global: cli.global.clone(),
    };
    match cli.command {
        Command::Validate(args) => plan::validate(&ctx, &args),
        Command::Plan(args) => plan::plan(&ctx, &args),
        Command::Apply(args) => apply::apply(&ctx, &args),
        Command::Drift(args) => drift::drift(&ctx, &args),
        Command::Import(args) => import::import(&ctx, &args),
        Command::Show(args) => show::show(&ctx, &args),
        Command::State(cmd) => state::state(&ctx, &cmd),
        Command::Doctor(args) => doctor::doctor(&ctx, &args),
        Command::Usersig(args) => usersig::usersig(&ctx, &args),
        Command::Emulator(args) => emulator::emulator(&ctx, &args),
        Command::Schema(args) => schema::schema(&args),
        Command::Completions(args) => schema::completions(&args),
        Command::Version => schema::version(),
        Command::Man => schema::man(),
    }
}

/// What every command starts from: the global flags.
pub struct Context {
    pub global: Global,
}

impl Context {
    /// The project file alone: commands that do not need the users files stop here.
    pub fn settings(&self) -> Result<Settings> {
        let mut settings = crate::desired::load_project(&self.global.config)?;
        // The project's SecretKey variable, registered before anything could print it.
        if let Some(key) = std::env::var_os(&settings.secret_env) {
            crate::redact::register(&key.to_string_lossy());
        }
        settings.lock_timeout = self.global.lock_timeout;
        Ok(settings)
    }

    /// The project file, with `--concurrency` (when given) over its `apply.concurrency`.
    pub fn settings_with(&self, concurrency: Option<usize>) -> Result<Settings> {
        let mut settings = self.settings()?;
        if let Some(n) = concurrency {
            settings.apply.concurrency = n;
        }
        Ok(settings)
    }

    /// The project file and the validated desired state of its users files.
    pub fn load(&self) -> Result<(Settings, Desired)> {
        let settings = self.settings()?;
        let desired = crate::desired::load_users(&settings)?;
        Ok((settings, desired))
    }

    /// Progress and notes on stderr, unless `--quiet`.
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.global.quiet {
            crate::redact::eprintln(&crate::render::escape_text(&msg.to_string()));
        }
    }

    /// The style of stdout.
    pub fn style(&self) -> Style {
        Style {
            color: color_enabled(self.global.color, &std::io::stdout()),
        }
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
        // sled's own log lines (temp paths, "PLEASE REPORT THIS BUG") are not for users: the
        // store phrases what went wrong; `RUST_LOG=sled=debug` shows them when needed.
        .unwrap_or_else(|| EnvFilter::new(format!("timattr={level},sled=off,warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every log line passes the redaction step, at any verbosity.
        .with_writer(|| crate::redact::Writer::new(std::io::stderr()))
        .with_ansi(color_enabled(global.color, &std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// What the plan views need from the project.
pub fn plan_context(settings: &Settings) -> PlanContext {
    PlanContext {
        rate: settings.apply.rate_limit,
        max_removal_percent: settings.apply.max_removal_percent,
    }
}

/// Whether `stream` gets colours (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`, `TERM=dumb`: see
/// [`crate::render::output::color_on`]).
pub fn color_enabled(choice: ColorChoice, stream: &impl anstream::stream::RawStream) -> bool {
    crate::render::output::color_on(choice.into(), stream)
}
