//! `doctor --record DIR`: every answer received, saved as received so that a difference
//! between the documented API and the real one can be reported and replayed.
//!
//! One file per answer, `NN-COMMAND.http`: the HTTP status line, the headers and the body,
//! byte for byte. Requests are never saved (their URL carries the usersig), and the client
//! replaces the key and the usersig in an answer that echoes them (see [`crate::api::Received`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::api::Received;
use crate::{Error, Result};

/// Saves answers into a directory.
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    saved: AtomicUsize,
    /// Answers that could not be saved, reported when the run ends.
    errors: Mutex<Vec<String>>,
}

impl Recorder {
    /// Creates `dir` when missing.
    pub fn create(dir: &Path) -> Result<Arc<Recorder>> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("--record: cannot create {}", dir.display()), e))?;
        Ok(Arc::new(Recorder {
            dir: dir.to_owned(),
            saved: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
        }))
    }

    /// Saves one answer as the next file.
    pub fn save(&self, answer: &Received) {
        let n = self.saved.fetch_add(1, Ordering::SeqCst) + 1;
        let path = self.dir.join(format!("{n:02}-{}.http", answer.command));
        let bytes = answer.to_http();
        if let Err(e) = crate::files::write_atomically(&path, |w| w.write_all(&bytes)) {
            self.lock().push(format!("{}: {e}", path.display()));
        }
    }

    /// How many answers were saved so far.
    pub fn saved(&self) -> usize {
        self.saved.load(Ordering::SeqCst)
    }

    /// An error naming every answer that could not be saved.
    pub fn finish(&self) -> Result<()> {
        let errors = self.lock();
        if errors.is_empty() {
            return Ok(());
        }
        Err(Error::msg(format!(
            "--record: {} answers could not be saved: {}",
            errors.len(),
            errors.join("; ")
        )))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_numbered_files_in_http_form() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("answers");
        let rec = Recorder::create(&dir).unwrap();
        let answer = Received {
            command: "im_get_attr_name",
            status: 200,
            headers: vec![("date".into(), b"Sun, 06 Nov 1994 08:49:37 GMT".to_vec())],
            body: b"{}".to_vec(),
        };
        rec.save(&answer);
        rec.save(&answer);
        rec.finish().unwrap();
        assert_eq!(rec.saved(), 2);
        let text = std::fs::read(dir.join("02-im_get_attr_name.http")).unwrap();
        assert_eq!(text, answer.to_http());
        assert!(dir.join("01-im_get_attr_name.http").exists());
    }
}
