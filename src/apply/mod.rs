//! Runs a plan's batches through the limiter and hands the confirmed ones to a [`Sink`].
//!
//! Apply does not know the store exists: the caller's sink records confirmed batches, so
//! "record only what the server confirmed" lives in one obvious place. The order and the
//! recording rules of DESIGN.md §3 live here:
//!
//! - the phases run in the order names, `im_set_attr`, `im_add_tag`, `im_remove_attr`,
//!   `im_remove_tag`: every batch of a phase is answered and recorded before the next phase's
//!   first batch is sent (the sink makes its records durable at a phase's end);
//! - a batch keeps its in-flight slot from before it is sent until it is recorded (a sink that
//!   finishes recording later, e.g. a distant database, keeps the slots until the store
//!   answered), so batches the API confirmed but the store has not recorded never number more
//!   than `concurrency`;
//! - the sink gets every confirmed batch waiting at that moment in one call (group commit).
//!
//! Scheduling stops at the first fatal error, sink error or signal; batches already in flight
//! finish and are recorded.
//!
//! Narrowing (DESIGN.md §9): the API refuses a whole tag request for one account's tags (90032:
//! more than 100 tags with other systems' tags; 90020: a tag too long). Such a batch is cut in
//! halves that go back into the phase's queue, recursively, until the account stands alone: every
//! half that succeeds is recorded like any batch, and the account alone is a [`Refused`] entry of
//! the report. That does not stop the run.
//!
//! Partial success (DESIGN.md §12): an OK whose `ErrorList` names some accounts applied every
//! entry but theirs. The batch is recorded without those entries, and each is a [`Refused`]
//! entry with its code, like an account narrowed down alone; the run goes on.

mod pipeline;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::api::codes::code;
use crate::api::AttrSlots;
use crate::api::{wire, ApiError, ApiErrorKind, Client, Command, Failures};
use crate::limiter::{Limiter, RetryPolicy};
use crate::model::AccountType;
use crate::plan::{Batch, BatchKind, Plan};

/// Counters shared by every request of a run.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

impl Stats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// Everything a run of requests shares.
#[derive(Clone)]
pub struct Runner {
    pub client: Client,
    pub limiter: Arc<Limiter>,
    pub retry: RetryPolicy,
    pub stats: Arc<Stats>,
}

impl Runner {
    pub fn new(client: Client, rate_limit: u32, concurrency: usize) -> Runner {
        Runner {
            client,
            limiter: Limiter::new(rate_limit, concurrency),
            retry: RetryPolicy::default(),
            stats: Arc::new(Stats::default()),
        }
    }

    /// Sends one request through the limiter, retrying what the API says may be retried.
    pub async fn call<T, F, Fut>(&self, command: &'static str, send: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let (requests, retries) = (&self.stats.requests, &self.stats.retries);
        self.limiter
            .call(command, &self.retry, requests, retries, send)
            .await
    }

    /// Makes sure the app has every declared attribute name: reads the configured slots first
    /// so existing names keep their numbers, then sets the missing names into free slots, each
    /// with its account type. A configured slot whose type differs from the declared one is an
    /// error naming the attribute, before anything is written (a slot's type can never change).
    /// Returns the app's slots afterwards and how many names were configured.
    pub async fn configure_slots(
        &self,
        declared: &[(String, AccountType)],
    ) -> crate::Result<(AttrSlots, usize)> {
        let read = self.client.command(Command::GetAttrName);
        let mut slots = self.call(read, || self.client.get_attr_slots()).await?;
        crate::plan::check_slot_types(declared, &slots.names, &slots.types, "in the app")
            .map_err(crate::Error::msg)?;
        let names: Vec<String> = declared.iter().map(|(n, _)| n.clone()).collect();
        let missing = crate::plan::assign_slots(&names, &slots.names)
            .map_err(|e| crate::Error::msg(e.to_string()))?;
        if !missing.is_empty() {
            let types = missing
                .iter()
                .filter_map(|(slot, name)| {
                    let ty = declared.iter().find(|(n, _)| n == name)?.1;
                    (ty != AccountType::UserId).then_some((*slot, ty))
                })
                .collect();
            let new = AttrSlots {
                names: missing.clone(),
                types,
            };
            let write = self.client.command(Command::SetAttrName);
            self.call(write, || self.client.set_attr_slots(&new))
                .await?;
            slots.names.extend(new.names);
            slots.types.extend(new.types);
        }
        Ok((slots, missing.len()))
    }
}

/// What stopped a run from outside: Ctrl-C, or SIGTERM (CI cancellation, `docker stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    /// SIGHUP: the terminal or SSH session closed; handled like SIGTERM (DESIGN.md §8).
    Hangup,
}

/// Receives the batches the API confirmed.
pub trait Sink {
    /// Records `confirmed` (every batch confirmed since the last call, in completion order)
    /// durably before returning. `ends`: whether nothing else of the phase (or of the run) is
    /// in flight or queued. An `Err` stops the scheduling of new batches.
    fn record(&mut self, plan: &Plan, confirmed: &[&Batch], ends: Ends) -> crate::Result<()>;

    /// [`Sink::record`], given the in-flight slots of the `confirmed` batches: a sink that
    /// finishes recording later (e.g. a distant database answering after `record_holding`
    /// returned) keeps them until then, so confirmed-but-unrecorded batches stay within
    /// `concurrency`; at a phase's end (`ends` not [`Ends::Nothing`]) every record is durable
    /// before it returns, so the next phase's first batch is sent only then (the run's last
    /// group may be kept, with its slots, to be recorded with the run's end). By default the
    /// slots are freed once `record` returns.
    fn record_holding(
        &mut self,
        plan: &Plan,
        confirmed: &[&Batch],
        ends: Ends,
        slots: Vec<Slot>,
    ) -> crate::Result<()> {
        let recorded = self.record(plan, confirmed, ends);
        drop(slots);
        recorded
    }
}

pub use pipeline::Slot;

/// What a group of confirmed batches ends, as far as the engine knows when it hands it over (a
/// narrowed batch's halves may still follow a group that seemed the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// More of its phase is in flight or queued.
    Nothing,
    /// Its phase; a later phase has batches.
    Phase,
    /// The run: the sink may keep it to record with the run's end.
    Run,
}

/// How a run of batches ended.
#[derive(Debug, Default)]
pub struct Report {
    pub batches_ok: usize,
    pub batches_failed: usize,
    pub batches_not_sent: usize,
    /// The signal that stopped the run, if any.
    pub interrupted: Option<Signal>,
    /// The first fatal API error, if any.
    pub fatal: Option<ApiError>,
    /// The first error of the sink, if any.
    pub sink_error: Option<crate::Error>,
    /// Most batches answered by the API but not yet recorded at any moment (≤ `concurrency`):
    /// waiting for the sink, or handed to it and awaiting their record, their slots held.
    pub max_unrecorded: usize,
    /// Tag batches the API refused for one account's tags, cut in halves and sent again.
    pub batches_narrowed: usize,
    /// The entries the API refused alone, in the order they were refused (not recorded).
    pub refused: Vec<Refused>,
}

/// One account's entry of a batch that the API refused on its own: a tag batch narrowed down
/// to it, or an account named in the `ErrorList` of an otherwise OK answer.
#[derive(Debug, Clone)]
pub struct Refused {
    pub account: crate::model::Account,
    pub kind: BatchKind,
    /// The tags the entry carried (what stays unapplied and unrecorded).
    pub tags: Vec<crate::model::Tag>,
    /// The attribute names the entry set or removed (attribute batches).
    pub names: Vec<String>,
    pub error: ApiError,
}

/// Whether the API refused `batch` as a whole because of one entry: a tag batch answered
/// 90032 (more than 100 tags with other systems' tags) or 90020 (a tag too long). Other codes
/// are about the request or the app, not an account, and halving would not help.
fn blames_one_entry(batch: &Batch, error: &ApiError) -> bool {
    batch.kind.is_tags() && matches!(error.code(), Some(code::TOO_MANY_TAGS | code::TAG_TOO_LONG))
}

/// A batch to send: one of the plan's, or a part of a refused one.
#[derive(Debug)]
enum Job {
    Planned(usize),
    Narrowed(Batch),
}

impl Job {
    fn batch<'b>(&'b self, batches: &'b [Batch]) -> &'b Batch {
        match self {
            Job::Planned(i) => &batches[*i],
            Job::Narrowed(b) => b,
        }
    }
}

impl Report {
    /// Whether the run should go on to its next phase.
    fn may_go_on(&self) -> bool {
        self.interrupted.is_none() && self.fatal.is_none() && self.sink_error.is_none()
    }
}

/// The request body of one batch.
fn request(plan: &Plan, batch: &Batch) -> Request {
    let account = |i: usize| &plan.changes[i];
    match batch.kind {
        BatchKind::SetAttr => Request::Set(
            batch
                .changes
                .iter()
                .map(|&i| wire::UserAttrs {
                    to_account: account(i).account.to_string(),
                    attrs: account(i)
                        .set
                        .iter()
                        .map(|(n, v)| (plan.names.get(n).to_owned(), v.to_owned()))
                        .collect(),
                })
                .collect(),
        ),
        BatchKind::RemoveAttr => Request::Remove(
            batch
                .changes
                .iter()
                .map(|&i| wire::UserAttrNames {
                    to_account: account(i).account.to_string(),
                    attrs: account(i)
                        .remove
                        .iter()
                        .map(|n| plan.names.get(*n).to_owned())
                        .collect(),
                })
                .collect(),
        ),
        BatchKind::AddTag => Request::AddTag(user_tags(plan, batch)),
        BatchKind::RemoveTag => Request::RemoveTag(user_tags(plan, batch)),
    }
}

/// The entries of a tag batch: each account with its run of at most 10 tags.
fn user_tags(plan: &Plan, batch: &Batch) -> Vec<wire::UserTags> {
    (0..batch.changes.len())
        .map(|k| wire::UserTags {
            to_account: plan.changes[batch.changes[k]].account.to_string(),
            tags: batch.tags(plan, k).iter().map(|t| t.to_string()).collect(),
        })
        .collect()
}

/// A batch in its wire form.
#[derive(Debug)]
pub enum Request {
    Set(Vec<wire::UserAttrs>),
    Remove(Vec<wire::UserAttrNames>),
    AddTag(Vec<wire::UserTags>),
    RemoveTag(Vec<wire::UserTags>),
}

impl Request {
    /// The operation the request is sent with.
    pub fn operation(&self) -> Command {
        match self {
            Request::Set(_) => Command::SetAttr,
            Request::Remove(_) => Command::RemoveAttr,
            Request::AddTag(_) => Command::AddTag,
            Request::RemoveTag(_) => Command::RemoveTag,
        }
    }

    /// The legacy command name, for the errors of a partial answer when the sender does not
    /// say otherwise (the client's errors carry its family's names).
    fn command(&self) -> &'static str {
        crate::api::Family::AllMemberPush.name(self.operation())
    }
}

/// Sends `batches` of `plan` through the runner's client (see [`run_with`]).
pub async fn run(
    runner: &Runner,
    plan: Arc<Plan>,
    batches: Arc<Vec<Batch>>,
    sink: &mut dyn Sink,
    interrupt: impl Future<Output = Signal>,
) -> Report {
    let send = |body: Request| {
        let runner = runner.clone();
        async move {
            let c = &runner.client;
            match &body {
                Request::Set(users) => {
                    let cmd = c.command(Command::SetAttr);
                    runner.call(cmd, || c.set_attr(users)).await
                }
                Request::Remove(users) => {
                    let cmd = c.command(Command::RemoveAttr);
                    runner.call(cmd, || c.remove_attr(users)).await
                }
                Request::AddTag(users) => {
                    let cmd = c.command(Command::AddTag);
                    runner.call(cmd, || c.add_tag(users)).await
                }
                Request::RemoveTag(users) => {
                    let cmd = c.command(Command::RemoveTag);
                    runner.call(cmd, || c.remove_tag(users)).await
                }
            }
        }
    };
    run_with(&runner.limiter, plan, batches, sink, interrupt, send).await
}

/// Sends `batches` phase by phase ([`BatchKind::PHASES`]: sets, tag adds, removes, tag
/// removes), at most
/// `concurrency` in flight, handing confirmed batches to `sink`. A phase starts only once the
/// previous one is answered and recorded, and only if nothing stopped the run: the first fatal
/// error, a sink error or `interrupt` completing. What is in flight then still finishes and
/// is recorded.
pub async fn run_with<Fut, T>(
    limiter: &Limiter,
    plan: Arc<Plan>,
    batches: Arc<Vec<Batch>>,
    sink: &mut dyn Sink,
    interrupt: impl Future<Output = Signal>,
    send: impl Fn(Request) -> Fut,
) -> Report
where
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Into<Failures>,
{
    let mut report = Report::default();
    tokio::pin!(interrupt);
    for (p, kind) in BatchKind::PHASES.into_iter().enumerate() {
        let phase: Vec<Job> = (0..batches.len())
            .filter(|&i| batches[i].kind == kind)
            .map(Job::Planned)
            .collect();
        // The last group of the last phase with batches ends the run.
        let later = BatchKind::PHASES[p + 1..]
            .iter()
            .any(|k| batches.iter().any(|b| b.kind == *k));
        if !report.may_go_on() {
            report.batches_not_sent += phase.len();
            continue;
        }
        // A body is built when its batch is started, so only the batches in flight are in
        // memory in their wire form.
        let start = |job: Job| {
            let body = request(&plan, job.batch(&batches));
            let command = body.command();
            let answer = send(body);
            async move { (job, answer.await.map(|f| (command, f.into()))) }
        };
        let done = |answers: Vec<(Job, Answer)>,
                    slots: Vec<Slot>,
                    queue: &mut VecDeque<Job>,
                    last: bool| {
            let handed = Handed {
                plan: &plan,
                batches: &batches,
                queue,
                ends: match (last, later) {
                    (false, _) => Ends::Nothing,
                    (true, true) => Ends::Phase,
                    (true, false) => Ends::Run,
                },
            };
            handed.over(&mut report, sink, &answers, slots)
        };
        let ended = pipeline::run(limiter, phase, start, done, interrupt.as_mut()).await;
        report.batches_not_sent += ended.not_started;
        report.max_unrecorded = report.max_unrecorded.max(ended.max_waiting);
        if report.interrupted.is_none() {
            report.interrupted = ended.interrupted;
        }
    }
    report
}

/// A batch's answer: the command it was sent with and the accounts the API said failed.
type Answer = Result<(&'static str, Failures), ApiError>;

/// What a group of answers is handed over with.
struct Handed<'a> {
    plan: &'a Plan,
    batches: &'a [Batch],
    /// The phase's jobs still to start: the halves of a narrowed batch join it.
    queue: &'a mut VecDeque<Job>,
    /// What the group ends, before narrowing (see [`Sink::record`]).
    ends: Ends,
}

impl Handed<'_> {
    /// Counts a group of answers, narrows the refused tag batches, takes the failed accounts
    /// of partial successes out, and records the confirmed rest together. `false` stops the run.
    fn over(
        self,
        report: &mut Report,
        sink: &mut dyn Sink,
        answers: &[(Job, Answer)],
        slots: Vec<Slot>,
    ) -> bool {
        // The confirmed part of each partial success, owned here while the sink records it.
        let kept: Vec<Option<Batch>> = answers
            .iter()
            .map(|(job, outcome)| match outcome {
                Ok((command, failures)) if !failures.is_empty() => Some(partial(
                    report,
                    self.plan,
                    job.batch(self.batches),
                    command,
                    failures,
                )),
                _ => None,
            })
            .collect();
        let mut confirmed = Vec::with_capacity(answers.len());
        let mut held = Vec::with_capacity(answers.len());
        for (((job, outcome), slot), kept) in answers.iter().zip(slots).zip(&kept) {
            let batch = kept.as_ref().unwrap_or(job.batch(self.batches));
            match outcome {
                Ok(_) => {
                    report.batches_ok += 1;
                    if !batch.changes.is_empty() {
                        confirmed.push(batch);
                        held.push(slot);
                    }
                }
                // Its slot is freed at once: nothing of it was applied, nothing to record.
                Err(e) if blames_one_entry(batch, e) => {
                    narrow(report, self.plan, batch, e, self.queue)
                }
                Err(e) => {
                    report.batches_failed += 1;
                    tracing::error!(error = %e, "batch failed");
                    report.fatal.get_or_insert_with(|| e.clone());
                }
            }
        }
        if !confirmed.is_empty() {
            // A narrowed batch's halves just queued come after this group.
            let ends = if self.queue.is_empty() {
                self.ends
            } else {
                Ends::Nothing
            };
            if let Err(e) = sink.record_holding(self.plan, &confirmed, ends, held) {
                report.sink_error.get_or_insert(e);
            }
        }
        report.fatal.is_none() && report.sink_error.is_none()
    }
}

/// A tag batch refused for one entry: its halves join the queue, or, when it is that entry
/// alone, the entry is refused.
fn narrow(
    report: &mut Report,
    plan: &Plan,
    batch: &Batch,
    error: &ApiError,
    queue: &mut VecDeque<Job>,
) {
    if batch.changes.len() > 1 {
        let (first, second) = batch.halves();
        tracing::debug!(entries = batch.changes.len(), error = %error, "tag batch narrowed");
        report.batches_narrowed += 1;
        queue.push_back(Job::Narrowed(first));
        queue.push_back(Job::Narrowed(second));
        return;
    }
    report.batches_failed += 1;
    for (k, &i) in batch.changes.iter().enumerate() {
        let account = plan.changes[i].account.clone();
        // Named at the end of the run, with what to do (see `ops::execute::refused_error`).
        tracing::debug!(account = %account, error = %error, "tag entry refused");
        report.refused.push(Refused {
            account,
            kind: batch.kind,
            tags: batch.tags(plan, k).to_vec(),
            names: Vec::new(),
            error: error.clone(),
        });
    }
}

/// A partial success (DESIGN.md §12): the entries of the accounts in `failures` become
/// [`Refused`] entries with their codes; the batch without them is what was applied.
fn partial(
    report: &mut Report,
    plan: &Plan,
    batch: &Batch,
    command: &'static str,
    failures: &Failures,
) -> Batch {
    let command = if failures.command.is_empty() {
        command
    } else {
        failures.command
    };
    let failed = |i: usize| {
        failures
            .failed
            .iter()
            .find(|f| *f.account == *plan.changes[i].account)
    };
    let mut kept = Batch {
        kind: batch.kind,
        changes: Vec::with_capacity(batch.changes.len()),
        parts: Vec::with_capacity(batch.parts.len()),
    };
    for (k, &i) in batch.changes.iter().enumerate() {
        let Some(f) = failed(i) else {
            kept.changes.push(i);
            if let Some(&p) = batch.parts.get(k) {
                kept.parts.push(p);
            }
            continue;
        };
        let change = &plan.changes[i];
        let names = match batch.kind {
            BatchKind::SetAttr => change
                .set
                .iter()
                .map(|(n, _)| plan.names.get(n).to_owned())
                .collect(),
            BatchKind::RemoveAttr => change
                .remove
                .iter()
                .map(|n| plan.names.get(*n).to_owned())
                .collect(),
            BatchKind::AddTag | BatchKind::RemoveTag => Vec::new(),
        };
        tracing::debug!(account = %change.account, code = f.code, "entry failed in an ErrorList");
        report.refused.push(Refused {
            account: change.account.clone(),
            kind: batch.kind,
            tags: batch.tags(plan, k).to_vec(),
            names,
            error: ApiError::new(
                command,
                ApiErrorKind::Code {
                    code: f.code,
                    info: f.info.clone(),
                },
            ),
        });
    }
    kept
}

/// Live attributes of some accounts, keyed by account, and those that do not exist.
pub type LiveAttrs = crate::api::Live<BTreeMap<String, String>>;

/// Live tags of some accounts, keyed by account, and those that do not exist.
pub type LiveTags = crate::api::Live<Vec<String>>;

impl Runner {
    /// Reads the live attributes of `accounts` with `im_get_attr`, 100 per request, through the
    /// limiter. `on_chunk(first, live)` receives each answered chunk (`first` is the index of its
    /// first account), in completion order. Stops at the first error that is not retried away;
    /// `Ok(Some(signal))` when a signal stopped it.
    pub async fn read_attrs(
        &self,
        accounts: &[crate::model::Account],
        on_chunk: impl FnMut(usize, LiveAttrs),
        interrupt: impl Future<Output = Signal>,
    ) -> Result<Option<Signal>, ApiError> {
        let read =
            |client: Client, chunk: Arc<[String]>| async move { client.get_attr(&chunk).await };
        let cmd = self.client.command(Command::GetAttr);
        self.read_chunks(cmd, accounts, read, on_chunk, interrupt)
            .await
    }

    /// [`Runner::read_attrs`] for the live tags, with `im_get_tag`.
    pub async fn read_tags(
        &self,
        accounts: &[crate::model::Account],
        on_chunk: impl FnMut(usize, LiveTags),
        interrupt: impl Future<Output = Signal>,
    ) -> Result<Option<Signal>, ApiError> {
        let read =
            |client: Client, chunk: Arc<[String]>| async move { client.get_tag(&chunk).await };
        let cmd = self.client.command(Command::GetTag);
        self.read_chunks(cmd, accounts, read, on_chunk, interrupt)
            .await
    }

    /// Sends `read` for each run of 100 accounts through the limiter (see [`Runner::read_attrs`]).
    async fn read_chunks<T, R, Fut>(
        &self,
        command: &'static str,
        accounts: &[crate::model::Account],
        read: R,
        mut on_chunk: impl FnMut(usize, T),
        interrupt: impl Future<Output = Signal>,
    ) -> Result<Option<Signal>, ApiError>
    where
        R: Fn(Client, Arc<[String]>) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
        T: Send + 'static,
    {
        let size = crate::model::limits::MAX_BATCH;
        let starts: Vec<usize> = (0..accounts.len()).step_by(size).collect();
        let send = |first: usize| {
            let chunk: Arc<[String]> = accounts[first..(first + size).min(accounts.len())]
                .iter()
                .map(|a| a.to_string())
                .collect();
            let runner = self.clone();
            async move {
                let answer = runner
                    .call(command, || read(runner.client.clone(), chunk.clone()))
                    .await;
                (first, answer)
            }
        };
        let mut first_error = None;
        let done = |answers: Vec<(usize, Result<T, ApiError>)>,
                    _slots: Vec<Slot>,
                    _more: &mut VecDeque<usize>,
                    _last: bool| {
            for (first, result) in answers {
                match result {
                    Ok(live) => on_chunk(first, live),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.is_none()
        };
        tokio::pin!(interrupt);
        let ended = pipeline::run(&self.limiter, starts, send, done, interrupt.as_mut()).await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(ended.interrupted),
        }
    }
}
