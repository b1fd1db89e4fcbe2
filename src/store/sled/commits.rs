//! The commit record: the store's lineage, serial, commit id, commit count and account count, kept in a
//! small file beside sled's (`<state dir>/last-commit`) and replaced atomically after each
//! commit.
//!
//! sled recovers a damaged log by cutting it at the first bad entry, which yields an older
//! state without any error. The record outside sled is how such a rollback is noticed: the
//! database may be ahead of the record (a crash between the two writes, or a rename the file
//! system had not made durable yet), never behind it.
//!
//! The file has two slots of one disk sector each, written in turn (commit `n` goes to slot
//! `n % 2`) in place, without fsync: a write torn by a crash spoils at most the slot being
//! written, whose checksum then fails, and the other slot still holds the commit before. After
//! a power loss the record may therefore be older than the database, which is allowed. Only the
//! file's creation is fsynced (file and directory), so that it cannot vanish or come back empty.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub const FILE: &str = "last-commit";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub lineage: String,
    pub serial: u64,
    /// The commit's random id (absent in records written before commit ids, so that their
    /// checksum still matches).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_id: String,
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

/// One slot: a disk sector, so a torn write cannot spoil both.
const SLOT: usize = 512;

/// Reads the record (the later of the two slots that pass their checksum); `Ok(None)` when
/// there is none. `Err` says what is wrong with it.
pub fn read(dir: &Path) -> Result<Option<CommitRecord>, String> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {FILE}: {e}")),
    };
    if bytes.len() != 2 * SLOT {
        return Err(format!(
            "{FILE} cannot be read (it is not {} bytes)",
            2 * SLOT
        ));
    }
    bytes
        .chunks(SLOT)
        .filter_map(parse_slot)
        .max_by_key(|r| r.commits)
        .map(Some)
        .ok_or_else(|| format!("{FILE} cannot be read (both copies fail their checksum)"))
}

fn parse_slot(slot: &[u8]) -> Option<CommitRecord> {
    let end = slot.iter().rposition(|b| *b == b'}')?;
    let disk: OnDisk = serde_json::from_slice(&slot[..=end]).ok()?;
    (crc(&disk.record) == disk.crc32).then_some(disk.record)
}

/// Writes `record` into its slot (see the module's note on durability).
pub fn write(dir: &Path, record: &CommitRecord) -> std::io::Result<()> {
    let disk = OnDisk {
        record: record.clone(),
        crc32: crc(record),
    };
    let mut slot = serde_json::to_vec(&disk)?;
    if slot.len() >= SLOT {
        return Err(std::io::Error::other("the commit record is too long"));
    }
    slot.resize(SLOT - 1, b' ');
    slot.push(b'\n');
    let path = dir.join(FILE);
    let file = match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir)?,
        Err(e) => return Err(e),
    };
    write_at(&file, &slot, (record.commits % 2) * SLOT as u64)
}

#[cfg(unix)]
fn write_at(file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

#[cfg(not(unix))]
fn write_at(mut file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(buf)
}

/// Creates the file with two empty slots, durably, and opens it.
fn create(dir: &Path) -> std::io::Result<std::fs::File> {
    let mut empty = vec![b' '; 2 * SLOT];
    empty[SLOT - 1] = b'\n';
    empty[2 * SLOT - 1] = b'\n';
    crate::files::write_atomically(&dir.join(FILE), |w| w.write_all(&empty))?;
    std::fs::OpenOptions::new().write(true).open(dir.join(FILE))
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
            commit_id: format!("c{commits}"),
            commits,
            accounts,
        }
    }

    #[test]
    fn round_trips_and_falls_back_to_the_other_slot() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &rec(3, 2, 10)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(rec(3, 2, 10)));
        write(dir.path(), &rec(4, 2, 11)).unwrap();
        write(dir.path(), &rec(5, 3, 12)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(rec(5, 3, 12)));
        let path = dir.path().join(FILE);
        let good = std::fs::read(&path).unwrap();
        assert_eq!(good.len(), 2 * SLOT);
        // The slot being written is torn: the commit before is read.
        let mut torn = good.clone();
        torn[SLOT + 20] ^= 0x01;
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(rec(4, 2, 11)));
        // Both spoiled, or the file cut: the record cannot be read.
        torn[20] ^= 0x01;
        std::fs::write(&path, &torn).unwrap();
        assert!(read(dir.path()).unwrap_err().contains("checksum"));
        std::fs::write(&path, &good[..SLOT]).unwrap();
        assert!(read(dir.path()).is_err());
        std::fs::write(&path, b"").unwrap();
        assert!(read(dir.path()).is_err());
    }

    #[test]
    fn a_record_written_before_commit_ids_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"lineage":"l","serial":2,"commits":3,"accounts":4}"#;
        let crc = {
            let mut c = flate2::Crc::new();
            c.update(old.as_bytes());
            c.sum()
        };
        let mut slot =
            format!(r#"{{"lineage":"l","serial":2,"commits":3,"accounts":4,"crc32":{crc}}}"#)
                .into_bytes();
        slot.resize(2 * SLOT, b' ');
        std::fs::write(dir.path().join(FILE), &slot).unwrap();
        let read = read(dir.path()).unwrap().unwrap();
        assert_eq!((read.serial, read.commit_id.as_str()), (2, ""));
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
