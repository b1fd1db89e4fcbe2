//! Loading and validating the desired state: the project file and the users files.
//!
//! This is the only module that touches the YAML crate (`events.rs` wraps saphyr-parser, a
//! streaming parser with positions). It owns every rule of DESIGN.md §1 and the input side
//! of §8: the project file becomes one [`Settings`], the users files one [`Desired`]. Every
//! problem is reported as a [`Diagnostic`] at the `file:line:column` the parser gave, in
//! one pass, and all problems of a run are reported together (at most
//! `problems::MAX_PROBLEMS_PER_FILE` per file, then a count).
//!
//! Users files are parsed in parallel, one file per task, each walked once straight into the
//! lean model (`users.rs`); a file of several MB is also cut into pieces parsed in parallel
//! (`chunks.rs`), so one big file uses every core too. Text in the plain shape of generated
//! files takes a fast path (`fast.rs`) that gives up, to the general parser, on anything else.

mod chunks;
mod events;
mod fast;
mod problems;
mod project;
mod scalar;
mod users;

use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Account, Desired, Managed, Names};
use crate::policy::Policies;
use crate::settings::Settings;
use events::Pos;
use problems::{hard_diagnostic, Problem, Problems};
use users::{Defaults, Entry};

/// Duplicate-account reports across files; beyond this they are only counted.
const MAX_DUPLICATE_REPORTS: usize = 100;

/// Files larger than this are cut into pieces of about this size and parsed in parallel.
const PIECE_BYTES: usize = 1 << 20;

/// Loads and checks the project file. It does not read the users files.
pub fn load_project(path: &Path) -> Result<Settings, Diagnostics> {
    project::load(path)
}

/// Loads every users file of the project into the desired state: accounts sorted, each once.
pub fn load_users(settings: &Settings) -> Result<Desired, Diagnostics> {
    let names = Names::new(&settings.attributes);
    let mut diags = Vec::new();
    let files = users_files(settings, &mut diags);
    let outcomes = parse_all(&files, &names, &settings.policies);

    let mut runs = Vec::with_capacity(outcomes.len());
    let mut per_file: Vec<Vec<Diagnostic>> = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        runs.extend(o.runs);
        per_file.push(o.diags);
    }
    let (accounts, duplicates) = merge(runs);
    report_duplicates(&files, duplicates, &mut per_file);

    for mut file_diags in per_file {
        // Located problems in file order, the "and N more" count (line 0) last.
        file_diags.sort_by_key(|d| (d.line == 0, d.line, d.column));
        diags.extend(file_diags);
    }
    if settings.api == crate::api::Family::Timpush {
        diags.extend(app_tag_cap(settings, &accounts));
    }
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }
    // The texts and runs are freed but still resident (the allocator's purge delay): given
    // back now, they do not add to the plan's peak.
    crate::alloc::release_freed();
    Ok(Desired { names, accounts })
}

/// The timpush family's app-wide cap of 1,000 distinct tags (timpush-api.md §7), checked on
/// the project's own tags: more could never all be applied, whatever other systems hold.
fn app_tag_cap(settings: &Settings, accounts: &[(Account, Managed)]) -> Option<Diagnostic> {
    let mut distinct: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (_, m) in accounts {
        distinct.extend(m.tags.iter());
    }
    let cap = crate::model::limits::MAX_TAGS_PER_APP;
    (distinct.len() > cap).then(|| {
        Diagnostic::new(
            &settings.project_file,
            0,
            0,
            format!(
                "the users files give {} distinct tags; an app of the timpush family holds at most {cap} (counted over all users)",
                distinct.len()
            ),
        )
        .with_help("merge or drop tags in the users files so that at most 1,000 distinct ones remain")
    })
}

/// Reads an input file, refusing what is not a regular file before opening it: opening a
/// FIFO would block, and a directory or a dangling symlink must be an error that names it,
/// never a silently smaller desired state.
pub(crate) fn read_input(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound && std::fs::symlink_metadata(path).is_ok() => {
            return Err(Error::new(
                ErrorKind::NotFound,
                "it is a symbolic link to a file that does not exist",
            ))
        }
        Err(e) => return Err(e),
    };
    not_regular(&meta)?;
    let mut file = std::fs::File::open(path)?;
    // Checked again on the open file: it may have been replaced in between.
    not_regular(&file.metadata()?)?;
    let mut text = String::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.read_to_string(&mut text)?;
    Ok(text)
}

fn not_regular(meta: &std::fs::Metadata) -> std::io::Result<()> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "it is a directory"
    } else {
        special_kind(t)
    };
    Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, what))
}

#[cfg(unix)]
fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_fifo() {
        "it is a FIFO (named pipe), not a regular file"
    } else if t.is_socket() {
        "it is a socket, not a regular file"
    } else {
        "it is a device, not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: std::fs::FileType) -> &'static str {
    "it is not a regular file"
}

/// The paths matched by `pattern`, relative to `project_dir`, sorted; every match counts,
/// whatever it is (reading it says what is wrong with it). Directories the glob could not
/// read are listed apart.
pub(crate) fn expand(
    project_dir: &Path,
    pattern: &str,
) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let full = if Path::new(pattern).is_absolute() || project_dir == Path::new(".") {
        pattern.to_owned()
    } else {
        // The directory is literal text, not a pattern.
        let dir = glob::Pattern::escape(&project_dir.to_string_lossy());
        format!("{}/{pattern}", dir.trim_end_matches('/'))
    };
    let paths = glob::glob(&full).map_err(|e| format!("invalid users pattern {pattern:?}: {e}"))?;
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for p in paths {
        match p {
            Ok(p) => files.push(p),
            Err(e) => unreadable.push(format!(
                "cannot read {} while matching users pattern {pattern:?}: {}",
                e.path().display(),
                e.error()
            )),
        }
    }
    files.sort();
    Ok((files, unreadable))
}

/// Every users file, each once even when several patterns match it.
fn users_files(settings: &Settings, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (i, pattern) in settings.users.iter().enumerate() {
        let (problem, help) = match expand(&settings.project_dir, pattern) {
            Ok((found, unreadable)) if !found.is_empty() || !unreadable.is_empty() => {
                files.extend(found);
                for u in unreadable {
                    diags.push(pattern_diagnostic(settings, i, u, None));
                }
                continue;
            }
            Ok(_) => (
                format!(
                    "users pattern {pattern:?} matches no file (relative to {})",
                    settings.project_dir.display()
                ),
                near_pattern(&settings.project_dir, pattern),
            ),
            Err(msg) => (msg, None),
        };
        diags.push(pattern_diagnostic(settings, i, problem, help));
    }
    files.sort();
    files.dedup();
    files
}

/// A problem of the `index`-th users pattern, at its place in the project file.
fn pattern_diagnostic(
    settings: &Settings,
    index: usize,
    message: String,
    help: Option<String>,
) -> Diagnostic {
    let found = project::users_pattern_location(&settings.project_file, index);
    let (pos, line) = found.unwrap_or_default();
    let mut d = problems::at(&settings.project_file, pos);
    d.message = message;
    d.help = help;
    problems::attach_source(d, &[(pos.line, line)])
}

/// A pattern close to `pattern` that matches files: the other YAML extension, or a
/// misspelt directory corrected.
fn near_pattern(project_dir: &Path, pattern: &str) -> Option<String> {
    let mut candidates = Vec::new();
    for (from, to) in [(".yml", ".yaml"), (".yaml", ".yml")] {
        if pattern.contains(from) {
            candidates.push(pattern.replace(from, to));
        }
    }
    // The first directory of the pattern that does not exist, against its siblings.
    let mut dir = project_dir.to_path_buf();
    let parts: Vec<&str> = pattern.split('/').collect();
    for (i, part) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
        if part.contains(['*', '?', '[']) || dir.join(part).is_dir() {
            dir.push(part);
            continue;
        }
        let names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        if let Some(near) = crate::suggest::did_you_mean(part, names.iter().map(String::as_str)) {
            let mut fixed = parts.clone();
            fixed[i] = near;
            candidates.push(fixed.join("/"));
        }
        break;
    }
    let (pattern, n) = candidates.into_iter().find_map(|c| {
        let (found, _) = expand(project_dir, &c).ok()?;
        let n = found.len();
        (n > 0).then_some((c, n))
    })?;
    let files = if n == 1 { "file" } else { "files" };
    Some(format!("did you mean {pattern:?}? it matches {n} {files}"))
}

/// What one users file gave: its entries sorted by account (in-file duplicates removed)
/// and its diagnostics.
#[derive(Default)]
struct FileOutcome {
    /// Sorted runs: one per file, or one per piece of a big file.
    runs: Vec<Vec<Entry>>,
    diags: Vec<Diagnostic>,
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses the files in parallel: workers pull file indices from a shared counter. The
/// calling thread is one of them: memory it allocates and frees is reused by the plan that
/// follows, where a finished thread's would linger until the allocator reclaims it.
fn parse_all(files: &[PathBuf], names: &Names, policies: &Policies) -> Vec<FileOutcome> {
    let workers = workers().min(files.len()).max(1);
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<FileOutcome>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = files.get(i) else { break };
        let outcome = parse_file(path, u32::try_from(i).unwrap_or(u32::MAX), names, policies);
        if let Ok(mut slots) = slots.lock() {
            slots[i] = Some(outcome);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
    slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

fn parse_file(path: &Path, file: u32, names: &Names, policies: &Policies) -> FileOutcome {
    let text = match read_input(path) {
        Ok(t) => t,
        Err(e) => {
            return FileOutcome {
                runs: Vec::new(),
                diags: vec![Diagnostic::new(
                    path,
                    0,
                    0,
                    format!("cannot read users file: {e}"),
                )],
            }
        }
    };
    let mut problems = Problems::default();
    let mut hard = None;
    let parallel = (text.len() > 2 * PIECE_BYTES && workers() > 1)
        .then(|| parse_pieces(&text, names, policies, file, PIECE_BYTES))
        .flatten();
    let mut runs = match parallel {
        Some(runs) => runs,
        None => match walk_users(&text, 0, names, policies, file, None, &mut problems) {
            Ok(parsed) => vec![parsed.into_entries()],
            Err(h) => {
                hard = Some(hard_diagnostic(path, &text, h));
                Vec::new()
            }
        },
    };
    // A clean file's text goes before sorting: a big file's text is the largest allocation.
    let mut text = (!problems.is_empty() || hard.is_some()).then_some(text);
    for run in &mut runs {
        // Unstable (no buffer the size of the file) with the place as tiebreak: among equal
        // accounts the first definition stays first. Duplicates across the pieces of a file
        // are found by `merge`, like those across files.
        run.sort_unstable_by(|a, b| a.account.cmp(&b.account).then(a.key.cmp(&b.key)));
        if run.windows(2).any(|w| w[0].account == w[1].account) {
            *run = without_duplicates(std::mem::take(run), &mut problems);
            // Only for the source lines of the diagnostics: this is the error path.
            text = text.or_else(|| read_input(path).ok());
        }
    }
    let mut diags = problems.into_diagnostics(path, text.as_deref().unwrap_or_default());
    diags.extend(hard);
    FileOutcome { runs, diags }
}

/// A users document walked by the fast path when it is in its subset, else by the general
/// parser (which also finds and words every problem).
fn walk_users(
    text: &str,
    line_offset: u32,
    names: &Names,
    policies: &Policies,
    file: u32,
    defaults: Option<&Defaults>,
    problems: &mut Problems,
) -> Result<users::Parsed, events::Hard> {
    match fast::walk(text, line_offset, names, policies, file, defaults) {
        Some(parsed) => Ok(parsed),
        None => users::walk(text, line_offset, names, policies, file, defaults, problems),
    }
}

/// Keeps the first definition of each account (entries sorted, stably) and reports the others.
fn without_duplicates(entries: Vec<Entry>, problems: &mut Problems) -> Vec<Entry> {
    let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
    for e in entries {
        match kept.last() {
            Some(first) if first.account == e.account => problems.push(
                Problem::new(e.key, format!("account {:?} is defined twice", e.account))
                    .first_at(first.key),
            ),
            _ => kept.push(e),
        }
    }
    kept
}

/// The entries of a big file parsed in pieces on every core, or `None` when the file cannot
/// be cut or any piece has a problem (the caller then parses the whole file, so that every
/// diagnostic is exactly that of a whole-file parse).
fn parse_pieces(
    text: &str,
    names: &Names,
    policies: &Policies,
    file: u32,
    piece_len: usize,
) -> Option<Vec<Vec<Entry>>> {
    let split = chunks::split(text, piece_len)?;
    let mut problems = Problems::default();
    let head = users::walk(
        &text[..split.head_end],
        0,
        names,
        policies,
        file,
        None,
        &mut problems,
    )
    .ok()?;
    if !problems.is_empty() || head.users_at.is_none() || !head.entries.is_empty() {
        return None;
    }
    let head_defaults = head.defaults.map(|(_, d)| d);
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let slots: Mutex<Vec<Option<users::Parsed>>> =
        Mutex::new((0..split.pieces.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers().min(split.pieces.len()) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(start, end, line)) = split.pieces.get(i) else {
                        break;
                    };
                    let mut doc = String::with_capacity(end - start + 7);
                    doc.push_str("users:\n");
                    doc.push_str(&text[start..end]);
                    let mut problems = Problems::default();
                    let parsed = walk_users(
                        &doc,
                        line.saturating_sub(2),
                        names,
                        policies,
                        file,
                        head_defaults.as_ref(),
                        &mut problems,
                    );
                    match parsed {
                        Ok(p) if problems.is_empty() => {
                            if let Ok(mut slots) = slots.lock() {
                                slots[i] = Some(p);
                            }
                        }
                        _ => failed.store(true, Ordering::Relaxed),
                    }
                }
            });
        }
    });
    if failed.into_inner() {
        return None;
    }
    join_pieces(slots.into_inner().ok()?, head_defaults.is_some())
}

/// The pieces' entries, one run per piece (not concatenated: that would copy the file's
/// entries once more); `defaults` written after the users map (in the last piece) are merged
/// under all of them. `None` when a piece is missing or `defaults` appear twice.
fn join_pieces(pieces: Vec<Option<users::Parsed>>, head_defaults: bool) -> Option<Vec<Vec<Entry>>> {
    let mut runs = Vec::with_capacity(pieces.len());
    let mut late_defaults = None;
    for p in pieces {
        let p = p?;
        if let Some((_, d)) = p.defaults {
            if head_defaults || late_defaults.is_some() {
                return None;
            }
            late_defaults = Some(d);
        }
        runs.push(p.entries);
    }
    if let Some(defaults) = late_defaults.filter(|d: &Defaults| !d.is_empty()) {
        for e in runs.iter_mut().flatten() {
            defaults.fill(e);
        }
    }
    Some(runs)
}

/// An account found in two files: where it was first, and where again.
struct Duplicate {
    account: Account,
    first: (u32, Pos),
    again: (u32, Pos),
}

/// The head of a sorted run in [`merge`] and the run's index: ordered so that the max-heap
/// yields the smallest account first and, among equal accounts, the earlier run (file, or
/// piece of a file) first.
struct Head(Entry, usize);

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
        (&other.0.account, other.1).cmp(&(&self.0.account, self.1))
    }
}

/// Merges the sorted runs (in file order) into one sorted list, each account once (the
/// earliest definition kept), and lists the accounts found again in later runs.
///
/// A k-way merge moves each entry once and touches one new account per step, which is much
/// cheaper than sorting the concatenation (a million accounts in a hundred files).
fn merge(mut runs: Vec<Vec<Entry>>) -> (Vec<(Account, Managed)>, Vec<Duplicate>) {
    if runs.len() == 1 {
        // One file: already sorted and without duplicates; collected in place (no second
        // allocation the size of the model).
        let run = runs.pop().unwrap_or_default();
        return (
            run.into_iter()
                .map(|e| (e.account, Managed::new(e.attrs, e.tags.unwrap_or_default())))
                .collect(),
            Vec::new(),
        );
    }
    let total = runs.iter().map(Vec::len).sum();
    let mut runs: Vec<std::vec::IntoIter<Entry>> = runs.into_iter().map(Vec::into_iter).collect();
    let mut heap: BinaryHeap<Head> = runs
        .iter_mut()
        .enumerate()
        .filter_map(|(i, r)| r.next().map(|e| Head(e, i)))
        .collect();
    let mut out: Vec<(Account, Managed)> = Vec::with_capacity(total);
    let mut duplicates = Vec::new();
    // Where the last account pushed to `out` was defined.
    let mut last_at = (0, Pos::default());
    while let Some(mut top) = heap.peek_mut() {
        let next = runs.get_mut(top.1).and_then(Iterator::next);
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
        out.push((
            entry.account,
            Managed::new(entry.attrs, entry.tags.unwrap_or_default()),
        ));
    }
    (out, duplicates)
}

/// Reports accounts defined in more than one file, naming both places (the positions came
/// with the entries: nothing is read again).
fn report_duplicates(
    files: &[PathBuf],
    duplicates: Vec<Duplicate>,
    per_file: &mut [Vec<Diagnostic>],
) {
    let more = duplicates.len().saturating_sub(MAX_DUPLICATE_REPORTS);
    let at = |(file, pos): (u32, Pos)| {
        let path = files
            .get(file as usize)
            .map_or(Path::new(""), |p| p.as_path());
        problems::at(path, pos)
    };
    for dup in duplicates.into_iter().take(MAX_DUPLICATE_REPORTS) {
        let first = at(dup.first);
        let mut d = at(dup.again);
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
    use crate::model::Attrs;

    fn entry(account: &str, file: u32, line: u32) -> Entry {
        Entry {
            account: account.into(),
            attrs: Attrs::new(),
            tags: None,
            file,
            key: Pos { line, col: 3 },
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
        let places: Vec<_> = dups
            .iter()
            .map(|d| ((d.first.0, d.first.1.line), (d.again.0, d.again.1.line)))
            .collect();
        assert_eq!(places, [((0, 2), (1, 5)), ((0, 2), (3, 9))]);
    }

    #[test]
    fn expand_treats_the_directory_literally_and_keeps_every_match() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("p[1]");
        std::fs::create_dir_all(odd.join("users")).unwrap();
        std::fs::write(odd.join("users/a.yaml"), "").unwrap();
        std::fs::create_dir_all(odd.join("users/sub.yaml")).unwrap();
        let (found, unreadable) = expand(&odd, "users/*.yaml").unwrap();
        // A directory matching the pattern is kept: reading it is the error that names it.
        assert_eq!(
            found,
            [odd.join("users/a.yaml"), odd.join("users/sub.yaml")]
        );
        assert!(unreadable.is_empty());
        assert!(expand(&odd, "users/[.yaml").is_err());
    }

    #[test]
    #[cfg(unix)]
    fn read_input_names_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink(d.join("missing"), d.join("dangling")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(d.join("fifo"))
            .status()
            .is_ok_and(|s| s.success());
        let err = |p: &str| read_input(&d.join(p)).unwrap_err().to_string();
        assert!(
            err("dangling").contains("symbolic link"),
            "{}",
            err("dangling")
        );
        assert!(err("sub").contains("directory"), "{}", err("sub"));
        if fifo {
            assert!(err("fifo").contains("FIFO"), "{}", err("fifo"));
        }
        std::fs::write(d.join("ok"), "\u{feff}x").unwrap();
        assert_eq!(read_input(&d.join("ok")).unwrap(), "\u{feff}x");
    }

    #[test]
    fn near_patterns() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("users")).unwrap();
        std::fs::write(dir.path().join("users/a.yaml"), "").unwrap();
        std::fs::write(dir.path().join("users/b.yaml"), "").unwrap();
        assert_eq!(
            near_pattern(dir.path(), "users/*.yml").as_deref(),
            Some("did you mean \"users/*.yaml\"? it matches 2 files")
        );
        assert_eq!(
            near_pattern(dir.path(), "user/a.yaml").as_deref(),
            Some("did you mean \"users/a.yaml\"? it matches 1 file")
        );
        assert_eq!(near_pattern(dir.path(), "other/*.json"), None);
    }

    #[test]
    fn pieces_give_what_the_whole_file_gives() {
        let names = Names::new(&["sex".into(), "city".into(), "tier".into()]);
        let mut text = String::from("defaults: {tier: free, tags: [d]}\nusers:\n");
        for i in 0..3000 {
            if i % 3 == 0 {
                text.push_str(&format!("  u{i:05}: {{city: c{i}, tags: [t{i}, x]}}\n"));
            } else if i % 3 == 1 {
                text.push_str(&format!("  u{i:05}:\n    sex: m\n    tier: gold\n"));
            } else {
                text.push_str(&format!("  u{i:05}:\n    tags:\n    - t{i}\n    - 'y'\n"));
            }
        }
        let whole = users::walk(
            &text,
            0,
            &names,
            &Policies::default(),
            0,
            None,
            &mut Problems::default(),
        )
        .unwrap()
        .into_entries();
        let split = chunks::split(&text, 4096).unwrap();
        assert!(split.pieces.len() > 5);
        let mut cut: Vec<Entry> = parse_pieces(&text, &names, &Policies::default(), 0, 4096)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        cut.sort_by_key(|e| e.key);
        let view = |e: &[Entry]| -> Vec<String> {
            e.iter()
                .map(|e| {
                    let attrs = e.attrs.display(&names);
                    format!("{} {attrs} {:?} {:?}", e.account, e.tags, e.key)
                })
                .collect()
        };
        assert_eq!(view(&cut), view(&whole));
        assert!(
            view(&whole)[1].contains("Some([\"d\"])"),
            "{:?}",
            view(&whole)[1]
        );
        // Defaults written after the users map, in the last piece, fill the tags too.
        let late = format!(
            "{}defaults: {{tags: [d]}}\n",
            text.replacen("defaults: {tier: free, tags: [d]}\n", "", 1)
        );
        let whole = users::walk(
            &late,
            0,
            &names,
            &Policies::default(),
            0,
            None,
            &mut Problems::default(),
        )
        .unwrap()
        .into_entries();
        let mut cut: Vec<Entry> = parse_pieces(&late, &names, &Policies::default(), 0, 4096)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        cut.sort_by_key(|e| e.key);
        assert_eq!(view(&cut), view(&whole));
        assert!(view(&cut)[1].contains("Some([\"d\"])"));
        // A problem in a piece gives up the cut parse.
        let bad = text.replace(
            "u02001: {city: c2001, tags: [t2001, x]}",
            "u02001: {city: 1}",
        );
        assert!(parse_pieces(&bad, &names, &Policies::default(), 0, 4096).is_none());
        let bad = text.replace("tags: [t2001, x]", "tags: [t2001, 5]");
        assert!(parse_pieces(&bad, &names, &Policies::default(), 0, 4096).is_none());
    }
}
