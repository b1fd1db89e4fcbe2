//! `timattr doctor` (DESIGN.md §10): a read-only pre-flight of everything an apply needs, as
//! a list of checks in the order an operator fixes them — files, secret, endpoint, the API's
//! answer, attribute slots, clock, state, CI context. Each check passes, fails (with the
//! fix), is skipped because a check it needs failed, or is information.
//!
//! Read-only by construction: the only request is `im_get_attr_name` (`get_attr_name` in the
//! timpush family); the state is opened as
//! a reader and its writability is asked of the system (`access(2)`, `has_table_privilege`),
//! never tried; an embedded emulator loads its data without writing it. `--record DIR` saves
//! each answer as received ([`record`]).
//!
//! A new check is one more function pushing onto the [`Report`] (and a name in [`name`]).

mod network;
mod record;
mod state;

use std::path::PathBuf;

use serde::Serialize;

use crate::settings::{Endpoint, Settings};
use crate::Result;

pub use record::Recorder;

/// The checks' names (the JSON `name`), in the order they run.
pub mod name {
    pub const PROJECT: &str = "project";
    pub const USERS: &str = "users";
    pub const SECRET: &str = "secret";
    pub const ENDPOINT: &str = "endpoint";
    pub const TLS: &str = "tls";
    pub const API: &str = "api";
    pub const FAMILY: &str = "family";
    pub const ATTRIBUTE_NAMES: &str = "attribute_names";
    pub const OTHER_SLOTS: &str = "other_slots";
    pub const CLOCK: &str = "clock";
    pub const STATE: &str = "state";
    pub const STATE_WRITE: &str = "state_write";
    pub const CI: &str = "ci";

    /// Every check after the project file, which all need it.
    pub const AFTER_PROJECT: [&str; 12] = [
        USERS,
        SECRET,
        ENDPOINT,
        TLS,
        API,
        FAMILY,
        ATTRIBUTE_NAMES,
        OTHER_SLOTS,
        CLOCK,
        STATE,
        STATE_WRITE,
        CI,
    ];

    /// How the text view names a check.
    pub fn title(name: &str) -> &'static str {
        match name {
            PROJECT => "project file",
            USERS => "users files",
            SECRET => "secret",
            ENDPOINT => "endpoint",
            TLS => "TLS",
            API => "API and UserSig",
            FAMILY => "API family",
            ATTRIBUTE_NAMES => "attribute names",
            OTHER_SLOTS => "other systems' slots",
            CLOCK => "clock",
            STATE => "state",
            STATE_WRITE => "state recording",
            CI => "CI context",
            _ => "check",
        }
    }
}

/// What doctor checks and where it saves answers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The project file.
    pub config: PathBuf,
    /// `--record DIR`: save every answer received there.
    pub record: Option<PathBuf>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not run: a check it needs failed.
    Skip,
    /// Information, neither good nor bad (other systems' slots, the CI context).
    Info,
}

/// One check: what was found and, when it failed, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub finding: String,
    /// Empty unless the check failed.
    pub fix: String,
}

/// Every check, in the order run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether no check failed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    fn push(&mut self, name: &'static str, status: Status, finding: String, fix: String) {
        self.checks.push(Check {
            name,
            status,
            finding,
            fix,
        });
    }

    fn pass(&mut self, name: &'static str, finding: impl Into<String>) {
        self.push(name, Status::Pass, finding.into(), String::new());
    }

    fn fail(&mut self, name: &'static str, finding: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Fail, finding.into(), fix.into());
    }

    fn info(&mut self, name: &'static str, finding: impl Into<String>) {
        self.push(name, Status::Info, finding.into(), String::new());
    }

    /// `name` did not run: it needs `needs` (the names of the checks that failed, in words).
    fn skip(&mut self, name: &'static str, needs: &str) {
        self.push(
            name,
            Status::Skip,
            format!("skipped: needs {needs}"),
            String::new(),
        );
    }

    /// Whether `name` ran and passed.
    fn passed(&self, name: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c.name == name && c.status == Status::Pass)
    }
}

/// Runs every check. Errors only when `--record DIR` cannot be made; every other problem
/// is a failed check.
pub fn run(opts: &Options) -> Result<Report> {
    let recorder = opts.record.as_deref().map(Recorder::create).transpose()?;
    let mut r = Report::default();
    let settings = match crate::desired::load_project(&opts.config) {
        Ok(s) => s,
        Err(d) => {
            r.fail(
                name::PROJECT,
                d.to_string(),
                "correct the project file where the errors point (`timattr validate` shows the same)",
            );
            for n in name::AFTER_PROJECT {
                r.skip(n, "a project file that loads (project)");
            }
            return Ok(r);
        }
    };
    project(&mut r, &settings);
    users(&mut r, &settings);
    secret(&mut r, &settings);
    let runtime = super::connect::runtime()?;
    runtime.block_on(network::checks(&mut r, &settings, recorder.clone()));
    state::checks(&mut r, &settings);
    ci(&mut r, &settings);
    if let Some(recorder) = recorder {
        recorder.finish()?;
    }
    Ok(r)
}

fn project(r: &mut Report, s: &Settings) {
    let endpoint = match &s.endpoint {
        Endpoint::Embedded => "embedded (the built-in emulator)".to_owned(),
        Endpoint::Url { base, .. } => base.clone(),
    };
    r.pass(
        name::PROJECT,
        format!(
            "{} loads: sdkappid {}, admin {}, endpoint {endpoint}, {} attribute names, {}",
            s.project_file.display(),
            s.sdkappid,
            s.admin,
            s.attributes.len(),
            s.state.describe()
        ),
    );
}

fn users(r: &mut Report, s: &Settings) {
    match crate::desired::load_users(s) {
        Ok(desired) => {
            let values: usize = desired.accounts.iter().map(|(_, a)| a.attrs.len()).sum();
            let tags: usize = desired.accounts.iter().map(|(_, a)| a.tags.len()).sum();
            r.pass(
                name::USERS,
                format!(
                    "{} users, {values} attribute values, {tags} tags (as `timattr validate`)",
                    desired.accounts.len()
                ),
            );
        }
        Err(d) => r.fail(
            name::USERS,
            d.to_string(),
            "correct the users files where the errors point (`timattr validate` shows the same)",
        ),
    }
}

fn secret(r: &mut Report, s: &Settings) {
    if s.endpoint == Endpoint::Embedded {
        r.pass(
            name::SECRET,
            "not needed: `endpoint: embedded` signs with the built-in emulator's demo key",
        );
        return;
    }
    let var = &s.secret_env;
    match super::connect::secret_from_env(var) {
        // A key pasted with a newline or a space fails as a wrong key (70009); say why.
        Ok(key) if key.expose().trim() != key.expose() => r.fail(
            name::SECRET,
            format!("{var} is set, but its value starts or ends with whitespace (the value is never shown)"),
            format!("export {var} again without the surrounding spaces or newline, e.g. export {var}=\"$(printf %s \"$KEY\")\""),
        ),
        Ok(_) => r.pass(
            name::SECRET,
            format!("{var} is set (its value is never shown)"),
        ),
        Err(e) => r.fail(
            name::SECRET,
            e.to_string(),
            format!(
                "export {var} with the SecretKey of app {} (Chat console → Application configuration → Basic configuration)",
                s.sdkappid
            ),
        ),
    }
}

fn ci(r: &mut Report, s: &Settings) {
    let p = crate::provenance::current(&s.project_dir);
    let or_none = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_owned());
    let finding = match p.ci {
        Some(ci) => format!(
            "{ci}: history would record actor {}, commit {}, run {}",
            or_none(&p.actor, "(unknown)"),
            or_none(&p.commit, "(unknown)"),
            or_none(&p.run_url, "(unknown)")
        ),
        None => format!(
            "not in CI (neither GitHub Actions nor GitLab CI): history would record actor {} (the OS user), commit {}",
            or_none(&p.actor, "(unknown)"),
            match &p.commit {
                Some(c) => format!("{c} (the project's git HEAD)"),
                None => "none (the project is not in a git checkout)".to_owned(),
            }
        ),
    };
    r.info(name::CI, finding);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_fails_only_with_a_failed_check() {
        let mut r = Report::default();
        r.pass(name::PROJECT, "ok");
        r.info(name::CI, "laptop");
        r.skip(name::API, "the secret (secret)");
        assert!(r.ok());
        assert!(r.passed(name::PROJECT) && !r.passed(name::API));
        assert_eq!(r.checks[2].finding, "skipped: needs the secret (secret)");
        r.fail(name::CLOCK, "off", "set it");
        assert!(!r.ok());
        assert_eq!(r.failed().map(|c| c.name).collect::<Vec<_>>(), ["clock"]);
        assert_eq!(
            serde_json::to_string(&r.checks[3]).unwrap(),
            r#"{"name":"clock","status":"fail","finding":"off","fix":"set it"}"#
        );
    }
}
