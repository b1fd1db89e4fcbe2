//! Loading and validating the desired state: the project file and the users files.
//!
//! This is the only module that touches the YAML crate. It owns every rule of DESIGN.md §1:
//! the project file becomes one [`Settings`], the users files one [`Desired`]. Every problem
//! is reported as a [`Diagnostic`] at `file:line:column`, and all problems of a run are
//! reported together (at most [`walk::MAX_PROBLEMS_PER_FILE`] per file, then a count).
//!
//! Users files are parsed in parallel, one file per task, each walked once straight into the
//! lean model (`users.rs`); files with problems are walked again to locate them (`walk.rs`).

mod project;
mod users;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Account, Attrs, Desired, Names};
use crate::settings::Settings;
use users::Entry;
use walk::{hard_error, locate_node, located, Walk};

/// Duplicate-account reports across files; beyond this they are only counted.
const MAX_DUPLICATE_REPORTS: usize = 100;

/// Loads and checks the project file.
pub fn load_project(path: &Path) -> Result<Settings, Diagnostics> {
    project::load(path)
}

/// Loads every users file of the project into the desired state: accounts sorted, each once.
pub fn load_users(settings: &Settings) -> Result<Desired, Diagnostics> {
    let names = Names::new(&settings.attributes);
    let mut diags = Vec::new();
    let files = users_files(settings, &mut diags);
    let outcomes = parse_all(&files, &names);

    let total = outcomes.iter().map(|o| o.entries.len()).sum();
    let mut entries: Vec<Entry> = Vec::with_capacity(total);
    let mut per_file: Vec<Vec<Diagnostic>> = Vec::with_capacity(files.len());
    for o in outcomes {
        entries.extend(o.entries);
        per_file.push(o.diags);
    }
    // Files come in order and each file's entries are sorted, so this stable sort merges runs
    // and keeps, among equal accounts, the earlier file first.
    entries.sort_by(|a, b| a.account.cmp(&b.account));
    report_duplicates(&files, &names, &mut entries, &mut per_file);

    for mut file_diags in per_file {
        // Located problems in file order, the "and N more" count (line 0) last.
        file_diags.sort_by_key(|d| (d.line == 0, d.line, d.column));
        diags.extend(file_diags);
    }
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }
    let accounts: Vec<(Account, Attrs)> =
        entries.into_iter().map(|e| (e.account, e.attrs)).collect();
    Ok(Desired { names, accounts })
}

/// The files matched by `pattern`, relative to `project_dir`, sorted.
pub(crate) fn expand(project_dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = if Path::new(pattern).is_absolute() || project_dir == Path::new(".") {
        pattern.to_owned()
    } else {
        // The directory is literal text, not a pattern.
        let dir = glob::Pattern::escape(&project_dir.to_string_lossy());
        format!("{}/{pattern}", dir.trim_end_matches('/'))
    };
    let paths = glob::glob(&full).map_err(|e| format!("invalid users pattern {pattern:?}: {e}"))?;
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Every users file, each once even when several patterns match it.
fn users_files(settings: &Settings, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (i, pattern) in settings.users.iter().enumerate() {
        let problem = match expand(&settings.project_dir, pattern) {
            Ok(found) if !found.is_empty() => {
                files.extend(found);
                continue;
            }
            Ok(_) => format!(
                "users pattern {pattern:?} matches no file (relative to {})",
                settings.project_dir.display()
            ),
            Err(msg) => msg,
        };
        let (line, column) = project::users_pattern_location(&settings.project_file, i);
        diags.push(Diagnostic::new(
            &settings.project_file,
            line,
            column,
            problem,
        ));
    }
    files.sort();
    files.dedup();
    files
}

/// What one users file gave: its entries sorted by account (in-file duplicates removed)
/// and its diagnostics.
#[derive(Default)]
struct FileOutcome {
    entries: Vec<Entry>,
    diags: Vec<Diagnostic>,
}

/// Parses the files in parallel: workers pull file indices from a shared counter.
fn parse_all(files: &[PathBuf], names: &Names) -> Vec<FileOutcome> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<FileOutcome>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let outcome = parse_file(path, u32::try_from(i).unwrap_or(u32::MAX), names);
                if let Ok(mut slots) = slots.lock() {
                    slots[i] = Some(outcome);
                }
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

fn parse_file(path: &Path, file: u32, names: &Names) -> FileOutcome {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return FileOutcome {
                entries: Vec::new(),
                diags: vec![Diagnostic::new(
                    path,
                    0,
                    0,
                    format!("cannot read users file: {e}"),
                )],
            }
        }
    };
    let mut walk = Walk::new(text.len());
    let (mut entries, hard) = match users::walk(&text, names, file, &mut walk) {
        Ok(entries) => (entries, None),
        Err(e) => (Vec::new(), Some(hard_error(path, &e))),
    };
    entries.sort_by(|a, b| a.account.cmp(&b.account));
    if entries.windows(2).any(|w| w[0].account == w[1].account) {
        let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
        for e in entries {
            match kept.last() {
                Some(first) if first.account == e.account => walk.problem(
                    walk::Problem::new(e.key, format!("account {:?} is defined twice", e.account))
                        .first_at(first.key),
                ),
                _ => kept.push(e),
            }
        }
        entries = kept;
    }
    let mut diags = Vec::new();
    if walk.has_problems() || walk.more > 0 {
        let problems = std::mem::take(&mut walk.problems);
        let rewalk = |w: &mut Walk| users::walk(&text, names, file, w).map(|_| ());
        diags = located(path, text.len(), problems, walk.more, &rewalk);
    }
    diags.extend(hard);
    FileOutcome { entries, diags }
}

/// Reports accounts defined in more than one file (naming both places) and keeps the first.
fn report_duplicates(
    files: &[PathBuf],
    names: &Names,
    entries: &mut Vec<Entry>,
    per_file: &mut [Vec<Diagnostic>],
) {
    if !entries.windows(2).any(|w| w[0].account == w[1].account) {
        return;
    }
    let mut pairs: Vec<(u32, u32, u32, u32, Account)> = Vec::new(); // first file/key, dup file/key
    let mut more = 0usize;
    entries.dedup_by(|dup, first| {
        if dup.account != first.account {
            return false;
        }
        if pairs.len() < MAX_DUPLICATE_REPORTS {
            pairs.push((
                first.file,
                first.key,
                dup.file,
                dup.key,
                dup.account.clone(),
            ));
        } else {
            more += 1;
        }
        true
    });
    // Locating re-reads the files: this is the error path only, and bounded by the cap.
    let locate = |file: u32, key: u32| -> Diagnostic {
        let path = files
            .get(file as usize)
            .map_or(Path::new(""), |p| p.as_path());
        let (line, column) = std::fs::read_to_string(path)
            .ok()
            .map(|text| {
                locate_node(text.len(), key, &|w: &mut Walk| {
                    users::walk(&text, names, file, w).map(|_| ())
                })
            })
            .unwrap_or((0, 0));
        Diagnostic::new(path, line, column, "")
    };
    for (ffile, fkey, dfile, dkey, account) in pairs {
        let first = locate(ffile, fkey);
        let mut d = locate(dfile, dkey);
        d.message = format!(
            "account {account:?} is defined twice (first at {})",
            first.location()
        );
        if let Some(v) = per_file.get_mut(dfile as usize) {
            v.push(d);
        }
    }
    if more > 0 {
        if let Some(v) = per_file.last_mut() {
            v.push(Diagnostic::new(
                files.last().map_or(Path::new(""), |p| p.as_path()),
                0,
                0,
                format!("and {more} more accounts defined in more than one file"),
            ));
        }
    }
}
