//! Making a plan: desired `D` (the users files) against last-applied `L` (the store), limited
//! to the `--target` accounts when given, and the mass-removal rule of DESIGN.md §4.

use crate::model::{Account, Attrs, Desired, Names};
use crate::plan::Plan;
use crate::render::json::StateRef;
use crate::settings::Settings;
use crate::store::Store;
use crate::{Error, Result};

/// `--target PATTERN`: globs over account ids; none means every account.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    patterns: Vec<glob::Pattern>,
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
            .collect::<Result<_>>()?;
        Ok(Targets { patterns })
    }

    /// Whether `account` is planned.
    pub fn matches(&self, account: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(account))
    }

    fn list(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
    }
}

/// The plan of `desired` against the project's store (an empty `L` when there is none), for
/// the accounts `targets` matches. Reads the store, writes nothing.
pub fn plan(settings: &Settings, desired: Desired, targets: &Targets) -> Result<(Plan, StateRef)> {
    let store = super::state::open_read_only(settings)?;
    make_plan(settings, desired, store.as_ref(), targets)
}

/// Diffs `desired` against `store` (or an empty `L` when there is none), for the accounts
/// `targets` matches.
pub fn make_plan(
    settings: &Settings,
    mut desired: Desired,
    store: Option<&Store>,
    targets: &Targets,
) -> Result<(Plan, StateRef)> {
    desired.accounts.retain(|(a, _)| targets.matches(a));
    let names = Names::new(&settings.attributes);
    let (slots, lineage, serial) = match store {
        Some(store) => (
            store.meta().slots.clone(),
            Some(store.meta().lineage.clone()),
            store.meta().serial,
        ),
        None => (Default::default(), None, 0),
    };
    let split = match store {
        Some(store) => split_unchanged(store, desired.accounts, names, targets)?,
        None => Split {
            rest: desired.accounts,
            last: Vec::new(),
            names,
            same: 0,
            managed: 0,
        },
    };
    let desired = Desired {
        names: desired.names,
        accounts: split.rest,
    };
    let mut plan = crate::plan::diff(desired, split.last, split.names, &slots)
        .map_err(|e| Error::msg(e.to_string()))?;
    plan.unchanged += split.same;
    plan.managed = split.managed;
    plan.targets = targets.list();
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

/// The store's accounts sorted out against the desired ones.
struct Split {
    /// Desired accounts that need a diff.
    rest: Vec<(Account, Attrs)>,
    /// Last-applied attributes of the stored accounts that need a diff.
    last: Vec<(Account, Attrs)>,
    /// The names `last` was decoded with.
    names: Names,
    /// Accounts whose stored bytes equal the desired ones.
    same: usize,
    /// Accounts in the store.
    managed: usize,
}

/// Most accounts of a large app are unchanged between two plans. While scanning the store, an
/// account whose desired attributes encode to exactly the stored bytes is counted as unchanged
/// without decoding anything; only the rest goes through [`crate::plan::diff`].
fn split_unchanged(
    store: &Store,
    desired: Vec<(Account, Attrs)>,
    mut names: Names,
    targets: &Targets,
) -> Result<Split> {
    let mut rest = Vec::new();
    let mut last = Vec::new();
    let mut same = 0;
    let mut wanted = desired.into_iter().peekable();
    let mut scratch = Vec::with_capacity(256);
    let managed = store.scan(|account, stored| {
        if !targets.matches(account) {
            return Ok(());
        }
        while let Some(d) = wanted.next_if(|(a, _)| &**a < account) {
            rest.push(d);
        }
        let decode = |names: &mut Names| {
            crate::store::decode_attrs(stored, names).map_err(|m| {
                crate::store::StoreError::Corrupt {
                    path: store.path().to_path_buf(),
                    message: m,
                }
            })
        };
        match wanted.next_if(|(a, _)| &**a == account) {
            Some(d) => {
                crate::store::encode_attrs_into(&mut scratch, &d.1, &names);
                if scratch == stored {
                    same += 1;
                } else {
                    last.push((account.into(), decode(&mut names)?));
                    rest.push(d);
                }
            }
            None => last.push((account.into(), decode(&mut names)?)),
        }
        Ok(())
    })?;
    rest.extend(wanted);
    Ok(Split {
        rest,
        last,
        names,
        same,
        managed,
    })
}

/// The mass-removal rule of DESIGN.md §4, phrased for the user, when `plan` breaks it.
pub fn mass_removal(plan: &Plan, settings: &Settings) -> Option<String> {
    crate::render::mass_removal(&plan.safety(settings.apply.max_removal_percent))
}
