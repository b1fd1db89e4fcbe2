//! The `apply` use case: plan (or read the saved plan), check the safety rails, have the plan
//! reviewed, then execute it ([`super::execute`]).
//!
//! The order is the contract: nothing is created or sent for an apply that cannot go on (a
//! non-terminal without approval, a mass removal, a missing secret), a missing store is only
//! created once the apply is confirmed, and a saved plan applies only when sealed, made
//! against the exact state under the writer's lock, and part of what planning the current
//! files gives now ([`saved`]).

use std::path::PathBuf;

use super::execute::{self, Executed, Operation};
use super::{saved, state};
use crate::plan::Plan;
use crate::render::json::StateRef;
use crate::settings::Settings;
use crate::store::interface::State;
use crate::store::HistoryEntry;
use crate::{Error, Result};

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// A plan saved with `plan --out`: applied exactly, without asking again.
    pub planfile: Option<PathBuf>,
    pub auto_approve: bool,
    pub dry_run: bool,
    pub allow_mass_removal: bool,
    /// `--target` patterns: only the matching accounts are planned and applied.
    pub targets: Vec<String>,
    /// Whether someone can be asked (stdin is a terminal).
    pub interactive: bool,
    /// No progress display.
    pub quiet: bool,
}

/// What an apply needs from the person running it.
pub trait Review {
    /// Shows the plan about to be applied.
    fn show_plan(&mut self, plan: &Plan) -> Result<()>;
    /// Shows the requests a dry run would send.
    fn show_requests(&mut self, plan: &Plan) -> Result<()>;
    /// A note or warning on stderr.
    fn note(&mut self, message: &str);
    /// Asks for confirmation; `Err` when it is refused.
    fn confirm(&mut self) -> Result<()>;
}

/// How an apply ended (errors aside).
#[derive(Debug)]
pub enum Applied {
    /// `--dry-run`: nothing sent, nothing written.
    DryRun,
    /// The plan was empty.
    NothingToDo,
    Executed(Box<Executed>),
}

pub fn apply(settings: &Settings, opts: &ApplyOptions, review: &mut dyn Review) -> Result<Applied> {
    let targets = super::plan::Targets::new(&opts.targets)?;
    let saved = match &opts.planfile {
        Some(path) => {
            let saved = saved::read(path)?;
            saved::check_seal(&saved)?;
            saved::check_same_app(settings, &saved.state)?;
            Some(saved)
        }
        None => None,
    };
    // The history entry names the saved plan applied.
    let plan_digest = saved.as_ref().and_then(|s| match &s.seal {
        saved::Seal::Intact(digest) => Some(digest.clone()),
        _ => None,
    });
    // Refuse before touching anything: no store is created for an apply that cannot go on.
    if saved.is_none() && !opts.dry_run && !opts.auto_approve && !opts.interactive {
        return Err(Error::msg(
            "refusing to apply without confirmation: stdin is not a terminal; review the plan and run again with --auto-approve (or apply a saved plan file)",
        ));
    }
    // Both plan the current files: a saved plan is checked against them.
    // An existing store is opened (and locked) now, while the files load; a missing one is
    // only created once the apply is confirmed, so a refused or dry run writes nothing.
    // A writer plans under its lock (PostgreSQL: waiting up to --lock-timeout first), so
    // two applies in a row never send the same change twice; a dry run only reads.
    let dry_run = opts.dry_run;
    let (desired, existing) = state::load_while_opening(settings, move |settings| {
        if dry_run {
            state::open_read_only(settings)
        } else {
            state::open_existing(settings, "apply")
        }
    })?;
    let (plan, planned_at) = match saved {
        Some(saved) => {
            // Under the writer's lock, which every write below checks it still holds: the
            // state cannot change between this check and the first write.
            saved::check_not_stale(existing.as_ref(), &saved.state)?;
            let (verdict, plan) = saved::verify(settings, &saved.plan, desired, existing.as_ref())?;
            if let Some(e) = verdict.error() {
                return Err(e);
            }
            (plan, saved.state)
        }
        None => super::plan::make_plan(settings, desired, existing.as_ref(), &targets)?,
    };
    review.show_plan(&plan)?;
    let refusal = super::plan::mass_removal(&plan, settings).filter(|_| !opts.allow_mass_removal);
    if opts.dry_run {
        review.show_requests(&plan)?;
        review.note("Dry run: nothing was sent and nothing was written.");
        // A dry run is how a pipeline asks "would this apply go through?": the answer is no.
        if let Some(why) = refusal {
            return Err(Error::msg(format!("apply would refuse this plan: {why}")));
        }
        return Ok(Applied::DryRun);
    }
    if plan.is_empty() {
        return Ok(Applied::NothingToDo);
    }
    if let Some(why) = refusal {
        return Err(Error::msg(format!("refusing to apply: {why}")));
    }
    // A missing secret is found before anyone is asked to confirm.
    super::connect::project_secret(settings)?;
    if opts.planfile.is_none() && !opts.auto_approve {
        review.confirm()?;
    }
    let mut store = confirmed_store(settings, existing, &planned_at)?;
    let mut entry = HistoryEntry::now("apply", Some(&settings.project_dir));
    entry.targets.clone_from(&opts.targets);
    entry.plan_digest = plan_digest;
    store.begin(entry);
    let executed = execute::execute(settings, &mut store, plan, Operation::Apply, opts.quiet)?;
    Ok(Applied::Executed(Box::new(executed)))
}

/// The store to record into, created now when missing.
fn confirmed_store(
    settings: &Settings,
    existing: Option<State>,
    planned_at: &StateRef,
) -> Result<State> {
    match existing {
        Some(store) => Ok(store),
        None => {
            let store = state::open_or_create(settings, "apply")?;
            // Another process may have created and used it since we planned.
            saved::check_not_stale(Some(&store), planned_at)?;
            Ok(store)
        }
    }
}
