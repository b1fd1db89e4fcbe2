//! Reaching the store of a project (opened while the users files load, for the commands that
//! need both), and the `state` use cases: list, show, export, restore, history, rm. None of
//! these needs the users files.

use std::io::Write;
use std::path::Path;

use crate::model::Names;
use crate::settings::Settings;
use crate::store::interface::{Opening, State};
use crate::store::{ExportHeader, ExportLine, HistoryEntry};
use crate::{Error, Result};

/// Loads the users files while `open` opens the store on a thread of its own, so that
/// connecting to a distant database overlaps the parsing (DESIGN.md §7). Errors come as if one
/// ran after the other: a users-file error first (the opening then finishes on its own and its
/// store, with any lock it took, is dropped there; nobody waits for it), then the store's.
pub fn load_while_opening<T: Send + 'static>(
    settings: &Settings,
    open: impl FnOnce(&Settings) -> Result<T> + Send + 'static,
) -> Result<(crate::model::Desired, T)> {
    let owned = settings.clone();
    let opening = std::thread::Builder::new()
        .name("timattr-open".into())
        .spawn(move || open(&owned))
        .map_err(|e| Error::io("cannot start a thread", e))?;
    let desired = crate::desired::load_users(settings)?;
    let opened = match opening.join() {
        Ok(opened) => opened?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    Ok((desired, opened))
}

/// The existing store of this app for `command` to write, holding its lock (waiting up to
/// `--lock-timeout`), if there is one. Never creates one.
pub fn open_existing(settings: &Settings, command: &str) -> Result<Option<State>> {
    open_as(settings, Some(command))
}

/// The existing store of this app for reading only: nothing is written to it (a sled directory
/// may be read-only; PostgreSQL readers take no lock and read one snapshot).
pub fn open_read_only(settings: &Settings) -> Result<Option<State>> {
    open_as(settings, None)
}

fn open_as(settings: &Settings, writer: Option<&str>) -> Result<Option<State>> {
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

/// The existing store of this app, read-only; its absence is an error saying how to make one.
pub fn require(settings: &Settings) -> Result<State> {
    open_read_only(settings)?.ok_or_else(|| no_state(settings))
}

/// The existing store of this app, for `command` to write (locked); its absence is an error.
pub fn require_writable(settings: &Settings, command: &str) -> Result<State> {
    open_existing(settings, command)?.ok_or_else(|| no_state(settings))
}

fn no_state(settings: &Settings) -> Error {
    Error::msg(format!(
        "there is no {} yet: run `timattr apply` or `timattr import` first, or `timattr state restore FILE`",
        settings.state.describe()
    ))
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

/// One account's last-applied attributes.
pub fn show(settings: &Settings, account: &str) -> Result<ExportLine> {
    let store = require(settings)?;
    let mut names = Names::new(&settings.attributes);
    let managed = store.account(account, &mut names)?.ok_or_else(|| {
        Error::msg(format!(
            "account {} is not managed (it is not in the state)",
            crate::render::quote(account)
        ))
    })?;
    Ok(ExportLine::new(account, &managed, &names))
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub accounts: u64,
    pub lineage: String,
    pub serial: u64,
}

/// The store's export, through the redaction step when a secret is registered (the store
/// writes gzip: its text is masked inside, then compressed again).
fn export_redacted(store: &State, out: impl Write) -> std::io::Result<u64> {
    if !crate::redact::active() {
        return store.export(out);
    }
    let mut gz = crate::redact::Gzip::new(out);
    let count = store.export(&mut gz)?;
    gz.finish()?;
    Ok(count)
}

/// Writes a backup of the store to `out`, or to `file` when given.
pub fn export(settings: &Settings, file: Option<&Path>, out: impl Write) -> Result<Exported> {
    let store = require(settings)?;
    let accounts = match file {
        Some(path) => {
            // Replaced only once complete: a failed export keeps the previous backup.
            let mut count = 0;
            crate::files::write_atomically(path, |w| {
                count = export_redacted(&store, w)?;
                Ok(())
            })
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            count
        }
        None => {
            export_redacted(&store, out).map_err(|e| Error::io("cannot write the export", e))?
        }
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
    let export = crate::store::read_export(input).map_err(|e| {
        match crate::files::doc_kind(file) {
            // Another of the tool's files: say which, not what its parser missed.
            Some(kind @ crate::files::DocKind::Plan { .. }) => Error::msg(format!(
                "{} is not a state export: this is {}",
                file.display(),
                kind.described()
            )),
            _ => Error::from(e),
        }
    })?;
    crate::store::check_app(&export.header, settings.sdkappid, settings.endpoint.host())?;
    let mut store = open_or_create(settings, "state restore")?;
    // Its history entry says who restored, from where.
    store.begin(HistoryEntry::now("restore", Some(&settings.project_dir)));
    Ok(store.restore_export(&export, force)?)
}

/// One entry per apply, import, fix or restore, oldest first.
pub fn history(settings: &Settings) -> Result<Vec<HistoryEntry>> {
    Ok(require(settings)?.history()?)
}

/// Forgets `accounts`: they leave the store (and become unmanaged) in one commit with the next
/// serial, so plans saved before are stale. Nothing is sent: their live values stay. Refuses,
/// changing nothing, when any of them is not managed. An account given twice is forgotten
/// once. Returns the new serial and how many accounts were forgotten.
pub fn rm(settings: &Settings, accounts: &[String]) -> Result<(u64, usize)> {
    let mut store = require_writable(settings, "state rm")?;
    let mut names = Names::new(&settings.attributes);
    let mut forgotten = Vec::with_capacity(accounts.len());
    let mut unknown = Vec::new();
    for account in accounts {
        match store.account(account, &mut names)? {
            Some(managed) => forgotten.push((
                account.as_str(),
                managed.attrs.names().collect::<Vec<_>>(),
                managed.tags,
            )),
            None => unknown.push(crate::render::quote(account)),
        }
    }
    if !unknown.is_empty() {
        return Err(Error::msg(format!(
            "not managed (not in the state), nothing was changed: {}",
            unknown.join(", ")
        )));
    }
    forgotten.sort_unstable_by(|a, b| a.0.cmp(b.0));
    forgotten.dedup_by(|a, b| a.0 == b.0);
    let serial = store.meta().serial + 1;
    store.begin(HistoryEntry::now("state-rm", Some(&settings.project_dir)));
    let record = crate::store::Record {
        removed: forgotten.iter().map(|f| (f.0, f.1.clone())).collect(),
        tags_removed: forgotten
            .iter()
            .filter(|f| !f.2.is_empty())
            .map(|f| (f.0, f.2.as_slice()))
            .collect(),
        ..Default::default()
    };
    store.record(std::slice::from_ref(&record), &names, serial)?;
    store.finish(|entry| {
        entry.status = "complete".into();
        entry.accounts_removed = forgotten.len() as u64;
    })?;
    Ok((serial, forgotten.len()))
}
