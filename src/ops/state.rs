//! Reaching the store of a project, and the `state` use cases: list, show, export, restore,
//! history, rm. None of these needs the users files.

use std::io::Write;
use std::path::Path;

use crate::model::Names;
use crate::settings::Settings;
use crate::store::{ExportHeader, ExportLine, HistoryEntry, Store};
use crate::{Error, Result};

/// The existing store of this app, if any (never creates one).
pub fn open_existing(settings: &Settings) -> Result<Option<Store>> {
    let store = Store::open_existing(&settings.state_dir)?;
    if let Some(store) = &store {
        store.check_belongs(settings.sdkappid, settings.endpoint.host())?;
    }
    Ok(store)
}

/// The existing store of this app for reading only: nothing is written to the state directory
/// (which may be read-only), and writes through it are refused.
pub fn open_read_only(settings: &Settings) -> Result<Option<Store>> {
    let store = Store::open_read_only(&settings.state_dir)?;
    if let Some(store) = &store {
        store.check_belongs(settings.sdkappid, settings.endpoint.host())?;
    }
    Ok(store)
}

/// The store of this app, created when missing.
pub fn open_or_create(settings: &Settings) -> Result<Store> {
    Ok(Store::open(
        &settings.state_dir,
        settings.sdkappid,
        settings.endpoint.host(),
    )?)
}

/// The existing store of this app, read-only; its absence is an error saying how to make one.
pub fn require(settings: &Settings) -> Result<Store> {
    open_read_only(settings)?.ok_or_else(|| no_state(settings))
}

/// The existing store of this app, for writing (locked); its absence is an error.
pub fn require_writable(settings: &Settings) -> Result<Store> {
    open_existing(settings)?.ok_or_else(|| no_state(settings))
}

fn no_state(settings: &Settings) -> Error {
    Error::msg(format!(
        "there is no state at {} yet: run `timattr apply` or `timattr import` first, or `timattr state restore FILE`",
        settings.state_dir.display()
    ))
}

/// Hands every managed account to `each`, in order, until writing fails (a closed pipe is
/// not an error).
pub fn list(settings: &Settings, mut each: impl FnMut(&str) -> std::io::Result<()>) -> Result<()> {
    let store = require(settings)?;
    let mut written = Ok(());
    store.scan(|account, _| {
        if written.is_ok() {
            written = each(account);
        }
        Ok(())
    })?;
    crate::render::output::written(written)
}

/// One account's last-applied attributes.
pub fn show(settings: &Settings, account: &str) -> Result<ExportLine> {
    let store = require(settings)?;
    let mut names = Names::new(&settings.attributes);
    let attrs = store.account(account, &mut names)?.ok_or_else(|| {
        Error::msg(format!(
            "account {} is not managed (it is not in the state)",
            crate::render::quote(account)
        ))
    })?;
    Ok(ExportLine {
        account: account.to_owned(),
        attrs: attrs
            .iter()
            .map(|(n, v)| (names.get(n).to_owned(), v.to_owned()))
            .collect(),
    })
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub accounts: u64,
    pub lineage: String,
    pub serial: u64,
}

/// Writes a backup of the store to `out`, or to `file` when given.
pub fn export(settings: &Settings, file: Option<&Path>, out: impl Write) -> Result<Exported> {
    let store = require(settings)?;
    let accounts = match file {
        Some(path) => {
            // Replaced only once complete: a failed export keeps the previous backup.
            let mut count = 0;
            crate::files::write_atomically(path, |w| {
                count = store.export(w)?;
                Ok(())
            })
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            count
        }
        None => store
            .export(out)
            .map_err(|e| Error::io("cannot write the export", e))?,
    };
    let meta = store.meta();
    Ok(Exported {
        accounts,
        lineage: meta.lineage.clone(),
        serial: meta.serial,
    })
}

/// Replaces the store's content with a backup. All of the file is read and checked first
/// (limits, counts, the app it belongs to), so a bad one changes nothing and creates nothing;
/// then, restoring being how a lost store comes back, a missing store is created.
pub fn restore(settings: &Settings, file: &Path, force: bool) -> Result<ExportHeader> {
    let input = std::fs::File::open(file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    let export = crate::store::read_export(input)?;
    crate::store::check_app(&export.header, settings.sdkappid, settings.endpoint.host())?;
    let mut store = open_or_create(settings)?;
    Ok(store.restore_export(&export, force)?)
}

/// One entry per apply, import, fix or restore, oldest first.
pub fn history(settings: &Settings) -> Result<Vec<HistoryEntry>> {
    Ok(require(settings)?.history()?)
}

/// Forgets `accounts`: they leave the store (and become unmanaged) in one commit with the next
/// serial, so plans saved before are stale. Nothing is sent: their live values stay. Refuses,
/// changing nothing, when any of them is not managed. Returns the new serial.
pub fn rm(settings: &Settings, accounts: &[String]) -> Result<u64> {
    let mut store = require_writable(settings)?;
    let mut names = Names::new(&settings.attributes);
    let mut forgotten = Vec::with_capacity(accounts.len());
    let mut unknown = Vec::new();
    for account in accounts {
        match store.account(account, &mut names)? {
            Some(attrs) => forgotten.push((account.as_str(), attrs.names().collect::<Vec<_>>())),
            None => unknown.push(crate::render::quote(account)),
        }
    }
    if !unknown.is_empty() {
        return Err(Error::msg(format!(
            "not managed (not in the state), nothing was changed: {}",
            unknown.join(", ")
        )));
    }
    forgotten.sort_unstable();
    forgotten.dedup();
    let serial = store.meta().serial + 1;
    let record = crate::store::Record {
        set: Vec::new(),
        removed: forgotten.clone(),
    };
    store.record(&record, &names, serial)?;
    store.add_history(&HistoryEntry {
        time: crate::clock::now_unix(),
        serial,
        operation: "state-rm".into(),
        status: "complete".into(),
        accounts_set: 0,
        accounts_removed: forgotten.len() as u64,
        names_configured: 0,
        requests: 0,
        retries: 0,
    })?;
    Ok(serial)
}
