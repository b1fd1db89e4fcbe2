//! The `drift` use case: read the live attributes of every managed account and compare them
//! with last-applied; `--fix` executes the plan that puts the last-applied values back.

use super::connect::{self, Connection};
use super::execute::{self, Executed, Operation};
use crate::apply::Signal;
use crate::drift::{self, AccountDrift, Report};
use crate::model::{Account, Desired, Managed, Names};
use crate::settings::Settings;
use crate::store::interface::State;
use crate::{Error, Result};

/// What a drift check found.
pub enum Checked {
    /// There is no store: nothing is managed.
    NoState,
    /// A signal stopped the reads.
    Interrupted(Signal),
    /// The report, and the store (still locked) for a fix.
    Report(Box<Report>, Box<State>),
}

/// Compares live with last-applied for every managed account; `desired` gives the pending
/// changes (desired ≠ last-applied) the report mentions. Without `fix` the store is opened
/// read-only: a drift check writes nothing to the state directory.
pub fn check(settings: &Settings, desired: Desired, fix: bool) -> Result<Checked> {
    let store = if fix {
        super::state::open_existing(settings, "drift --fix")?
    } else {
        super::state::open_read_only(settings)?
    };
    let Some(store) = store else {
        return Ok(Checked::NoState);
    };
    let mut names = Names::new(&settings.attributes);
    let last = store.load_last_applied(&mut names)?;
    let drifted = match read_drift(settings, &last, &names)? {
        Ok(drifted) => drifted,
        Err(signal) => return Ok(Checked::Interrupted(signal)),
    };
    let checked = last.len();
    let slots = store.meta().slots.clone();
    let pending = crate::plan::diff(desired, last, names.clone(), &slots)
        .map_err(|e| Error::msg(e.to_string()))?;
    let report = Report {
        names,
        drifted,
        checked,
        pending,
    };
    Ok(Checked::Report(Box::new(report), Box::new(store)))
}

/// The drifted accounts, sorted, or the signal that stopped the reads.
fn read_drift(
    settings: &Settings,
    last: &[(Account, Managed)],
    names: &Names,
) -> Result<std::result::Result<Vec<AccountDrift>, Signal>> {
    connect::runtime()?.block_on(async {
        let interrupt = connect::signals();
        let connection = Connection::open(settings).await?;
        let runner = connection.runner(settings);
        let accounts: Vec<Account> = last.iter().map(|(a, _)| a.clone()).collect();
        let mut drifted = Vec::new();
        let on_chunk = |first: usize, live: crate::apply::LiveAttrs| {
            let end = (first + crate::model::limits::MAX_BATCH).min(last.len());
            for (account, attrs) in &last[first..end] {
                drifted.extend(drift::compare(
                    account,
                    &attrs.attrs,
                    live.get(&**account),
                    names,
                ));
            }
        };
        let read = runner.read_attrs(&accounts, on_chunk, interrupt).await;
        connection.close().await?;
        if let Some(signal) = read? {
            return Ok(Err(signal));
        }
        drifted.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(Ok(drifted))
    })
}

/// Sets the last-applied values of what drifted again.
pub fn fix(
    settings: &Settings,
    store: &mut State,
    report: &Report,
    quiet: bool,
) -> Result<Executed> {
    execute::execute(
        settings,
        store,
        report.fix_plan(),
        Operation::DriftFix,
        quiet,
    )
}
