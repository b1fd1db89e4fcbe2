//! The embedded backend (the default): the state in a sled database, the only module that
//! touches sled. It implements [`crate::store::Backend`] (`backend`); the rules every backend
//! shares (binding, the serial's bound, the restore guard, the export format) are the core's.
//!
//! One sled database per app, in the project's state directory, with one tree and three key
//! spaces, so that a batch of accounts and the metadata it changes are written atomically by a
//! single `apply_batch`:
//!
//! - `meta`: format version, the sdkappid and endpoint host the store belongs to, the lineage id
//!   made at creation, the serial (bumped once per apply that changed something), the commit id
//!   (a new random id made by every commit, never made again), and the attribute-name slots;
//! - `b/<first account>`: a block of consecutive accounts with their managed attributes (see
//!   `blocks`; names are spelled out, so a slot renamed elsewhere cannot relabel our values);
//! - `h/<sequence>`: one history entry per apply, import, fix or restore.
//!
//! Every write is a commit: one sled batch that also rewrites `meta`, whose record counts the
//! commits and the accounts and carries a CRC-32. After each commit the same record is written
//! outside sled (`commits`), so that sled recovering an older prefix of its log is noticed.
//! Opening a store verifies the metadata, the commit record, every block's checksum, the order
//! of accounts and their number; a damaged store is an error that says what to do, never a
//! smaller state.
//!
//! Writers take the directory's lock file (`lock`: who holds it, see `lock`) and then sled's
//! file lock; both keep a second process out and die with their process, so a killed CI job
//! leaves no stale lock. Readers ([`SledStore::open_read_only`]) open a private copy (`snapshot`)
//! and never write to the state directory; while a writer runs they copy the state it
//! published when it started, so they never wait for it.

mod backend;
mod backup;
mod blocks;
mod codec;
mod commits;
pub mod lock;
mod snapshot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{random_id, split, HistoryEntry, Meta, Record, Run, FORMAT_VERSION};
use crate::model::{Account, Managed, Names, TagPool};

pub use backend::open;

/// The layout migrated on open: version 2 (blocks without checksums, metadata without
/// counts); version 1 (one sled entry per account) is refused rather than misread. The
/// current one is the core's [`FORMAT_VERSION`].
const MIGRATED_FORMAT: u32 = 2;

const META_KEY: &[u8] = b"meta";
const HISTORY_PREFIX: &[u8] = b"h/";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state at {} is locked by {}: wait for it to finish, or let this command wait with --lock-timeout DURATION (e.g. 5m)", path.display(), holder.as_ref().map_or_else(|| "another timattr process".to_owned(), lock::Holder::describe))]
    Locked {
        path: PathBuf,
        holder: Option<lock::Holder>,
    },
    #[error("state at {}: {message}", path.display())]
    Sled { path: PathBuf, message: String },
    #[error("state at {} is damaged: {message}; move the directory aside and restore a backup with `timattr state restore FILE` (made by `timattr state export`), or rebuild the state with `timattr import`", path.display())]
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

/// An open store. Dropping it releases the lock (or removes a reader's private copy).
pub struct SledStore {
    db: sled::Db,
    /// The state directory, as the user named it (messages, the commit record).
    path: PathBuf,
    meta: Meta,
    /// Accounts in the blocks, as the metadata records them.
    accounts: u64,
    /// Commits made so far; the metadata's and, after each commit, the commit record's.
    commits: u64,
    /// A reader's copy of the sled files: nothing it does reaches the state directory.
    copy: Option<Box<snapshot::Copy>>,
    /// A writer's lock (dropped after `db`, so sled is closed before another writer may start).
    lock: Option<lock::WriterLock>,
    /// The run being recorded: every commit writes its history entry (see `history`).
    run: Option<Run>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("accounts", &self.accounts)
            .field("commits", &self.commits)
            .field("read_only", &self.copy.is_some())
            .finish()
    }
}

/// The metadata as stored: [`Meta`] with the counts the checks need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MetaRecord {
    /// The same as `meta.format_version`, where older binaries look for it.
    format_version: u32,
    meta: Meta,
    accounts: u64,
    commits: u64,
}

impl MetaRecord {
    fn commit_record(&self) -> commits::CommitRecord {
        commits::CommitRecord {
            lineage: self.meta.lineage.clone(),
            serial: self.meta.serial,
            commit_id: self.meta.commit_id.clone(),
            commits: self.commits,
            accounts: self.accounts,
        }
    }
}

/// The `meta` value: `M`, the CRC-32 of the JSON (u32 LE), the JSON. Format 2 stored bare JSON.
const META_TAG: u8 = b'M';

fn encode_meta(record: &MetaRecord) -> Vec<u8> {
    let json = serde_json::to_vec(record).unwrap_or_default();
    let mut crc = flate2::Crc::new();
    crc.update(&json);
    let mut out = Vec::with_capacity(5 + json.len());
    out.push(META_TAG);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// What `meta` holds.
enum Stored {
    Current(MetaRecord),
    /// A format 2 store, to migrate.
    Migrate(Meta),
}

fn read_meta(db: &sled::Db, dir: &Path) -> Result<Option<Stored>> {
    let Some(raw) = db.get(META_KEY).map_err(|e| sled_err(dir, e))? else {
        return Ok(None);
    };
    let corrupt = |m: &str| StoreError::Corrupt {
        path: dir.to_path_buf(),
        message: format!("the metadata {m}"),
    };
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let json = match raw.split_first() {
        Some((&META_TAG, rest)) if rest.len() >= 4 => {
            let mut crc = flate2::Crc::new();
            crc.update(&rest[4..]);
            if crc.sum().to_le_bytes() != rest[..4] {
                return Err(corrupt("fails its checksum"));
            }
            &rest[4..]
        }
        Some((b'{', _)) => &raw[..],
        _ => return Err(corrupt("cannot be read")),
    };
    let v: Version = serde_json::from_slice(json).map_err(|_| corrupt("cannot be read"))?;
    let tagged = raw[0] == META_TAG;
    match v.format_version {
        found if found > FORMAT_VERSION => Err(StoreError::NewerFormat {
            path: dir.to_path_buf(),
            found,
        }),
        FORMAT_VERSION if tagged => serde_json::from_slice(json)
            .map(|r| Some(Stored::Current(r)))
            .map_err(|_| corrupt("cannot be read")),
        MIGRATED_FORMAT if !tagged => serde_json::from_slice(json)
            .map(|m| Some(Stored::Migrate(m)))
            .map_err(|_| corrupt("cannot be read")),
        found if found < MIGRATED_FORMAT => Err(StoreError::OlderFormat {
            path: dir.to_path_buf(),
            found,
        }),
        _ => Err(corrupt("does not match its format version")),
    }
}

/// Whether sled or a commit has ever written a store in `dir` (a README alone does not count).
pub fn exists(dir: &Path) -> bool {
    dir.join("conf").exists() || dir.join("db").exists() || dir.join(commits::FILE).exists()
}

/// Opens sled's files for a writer that holds the lock file: sled's own lock may still be
/// held for a moment by the flusher thread of a store this process just dropped.
fn open_db_locked(dir: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match open_db(dir, true) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other,
        }
    }
}

/// Takes the writer lock of `dir` for `command`, then publishes the committed state for the
/// readers that come while it runs (see `snapshot`). A failed publication only means readers
/// wait, so it is logged, not fatal.
fn lock_writer(dir: &Path, command: &str) -> Result<lock::WriterLock> {
    let mut held =
        lock::WriterLock::try_acquire(dir, lock::Holder::new(command)).map_err(|refused| {
            match refused {
                lock::Refused::Held(holder) => StoreError::Locked {
                    path: dir.to_path_buf(),
                    holder,
                },
                lock::Refused::Io(e) => StoreError::Sled {
                    path: dir.to_path_buf(),
                    message: format!("cannot take the writer lock ({}): {e}", lock::FILE),
                },
            }
        })?;
    let published = if !exists(dir) {
        Some(0)
    } else {
        match commits::read(dir) {
            Ok(Some(r)) => {
                match snapshot::publish(dir, r.commits) {
                    Ok(_) => Some(r.commits),
                    Err(e) => {
                        tracing::warn!("cannot publish the state for readers ({e}): readers wait for this command");
                        None
                    }
                }
            }
            _ => None,
        }
    };
    if let Err(e) = held.set_published(dir, published) {
        tracing::warn!("cannot write {}: {e}", lock::FILE);
    }
    Ok(held)
}

fn open_db(dir: &Path, background_flush: bool) -> Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        // Writers commit to disk every batch themselves (see `commit`); the background flusher
        // only covers other writes. A reader's copy needs none.
        .flush_every_ms(background_flush.then_some(1000))
        .open()
        .map_err(|e| match e {
            sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked {
                    path: dir.to_path_buf(),
                    holder: lock::read_holder(dir),
                }
            }
            other => sled_err(dir, other),
        })
}

/// sled's errors, phrased without its debug text and pointing at the user's directory.
fn sled_err(path: &Path, e: sled::Error) -> StoreError {
    let path = path.to_path_buf();
    match e {
        sled::Error::Io(io) => StoreError::Sled {
            path,
            message: format!("cannot read or write the database: {}", io.kind()),
        },
        sled::Error::Corruption { .. } => StoreError::Corrupt {
            path,
            message: "sled found its database file damaged".into(),
        },
        _ => StoreError::Corrupt {
            path,
            message: "sled cannot open its database files".into(),
        },
    }
}

impl SledStore {
    /// Opens an existing store for `command` to write, without creating one. `Ok(None)` when
    /// there is none yet.
    pub fn open_existing_as(dir: &Path, command: &str) -> Result<Option<SledStore>> {
        if !exists(dir) {
            return Ok(None);
        }
        let held = lock_writer(dir, command)?;
        let db = open_db_locked(dir)?;
        let record = commits::read(dir).map_err(|m| corrupt_at(dir, &m))?;
        match read_meta(&db, dir)? {
            Some(stored) => {
                let mut store = SledStore::assemble(db, dir, None, stored, record)?;
                store.lock = Some(held);
                Ok(Some(store))
            }
            None => no_meta(dir, record.as_ref()).map(|()| None),
        }
    }

    #[cfg(test)]
    pub fn open_existing(dir: &Path) -> Result<Option<SledStore>> {
        SledStore::open_existing_as(dir, "test")
    }

    /// Opens an existing store for reading only: nothing is written to `dir`, which may be
    /// read-only. `Ok(None)` when there is none yet. Never waits for a writer: while one holds
    /// the store, this reads the state the writer published when it started.
    pub fn open_read_only(dir: &Path) -> Result<Option<SledStore>> {
        if !exists(dir) {
            return Ok(None);
        }
        if !dir.join("db").exists() {
            let record = commits::read(dir).map_err(|m| corrupt_at(dir, &m))?;
            return no_meta(dir, record.as_ref()).map(|()| None);
        }
        let started = std::time::Instant::now();
        let Some((copy, record)) = SledStore::copy_for_reading(dir)? else {
            return Ok(None);
        };
        tracing::debug!(elapsed = ?started.elapsed(), "copied the store to read it");
        let db = open_db(copy.dir(), false).map_err(|e| e.at(dir))?;
        tracing::debug!(elapsed = ?started.elapsed(), "opened the copy");
        match read_meta(&db, dir)? {
            Some(stored) => {
                SledStore::assemble(db, dir, Some(Box::new(copy)), stored, record).map(Some)
            }
            None => no_meta(dir, record.as_ref()).map(|()| None),
        }
    }

    /// A private copy of the committed state: of the database itself when no writer holds it,
    /// else of what the writer published when it started. `None`: the writer is creating the
    /// store (there was none before it).
    fn copy_for_reading(
        dir: &Path,
    ) -> Result<Option<(snapshot::Copy, Option<commits::CommitRecord>)>> {
        let io = |e: std::io::Error| {
            StoreError::Sled {
            path: dir.to_path_buf(),
            message: format!(
                "cannot copy the database to read it into {} (readers need room there for a copy of `db`; set TMPDIR to another directory): {e}",
                std::env::temp_dir().display()
            ),
        }
        };
        // A writer ending, or starting before it named its publication: a few tries.
        let mut holder = None;
        for _ in 0..100 {
            let failure = match snapshot::take(dir) {
                Ok(taken) => return Ok(Some(taken)),
                Err(f) => f,
            };
            match failure {
                snapshot::Failure::Locked => {}
                snapshot::Failure::Record(m) => return Err(corrupt_at(dir, &m)),
                snapshot::Failure::Io(e) => return Err(io(e)),
            }
            holder = lock::read_holder(dir).filter(|_| lock::is_held(dir));
            match holder.as_ref().and_then(|h| h.snapshot) {
                Some(0) => return Ok(None),
                Some(commits) => match snapshot::take_published(dir, commits) {
                    Ok(taken) => return Ok(Some(taken)),
                    Err(snapshot::Failure::Record(m)) => return Err(corrupt_at(dir, &m)),
                    Err(snapshot::Failure::Io(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io(e))
                    }
                    Err(_) => {}
                },
                // The holder published nothing (it could not, or it is an older timattr).
                None if holder.is_some() => break,
                None => {}
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(StoreError::Locked {
            path: dir.to_path_buf(),
            holder,
        })
    }

    /// Opens the store for `command` to write, creating it (with a new lineage, bound to
    /// `sdkappid`/`host`) when missing. An existing store is not checked against the app here:
    /// binding and refusing are the core's (`State::bind`).
    pub fn open_as(dir: &Path, sdkappid: u32, host: &str, command: &str) -> Result<SledStore> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled {
            path: dir.to_path_buf(),
            message: format!("cannot create directory: {e}"),
        })?;
        let held = lock_writer(dir, command)?;
        let db = open_db_locked(dir)?;
        let record = commits::read(dir).map_err(|m| corrupt_at(dir, &m))?;
        let mut store = match read_meta(&db, dir)? {
            Some(stored) => SledStore::assemble(db, dir, None, stored, record)?,
            None => {
                no_meta(dir, record.as_ref())?;
                SledStore::create(db, dir, sdkappid, host)?
            }
        };
        store.lock = Some(held);
        Ok(store)
    }

    #[cfg(test)]
    pub fn open(dir: &Path, sdkappid: u32, host: &str) -> Result<SledStore> {
        SledStore::open_as(dir, sdkappid, host, "test")
    }

    /// Writes `sdkappid`/`host` into the metadata (the core binds only an empty store).
    pub fn rebind(&mut self, sdkappid: u32, host: &str) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.sdkappid = sdkappid;
        meta.endpoint_host = host.to_owned();
        let accounts = self.accounts;
        self.commit(sled::Batch::default(), meta, accounts)
    }

    /// A new, empty store: commit 1, recorded outside sled too.
    fn create(db: sled::Db, dir: &Path, sdkappid: u32, host: &str) -> Result<SledStore> {
        let meta = Meta::new(sdkappid, host);
        let mut store = SledStore {
            db,
            path: dir.to_path_buf(),
            meta: meta.clone(),
            accounts: 0,
            commits: 0,
            copy: None,
            lock: None,
            run: None,
        };
        store.commit(sled::Batch::default(), meta, 0)?;
        Ok(store)
    }

    /// A store from its metadata: migrated when of format 2, then checked against the commit
    /// record and verified block by block.
    fn assemble(
        db: sled::Db,
        dir: &Path,
        copy: Option<Box<snapshot::Copy>>,
        stored: Stored,
        record: Option<commits::CommitRecord>,
    ) -> Result<SledStore> {
        let (meta, accounts, commits) = match &stored {
            Stored::Current(r) => (r.meta.clone(), r.accounts, r.commits),
            Stored::Migrate(meta) => (meta.clone(), 0, 0),
        };
        let mut store = SledStore {
            db,
            path: dir.to_path_buf(),
            meta,
            accounts,
            commits,
            copy,
            lock: None,
            run: None,
        };
        match stored {
            Stored::Migrate(_) => store.migrate(record.as_ref())?,
            Stored::Current(r) => {
                commits::check(&r.commit_record(), record.as_ref())
                    .map_err(|m| store.corrupt(&m))?;
                let started = std::time::Instant::now();
                store.verify()?;
                tracing::debug!(elapsed = ?started.elapsed(), "verified every block");
                let behind = record.as_ref().is_none_or(|r| r.commits < store.commits);
                if store.copy.is_none() && behind {
                    // The last run stopped between its commit and the record: catch up.
                    store.write_record()?;
                }
            }
        }
        Ok(store)
    }

    /// Checks every block (checksum, structure, key), that accounts ascend across blocks, and
    /// that their number is the metadata's.
    fn verify(&self) -> Result<()> {
        let mut total = 0u64;
        let mut last: Option<String> = None;
        for kv in self.db.scan_prefix(blocks::PREFIX) {
            let (key, block) = kv.map_err(|e| sled_err(&self.path, e))?;
            let (n, last_here) = blocks::verify(&key, &block).map_err(|m| self.corrupt(&m))?;
            let first = &key[blocks::PREFIX.len()..];
            if last.as_ref().is_some_and(|l| l.as_bytes() >= first) {
                return Err(self.corrupt("two blocks overlap"));
            }
            last = Some(last_here.to_owned());
            total += n as u64;
        }
        if total != self.accounts {
            return Err(self.corrupt(&format!(
                "the metadata records {} accounts but the blocks hold {total}",
                self.accounts
            )));
        }
        Ok(())
    }

    /// Rewrites a format 2 store in the current layout, in one commit. A reader migrates its
    /// private copy only.
    fn migrate(&mut self, record: Option<&commits::CommitRecord>) -> Result<()> {
        if record.is_some() {
            return Err(self.corrupt(&format!(
                "format 2 metadata beside a {} file",
                commits::FILE
            )));
        }
        let mut batch = sled::Batch::default();
        let mut accounts = 0u64;
        let mut last: Option<Box<str>> = None;
        let mut names = Names::default();
        for kv in self.db.scan_prefix(blocks::PREFIX) {
            let (key, block) = kv.map_err(|e| sled_err(&self.path, e))?;
            let entries = blocks::decode_legacy(&block).map_err(|m| self.corrupt(&m))?;
            for (account, attrs) in &entries {
                if last.as_ref().is_some_and(|l| l >= account) {
                    return Err(self.corrupt("accounts are out of order"));
                }
                self.decode(attrs, &mut names)?;
                last = Some(account.clone());
            }
            batch.remove(key);
            write_block(&mut batch, None, &entries);
            accounts += entries.len() as u64;
        }
        self.accounts = accounts;
        let mut meta = self.meta.clone();
        meta.format_version = FORMAT_VERSION;
        self.commit(batch, meta, accounts)
    }

    /// The refusal of a store bound to another app (see `State::check_belongs`).
    pub fn other_app(&self, sdkappid: u32, host: &str) -> StoreError {
        StoreError::OtherApp {
            path: self.path.clone(),
            store_app: self.meta.sdkappid,
            store_host: self.meta.endpoint_host.clone(),
            project_app: sdkappid,
            project_host: host.to_owned(),
        }
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Visits every managed account in account order with its encoded attributes, without
    /// decoding them (compare with `codec::encode_into`, decode with `codec::decode`). Returns the
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

    /// Splits the desired accounts (sorted) for the planner (see [`split::Split`]): while
    /// scanning, an account whose desired attributes encode to exactly the stored bytes is
    /// counted as unchanged without decoding anything.
    pub fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: impl Fn(&str) -> bool,
    ) -> Result<split::Split> {
        let mut merge = split::Merge::new(desired, keep);
        let mut scratch = Vec::with_capacity(256);
        let mut pool = TagPool::new();
        let managed = self.scan(|account, stored| {
            merge.visit(account, |want| {
                if let Some(d) = want {
                    codec::encode_into(&mut scratch, d, names);
                    if scratch == stored {
                        return Ok(split::Stored::Same);
                    }
                }
                codec::decode_pooled(stored, names, &mut pool)
                    .map(split::Stored::Last)
                    .map_err(|m| self.corrupt(&m))
            })
        })?;
        Ok(merge.finish(managed))
    }

    /// Every managed account with its last-applied attributes, in account order. Names the
    /// table does not know yet are added to it.
    pub fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        let mut out = Vec::new();
        let mut pool = TagPool::new();
        self.scan(|account, attrs| {
            let managed =
                codec::decode_pooled(attrs, names, &mut pool).map_err(|m| self.corrupt(&m))?;
            out.push((account.into(), managed));
            Ok(())
        })?;
        Ok(out)
    }

    fn decode(&self, attrs: &[u8], names: &mut Names) -> Result<Managed> {
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
    pub fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        let Some((_, block)) = self.block_for(account)? else {
            return Ok(None);
        };
        let entries = blocks::decode(&block).map_err(|m| self.corrupt(&m))?;
        match entries.binary_search_by(|(a, _)| (**a).cmp(account)) {
            Ok(i) => Ok(Some(self.decode(&entries[i].1, names)?)),
            Err(_) => Ok(None),
        }
    }

    /// Number of managed accounts (verified against the blocks when the store was opened).
    pub fn account_count(&self) -> Result<usize> {
        Ok(usize::try_from(self.accounts).unwrap_or(usize::MAX))
    }

    /// Writes what the API confirmed for one batch, together with `serial`, in one atomic
    /// step, and makes it durable before returning.
    ///
    /// `set` values are merged into the account's recorded attributes; `removed` names are
    /// dropped, and an account left with nothing leaves the store.
    pub fn record(&mut self, record: &Record<'_>, names: &Names, serial: u64) -> Result<()> {
        self.writable()?;
        check_encodable(record, names).map_err(|m| StoreError::Sled {
            path: self.path.clone(),
            message: m,
        })?;
        if let Some(run) = self.run.as_mut() {
            run.entry.count(std::slice::from_ref(record));
        }
        let ops = record.edits();
        let mut scratch = names.clone();
        let mut batch = sled::Batch::default();
        let mut accounts = self.accounts;
        // The block being edited: its key (None for a new block), the first key after it,
        // and its entries.
        let mut open: Option<(Option<sled::IVec>, Option<sled::IVec>, blocks::Entries)> = None;
        for (account, edit) in ops {
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
            let mut managed = match at {
                Ok(i) => self.decode(&entries[i].1, &mut scratch)?,
                Err(_) => Managed::default(),
            };
            edit.apply(&mut managed);
            match (at, managed.is_empty()) {
                (Ok(i), true) => {
                    entries.remove(i);
                    accounts -= 1;
                }
                (Ok(i), false) => entries[i].1 = codec::encode(&managed, &scratch),
                (Err(i), false) => {
                    entries.insert(i, (account.into(), codec::encode(&managed, &scratch)));
                    accounts += 1;
                }
                (Err(_), true) => {}
            }
        }
        if let Some((key, _, entries)) = open.take() {
            write_block(&mut batch, key, &entries);
        }
        let mut meta = self.meta.clone();
        meta.serial = serial;
        self.commit(batch, meta, accounts)
    }

    /// Writes `batch` together with `meta` (with a new commit id) and the account count in one
    /// atomic step, makes it durable, then records the commit outside sled.
    fn commit(&mut self, mut batch: sled::Batch, mut meta: Meta, accounts: u64) -> Result<()> {
        meta.commit_id = random_id();
        if let Some(run) = self.run.as_mut() {
            // The run's entry, in the same atomic step: no serial without its history.
            let key = match &run.written {
                Some(key) => key.clone(),
                None => history_key(&self.db, &self.path)?,
            };
            let entry = run.at_commit(meta.serial, &meta.commit_id);
            batch.insert(key.clone(), serde_json::to_vec(entry).unwrap_or_default());
            run.written = Some(key);
        }
        let next = MetaRecord {
            format_version: meta.format_version,
            meta,
            accounts,
            commits: self.commits + 1,
        };
        batch.insert(META_KEY, encode_meta(&next));
        self.db
            .apply_batch(batch)
            .map_err(|e| sled_err(&self.path, e))?;
        self.db.flush().map_err(|e| sled_err(&self.path, e))?;
        self.meta = next.meta;
        self.accounts = next.accounts;
        self.commits = next.commits;
        if self.copy.is_none() {
            self.write_record()?;
        }
        Ok(())
    }

    /// Replaces the commit record outside sled with the current commit.
    fn write_record(&self) -> Result<()> {
        let record = commits::CommitRecord {
            lineage: self.meta.lineage.clone(),
            serial: self.meta.serial,
            commit_id: self.meta.commit_id.clone(),
            commits: self.commits,
            accounts: self.accounts,
        };
        commits::write(&self.path, &record).map_err(|e| StoreError::Sled {
            path: self.path.clone(),
            message: format!("cannot write {}: {e}", commits::FILE),
        })
    }

    /// Refuses writes through a store opened with [`SledStore::open_read_only`].
    fn writable(&self) -> Result<()> {
        match self.copy {
            None => Ok(()),
            Some(_) => Err(StoreError::Sled {
                path: self.path.clone(),
                message: "the store was opened read-only".into(),
            }),
        }
    }

    /// Records the attribute-name slots with their account types (the core passes only
    /// non-zero ones: `State::record_slot_types`; see [`Meta`]).
    pub fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()> {
        self.writable()?;
        let mut meta = self.meta.clone();
        meta.slots = slots.clone();
        meta.slot_types = types.clone();
        meta.serial = serial;
        self.commit(sled::Batch::default(), meta, self.accounts)
    }

    /// Begins a run: from now on every commit writes its history entry.
    pub fn begin(&mut self, entry: HistoryEntry) {
        self.run = Some(Run::new(entry));
    }

    /// The entry of the run under way.
    pub fn run_mut(&mut self) -> Option<&mut HistoryEntry> {
        self.run.as_mut().map(|r| &mut r.entry)
    }

    /// Ends the run: its entry, as `update` leaves it, is written when the run committed
    /// anything (a run that changed nothing has no serial and no entry).
    pub fn finish(&mut self, update: impl FnOnce(&mut HistoryEntry)) -> Result<()> {
        self.writable()?;
        let Some(mut run) = self.run.take() else {
            return Ok(());
        };
        update(&mut run.entry);
        if run.written.is_none() {
            return Ok(());
        }
        self.run = Some(run);
        let written = self.commit(sled::Batch::default(), self.meta.clone(), self.accounts);
        self.run = None;
        written
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

/// A new key for a history entry, after every other.
fn history_key(db: &sled::Db, path: &Path) -> Result<Vec<u8>> {
    let seq = db.generate_id().map_err(|e| sled_err(path, e))?;
    let mut key = HISTORY_PREFIX.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    Ok(key)
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

/// Refuses names and values the encoding cannot hold (it has a u8 name and a u16 value length),
/// rather than truncating them into a damaged store.
fn check_encodable(record: &Record<'_>, names: &Names) -> Result<(), String> {
    for (account, attrs) in &record.set {
        for (n, v) in attrs.iter() {
            if names.get(n).len() > u8::MAX as usize || v.len() > u16::MAX as usize {
                return Err(format!(
                    "cannot record attribute {:?} of {account:?}: the name or value is too long",
                    names.get(n)
                ));
            }
        }
    }
    let tags = record.tags_added.iter().chain(&record.tags_removed);
    for (account, tags) in tags {
        if let Some(t) = tags.iter().find(|t| !codec::tag_fits(t)) {
            return Err(format!(
                "cannot record tag {t:?} of {account:?}: it is empty or too long"
            ));
        }
    }
    Ok(())
}

fn corrupt_at(dir: &Path, message: &str) -> StoreError {
    StoreError::Corrupt {
        path: dir.to_path_buf(),
        message: message.to_owned(),
    }
}

/// A database without metadata is a store never initialised, unless a commit was recorded.
fn no_meta(dir: &Path, record: Option<&commits::CommitRecord>) -> Result<()> {
    match record {
        None => Ok(()),
        Some(r) => Err(corrupt_at(
            dir,
            &format!(
                "the database has no metadata, but {} records commit {} (serial {}, {} accounts)",
                commits::FILE,
                r.commits,
                r.serial,
                r.accounts
            ),
        )),
    }
}

impl StoreError {
    /// The same error about `dir` (a reader's errors name the state directory, not its copy).
    fn at(self, dir: &Path) -> StoreError {
        let path = dir.to_path_buf();
        match self {
            StoreError::Locked { holder, .. } => StoreError::Locked { path, holder },
            StoreError::Sled { message, .. } => StoreError::Sled { path, message },
            StoreError::Corrupt { message, .. } => StoreError::Corrupt { path, message },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;
    use crate::store::read_export;

    fn names() -> Names {
        Names::new(&["sex".into(), "city".into()])
    }

    fn attrs(p: &[(u8, &str)]) -> Attrs {
        p.iter().map(|(n, v)| (*n, (*v).into())).collect()
    }

    /// sled's flusher thread lets go of the lock shortly after the last handle is dropped.
    fn reopen(dir: &Path) -> SledStore {
        for _ in 0..100 {
            match SledStore::open_existing(dir) {
                Err(StoreError::Locked { .. }) => {
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
        assert!(SledStore::open_existing(dir.path()).unwrap().is_none());
        let mut store = SledStore::open(dir.path(), 1400000000, "example.com").unwrap();
        let lineage = store.meta().lineage.clone();
        let a = attrs(&[(0, "m"), (1, "x")]);
        store
            .record(
                &Record {
                    set: vec![("u1", &a), ("u2", &a)],
                    removed: vec![],
                    ..Default::default()
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
                    ..Default::default()
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
        assert_eq!(all, vec![("u1".into(), attrs(&[(1, "x")]).into())]);
        let state = crate::store::State::new(Box::new(store));
        assert!(state.check_belongs(1400000000, "other.com").is_err());
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
            let mut store = SledStore::open(dir.path(), 1, "h").unwrap();
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
                .map(|(a, at)| (a.to_string(), at.attrs))
                .collect();
            proptest::prop_assert_eq!(&got, &model);
            proptest::prop_assert_eq!(store.account_count().unwrap(), model.len());
            for (a, at) in model.iter().take(20) {
                let found = store.account(a, &mut n).unwrap();
                proptest::prop_assert_eq!(found.map(|f| f.attrs), Some(at.clone()));
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
    fn metadata_with_slots_and_history_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path(), 7, "h").unwrap();
        let slots: BTreeMap<u8, String> = [(0, "sex".into()), (3, "city".into())].into();
        store.begin(HistoryEntry::now("apply", None));
        store
            .record_slot_types(&slots, &BTreeMap::new(), 2)
            .unwrap();
        // Written with the commit: a run killed now still has its entry.
        let provisional = store.history().unwrap();
        assert_eq!(provisional.len(), 1);
        assert_eq!(
            (provisional[0].serial, provisional[0].status.as_str()),
            (2, "interrupted")
        );
        assert_eq!(
            provisional[0].commit_id.as_ref(),
            Some(&store.meta().commit_id)
        );
        store
            .finish(|e| {
                e.status = "complete".into();
                e.names_configured = 2;
            })
            .unwrap();
        let entry = store.history().unwrap().pop().unwrap();
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(store.meta().slots, slots);
        assert_eq!(store.meta().serial, 2);
        assert_eq!(store.history().unwrap(), vec![entry.clone()]);
        assert_eq!(
            (entry.status.as_str(), entry.names_configured),
            ("complete", 2)
        );
        let record = commits::read(dir.path()).unwrap().unwrap();
        assert_eq!((record.serial, record.commits), (2, 3));
        // A run that committed nothing writes no entry.
        let mut store = store;
        store.begin(HistoryEntry::now("apply", None));
        store.finish(|e| e.status = "complete".into()).unwrap();
        assert_eq!(store.history().unwrap().len(), 1);
    }

    #[test]
    fn a_read_only_open_writes_nothing_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path(), 1, "h").unwrap();
        let a = attrs(&[(0, "m")]);
        let record = Record {
            set: vec![("u1", &a), ("u2", &a)],
            removed: vec![],
            ..Default::default()
        };
        store.record(&record, &names(), 1).unwrap();
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let files = |d: &Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap())
                })
                .collect();
            v.sort();
            v
        };
        let before = files(dir.path());
        let mut ro = SledStore::open_read_only(dir.path()).unwrap().unwrap();
        assert_eq!(ro.account_count().unwrap(), 2);
        assert_eq!(ro.path(), dir.path());
        let err = ro.record(&record, &names(), 2).unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        // Two readers at once are fine.
        let ro2 = SledStore::open_read_only(dir.path()).unwrap().unwrap();
        drop((ro, ro2));
        assert_eq!(files(dir.path()), before);
        assert!(
            SledStore::open_read_only(tempfile::tempdir().unwrap().path())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_reader_reads_the_state_a_running_writer_started_from() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SledStore::open(dir.path(), 1, "h").unwrap();
        // The writer is creating the store: there was none before it.
        assert!(SledStore::open_read_only(dir.path()).unwrap().is_none());
        drop(writer);
        let a = attrs(&[(0, "m")]);
        let one = |account| Record {
            set: vec![(account, &a)],
            ..Default::default()
        };
        let mut writer = reopen(dir.path());
        writer.record(&one("u1"), &names(), 1).unwrap();
        drop(writer);
        let mut writer = reopen(dir.path());
        writer.record(&one("u2"), &names(), 2).unwrap();
        let reader = SledStore::open_read_only(dir.path()).unwrap().unwrap();
        assert_eq!(
            (reader.meta().serial, reader.account_count().unwrap()),
            (1, 1)
        );
        assert!(dir.path().join(snapshot::PUBLISHED).exists());
        drop(writer);
        // The writer removed its publication; now the reader reads the database itself.
        let reader = SledStore::open_read_only(dir.path()).unwrap().unwrap();
        assert_eq!(
            (reader.meta().serial, reader.account_count().unwrap()),
            (2, 2)
        );
        assert!(!dir.path().join(snapshot::PUBLISHED).exists());
    }

    /// The core's binding rule on a real sled store, through `State` as commands open it.
    #[test]
    fn an_empty_store_is_bound_to_no_app() {
        use crate::store::{Opening, State};
        let dir = tempfile::tempdir().unwrap();
        let location = crate::settings::StateLocation::Sled(dir.path().to_path_buf());
        // sled's flusher lets go of its lock a moment after a store is dropped.
        let how = Opening {
            writer: Some("test".into()),
            lock_timeout: Some(std::time::Duration::from_secs(5)),
        };
        drop(State::open(&location, 1, "localhost", &how).unwrap());
        // Nothing was recorded: the corrected project takes the store over.
        let mut state = State::open(&location, 2, "example.com", &how).unwrap();
        assert_eq!(
            (state.meta().sdkappid, state.meta().endpoint_host.as_str()),
            (2, "example.com")
        );
        let a = attrs(&[(0, "m")]);
        let record = Record {
            set: vec![("u1", &a)],
            ..Default::default()
        };
        state.record(&[record], &names(), 1).unwrap();
        drop(state);
        // Now it holds something of app 2: app 1 is refused, by writers and readers.
        let err = State::open(&location, 1, "localhost", &how).unwrap_err();
        assert_eq!(err.kind(), crate::store::ErrorKind::OtherApp);
        assert!(
            err.to_string().starts_with(&format!(
                "state at {} belongs to sdkappid 2 at example.com, but the project is sdkappid 1 at localhost: point `state` at this app's own store",
                dir.path().display()
            )),
            "{err}"
        );
        let err = State::open_existing(&location, 1, "localhost", &Opening::default()).unwrap_err();
        assert_eq!(err.kind(), crate::store::ErrorKind::OtherApp);
    }

    #[test]
    fn values_the_encoding_cannot_hold_are_refused_not_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path(), 1, "h").unwrap();
        let long = "x".repeat(u16::MAX as usize + 1);
        let a = attrs(&[(0, &long)]);
        let err = store
            .record(
                &Record {
                    set: vec![("u1", &a)],
                    removed: vec![],
                    ..Default::default()
                },
                &names(),
                1,
            )
            .unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        assert_eq!(store.account_count().unwrap(), 0);
    }

    #[test]
    fn the_serial_never_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1, "h").unwrap();
        let mut state = crate::store::State::new(Box::new(store));
        assert_eq!(state.next_serial().unwrap(), 1);
        state
            .record_slot_types(&BTreeMap::new(), &BTreeMap::new(), u64::MAX)
            .unwrap();
        let err = state.next_serial().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("state at {}: the serial is at its maximum; restore a backup with a lower serial (`state restore --force`)", dir.path().display())
        );
    }

    #[test]
    fn a_writer_catches_the_record_up_after_a_crash_between_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path(), 1, "h").unwrap();
        let stale = commits::read(dir.path()).unwrap().unwrap();
        store
            .record_slot_types(&BTreeMap::new(), &BTreeMap::new(), 1)
            .unwrap();
        drop(store);
        // The record of the commit before: as if the process died before writing it.
        std::fs::remove_file(dir.path().join(commits::FILE)).unwrap();
        commits::write(dir.path(), &stale).unwrap();
        let store = reopen(dir.path());
        assert_eq!(store.meta().serial, 1);
        let record = commits::read(dir.path()).unwrap().unwrap();
        assert_eq!(record.commits, stale.commits + 1);
    }

    #[test]
    fn second_open_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path(), 1, "h").unwrap();
        let err = SledStore::open(dir.path(), 1, "h").unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("is locked by `timattr test` on host "),
            "{err}"
        );
        assert!(
            err.contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        assert!(err.contains("--lock-timeout"), "{err}");
    }

    #[test]
    fn every_commit_makes_a_new_commit_id_and_a_restore_never_reuses_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path(), 1, "h").unwrap();
        let mut seen = vec![store.meta().commit_id.clone()];
        let a = attrs(&[(0, "m")]);
        let one = |account| Record {
            set: vec![(account, &a)],
            ..Default::default()
        };
        store.record(&one("u1"), &names(), 1).unwrap();
        seen.push(store.meta().commit_id.clone());
        let mut backup = Vec::new();
        store.export(&mut backup).unwrap();
        store.record(&one("u2"), &names(), 2).unwrap();
        seen.push(store.meta().commit_id.clone());
        // The export names its commit; restoring it (forced back to serial 1) makes new ones.
        let export = read_export(&backup[..]).unwrap();
        assert_eq!(export.header.commit_id.as_deref(), Some(seen[1].as_str()));
        for _ in 0..2 {
            store.restore_export(&export).unwrap();
            assert_eq!(store.meta().serial, 1);
            seen.push(store.meta().commit_id.clone());
        }
        drop(store);
        let reopened = reopen(dir.path());
        assert_eq!(reopened.meta().commit_id, *seen.last().unwrap());
        drop(reopened);
        let reader = SledStore::open_read_only(dir.path()).unwrap().unwrap();
        assert_eq!(reader.meta().commit_id, *seen.last().unwrap());
        let record = commits::read(dir.path()).unwrap().unwrap();
        assert_eq!(record.commit_id, *seen.last().unwrap());
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), seen.len(), "{seen:?}");
        assert!(seen.iter().all(|c| c.len() == 32), "{seen:?}");
        // An export made before commit ids still restores, with a new id.
        let mut old = Vec::new();
        {
            let mut gz = flate2::write::GzEncoder::new(&mut old, flate2::Compression::default());
            let header = r#"{"format_version":3,"sdkappid":1,"endpoint_host":"h","lineage":"l0","serial":4,"slots":{},"accounts":0}"#;
            std::io::Write::write_all(&mut gz, format!("{header}\n").as_bytes()).unwrap();
            gz.finish().unwrap();
        }
        let other = tempfile::tempdir().unwrap();
        let mut fresh = SledStore::open(other.path(), 1, "h").unwrap();
        let before = fresh.meta().commit_id.clone();
        let header = fresh.restore(&old[..], false).unwrap();
        assert_eq!(header.commit_id, None);
        assert_ne!(fresh.meta().commit_id, before);
        assert!(!fresh.meta().commit_id.is_empty());
    }

    #[test]
    fn export_restore_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path(), 1, "h").unwrap();
        let a = attrs(&[(1, "深圳")]);
        store.begin(HistoryEntry::now("apply", None));
        store
            .record(
                &Record {
                    set: vec![("u1", &a)],
                    removed: vec![],
                    ..Default::default()
                },
                &names(),
                3,
            )
            .unwrap();
        store.finish(|e| e.status = "complete".into()).unwrap();
        let applied = store.history().unwrap();
        let mut backup = Vec::new();
        assert_eq!(store.export(&mut backup).unwrap(), 1);
        drop(store);

        let other = tempfile::tempdir().unwrap();
        let mut fresh = SledStore::open(other.path(), 1, "h").unwrap();
        let header = fresh.restore(&backup[..], false).unwrap();
        assert_eq!(header.serial, 3);
        let mut n = names();
        assert_eq!(
            fresh.load_last_applied(&mut n).unwrap(),
            vec![("u1".into(), a.clone().into())]
        );
        // The history came along, and the restore added its own entry.
        let history = fresh.history().unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[0], applied[0]);
        assert_eq!(
            (history[1].operation.as_str(), history[1].serial),
            ("restore", 3)
        );
        // Now the store has history: an export of another lineage is refused.
        let third = tempfile::tempdir().unwrap();
        let mut s3 = SledStore::open(third.path(), 1, "h").unwrap();
        s3.record(
            &Record {
                set: vec![("u9", &a)],
                removed: vec![],
                ..Default::default()
            },
            &names(),
            1,
        )
        .unwrap();
        let err = s3.restore(&backup[..], false).unwrap_err();
        assert!(err.to_string().contains("lineage"), "{err}");
        s3.restore(&backup[..], true).unwrap();
        // Another app's export is refused even with force, and changes nothing.
        let fourth = tempfile::tempdir().unwrap();
        let mut s4 = SledStore::open(fourth.path(), 2, "h").unwrap();
        let b = attrs(&[(0, "f")]);
        let mine = Record {
            set: vec![("u2", &b)],
            ..Default::default()
        };
        s4.record(&mine, &names(), 1).unwrap();
        let err = s4.restore(&backup[..], true).unwrap_err();
        assert!(
            err.to_string().contains("--force does not override"),
            "{err}"
        );
        assert_eq!(s4.account_count().unwrap(), 1);
        // Truncated input changes nothing.
        let err = fresh
            .restore(&backup[..backup.len() / 2], true)
            .unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
        assert_eq!(fresh.load_last_applied(&mut n).unwrap().len(), 1);
    }
}
