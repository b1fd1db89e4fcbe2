//! The `drift` use case: read the live attributes of every managed account (and the live tags
//! of those with last-applied tags) and compare them with last-applied; `--fix` executes the
//! plan that puts the last-applied values and tags back.

use std::future::Future;
use std::pin::Pin;

use super::connect::{self, Connection};
use super::execute::{self, Executed, Operation};
use crate::apply::{LiveAttrs, LiveTags, Runner, Signal};
use crate::drift::{self, AccountDrift, Report};
use crate::model::limits::MAX_BATCH;
use crate::model::{Account, Managed, Names, Tags};
use crate::policy::{Policies, Violation};
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

/// Compares live with last-applied for every managed account; the users files give the
/// pending changes (desired ≠ last-applied) the report mentions. Without `fix` the store is opened
/// read-only: a drift check writes nothing to the state directory.
/// The users files are loaded while the store is opened.
pub fn check(settings: &Settings, fix: bool) -> Result<Checked> {
    let (desired, store) = super::state::load_while_opening(settings, move |settings| {
        if fix {
            super::state::open_existing(settings, "drift --fix")
        } else {
            super::state::open_read_only(settings)
        }
    })?;
    let Some(store) = store else {
        return Ok(Checked::NoState);
    };
    let mut names = Names::new(&settings.attributes);
    let last = store.load_last_applied(&mut names)?;
    let (
        drifted,
        Found {
            mut violations,
            gone,
        },
    ) = match read_drift(settings, &last, &names)? {
        Ok(read) => read,
        Err(signal) => return Ok(Checked::Interrupted(signal)),
    };
    let checked = last.len();
    let tags_checked = last.iter().filter(|(_, m)| !m.tags.is_empty()).count();
    let slots = store.meta().slots.clone();
    let pending = crate::plan::diff(desired, last, names.clone(), &slots)
        .map_err(|e| Error::msg(e.to_string()))?;
    violations.sort();
    let report = Report {
        names,
        drifted,
        checked,
        tags_checked,
        pending,
        // Reported, never compared: the live app is what it is (DESIGN.md §11).
        policy_violations: (!settings.policies.is_empty()).then_some(violations),
        gone: gone.into_iter().collect(),
    };
    Ok(Checked::Report(Box::new(report), Box::new(store)))
}

/// What the reads found besides drift: live values outside the project's policies, and the
/// accounts the API says do not exist (a read's 70107, DESIGN.md §12).
#[derive(Default)]
struct Found {
    violations: Vec<Violation>,
    gone: std::collections::BTreeSet<Account>,
}

/// The drifted accounts (sorted) and what else the reads found, or the signal that stopped
/// the reads.
type Read = (Vec<AccountDrift>, Found);

fn read_drift(
    settings: &Settings,
    last: &[(Account, Managed)],
    names: &Names,
) -> Result<std::result::Result<Read, Signal>> {
    connect::runtime()?.block_on(async {
        let interrupt = connect::signals();
        tokio::pin!(interrupt);
        let connection = Connection::open(settings).await?;
        let runner = connection.runner(settings);
        let policies = &settings.policies;
        let mut found = Found::default();
        let attrs = read_attr_drift(
            &runner,
            last,
            names,
            policies,
            &mut found,
            interrupt.as_mut(),
        )
        .await;
        // Tags are read only once the attributes are: one stop or error ends both.
        let tags = match &attrs {
            Ok(Ok(_)) => {
                read_tag_drift(&runner, last, policies, &mut found, interrupt.as_mut()).await
            }
            _ => Ok(Ok(Vec::new())),
        };
        connection.close().await?;
        let (attrs, tags) = match (attrs?, tags?) {
            (Err(signal), _) | (_, Err(signal)) => return Ok(Err(signal)),
            (Ok(attrs), Ok(tags)) => (attrs, tags),
        };
        Ok(Ok((drift::with_missing_tags(attrs, tags), found)))
    })
}

/// The accounts of `last` that `keep` selects, with their indices in `last`.
fn accounts_where(
    last: &[(Account, Managed)],
    keep: impl Fn(&Managed) -> bool,
) -> (Vec<usize>, Vec<Account>) {
    last.iter()
        .enumerate()
        .filter(|(_, (_, m))| keep(m))
        .map(|(i, (a, _))| (i, a.clone()))
        .unzip()
}

/// The attribute drift of the accounts with last-applied attributes, sorted.
async fn read_attr_drift(
    runner: &Runner,
    last: &[(Account, Managed)],
    names: &Names,
    policies: &Policies,
    found: &mut Found,
    interrupt: Pin<&mut impl Future<Output = Signal>>,
) -> Result<std::result::Result<Vec<AccountDrift>, Signal>> {
    let (at, accounts) = accounts_where(last, |m| !m.attrs.is_empty());
    let mut drifted = Vec::new();
    let on_chunk = |first: usize, live: LiveAttrs| {
        let end = (first + MAX_BATCH).min(at.len());
        for &i in &at[first..end] {
            let (account, managed) = &last[i];
            // Gone with everything recorded for it: not "values deleted remotely".
            if live.is_missing(account) {
                found.gone.insert(account.clone());
                continue;
            }
            let live = live.get(account);
            drifted.extend(drift::compare(account, &managed.attrs, live, names));
            policies.check_live_attrs(account, live, names, &mut found.violations);
        }
    };
    if let Some(signal) = runner.read_attrs(&accounts, on_chunk, interrupt).await? {
        return Ok(Err(signal));
    }
    drifted.sort_by(|a, b| a.account.cmp(&b.account));
    Ok(Ok(drifted))
}

/// The managed tags missing live, per account with last-applied tags (sorted, none empty).
/// A project without tags sends no `im_get_tag` at all.
async fn read_tag_drift(
    runner: &Runner,
    last: &[(Account, Managed)],
    policies: &Policies,
    found: &mut Found,
    interrupt: Pin<&mut impl Future<Output = Signal>>,
) -> Result<std::result::Result<Vec<(Account, Tags)>, Signal>> {
    let (at, accounts) = accounts_where(last, |m| !m.tags.is_empty());
    if accounts.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let mut missing = Vec::new();
    let on_chunk = |first: usize, live: LiveTags| {
        let end = (first + MAX_BATCH).min(at.len());
        for &i in &at[first..end] {
            let (account, managed) = &last[i];
            if live.is_missing(account) {
                found.gone.insert(account.clone());
                continue;
            }
            let live = live.get(account).map(Vec::as_slice);
            policies.check_live_tags(account, live, &mut found.violations);
            let gone = drift::missing_tags(&managed.tags, live);
            if !gone.is_empty() {
                missing.push((account.clone(), gone));
            }
        }
    };
    if let Some(signal) = runner.read_tags(&accounts, on_chunk, interrupt).await? {
        return Ok(Err(signal));
    }
    missing.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Ok(missing))
}

/// Sets the last-applied values of what drifted again and adds the missing managed tags back.
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
