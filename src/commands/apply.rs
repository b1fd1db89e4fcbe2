//! `timattr apply [PLANFILE]`: plan (or read the saved plan), check the safety rails, ask,
//! configure attribute names, send the batches, record each confirmed batch.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::{self, Connection, Context};
use super::Exit;
use crate::api::ApiError;
use crate::apply::{Runner, Sink};
use crate::cli::ApplyArgs;
use crate::plan::{Batch, BatchKind, Plan};
use crate::render::json::StateRef;
use crate::render::text;
use crate::settings::Settings;
use crate::store::{HistoryEntry, Record, Store};
use crate::{Error, Result};

pub fn apply(ctx: &Context, args: &ApplyArgs) -> Result<Exit> {
    let settings = ctx.settings()?;
    let saved = match &args.planfile {
        Some(path) => {
            let (plan, state) = common::read_plan(path)?;
            check_same_app(&settings, &state)?;
            Some((plan, state))
        }
        None => None,
    };
    // Refuse before touching anything: no store is created for an apply that cannot go on.
    if saved.is_none() && !args.dry_run && !args.auto_approve && !std::io::stdin().is_terminal() {
        return Err(Error::msg(
            "refusing to apply without confirmation: stdin is not a terminal; review the plan and run again with --auto-approve (or apply a saved plan file)",
        ));
    }
    // An existing store is opened (and locked) now; a missing one is only created once the
    // apply is confirmed, so a refused or dry run writes nothing.
    let existing = common::open_existing_store(&settings)?;
    let (plan, state) = match saved {
        Some((plan, state)) => {
            check_not_stale(existing.as_ref(), &state)?;
            (plan, state)
        }
        None => {
            let desired = crate::desired::load_users(&settings)?;
            let (plan, state) = common::make_plan(&settings, desired, existing.as_ref())?;
            (plan, state)
        }
    };
    print_plan(ctx, &settings, &plan)?;
    if args.dry_run {
        print_requests(&plan)?;
        if let Some(why) =
            common::mass_removal(&plan, &settings).filter(|_| !args.allow_mass_removal)
        {
            ctx.note(format!("warning: apply would refuse: {why}"));
        }
        ctx.note("Dry run: nothing was sent and nothing was written.");
        return Ok(Exit::Ok);
    }
    if plan.is_empty() {
        return Ok(Exit::Ok);
    }
    if let Some(why) = common::mass_removal(&plan, &settings).filter(|_| !args.allow_mass_removal) {
        return Err(Error::msg(format!("refusing to apply: {why}")));
    }
    // A missing secret is found before anyone is asked to confirm.
    common::project_secret(&settings)?;
    if args.planfile.is_none() && !args.auto_approve {
        confirm()?;
    }
    let mut store = match existing {
        Some(store) => store,
        None => {
            let store = common::open_store(&settings)?;
            // Another process may have created and used it since we planned.
            check_not_stale(Some(&store), &state)?;
            store
        }
    };
    let runtime = common::runtime()?;
    runtime.block_on(execute(ctx, &settings, &mut store, plan, "apply"))
}

fn check_same_app(settings: &Settings, state: &StateRef) -> Result<()> {
    if state.sdkappid != settings.sdkappid || state.endpoint_host != settings.endpoint.host() {
        return Err(Error::msg(format!(
            "the saved plan is for sdkappid {} at {}, but the project is sdkappid {} at {}",
            state.sdkappid,
            state.endpoint_host,
            settings.sdkappid,
            settings.endpoint.host()
        )));
    }
    Ok(())
}

/// A saved plan applies only to the exact state it was made against.
fn check_not_stale(store: Option<&Store>, state: &StateRef) -> Result<()> {
    let (lineage, serial) = match store {
        Some(s) => (Some(s.meta().lineage.as_str()), s.meta().serial),
        None => (None, 0),
    };
    let same = match (&state.lineage, lineage) {
        (Some(p), Some(s)) => p == s && state.serial == serial,
        // Planned before any store existed: fine while nothing has been applied since.
        (None, _) => serial == 0,
        (Some(_), None) => false,
    };
    if !same {
        return Err(Error::msg(format!(
            "saved plan is stale: it was made at serial {} (lineage {}), but the state is now at serial {} (lineage {}); run `timattr plan --out FILE` again and review the new plan",
            state.serial,
            state.lineage.as_deref().unwrap_or("none"),
            serial,
            lineage.unwrap_or("none"),
        )));
    }
    Ok(())
}

fn print_plan(ctx: &Context, settings: &Settings, plan: &Plan) -> Result<()> {
    let mut out = common::stdout();
    let r = text::write_plan(
        &mut out,
        plan,
        settings.apply.rate_limit,
        super::stdout_style(&ctx.global),
    )
    .and_then(|()| out.flush());
    common::output_result(r)
}

/// The requests a dry run would send.
fn print_requests(plan: &Plan) -> Result<()> {
    let mut out = common::stdout();
    let mut r = writeln!(out, "\nRequests it would send:");
    if r.is_ok() && !plan.attribute_names.is_empty() {
        r = writeln!(out, "  im_get_attr_name (read the configured slots)")
            .and_then(|()| writeln!(out, "  im_set_attr_name for the names the app lacks"));
    }
    for (i, batch) in plan.batches().iter().enumerate() {
        if r.is_err() {
            break;
        }
        let first = &plan.changes[batch.changes[0]].account;
        let last = &plan.changes[*batch.changes.last().expect("batches are never empty")].account;
        r = writeln!(
            out,
            "  {:<14} batch {:>5}: {:>3} accounts ({first} … {last})",
            batch.kind.command(),
            i + 1,
            batch.changes.len()
        );
    }
    common::output_result(r.and_then(|()| out.flush()))
}

/// Asks on the terminal (`apply` has already refused a non-terminal stdin).
fn confirm() -> Result<()> {
    eprint!("\nDo you want to apply these changes? Only 'yes' will be accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io("cannot read the answer", e))?;
    if answer.trim() != "yes" {
        return Err(Error::msg("apply cancelled: nothing was sent"));
    }
    Ok(())
}

/// Records each confirmed batch; feeds the progress display.
struct StoreSink<'a> {
    store: &'a mut Store,
    serial: u64,
    accounts_set: u64,
    accounts_removed: u64,
    done: Arc<AtomicU64>,
    record_time: Duration,
    records: u32,
}

impl Sink for StoreSink<'_> {
    fn done(
        &mut self,
        plan: &Plan,
        batch: &Batch,
        outcome: &std::result::Result<(), ApiError>,
    ) -> Result<()> {
        if outcome.is_err() {
            return Ok(());
        }
        let mut record = Record::default();
        for &i in &batch.changes {
            let c = &plan.changes[i];
            match batch.kind {
                BatchKind::SetAttr => record.set.push((&c.account, &c.set)),
                BatchKind::RemoveAttr => record.removed.push((&c.account, c.remove.clone())),
            }
        }
        let started = Instant::now();
        self.store.record(&record, &plan.names, self.serial)?;
        self.record_time += started.elapsed();
        self.records += 1;
        let n = batch.changes.len() as u64;
        match batch.kind {
            BatchKind::SetAttr => self.accounts_set += n,
            BatchKind::RemoveAttr => self.accounts_removed += n,
        }
        self.done.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// Runs the plan against the API, recording as it goes.
pub async fn execute(
    ctx: &Context,
    settings: &Settings,
    store: &mut Store,
    plan: Plan,
    operation: &str,
) -> Result<Exit> {
    let started = Instant::now();
    let connection = Connection::open(settings).await?;
    let runner = Runner::new(
        connection.client.clone(),
        settings.apply.rate_limit,
        settings.apply.concurrency,
    );
    let serial = store.next_serial()?;
    let mut names_configured = 0;
    if !plan.attribute_names.is_empty() {
        // The names the plan was made with (a saved plan may predate the project file).
        let declared: Vec<String> = (0..plan.names.declared_len())
            .map(|i| plan.names.get(i as crate::model::NameIdx).to_owned())
            .collect();
        let (slots, configured) = match runner.configure_names(&declared).await {
            Ok(v) => v,
            Err(e) => {
                connection.close().await?;
                return Err(e);
            }
        };
        names_configured = configured;
        store.record_slots(&slots, serial)?;
    }
    let plan = Arc::new(plan);
    let batches = Arc::new(plan.batches());
    let total_accounts: u64 = batches.iter().map(|b| b.changes.len() as u64).sum();
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(ctx, total_accounts, done.clone(), runner.stats.clone());
    let mut sink = StoreSink {
        store,
        serial,
        accounts_set: 0,
        accounts_removed: 0,
        done,
        record_time: Duration::ZERO,
        records: 0,
    };
    let report =
        crate::apply::run(&runner, plan.clone(), batches, &mut sink, common::ctrl_c()).await;
    progress.finish();
    let status = if report.interrupted {
        "interrupted"
    } else if report.fatal.is_some() || report.sink_error.is_some() {
        "failed"
    } else {
        "complete"
    };
    let (set, removed) = (sink.accounts_set, sink.accounts_removed);
    let (record_time, records) = (sink.record_time, sink.records);
    if set + removed > 0 || names_configured > 0 {
        store.add_history(&HistoryEntry {
            time: crate::store::now_unix(),
            serial,
            operation: operation.into(),
            status: status.into(),
            accounts_set: set,
            accounts_removed: removed,
            names_configured: names_configured as u64,
            requests: runner.stats.requests(),
            retries: runner.stats.retries(),
        })?;
    }
    connection.close().await?;
    let secs = started.elapsed().as_secs_f64();
    ctx.note(format!(
        "{} {status}: {set} users set, {removed} users with values removed, {names_configured} attribute names configured; {} requests ({} retries) in {secs:.2} s ({:.0} users/s; store writes {:.2} ms per batch).",
        if operation == "apply" { "Apply" } else { "Fix" },
        runner.stats.requests(),
        runner.stats.retries(),
        (set + removed) as f64 / secs.max(1e-9),
        if records > 0 { record_time.as_secs_f64() * 1000.0 / f64::from(records) } else { 0.0 },
    ));
    if let Some(e) = report.sink_error {
        return Err(e);
    }
    if let Some(e) = report.fatal {
        ctx.note(format!(
            "Stopped: {} batches not sent. Everything the API confirmed is recorded; run `timattr apply` again once the cause is fixed.",
            report.batches_not_sent
        ));
        return Err(e.into());
    }
    if report.interrupted {
        ctx.note(format!(
            "Interrupted: the requests in flight were finished and recorded; {} batches not sent. Run `timattr apply` again to continue.",
            report.batches_not_sent
        ));
        return Ok(Exit::Interrupted);
    }
    Ok(Exit::Ok)
}

/// A bar on a terminal, a line every few seconds otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub fn start(
        ctx: &Context,
        total: u64,
        done: Arc<AtomicU64>,
        stats: Arc<crate::apply::Stats>,
    ) -> Progress {
        if ctx.global.quiet || total == 0 {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let started = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} users  {msg}  ETA {eta}",
                )
                .expect("template is valid"),
            );
            bar
        });
        let bar2 = bar.clone();
        let ticker = tokio::spawn(async move {
            let period = if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            };
            loop {
                tokio::time::sleep(period).await;
                let n = done.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                let rate = stats.requests() as f64 / secs.max(1e-9);
                let msg = format!("{rate:.0} req/s  {} retries", stats.retries());
                match &bar2 {
                    Some(bar) => {
                        bar.set_position(n);
                        bar.set_message(msg);
                    }
                    None => eprintln!("applied {n}/{total} users  {msg}"),
                }
            }
        });
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
