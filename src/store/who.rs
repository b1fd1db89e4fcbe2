//! Where a commit is made (DESIGN.md §6 history): the host, and the HEAD of the project's git
//! work tree read without spawning git where the files are plain. The actor, the CI's commit
//! and run URL are `crate::provenance`'s (which `doctor` reports too). Never fails: what cannot
//! be found is left out.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "(unknown host)".into())
}

/// The HEAD of the git work tree holding `project_dir`, if it is one.
pub fn git_head(project_dir: &Path) -> Option<String> {
    head_of(project_dir)
}

/// HEAD read from the files (`.git/HEAD`, loose refs, `packed-refs`); `git rev-parse HEAD`
/// (with a time limit) only when the files say something this does not follow.
fn head_of(project_dir: &Path) -> Option<String> {
    let start = std::fs::canonicalize(project_dir).ok()?;
    let (work_tree, git_dir) = start.ancestors().find_map(|d| {
        let dot = d.join(".git");
        if dot.is_dir() {
            Some((d.to_path_buf(), dot))
        } else if dot.is_file() {
            // A linked work tree or a submodule: `gitdir: PATH`.
            let text = std::fs::read_to_string(&dot).ok()?;
            let target = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
            Some((d.to_path_buf(), d.join(target)))
        } else {
            None
        }
    })?;
    read_head(&git_dir).or_else(|| rev_parse(&work_tree))
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn read_head(git_dir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    if is_sha(head) {
        return Some(head.to_owned());
    }
    let name = head.strip_prefix("ref:")?.trim();
    // Refs live in the common directory of linked work trees.
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => git_dir.join(c.trim()),
        Err(_) => git_dir.to_path_buf(),
    };
    for dir in [git_dir, common.as_path()] {
        if let Ok(sha) = std::fs::read_to_string(dir.join(name)) {
            let sha = sha.trim();
            return is_sha(sha).then(|| sha.to_owned());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, r) = l.split_once(' ')?;
        (r == name && is_sha(sha)).then(|| sha.to_owned())
    })
}

/// `git rev-parse HEAD`, given two seconds; `None` on any failure.
fn rev_parse(work_tree: &Path) -> Option<String> {
    let mut child = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(work_tree)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    let sha = out.trim();
    is_sha(sha).then(|| sha.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_read_from_loose_and_packed_refs_and_detached() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("refs/heads/main"), format!("{a}\n")).unwrap();
        let sub = dir.path().join("deploy/prod");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(head_of(&sub), Some(a.clone()));
        std::fs::remove_file(git.join("refs/heads/main")).unwrap();
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{b} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(head_of(&sub), Some(b.clone()));
        std::fs::write(git.join("HEAD"), format!("{a}\n")).unwrap();
        assert_eq!(head_of(dir.path()), Some(a));
    }

    #[test]
    fn no_git_checkout_gives_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        // A temp dir has no .git above it (unless /tmp is inside a checkout, which it is not).
        assert_eq!(read_head(dir.path()), None);
    }
}
