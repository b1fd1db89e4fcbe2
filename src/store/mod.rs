//! The store of last-applied state `L`: the only module that touches sled.
//!
//! One sled database per app, in the project's state directory, with one tree and three key
//! spaces, so that a batch of accounts and the metadata it changes are written atomically by a
//! single `apply_batch`:
//!
//! - `meta`: format version, the sdkappid and endpoint host the store belongs to, the lineage id
//!   made at creation, the serial (bumped once per apply that changed something), and the
//!   attribute-name slots;
//! - `b/<first account>`: a block of consecutive accounts with their managed attributes (see
//!   `blocks`; names are spelled out, so a slot renamed elsewhere cannot relabel our values);
//! - `h/<sequence>`: one history entry per apply, import, fix or restore.
//!
//! sled's file lock keeps a second process out; it dies with its process, so a killed CI job
//! leaves no stale lock.

mod blocks;
mod codec;
mod export;
pub mod interface;
pub mod postgres;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Account, Attrs, Names};

pub use export::now_unix;
pub use export::{ExportHeader, ExportLine};

/// Bumped when the layout changes; older binaries refuse newer stores, and a store of an older
/// layout is refused rather than misread (version 1 kept one sled entry per account).
pub const FORMAT_VERSION: u32 = 2;

const META_KEY: &[u8] = b"meta";
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
    #[error("state at {} has format version {found}, older than this timattr's ({FORMAT_VERSION}): `timattr state export` it with the timattr that wrote it and `state restore` it here, or rebuild it with `timattr import`", path.display())]
    OlderFormat { path: PathBuf, found: u32 },
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

    /// Visits every managed account in account order with its encoded attributes, without
    /// decoding them (compare with [`encode_attrs_into`], decode with [`decode_attrs`]). Returns the
    /// number of accounts.
    pub fn scan(&self, mut f: impl FnMut(&str, &[u8]) -> Result<()>) -> Result<usize> {
        let mut n = 0;
        let mut failed = None;
        for kv in self.db.scan_prefix(blocks::PREFIX) {
            let (_, block) = kv.map_err(|e| sled_err(&self.path, e))?;
            n += blocks::for_each(&block, |account, attrs| {
                f(account, attrs).map_err(|e| {
                    failed = Some(e);
                    String::new()
                })
            })
            .map_err(|m| failed.take().unwrap_or_else(|| self.corrupt(&m)))?;
        }
        Ok(n)
    }

    /// Every managed account with its last-applied attributes, in account order. Names the
    /// table does not know yet are added to it.
    pub fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Attrs)>> {
        let mut out = Vec::new();
        self.scan(|account, attrs| {
            out.push((account.into(), self.decode(attrs, names)?));
            Ok(())
        })?;
        Ok(out)
    }

    fn decode(&self, attrs: &[u8], names: &mut Names) -> Result<Attrs> {
        codec::decode(attrs, names).map_err(|m| self.corrupt(&m))
    }

    /// The key and content of the block `account` belongs in: the last block whose first
    /// account is not after it, or else the first block. `None` when the store has no block.
    fn block_for(&self, account: &str) -> Result<Option<(sled::IVec, sled::IVec)>> {
        let key = blocks::key(account);
        let found = self
            .db
            .range(blocks::PREFIX.to_vec()..=key)
            .next_back()
            .transpose()
            .map_err(|e| sled_err(&self.path, e))?;
        match found {
            Some(kv) => Ok(Some(kv)),
            None => self
                .db
                .scan_prefix(blocks::PREFIX)
                .next()
                .transpose()
                .map_err(|e| sled_err(&self.path, e)),
        }
    }

    /// The first key of the block after `key`, if any.
    fn next_block_key(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        use std::ops::Bound;
        let next = self
            .db
            .range::<&[u8], _>((Bound::Excluded(key), Bound::Unbounded))
            .next()
            .transpose()
            .map_err(|e| sled_err(&self.path, e))?;
        Ok(next
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(blocks::PREFIX)))
    }

    /// One account's last-applied attributes.
    pub fn account(&self, account: &str, names: &mut Names) -> Result<Option<Attrs>> {
        let Some((_, block)) = self.block_for(account)? else {
            return Ok(None);
        };
        let entries = blocks::decode(&block).map_err(|m| self.corrupt(&m))?;
        match entries.binary_search_by(|(a, _)| (**a).cmp(account)) {
            Ok(i) => Ok(Some(self.decode(&entries[i].1, names)?)),
            Err(_) => Ok(None),
        }
    }

    /// Number of managed accounts.
    pub fn account_count(&self) -> Result<usize> {
        let mut n = 0;
        for kv in self.db.scan_prefix(blocks::PREFIX) {
            let (_, block) = kv.map_err(|e| sled_err(&self.path, e))?;
            n += blocks::count(&block).map_err(|m| self.corrupt(&m))?;
        }
        Ok(n)
    }

    /// Writes what the API confirmed for one batch, together with `serial`, in one atomic
    /// step, and makes it durable before returning.
    ///
    /// `set` values are merged into the account's recorded attributes; `removed` names are
    /// dropped, and an account left with nothing leaves the store.
    pub fn record(&mut self, record: &Record<'_>, names: &Names, serial: u64) -> Result<()> {
        // What happens to each account, in account order (blocks are ranges of accounts).
        let mut ops: BTreeMap<&str, (Option<&Attrs>, &[crate::model::NameIdx])> = BTreeMap::new();
        for (account, attrs) in &record.set {
            ops.entry(account).or_default().0 = Some(attrs);
        }
        for (account, removed) in &record.removed {
            ops.entry(account).or_default().1 = removed;
        }
        let mut scratch = names.clone();
        let mut batch = sled::Batch::default();
        // The block being edited: its key (None for a new block), the first key after it,
        // and its entries.
        let mut open: Option<(Option<sled::IVec>, Option<sled::IVec>, blocks::Entries)> = None;
        for (account, (set, removed)) in ops {
            let inside = open.as_ref().is_some_and(|(_, next, _)| {
                next.as_ref()
                    .is_none_or(|n| blocks::key(account).as_slice() < n.as_ref())
            });
            if !inside {
                if let Some((key, _, entries)) = open.take() {
                    write_block(&mut batch, key, &entries);
                }
                open = Some(match self.block_for(account)? {
                    Some((key, block)) => {
                        let next = self.next_block_key(&key)?;
                        let entries = blocks::decode(&block).map_err(|m| self.corrupt(&m))?;
                        (Some(key), next, entries)
                    }
                    None => (None, None, Vec::new()),
                });
            }
            let (_, _, entries) = open.as_mut().expect("a block is open");
            let at = entries.binary_search_by(|(a, _)| (**a).cmp(account));
            let mut attrs = match at {
                Ok(i) => self.decode(&entries[i].1, &mut scratch)?,
                Err(_) => Attrs::new(),
            };
            if let Some(set) = set {
                for (n, v) in set.iter() {
                    attrs.insert(n, v.into());
                }
            }
            for n in removed {
                attrs.remove(*n);
            }
            match (at, attrs.is_empty()) {
                (Ok(i), true) => {
                    entries.remove(i);
                }
                (Ok(i), false) => entries[i].1 = codec::encode(&attrs, &scratch),
                (Err(i), false) => {
                    entries.insert(i, (account.into(), codec::encode(&attrs, &scratch)))
                }
                (Err(_), true) => {}
            }
        }
        if let Some((key, _, entries)) = open.take() {
            write_block(&mut batch, key, &entries);
        }
        let mut meta = self.meta.clone();
        meta.serial = serial;
        self.commit(batch, meta)
    }

    /// Writes `batch` together with `meta` in one atomic step and makes it durable.
    fn commit(&mut self, mut batch: sled::Batch, meta: Meta) -> Result<()> {
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

    /// Records the attribute-name slots as the app now has them, with `serial`.
    pub fn record_slots(&mut self, slots: &BTreeMap<u8, String>, serial: u64) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.slots = slots.clone();
        meta.serial = serial;
        self.write_meta(meta)
    }

    fn write_meta(&mut self, meta: Meta) -> Result<()> {
        self.commit(sled::Batch::default(), meta)
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

/// Replaces a block in `batch` by its edited entries, split when it grew too large, under the
/// key of its (possibly new) first account.
fn write_block(batch: &mut sled::Batch, old_key: Option<sled::IVec>, entries: &blocks::Entries) {
    // sled batches keep the last write per key, so a rewrite under the same key wins.
    if let Some(key) = old_key {
        batch.remove(key);
    }
    if entries.len() > blocks::MAX_ENTRIES {
        for chunk in blocks::chunks(entries) {
            batch.insert(blocks::key(&chunk[0].0), blocks::encode(chunk));
        }
    } else if let Some((first, _)) = entries.first() {
        batch.insert(blocks::key(first), blocks::encode(entries));
    }
}

/// Encodes attributes as the store keeps them into `out` (cleared first), to compare with what
/// [`Store::scan`] visits without allocating.
pub fn encode_attrs_into(out: &mut Vec<u8>, attrs: &Attrs, names: &Names) {
    codec::encode_into(out, attrs, names)
}

/// Decodes what [`Store::scan`] visits; names the table does not know are added to it.
pub fn decode_attrs(bytes: &[u8], names: &mut Names) -> Result<Attrs, String> {
    codec::decode(bytes, names)
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
    if v.format_version < FORMAT_VERSION {
        return Err(StoreError::OlderFormat {
            path: dir.to_path_buf(),
            found: v.format_version,
        });
    }
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Blocks split, merge and move their keys as accounts come and go; the store always
        /// reads back exactly what a plain map holds.
        #[test]
        fn blocks_behave_like_a_map(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u32..1500, proptest::option::of(0u8..2), proptest::bool::ANY), 1..100),
                1..12,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(dir.path(), 1, "h").unwrap();
            let names = names();
            let mut model: BTreeMap<String, Attrs> = BTreeMap::new();
            let values = [attrs(&[(0, "m")]), attrs(&[(0, "f"), (1, "x")])];
            for batch in &batches {
                let accounts: Vec<String> = batch.iter().map(|(a, _, _)| format!("u{a:05}")).collect();
                let mut record = Record::default();
                for ((_, set, remove), account) in batch.iter().zip(&accounts) {
                    if let Some(v) = set {
                        record.set.push((account.as_str(), &values[*v as usize]));
                    } else if *remove {
                        record.removed.push((account.as_str(), vec![0, 1]));
                    }
                }
                // A batch carries each account once.
                record.set.sort_by_key(|(a, _)| *a);
                record.set.dedup_by_key(|(a, _)| *a);
                record.removed.sort_by_key(|(a, _)| *a);
                record.removed.dedup_by_key(|(a, _)| *a);
                record.removed.retain(|(a, _)| record.set.iter().all(|(s, _)| s != a));
                for (a, v) in &record.set {
                    let e = model.entry(a.to_string()).or_default();
                    for (n, val) in v.iter() {
                        e.insert(n, val.into());
                    }
                }
                for (a, _) in &record.removed {
                    model.remove(*a);
                }
                store.record(&record, &names, 1).unwrap();
            }
            let mut n = names.clone();
            let got: BTreeMap<String, Attrs> = store
                .load_last_applied(&mut n)
                .unwrap()
                .into_iter()
                .map(|(a, at)| (a.to_string(), at))
                .collect();
            proptest::prop_assert_eq!(&got, &model);
            proptest::prop_assert_eq!(store.account_count().unwrap(), model.len());
            for (a, at) in model.iter().take(20) {
                let found = store.account(a, &mut n).unwrap();
                proptest::prop_assert_eq!(found.as_ref(), Some(at));
            }
            proptest::prop_assert_eq!(store.account("u99999", &mut n).unwrap(), None);
            // Every block respects its size limit and its key is its first account.
            for kv in store.db.scan_prefix(blocks::PREFIX) {
                let (k, v) = kv.unwrap();
                let entries = blocks::decode(&v).unwrap();
                proptest::prop_assert!(!entries.is_empty() && entries.len() <= blocks::MAX_ENTRIES);
                proptest::prop_assert_eq!(&k[..], &blocks::key(&entries[0].0)[..]);
            }
        }
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
