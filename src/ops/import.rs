//! The `import` use case: adopt an existing app by recording, for each account of the users
//! files, the live values of the names it has there as last-applied. Over an existing state
//! the adoption is previewed ([`preview`]) and confirmed before anything is recorded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::connect::{self, Connection};
use crate::apply::{LiveAttrs, Runner, Signal};
use crate::model::{Account, Attrs, Desired, Managed, NameIdx, Names};
use crate::plan::{Action, Change, Plan};
use crate::settings::Settings;
use crate::store::interface::State;
use crate::store::{HistoryEntry, Record};
use crate::{Error, Result};

/// What import adopts for one account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Adopted {
    /// Wanted names that have a live value: recorded with it.
    pub have: Attrs,
    /// Wanted names without a live value: dropped from last-applied, so the next plan sets them.
    pub missing: Vec<NameIdx>,
}

/// The adoption rule: only the names the account has in the files (`wanted`) are adopted, so a
/// live value of another name stays unmanaged and the next plan leaves it alone.
pub fn adopt(wanted: &Attrs, live: Option<&BTreeMap<String, String>>, names: &Names) -> Adopted {
    let mut adopted = Adopted::default();
    for n in wanted.names() {
        match live.and_then(|v| v.get(names.get(n))) {
            Some(v) => adopted.have.insert(n, v.as_str().into()),
            None => adopted.missing.push(n),
        }
    }
    adopted
}

/// How an import ended.
#[derive(Debug)]
pub struct Imported {
    /// Accounts of the users files.
    pub read: usize,
    /// Accounts recorded with at least one live value.
    pub recorded: u64,
    pub requests: u64,
    pub retries: u64,
    pub elapsed: Duration,
    pub interrupted: Option<Signal>,
}

/// What the command line asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    pub auto_approve: bool,
    /// Whether someone can be asked (stdin is a terminal).
    pub interactive: bool,
}

/// What an import over an existing state needs from the person running it.
pub trait Adoption {
    /// Shows what would be recorded: `preview` takes the state to the adopted values.
    fn show(&mut self, preview: &Plan) -> Result<()>;
    /// Asks for confirmation; `Err` when it is refused.
    fn confirm(&mut self) -> Result<()>;
}

/// Adopts the live values of the desired accounts. Over an existing state (which it would
/// overwrite) it reads everything first, shows what it would record and asks, unless
/// `--auto-approve`; a non-terminal without it is refused before anything is read.
pub fn import(
    settings: &Settings,
    desired: Desired,
    opts: ImportOptions,
    review: &mut dyn Adoption,
) -> Result<Imported> {
    if opts.auto_approve {
        return import_streaming(settings, desired);
    }
    let Some(store) = super::state::open_existing(settings, "import")? else {
        return import_streaming(settings, desired);
    };
    if !opts.interactive {
        return Err(Error::msg(
            "refusing to import over the existing state without confirmation: stdin is not a terminal; run again with --auto-approve",
        ));
    }
    import_reviewed(settings, desired, store, review)
}

/// Reads and records chunk by chunk, without asking.
fn import_streaming(settings: &Settings, desired: Desired) -> Result<Imported> {
    let mut store = super::state::open_or_create(settings, "import")?;
    let serial = store.next_serial()?;
    let started = Instant::now();
    let names = desired.names;
    let (accounts, wanted): (Vec<Account>, Vec<Attrs>) = desired
        .accounts
        .into_iter()
        .map(|(a, m)| (a, m.attrs))
        .unzip();
    let mut imported = connect::runtime()?.block_on(async {
        let interrupt = connect::signals();
        let connection = Connection::open(settings).await?;
        let runner = connection.runner(settings);
        let result = read_and_record(
            &runner, &mut store, serial, &names, &accounts, &wanted, interrupt,
        )
        .await;
        connection.close().await?;
        result
    })?;
    imported.elapsed = started.elapsed();
    write_history(&mut store, serial, &imported)?;
    Ok(imported)
}

fn write_history(store: &mut State, serial: u64, imported: &Imported) -> Result<()> {
    store.add_history(&HistoryEntry {
        time: crate::clock::now_unix(),
        serial,
        operation: "import".into(),
        status: if imported.interrupted.is_none() {
            "complete"
        } else {
            "interrupted"
        }
        .into(),
        accounts_set: imported.recorded,
        accounts_removed: 0,
        names_configured: 0,
        requests: imported.requests,
        retries: imported.retries,
    })?;
    Ok(())
}

/// Over an existing state: read every account, show what adopting would record, ask, then
/// record (nothing is written before the answer).
fn import_reviewed(
    settings: &Settings,
    desired: Desired,
    mut store: State,
    review: &mut dyn Adoption,
) -> Result<Imported> {
    let started = Instant::now();
    let mut names = desired.names.clone();
    let last = store.load_last_applied(&mut names)?;
    let (accounts, wanted): (Vec<Account>, Vec<Attrs>) = desired
        .accounts
        .into_iter()
        .map(|(a, m)| (a, m.attrs))
        .unzip();
    let (read, slots) = connect::runtime()?.block_on(async {
        let interrupt = connect::signals();
        let connection = Connection::open(settings).await?;
        let runner = connection.runner(settings);
        let result = read_adoptions(&runner, &names, &accounts, &wanted, interrupt).await;
        connection.close().await?;
        result
    })?;
    let (mut imported, adopted) = read;
    if imported.interrupted.is_some() {
        imported.elapsed = started.elapsed();
        return Ok(imported);
    }
    let preview = preview(&names, &last, &accounts, &adopted);
    review.show(&preview)?;
    if preview.changes.is_empty() {
        imported.elapsed = started.elapsed();
        return Ok(imported);
    }
    review.confirm()?;
    let serial = store.meta().serial + 1;
    store.record_slots(&slots, serial)?;
    for (chunk, adopted) in accounts
        .chunks(crate::model::limits::MAX_BATCH)
        .zip(adopted.chunks(crate::model::limits::MAX_BATCH))
    {
        let record = Record {
            set: chunk
                .iter()
                .zip(adopted)
                .filter(|(_, a)| !a.have.is_empty())
                .map(|(c, a)| (&**c, &a.have))
                .collect(),
            removed: chunk
                .iter()
                .zip(adopted)
                .filter(|(_, a)| !a.missing.is_empty())
                .map(|(c, a)| (&**c, a.missing.clone()))
                .collect(),
            ..Record::default()
        };
        store.record(std::slice::from_ref(&record), &names, serial)?;
        imported.recorded += record.set.len() as u64;
    }
    imported.elapsed = started.elapsed();
    write_history(&mut store, serial, &imported)?;
    Ok(imported)
}

/// Reads every account's live values into what adopting them would record.
async fn read_adoptions(
    runner: &Runner,
    names: &Names,
    accounts: &[Account],
    wanted: &[Attrs],
    interrupt: impl std::future::Future<Output = Signal>,
) -> Result<((Imported, Vec<Adopted>), BTreeMap<u8, String>)> {
    let slots = runner
        .call("im_get_attr_name", || runner.client.get_attr_name())
        .await?;
    let mut adopted = vec![Adopted::default(); accounts.len()];
    let on_chunk = |first: usize, live: LiveAttrs| {
        let end = (first + crate::model::limits::MAX_BATCH).min(accounts.len());
        for i in first..end {
            adopted[i] = adopt(&wanted[i], live.get(&*accounts[i]), names);
        }
    };
    let read = runner.read_attrs(accounts, on_chunk, interrupt).await;
    let imported = Imported {
        read: accounts.len(),
        recorded: 0,
        requests: runner.stats.requests(),
        retries: runner.stats.retries(),
        elapsed: Duration::ZERO,
        interrupted: read.map_err(Error::from)?,
    };
    Ok(((imported, adopted), slots))
}

/// The changes adopting would make to the state: before = last-applied, set = live values
/// that differ from it, remove = wanted names without a live value that the state has.
pub fn preview(
    names: &Names,
    last: &[(Account, Managed)],
    accounts: &[Account],
    adopted: &[Adopted],
) -> Plan {
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (account, a) in accounts.iter().zip(adopted) {
        let before = match last.binary_search_by(|(l, _)| l.cmp(account)) {
            Ok(i) => Some(last[i].1.attrs.clone()),
            Err(_) => None,
        };
        let had = before.clone().unwrap_or_default();
        let set: Attrs = a
            .have
            .iter()
            .filter(|(n, v)| had.get(*n) != Some(*v))
            .map(|(n, v)| (n, v.into()))
            .collect();
        let remove: Vec<NameIdx> = a
            .missing
            .iter()
            .copied()
            .filter(|n| had.contains(*n))
            .collect();
        if set.is_empty() && remove.is_empty() {
            unchanged += 1;
            continue;
        }
        changes.push(Change {
            account: account.clone(),
            action: if before.is_some() {
                Action::Change
            } else {
                Action::Add
            },
            set,
            remove,
            before: had,
            tags: Default::default(),
        });
    }
    Plan {
        names: names.clone(),
        attribute_names: BTreeMap::new(),
        changes,
        unchanged,
        managed: last.len(),
        targets: Vec::new(),
    }
}

/// Records the app's slots, then reads the accounts and records each answered chunk.
async fn read_and_record(
    runner: &Runner,
    store: &mut State,
    serial: u64,
    names: &Names,
    accounts: &[Account],
    wanted: &[Attrs],
    interrupt: impl std::future::Future<Output = Signal>,
) -> Result<Imported> {
    let slots = runner
        .call("im_get_attr_name", || runner.client.get_attr_name())
        .await?;
    store.record_slots(&slots, serial)?;
    let mut recorded = 0u64;
    let mut store_error = None;
    let on_chunk = |first: usize, live: LiveAttrs| {
        if store_error.is_some() {
            return;
        }
        let end = (first + crate::model::limits::MAX_BATCH).min(accounts.len());
        let adopted: Vec<(&str, Adopted)> = accounts[first..end]
            .iter()
            .zip(&wanted[first..end])
            .map(|(account, want)| (&**account, adopt(want, live.get(&**account), names)))
            .collect();
        let record = Record {
            set: adopted
                .iter()
                .filter(|(_, a)| !a.have.is_empty())
                .map(|(account, a)| (*account, &a.have))
                .collect(),
            removed: adopted
                .iter()
                .filter(|(_, a)| !a.missing.is_empty())
                .map(|(account, a)| (*account, a.missing.clone()))
                .collect(),
            ..Record::default()
        };
        match store.record(std::slice::from_ref(&record), names, serial) {
            Ok(()) => recorded += record.set.len() as u64,
            Err(e) => store_error = Some(e),
        }
    };
    let read = runner.read_attrs(accounts, on_chunk, interrupt).await;
    if let Some(e) = store_error {
        return Err(e.into());
    }
    Ok(Imported {
        read: accounts.len(),
        recorded,
        requests: runner.stats.requests(),
        retries: runner.stats.retries(),
        elapsed: Duration::ZERO,
        interrupted: read.map_err(Error::from)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_wanted_names_are_adopted() {
        let names = Names::new(&["city".into(), "tier".into(), "sex".into()]);
        let wanted: Attrs = [(0u8, "x".into()), (1u8, "gold".into())]
            .into_iter()
            .collect();
        let live: BTreeMap<String, String> = [
            ("city".to_owned(), "live city".to_owned()),
            ("sex".to_owned(), "f".to_owned()),
            ("lang".to_owned(), "fr".to_owned()),
        ]
        .into();
        let adopted = adopt(&wanted, Some(&live), &names);
        // `sex` and `lang` are live but not wanted for this account: they stay unmanaged.
        assert_eq!(
            adopted.have,
            [(0u8, "live city".into())].into_iter().collect::<Attrs>()
        );
        assert_eq!(adopted.missing, vec![1]);
    }

    #[test]
    fn an_account_unknown_live_adopts_nothing() {
        let names = Names::new(&["city".into()]);
        let wanted: Attrs = [(0u8, "x".into())].into_iter().collect();
        let adopted = adopt(&wanted, None, &names);
        assert!(adopted.have.is_empty());
        assert_eq!(adopted.missing, vec![0]);
        assert_eq!(adopt(&Attrs::new(), None, &names), Adopted::default());
    }
}
