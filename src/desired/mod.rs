//! Loading and validating the desired state: the project file and the users files.
//!
//! This is the only module that touches the YAML crate. It owns every rule of DESIGN.md §1:
//! the project file becomes one [`Settings`], the users files one [`Desired`]. Every problem
//! is reported as a [`Diagnostic`] at `file:line:column`, and all problems of a run are
//! reported together (at most `walk::MAX_PROBLEMS_PER_FILE` per file, then a count).
//!
//! Users files are parsed in parallel, one file per task, each walked once straight into the
//! lean model (`users.rs`); files with problems are walked again to locate them (`walk.rs`).

mod project;
mod users;
mod walk;

use std::collections::binary_heap::{BinaryHeap, PeekMut};
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

    let mut runs = Vec::with_capacity(outcomes.len());
    let mut per_file: Vec<Vec<Diagnostic>> = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        runs.push(o.entries);
        per_file.push(o.diags);
    }
    let (accounts, duplicates) = merge(runs);
    report_duplicates(&files, &names, duplicates, &mut per_file);

    for mut file_diags in per_file {
        // Located problems in file order, the "and N more" count (line 0) last.
        file_diags.sort_by_key(|d| (d.line == 0, d.line, d.column));
        diags.extend(file_diags);
    }
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }
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
        Err(e) => (Vec::new(), Some(hard_error(path, &text, &e))),
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

/// An account found in two files: where it was first, and where again.
struct Duplicate {
    account: Account,
    first: (u32, u32),
    again: (u32, u32),
}

/// The head of a file's sorted run in [`merge`]: ordered so that the max-heap yields the
/// smallest account first and, among equal accounts, the earlier file first.
struct Head(Entry);

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&other.0.account, other.0.file).cmp(&(&self.0.account, self.0.file))
    }
}

/// Merges the files' sorted runs (indexed by file) into one sorted list, each account once
/// (the earliest file's definition kept), and lists the accounts found again in later files.
///
/// A k-way merge moves each entry once and touches one new account per step, which is much
/// cheaper than sorting the concatenation (a million accounts in a hundred files).
fn merge(runs: Vec<Vec<Entry>>) -> (Vec<(Account, Attrs)>, Vec<Duplicate>) {
    let total = runs.iter().map(Vec::len).sum();
    let mut runs: Vec<std::vec::IntoIter<Entry>> = runs.into_iter().map(Vec::into_iter).collect();
    let mut heap: BinaryHeap<Head> = runs.iter_mut().filter_map(|r| r.next().map(Head)).collect();
    let mut out: Vec<(Account, Attrs)> = Vec::with_capacity(total);
    let mut duplicates = Vec::new();
    // Where the last account pushed to `out` was defined.
    let mut last_at = (0, 0);
    while let Some(mut top) = heap.peek_mut() {
        let next = runs.get_mut(top.0.file as usize).and_then(Iterator::next);
        let entry = match next {
            Some(next) => std::mem::replace(&mut top.0, next),
            None => PeekMut::pop(top).0,
        };
        if out.last().is_some_and(|(a, _)| *a == entry.account) {
            duplicates.push(Duplicate {
                account: entry.account,
                first: last_at,
                again: (entry.file, entry.key),
            });
            continue;
        }
        last_at = (entry.file, entry.key);
        out.push((entry.account, entry.attrs));
    }
    (out, duplicates)
}

/// Reports accounts defined in more than one file, naming both places.
fn report_duplicates(
    files: &[PathBuf],
    names: &Names,
    duplicates: Vec<Duplicate>,
    per_file: &mut [Vec<Diagnostic>],
) {
    let more = duplicates.len().saturating_sub(MAX_DUPLICATE_REPORTS);
    // Locating re-reads the files: this is the error path only, and bounded by the cap.
    let locate = |(file, key): (u32, u32)| -> Diagnostic {
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
    for dup in duplicates.into_iter().take(MAX_DUPLICATE_REPORTS) {
        let first = locate(dup.first);
        let mut d = locate(dup.again);
        d.message = format!(
            "account {:?} is defined twice (first at {})",
            dup.account,
            first.location()
        );
        if let Some(v) = per_file.get_mut(dup.again.0 as usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(account: &str, file: u32, key: u32) -> Entry {
        Entry {
            account: account.into(),
            attrs: Attrs::new(),
            file,
            key,
        }
    }

    #[test]
    fn merge_sorts_and_keeps_the_first_file() {
        let runs = vec![
            vec![entry("a", 0, 1), entry("c", 0, 2)],
            vec![entry("b", 1, 1), entry("c", 1, 5)],
            vec![],
            vec![entry("c", 3, 9), entry("d", 3, 10)],
        ];
        let (out, dups) = merge(runs);
        let accounts: Vec<&str> = out.iter().map(|(a, _)| &**a).collect();
        assert_eq!(accounts, ["a", "b", "c", "d"]);
        let places: Vec<_> = dups.iter().map(|d| (d.first, d.again)).collect();
        assert_eq!(places, [((0, 2), (1, 5)), ((0, 2), (3, 9))]);
    }

    #[test]
    fn expand_treats_the_directory_literally() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("p[1]");
        std::fs::create_dir_all(odd.join("users")).unwrap();
        std::fs::write(odd.join("users/a.yaml"), "").unwrap();
        std::fs::create_dir_all(odd.join("users/sub.yaml")).unwrap();
        let found = expand(&odd, "users/*.yaml").unwrap();
        assert_eq!(found, [odd.join("users/a.yaml")]);
        assert!(expand(&odd, "users/[.yaml").is_err());
    }
}
