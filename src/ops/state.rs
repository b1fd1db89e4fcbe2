//! Reaching the store of a project, and the `state` use cases: list, show, export, restore,
//! history. None of these needs the users files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::model::Names;
use crate::settings::Settings;
use crate::store::interface::{Opening, State};
use crate::store::{ExportHeader, HistoryEntry};
use crate::{Error, Result};

/// The existing store of this app for reading, if any (never creates one). A sled
/// directory is still opened by one process at a time; PostgreSQL readers take no lock.
pub fn open_existing(settings: &Settings) -> Result<Option<State>> {
    open_existing_as(settings, None)
}

/// The existing store of this app for `command` to write, holding its lock (waiting up to
/// `--lock-timeout`), if there is one.
pub fn open_existing_writer(settings: &Settings, command: &str) -> Result<Option<State>> {
    open_existing_as(settings, Some(command))
}

fn open_existing_as(settings: &Settings, writer: Option<&str>) -> Result<Option<State>> {
    let how = Opening {
        writer: writer.map(str::to_owned),
        lock_timeout: settings.lock_timeout,
    };
    Ok(State::open_existing(
        &settings.state,
        settings.sdkappid,
        settings.endpoint.host(),
        &how,
    )?)
}

/// The store of this app for `command` to write, created when missing.
pub fn open_or_create(settings: &Settings, command: &str) -> Result<State> {
    let how = Opening {
        writer: Some(command.to_owned()),
        lock_timeout: settings.lock_timeout,
    };
    Ok(State::open(
        &settings.state,
        settings.sdkappid,
        settings.endpoint.host(),
        &how,
    )?)
}

/// The existing store of this app; its absence is an error saying how to make one.
pub fn require(settings: &Settings) -> Result<State> {
    open_existing(settings)?.ok_or_else(|| {
        Error::msg(format!(
            "there is no {} yet: run `timattr apply` or `timattr import` first, or `timattr state restore FILE`",
            settings.state.describe()
        ))
    })
}

/// Hands every managed account to `each`, in order, until writing fails (a closed pipe is
/// not an error).
pub fn list(settings: &Settings, mut each: impl FnMut(&str) -> std::io::Result<()>) -> Result<()> {
    let store = require(settings)?;
    let mut written = Ok(());
    store.accounts(|account| {
        if written.is_ok() {
            written = each(account);
        }
    })?;
    crate::render::output::written(written)
}

/// One account's last-applied attributes, name → value.
pub fn show(settings: &Settings, account: &str) -> Result<BTreeMap<String, String>> {
    let store = require(settings)?;
    let mut names = Names::new(&settings.attributes);
    let attrs = store.account(account, &mut names)?.ok_or_else(|| {
        Error::msg(format!(
            "account {account:?} is not managed (it is not in the state)"
        ))
    })?;
    Ok(attrs
        .iter()
        .map(|(n, v)| (names.get(n).to_owned(), v.to_owned()))
        .collect())
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
            let context = || format!("cannot write {}", path.display());
            let f = std::fs::File::create(path).map_err(|e| Error::io(context(), e))?;
            store
                .export(std::io::BufWriter::new(f))
                .map_err(|e| Error::io(context(), e))?
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

/// Replaces the store's content with a backup. Restoring is how a lost store comes back, so a
/// missing one is created; the export's own app and host are checked against the project.
pub fn restore(settings: &Settings, file: &Path, force: bool) -> Result<ExportHeader> {
    let input = std::fs::File::open(file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    let mut store = open_or_create(settings, "state restore")?;
    Ok(store.restore(std::io::BufReader::new(input), force)?)
}

/// Forgets `accounts` (all of them managed, or nothing changes), as one write under the
/// lock that bumps the serial. Returns the new serial.
pub fn forget(settings: &Settings, accounts: &[String]) -> Result<u64> {
    let mut store = open_existing_writer(settings, "state rm")?.ok_or_else(|| {
        Error::msg(format!(
            "there is no {} yet: nothing to forget",
            settings.state.describe()
        ))
    })?;
    let mut names = Names::new(&settings.attributes);
    let mut unknown = Vec::new();
    for account in accounts {
        if store.account(account, &mut names)?.is_none() {
            unknown.push(account.as_str());
        }
    }
    if !unknown.is_empty() {
        return Err(Error::msg(format!(
            "not managed (not in the state), so nothing was forgotten: {}",
            unknown.join(", ")
        )));
    }
    let serial = store.meta().serial + 1;
    let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
    store.forget(&accounts, serial)?;
    store.add_history(&HistoryEntry {
        time: crate::store::now_unix(),
        serial,
        operation: "rm".into(),
        status: "complete".into(),
        accounts_set: 0,
        accounts_removed: accounts.len() as u64,
        names_configured: 0,
        requests: 0,
        retries: 0,
    })?;
    Ok(serial)
}

/// One entry per apply, import, fix or restore, oldest first.
pub fn history(settings: &Settings) -> Result<Vec<HistoryEntry>> {
    Ok(require(settings)?.history()?)
}
