//! The commit record: the store's lineage, serial, commit count and account count, kept in a
//! small file beside sled's (`<state dir>/last-commit`) and replaced atomically after each
//! commit.
//!
//! sled recovers a damaged log by cutting it at the first bad entry, which yields an older
//! state without any error. The record outside sled is how such a rollback is noticed: the
//! database may be ahead of the record (a crash between the two writes, or a rename the file
//! system had not made durable yet), never behind it.
//!
//! The record's content is fsynced before it is renamed into place, so a crash leaves the old
//! record or the new one, never a torn one; the directory is not fsynced (that would double the
//! cost of every commit), so after a power loss the record may be older, which is allowed.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const FILE: &str = "last-commit";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub lineage: String,
    pub serial: u64,
    /// Commits since the store was made; every write of the metadata is one.
    pub commits: u64,
    pub accounts: u64,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    #[serde(flatten)]
    record: CommitRecord,
    crc32: u32,
}

fn crc(record: &CommitRecord) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(&serde_json::to_vec(record).unwrap_or_default());
    crc.sum()
}

/// Reads the record; `Ok(None)` when there is none. `Err` says what is wrong with it.
pub fn read(dir: &Path) -> Result<Option<CommitRecord>, String> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {FILE}: {e}")),
    };
    let disk: OnDisk =
        serde_json::from_slice(&bytes).map_err(|_| format!("{FILE} cannot be read"))?;
    if crc(&disk.record) != disk.crc32 {
        return Err(format!("{FILE} fails its checksum"));
    }
    Ok(Some(disk.record))
}

/// Replaces the record atomically (see the module's note on durability).
pub fn write(dir: &Path, record: &CommitRecord) -> std::io::Result<()> {
    let disk = OnDisk {
        record: record.clone(),
        crc32: crc(record),
    };
    let mut bytes = serde_json::to_vec(&disk)?;
    bytes.push(b'\n');
    let temp = dir.join(format!(".{FILE}.tmp"));
    let written = std::fs::File::create(&temp).and_then(|mut f| {
        f.write_all(&bytes)?;
        f.sync_data()
    });
    match written.and_then(|()| std::fs::rename(&temp, dir.join(FILE))) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Whether the database's own record (`db`) may follow the file's (`file`): the same commit
/// with the same content, or a later one. `Err` explains why not.
pub fn check(db: &CommitRecord, file: Option<&CommitRecord>) -> Result<(), String> {
    let Some(file) = file else {
        // A store made before the record existed is migrated (format 2); a store of format 3
        // without a record has lost it.
        return if db.commits <= 1 {
            Ok(())
        } else {
            Err(format!(
                "{FILE} is missing, though the database holds commit {}",
                db.commits
            ))
        };
    };
    if db.lineage != file.lineage {
        return Err(format!(
            "the database has lineage {} but {FILE} says {}: the files come from different stores",
            db.lineage, file.lineage
        ));
    }
    if db.commits < file.commits {
        return Err(format!(
            "the database holds commit {} (serial {}, {} accounts) but commit {} (serial {}, {} accounts) was made: its latest writes were lost",
            db.commits, db.serial, db.accounts, file.commits, file.serial, file.accounts
        ));
    }
    if db.commits == file.commits && db != file {
        return Err(format!(
            "the database and {FILE} disagree about commit {}",
            db.commits
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(commits: u64, serial: u64, accounts: u64) -> CommitRecord {
        CommitRecord {
            lineage: "l".into(),
            serial,
            commits,
            accounts,
        }
    }

    #[test]
    fn round_trips_and_refuses_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &rec(3, 2, 10)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(rec(3, 2, 10)));
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        std::fs::write(dir.path().join(FILE), text.replace("10", "11")).unwrap();
        assert!(read(dir.path()).unwrap_err().contains("checksum"));
        std::fs::write(dir.path().join(FILE), &text[..text.len() / 2]).unwrap();
        assert!(read(dir.path()).is_err());
    }

    #[test]
    fn the_database_may_be_ahead_never_behind() {
        assert!(check(&rec(5, 2, 10), Some(&rec(5, 2, 10))).is_ok());
        assert!(check(&rec(6, 3, 12), Some(&rec(5, 2, 10))).is_ok());
        assert!(check(&rec(9, 3, 12), Some(&rec(5, 2, 10))).is_ok());
        let err = check(&rec(4, 2, 9), Some(&rec(5, 2, 10))).unwrap_err();
        assert!(err.contains("latest writes were lost"), "{err}");
        assert!(check(&rec(5, 2, 9), Some(&rec(5, 2, 10))).is_err());
        let mut other = rec(5, 2, 10);
        other.lineage = "m".into();
        assert!(check(&other, Some(&rec(5, 2, 10))).is_err());
        assert!(check(&rec(1, 0, 0), None).is_ok());
        assert!(check(&rec(2, 0, 0), None).is_err());
    }
}
