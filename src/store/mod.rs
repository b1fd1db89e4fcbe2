//! The store of last-applied state `L`: the only module that touches sled.
//!
//! One sled database per app, in the project's state directory, with one tree and three key
//! spaces, so that a batch of accounts and the metadata it changes are written atomically by a
//! single `apply_batch`:
//!
//! - `meta`: format version, the sdkappid and endpoint host the store belongs to, the lineage id
//!   made at creation, the serial (bumped once per apply that changed something), and the
//!   attribute-name slots;
//! - `a/<account>`: the managed attributes of one account (names spelled out, so a slot renamed
//!   elsewhere cannot relabel our values);
//! - `h/<sequence>`: one history entry per apply, import, fix or restore.
//!
//! sled's file lock keeps a second process out; it dies with its process, so a killed CI job
//! leaves no stale lock.

mod codec;
mod export;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Account, Attrs, Names};

pub use export::now_unix;
pub use export::{ExportHeader, ExportLine};

/// Bumped when the layout changes; older binaries refuse newer stores.
pub const FORMAT_VERSION: u32 = 1;

const META_KEY: &[u8] = b"meta";
const ACCOUNT_PREFIX: &[u8] = b"a/";
const HISTORY_PREFIX: &[u8] = b"h/";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state is locked by another timattr process ({}): wait for it to finish, or stop it", .0.display())]
    Locked(PathBuf),
    #[error("state at {}: {message}", path.display())]
    Sled { path: PathBuf, message: String },
    #[error("state at {} is damaged: {message}; restore it from a `timattr state export` backup or rebuild it with `timattr import`", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("state at {} has format version {found}, newer than this timattr understands ({FORMAT_VERSION}): upgrade timattr", path.display())]
    NewerFormat { path: PathBuf, found: u32 },
    #[error("state at {} belongs to sdkappid {store_app} at {store_host}, but the project is sdkappid {project_app} at {project_host}: point `state` at this app's own store", path.display())]
    OtherApp {
        path: PathBuf,
        store_app: u32,
        store_host: String,
        project_app: u32,
        project_host: String,
    },
    #[error("{0}")]
    Restore(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the store says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub format_version: u32,
    pub sdkappid: u32,
    pub endpoint_host: String,
    pub lineage: String,
    pub serial: u64,
    /// Attribute-name slots as configured in the app: slot `0..=9` → name.
    #[serde(default)]
    pub slots: BTreeMap<u8, String>,
}

/// One line of `timattr state history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds.
    pub time: u64,
    /// Serial after the operation.
    pub serial: u64,
    /// `apply`, `drift-fix`, `import` or `restore`.
    pub operation: String,
    /// `complete`, `interrupted` or `failed`.
    pub status: String,
    pub accounts_set: u64,
    pub accounts_removed: u64,
    pub names_configured: u64,
    pub requests: u64,
    pub retries: u64,
}

/// A batch of outcomes the API confirmed, to be written in one atomic step.
#[derive(Debug, Default)]
pub struct Record<'a> {
    /// Accounts whose values were set: the names and values the server confirmed.
    pub set: Vec<(&'a str, &'a Attrs)>,
    /// Accounts whose names were removed.
    pub removed: Vec<(&'a str, Vec<crate::model::NameIdx>)>,
}

/// An open store. Dropping it releases the lock.
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    meta: Meta,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

/// Whether sled has ever written a database in `dir` (a README alone does not count).
pub fn exists(dir: &Path) -> bool {
    dir.join("conf").exists() || dir.join("db").exists()
}

fn open_db(dir: &Path) -> Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        // Commit to disk every batch ourselves (see `record`); the background flusher only
        // covers other writes.
        .flush_every_ms(Some(1000))
        .open()
        .map_err(|e| match e {
            sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked(dir.to_path_buf())
            }
            other => sled_err(dir, other),
        })
}

fn sled_err(path: &Path, e: sled::Error) -> StoreError {
    StoreError::Sled {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn new_lineage() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Store {
    /// Opens an existing store without creating anything. `Ok(None)` when there is none yet.
    pub fn open_existing(dir: &Path) -> Result<Option<Store>> {
        if !exists(dir) {
            return Ok(None);
        }
        let db = open_db(dir)?;
        match read_meta(&db, dir)? {
            Some(meta) => Ok(Some(Store {
                db,
                path: dir.to_path_buf(),
                meta,
            })),
            // sled files without our metadata: a store that was never initialised.
            None => Ok(None),
        }
    }

    /// Opens the store of `sdkappid`/`host`, creating it (with a new lineage) when missing, and
    /// refusing one that belongs to another app.
    pub fn open(dir: &Path, sdkappid: u32, host: &str) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled {
            path: dir.to_path_buf(),
            message: format!("cannot create directory: {e}"),
        })?;
        let db = open_db(dir)?;
        let meta = match read_meta(&db, dir)? {
            Some(meta) => meta,
            None => {
                let meta = Meta {
                    format_version: FORMAT_VERSION,
                    sdkappid,
                    endpoint_host: host.to_owned(),
                    lineage: new_lineage(),
                    serial: 0,
                    slots: BTreeMap::new(),
                };
                db.insert(
                    META_KEY,
                    serde_json::to_vec(&meta).expect("meta serializes"),
                )
                .map_err(|e| sled_err(dir, e))?;
                db.flush().map_err(|e| sled_err(dir, e))?;
                meta
            }
        };
        let store = Store {
            db,
            path: dir.to_path_buf(),
            meta,
        };
        store.check_belongs(sdkappid, host)?;
        Ok(store)
    }

    /// Refuses a store made for another app or endpoint host.
    pub fn check_belongs(&self, sdkappid: u32, host: &str) -> Result<()> {
        if self.meta.sdkappid != sdkappid || self.meta.endpoint_host != host {
            return Err(StoreError::OtherApp {
                path: self.path.clone(),
                store_app: self.meta.sdkappid,
                store_host: self.meta.endpoint_host.clone(),
                project_app: sdkappid,
                project_host: host.to_owned(),
            });
        }
        Ok(())
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last-applied attributes of every managed account, in account order. Names the
    /// table does not know yet are added to it.
    pub fn last_applied<'a>(
        &'a self,
        names: &'a mut Names,
    ) -> impl Iterator<Item = Result<(Account, Attrs)>> + 'a {
        self.db.scan_prefix(ACCOUNT_PREFIX).map(move |kv| {
            let (k, v) = kv.map_err(|e| sled_err(&self.path, e))?;
            let account = std::str::from_utf8(&k[ACCOUNT_PREFIX.len()..])
                .map_err(|_| self.corrupt("an account key is not UTF-8"))?;
            let attrs = codec::decode(&v, names).map_err(|m| self.corrupt(&m))?;
            Ok((account.into(), attrs))
        })
    }

    /// Every managed account, collected (for the planner, which merges two sorted lists).
    pub fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Attrs)>> {
        self.last_applied(names).collect()
    }

    /// One account's last-applied attributes.
    pub fn account(&self, account: &str, names: &mut Names) -> Result<Option<Attrs>> {
        let key = account_key(account);
        match self.db.get(key).map_err(|e| sled_err(&self.path, e))? {
            Some(v) => Ok(Some(
                codec::decode(&v, names).map_err(|m| self.corrupt(&m))?,
            )),
            None => Ok(None),
        }
    }

    /// Number of managed accounts.
    pub fn account_count(&self) -> usize {
        self.db.scan_prefix(ACCOUNT_PREFIX).count()
    }

    /// Writes what the API confirmed for one batch, together with `serial` and `slots`, in one
    /// atomic step, and makes it durable before returning.
    ///
    /// `set` values are merged into the account's recorded attributes; `removed` names are
    /// dropped, and an account left with nothing leaves the store.
    pub fn record(&mut self, record: &Record<'_>, names: &Names, serial: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        // Accounts may appear in both lists (one apply sets some names and removes others).
        let mut merged: BTreeMap<&str, Attrs> = BTreeMap::new();
        let mut scratch = names.clone();
        for (account, attrs) in &record.set {
            let entry = self.merged_entry(&mut merged, account, &mut scratch)?;
            for (n, v) in attrs.iter() {
                entry.insert(n, v.into());
            }
        }
        for (account, removed) in &record.removed {
            let entry = self.merged_entry(&mut merged, account, &mut scratch)?;
            for n in removed {
                entry.remove(*n);
            }
        }
        for (account, attrs) in &merged {
            if attrs.is_empty() {
                batch.remove(account_key(account));
            } else {
                batch.insert(account_key(account), codec::encode(attrs, &scratch));
            }
        }
        let mut meta = self.meta.clone();
        meta.serial = serial;
        batch.insert(
            META_KEY,
            serde_json::to_vec(&meta).expect("meta serializes"),
        );
        self.db
            .apply_batch(batch)
            .map_err(|e| sled_err(&self.path, e))?;
        self.db.flush().map_err(|e| sled_err(&self.path, e))?;
        self.meta = meta;
        Ok(())
    }

    fn merged_entry<'m, 'k>(
        &self,
        merged: &'m mut BTreeMap<&'k str, Attrs>,
        account: &'k str,
        names: &mut Names,
    ) -> Result<&'m mut Attrs> {
        if !merged.contains_key(account) {
            let current = self.account(account, names)?.unwrap_or_default();
            merged.insert(account, current);
        }
        Ok(merged.get_mut(account).expect("just inserted"))
    }

    /// Records the attribute-name slots as the app now has them, with `serial`.
    pub fn record_slots(&mut self, slots: &BTreeMap<u8, String>, serial: u64) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.slots = slots.clone();
        meta.serial = serial;
        self.write_meta(meta)
    }

    fn write_meta(&mut self, meta: Meta) -> Result<()> {
        self.db
            .insert(
                META_KEY,
                serde_json::to_vec(&meta).expect("meta serializes"),
            )
            .map_err(|e| sled_err(&self.path, e))?;
        self.db.flush().map_err(|e| sled_err(&self.path, e))?;
        self.meta = meta;
        Ok(())
    }

    /// Appends a history entry.
    pub fn add_history(&mut self, entry: &HistoryEntry) -> Result<()> {
        let seq = self.db.generate_id().map_err(|e| sled_err(&self.path, e))?;
        let mut key = HISTORY_PREFIX.to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        self.db
            .insert(key, serde_json::to_vec(entry).expect("history serializes"))
            .map_err(|e| sled_err(&self.path, e))?;
        self.db.flush().map_err(|e| sled_err(&self.path, e))?;
        Ok(())
    }

    /// Every history entry, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.db
            .scan_prefix(HISTORY_PREFIX)
            .map(|kv| {
                let (_, v) = kv.map_err(|e| sled_err(&self.path, e))?;
                serde_json::from_slice(&v).map_err(|e| self.corrupt(&format!("history: {e}")))
            })
            .collect()
    }

    fn corrupt(&self, message: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            message: message.to_owned(),
        }
    }
}

fn account_key(account: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(ACCOUNT_PREFIX.len() + account.len());
    key.extend_from_slice(ACCOUNT_PREFIX);
    key.extend_from_slice(account.as_bytes());
    key
}

fn read_meta(db: &sled::Db, dir: &Path) -> Result<Option<Meta>> {
    let Some(raw) = db.get(META_KEY).map_err(|e| sled_err(dir, e))? else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        path: dir.to_path_buf(),
        message: format!("metadata: {e}"),
    };
    let v: Version = serde_json::from_slice(&raw).map_err(corrupt)?;
    if v.format_version > FORMAT_VERSION {
        return Err(StoreError::NewerFormat {
            path: dir.to_path_buf(),
            found: v.format_version,
        });
    }
    serde_json::from_slice(&raw).map(Some).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names::new(&["sex".into(), "city".into()])
    }

    fn attrs(p: &[(u8, &str)]) -> Attrs {
        p.iter().map(|(n, v)| (*n, (*v).into())).collect()
    }

    /// sled's flusher thread lets go of the lock shortly after the last handle is dropped.
    fn reopen(dir: &Path) -> Store {
        for _ in 0..100 {
            match Store::open_existing(dir) {
                Err(StoreError::Locked(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other.unwrap().unwrap(),
            }
        }
        panic!("still locked");
    }

    #[test]
    fn records_batches_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::open_existing(dir.path()).unwrap().is_none());
        let mut store = Store::open(dir.path(), 1400000000, "example.com").unwrap();
        let lineage = store.meta().lineage.clone();
        let a = attrs(&[(0, "m"), (1, "x")]);
        store
            .record(
                &Record {
                    set: vec![("u1", &a), ("u2", &a)],
                    removed: vec![],
                },
                &names(),
                1,
            )
            .unwrap();
        store
            .record(
                &Record {
                    set: vec![],
                    removed: vec![("u1", vec![0]), ("u2", vec![0, 1])],
                },
                &names(),
                1,
            )
            .unwrap();
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(store.meta().serial, 1);
        assert_eq!(store.meta().lineage, lineage);
        let mut n = names();
        let all = store.load_last_applied(&mut n).unwrap();
        assert_eq!(all, vec![("u1".into(), attrs(&[(1, "x")]))]);
        assert!(store.check_belongs(1400000000, "other.com").is_err());
    }

    #[test]
    fn second_open_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), 1, "h").unwrap();
        let err = Store::open(dir.path(), 1, "h").unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
        assert!(err
            .to_string()
            .contains("state is locked by another timattr process"));
    }

    #[test]
    fn export_restore_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 1, "h").unwrap();
        let a = attrs(&[(1, "深圳")]);
        store
            .record(
                &Record {
                    set: vec![("u1", &a)],
                    removed: vec![],
                },
                &names(),
                3,
            )
            .unwrap();
        let mut backup = Vec::new();
        assert_eq!(store.export(&mut backup).unwrap(), 1);
        drop(store);

        let other = tempfile::tempdir().unwrap();
        let mut fresh = Store::open(other.path(), 1, "h").unwrap();
        let header = fresh.restore(&backup[..], false).unwrap();
        assert_eq!(header.serial, 3);
        let mut n = names();
        assert_eq!(
            fresh.load_last_applied(&mut n).unwrap(),
            vec![("u1".into(), a.clone())]
        );
        // Now the store has history: an export of another lineage is refused.
        let third = tempfile::tempdir().unwrap();
        let mut s3 = Store::open(third.path(), 1, "h").unwrap();
        s3.record(
            &Record {
                set: vec![("u9", &a)],
                removed: vec![],
            },
            &names(),
            1,
        )
        .unwrap();
        let err = s3.restore(&backup[..], false).unwrap_err();
        assert!(err.to_string().contains("lineage"), "{err}");
        s3.restore(&backup[..], true).unwrap();
        // Truncated input changes nothing.
        let err = fresh
            .restore(&backup[..backup.len() / 2], true)
            .unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
        assert_eq!(fresh.load_last_applied(&mut n).unwrap().len(), 1);
    }
}
