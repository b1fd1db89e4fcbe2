//! Runs a plan's batches through the limiter and reports each batch outcome to a [`Sink`].
//!
//! Apply does not know the store exists: the command's sink records each confirmed batch, so
//! "record only what the server confirmed" lives in one obvious place. Scheduling stops at the
//! first fatal error or interrupt; batches already in flight finish and are reported.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::api::{wire, ApiError, Client};
use crate::limiter::{Limiter, RetryPolicy};
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
    pub async fn call<T, F, Fut>(&self, send: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let (requests, retries) = (&self.stats.requests, &self.stats.retries);
        self.limiter
            .call(&self.retry, requests, retries, send)
            .await
    }

    /// Makes sure the app has every declared attribute name: reads the configured slots
    /// first so existing names keep their numbers, then sets the missing names into free
    /// slots. Returns the app's slots afterwards and how many names were configured.
    pub async fn configure_names(
        &self,
        declared: &[String],
    ) -> crate::Result<(BTreeMap<u8, String>, usize)> {
        let mut slots = self.call(|| self.client.get_attr_name()).await?;
        let missing = crate::plan::assign_slots(declared, &slots)
            .map_err(|e| crate::Error::msg(e.to_string()))?;
        if !missing.is_empty() {
            self.call(|| self.client.set_attr_name(&missing)).await?;
            slots.extend(missing.clone());
        }
        Ok((slots, missing.len()))
    }
}

/// Receives each batch outcome, in the order they complete.
pub trait Sink {
    /// An `Err` (e.g. the store could not be written) stops the scheduling of new batches.
    fn done(
        &mut self,
        plan: &Plan,
        batch: &Batch,
        outcome: &Result<(), ApiError>,
    ) -> crate::Result<()>;
}

/// How a run of batches ended.
#[derive(Debug, Default)]
pub struct Report {
    pub batches_ok: usize,
    pub batches_failed: usize,
    pub batches_not_sent: usize,
    pub interrupted: bool,
    /// The first fatal API error, if any.
    pub fatal: Option<ApiError>,
    /// The first error of the sink, if any.
    pub sink_error: Option<crate::Error>,
}

/// The request body of one batch.
fn request(plan: &Plan, batch: &Batch) -> Request {
    match batch.kind {
        BatchKind::SetAttr => Request::Set(
            batch
                .changes
                .iter()
                .map(|&i| {
                    let c = &plan.changes[i];
                    wire::UserAttrs {
                        to_account: c.account.to_string(),
                        attrs: c
                            .set
                            .iter()
                            .map(|(n, v)| (plan.names.get(n).to_owned(), v.to_owned()))
                            .collect(),
                    }
                })
                .collect(),
        ),
        BatchKind::RemoveAttr => Request::Remove(
            batch
                .changes
                .iter()
                .map(|&i| {
                    let c = &plan.changes[i];
                    wire::UserAttrNames {
                        to_account: c.account.to_string(),
                        attrs: c
                            .remove
                            .iter()
                            .map(|n| plan.names.get(*n).to_owned())
                            .collect(),
                    }
                })
                .collect(),
        ),
    }
}

enum Request {
    Set(Vec<wire::UserAttrs>),
    Remove(Vec<wire::UserAttrNames>),
}

/// How a [`Runner::pipeline`] ended.
struct Pipeline {
    /// Jobs never started.
    not_started: usize,
    interrupted: bool,
}

impl Runner {
    /// Starts `jobs` in order, each as its own task, at most `concurrency` at once; hands each
    /// result to `done` in completion order. Stops starting jobs when `done` returns `false` or
    /// `interrupt` completes, and returns once every started job has been handed over: nothing
    /// that was sent goes unreported.
    async fn pipeline<J, T, Fut>(
        &self,
        jobs: Vec<J>,
        send: impl Fn(Runner, J) -> Fut,
        mut done: impl FnMut(T) -> bool,
        interrupt: impl Future<Output = ()>,
    ) -> Pipeline
    where
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let total = jobs.len();
        let mut jobs = jobs.into_iter();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<T>();
        let (mut started, mut in_flight) = (0, 0usize);
        let (mut stop, mut interrupted) = (false, false);
        tokio::pin!(interrupt);
        while in_flight > 0 || (!stop && started < total) {
            tokio::select! {
                biased;
                Some(result) = rx.recv() => {
                    in_flight -= 1;
                    if !done(result) {
                        stop = true;
                    }
                }
                () = &mut interrupt, if !interrupted => {
                    interrupted = true;
                    stop = true;
                }
                permit = self.limiter.in_flight(), if !stop && started < total => {
                    let job = jobs.next().expect("fewer jobs started than there are");
                    started += 1;
                    in_flight += 1;
                    let task = send(self.clone(), job);
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let result = task.await;
                        drop(permit);
                        let _ = tx.send(result);
                    });
                }
            }
        }
        Pipeline {
            not_started: total - started,
            interrupted,
        }
    }
}

/// Sends `batches` of `plan` in order, at most `concurrency` in flight, reporting each outcome
/// to `sink`. Stops scheduling at the first fatal error, sink error or when `interrupt`
/// completes; what is in flight then still finishes and is reported.
pub async fn run(
    runner: &Runner,
    plan: Arc<Plan>,
    batches: Arc<Vec<Batch>>,
    sink: &mut dyn Sink,
    interrupt: impl Future<Output = ()>,
) -> Report {
    let mut report = Report::default();
    // A body is built when its batch is started, so only the batches in flight are in memory
    // in their wire form.
    let send = |runner: Runner, index: usize| {
        let body = request(&plan, &batches[index]);
        async move {
            let outcome = match &body {
                Request::Set(users) => runner.call(|| runner.client.set_attr(users)).await,
                Request::Remove(users) => runner.call(|| runner.client.remove_attr(users)).await,
            };
            (index, outcome)
        }
    };
    let done = |(index, outcome): (usize, Result<(), ApiError>)| {
        let mut go_on = true;
        match &outcome {
            Ok(()) => report.batches_ok += 1,
            Err(e) => {
                report.batches_failed += 1;
                tracing::error!(error = %e, "batch failed");
                go_on = false;
            }
        }
        if let Err(e) = sink.done(&plan, &batches[index], &outcome) {
            report.sink_error.get_or_insert(e);
            go_on = false;
        }
        if let Err(e) = outcome {
            report.fatal.get_or_insert(e);
        }
        go_on
    };
    let ended = runner
        .pipeline((0..batches.len()).collect(), send, done, interrupt)
        .await;
    report.batches_not_sent = ended.not_started;
    report.interrupted = ended.interrupted;
    report
}

/// Live attributes of some accounts, keyed by account.
pub type LiveAttrs = std::collections::HashMap<String, BTreeMap<String, String>>;

impl Runner {
    /// Reads the live attributes of `accounts` with `im_get_attr`, 100 per request, through the
    /// limiter. `on_chunk(first, live)` receives each answered chunk (`first` is the index of its
    /// first account), in completion order. Stops at the first error that is not retried away;
    /// `Ok(false)` when interrupted.
    pub async fn read_attrs(
        &self,
        accounts: &[crate::model::Account],
        mut on_chunk: impl FnMut(usize, LiveAttrs),
        interrupt: impl Future<Output = ()>,
    ) -> Result<bool, ApiError> {
        let size = crate::model::limits::MAX_BATCH;
        let starts: Vec<usize> = (0..accounts.len()).step_by(size).collect();
        let send = |runner: Runner, first: usize| {
            let chunk: Vec<String> = accounts[first..(first + size).min(accounts.len())]
                .iter()
                .map(|a| a.to_string())
                .collect();
            async move { (first, runner.call(|| runner.client.get_attr(&chunk)).await) }
        };
        let mut first_error = None;
        let done = |(first, result): (usize, Result<LiveAttrs, ApiError>)| match result {
            Ok(live) => {
                on_chunk(first, live);
                true
            }
            Err(e) => {
                first_error.get_or_insert(e);
                false
            }
        };
        let ended = self.pipeline(starts, send, done, interrupt).await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(!ended.interrupted),
        }
    }
}
