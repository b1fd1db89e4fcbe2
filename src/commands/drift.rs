//! `timattr drift [--fix]` and `timattr import`: live reads through the same limiter and
//! retries as apply.

use std::io::Write;

use super::common::{self, Connection, Context};
use super::Exit;
use crate::apply::Runner;
use crate::cli::DriftArgs;
use crate::drift::{self, AccountDrift};
use crate::model::{Account, Attrs, NameIdx, Names};
use crate::render::Format;
use crate::store::{HistoryEntry, Record};
use crate::{Error, Result};

pub fn drift(ctx: &Context, args: &DriftArgs) -> Result<Exit> {
    let (settings, desired) = ctx.load()?;
    // Without --fix, drift only reads: the state directory is left as it is.
    let store = if args.fix {
        common::open_existing_store(&settings)?
    } else {
        common::open_read_only_store(&settings)?
    };
    let Some(mut store) = store else {
        ctx.note(format!(
            "There is no state at {} yet: nothing is managed, so nothing can drift.",
            settings.state_dir.display()
        ));
        return Ok(Exit::Ok);
    };
    let mut names = Names::new(&settings.attributes);
    let last = store.load_last_applied(&mut names)?;
    let runtime = common::runtime()?;
    let (drifted, completed) = runtime.block_on(async {
        let connection = Connection::open(&settings).await?;
        let runner = Runner::new(
            connection.client.clone(),
            settings.apply.rate_limit,
            settings.apply.concurrency,
        );
        let accounts: Vec<Account> = last.iter().map(|(a, _)| a.clone()).collect();
        let mut drifted: Vec<AccountDrift> = Vec::new();
        let read = runner
            .read_attrs(
                &accounts,
                |first, live| {
                    let end = (first + crate::model::limits::MAX_BATCH).min(last.len());
                    for (account, attrs) in &last[first..end] {
                        if let Some(d) =
                            drift::compare(account, attrs, live.get(&**account), &names)
                        {
                            drifted.push(d);
                        }
                    }
                },
                common::ctrl_c(),
            )
            .await;
        connection.close().await?;
        let completed = read?;
        Ok::<_, Error>((drifted, completed))
    })?;
    if !completed {
        ctx.note("Interrupted: the drift check did not finish.");
        return Ok(Exit::Interrupted);
    }
    let mut drifted = drifted;
    drifted.sort_by(|a, b| a.account.cmp(&b.account));
    let checked = last.len();
    let slots = store.meta().slots.clone();
    let pending = crate::plan::diff(desired, last, names.clone(), &slots)
        .map_err(|e| Error::msg(e.to_string()))?;
    let report = drift::Report {
        names,
        drifted,
        checked,
        pending,
    };
    let mut out = common::stdout();
    let written = match args.format {
        Format::Text => drift::write_text(&mut out, &report, super::stdout_style(&ctx.global)),
        Format::Json => drift::write_json(&mut out, &report),
        Format::Markdown => out.write_all(drift::markdown(&report).as_bytes()),
    };
    common::output_result(written.and_then(|()| out.flush()))?;
    common::append_step_summary(&drift::markdown(&report));
    if report.drifted.is_empty() {
        return Ok(Exit::Ok);
    }
    if !args.fix {
        return Ok(Exit::Changes);
    }
    ctx.note(format!(
        "Fixing: setting the last-applied values of {} users again.",
        report.drifted.len()
    ));
    let fix = report.fix_plan();
    runtime.block_on(super::apply::execute(
        ctx,
        &settings,
        &mut store,
        fix,
        "drift-fix",
    ))
}

pub fn import(ctx: &Context) -> Result<Exit> {
    let (settings, desired) = ctx.load()?;
    let mut store = common::open_store(&settings)?;
    let serial = store.next_serial()?;
    let names = desired.names.clone();
    // Only the names each account has in the files are adopted: a live value of another name
    // stays unmanaged, so the next plan leaves it alone.
    let (accounts, wanted): (Vec<Account>, Vec<Attrs>) = desired.accounts.into_iter().unzip();
    let started = std::time::Instant::now();
    let runtime = common::runtime()?;
    let (recorded, completed, stats) = runtime.block_on(async {
        let connection = Connection::open(&settings).await?;
        let runner = Runner::new(
            connection.client.clone(),
            settings.apply.rate_limit,
            settings.apply.concurrency,
        );
        let slots = match runner.call(|| runner.client.get_attr_name()).await {
            Ok(s) => s,
            Err(e) => {
                connection.close().await?;
                return Err(e.into());
            }
        };
        store.record_slots(&slots, serial)?;
        let mut recorded = 0u64;
        let mut store_error = None;
        let read = runner
            .read_attrs(
                &accounts,
                |first, live| {
                    if store_error.is_some() {
                        return;
                    }
                    let end = (first + crate::model::limits::MAX_BATCH).min(accounts.len());
                    let mut set: Vec<(&str, Attrs)> = Vec::new();
                    let mut removed: Vec<(&str, Vec<NameIdx>)> = Vec::new();
                    for (account, want) in accounts[first..end].iter().zip(&wanted[first..end]) {
                        let values = live.get(&**account);
                        let mut have = Attrs::new();
                        let mut missing = Vec::new();
                        for n in want.names() {
                            match values.and_then(|v| v.get(names.get(n))) {
                                Some(v) => have.insert(n, v.as_str().into()),
                                None => missing.push(n),
                            }
                        }
                        if !have.is_empty() {
                            set.push((account, have));
                        }
                        if !missing.is_empty() {
                            removed.push((account, missing));
                        }
                    }
                    let record = Record {
                        set: set.iter().map(|(a, at)| (*a, at)).collect(),
                        removed,
                    };
                    match store.record(&record, &names, serial) {
                        Ok(()) => recorded += record.set.len() as u64,
                        Err(e) => store_error = Some(e),
                    }
                },
                common::ctrl_c(),
            )
            .await;
        connection.close().await?;
        if let Some(e) = store_error {
            return Err(e.into());
        }
        let completed = read?;
        Ok::<_, Error>((recorded, completed, runner.stats.clone()))
    })?;
    store.add_history(&HistoryEntry {
        time: crate::store::now_unix(),
        serial,
        operation: "import".into(),
        status: if completed { "complete" } else { "interrupted" }.into(),
        accounts_set: recorded,
        accounts_removed: 0,
        names_configured: 0,
        requests: stats.requests(),
        retries: stats.retries(),
    })?;
    ctx.note(format!(
        "Import {}: read {} users, recorded live values of {} as last-applied; {} requests ({} retries) in {:.2} s. Run `timattr plan` to see the true differences.",
        if completed { "complete" } else { "interrupted" },
        accounts.len(),
        recorded,
        stats.requests(),
        stats.retries(),
        started.elapsed().as_secs_f64()
    ));
    Ok(if completed {
        Exit::Ok
    } else {
        Exit::Interrupted
    })
}
