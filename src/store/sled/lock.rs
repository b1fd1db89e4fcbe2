//! The writer lock of a sled state directory: `<state dir>/lock`, held with an exclusive
//! `flock` for the writer's whole life (so it dies with its process), and holding who the
//! writer is — command, pid, host, since — so that a refused writer or a waiting one can name it.
//!
//! The file also says which published snapshot readers may use while this writer runs (see
//! `snapshot::publish`): readers never wait for a writer, they read the state as it was when
//! the writer started.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const FILE: &str = "lock";

/// Who holds the lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub command: String,
    pub pid: u32,
    pub host: String,
    /// Unix seconds.
    pub since: u64,
    /// The commit count of the snapshot published for readers when the writer started: `0`
    /// when there was no store yet, `None` when none could be published.
    #[serde(default)]
    pub snapshot: Option<u64>,
}

impl Holder {
    pub fn new(command: &str) -> Holder {
        Holder {
            command: command.to_owned(),
            pid: std::process::id(),
            host: crate::store::who::hostname(),
            since: crate::clock::now_unix(),
            snapshot: None,
        }
    }

    /// `` `timattr apply` on host h (pid 12) since 2026-…Z ``.
    pub fn describe(&self) -> String {
        let since = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.since),
        );
        format!(
            "`timattr {}` on host {} (pid {}) since {since}",
            self.command, self.host, self.pid
        )
    }
}

/// A held writer lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    holder: Holder,
    /// The state directory whose published snapshot this writer removes when it ends.
    published_in: Option<std::path::PathBuf>,
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Removed while the lock is still held: no reader is sent to it afterwards.
        if let Some(dir) = self.published_in.take() {
            super::snapshot::remove_published(&dir, None);
        }
    }
}

/// Why the lock was not taken.
pub enum Refused {
    /// Another process holds it; who, when its file says.
    Held(Option<Holder>),
    Io(std::io::Error),
}

impl WriterLock {
    /// Takes the lock of `dir` (which must exist) at once, or says who holds it.
    pub fn try_acquire(dir: &Path, holder: Holder) -> Result<WriterLock, Refused> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE))
            .map_err(Refused::Io)?;
        if file.try_lock().is_err() {
            return Err(Refused::Held(read_holder(dir)));
        }
        let mut lock = WriterLock {
            file,
            holder,
            published_in: None,
        };
        lock.write().map_err(Refused::Io)?;
        Ok(lock)
    }

    /// Says which snapshot of `dir` readers may use while this writer runs (`Some(0)`: there
    /// was no store); it is removed when the lock is dropped.
    pub fn set_published(&mut self, dir: &Path, commits: Option<u64>) -> std::io::Result<()> {
        self.holder.snapshot = commits;
        if commits.is_some_and(|c| c > 0) {
            self.published_in = Some(dir.to_path_buf());
        }
        self.write()
    }

    fn write(&mut self) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.holder)?;
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(&json)
    }
}

/// The holder's record, if the file holds a readable one (it may be mid-write).
pub fn read_holder(dir: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(dir.join(FILE))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether a live process holds the lock of `dir` (a shared lock cannot be had).
pub fn is_held(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(FILE)) else {
        return false;
    };
    let held = file.try_lock_shared().is_err();
    if !held {
        let _ = file.unlock();
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = WriterLock::try_acquire(dir.path(), Holder::new("apply"))
            .ok()
            .unwrap();
        first.set_published(dir.path(), Some(0)).unwrap();
        assert!(is_held(dir.path()));
        match WriterLock::try_acquire(dir.path(), Holder::new("import")) {
            Err(Refused::Held(Some(h))) => {
                assert_eq!(
                    (h.command.as_str(), h.pid, h.snapshot),
                    ("apply", std::process::id(), Some(0))
                );
                assert!(
                    h.describe().starts_with("`timattr apply` on host "),
                    "{}",
                    h.describe()
                );
            }
            _ => panic!("not refused"),
        }
        drop(first);
        assert!(!is_held(dir.path()));
        let again = WriterLock::try_acquire(dir.path(), Holder::new("import"))
            .ok()
            .unwrap();
        assert_eq!(read_holder(dir.path()).unwrap().command, "import");
        drop(again);
    }
}
