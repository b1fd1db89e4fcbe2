//! Executing a plan against the API, recording what it confirmed: shared by `apply` and
//! `drift --fix`.
//!
//! The attribute names are configured first (and the app's slots recorded), then the value
//! batches run through [`crate::apply`], whose sink here is the store: each group of confirmed
//! batches is written in one atomic store commit. A history entry ends every run that changed
//! something, whether it completed, failed or was stopped by a signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connect::{self, Connection};
use crate::apply::{Runner, Signal, Sink};
use crate::model::NameIdx;
use crate::plan::{Batch, BatchKind, Plan};
use crate::render::progress::Progress;
use crate::render::report::ApplyTotals;
use crate::settings::Settings;
use crate::store::{HistoryEntry, Record, Store};
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
    /// What stopped the run, if an error did (everything confirmed was recorded).
    pub error: Option<Error>,
}

/// Records each group of confirmed batches in one store commit; feeds the progress display.
struct StoreSink<'a> {
    store: &'a mut Store,
    serial: u64,
    accounts_set: u64,
    accounts_removed: u64,
    batches: u64,
    done: Arc<AtomicU64>,
    record_time: Duration,
}

impl Sink for StoreSink<'_> {
    fn record(&mut self, plan: &Plan, confirmed: &[&Batch]) -> Result<()> {
        let mut record = Record::default();
        for batch in confirmed {
            for &i in &batch.changes {
                let c = &plan.changes[i];
                match batch.kind {
                    BatchKind::SetAttr => record.set.push((&c.account, &c.set)),
                    BatchKind::RemoveAttr => record.removed.push((&c.account, c.remove.clone())),
                }
            }
        }
        let started = Instant::now();
        self.store.record(&record, &plan.names, self.serial)?;
        self.record_time += started.elapsed();
        self.batches += confirmed.len() as u64;
        self.accounts_set += record.set.len() as u64;
        self.accounts_removed += record.removed.len() as u64;
        self.done.fetch_add(
            (record.set.len() + record.removed.len()) as u64,
            Ordering::Relaxed,
        );
        Ok(())
    }
}

/// Runs `plan` against the API, recording as it goes. Ctrl-C and SIGTERM stop the scheduling;
/// what is in flight finishes and is recorded. `Err` only when nothing could be run (the
/// connection or the attribute names failed); later failures are in [`Executed::error`].
pub fn execute(
    settings: &Settings,
    store: &mut Store,
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
        let names = match configure_names(&runner, store, &plan, serial).await {
            Ok(n) => n,
            Err(e) => {
                connection.close().await?;
                return Err(e);
            }
        };
        let mut executed = run_batches(&runner, store, plan, serial, quiet, interrupt).await;
        executed.totals.names_configured = names;
        executed.totals.elapsed = started.elapsed();
        finish(store, &executed, &runner, serial, operation)?;
        executed.serial = store.meta().serial;
        connection.close().await?;
        Ok(executed)
    })
}

/// Configures the attribute names the app lacks and records its slots. Returns how many
/// names were configured.
async fn configure_names(
    runner: &Runner,
    store: &mut Store,
    plan: &Plan,
    serial: u64,
) -> Result<u64> {
    if plan.attribute_names.is_empty() {
        return Ok(0);
    }
    // The names the plan was made with (a saved plan may predate the project file).
    let declared: Vec<String> = (0..plan.names.declared_len())
        .map(|i| plan.names.get(i as NameIdx).to_owned())
        .collect();
    let (slots, configured) = runner.configure_names(&declared).await?;
    store.record_slots(&slots, serial)?;
    Ok(configured as u64)
}

async fn run_batches(
    runner: &Runner,
    store: &mut Store,
    plan: Plan,
    serial: u64,
    quiet: bool,
    interrupt: impl std::future::Future<Output = Signal>,
) -> Executed {
    let plan = Arc::new(plan);
    let batches = Arc::new(plan.batches());
    let total: u64 = batches.iter().map(|b| b.changes.len() as u64).sum();
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(quiet, total, done.clone(), runner.stats.clone());
    let mut sink = StoreSink {
        store,
        serial,
        accounts_set: 0,
        accounts_removed: 0,
        batches: 0,
        done,
        record_time: Duration::ZERO,
    };
    let report = crate::apply::run(runner, plan, batches, &mut sink, interrupt).await;
    progress.finish();
    let status = if report.interrupted.is_some() {
        "interrupted"
    } else if report.fatal.is_some() || report.sink_error.is_some() {
        "failed"
    } else {
        "complete"
    };
    Executed {
        totals: ApplyTotals {
            status,
            accounts_set: sink.accounts_set,
            accounts_removed: sink.accounts_removed,
            names_configured: 0,
            requests: runner.stats.requests(),
            retries: runner.stats.retries(),
            elapsed: Duration::ZERO,
            batches_recorded: sink.batches,
            record_time: sink.record_time,
            max_unrecorded: report.max_unrecorded,
        },
        batches_ok: report.batches_ok,
        batches_failed: report.batches_failed,
        batches_not_sent: report.batches_not_sent,
        serial,
        interrupted: report.interrupted,
        error: report.sink_error.or(report.fatal.map(Error::from)),
    }
}

/// Writes the history entry of a run that changed something.
fn finish(
    store: &mut Store,
    executed: &Executed,
    runner: &Runner,
    serial: u64,
    operation: Operation,
) -> Result<()> {
    let t = &executed.totals;
    if t.accounts_set + t.accounts_removed == 0 && t.names_configured == 0 {
        return Ok(());
    }
    store.add_history(&HistoryEntry {
        time: crate::clock::now_unix(),
        serial,
        operation: operation.as_str().into(),
        status: t.status.into(),
        accounts_set: t.accounts_set,
        accounts_removed: t.accounts_removed,
        names_configured: t.names_configured,
        requests: runner.stats.requests(),
        retries: runner.stats.retries(),
    })?;
    Ok(())
}
