//! Executing a plan against the API, recording what it confirmed: shared by `apply` and
//! `drift --fix`.
//!
//! The attribute names are configured first (and the app's slots recorded), then the value
//! batches run through [`crate::apply`], whose sink here is the store: each group of confirmed
//! batches is written in one atomic store commit. A history entry ends every run that changed
//! something, whether it completed, failed, was stopped by a signal or was partial (the API
//! refused some accounts' tags: the rest was applied and recorded, those are named).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connect::{self, Connection};
use crate::apply::{Ends, Refused, Runner, Signal, Sink, Slot};
use crate::model::NameIdx;
use crate::plan::{Batch, BatchKind, Plan};
use crate::render::progress::{Phases, Progress};
use crate::render::report::ApplyTotals;
use crate::settings::Settings;
use crate::store::interface::{PendingRecord, State};
use crate::store::{HistoryEntry, Record};
use crate::{Error, Result};

/// Which use case runs the plan (its history entry and summary say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    DriftFix,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "apply",
            Operation::DriftFix => "drift-fix",
        }
    }
}

/// How an execution ended.
#[derive(Debug)]
pub struct Executed {
    pub totals: ApplyTotals,
    /// Value batches the API confirmed (all recorded, unless the store failed).
    pub batches_ok: usize,
    /// Value batches the API refused or that failed after their retries.
    pub batches_failed: usize,
    /// Batches never sent because the run stopped.
    pub batches_not_sent: usize,
    /// The state's serial after the run (unchanged when nothing was recorded).
    pub serial: u64,
    /// The signal that stopped the run.
    pub interrupted: Option<Signal>,
    /// What stopped the run, if an error did.
    pub error: Option<Error>,
    /// Batches the API confirmed that the store could not record (it lost its database):
    /// the store does not claim them, and the next apply sends them again.
    pub unrecorded_batches: u64,
    /// Tags the API confirmed and the store recorded, added and removed ((account, tag) pairs).
    pub tags_added: u64,
    pub tags_removed: u64,
    /// Tag entries the API refused for their account alone (not applied, not recorded): the
    /// run went on, and the command names them and fails.
    pub refused: Vec<Refused>,
}

/// Records each group of confirmed batches in one store commit; feeds the progress display.
///
/// With a distant database a commit takes a round trip, which would hold up the scheduling of
/// new batches. So a group's record is sent ahead and settled later, oldest first, and the
/// in-flight slots of its batches are kept until the database answered it: confirmed-but-
/// unrecorded batches never number more than `concurrency` (DESIGN.md §3), and the scheduler
/// goes on while the database answers. A phase's records are all durable when its last
/// group's `record` returns, so before the next phase's first batch is sent. The run's last
/// group is kept back, with its slots, and recorded with the run's final history entry, in one
/// commit. With sled each group is recorded before `record` returns.
struct StoreSink<'a> {
    store: &'a mut State,
    serial: u64,
    /// Most batches awaiting their record.
    concurrency: usize,
    /// Records sent ahead, oldest first.
    ahead: VecDeque<Ahead>,
    /// The run's last group (as far as the engine knew), kept back for [`StoreSink::finish`]
    /// with the in-flight slots of its batches.
    last: Option<(Vec<Batch>, Vec<Slot>)>,
    /// The kind of the last group: a new phase waits for the previous one's records.
    kind: Option<BatchKind>,
    /// What the store has recorded so far.
    recorded: Tally,
    done: Arc<Phases>,
    record_time: Duration,
    /// Set once a record failed: later groups are only counted, never claimed.
    failed: bool,
    unrecorded_batches: u64,
    unrecorded_accounts: u64,
    /// Per change of the plan: whether something of it was recorded.
    changed: Vec<bool>,
    accounts_changed: u64,
}

/// A group whose record was sent ahead.
struct Ahead {
    pending: PendingRecord,
    tally: Tally,
    /// The plan's changes the group holds, counted as changed once recorded.
    changes: Vec<usize>,
}

/// What a group of confirmed batches carries, counted.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    batches: u64,
    /// Accounts whose values were set, whose values were removed.
    set: u64,
    removed: u64,
    /// Entries of tag batches (an account may have several), and the tags they carry.
    tag_entries: u64,
    tags_added: u64,
    tags_removed: u64,
    /// Users per phase, for the progress display.
    users: [u64; 4],
}

impl Tally {
    fn of(confirmed: &[&Batch], records: &[Record<'_>]) -> Tally {
        let tags = |entries: &[(&str, &[crate::model::Tag])]| -> u64 {
            entries.iter().map(|e| e.1.len() as u64).sum()
        };
        let mut tally = Tally {
            batches: confirmed.len() as u64,
            users: Phases::count(confirmed),
            ..Tally::default()
        };
        for r in records {
            tally.set += r.set.len() as u64;
            tally.removed += r.removed.len() as u64;
            tally.tag_entries += (r.tags_added.len() + r.tags_removed.len()) as u64;
            tally.tags_added += tags(&r.tags_added);
            tally.tags_removed += tags(&r.tags_removed);
        }
        tally
    }

    /// Request entries: what the progress display counts.
    fn entries(&self) -> u64 {
        self.set + self.removed + self.tag_entries
    }

    fn add(&mut self, other: &Tally) {
        self.batches += other.batches;
        self.set += other.set;
        self.removed += other.removed;
        self.tag_entries += other.tag_entries;
        self.tags_added += other.tags_added;
        self.tags_removed += other.tags_removed;
        for (a, b) in self.users.iter_mut().zip(other.users) {
            *a += b;
        }
    }
}

impl Sink for StoreSink<'_> {
    fn record(&mut self, plan: &Plan, confirmed: &[&Batch], ends: Ends) -> Result<()> {
        self.record_holding(plan, confirmed, ends, Vec::new())
    }

    fn record_holding(
        &mut self,
        plan: &Plan,
        confirmed: &[&Batch],
        ends: Ends,
        slots: Vec<Slot>,
    ) -> Result<()> {
        if self.failed {
            self.unrecorded(confirmed.len() as u64, accounts_in(confirmed));
            return Ok(());
        }
        let started = Instant::now();
        let result = self.take(plan, confirmed, ends, slots);
        self.record_time += started.elapsed();
        // Every group is counted once: by `send` when it failed before its record went out,
        // else among those sent ahead that the failure leaves unsettled.
        result.inspect_err(|_| self.fail())
    }
}

/// The record of a group of confirmed batches. An account with runs of tags in several of
/// them appears once per run; the store applies them all in one atomic step.
fn record_of<'p>(plan: &'p Plan, confirmed: &[&Batch]) -> Record<'p> {
    let mut record = Record::default();
    for batch in confirmed {
        for (k, &i) in batch.changes.iter().enumerate() {
            let c = &plan.changes[i];
            match batch.kind {
                BatchKind::SetAttr => record.set.push((&c.account, &c.set)),
                BatchKind::RemoveAttr => record.removed.push((&c.account, c.remove.clone())),
                BatchKind::AddTag => record.tags_added.push((&c.account, batch.tags(plan, k))),
                BatchKind::RemoveTag => record.tags_removed.push((&c.account, batch.tags(plan, k))),
            }
        }
    }
    record
}

fn changes_in(confirmed: &[&Batch]) -> Vec<usize> {
    confirmed
        .iter()
        .flat_map(|b| b.changes.iter().copied())
        .collect()
}

fn accounts_in(confirmed: &[&Batch]) -> u64 {
    confirmed.iter().map(|b| b.changes.len() as u64).sum()
}

impl StoreSink<'_> {
    /// Batches handed over whose record is not durable yet (sent ahead, or kept back).
    fn awaiting(&self) -> usize {
        let ahead: u64 = self.ahead.iter().map(|a| a.tally.batches).sum();
        ahead as usize + self.last.as_ref().map_or(0, |(l, _)| l.len())
    }

    /// Takes a group: sends the group kept back as the last, if more came after it, then this
    /// one (settling every record at a phase's end), or keeps this one back when it ends the
    /// run. The slots go with their group's record.
    fn take(
        &mut self,
        plan: &Plan,
        confirmed: &[&Batch],
        ends: Ends,
        slots: Vec<Slot>,
    ) -> Result<()> {
        if let Some((kept, kept_slots)) = self.last.take() {
            let kept: Vec<&Batch> = kept.iter().collect();
            if let Err(e) = self.send(plan, &kept, kept_slots) {
                self.unrecorded(confirmed.len() as u64, accounts_in(confirmed));
                return Err(e);
            }
        }
        match ends {
            Ends::Run => {
                let kept = confirmed.iter().map(|b| (*b).clone()).collect();
                self.last = Some((kept, slots));
                Ok(())
            }
            Ends::Phase => {
                self.send(plan, confirmed, slots)?;
                self.settle_all()
            }
            Ends::Nothing => self.send(plan, confirmed, slots),
        }
    }

    /// Sends a group's record ahead, once the previous phase's records are durable and there
    /// is room among the batches awaiting their record; settles what is answered. `slots` are
    /// freed once the store answered the record. On an error before the record went out, the
    /// group is counted unrecorded here.
    fn send(&mut self, plan: &Plan, confirmed: &[&Batch], slots: Vec<Slot>) -> Result<()> {
        let sent = self.room(confirmed).and_then(|()| {
            let record = record_of(plan, confirmed);
            let pending = self.store.record_ahead(
                std::slice::from_ref(&record),
                &plan.names,
                self.serial,
                slots,
            )?;
            Ok((pending, Tally::of(confirmed, std::slice::from_ref(&record))))
        });
        match sent {
            Ok((pending, tally)) => {
                self.ahead.push_back(Ahead {
                    pending,
                    tally,
                    changes: changes_in(confirmed),
                });
                // Already durable with sled: not awaiting anything. (A failure here is
                // counted by `settle_oldest` and `fail`, like any record sent ahead.)
                self.settle_answered()
            }
            Err(e) => {
                self.unrecorded(confirmed.len() as u64, accounts_in(confirmed));
                Err(e)
            }
        }
    }

    /// Settles what must be durable before `confirmed` is sent: the previous phase's records
    /// (a remove may only follow the sets it comes after once those are durable), what is
    /// answered, and the oldest records while `confirmed` would pass `concurrency` batches
    /// awaiting their record (only possible for groups handed over without their slots: the
    /// engine's slots already bound them).
    fn room(&mut self, confirmed: &[&Batch]) -> Result<()> {
        let kind = confirmed.first().map(|b| b.kind);
        if self.kind.is_some() && self.kind != kind {
            self.settle_all()?;
        }
        self.kind = kind;
        self.settle_answered()?;
        while !self.ahead.is_empty() && self.awaiting() + confirmed.len() > self.concurrency {
            self.settle_oldest()?;
        }
        Ok(())
    }

    /// Settles the records sent ahead that the database has answered, oldest first.
    fn settle_answered(&mut self) -> Result<()> {
        while self.ahead.front().is_some_and(|a| a.pending.is_answered()) {
            self.settle_oldest()?;
        }
        Ok(())
    }

    /// Waits for every record sent ahead.
    fn settle_all(&mut self) -> Result<()> {
        while !self.ahead.is_empty() {
            self.settle_oldest()?;
        }
        Ok(())
    }

    fn settle_oldest(&mut self) -> Result<()> {
        let Some(Ahead {
            pending,
            tally,
            changes,
        }) = self.ahead.pop_front()
        else {
            return Ok(());
        };
        if let Err(e) = self.store.settle(pending) {
            self.unrecorded(tally.batches, tally.entries());
            return Err(e.into());
        }
        self.recorded(&tally, &changes);
        Ok(())
    }

    fn recorded(&mut self, tally: &Tally, changes: &[usize]) {
        self.recorded.add(tally);
        for &i in changes {
            // An account of several phases (or tag runs) counts once.
            if !std::mem::replace(&mut self.changed[i], true) {
                self.accounts_changed += 1;
            }
        }
        self.done.add(&tally.users);
    }

    /// After a failure: whatever was sent ahead or kept back is not claimed as recorded.
    fn fail(&mut self) {
        self.failed = true;
        for a in std::mem::take(&mut self.ahead) {
            self.unrecorded(a.tally.batches, a.tally.entries());
        }
        if let Some((kept, _slots)) = self.last.take() {
            let kept: Vec<&Batch> = kept.iter().collect();
            self.unrecorded(kept.len() as u64, accounts_in(&kept));
        }
    }

    fn unrecorded(&mut self, batches: u64, entries: u64) {
        self.unrecorded_batches += batches;
        self.unrecorded_accounts += entries;
    }

    /// At the end of the run: every record sent ahead settled, then the group kept back
    /// recorded with the run's final history entry, as `ending` leaves it, in one commit
    /// (`ending` is given whether the run failed, and is applied only when that commit is
    /// made). `Err` when a record failed (what it held is counted unrecorded); `Ok(Some)` when
    /// everything was recorded but the final entry was not.
    fn finish(
        &mut self,
        plan: &Plan,
        ending: impl FnOnce(&mut crate::store::HistoryEntry),
    ) -> Result<Option<Error>> {
        if self.failed {
            return Ok(None);
        }
        let started = Instant::now();
        let result = self.finish_inner(plan, ending);
        self.record_time += started.elapsed();
        result.inspect_err(|_| self.fail())
    }

    fn finish_inner(
        &mut self,
        plan: &Plan,
        ending: impl FnOnce(&mut crate::store::HistoryEntry),
    ) -> Result<Option<Error>> {
        // The group kept back is sent behind the records still under way (it commits only on
        // top of them all), unless it starts a phase: then those are durable first, as in
        // `send`. On a failure before it is sent, `fail` counts it.
        let kind = self
            .last
            .as_ref()
            .and_then(|(l, _)| l.first())
            .map(|b| b.kind);
        if kind.is_some() && self.kind.is_some() && self.kind != kind {
            self.settle_all()?;
        }
        let mut entry = None;
        // The kept group's slots are held until its record is durable (or failed).
        let mut _slots = Vec::new();
        if let Some((kept, slots)) = self.last.take() {
            _slots = slots;
            let kept: Vec<&Batch> = kept.iter().collect();
            let record = record_of(plan, &kept);
            let tally = Tally::of(&kept, std::slice::from_ref(&record));
            let sent = self.store.record_last(
                std::slice::from_ref(&record),
                &plan.names,
                self.serial,
                ending,
            );
            match sent {
                Err(e) => {
                    self.unrecorded(tally.batches, tally.entries());
                    return Err(e.into());
                }
                Ok((pending, written)) => {
                    entry = written.err();
                    self.ahead.push_back(Ahead {
                        pending,
                        tally,
                        changes: changes_in(&kept),
                    });
                }
            }
        }
        self.settle_all()?;
        Ok(entry.map(Error::from))
    }
}

/// Runs `plan` against the API, recording as it goes. Ctrl-C and SIGTERM stop the scheduling;
/// what is in flight finishes and is recorded. `Err` only when nothing could be run (the
/// connection or the attribute names failed); later failures are in [`Executed::error`].
pub fn execute(
    settings: &Settings,
    store: &mut State,
    plan: Plan,
    operation: Operation,
    quiet: bool,
) -> Result<Executed> {
    connect::runtime()?.block_on(async {
        // Listening from the start: a signal during the name configuration stops the batches.
        let interrupt = connect::signals();
        let started = Instant::now();
        let connection = Connection::open(settings).await?;
        let runner = connection.runner(settings);
        let serial = store.next_serial()?;
        if store.run_mut().is_none() {
            store.begin(HistoryEntry::now(
                operation.as_str(),
                Some(&settings.project_dir),
            ));
        }
        let names = match configure_names(&runner, store, &plan, serial, settings).await {
            Ok(n) => n,
            Err(e) => {
                connection.close().await?;
                return Err(e);
            }
        };
        let run = RunOf {
            serial,
            names,
            concurrency: settings.apply.concurrency,
            quiet,
        };
        let (mut executed, final_error) = run_batches(&runner, store, plan, run, interrupt).await;
        executed.totals.names_configured = names;
        executed.totals.elapsed = started.elapsed();
        match final_error {
            Some(e) if executed.error.is_none() => return Err(e),
            Some(e) => tracing::warn!("cannot write the run's final history entry: {e}"),
            // A no-op when the last record ended the run.
            None => finish(store, &executed, &runner)?,
        }
        executed.serial = store.meta().serial;
        connection.close().await?;
        Ok(executed)
    })
}

/// Configures the attribute names the app lacks and records its slots. Returns how many
/// names were configured.
async fn configure_names(
    runner: &Runner,
    store: &mut State,
    plan: &Plan,
    serial: u64,
    settings: &Settings,
) -> Result<u64> {
    if plan.attribute_names.is_empty() {
        return Ok(0);
    }
    // The names the plan was made with (a saved plan may predate the project file), with the
    // account types the project declares.
    let declared: Vec<_> = (0..plan.names.declared_len())
        .map(|i| {
            let name = plan.names.get(i as NameIdx);
            (name.to_owned(), settings.account_type(name))
        })
        .collect();
    let (slots, configured) = runner.configure_slots(&declared).await?;
    if let Some(entry) = store.run_mut() {
        entry.names_configured = configured as u64;
    }
    store.record_slot_types(&slots.names, &slot_type_codes(&slots), serial)?;
    Ok(configured as u64)
}

/// The slots' account types as the store records them (numbers; only non-zero ones).
pub fn slot_type_codes(slots: &crate::api::AttrSlots) -> std::collections::BTreeMap<u8, u8> {
    slots
        .types
        .iter()
        .map(|(slot, ty)| (*slot, ty.code()))
        .filter(|(_, t)| *t != 0)
        .collect()
}

/// Runs the value batches, recording them; the run's last group is recorded with its final
/// history entry. Also returns the error of a final entry that could not be written although
/// everything was recorded.
async fn run_batches(
    runner: &Runner,
    store: &mut State,
    plan: Plan,
    run: RunOf,
    interrupt: impl std::future::Future<Output = Signal>,
) -> (Executed, Option<Error>) {
    let plan = Arc::new(plan);
    let batches = Arc::new(plan.batches());
    let done = Arc::new(Phases::of(&batches));
    let progress = Progress::start(run.quiet, done.clone(), runner.stats.clone());
    let mut sink = StoreSink {
        store,
        serial: run.serial,
        concurrency: run.concurrency,
        ahead: VecDeque::new(),
        last: None,
        kind: None,
        recorded: Tally::default(),
        done,
        record_time: Duration::ZERO,
        failed: false,
        unrecorded_batches: 0,
        unrecorded_accounts: 0,
        changed: vec![false; plan.changes.len()],
        accounts_changed: 0,
    };
    let mut report = crate::apply::run(runner, plan.clone(), batches, &mut sink, interrupt).await;
    let status = status(&report);
    let ending = |entry: &mut HistoryEntry| {
        entry.status = status.into();
        entry.names_configured = run.names;
        entry.requests = runner.stats.requests();
        entry.retries = runner.stats.retries();
    };
    let final_error = match sink.finish(&plan, ending) {
        Ok(e) => e,
        Err(e) => {
            report.sink_error.get_or_insert(e);
            None
        }
    };
    progress.finish();
    (executed(runner, &sink, report, run.serial), final_error)
}

/// What [`run_batches`] runs with, besides the plan.
struct RunOf {
    serial: u64,
    /// Attribute names configured before the batches (for the final history entry).
    names: u64,
    concurrency: usize,
    quiet: bool,
}

/// How a run ended, as its history entry and summary say: `failed` for an API or store error.
fn status(report: &crate::apply::Report) -> &'static str {
    if report.interrupted.is_some() {
        "interrupted"
    } else if report.fatal.is_some() || report.sink_error.is_some() {
        "failed"
    } else if !report.refused.is_empty() {
        // Everything else was applied; the refused accounts are named.
        "partial"
    } else {
        "complete"
    }
}

/// How the run ended, from the engine's report and what the sink recorded.
fn executed(
    runner: &Runner,
    sink: &StoreSink<'_>,
    report: crate::apply::Report,
    serial: u64,
) -> Executed {
    let status = status(&report);
    let recorded = &sink.recorded;
    Executed {
        totals: ApplyTotals {
            status,
            accounts_changed: sink.accounts_changed,
            accounts_set: recorded.set,
            accounts_removed: recorded.removed,
            // `users` is per phase, in `BatchKind::PHASES` order: sets, tag adds, removes, tag removes.
            accounts_tags_added: recorded.users[1],
            accounts_tags_removed: recorded.users[3],
            names_configured: 0,
            requests: runner.stats.requests(),
            retries: runner.stats.retries(),
            elapsed: Duration::ZERO,
            batches_recorded: recorded.batches,
            record_time: sink.record_time,
            // Batches count from their answer until their record is durable: waiting for
            // the sink, then awaiting their record in it.
            max_unrecorded: report.max_unrecorded,
            unrecorded_entries: sink.unrecorded_accounts,
        },
        batches_ok: report.batches_ok,
        batches_failed: report.batches_failed,
        batches_not_sent: report.batches_not_sent,
        serial,
        interrupted: report.interrupted,
        error: unrecorded_error(report.sink_error, sink).or(report.fatal.map(Error::from)),
        unrecorded_batches: sink.unrecorded_batches,
        tags_added: recorded.tags_added,
        tags_removed: recorded.tags_removed,
        refused: report.refused,
    }
}

/// A store failure, with what the API applied that the store therefore does not claim.
fn unrecorded_error(error: Option<Error>, sink: &StoreSink<'_>) -> Option<Error> {
    let e = error?;
    if sink.unrecorded_batches == 0 {
        return Some(e);
    }
    Some(Error::msg(format!(
        "{e}\nStopped sending: {} were applied by the API but not recorded in the state, which does not claim them; the next `timattr apply` sends them again (every request is idempotent).",
        crate::render::count(sink.unrecorded_batches as usize, "batch", "batches")
    )))
}

/// Ends the run: its history entry (written with its first commit) says how it ended. When
/// the run already failed, a store that cannot take the final entry only leaves it saying
/// `interrupted`; that is logged, not a second error.
fn finish(store: &mut State, executed: &Executed, runner: &Runner) -> Result<()> {
    let t = &executed.totals;
    let ended = store.finish(|entry| {
        entry.status = t.status.into();
        entry.names_configured = t.names_configured;
        entry.requests = runner.stats.requests();
        entry.retries = runner.stats.retries();
    });
    match ended {
        Err(e) if executed.error.is_some() => {
            tracing::warn!("cannot write the run's final history entry: {e}");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// The error of a run in which the API refused some accounts (their tags narrowed down alone,
/// or named in the `ErrorList` of a partial success): one line per account and command (the
/// code, its meaning, what to do), then what happened to the rest. `again` is the command to
/// run once fixed.
pub fn refused_error(refused: &[Refused], again: &str) -> Error {
    // One line per (account, command, code), in the order they were refused: an account with
    // entries in several batches is refused in each.
    let mut groups: Vec<(&Refused, Vec<&str>)> = Vec::new();
    for r in refused {
        let key = |g: &(&Refused, Vec<&str>)| {
            g.0.account == r.account && g.0.kind == r.kind && g.0.error.code() == r.error.code()
        };
        match groups.iter_mut().find(|g| key(g)) {
            Some(g) => g.1.extend(
                r.tags
                    .iter()
                    .map(|t| &**t)
                    .chain(r.names.iter().map(|n| &**n)),
            ),
            None => groups.push((
                r,
                r.tags
                    .iter()
                    .map(|t| &**t)
                    .chain(r.names.iter().map(|n| &**n))
                    .collect(),
            )),
        }
    }
    let accounts: std::collections::BTreeSet<&str> = groups.iter().map(|g| &*g.0.account).collect();
    let mut text = String::new();
    for (r, tags) in &groups {
        text.push_str(&refusal_line(r, tags, again));
        text.push('\n');
    }
    let what = if refused.iter().all(|r| r.kind.is_tags()) {
        ("the tags of", "these tags")
    } else {
        ("some values or tags of", "these")
    };
    text.push_str(&format!(
        "the API refused {} {} ({}); everything else was applied and recorded, and the next plan shows only {} still to apply",
        what.0,
        crate::render::count(accounts.len(), "account", "accounts"),
        accounts
            .into_iter()
            .map(crate::escape::escape)
            .collect::<Vec<_>>()
            .join(", "),
        what.1
    ));
    Error::msg(text)
}

/// `im_add_tag refused user u7: error 90032 (…): …` with what to do about this account.
fn refusal_line(r: &Refused, tags: &[&str], again: &str) -> String {
    // Ids and tags may hold characters that move a terminal's cursor: escaped like values.
    let account = crate::escape::escape(&r.account);
    let what = match r.kind {
        BatchKind::RemoveTag | BatchKind::RemoveAttr => "not removed",
        BatchKind::SetAttr => "not set",
        BatchKind::AddTag => "not added",
    };
    let shown = tags
        .iter()
        .take(5)
        .map(|t| crate::render::tag(t))
        .collect::<Vec<_>>()
        .join(", ");
    let more = if tags.len() > 5 { ", …" } else { "" };
    let noun = if r.kind.is_tags() { "" } else { " values" };
    let tags = format!("{}{noun} {what}: {shown}{more}", tags.len());
    let fix = match r.error.code() {
        Some(crate::api::codes::code::TOO_MANY_TAGS) => format!(
            "user {account} would hold more than 100 tags together with tags set by other systems: remove some of its tags from the users files (or have the other systems remove theirs), then run `{again}` again"
        ),
        Some(crate::api::codes::code::TAG_TOO_LONG) => format!(
            "a tag of user {account} is longer than the API accepts: shorten it in the users files, then run `{again}` again"
        ),
        Some(crate::api::codes::code::WRONG_ACCOUNT_TYPE) => format!(
            "{account} is {} the attribute or tag is for: declare the attribute's `account_type` to match its accounts, or move the account to an attribute (or tag) of its own type, then run `{again}` again",
            "not of the account type"
        ),
        Some(crate::api::codes::code::ACCOUNT_NOT_FOUND) => format!(
            "the app has no account {account}: check the id (a UserID must have logged in to Chat, a RegistrationID must come from the Push SDK) or remove it from the users files, then run `{again}` again"
        ),
        _ => crate::api::fix(r.error.code().unwrap_or(0)).to_owned(),
    };
    format!(
        "{} refused user {account}: {} ({tags}); {fix}",
        r.error.command,
        r.error.reason_short()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::codes::code;
    use crate::api::{ApiError, ApiErrorKind};

    fn refused(account: &str, tags: &[&str], code: i64) -> Refused {
        Refused {
            account: account.into(),
            kind: BatchKind::AddTag,
            tags: tags.iter().map(|t| (*t).into()).collect(),
            names: Vec::new(),
            error: ApiError::new(
                "im_add_tag",
                ApiErrorKind::Code {
                    code,
                    info: "".into(),
                },
            ),
        }
    }

    #[test]
    fn refused_ids_and_tags_are_escaped() {
        let e = refused_error(
            &[refused(
                "u\u{1b}[2J",
                &["\u{202e}vip", "a b"],
                code::TOO_MANY_TAGS,
            )],
            "timattr apply",
        )
        .to_string();
        assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{e:?}");
        assert!(e.contains("\"a b\""), "{e}");
    }

    #[test]
    fn refused_accounts_are_each_named_once_with_code_meaning_and_fix() {
        let e = refused_error(
            &[
                refused("u7", &["a", "b"], code::TOO_MANY_TAGS),
                refused("u9", &["long"], code::TAG_TOO_LONG),
                refused("u7", &["c"], code::TOO_MANY_TAGS),
            ],
            "timattr apply",
        )
        .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with("im_add_tag refused user u7: error 90032 (too many tags"),
            "{e}"
        );
        assert!(lines[0].contains("(3 not added: a, b, c)"), "{e}");
        assert!(
            lines[0].contains("user u7 would hold more than 100 tags together with tags set by other systems: remove some of its tags"),
            "{e}"
        );
        assert!(lines[1].contains("error 90020 (tag too long"), "{e}");
        assert!(lines[1].contains("shorten it"), "{e}");
        assert!(
            lines[2].starts_with("the API refused the tags of 2 accounts (u7, u9)"),
            "{e}"
        );
    }

    /// 700 accounts to set (7 batches) and 500 to remove values from (5 batches).
    fn sets_then_removes() -> Plan {
        use crate::model::{Attrs, Desired, Names};
        let names = Names::new(&["a".into(), "b".into()]);
        let attrs = |n: u8, v: &str| -> Attrs { [(n, v.into())].into_iter().collect() };
        let desired = Desired {
            names: names.clone(),
            accounts: (0..700)
                .map(|i| (format!("u{i:03}").into(), attrs(0, "x").into()))
                .collect(),
        };
        let last = (0..500)
            .map(|i| (format!("r{i:03}").into(), attrs(1, "y").into()))
            .collect();
        let slots = [(0, "a".into()), (1, "b".into())].into();
        crate::plan::diff(desired, last, names, &slots).unwrap()
    }

    /// A store whose records sent ahead are answered only when settled, with what it saw.
    fn distant() -> (
        State,
        Arc<crate::store::memory::Distant>,
        Arc<std::sync::Mutex<crate::store::memory::Held>>,
    ) {
        let distant = Arc::new(crate::store::memory::Distant::default());
        let (memory, held) = crate::store::memory::Memory::create(1, "h");
        let mut state = State::new(Box::new(memory.distant(distant.clone())));
        state.begin(HistoryEntry::now("apply", None));
        (state, distant, held)
    }

    fn store_sink<'a>(store: &'a mut State, plan: &Plan, concurrency: usize) -> StoreSink<'a> {
        StoreSink {
            store,
            serial: 1,
            concurrency,
            ahead: VecDeque::new(),
            last: None,
            kind: None,
            recorded: Tally::default(),
            done: Arc::new(Phases::of(&plan.batches())),
            record_time: Duration::ZERO,
            failed: false,
            unrecorded_batches: 0,
            unrecorded_accounts: 0,
            changed: vec![false; plan.changes.len()],
            accounts_changed: 0,
        }
    }

    /// DESIGN.md §3 with a distant store (its records answered 10 ms after they are sent, as a
    /// database does) under the whole engine: batches confirmed but not durable — answers not
    /// yet handed to the sink included — never number more than `concurrency`, the report says
    /// so, and no remove is sent before the sets before it are durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_store_never_has_more_than_concurrency_batches_awaiting_their_record() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let plan = Arc::new(sets_then_removes());
        let batches = Arc::new(plan.batches());
        let distant = Arc::new(crate::store::memory::Distant {
            answer_after: Some(Duration::from_millis(10)),
            ..Default::default()
        });
        let (memory, held) = crate::store::memory::Memory::create(1, "h");
        let mut state = State::new(Box::new(memory.distant(distant.clone())));
        state.begin(HistoryEntry::now("apply", None));
        let concurrency = 3;
        let limiter = crate::limiter::Limiter::new(1000, concurrency);
        let (answered, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // Every batch is 100 accounts; counted at each answer, independently of the engine.
        let send = |_request: crate::apply::Request| {
            let (answered, most, durable) =
                (answered.clone(), most.clone(), distant.answered.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let confirmed = answered.fetch_add(1, Ordering::SeqCst) + 1;
                let unrecorded = confirmed - durable.load(Ordering::SeqCst) / 100;
                most.fetch_max(unrecorded, Ordering::SeqCst);
                Ok::<(), ApiError>(())
            }
        };
        let mut sink = store_sink(&mut state, &plan, concurrency);
        let never = std::future::pending::<Signal>();
        let report =
            crate::apply::run_with(&limiter, plan.clone(), batches, &mut sink, never, send).await;
        assert_eq!(report.batches_ok, 12);
        assert!(sink.finish(&plan, |_| {}).unwrap().is_none());
        assert_eq!((sink.recorded.batches, sink.unrecorded_batches), (12, 0));
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= concurrency,
            "{most} confirmed but unrecorded"
        );
        assert!(
            report.max_unrecorded >= 1 && report.max_unrecorded <= concurrency,
            "{}",
            report.max_unrecorded
        );
        let log = distant.log.lock().unwrap();
        let first_remove = log.iter().position(|e| e.0 == "remove").unwrap();
        assert_eq!(
            log[first_remove].1, 0,
            "a remove was sent before the sets were durable: {log:?}"
        );
        assert_eq!(held.lock().unwrap().accounts.len(), 700);
    }

    /// A sink handed groups without their slots (not by the engine) still keeps at most
    /// `concurrency` batches awaiting their record, waiting for its oldest records first.
    #[test]
    fn without_slots_the_sink_waits_for_its_oldest_records() {
        let plan = sets_then_removes();
        let batches = plan.batches();
        let sets: Vec<&Batch> = batches
            .iter()
            .filter(|b| b.kind == BatchKind::SetAttr)
            .collect();
        let (mut state, distant, _held) = distant();
        let concurrency = 3;
        let mut sink = store_sink(&mut state, &plan, concurrency);
        for group in sets.chunks(2) {
            sink.record(&plan, group, Ends::Nothing).unwrap();
            assert!(sink.awaiting() <= concurrency, "{}", sink.awaiting());
        }
        assert!(sink.finish(&plan, |_| {}).unwrap().is_none());
        let most = distant.most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(most > 100 && most <= concurrency * 100, "{most}");
    }

    /// The group the engine says is the last is kept back and recorded with the run's final
    /// entry, in one commit; until then it counts as awaiting its record.
    #[test]
    fn the_last_group_is_recorded_with_the_final_history_entry() {
        let plan = sets_then_removes();
        let batches = plan.batches();
        let all: Vec<&Batch> = batches.iter().collect();
        let (mut state, distant, held) = distant();
        let mut sink = store_sink(&mut state, &plan, 16);
        sink.record(&plan, &all[..10], Ends::Nothing).unwrap();
        sink.record(&plan, &all[10..], Ends::Run).unwrap();
        assert_eq!(sink.awaiting(), 12);
        assert_eq!(
            distant.log.lock().unwrap().len(),
            1,
            "the last group was sent ahead"
        );
        let ended = sink.finish(&plan, |e| e.status = "complete".into());
        assert!(ended.unwrap().is_none());
        assert_eq!((sink.recorded.batches, sink.awaiting()), (12, 0));
        assert!(state.run_mut().is_none(), "the last record ended the run");
        let held = held.lock().unwrap();
        assert_eq!(held.history.len(), 1);
        assert_eq!(held.history[0].status, "complete");
        assert_eq!(held.history[0].serial, 1);
    }

    /// Halves of a narrowed batch (or anything) after a group thought the last: the kept group
    /// is sent first, in order.
    #[test]
    fn a_group_after_the_last_sends_the_kept_one_first() {
        let plan = sets_then_removes();
        let batches = plan.batches();
        let all: Vec<&Batch> = batches.iter().collect();
        let (mut state, distant, _held) = distant();
        let mut sink = store_sink(&mut state, &plan, 16);
        sink.record(&plan, &all[..2], Ends::Run).unwrap();
        sink.record(&plan, &all[2..7], Ends::Nothing).unwrap();
        assert_eq!(distant.log.lock().unwrap().len(), 2);
        assert!(sink.finish(&plan, |_| {}).unwrap().is_none());
        assert_eq!(sink.recorded.batches, 7);
    }

    /// At a phase's end every record is durable before the next phase's first batch is sent.
    #[test]
    fn a_phase_ends_with_its_records_durable() {
        let plan = sets_then_removes();
        let batches = plan.batches();
        let all: Vec<&Batch> = batches.iter().collect();
        let (mut state, distant, _held) = distant();
        let mut sink = store_sink(&mut state, &plan, 16);
        sink.record(&plan, &all[..5], Ends::Nothing).unwrap();
        assert_eq!(sink.awaiting(), 5);
        sink.record(&plan, &all[5..7], Ends::Phase).unwrap();
        assert_eq!(sink.awaiting(), 0);
        assert_eq!(
            distant.under_way.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        assert_eq!(sink.recorded.batches, 7);
    }

    /// A record the store refuses: every batch not durable is counted unrecorded once, and
    /// nothing is claimed.
    #[test]
    fn a_refused_record_counts_every_unsettled_batch_once() {
        use std::sync::atomic::Ordering;
        let plan = sets_then_removes();
        let batches = plan.batches();
        let all: Vec<&Batch> = batches.iter().collect();
        let (mut state, distant, _held) = distant();
        let mut sink = store_sink(&mut state, &plan, 4);
        sink.record(&plan, &all[..2], Ends::Nothing).unwrap();
        sink.record(&plan, &all[2..4], Ends::Nothing).unwrap();
        distant.refuse.store(true, Ordering::SeqCst);
        // Room is made by settling the oldest: refused.
        assert!(sink.record(&plan, &all[4..6], Ends::Nothing).is_err());
        assert!(sink.failed);
        sink.record(&plan, &all[6..7], Ends::Run).unwrap();
        assert!(sink.finish(&plan, |_| {}).unwrap().is_none());
        assert_eq!((sink.recorded.batches, sink.unrecorded_batches), (0, 7));
        assert_eq!(sink.unrecorded_accounts, 700);
    }

    /// A group holding several runs of one account's tags records every run, in one record
    /// the store applies whole.
    #[test]
    fn an_account_with_runs_in_several_batches_of_a_group_has_every_run_recorded() {
        use crate::model::{Attrs, Desired, Managed, Names, Tags};
        let names = Names::new(&["a".into()]);
        let tags = |n: usize| -> Tags { (0..n).map(|t| format!("t{t:02}")).collect() };
        let desired = Desired {
            names: names.clone(),
            accounts: (0..150)
                .map(|i| {
                    let n = if i == 7 { 25 } else { 2 };
                    (
                        format!("u{i:03}").into(),
                        Managed::new(Attrs::default(), tags(n)),
                    )
                })
                .collect(),
        };
        let plan = crate::plan::diff(desired, vec![], names, &[(0, "a".into())].into()).unwrap();
        let batches = plan.batches();
        let group: Vec<&Batch> = batches.iter().collect();
        assert_eq!(group.len(), 3);
        let record = record_of(&plan, &group);
        let all: Vec<(&str, usize)> = record.tags_added.iter().map(|e| (e.0, e.1.len())).collect();
        let u7: usize = all.iter().filter(|e| e.0 == "u007").map(|e| e.1).sum();
        assert_eq!((all.len(), u7), (152, 25));
        let tally = Tally::of(&group, std::slice::from_ref(&record));
        assert_eq!((tally.tag_entries, tally.tags_added), (152, 149 * 2 + 25));
        // The store keeps all three runs of u007, not only the last.
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(dir.path(), 1, "h").unwrap();
        store.record(&record, &plan.names, 1).unwrap();
        let mut n = plan.names.clone();
        let u007 = store.account("u007", &mut n).unwrap().unwrap();
        assert_eq!(u007.tags, tags(25));
        assert_eq!(store.account_count().unwrap(), 150);
    }
}
