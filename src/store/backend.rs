//! What a backend provides: [`Backend`], the object-safe trait every store implements (sled,
//! PostgreSQL; a test backend below). Modelled on cargo's `Source`: the backend only says how
//! it reads and writes its own encoding; the rules that are the same for every store
//! (binding an empty store, the serial's bound, the recorded slot types, the restore guard,
//! the export format, history, the split merge) live in the core, in [`super::State`] and
//! the shared modules.
//!
//! Adding a backend: one new module implementing [`Backend`] (with an `open` function taking
//! an [`OpenRequest`]) and one arm in `State`'s opening match on
//! [`crate::settings::StateLocation`].

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use super::{Export, ExportHeader, HistoryEntry, Meta, Record, Split, StateError};
use crate::model::{Account, Managed, Names};

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// How a command opens the state.
#[derive(Debug, Clone, Default)]
pub struct Opening {
    /// `None` for a reader (no lock in PostgreSQL); the writer's command otherwise, e.g.
    /// `apply`, named to a writer it keeps out.
    pub writer: Option<String>,
    /// How long to wait for a lock another process holds; `None` fails at once.
    pub lock_timeout: Option<Duration>,
}

/// What a backend's `open` is asked for. Binding the store to the app is the core's (see
/// [`super::State::bind`]); a backend only creates a missing store for `sdkappid`/`host`.
#[derive(Debug, Clone, Copy)]
pub struct OpenRequest<'a> {
    pub sdkappid: u32,
    pub host: &'a str,
    pub how: &'a Opening,
    /// Create the store when missing (a writer's [`super::State::open`]); otherwise a
    /// missing store is `Ok(None)`.
    pub create: bool,
}

impl OpenRequest<'_> {
    /// The writer's command, as the lock names it.
    pub fn command(&self) -> &str {
        self.how.writer.as_deref().unwrap_or("(writer)")
    }
}

/// A record a backend sent ahead and has not confirmed yet (see [`Backend::record_ahead`]).
pub trait Pending: std::fmt::Debug + Send {
    /// Whether settling it would not wait.
    fn is_answered(&self) -> bool;
    /// For the backend that made it to take it back in [`Backend::settle`].
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

/// A group record sent ahead by [`super::State::record_ahead`], to be settled: already
/// durable, or under way in the backend that sent it.
#[derive(Debug)]
pub struct PendingRecord(Option<Box<dyn Pending>>);

impl PendingRecord {
    /// A record already durable.
    pub fn done() -> PendingRecord {
        PendingRecord(None)
    }

    /// A record under way.
    pub fn sent(pending: impl Pending + 'static) -> PendingRecord {
        PendingRecord(Some(Box::new(pending)))
    }

    /// Whether settling it would not wait.
    pub fn is_answered(&self) -> bool {
        self.0.as_ref().is_none_or(|p| p.is_answered())
    }

    pub(super) fn into_pending(self) -> Option<Box<dyn Pending>> {
        self.0
    }
}

/// An open store of last-applied state, as one backend keeps it. Callers use it through
/// [`super::State`], which adds the shared rules; see the methods there for what each does.
pub trait Backend: std::fmt::Debug + Send {
    /// The metadata as of the last commit this store read or made.
    fn meta(&self) -> &Meta;

    /// How the store is named in messages: its path, or its database and name (each message
    /// of the store starts with it).
    fn describe(&self) -> String;

    /// The refusal of a store bound to another app, in the backend's words (each says how to
    /// give the project its own store).
    fn other_app(&self, sdkappid: u32, host: &str) -> StateError;

    /// Writes `sdkappid`/`host` into the metadata of a store that recorded nothing (serial 0);
    /// the core decides when (see [`super::State::bind`]).
    fn rebind(&mut self, sdkappid: u32, host: &str) -> Result<()>;

    fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Split>;

    fn accounts(&self, f: &mut dyn FnMut(&str)) -> Result<usize>;

    fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>>;

    fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>>;

    fn account_count(&self) -> Result<usize>;

    /// Records a group of batches in one atomic step, with `serial` (and the run's history
    /// entry, when a run is under way).
    fn record(&mut self, records: &[Record<'_>], names: &Names, serial: u64) -> Result<()>;

    /// Sends a group's record ahead; `hold` is dropped once the store has answered. By
    /// default it records at once (and drops `hold`): a backend that can pipeline its writes
    /// returns [`PendingRecord::sent`] and overrides [`Backend::settle`] too.
    fn record_ahead(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        hold: Box<dyn Send>,
    ) -> Result<PendingRecord> {
        let recorded = self.record(records, names, serial);
        drop(hold);
        recorded.map(|()| PendingRecord::done())
    }

    /// Sends the run's last group with its final entry (see [`super::State::record_last`]).
    /// By default: recorded, then finished. A backend that pipelines its writes sends both
    /// in one step, to be settled like any record sent ahead, and ends the run once durable.
    fn record_last(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        update: Box<dyn FnOnce(&mut HistoryEntry) + '_>,
    ) -> Result<(PendingRecord, Result<()>)> {
        self.record(records, names, serial)?;
        Ok((PendingRecord::done(), self.finish(update)))
    }

    /// Waits for a record this backend sent ahead.
    fn settle(&mut self, pending: Box<dyn Pending>) -> Result<()> {
        unreachable!(
            "{} sent nothing ahead to settle: {pending:?}",
            self.describe()
        )
    }

    /// Records the slots with their account types (the core passes only non-zero ones).
    fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()>;

    fn begin(&mut self, entry: HistoryEntry);

    fn run_mut(&mut self) -> Option<&mut HistoryEntry>;

    fn finish(&mut self, update: Box<dyn FnOnce(&mut HistoryEntry) + '_>) -> Result<()>;

    fn history(&self) -> Result<Vec<HistoryEntry>>;

    /// Writes a backup in the one export format (see [`super::export`]).
    fn export(&self, out: &mut dyn Write) -> std::io::Result<u64>;

    /// Replaces the content with a backup; the core has run its restore guard
    /// ([`super::export::guard`]) first.
    fn restore_export(&mut self, export: &Export) -> Result<ExportHeader>;
}
