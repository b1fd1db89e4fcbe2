//! Making a plan: desired `D` (the users files) against last-applied `L` (the store), limited
//! to the `--target` accounts when given, and the mass-removal rule of DESIGN.md §4.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::{Desired, Names};
use crate::plan::Plan;
use crate::render::json::StateRef;
use crate::settings::Settings;
use crate::store::interface::{Split, State};
use crate::{Error, Result};

/// `--target PATTERN`: globs over account ids; none means every account.
#[derive(Debug, Default)]
pub struct Targets {
    patterns: Vec<glob::Pattern>,
    /// Per pattern: whether it matched an account of the files or the state yet (a pattern
    /// that matches nothing is a typo, DESIGN.md §2). Atomic: the store's scan takes `Fn`.
    hits: Vec<AtomicBool>,
}

impl Targets {
    /// Compiles the patterns; a malformed one is an error naming it.
    pub fn new(patterns: &[String]) -> Result<Targets> {
        let patterns = patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| {
                    Error::msg(format!(
                        "--target {}: not a glob pattern: {e}",
                        crate::render::quote(p)
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let hits = patterns.iter().map(|_| AtomicBool::new(false)).collect();
        Ok(Targets { patterns, hits })
    }

    /// Whether `account` is planned; remembers which patterns matched it.
    pub fn matches(&self, account: &str) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let mut any = false;
        for (p, hit) in self.patterns.iter().zip(&self.hits) {
            // A pattern that already matched need not be tried again unless nothing has yet.
            if (any && hit.load(Ordering::Relaxed)) || !p.matches(account) {
                continue;
            }
            any = true;
            hit.store(true, Ordering::Relaxed);
        }
        any
    }

    /// An error naming the patterns that matched no account seen by [`Targets::matches`].
    pub fn check_all_matched(&self) -> Result<()> {
        let unmatched: Vec<String> = self
            .patterns
            .iter()
            .zip(&self.hits)
            .filter(|(_, hit)| !hit.load(Ordering::Relaxed))
            .map(|(p, _)| crate::render::quote(p.as_str()))
            .collect();
        if unmatched.is_empty() {
            return Ok(());
        }
        let (what, verb) = if unmatched.len() == 1 {
            ("pattern", "matches")
        } else {
            ("patterns", "match")
        };
        Err(Error::msg(format!(
            "--target {what} {} {verb} no account of the users files or the state; check the spelling (a glob over account ids, e.g. 'xiaojun*')",
            unmatched.join(", ")
        )))
    }

    fn list(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
    }
}

/// The plan of the project's users files against its store (an empty `L` when there is
/// none), for the accounts `targets` matches; the files load while the store is opened (see
/// [`super::state::load_while_opening`]). Reads the store, writes nothing. Returns the number
/// of desired accounts too.
pub fn plan_files(settings: &Settings, targets: &Targets) -> Result<(Plan, StateRef, usize)> {
    let (desired, store) =
        super::state::load_while_opening(settings, super::state::open_read_only)?;
    let accounts = desired.accounts.len();
    let (plan, state) = make_plan(settings, desired, store.as_ref(), targets)?;
    Ok((plan, state, accounts))
}

/// Diffs `desired` against `store` (or an empty `L` when there is none), for the accounts
/// `targets` matches.
pub fn make_plan(
    settings: &Settings,
    mut desired: Desired,
    store: Option<&State>,
    targets: &Targets,
) -> Result<(Plan, StateRef)> {
    desired.accounts.retain(|(a, _)| targets.matches(a));
    if let Some(store) = store {
        check_recorded_types(settings, store.meta())?;
    }
    let mut names = Names::new(&settings.attributes);
    let (slots, lineage, serial, commit_id) = match store {
        Some(store) => (
            store.meta().slots.clone(),
            Some(store.meta().lineage.clone()),
            store.meta().serial,
            Some(store.meta().commit_id.clone()),
        ),
        None => (Default::default(), None, 0, None),
    };
    // The store hands over `L` only where it can differ from `D`.
    let split = match store {
        Some(store) => store.split(desired.accounts, &mut names, |a| targets.matches(a))?,
        None => Split {
            changed: desired.accounts,
            ..Split::default()
        },
    };
    let desired = Desired {
        names: desired.names,
        accounts: split.changed,
    };
    targets.check_all_matched()?;
    let mut plan = crate::plan::diff(desired, split.last, names, &slots)
        .map_err(|e| Error::msg(e.to_string()))?;
    plan.unchanged += split.unchanged;
    plan.managed = split.managed;
    plan.targets = targets.list();
    plan.no_state = lineage.is_none();
    let state = StateRef {
        lineage: lineage.clone(),
        serial,
        commit_id,
        sdkappid: settings.sdkappid,
        endpoint_host: settings.endpoint.host().to_owned(),
        attributes: settings.attributes.clone(),
        managed: split.managed,
    };
    Ok((plan, state))
}

/// A declared `account_type` that differs from the type the store recorded for the
/// attribute's slot is an error naming it, before anything is planned or sent (DESIGN.md §12).
pub fn check_recorded_types(settings: &Settings, meta: &crate::store::Meta) -> Result<()> {
    let types = meta
        .slot_types
        .iter()
        .filter_map(|(slot, t)| Some((*slot, crate::model::AccountType::from_code(i64::from(*t))?)))
        .collect();
    crate::plan::check_slot_types(
        &settings.declared_types(),
        &meta.slots,
        &types,
        "in the state (as last read from the app)",
    )
    .map_err(Error::msg)
}

/// The mass-removal rule of DESIGN.md §4, phrased for the user, when `plan` breaks it.
pub fn mass_removal(plan: &Plan, settings: &Settings) -> Option<String> {
    crate::render::mass_removal(plan, settings.apply.max_removal_percent)
}
