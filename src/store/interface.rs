//! The store behind one interface: [`State`] holds any [`Backend`] — the embedded sled
//! directory or a project in PostgreSQL — and callers never see which, nor the encoding
//! either keeps.
//!
//! - Opening: the one place that picks a backend is `open_backend`, a match on
//!   [`StateLocation`]. Readers ([`State::open_existing`]) never create anything; writers
//!   ([`State::open`]) take the project's lock — waiting up to `--lock-timeout` — before they
//!   read the metadata, and create the store when missing. Then the core binds or checks the
//!   app (the same rule for every backend, [`State::bind`]).
//! - Planning: [`State::split`] hands the planner `L` only for the accounts whose desired
//!   attributes differ from what the store holds (each backend compares in its own encoding).
//! - Recording: [`State::record`] writes a group of confirmed batches in one atomic step, with
//!   the run's serial ([`State::next_serial`]); the PostgreSQL store checks the serial as a
//!   compare-and-swap.
//! - History, export and restore in one format for every backend, so a state moves between
//!   them with `state export` and `state restore`.

use std::collections::BTreeMap;
use std::io::Write;

use super::backend::{Backend, OpenRequest, Result};
use super::{ErrorKind, Export, ExportHeader, HistoryEntry, Meta, Record};
use crate::model::{Account, Managed, Names};
use crate::settings::StateLocation;

pub use super::backend::{Opening, PendingRecord};
pub use super::split::Split;
/// The one error, also where callers of the two-backend interface found it.
pub use super::StateError;

/// Opens the backend `location` names: the one place a backend is chosen.
fn open_backend(
    location: &StateLocation,
    request: OpenRequest<'_>,
) -> Result<Option<Box<dyn Backend>>> {
    match location {
        StateLocation::Sled(dir) => super::sled::open(dir, request),
        StateLocation::Postgres { url, name } => {
            super::postgres::backend::open(url, name.as_deref(), request)
        }
    }
}

/// An open store of last-applied state.
#[derive(Debug)]
pub struct State {
    backend: Box<dyn Backend>,
}

impl State {
    /// A state over any backend (the opening functions pick one from the settings).
    pub fn new(backend: Box<dyn Backend>) -> State {
        State { backend }
    }

    /// Opens an existing store without creating anything; `Ok(None)` when there is none yet.
    /// A writer holds the lock from here on (PostgreSQL: migrating older tables first).
    pub fn open_existing(
        location: &StateLocation,
        sdkappid: u32,
        host: &str,
        how: &Opening,
    ) -> Result<Option<State>> {
        let request = OpenRequest {
            sdkappid,
            host,
            how,
            create: false,
        };
        let Some(backend) = open_backend(location, request)? else {
            return Ok(None);
        };
        let mut state = State::new(backend);
        match &how.writer {
            // A writer binds a store that recorded nothing to this app.
            Some(_) => state.bind(sdkappid, host)?,
            None => state.check_belongs(sdkappid, host)?,
        }
        Ok(Some(state))
    }

    /// Opens the store of `sdkappid`/`host` for writing, creating it (with a new lineage) when
    /// missing, binding one that recorded nothing to this app, and refusing one that belongs
    /// to another app.
    pub fn open(
        location: &StateLocation,
        sdkappid: u32,
        host: &str,
        how: &Opening,
    ) -> Result<State> {
        let request = OpenRequest {
            sdkappid,
            host,
            how,
            create: true,
        };
        let backend = open_backend(location, request)?
            .expect("a backend asked to create its store returns one");
        let mut state = State::new(backend);
        state.bind(sdkappid, host)?;
        Ok(state)
    }

    pub fn meta(&self) -> &Meta {
        self.backend.meta()
    }

    /// How the store is named in messages: its path, or its database and name.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// A writer's: binds a store that recorded nothing yet (serial 0) to this app, so that a
    /// first apply that failed against the wrong app or endpoint does not block the corrected
    /// project; refuses a store of another app.
    pub fn bind(&mut self, sdkappid: u32, host: &str) -> Result<()> {
        let meta = self.meta();
        if meta.recorded_nothing() && !meta.belongs(sdkappid, host) {
            return self.backend.rebind(sdkappid, host);
        }
        self.check_belongs(sdkappid, host)
    }

    /// Refuses a store made for another app or endpoint host (not one that recorded nothing).
    pub fn check_belongs(&self, sdkappid: u32, host: &str) -> Result<()> {
        if self.meta().usable_by(sdkappid, host) {
            return Ok(());
        }
        Err(self.backend.other_app(sdkappid, host))
    }

    /// Splits the desired accounts (sorted) into those the store holds exactly and the rest,
    /// with `L` for the rest and for the accounts only in the store. See [`Split`].
    /// Stored accounts that `keep` refuses (outside `--target`) are only counted as managed.
    pub fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Split> {
        self.backend.split(desired, names, &keep)
    }

    /// Visits every managed account id in account order; returns how many there are.
    pub fn accounts(&self, mut f: impl FnMut(&str)) -> Result<usize> {
        self.backend.accounts(&mut f)
    }

    /// Every managed account with its last-applied attributes, in account order.
    pub fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        self.backend.load_last_applied(names)
    }

    /// One account's last-applied attributes.
    pub fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        self.backend.account(account, names)
    }

    pub fn account_count(&self) -> Result<usize> {
        self.backend.account_count()
    }

    /// Records a group of batches the API confirmed, atomically, with `serial`.
    pub fn record(&mut self, records: &[Record<'_>], names: &Names, serial: u64) -> Result<()> {
        self.backend.record(records, names, serial)
    }

    /// Sends a group's record ahead, without waiting for it to be durable where the store
    /// allows (PostgreSQL: the statement goes out now, the answer is awaited by
    /// [`State::settle`]); sled records at once. Until settled the group is not recorded.
    ///
    /// `hold` (e.g. the in-flight slots of the group's batches) is dropped once the store has
    /// answered, whether or not anyone is waiting yet.
    pub fn record_ahead(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        hold: impl Send + 'static,
    ) -> Result<PendingRecord> {
        self.backend
            .record_ahead(records, names, serial, Box::new(hold))
    }

    /// Sends the run's last group with the run's final history entry, as `update` leaves it:
    /// in one atomic step, ahead, where the store allows (PostgreSQL: the run ends when
    /// [`State::settle`] finds it durable; it commits only on top of every record sent before
    /// it), else recorded, then finished. `Err`: the group is not recorded (nor the entry
    /// updated); otherwise the record to settle and whether the final entry was written
    /// (always `Ok` when it goes with the record).
    pub fn record_last(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        update: impl FnOnce(&mut HistoryEntry),
    ) -> Result<(PendingRecord, Result<()>)> {
        self.backend
            .record_last(records, names, serial, Box::new(update))
    }

    /// Waits until a record sent ahead is durable (or fails).
    pub fn settle(&mut self, pending: PendingRecord) -> Result<()> {
        match pending.into_pending() {
            None => Ok(()),
            Some(pending) => self.backend.settle(pending),
        }
    }

    /// Records the attribute-name slots as the app now has them, with `serial`: a slot that
    /// keeps its name keeps its recorded account type (see `store::kept_types`).
    pub fn record_slots(&mut self, slots: &BTreeMap<u8, String>, serial: u64) -> Result<()> {
        let types = super::kept_types(self.meta(), slots);
        self.record_slot_types(slots, &types, serial)
    }

    /// Records the slots with their account types (only non-zero types are kept: 0 is what a
    /// slot without a recorded type reads as).
    pub fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()> {
        let types: BTreeMap<u8, u8> = types
            .iter()
            .filter(|(_, t)| **t != 0)
            .map(|(s, t)| (*s, *t))
            .collect();
        self.backend.record_slot_types(slots, &types, serial)
    }

    /// Begins a run: from now on every commit writes its history entry, in the same atomic
    /// step (see [`crate::store::history`]).
    pub fn begin(&mut self, entry: HistoryEntry) {
        self.backend.begin(entry)
    }

    /// The entry of the run under way.
    pub fn run_mut(&mut self) -> Option<&mut HistoryEntry> {
        self.backend.run_mut()
    }

    /// Ends the run, writing its final entry if it committed anything.
    pub fn finish(&mut self, update: impl FnOnce(&mut HistoryEntry)) -> Result<()> {
        self.backend.finish(Box::new(update))
    }

    /// Every history entry, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.backend.history()
    }

    /// Writes a backup (gzip JSON lines; the same format for every store).
    pub fn export(&self, mut out: impl Write) -> std::io::Result<u64> {
        self.backend.export(&mut out)
    }

    /// Replaces the content with a backup (of any store), read and checked whole by
    /// [`crate::store::read_export`], once the restore guard ([`super::export::guard`]) lets
    /// it: another app's backup never, another lineage or an older serial only with `force`.
    pub fn restore_export(&mut self, export: &Export, force: bool) -> Result<ExportHeader> {
        super::export::guard(&*self.backend, &export.header, force)?;
        self.backend.restore_export(export)
    }

    /// The serial the next changing run records: one more than now, never wrapping to 0
    /// (which would make the store look empty and unbound).
    pub fn next_serial(&self) -> Result<u64> {
        self.meta().serial.checked_add(1).ok_or_else(|| {
            StateError::new(
                ErrorKind::Conflict,
                format!(
                    "{}: the serial is at its maximum; restore a backup with a lower serial (`state restore --force`)",
                    self.describe()
                ),
            )
        })
    }
}
