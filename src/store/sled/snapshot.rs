//! Reading a store without writing to it.
//!
//! sled 0.34 cannot open a database read-only: opening takes an exclusive lock, may cut the
//! log's tail, writes `conf`, `blobs/` and snapshots. Readers therefore open a private copy of
//! the sled files, taken under a shared lock on `db` (sled's writers hold an exclusive one for
//! their whole life, so the copy is never of a database being written) and removed again when
//! the store is dropped. The state directory itself is only read.
//!
//! A writer holds `db` for its whole run, so readers would have to wait for it. Instead, a
//! writer, before it opens sled, publishes a copy of the committed state under
//! `<state dir>/readers/<commits>/` ([`publish`]) and names it in its lock file; a reader that
//! finds `db` held copies that one ([`take_published`]): the state as it was when the writer
//! started, never a torn one. The writer removes it when it ends.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::commits::{self, CommitRecord};

/// A private copy of a state directory's sled files; removed on drop.
#[derive(Debug)]
pub struct Copy {
    dir: PathBuf,
}

impl Copy {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why a copy could not be taken.
pub enum Failure {
    /// A writer holds the database.
    Locked,
    Io(io::Error),
    /// The commit record is unreadable.
    Record(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

/// Copies the sled files of `src` and reads its commit record, both under one shared lock.
pub fn take(src: &Path) -> Result<(Copy, Option<CommitRecord>), Failure> {
    let db = File::open(src.join("db"))?;
    if db.try_lock_shared().is_err() {
        return Err(Failure::Locked);
    }
    let copy = Copy { dir: fresh_dir()? };
    copy_sled_files(src, &copy.dir)?;
    let record = commits::read(src).map_err(Failure::Record)?;
    // The lock goes with `db`; the copy is complete.
    drop(db);
    Ok((copy, record))
}

/// Copies sled's files (`db`, `conf`, snapshots, blobs) of `src` into the existing `dst`.
fn copy_sled_files(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let wanted = name == "db" || name == "conf" || name.starts_with("snap.");
        if wanted && entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dst.join(&*name))?;
        }
    }
    copy_blobs(&src.join("blobs"), &dst.join("blobs"))
}

/// Where writers publish the committed state for readers.
pub const PUBLISHED: &str = "readers";

/// Publishes the committed state of `dir` (whose commit record says `commits`) for readers,
/// as `readers/<commits>/`, unless already there; removes every other publication. The caller
/// holds the writer lock and has not opened sled yet. Returns the published directory.
pub fn publish(dir: &Path, commits: u64) -> io::Result<PathBuf> {
    let base = dir.join(PUBLISHED);
    std::fs::create_dir_all(&base)?;
    let target = base.join(commits.to_string());
    if !target.join(commits::FILE).exists() {
        let db = File::open(dir.join("db"))?;
        // Only a writer of an older timattr (which takes no lock file) can hold `db` now.
        db.try_lock_shared()
            .map_err(|_| io::Error::new(io::ErrorKind::WouldBlock, "the database is held"))?;
        let tmp = base.join(format!(".tmp-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&tmp)?;
        let copied = copy_sled_files(dir, &tmp)
            .and_then(|()| std::fs::copy(dir.join(commits::FILE), tmp.join(commits::FILE)))
            .and_then(|_| {
                let _ = std::fs::remove_dir_all(&target);
                std::fs::rename(&tmp, &target)
            });
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    }
    remove_published(dir, Some(&target));
    Ok(target)
}

/// Removes every publication but `keep`. Best effort.
pub fn remove_published(dir: &Path, keep: Option<&Path>) {
    let base = dir.join(PUBLISHED);
    let Ok(entries) = std::fs::read_dir(&base) else {
        return;
    };
    for entry in entries.flatten() {
        if keep != Some(entry.path().as_path()) {
            // Renamed away first: a reader sees a publication whole or not at all.
            let gone = base.join(format!(".gone-{:016x}", rand::random::<u64>()));
            match std::fs::rename(entry.path(), &gone) {
                Ok(()) => drop(std::fs::remove_dir_all(&gone)),
                Err(_) => drop(std::fs::remove_dir_all(entry.path())),
            }
        }
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir(&base);
    }
}

/// Copies the publication `commits` of `dir` (see [`publish`]) and reads its commit record.
/// `Failure::Io` with `NotFound` when the writer removed it meanwhile.
pub fn take_published(dir: &Path, commits: u64) -> Result<(Copy, Option<CommitRecord>), Failure> {
    let src = dir.join(PUBLISHED).join(commits.to_string());
    let record = commits::read(&src).map_err(Failure::Record)?;
    if record.is_none() {
        return Err(Failure::Io(io::ErrorKind::NotFound.into()));
    }
    let copy = Copy { dir: fresh_dir()? };
    copy_sled_files(&src, &copy.dir)?;
    // Removed while being copied: some files may be missing.
    if !src.join(commits::FILE).exists() {
        return Err(Failure::Io(io::ErrorKind::NotFound.into()));
    }
    Ok((copy, record))
}

fn copy_blobs(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::create_dir(dst)?;
    let entries = match std::fs::read_dir(src) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Removes the copies of readers that were killed before they could remove their own (their
/// process is gone and they are an hour old). Best effort: failures are ignored.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let gone = pid.is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        });
        // An hour's age too, in case /tmp is shared with another PID namespace.
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
        if gone && old && Path::new("/proc/self").exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

const PREFIX: &str = "timattr-read-";

/// A new directory only this user can read, in the system's temp directory (`TMPDIR`).
fn fresh_dir() -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    remove_stale(&base);
    let mut last = None;
    for _ in 0..16 {
        let tag: u64 = rand::random();
        let dir = base.join(format!("{PREFIX}{}-{tag:016x}", std::process::id()));
        match private_dir().create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a temp directory")))
}

#[cfg(unix)]
fn private_dir() -> std::fs::DirBuilder {
    use std::os::unix::fs::DirBuilderExt;
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    b
}

/// Elsewhere (Windows) the temp directory is the user's own already.
#[cfg(not(unix))]
fn private_dir() -> std::fs::DirBuilder {
    std::fs::DirBuilder::new()
}
