//! The emulator's data on disk: a JSON snapshot (`FILE`) plus an append-only journal
//! (`FILE.journal`, one JSON [`Op`] per line).
//!
//! A write is appended to the journal before it is answered OK, so a killed process loses
//! nothing it confirmed. Start loads the snapshot and replays the journal; stop (and a journal
//! grown past [`COMPACT_AFTER_BYTES`]) writes a new snapshot atomically and empties the journal.
//! The whole snapshot is never written per request: an app can have a million users.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::rules::Op;
use super::{Data, EmulatorError};

/// Journal size that triggers a new snapshot.
const COMPACT_AFTER_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) struct Journal {
    snapshot: PathBuf,
    path: PathBuf,
    file: File,
    bytes: u64,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// The journal beside a snapshot file.
pub fn journal_path(snapshot: &Path) -> PathBuf {
    with_suffix(snapshot, ".journal")
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> EmulatorError + '_ {
    move |source| EmulatorError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Loads `snapshot` and replays its journal, compacts them, and opens the journal for appends.
pub(crate) fn open(snapshot: &Path) -> Result<(Data, Journal), EmulatorError> {
    let (data, replayed, leftover) = read(snapshot)?;
    let path = journal_path(snapshot);
    if let Some(dir) = snapshot.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut journal = Journal {
        snapshot: snapshot.to_owned(),
        path,
        file,
        bytes: 0,
    };
    // Start from an empty journal, so appends never follow a torn line and `bytes` is its length.
    if leftover || !snapshot.exists() {
        journal.compact(&data)?;
    }
    tracing::debug!(users = data.users.len(), replayed, "emulator data loaded");
    Ok((data, journal))
}

/// Loads `snapshot` and replays its journal without writing anything (a missing file is an
/// empty app): the data of an emulator that must not change its file.
pub(crate) fn load(snapshot: &Path) -> Result<Data, EmulatorError> {
    read(snapshot).map(|(data, _, _)| data)
}

/// The snapshot with its journal replayed, how many lines were replayed, and whether the
/// journal held anything.
fn read(snapshot: &Path) -> Result<(Data, usize, bool), EmulatorError> {
    let mut data = match fs::read(snapshot) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EmulatorError::Corrupt {
            path: snapshot.to_owned(),
            why: e.to_string(),
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Data::default(),
        Err(e) => return Err(io_err(snapshot)(e)),
    };
    let path = journal_path(snapshot);
    let (replayed, leftover) = match fs::read(&path) {
        Ok(bytes) => (replay(&mut data, &bytes, &path)?, !bytes.is_empty()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (0, false),
        Err(e) => return Err(io_err(&path)(e)),
    };
    Ok((data, replayed, leftover))
}

/// Applies each complete journal line; a torn last line (killed mid-write, never answered OK)
/// is dropped.
fn replay(data: &mut Data, bytes: &[u8], path: &Path) -> Result<usize, EmulatorError> {
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[][..],
    };
    if complete.len() < bytes.len() {
        tracing::warn!(path = %path.display(), "dropping an unfinished last journal line");
    }
    let mut n = 0;
    for (i, line) in complete.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let op: Op = serde_json::from_slice(line).map_err(|e| EmulatorError::Corrupt {
            path: path.to_owned(),
            why: format!("line {}: {e}", i + 1),
        })?;
        data.apply(&op);
        n += 1;
    }
    Ok(n)
}

impl Journal {
    /// Appends one write; called before the write is applied and answered.
    pub(crate) fn append(&mut self, op: &Op) -> io::Result<()> {
        let mut line = serde_json::to_vec(op).map_err(io::Error::other)?;
        line.push(b'\n');
        // One write_all of the whole line; no fsync: surviving a killed process is the goal,
        // and the page cache does that.
        if let Err(e) = self.file.write_all(&line) {
            // Cut a partial line off, so the next append starts on a line of its own.
            let _ = self.file.set_len(self.bytes);
            return Err(e);
        }
        self.bytes += line.len() as u64;
        Ok(())
    }

    pub(crate) fn wants_compaction(&self) -> bool {
        self.bytes > COMPACT_AFTER_BYTES
    }

    /// Writes `data` as the new snapshot (temp file + rename), then empties the journal.
    /// A crash between the two replays the journal onto a snapshot that already holds it,
    /// which is harmless: every op is idempotent (see `Data::apply`).
    pub(crate) fn compact(&mut self, data: &Data) -> Result<(), EmulatorError> {
        let tmp = with_suffix(&self.snapshot, ".tmp");
        let write = || -> io::Result<()> {
            let mut w = BufWriter::new(File::create(&tmp)?);
            serde_json::to_writer(&mut w, data).map_err(io::Error::other)?;
            w.flush()?;
            w.get_ref().sync_all()?;
            fs::rename(&tmp, &self.snapshot)
        };
        write().map_err(io_err(&self.snapshot))?;
        self.file.set_len(0).map_err(io_err(&self.path))?;
        self.bytes = 0;
        Ok(())
    }
}
