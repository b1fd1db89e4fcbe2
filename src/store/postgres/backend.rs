//! The PostgreSQL store as a [`Backend`]: opening a project from the state URL, pipelined
//! records (the one backend that overrides `record_ahead`/`settle`/`record_last`), and PostgreSQL's typed
//! errors mapped onto the core's kinds.

use std::collections::BTreeMap;
use std::io::Write;

use super::write::Pending as PgPending;
use super::{PgError, PgStore, Target, WriterInfo};
use crate::model::{Account, Managed, Names};
use crate::settings::DatabaseUrl;
use crate::store::backend::{Backend, OpenRequest, Pending, PendingRecord, Result};
use crate::store::{
    ErrorKind, Export, ExportHeader, HistoryEntry, Meta, Record, Split, StateError,
};

impl From<PgError> for StateError {
    fn from(e: PgError) -> StateError {
        let kind = match &e {
            PgError::Unreachable { .. } | PgError::NoDatabase { .. } | PgError::Tls { .. } => {
                ErrorKind::Unreachable
            }
            PgError::Locked { .. } => ErrorKind::Locked,
            PgError::NewerSchema { .. } => ErrorKind::NewerFormat,
            PgError::OlderSchema { .. } => ErrorKind::OlderFormat,
            PgError::OtherApp { .. } => ErrorKind::OtherApp,
            PgError::Corrupt { .. } => ErrorKind::Corrupt,
            PgError::Conflict { .. } => ErrorKind::Conflict,
            PgError::Restore(_) => ErrorKind::Restore,
            PgError::BadUrl { .. } | PgError::Database { .. } => ErrorKind::Failed,
        };
        StateError::new(kind, e)
    }
}

/// The project's name in a shared database when `state.name` is not given.
pub fn default_name(sdkappid: u32) -> String {
    format!("app-{sdkappid}")
}

/// Opens the project `name` (by default `app-SDKAPPID`) in the database of `url`: a reader
/// in one snapshot without a lock, a writer with the project's lock.
pub fn open(
    url: &DatabaseUrl,
    name: Option<&str>,
    request: OpenRequest<'_>,
) -> Result<Option<Box<dyn Backend>>> {
    let name = name.map_or_else(|| default_name(request.sdkappid), str::to_owned);
    let target = Target::parse(url, &name)?;
    let writer = || WriterInfo {
        command: request.command().to_owned(),
        lock_timeout: request.how.lock_timeout,
    };
    let store = match (&request.how.writer, request.create) {
        (_, true) => Some(PgStore::open(
            target,
            request.sdkappid,
            request.host,
            writer(),
        )?),
        (None, false) => PgStore::open_existing(target)?,
        (Some(_), false) => PgStore::open_existing_writer(target, writer())?,
    };
    Ok(store.map(|s| Box::new(s) as Box<dyn Backend>))
}

impl Pending for PgPending {
    fn is_answered(&self) -> bool {
        PgPending::is_answered(self)
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl Backend for PgStore {
    fn meta(&self) -> &Meta {
        PgStore::meta(self)
    }

    fn describe(&self) -> String {
        self.target().describe()
    }

    fn other_app(&self, sdkappid: u32, host: &str) -> StateError {
        let meta = PgStore::meta(self);
        PgError::OtherApp {
            target: self.target().describe(),
            store_app: i64::from(meta.sdkappid),
            store_host: meta.endpoint_host.clone(),
            project_app: sdkappid,
            project_host: host.to_owned(),
        }
        .into()
    }

    fn rebind(&mut self, sdkappid: u32, host: &str) -> Result<()> {
        Ok(PgStore::rebind(self, sdkappid, host)?)
    }

    fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Split> {
        Ok(PgStore::split(self, desired, names, keep)?)
    }

    fn accounts(&self, f: &mut dyn FnMut(&str)) -> Result<usize> {
        Ok(PgStore::accounts(self, f)?)
    }

    fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        Ok(PgStore::load_last_applied(self, names)?)
    }

    fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        Ok(PgStore::account(self, account, names)?)
    }

    fn account_count(&self) -> Result<usize> {
        Ok(PgStore::account_count(self)?)
    }

    fn record(&mut self, records: &[Record<'_>], names: &Names, serial: u64) -> Result<()> {
        Ok(PgStore::record(self, records, names, serial)?)
    }

    fn record_ahead(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        hold: Box<dyn Send>,
    ) -> Result<PendingRecord> {
        let pending = PgStore::record_ahead(self, records, names, serial, hold)?;
        Ok(PendingRecord::sent(pending))
    }

    fn record_last(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        update: Box<dyn FnOnce(&mut HistoryEntry) + '_>,
    ) -> Result<(PendingRecord, Result<()>)> {
        let pending = PgStore::record_last(self, records, names, serial, update)?;
        Ok((PendingRecord::sent(pending), Ok(())))
    }

    fn settle(&mut self, pending: Box<dyn Pending>) -> Result<()> {
        let pending = pending
            .into_any()
            .downcast::<PgPending>()
            .unwrap_or_else(|_| unreachable!("a PostgreSQL store settles only its own records"));
        Ok(PgStore::settle(self, *pending)?)
    }

    fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()> {
        Ok(PgStore::record_slot_types(self, slots, types, serial)?)
    }

    fn begin(&mut self, entry: HistoryEntry) {
        PgStore::begin(self, entry)
    }

    fn run_mut(&mut self) -> Option<&mut HistoryEntry> {
        PgStore::run_mut(self)
    }

    fn finish(&mut self, update: Box<dyn FnOnce(&mut HistoryEntry) + '_>) -> Result<()> {
        Ok(PgStore::finish(self, update)?)
    }

    fn history(&self) -> Result<Vec<HistoryEntry>> {
        Ok(PgStore::history(self)?)
    }

    fn export(&self, out: &mut dyn Write) -> std::io::Result<u64> {
        PgStore::export(self, out)
    }

    fn restore_export(&mut self, export: &Export) -> Result<ExportHeader> {
        Ok(PgStore::restore_export(self, export)?)
    }
}
