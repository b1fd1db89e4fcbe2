//! Reading a store without writing to it.
//!
//! sled 0.34 cannot open a database read-only: opening takes an exclusive lock, may cut the
//! log's tail, writes `conf`, `blobs/` and snapshots. Readers therefore open a private copy of
//! the sled files, taken under a shared lock on `db` (sled's writers hold an exclusive one for
//! their whole life, so the copy is never of a database being written) and removed again when
//! the store is dropped. The state directory itself is only read.

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
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let wanted = name == "db" || name == "conf" || name.starts_with("snap.");
        if wanted && entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), copy.dir.join(&*name))?;
        }
    }
    copy_blobs(&src.join("blobs"), &copy.dir.join("blobs"))?;
    let record = commits::read(src).map_err(Failure::Record)?;
    // The lock goes with `db`; the copy is complete.
    drop(db);
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
