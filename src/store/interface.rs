//! The store behind one interface: [`State`] is either the embedded sled directory or a
//! project in PostgreSQL, and callers never see which encoding either keeps.
//!
//! - Opening: readers ([`State::open_existing`]) never create anything; writers
//!   ([`State::open`]) take the project's lock — waiting up to `--lock-timeout` — before they
//!   read the metadata, and create the store when missing. Both refuse a store of another app.
//! - Planning: [`State::split`] hands the planner `L` only for the accounts whose desired
//!   attributes differ from what the store holds (each backend compares in its own encoding).
//! - Recording: [`State::record`] writes a group of confirmed batches in one atomic step, with
//!   the run's serial; the PostgreSQL store checks the serial as a compare-and-swap.
//! - History, export and restore in one format for both, so a state moves between them with
//!   `state export` and `state restore`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use super::postgres::{PgError, PgStore, Target, WriterInfo};
use super::{Export, ExportHeader, HistoryEntry, Meta, Record, Store, StoreError};
use crate::model::{Account, Managed, Names};
use crate::settings::StateLocation;

pub use super::split::Split;

/// A group record sent ahead by [`State::record_ahead`], to be settled.
#[derive(Debug)]
pub enum PendingRecord {
    /// Already durable.
    Done,
    Postgres(super::postgres::write::Pending),
}

impl PendingRecord {
    /// Whether settling it would not wait.
    pub fn is_answered(&self) -> bool {
        match self {
            PendingRecord::Done => true,
            PendingRecord::Postgres(p) => p.is_answered(),
        }
    }
}

/// A store error of either backend; each names its store (path, or database and name).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Sled(#[from] StoreError),
    #[error(transparent)]
    Postgres(#[from] PgError),
}

type Result<T, E = StateError> = std::result::Result<T, E>;

/// How a command opens the state.
#[derive(Debug, Clone, Default)]
pub struct Opening {
    /// `None` for a reader (no lock in PostgreSQL); the writer's command otherwise, e.g.
    /// `apply`, named to a writer it keeps out.
    pub writer: Option<String>,
    /// How long to wait for a lock another process holds; `None` fails at once.
    pub lock_timeout: Option<Duration>,
}

/// The project's name in a shared database when `state.name` is not given.
pub fn default_name(sdkappid: u32) -> String {
    format!("app-{sdkappid}")
}

/// An open store of last-applied state.
#[derive(Debug)]
pub enum State {
    Sled(Store),
    Postgres(PgStore),
}

fn pg_target(location: &StateLocation, sdkappid: u32) -> Option<Result<Target>> {
    match location {
        StateLocation::Postgres { url, name } => {
            let name = name.clone().unwrap_or_else(|| default_name(sdkappid));
            Some(Target::parse(url, &name).map_err(StateError::from))
        }
        StateLocation::Sled(_) => None,
    }
}

/// Opens sled's directory, retrying its process lock until `timeout` has passed.
fn sled_waiting<T>(
    timeout: Option<Duration>,
    mut open: impl FnMut() -> Result<T, StoreError>,
) -> Result<T> {
    let deadline = timeout.map(|d| Instant::now() + d);
    let mut warned = false;
    loop {
        match open() {
            Err(e @ StoreError::Locked { .. }) if deadline.is_some_and(|d| Instant::now() < d) => {
                if !warned {
                    let held = e.to_string();
                    let held = held.split(": wait for it").next().unwrap_or(&held);
                    tracing::warn!("{held}; waiting for it (--lock-timeout)");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other.map_err(StateError::from),
        }
    }
}

impl State {
    /// Opens an existing store without creating anything; `Ok(None)` when there is none yet.
    /// A writer holds the lock from here on (PostgreSQL: migrating older tables first).
    pub fn open_existing(
        location: &StateLocation,
        sdkappid: u32,
        host: &str,
        how: &Opening,
    ) -> Result<Option<State>> {
        let state = match pg_target(location, sdkappid) {
            None => {
                let StateLocation::Sled(dir) = location else {
                    unreachable!("pg_target handles PostgreSQL")
                };
                // Readers open a sled directory read-only (nothing written, a read-only
                // directory is fine); writers take its lock.
                let open = || match &how.writer {
                    None => Store::open_read_only(dir),
                    Some(command) => Store::open_existing_as(dir, command),
                };
                sled_waiting(how.lock_timeout, open)?.map(State::Sled)
            }
            Some(target) => {
                let target = target?;
                match &how.writer {
                    None => PgStore::open_existing(target)?.map(State::Postgres),
                    Some(command) => PgStore::open_existing_writer(
                        target,
                        WriterInfo {
                            command: command.clone(),
                            lock_timeout: how.lock_timeout,
                        },
                    )?
                    .map(State::Postgres),
                }
            }
        };
        match (state, &how.writer) {
            // A writer binds a store that recorded nothing to this app.
            (Some(mut state), Some(_)) => {
                state.bind(sdkappid, host)?;
                Ok(Some(state))
            }
            (Some(state), None) => {
                state.check_belongs(sdkappid, host)?;
                Ok(Some(state))
            }
            (None, _) => Ok(None),
        }
    }

    /// Opens the store of `sdkappid`/`host` for writing, creating it (with a new lineage) when
    /// missing, and refusing one that belongs to another app.
    pub fn open(
        location: &StateLocation,
        sdkappid: u32,
        host: &str,
        how: &Opening,
    ) -> Result<State> {
        match pg_target(location, sdkappid) {
            None => {
                let StateLocation::Sled(dir) = location else {
                    unreachable!("pg_target handles PostgreSQL")
                };
                let command = how.writer.as_deref().unwrap_or("(writer)");
                sled_waiting(how.lock_timeout, || {
                    Store::open_as(dir, sdkappid, host, command)
                })
                .map(State::Sled)
            }
            Some(target) => {
                let who = WriterInfo {
                    command: how.writer.clone().unwrap_or_else(|| "(writer)".into()),
                    lock_timeout: how.lock_timeout,
                };
                Ok(State::Postgres(PgStore::open(
                    target?, sdkappid, host, who,
                )?))
            }
        }
    }

    pub fn meta(&self) -> &Meta {
        match self {
            State::Sled(s) => s.meta(),
            State::Postgres(p) => p.meta(),
        }
    }

    /// How the store is named in messages: its path, or its database and name.
    pub fn describe(&self) -> String {
        match self {
            State::Sled(s) => format!("state at {}", s.path().display()),
            State::Postgres(p) => p.target().describe(),
        }
    }

    /// A writer's: binds a store that recorded nothing yet (serial 0) to this app, or refuses
    /// a store of another app.
    pub fn bind(&mut self, sdkappid: u32, host: &str) -> Result<()> {
        match self {
            State::Sled(s) => Ok(s.bind(sdkappid, host)?),
            State::Postgres(p) => Ok(p.bind(sdkappid, host)?),
        }
    }

    /// Refuses a store made for another app or endpoint host (not one that recorded nothing).
    pub fn check_belongs(&self, sdkappid: u32, host: &str) -> Result<()> {
        match self {
            State::Sled(s) => Ok(s.check_belongs(sdkappid, host)?),
            State::Postgres(p) => Ok(p.check_belongs(sdkappid, host)?),
        }
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
        match self {
            State::Sled(s) => Ok(s.split(desired, names, keep)?),
            State::Postgres(p) => Ok(p.split(desired, names, keep)?),
        }
    }

    /// Visits every managed account id in account order; returns how many there are.
    pub fn accounts(&self, mut f: impl FnMut(&str)) -> Result<usize> {
        match self {
            State::Sled(s) => Ok(s.scan(|a, _| {
                f(a);
                Ok(())
            })?),
            State::Postgres(p) => Ok(p.accounts(f)?),
        }
    }

    /// Every managed account with its last-applied attributes, in account order.
    pub fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        match self {
            State::Sled(s) => Ok(s.load_last_applied(names)?),
            State::Postgres(p) => Ok(p.load_last_applied(names)?),
        }
    }

    /// One account's last-applied attributes.
    pub fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        match self {
            State::Sled(s) => Ok(s.account(account, names)?),
            State::Postgres(p) => Ok(p.account(account, names)?),
        }
    }

    pub fn account_count(&self) -> Result<usize> {
        match self {
            State::Sled(s) => Ok(s.account_count()?),
            State::Postgres(p) => Ok(p.account_count()?),
        }
    }

    /// Records a group of batches the API confirmed, atomically, with `serial`.
    pub fn record(&mut self, records: &[Record<'_>], names: &Names, serial: u64) -> Result<()> {
        match self {
            State::Sled(s) => {
                for record in records {
                    s.record(record, names, serial)?;
                }
                Ok(())
            }
            State::Postgres(p) => Ok(p.record(records, names, serial)?),
        }
    }

    /// Whether [`State::record_ahead`] can leave a record under way (PostgreSQL), rather than
    /// recording at once (sled).
    pub fn records_ahead(&self) -> bool {
        matches!(self, State::Postgres(_))
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
        match self {
            State::Sled(_) => {
                let recorded = self.record(records, names, serial);
                drop(hold);
                recorded.map(|()| PendingRecord::Done)
            }
            State::Postgres(p) => Ok(PendingRecord::Postgres(
                p.record_ahead(records, names, serial, hold)?,
            )),
        }
    }

    /// Waits until a record sent ahead is durable (or fails).
    pub fn settle(&mut self, pending: PendingRecord) -> Result<()> {
        match (self, pending) {
            (_, PendingRecord::Done) => Ok(()),
            (State::Postgres(p), PendingRecord::Postgres(pending)) => Ok(p.settle(pending)?),
            (State::Sled(_), PendingRecord::Postgres(_)) => {
                unreachable!("a sled store sends nothing ahead")
            }
        }
    }

    /// Records the attribute-name slots as the app now has them, with `serial`.
    pub fn record_slots(&mut self, slots: &BTreeMap<u8, String>, serial: u64) -> Result<()> {
        let types = super::kept_types(self.meta(), slots);
        self.record_slot_types(slots, &types, serial)
    }

    /// Records the slots with their account types (only non-zero types are kept).
    pub fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()> {
        match self {
            State::Sled(s) => Ok(s.record_slot_types(slots, types, serial)?),
            State::Postgres(p) => Ok(p.record_slot_types(slots, types, serial)?),
        }
    }

    /// Begins a run: from now on every commit writes its history entry, in the same atomic
    /// step (see [`crate::store::history`]).
    pub fn begin(&mut self, entry: HistoryEntry) {
        match self {
            State::Sled(s) => s.begin(entry),
            State::Postgres(p) => p.begin(entry),
        }
    }

    /// The entry of the run under way.
    pub fn run_mut(&mut self) -> Option<&mut HistoryEntry> {
        match self {
            State::Sled(s) => s.run_mut(),
            State::Postgres(p) => p.run_mut(),
        }
    }

    /// Ends the run, writing its final entry if it committed anything.
    pub fn finish(&mut self, update: impl FnOnce(&mut HistoryEntry)) -> Result<()> {
        match self {
            State::Sled(s) => Ok(s.finish(update)?),
            State::Postgres(p) => Ok(p.finish(update)?),
        }
    }

    /// Every history entry, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        match self {
            State::Sled(s) => Ok(s.history()?),
            State::Postgres(p) => Ok(p.history()?),
        }
    }

    /// Writes a backup (gzip JSON lines; the same format for both stores).
    pub fn export(&self, out: impl Write) -> std::io::Result<u64> {
        match self {
            State::Sled(s) => s.export(out),
            State::Postgres(p) => p.export(out),
        }
    }

    /// Replaces the content with a backup (of either store), read and checked whole by
    /// [`crate::store::read_export`].
    pub fn restore_export(&mut self, export: &Export, force: bool) -> Result<ExportHeader> {
        match self {
            State::Sled(s) => Ok(s.restore_export(export, force)?),
            State::Postgres(p) => Ok(p.restore_export(export, force)?),
        }
    }

    /// The serial the next changing run records: one more than now (never wrapping).
    pub fn next_serial(&self) -> Result<u64> {
        match self {
            State::Sled(s) => Ok(s.next_serial()?),
            State::Postgres(p) => p.meta().serial.checked_add(1).ok_or_else(|| {
                StateError::Postgres(PgError::Conflict {
                    target: p.target().describe(),
                    message: "the serial is at its maximum; restore a backup with a lower serial (`state restore --force`)".into(),
                })
            }),
        }
    }
}
