//! The `import` use case: adopt an existing app by recording, for each account of the users
//! files, the live values of the names it has there (and the live tags it has there, DESIGN.md
//! §9) as last-applied. Over an existing state the adoption is previewed ([`preview`]) and
//! confirmed before anything is recorded.
//!
//! Tags are read (`im_get_tag`) only for the accounts with tags in the files, after their
//! attributes: a project without tags sends exactly the requests it always did.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use super::connect::{self, Connection};
use crate::apply::{LiveAttrs, LiveTags, Runner, Signal};
use crate::model::limits::MAX_BATCH;
use crate::model::{Account, Attrs, Desired, Managed, NameIdx, Names, Tags};
use crate::plan::{Action, Change, Plan, TagChange};
use crate::policy::{Policies, Violation};
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
    /// Wanted tags the account has live: recorded.
    pub tags_have: Tags,
    /// Wanted tags it lacks live: dropped from last-applied, so the next plan adds them.
    pub tags_missing: Tags,
}

impl Adopted {
    /// Whether adopting records at least one live value or tag.
    fn records_something(&self) -> bool {
        !self.have.is_empty() || !self.tags_have.is_empty()
    }
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

/// The same rule for tags: of the tags the account has in the files, the live ones are adopted
/// (live ∩ desired); a live tag the files do not give it stays another system's.
pub fn adopt_tags(adopted: &mut Adopted, wanted: &Tags, live: Option<&[String]>) {
    adopted.tags_missing = crate::drift::missing_tags(wanted, live);
    adopted.tags_have = wanted.minus(&adopted.tags_missing);
}

/// What one chunk of adoptions records: the live values and tags as last-applied, the wanted
/// names and tags without a live counterpart dropped.
fn record_of<'a>(adopted: &[(&'a str, &'a Adopted)]) -> Record<'a> {
    let some = |f: fn(&Adopted) -> bool| adopted.iter().filter(move |(_, a)| f(a));
    Record {
        set: some(|a| !a.have.is_empty())
            .map(|(account, a)| (*account, &a.have))
            .collect(),
        removed: some(|a| !a.missing.is_empty())
            .map(|(account, a)| (*account, a.missing.clone()))
            .collect(),
        tags_added: some(|a| !a.tags_have.is_empty())
            .map(|(account, a)| (*account, a.tags_have.as_slice()))
            .collect(),
        tags_removed: some(|a| !a.tags_missing.is_empty())
            .map(|(account, a)| (*account, a.tags_missing.as_slice()))
            .collect(),
    }
}

/// How an import ended.
#[derive(Debug)]
pub struct Imported {
    /// Accounts of the users files.
    pub read: usize,
    /// Accounts recorded with at least one live value or tag.
    pub recorded: u64,
    pub requests: u64,
    pub retries: u64,
    pub elapsed: Duration,
    pub interrupted: Option<Signal>,
    /// Live values and tags read that the project's policies refuse, sorted: recorded as they
    /// are (the live app is what it is), and reported (DESIGN.md §11).
    pub policy_violations: Vec<Violation>,
    /// Accounts of the users files the API says do not exist (70107): skipped, nothing
    /// recorded for them. Sorted.
    pub gone: Vec<Account>,
}

/// Reads the app's slots with their account types; a declared `account_type` that differs
/// from its slot's is an error naming the attribute, before anything is recorded.
async fn read_slots(
    runner: &Runner,
    settings: &Settings,
) -> Result<(BTreeMap<u8, String>, BTreeMap<u8, u8>)> {
    let cmd = runner.client.command(crate::api::Command::GetAttrName);
    let slots = runner.call(cmd, || runner.client.get_attr_slots()).await?;
    crate::plan::check_slot_types(
        &settings.declared_types(),
        &slots.names,
        &slots.types,
        "in the app",
    )
    .map_err(Error::msg)?;
    let types = super::execute::slot_type_codes(&slots);
    Ok((slots.names, types))
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
    store.begin(HistoryEntry::now("import", Some(&settings.project_dir)));
    let serial = store.next_serial()?;
    let started = Instant::now();
    let names = desired.names;
    let (accounts, wanted): (Vec<Account>, Vec<Managed>) = desired.accounts.into_iter().unzip();
    let mut imported = connect::runtime()?.block_on(async {
        let interrupt = connect::signals();
        tokio::pin!(interrupt);
        let connection = Connection::open(settings).await?;
        let runner = connection.runner(settings);
        let mut streaming = Streaming {
            store: &mut store,
            serial,
            names: &names,
            policies: &settings.policies,
            violations: Vec::new(),
            accounts: &accounts,
            wanted: &wanted,
            counted: Vec::new(),
            gone: Default::default(),
        };
        let result = streaming
            .read_and_record(&runner, settings, interrupt.as_mut())
            .await;
        connection.close().await?;
        result
    })?;
    imported.elapsed = started.elapsed();
    write_history(&mut store, &imported)?;
    Ok(imported)
}

/// Ends the import's run: its history entry (written with its first commit) says how it ended.
fn write_history(store: &mut State, imported: &Imported) -> Result<()> {
    store.finish(|entry| {
        entry.status = if imported.interrupted.is_none() {
            "complete"
        } else {
            "interrupted"
        }
        .into();
        entry.accounts_set = imported.recorded;
        entry.requests = imported.requests;
        entry.retries = imported.retries;
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
    let (accounts, wanted): (Vec<Account>, Vec<Managed>) = desired.accounts.into_iter().unzip();
    let (read, slots) = connect::runtime()?.block_on(async {
        let interrupt = connect::signals();
        tokio::pin!(interrupt);
        let connection = Connection::open(settings).await?;
        let runner = connection.runner(settings);
        let result = match read_slots(&runner, settings).await {
            Ok(slots) => read_adoptions(
                &runner,
                (&names, &settings.policies),
                &accounts,
                &wanted,
                interrupt.as_mut(),
            )
            .await
            .map(|read| (read, slots)),
            Err(e) => Err(e),
        };
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
    store.begin(HistoryEntry::now("import", Some(&settings.project_dir)));
    let serial = store.meta().serial + 1;
    store.record_slot_types(&slots.0, &slots.1, serial)?;
    for (chunk, adopted) in accounts.chunks(MAX_BATCH).zip(adopted.chunks(MAX_BATCH)) {
        let adopted: Vec<(&str, &Adopted)> = chunk.iter().map(|c| &**c).zip(adopted).collect();
        let record = record_of(&adopted);
        store.record(std::slice::from_ref(&record), &names, serial)?;
        imported.recorded += adopted
            .iter()
            .filter(|(_, a)| a.records_something())
            .count() as u64;
    }
    imported.elapsed = started.elapsed();
    write_history(&mut store, &imported)?;
    Ok(imported)
}

/// The indices of the accounts with tags in the files, and those accounts.
fn tagged(accounts: &[Account], wanted: &[Managed]) -> (Vec<usize>, Vec<Account>) {
    (0..accounts.len())
        .filter(|&i| !wanted[i].tags.is_empty())
        .map(|i| (i, accounts[i].clone()))
        .unzip()
}

/// Reads every account's live values (and the live tags of the accounts with tags in the
/// files) into what adopting them would record.
async fn read_adoptions(
    runner: &Runner,
    (names, policies): (&Names, &Policies),
    accounts: &[Account],
    wanted: &[Managed],
    mut interrupt: Pin<&mut impl Future<Output = Signal>>,
) -> Result<(Imported, Vec<Adopted>)> {
    let mut adopted = vec![Adopted::default(); accounts.len()];
    let mut violations = Vec::new();
    let mut gone = vec![false; accounts.len()];
    let on_chunk = |first: usize, live: LiveAttrs| {
        let end = (first + MAX_BATCH).min(accounts.len());
        for i in first..end {
            if live.is_missing(&accounts[i]) {
                gone[i] = true;
                continue;
            }
            let live = live.get(&accounts[i]);
            adopted[i] = adopt(&wanted[i].attrs, live, names);
            policies.check_live_attrs(&accounts[i], live, names, &mut violations);
        }
    };
    let mut interrupted = runner
        .read_attrs(accounts, on_chunk, interrupt.as_mut())
        .await?;
    let (at, tagged) = tagged(accounts, wanted);
    if interrupted.is_none() && !tagged.is_empty() {
        let on_chunk = |first: usize, live: LiveTags| {
            let end = (first + MAX_BATCH).min(at.len());
            for &i in &at[first..end] {
                if gone[i] || live.is_missing(&accounts[i]) {
                    gone[i] = true;
                    adopted[i] = Adopted::default();
                    continue;
                }
                let live = live.get(&accounts[i]).map(Vec::as_slice);
                adopt_tags(&mut adopted[i], &wanted[i].tags, live);
                policies.check_live_tags(&accounts[i], live, &mut violations);
            }
        };
        interrupted = runner.read_tags(&tagged, on_chunk, interrupt).await?;
    }
    let imported = Imported {
        read: accounts.len(),
        recorded: 0,
        requests: runner.stats.requests(),
        retries: runner.stats.retries(),
        elapsed: Duration::ZERO,
        interrupted,
        policy_violations: sorted(violations),
        gone: (0..accounts.len())
            .filter(|&i| gone[i])
            .map(|i| accounts[i].clone())
            .collect(),
    };
    Ok((imported, adopted))
}

/// The changes adopting would make to the state: before = last-applied, set = live values
/// that differ from it, remove = wanted names without a live value that the state has; tags
/// added = live wanted tags the state lacks, removed = wanted tags not live that it has.
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
            Ok(i) => Some(&last[i].1),
            Err(_) => None,
        };
        let had = before.cloned().unwrap_or_default();
        let set: Attrs = a
            .have
            .iter()
            .filter(|(n, v)| had.attrs.get(*n) != Some(*v))
            .map(|(n, v)| (n, v.into()))
            .collect();
        let remove: Vec<NameIdx> = a
            .missing
            .iter()
            .copied()
            .filter(|n| had.attrs.contains(*n))
            .collect();
        let tags = TagChange {
            add: a.tags_have.minus(&had.tags),
            remove: a
                .tags_missing
                .iter()
                .filter(|t| had.tags.contains(t))
                .collect(),
        };
        if set.is_empty() && remove.is_empty() && tags.is_empty() {
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
            before: had.attrs,
            tags,
        });
    }
    Plan {
        names: names.clone(),
        attribute_names: BTreeMap::new(),
        changes,
        unchanged,
        managed: last.len(),
        targets: Vec::new(),
        no_state: false,
    }
}

fn sorted(mut v: Vec<Violation>) -> Vec<Violation> {
    v.sort();
    v
}

/// An import without review: each answered chunk is recorded as it comes.
struct Streaming<'a> {
    store: &'a mut State,
    serial: u64,
    names: &'a Names,
    policies: &'a Policies,
    violations: Vec<Violation>,
    accounts: &'a [Account],
    wanted: &'a [Managed],
    /// Per account, whether it is counted as recorded (so the tag pass does not count it twice).
    counted: Vec<bool>,
    /// Indices of the accounts the API says do not exist.
    gone: std::collections::BTreeSet<usize>,
}

impl Streaming<'_> {
    /// Records the app's slots, then reads the accounts' attributes and the tagged accounts'
    /// tags, recording each answered chunk.
    async fn read_and_record(
        &mut self,
        runner: &Runner,
        settings: &Settings,
        mut interrupt: Pin<&mut impl Future<Output = Signal>>,
    ) -> Result<Imported> {
        let (slots, types) = read_slots(runner, settings).await?;
        self.store.record_slot_types(&slots, &types, self.serial)?;
        self.counted = vec![false; self.accounts.len()];
        let accounts = self.accounts;
        let mut store_error = None;
        let on_chunk = |first: usize, live: LiveAttrs| {
            let end = (first + MAX_BATCH).min(accounts.len());
            let (missing, present): (Vec<usize>, Vec<usize>) =
                (first..end).partition(|&i| live.is_missing(&accounts[i]));
            self.gone.extend(missing);
            let adopted = present
                .into_iter()
                .map(|i| {
                    let live = live.get(&accounts[i]);
                    let (names, out) = (self.names, &mut self.violations);
                    self.policies
                        .check_live_attrs(&accounts[i], live, names, out);
                    (i, adopt(&self.wanted[i].attrs, live, self.names))
                })
                .collect();
            self.record_chunk(adopted, &mut store_error);
        };
        let mut interrupted = runner
            .read_attrs(accounts, on_chunk, interrupt.as_mut())
            .await;
        let (at, tagged) = tagged(accounts, self.wanted);
        if matches!(interrupted, Ok(None)) && store_error.is_none() && !tagged.is_empty() {
            let on_chunk = |first: usize, live: LiveTags| {
                let end = (first + MAX_BATCH).min(at.len());
                let (missing, present): (Vec<usize>, Vec<usize>) = at[first..end]
                    .iter()
                    .partition(|&&i| live.is_missing(&accounts[i]) || self.gone.contains(&i));
                self.gone.extend(missing);
                let adopted = present
                    .iter()
                    .map(|&i| {
                        let mut a = Adopted::default();
                        let live = live.get(&accounts[i]).map(Vec::as_slice);
                        adopt_tags(&mut a, &self.wanted[i].tags, live);
                        let out = &mut self.violations;
                        self.policies.check_live_tags(&accounts[i], live, out);
                        (i, a)
                    })
                    .collect();
                self.record_chunk(adopted, &mut store_error);
            };
            interrupted = runner.read_tags(&tagged, on_chunk, interrupt).await;
        }
        if let Some(e) = store_error {
            return Err(e);
        }
        Ok(Imported {
            read: accounts.len(),
            recorded: self.counted.iter().filter(|&&c| c).count() as u64,
            requests: runner.stats.requests(),
            retries: runner.stats.retries(),
            elapsed: Duration::ZERO,
            interrupted: interrupted.map_err(Error::from)?,
            policy_violations: sorted(std::mem::take(&mut self.violations)),
            gone: self.gone.iter().map(|&i| accounts[i].clone()).collect(),
        })
    }

    /// Records one chunk of adoptions (account indices), unless an earlier chunk failed to.
    fn record_chunk(&mut self, adopted: Vec<(usize, Adopted)>, store_error: &mut Option<Error>) {
        if store_error.is_some() {
            return;
        }
        let accounts = self.accounts;
        let named: Vec<(&str, &Adopted)> =
            adopted.iter().map(|(i, a)| (&*accounts[*i], a)).collect();
        let record = record_of(&named);
        match self
            .store
            .record(std::slice::from_ref(&record), self.names, self.serial)
        {
            Ok(()) => {
                for (i, a) in &adopted {
                    self.counted[*i] |= a.records_something();
                }
            }
            Err(e) => *store_error = Some(e.into()),
        }
    }
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

    fn tags(t: &[&str]) -> Tags {
        t.iter().copied().collect()
    }

    #[test]
    fn only_the_wanted_tags_are_adopted() {
        let live: Vec<String> = ["vip", "other-system"].map(String::from).to_vec();
        let mut a = Adopted::default();
        adopt_tags(&mut a, &tags(&["beta", "vip"]), Some(&live));
        assert_eq!(a.tags_have, tags(&["vip"]));
        assert_eq!(a.tags_missing, tags(&["beta"]));
        let mut none = Adopted::default();
        adopt_tags(&mut none, &tags(&["vip"]), None);
        assert_eq!(
            (none.tags_have, none.tags_missing),
            (Tags::new(), tags(&["vip"]))
        );
        // No tags in the files: a live tag is never adopted.
        let mut untagged = Adopted::default();
        adopt_tags(&mut untagged, &Tags::new(), Some(&live));
        assert_eq!(untagged, Adopted::default());
    }

    #[test]
    fn a_record_carries_the_adopted_and_the_dropped_tags() {
        let names = Names::new(&["city".into()]);
        let mut a = adopt(&Attrs::new(), None, &names);
        let live = vec!["vip".to_owned()];
        adopt_tags(&mut a, &tags(&["beta", "vip"]), Some(&live));
        let untagged = adopt(&[(0u8, "x".into())].into_iter().collect(), None, &names);
        let adopted = [("u1", &a), ("u2", &untagged)];
        let r = record_of(&adopted);
        assert!(r.set.is_empty());
        assert_eq!(r.removed, vec![("u2", vec![0])]);
        assert_eq!(r.tags_added, vec![("u1", tags(&["vip"]).as_slice())]);
        assert_eq!(r.tags_removed, vec![("u1", tags(&["beta"]).as_slice())]);
        assert!(a.records_something() && !untagged.records_something());
    }

    #[test]
    fn the_preview_shows_tag_adoption_against_the_state() {
        let names = Names::new(&["city".into()]);
        let city: Attrs = [(0u8, "x".into())].into_iter().collect();
        // u1 is recorded with tags old-live and gone; u2 is new to the state.
        let last = vec![(
            Account::from("u1"),
            Managed::new(city.clone(), tags(&["gone", "old-live"])),
        )];
        let adopted = |have: &[&str], missing: &[&str]| Adopted {
            have: city.clone(),
            tags_have: tags(have),
            tags_missing: tags(missing),
            ..Adopted::default()
        };
        let accounts = ["u1", "u2", "u3"].map(Account::from);
        let plan = preview(
            &names,
            &last,
            &accounts,
            &[
                adopted(&["new-live", "old-live"], &["gone", "never"]),
                adopted(&["vip"], &["beta"]),
                adopted(&[], &[]),
            ],
        );
        let c = &plan.changes[0];
        assert_eq!((c.action, c.set.len()), (Action::Change, 0));
        assert_eq!(c.tags.add, tags(&["new-live"]));
        // `never` is not in the state: nothing to drop.
        assert_eq!(c.tags.remove, tags(&["gone"]));
        let c = &plan.changes[1];
        assert_eq!(c.action, Action::Add);
        assert_eq!(
            (c.tags.add.clone(), c.tags.remove.len()),
            (tags(&["vip"]), 0)
        );
        assert_eq!(plan.changes.len(), 3, "u3 adds its attribute value");
        let s = plan.summary();
        assert_eq!((s.tags_added, s.tags_removed), (2, 1));
        // Nothing new: the same adoption over the state it produced is empty.
        let last = vec![(
            Account::from("u1"),
            Managed::new(city.clone(), tags(&["old-live"])),
        )];
        let again = preview(
            &names,
            &last,
            &accounts[..1],
            &[adopted(&["old-live"], &["x"])],
        );
        assert!(again.changes.is_empty() && again.unchanged == 1);
    }
}
