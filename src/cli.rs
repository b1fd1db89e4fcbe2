//! The command line: clap definitions only. Doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::render::Format;

/// Manage the user attributes of a Tencent Cloud Chat app as code.
///
/// Keep the desired attributes in YAML, review `timattr plan`, then `timattr apply`.
#[derive(Debug, Parser)]
#[command(
    name = "timattr",
    version,
    long_version = LONG_VERSION,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// `--version` (and `timattr version`): the version, then what it was built from.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("BUILD_GIT_COMMIT"),
    "\ntarget: ",
    env!("BUILD_TARGET"),
    "\nprofile: ",
    env!("BUILD_PROFILE")
);

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The project file.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        default_value = "timattr.yaml"
    )]
    pub config: PathBuf,
    /// More logging on stderr (-v info, -vv debug, -vvv trace). RUST_LOG is honoured too.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When to use colours (auto honours NO_COLOR, CLICOLOR_FORCE and TERM=dumb).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Wait up to DURATION (e.g. 30s, 5m) for another timattr process's lock on the state
    /// instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, global = true)]
    pub lock_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl From<ColorChoice> for anstream::ColorChoice {
    fn from(c: ColorChoice) -> anstream::ColorChoice {
        match c {
            ColorChoice::Auto => anstream::ColorChoice::Auto,
            ColorChoice::Always => anstream::ColorChoice::Always,
            ColorChoice::Never => anstream::ColorChoice::Never,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the project and users files. No network, no state writes.
    ///
    /// Example: timattr validate -c timattr.yaml
    /// GitLab: timattr validate --format codeclimate > gl-code-quality-report.json
    Validate(ValidateArgs),
    /// Show what apply would change: desired files against the last-applied state.
    ///
    /// Needs no network and no secret. Example: timattr plan --format markdown --out plan.gz
    Plan(PlanArgs),
    /// Apply the changes: attribute names, then set batches, then remove batches.
    ///
    /// Example: timattr apply --auto-approve
    Apply(ApplyArgs),
    /// Compare the live attributes of every managed user with the last-applied state.
    ///
    /// Managed tags missing live are reported too. Exits 2 when something drifted. Example: timattr drift --fix
    Drift(DriftArgs),
    /// Adopt an existing app: record the live values of the desired users as last-applied.
    ///
    /// Tags: the live tags the files also want are recorded. Over an existing state it shows
    /// what it would adopt and asks first (like apply).
    /// Example: timattr import --auto-approve
    Import(ImportArgs),
    /// Inspect, back up and restore the state store.
    ///
    /// Example: timattr state export --out backup.jsonl.gz
    #[command(subcommand)]
    State(StateCommand),
    /// Print a saved plan (from `plan --out`) as `plan` would have.
    ///
    /// Example: timattr show plan.gz --format markdown
    Show(ShowArgs),
    /// Check, read-only, everything an apply needs: files, secret, endpoint, API, slots,
    /// clock, state.
    ///
    /// Sends only im_get_attr_name and writes nothing to the state. Exits 0 when every check
    /// passes. Example: timattr doctor --format json --record answers/
    Doctor(DoctorArgs),
    /// Print a UserSig made from the secret (for debugging with curl).
    ///
    /// Example: TIM_SECRET_KEY=... timattr usersig --identifier administrator
    Usersig(UsersigArgs),
    /// Run the local emulator of the API family until stopped.
    ///
    /// Example: TIM_SECRET_KEY=devkey timattr emulator --listen 127.0.0.1:8080 --sdkappid 1400000000
    Emulator(EmulatorArgs),
    /// Print the JSON Schema of the project file, a users file or a JSON output.
    ///
    /// Example: timattr schema users > users.schema.json
    Schema(SchemaArgs),
    /// Print shell completions.
    ///
    /// Example: timattr completions bash > /etc/bash_completion.d/timattr
    Completions(CompletionsArgs),
    /// Print the version and what it was built from (git commit, target, build profile).
    Version,
    /// Print the manual page (roff), generated from this command line's definition.
    ///
    /// Example: timattr man > timattr.1
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ValidateArgs {
    /// Output format: `codeclimate` writes the errors as a GitLab Code Quality report
    /// (JSON, `[]` when the files are valid) on stdout.
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub format: ValidateFormat,
}

/// `validate --format text|codeclimate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ValidateFormat {
    #[default]
    Text,
    Codeclimate,
}

/// `--format text|json|markdown` (mapped onto [`crate::render::Format`], which knows no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FormatArg {
    #[default]
    Text,
    Json,
    Markdown,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
            FormatArg::Markdown => Format::Markdown,
        }
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct PlanArgs {
    /// Also save the plan (gzip JSON with the state's lineage and serial) for `apply FILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan only the accounts matching this glob (repeatable); the plan says it is partial.
    #[arg(long = "target", value_name = "PATTERN")]
    pub targets: Vec<String>,
}

/// `--concurrency N`: requests in flight, overriding the project file's `apply.concurrency`.
fn concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err("expected a whole number from 1 to 1000000".into()),
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`: applied exactly, without asking again.
    pub planfile: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Print the plan and the requests it would send; send and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow removing values from more than `max_removal_percent` of the managed users.
    #[arg(long)]
    pub allow_mass_removal: bool,
    /// Apply only the accounts matching this glob (repeatable). A saved plan holds its own.
    #[arg(long = "target", value_name = "PATTERN", conflicts_with = "planfile")]
    pub targets: Vec<String>,
    /// Requests in flight (overrides `apply.concurrency` of the project file).
    #[arg(long, value_name = "N", value_parser = concurrency)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct DriftArgs {
    /// Re-apply the last-applied values of what drifted (asks first, like apply).
    #[arg(long)]
    pub fix: bool,
    /// With --fix: do not ask for confirmation.
    #[arg(long, requires = "fix")]
    pub auto_approve: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Requests in flight (overrides `apply.concurrency` of the project file).
    #[arg(long, value_name = "N", value_parser = concurrency)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ImportArgs {
    /// Over an existing state: do not ask before adopting.
    #[arg(long)]
    pub auto_approve: bool,
    /// Requests in flight (overrides `apply.concurrency` of the project file).
    #[arg(long, value_name = "N", value_parser = concurrency)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// A plan saved with `plan --out`.
    pub planfile: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
}

/// `--format text|json` of the `state` listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ListFormat {
    /// For people: lines and aligned columns.
    #[default]
    Text,
    /// For scripts: one JSON document (its JSON Schema: `timattr schema`).
    Json,
}

#[derive(Debug, Subcommand, Clone)]
pub enum StateCommand {
    /// List the managed accounts.
    ///
    /// Example: timattr state list --format json
    List {
        /// Output format: one account id per line, or a JSON array of them (`timattr schema
        /// state-list`).
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Show one account's last-applied attributes.
    ///
    /// Example: timattr state show xiaojun012
    Show {
        /// The account id, as in the users files.
        account: String,
        /// Output format (JSON, an export line, unless asked otherwise: scripts read it;
        /// `timattr schema state-show`).
        #[arg(long, value_enum, default_value_t = ListFormat::Json)]
        format: ListFormat,
    },
    /// Write a backup: gzip-compressed JSON lines.
    ///
    /// Example: timattr state export --out backup.jsonl.gz
    Export {
        /// File to write (default: stdout); it holds every managed account's values, so keep
        /// it as private as the state.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Replace the store's content with a backup.
    ///
    /// Refuses another lineage or an older serial unless --force.
    /// Example: timattr state restore backup.jsonl.gz
    Restore {
        /// A backup written by `timattr state export`.
        file: PathBuf,
        /// Accept another lineage or an older serial.
        #[arg(long)]
        force: bool,
    },
    /// Show one line per apply, import, fix or restore.
    ///
    /// Each entry: when, the state's serial after it, the operation, its status (complete,
    /// partial, failed or interrupted), the accounts set and removed, names configured,
    /// requests and retries, and who ran it (actor, host, git commit, CI run).
    ///
    /// Example: timattr state history --format json
    History {
        /// Output format: a table, or a JSON array with every field of every entry (`timattr
        /// schema history`).
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Forget accounts: they become unmanaged. Their live values stay; nothing is sent.
    ///
    /// Example: timattr state rm xiaojun012 xiaojun013
    Rm {
        /// The account ids to forget (one or more; a repeated one counts once).
        #[arg(required = true, value_name = "ACCOUNT")]
        accounts: Vec<String>,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
    /// Save every answer received into DIR, one file per answer (never the requests).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct UsersigArgs {
    /// Identifier to sign for (default: the project's admin).
    #[arg(long)]
    pub identifier: Option<String>,
    /// SDKAppID to sign for (default: the project's); with it and --identifier no project
    /// file is needed, and the key comes from TIM_SECRET_KEY.
    #[arg(long)]
    pub sdkappid: Option<u32>,
    /// Validity in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub expire: u64,
}

#[derive(Debug, Args, Clone)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The app's SDKAppID.
    #[arg(long, default_value_t = 1_400_000_000)]
    pub sdkappid: u32,
    /// The app admin account.
    #[arg(long, default_value = "administrator")]
    pub admin: String,
    /// Delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered with an injected fault (91000, 60007 or HTTP 502), 0..=1.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// JSON file the data is kept in.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Environment variable holding the key.
    #[arg(long, default_value = "TIM_SECRET_KEY")]
    pub secret_env: String,
    /// An attribute slot configured at start, with its account type (timpush `AttrTypes`),
    /// e.g. `--slot 2=device_city:registration_id` (repeatable; type default user_id).
    #[arg(long = "slot", value_name = "SLOT=NAME[:TYPE]", value_parser = crate::emulator::Setup::parse_slot)]
    pub slots: Vec<(u8, (String, u8))>,
    /// An account that is a RegistrationID (repeatable; every other account is a UserID).
    #[arg(long = "registration-id", value_name = "ID")]
    pub registration_ids: Vec<String>,
    /// An account that does not exist: the timpush family answers 70107 for it (repeatable).
    #[arg(long = "missing-account", value_name = "ID")]
    pub missing_accounts: Vec<String>,
    /// Simulate a misconfigured app (to try `timattr doctor`): a comma-separated list of
    /// wrong-key, wrong-sdkappid, full-slots, clock-skew=DURATION (e.g. clock-skew=10m).
    /// The data file is then read but never written.
    #[arg(long, value_name = "LIST", value_parser = |s: &str| s.parse::<crate::emulator::Simulate>())]
    pub simulate: Option<crate::emulator::Simulate>,
    #[command(flatten)]
    pub unused: NoProject,
}

#[derive(Debug, Args, Clone)]
pub struct SchemaArgs {
    #[arg(value_enum, default_value_t = SchemaKind::Project)]
    pub kind: SchemaKind,
    #[command(flatten)]
    pub unused: NoProject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// The project file (timattr.yaml).
    Project,
    /// A users file.
    Users,
    /// `plan --format json` and `show PLANFILE --format json`.
    Plan,
    /// `drift --format json`.
    Drift,
    /// `state list --format json`.
    StateList,
    /// `state show ACCOUNT --format json`.
    StateShow,
    /// `state history --format json`.
    History,
    /// `doctor --format json`.
    Doctor,
    /// `validate --format codeclimate` (a GitLab Code Quality report).
    Codeclimate,
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
    #[command(flatten)]
    pub unused: NoProject,
}

/// For the commands that read no project file and no state (`completions`, `schema`,
/// `emulator`): the global `-c` and `--lock-timeout` are still accepted but hidden from their
/// help, which lists only what they use. (Same ids as the globals, so clap does not add those.)
#[derive(Debug, Args, Clone, Default)]
pub struct NoProject {
    #[arg(
        short = 'c',
        long = "config",
        hide = true,
        default_value = "timattr.yaml"
    )]
    config: PathBuf,
    #[arg(long, hide = true, value_parser = humantime::parse_duration)]
    lock_timeout: Option<std::time::Duration>,
}
