//! A third backend, in memory and for tests only: how a backend plugs into the core, and the
//! test bench of the rules the core writes once (binding, the serial's bound, recorded slot
//! types, records sent ahead, the restore guard, the export format).
//!
//! Plugging it in for real would be this module (made non-test, with an `open` taking an
//! [`OpenRequest`](super::backend::OpenRequest)) and one arm in
//! `interface::open_backend`, e.g. `StateLocation::Memory => memory::open(request)`; nothing
//! else in the core or in the commands changes. Here the tests hand it to [`State::new`].

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use super::backend::{Backend, Result};
use super::export::Writer;
use super::split::{Merge, Stored};
use super::{
    random_id, ErrorKind, Export, ExportHeader, ExportLine, HistoryEntry, Meta, Record, Run, Split,
    StateError,
};
use crate::model::{Account, Attrs, Managed, Names};

/// What the store holds, shared with the test that made it (to look inside after the fact).
#[derive(Debug, Default)]
pub struct Held {
    pub meta: Option<Meta>,
    /// Accounts by id, with their values by name (the backend's own encoding).
    pub accounts: BTreeMap<String, ExportLine>,
    pub history: Vec<HistoryEntry>,
    /// How many times the core asked it to rebind.
    pub rebinds: usize,
}

#[derive(Debug)]
pub struct Memory {
    held: Arc<Mutex<Held>>,
    meta: Meta,
    run: Option<Run>,
    /// Set: records sent ahead stay under way until settled, like a distant database's.
    distant: Option<Arc<Distant>>,
}

/// What a [`Memory`] store made distant saw of the records sent ahead (each is applied when
/// sent, but answered only when settled).
#[derive(Debug, Default)]
pub struct Distant {
    /// Accounts of the records under way, and the most at once.
    pub under_way: std::sync::atomic::AtomicUsize,
    pub most: std::sync::atomic::AtomicUsize,
    /// Each record sent, with its kind (`set` or `remove`) and the accounts under way before
    /// it; each settled, with its accounts.
    pub log: Mutex<Vec<(&'static str, usize)>>,
    /// Set: settling fails (the database refused the record).
    pub refuse: std::sync::atomic::AtomicBool,
    /// Set: each record is answered (and its hold dropped) this long after it is sent, by a
    /// thread of its own, as a distant database answers; else only when settled.
    pub answer_after: Option<std::time::Duration>,
    /// Accounts of the records answered so far.
    pub answered: Arc<std::sync::atomic::AtomicUsize>,
}

/// A record of a distant [`Memory`] store, under way until answered: by its thread, or when
/// settled (then `hold` is dropped there).
struct Under {
    accounts: usize,
    hold: Option<Box<dyn Send>>,
    answer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Under {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Under")
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

impl super::backend::Pending for Under {
    fn is_answered(&self) -> bool {
        self.answer.as_ref().is_some_and(|a| a.is_finished())
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// This backend's own errors, kept typed as a real backend's are and mapped onto the core's
/// kinds at the boundary.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory store belongs to sdkappid {store_app} at {store_host}, not {project_app} at {project_host}")]
    OtherApp {
        store_app: u32,
        store_host: String,
        project_app: u32,
        project_host: String,
    },
    #[error("memory store: {0}")]
    Restore(String),
}

impl From<MemoryError> for StateError {
    fn from(e: MemoryError) -> StateError {
        let kind = match &e {
            MemoryError::OtherApp { .. } => ErrorKind::OtherApp,
            MemoryError::Restore(_) => ErrorKind::Restore,
        };
        StateError::new(kind, e)
    }
}

impl Memory {
    /// A new store bound to `sdkappid`/`host`, and a handle on what it holds.
    pub fn create(sdkappid: u32, host: &str) -> (Memory, Arc<Mutex<Held>>) {
        let meta = Meta {
            commit_id: random_id(),
            ..Meta::new(sdkappid, host)
        };
        let held = Arc::new(Mutex::new(Held {
            meta: Some(meta.clone()),
            ..Held::default()
        }));
        let store = Memory {
            held: held.clone(),
            meta,
            run: None,
            distant: None,
        };
        (store, held)
    }

    /// This store, its records sent ahead answered only when settled.
    pub fn distant(self, distant: Arc<Distant>) -> Memory {
        Memory {
            distant: Some(distant),
            ..self
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().expect("not poisoned")
    }

    /// One commit: the metadata with a new commit id, and the run's entry in the same step.
    fn commit(&mut self, mut meta: Meta, change: impl FnOnce(&mut Held)) {
        meta.commit_id = random_id();
        let mut held = self.held.lock().expect("not poisoned");
        change(&mut held);
        if let Some(run) = self.run.as_mut() {
            let entry = run.at_commit(meta.serial, &meta.commit_id).clone();
            match run.written {
                Some(_) => *held.history.last_mut().expect("written") = entry,
                None => held.history.push(entry),
            }
            run.written = Some(Vec::new());
        }
        held.meta = Some(meta.clone());
        drop(held);
        self.meta = meta;
    }
}

fn decode(line: &ExportLine, names: &mut Names) -> Managed {
    let attrs: Attrs = line
        .attrs
        .iter()
        .map(|(n, v)| (names.intern(n).expect("few names"), v.as_str().into()))
        .collect();
    Managed::new(attrs, line.tags.iter().map(String::as_str).collect())
}

impl Backend for Memory {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn describe(&self) -> String {
        "memory store".into()
    }

    fn other_app(&self, sdkappid: u32, host: &str) -> StateError {
        MemoryError::OtherApp {
            store_app: self.meta.sdkappid,
            store_host: self.meta.endpoint_host.clone(),
            project_app: sdkappid,
            project_host: host.to_owned(),
        }
        .into()
    }

    fn rebind(&mut self, sdkappid: u32, host: &str) -> Result<()> {
        self.held().rebinds += 1;
        let meta = Meta {
            sdkappid,
            endpoint_host: host.to_owned(),
            ..self.meta.clone()
        };
        self.commit(meta, |_| {});
        Ok(())
    }

    fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Split> {
        let mut merge = Merge::new(desired, keep);
        let held = self.held();
        for (account, line) in &held.accounts {
            merge.visit(account, |want| {
                let stored = decode(line, names);
                Ok::<_, StateError>(match want {
                    Some(d) if *d == stored => Stored::Same,
                    _ => Stored::Last(stored),
                })
            })?;
        }
        Ok(merge.finish(held.accounts.len()))
    }

    fn accounts(&self, f: &mut dyn FnMut(&str)) -> Result<usize> {
        let held = self.held();
        held.accounts.keys().for_each(|a| f(a));
        Ok(held.accounts.len())
    }

    fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        let held = self.held();
        Ok(held
            .accounts
            .iter()
            .map(|(a, line)| (a.as_str().into(), decode(line, names)))
            .collect())
    }

    fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        Ok(self.held().accounts.get(account).map(|l| decode(l, names)))
    }

    fn account_count(&self) -> Result<usize> {
        Ok(self.held().accounts.len())
    }

    fn record(&mut self, records: &[Record<'_>], names: &Names, serial: u64) -> Result<()> {
        if let Some(run) = self.run.as_mut() {
            run.entry.count(records);
        }
        let meta = Meta {
            serial,
            ..self.meta.clone()
        };
        self.commit(meta, |held| {
            let mut scratch = names.clone();
            for record in records {
                for (account, edit) in record.edits() {
                    let mut managed = held
                        .accounts
                        .get(account)
                        .map(|l| decode(l, &mut scratch))
                        .unwrap_or_default();
                    edit.apply(&mut managed);
                    if managed.is_empty() {
                        held.accounts.remove(account);
                    } else {
                        let line = ExportLine::new(account, &managed, &scratch);
                        held.accounts.insert(account.to_owned(), line);
                    }
                }
            }
        });
        Ok(())
    }

    fn record_ahead(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        hold: Box<dyn Send>,
    ) -> Result<super::backend::PendingRecord> {
        use std::sync::atomic::Ordering;
        self.record(records, names, serial)?;
        let Some(d) = &self.distant else {
            drop(hold);
            return Ok(super::backend::PendingRecord::done());
        };
        let accounts: usize = records.iter().map(|r| r.set.len() + r.removed.len()).sum();
        let kind = if records.iter().any(|r| !r.removed.is_empty()) {
            "remove"
        } else {
            "set"
        };
        let before = d.under_way.fetch_add(accounts, Ordering::SeqCst);
        d.most.fetch_max(before + accounts, Ordering::SeqCst);
        d.log.lock().expect("not poisoned").push((kind, before));
        let (hold, answer) = match d.answer_after {
            Some(after) => {
                let answered = d.answered.clone();
                let answer = std::thread::spawn(move || {
                    std::thread::sleep(after);
                    // Durable, then the hold given back: as the PostgreSQL store does.
                    answered.fetch_add(accounts, Ordering::SeqCst);
                    drop(hold);
                });
                (None, Some(answer))
            }
            None => (Some(hold), None),
        };
        Ok(super::backend::PendingRecord::sent(Under {
            accounts,
            hold,
            answer,
        }))
    }

    fn settle(&mut self, pending: Box<dyn super::backend::Pending>) -> Result<()> {
        let Under {
            accounts,
            hold,
            answer,
        } = *pending
            .into_any()
            .downcast::<Under>()
            .expect("a memory store settles only its own records");
        if let Some(answer) = answer {
            answer.join().expect("the answering thread does not panic");
        }
        // Answered now, when no thread answered it.
        drop(hold);
        let d = self
            .distant
            .as_ref()
            .expect("only a distant store sends ahead");
        if d.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StateError::new(ErrorKind::Failed, "memory store: refused"));
        }
        d.under_way
            .fetch_sub(accounts, std::sync::atomic::Ordering::SeqCst);
        d.log
            .lock()
            .expect("not poisoned")
            .push(("settled", accounts));
        Ok(())
    }

    fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()> {
        let meta = Meta {
            slots: slots.clone(),
            slot_types: types.clone(),
            serial,
            ..self.meta.clone()
        };
        self.commit(meta, |_| {});
        Ok(())
    }

    fn begin(&mut self, entry: HistoryEntry) {
        self.run = Some(Run::new(entry));
    }

    fn run_mut(&mut self) -> Option<&mut HistoryEntry> {
        self.run.as_mut().map(|r| &mut r.entry)
    }

    fn finish(&mut self, update: Box<dyn FnOnce(&mut HistoryEntry) + '_>) -> Result<()> {
        let Some(mut run) = self.run.take() else {
            return Ok(());
        };
        update(&mut run.entry);
        if run.written.is_some() {
            *self.held().history.last_mut().expect("written") = run.entry;
        }
        Ok(())
    }

    fn history(&self) -> Result<Vec<HistoryEntry>> {
        Ok(self.held().history.clone())
    }

    fn export(&self, out: &mut dyn Write) -> std::io::Result<u64> {
        let held = self.held();
        let header = ExportHeader::of(&self.meta, held.accounts.len() as u64, held.history.clone());
        let mut backup = Writer::new(out, &header)?;
        for line in held.accounts.values() {
            backup.line(line)?;
        }
        backup.finish()
    }

    fn restore_export(&mut self, export: &Export) -> Result<ExportHeader> {
        let header = &export.header;
        let own = super::history::restored(self.run.take(), header.serial, header.accounts);
        self.commit(header.restored_meta(), |held| {
            held.accounts = export
                .accounts()
                .map(|(a, values, tags)| {
                    let line = ExportLine {
                        account: a.to_owned(),
                        attrs: values
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                            .collect(),
                        tags: tags.iter().map(str::to_owned).collect(),
                    };
                    (a.to_owned(), line)
                })
                .collect();
            held.history = header.history.iter().cloned().chain([own]).collect();
        });
        Ok(header.clone())
    }
}
