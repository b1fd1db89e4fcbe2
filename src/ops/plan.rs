//! Making a plan: desired `D` (the users files) against last-applied `L` (the store), and the
//! mass-removal rule of DESIGN.md §4.

use crate::model::{Desired, Names};
use crate::plan::Plan;
use crate::render::json::StateRef;
use crate::settings::Settings;
use crate::store::interface::{Split, State};
use crate::{Error, Result};

/// The plan of `desired` against the project's store (an empty `L` when there is none).
/// Reads the store, writes nothing.
pub fn plan(settings: &Settings, desired: Desired) -> Result<(Plan, StateRef)> {
    let store = super::state::open_existing(settings)?;
    make_plan(settings, desired, store.as_ref())
}

/// Diffs `desired` against `store` (or an empty `L` when there is none).
pub fn make_plan(
    settings: &Settings,
    desired: Desired,
    store: Option<&State>,
) -> Result<(Plan, StateRef)> {
    let mut names = Names::new(&settings.attributes);
    let (slots, lineage, serial) = match store {
        Some(store) => (
            store.meta().slots.clone(),
            Some(store.meta().lineage.clone()),
            store.meta().serial,
        ),
        None => (Default::default(), None, 0),
    };
    // The store hands over `L` only where it can differ from `D`.
    let split = match store {
        Some(store) => store.split(desired.accounts, &mut names)?,
        None => Split {
            changed: desired.accounts,
            ..Split::default()
        },
    };
    let desired = Desired {
        names: desired.names,
        accounts: split.changed,
    };
    let mut plan = crate::plan::diff(desired, split.last, names, &slots)
        .map_err(|e| Error::msg(e.to_string()))?;
    plan.unchanged += split.unchanged;
    plan.managed = split.managed;
    let state = StateRef {
        lineage,
        serial,
        sdkappid: settings.sdkappid,
        endpoint_host: settings.endpoint.host().to_owned(),
        attributes: settings.attributes.clone(),
        managed: split.managed,
    };
    Ok((plan, state))
}

/// The mass-removal rule of DESIGN.md §4, phrased for the user, when `plan` breaks it.
pub fn mass_removal(plan: &Plan, settings: &Settings) -> Option<String> {
    let max = settings.apply.max_removal_percent;
    plan.is_mass_removal(max).then(|| {
        let losing = plan.summary().accounts_losing_values;
        format!(
            "this plan removes attribute values from {losing} of {} managed users ({:.1}%, more than max_removal_percent {max}%): check for an emptied or mis-globbed users file; if this is intended, apply with --allow-mass-removal",
            plan.managed,
            losing as f64 * 100.0 / plan.managed.max(1) as f64,
        )
    })
}
