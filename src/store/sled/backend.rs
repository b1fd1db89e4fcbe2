//! The sled store as a [`Backend`]: opening a directory (waiting for its lock), and sled's
//! typed errors mapped onto the core's kinds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{SledStore, StoreError};
use crate::model::{Account, Managed, Names};
use crate::store::backend::{Backend, OpenRequest, Result};
use crate::store::{
    ErrorKind, Export, ExportHeader, HistoryEntry, Meta, Record, Split, StateError,
};

impl From<StoreError> for StateError {
    fn from(e: StoreError) -> StateError {
        let kind = match &e {
            StoreError::Locked { .. } => ErrorKind::Locked,
            StoreError::Corrupt { .. } => ErrorKind::Corrupt,
            StoreError::NewerFormat { .. } => ErrorKind::NewerFormat,
            StoreError::OlderFormat { .. } => ErrorKind::OlderFormat,
            StoreError::OtherApp { .. } => ErrorKind::OtherApp,
            StoreError::Restore(_) => ErrorKind::Restore,
            StoreError::Sled { .. } => ErrorKind::Failed,
        };
        StateError::new(kind, e)
    }
}

/// Opens the sled store in `dir`: readers a private read-only copy (nothing written, a
/// read-only directory is fine), writers with the directory's lock, waiting for it up to
/// `--lock-timeout`.
pub fn open(dir: &Path, request: OpenRequest<'_>) -> Result<Option<Box<dyn Backend>>> {
    let timeout = request.how.lock_timeout;
    let store = match (&request.how.writer, request.create) {
        (_, true) => waiting(timeout, || {
            SledStore::open_as(dir, request.sdkappid, request.host, request.command()).map(Some)
        })?,
        (None, false) => waiting(timeout, || SledStore::open_read_only(dir))?,
        (Some(command), false) => waiting(timeout, || SledStore::open_existing_as(dir, command))?,
    };
    Ok(store.map(|s| Box::new(s) as Box<dyn Backend>))
}

/// Opens sled's directory, retrying its process lock until `timeout` has passed.
fn waiting<T>(
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

impl Backend for SledStore {
    fn meta(&self) -> &Meta {
        SledStore::meta(self)
    }

    fn describe(&self) -> String {
        format!("state at {}", self.path().display())
    }

    fn other_app(&self, sdkappid: u32, host: &str) -> StateError {
        SledStore::other_app(self, sdkappid, host).into()
    }

    fn rebind(&mut self, sdkappid: u32, host: &str) -> Result<()> {
        Ok(SledStore::rebind(self, sdkappid, host)?)
    }

    fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Split> {
        Ok(SledStore::split(self, desired, names, keep)?)
    }

    fn accounts(&self, f: &mut dyn FnMut(&str)) -> Result<usize> {
        Ok(self.scan(|a, _| {
            f(a);
            Ok(())
        })?)
    }

    fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        Ok(SledStore::load_last_applied(self, names)?)
    }

    fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        Ok(SledStore::account(self, account, names)?)
    }

    fn account_count(&self) -> Result<usize> {
        Ok(SledStore::account_count(self)?)
    }

    fn record(&mut self, records: &[Record<'_>], names: &Names, serial: u64) -> Result<()> {
        for record in records {
            SledStore::record(self, record, names, serial)?;
        }
        Ok(())
    }

    fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()> {
        Ok(SledStore::record_slot_types(self, slots, types, serial)?)
    }

    fn begin(&mut self, entry: HistoryEntry) {
        SledStore::begin(self, entry)
    }

    fn run_mut(&mut self) -> Option<&mut HistoryEntry> {
        SledStore::run_mut(self)
    }

    fn finish(&mut self, update: Box<dyn FnOnce(&mut HistoryEntry) + '_>) -> Result<()> {
        Ok(SledStore::finish(self, update)?)
    }

    fn history(&self) -> Result<Vec<HistoryEntry>> {
        Ok(SledStore::history(self)?)
    }

    fn export(&self, out: &mut dyn Write) -> std::io::Result<u64> {
        SledStore::export(self, out)
    }

    fn restore_export(&mut self, export: &Export) -> Result<ExportHeader> {
        Ok(SledStore::restore_export(self, export)?)
    }
}
