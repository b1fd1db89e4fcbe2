//! The `import` use case: adopt an existing app by recording, for each account of the users
//! files, the live values of the names it has there as last-applied.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::connect::{self, Connection};
use crate::apply::{LiveAttrs, Runner, Signal};
use crate::model::{Account, Attrs, Desired, NameIdx, Names};
use crate::settings::Settings;
use crate::store::{HistoryEntry, Record, Store};
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

pub fn import(settings: &Settings, desired: Desired) -> Result<Imported> {
    let mut store = super::state::open_or_create(settings)?;
    let serial = store.next_serial()?;
    let started = Instant::now();
    let names = desired.names;
    let (accounts, wanted): (Vec<Account>, Vec<Attrs>) = desired.accounts.into_iter().unzip();
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
    store.add_history(&HistoryEntry {
        time: crate::store::now_unix(),
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
    Ok(imported)
}

/// Records the app's slots, then reads the accounts and records each answered chunk.
async fn read_and_record(
    runner: &Runner,
    store: &mut Store,
    serial: u64,
    names: &Names,
    accounts: &[Account],
    wanted: &[Attrs],
    interrupt: impl std::future::Future<Output = Signal>,
) -> Result<Imported> {
    let slots = runner.call(|| runner.client.get_attr_name()).await?;
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
        };
        match store.record(&record, names, serial) {
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
