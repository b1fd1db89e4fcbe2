//! Which files the users patterns name, and whether they may be read (DESIGN.md §8).
//!
//! The patterns are expanded one path component at a time over the directory entries as
//! bytes: a name that is not UTF-8 is matched (its invalid bytes stand for one character
//! each) and kept, never skipped as the `glob` crate's walker does. A match is read only when
//! it resolves, after symlinks, inside the project directory: a pattern or a symlink that
//! reaches elsewhere (`/proc/self/environ`, `../../etc/*`) is an error naming the match, and
//! its content is never opened.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};

/// The paths matched by `pattern`, relative to `project_dir`, sorted; every match counts,
/// whatever it is (reading it says what is wrong with it). Directories that could not be
/// read are listed apart.
pub(crate) fn expand(
    project_dir: &Path,
    pattern: &str,
) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let invalid = |e: glob::PatternError| format!("invalid users pattern {pattern:?}: {e}");
    // The whole pattern is checked first, so that a bad part after a part matching
    // nothing is still reported.
    Pattern::new(pattern).map_err(invalid)?;
    let mut current = vec![if Path::new(pattern).is_absolute() {
        PathBuf::from("/")
    } else {
        project_dir.to_path_buf()
    }];
    let mut unreadable = Vec::new();
    let parts: Vec<Component<'_>> = Path::new(pattern).components().collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let text = part.as_os_str().to_string_lossy();
        current = match part {
            Component::RootDir => continue,
            Component::CurDir => current,
            Component::ParentDir | Component::Prefix(_) => {
                current.into_iter().map(|d| d.join(part)).collect()
            }
            Component::Normal(name) if !has_magic(&text) => current
                .into_iter()
                .map(|d| d.join(name))
                .filter(|p| if last { exists(p) } else { p.is_dir() })
                .collect(),
            Component::Normal(_) if text == "**" => {
                let mut all = Vec::new();
                for d in current {
                    descend(&d, &mut all, &mut unreadable, pattern);
                }
                // As last part, `dir/**` names the directories themselves (reading one
                // says it is a directory), as the glob crate has it.
                all
            }
            Component::Normal(_) => {
                let matcher = Pattern::new(&text).map_err(invalid)?;
                let mut next = Vec::new();
                for d in &current {
                    entries(d, &matcher, last, &mut next, &mut unreadable, pattern);
                }
                next
            }
        };
    }
    let mut files: Vec<PathBuf> = current.into_iter().filter(|p| exists(p)).collect();
    files.sort();
    files.dedup();
    Ok((files, unreadable))
}

fn has_magic(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Whether something is at `p`, a dangling symlink included (reading it names the problem).
fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// The entries of `dir` whose names match; directories only unless `last`.
fn entries(
    dir: &Path,
    matcher: &Pattern,
    last: bool,
    out: &mut Vec<PathBuf>,
    unreadable: &mut Vec<String>,
    pattern: &str,
) {
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            unreadable.push(cannot_read(dir, &e, pattern));
            return;
        }
    };
    let mut names: Vec<OsString> = list.filter_map(|e| Some(e.ok()?.file_name())).collect();
    names.sort();
    for name in names {
        // Invalid bytes become U+FFFD: one character, which `?` and `*` match.
        if !matcher.matches_with(&name.to_string_lossy(), OPTIONS) {
            continue;
        }
        let p = dir.join(&name);
        if last || p.is_dir() {
            out.push(p);
        }
    }
}

/// `dir` and every directory below it (symlinked directories are not followed: no loops).
fn descend(dir: &Path, out: &mut Vec<PathBuf>, unreadable: &mut Vec<String>, pattern: &str) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            unreadable.push(cannot_read(dir, &e, pattern));
            return;
        }
    };
    let mut subdirs: Vec<PathBuf> = list
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_dir().then(|| e.path())
        })
        .collect();
    subdirs.sort();
    for d in subdirs {
        descend(&d, out, unreadable, pattern);
    }
}

fn cannot_read(dir: &Path, e: &std::io::Error, pattern: &str) -> String {
    format!(
        "cannot read {} while matching users pattern {pattern:?}: {e}",
        crate::escape::path(dir)
    )
}

/// Where a users file really is, when that is inside `root` (the project directory,
/// canonical): the path to open. Otherwise the error that names the match; its content is
/// never read. A dangling symlink is returned as is (reading it says so).
pub(crate) fn inside(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let real = match std::fs::canonicalize(path) {
        Ok(r) => r,
        Err(_) if std::fs::symlink_metadata(path).is_ok() => {
            // A dangling symlink: where it points decides, even though nothing is there.
            let target = std::fs::read_link(path).unwrap_or_default();
            let parent = path.parent().unwrap_or(Path::new("."));
            let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
            let aimed = lexical(&parent.join(target));
            if !aimed.starts_with(root) {
                return Err(outside(path, &aimed, root));
            }
            return Ok(path.to_path_buf());
        }
        Err(_) => return Ok(path.to_path_buf()),
    };
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(outside(path, &real, root))
    }
}

fn outside(path: &Path, real: &Path, root: &Path) -> String {
    let shown = crate::escape::path(path);
    let real = crate::escape::path(real);
    let root = crate::escape::path(root);
    if shown == real {
        format!("users file {shown} is outside the project directory {root}; it was not read")
    } else {
        format!(
            "users file {shown} resolves to {real}, outside the project directory {root}; it was not read"
        )
    }
}

/// `..` and `.` removed without touching the file system.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

// Unix-only: the cases build non-UTF-8 names and symlinks with Unix APIs.
#[cfg(all(unix, test))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt as _;

    #[test]
    fn names_that_are_not_utf8_are_matched() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::create_dir(&users).unwrap();
        let odd = users.join(std::ffi::OsStr::from_bytes(b"caf\xe9.yaml"));
        std::fs::write(&odd, "users: {}\n").unwrap();
        std::fs::write(users.join("a.yaml"), "users: {}\n").unwrap();
        std::fs::write(users.join("b.txt"), "").unwrap();
        let (found, unreadable) = expand(dir.path(), "users/*.yaml").unwrap();
        assert_eq!(found, [users.join("a.yaml"), odd.clone()]);
        assert!(unreadable.is_empty());
        let (found, _) = expand(dir.path(), "users/caf?.yaml").unwrap();
        assert_eq!(found, [odd]);
    }

    #[test]
    fn patterns_walk_components_like_glob() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("u/x/y")).unwrap();
        std::fs::write(d.join("u/a.yaml"), "").unwrap();
        std::fs::write(d.join("u/x/b.yaml"), "").unwrap();
        std::fs::write(d.join("u/x/y/c.yaml"), "").unwrap();
        let (found, _) = expand(d, "u/**/*.yaml").unwrap();
        assert_eq!(
            found,
            [
                d.join("u/a.yaml"),
                d.join("u/x/b.yaml"),
                d.join("u/x/y/c.yaml")
            ]
        );
        let (found, _) = expand(d, "u/*/b.yaml").unwrap();
        assert_eq!(found, [d.join("u/x/b.yaml")]);
        let (found, _) = expand(d, "./u/a.yaml").unwrap();
        assert_eq!(found, [d.join("./u/a.yaml")]);
        assert!(expand(d, "u/missing.yaml").unwrap().0.is_empty());
        assert!(expand(d, "u/[.yaml").is_err());
    }

    #[test]
    fn only_files_inside_the_project_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let p = root.join("p");
        std::fs::create_dir_all(p.join("users")).unwrap();
        std::fs::write(p.join("users/a.yaml"), "").unwrap();
        std::fs::write(root.join("secret.yaml"), "").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, p.join("users").join(name)).unwrap();
            p.join("users").join(name)
        };
        assert_eq!(
            inside(&p, &p.join("users/a.yaml")).unwrap(),
            p.join("users/a.yaml")
        );
        let inner = link(&p.join("users/a.yaml"), "inner.yaml");
        assert_eq!(inside(&p, &inner).unwrap(), p.join("users/a.yaml"));
        let out = link(&root.join("secret.yaml"), "out.yaml");
        let err = inside(&p, &out).unwrap_err();
        assert!(err.contains("out.yaml") && err.contains("outside"), "{err}");
        let env = link(Path::new("/proc/self/environ"), "env.yaml");
        assert!(inside(&p, &env).is_err());
        let dangling = link(Path::new("/nowhere/x.yaml"), "dangling.yaml");
        assert!(inside(&p, &dangling).is_err());
        let dangling_in = link(&p.join("users/gone.yaml"), "gone-link.yaml");
        assert_eq!(inside(&p, &dangling_in).unwrap(), dangling_in);
        assert!(inside(&p, &p.join("users/../../secret.yaml")).is_err());
        assert!(inside(&p, Path::new("/proc/self/environ")).is_err());
    }
}
