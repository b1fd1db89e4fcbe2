//! Drift: live attributes (`R`) against last-applied (`L`), per managed account and name.
//!
//! Only names recorded in `L` are compared: names and accounts timattr does not manage are
//! never reported. A managed value missing from the live data is drift too (deleted remotely).
//! The views of a report are in [`crate::render::drift`].

use std::collections::BTreeMap;

use crate::model::{Account, Attrs, NameIdx, Names};
use crate::plan::{Action, Change, Plan};

/// One managed value that differs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftedValue {
    pub name: NameIdx,
    pub last_applied: Box<str>,
    /// `None`: deleted remotely.
    pub live: Option<Box<str>>,
}

/// One drifted account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDrift {
    pub account: Account,
    pub values: Vec<DriftedValue>,
}

/// What `timattr drift` found.
#[derive(Debug, Clone)]
pub struct Report {
    pub names: Names,
    /// Sorted by account.
    pub drifted: Vec<AccountDrift>,
    /// Managed accounts that were read.
    pub checked: usize,
    /// Desired ≠ last-applied: changes not applied yet (not drift).
    pub pending: Plan,
}

impl Report {
    pub fn drifted_values(&self) -> usize {
        self.drifted.iter().map(|d| d.values.len()).sum()
    }

    /// The changes that put the last-applied values back (for `drift --fix`).
    pub fn fix_plan(&self) -> Plan {
        let changes = self
            .drifted
            .iter()
            .map(|d| {
                let set: Attrs = d
                    .values
                    .iter()
                    .map(|v| (v.name, v.last_applied.clone()))
                    .collect();
                let before: Attrs = d
                    .values
                    .iter()
                    .filter_map(|v| v.live.clone().map(|l| (v.name, l)))
                    .collect();
                Change {
                    account: d.account.clone(),
                    action: Action::Change,
                    set,
                    remove: Vec::new(),
                    before,
                    tags: Default::default(),
                }
            })
            .collect();
        Plan {
            names: self.names.clone(),
            attribute_names: BTreeMap::new(),
            changes,
            unchanged: self.checked - self.drifted.len(),
            managed: self.checked,
            targets: Vec::new(),
        }
    }
}

/// Compares one account's last-applied attributes with its live ones.
pub fn compare(
    account: &str,
    last: &Attrs,
    live: Option<&BTreeMap<String, String>>,
    names: &Names,
) -> Option<AccountDrift> {
    let values: Vec<DriftedValue> = last
        .iter()
        .filter_map(|(n, want)| {
            let got = live.and_then(|l| l.get(names.get(n)));
            (got.map(|g| g.as_str()) != Some(want)).then(|| DriftedValue {
                name: n,
                last_applied: want.into(),
                live: got.map(|g| g.as_str().into()),
            })
        })
        .collect();
    (!values.is_empty()).then(|| AccountDrift {
        account: account.into(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_managed_names_are_compared() {
        let names = Names::new(&["city".into(), "tier".into()]);
        let last: Attrs = [(0u8, "x".into()), (1u8, "gold".into())]
            .into_iter()
            .collect();
        let live: BTreeMap<String, String> =
            [("city".into(), "y".into()), ("other".into(), "z".into())].into();
        let d = compare("u1", &last, Some(&live), &names).unwrap();
        let value = |name, last: &str, live: Option<&str>| DriftedValue {
            name,
            last_applied: last.into(),
            live: live.map(Into::into),
        };
        assert_eq!(
            d.values,
            vec![value(0, "x", Some("y")), value(1, "gold", None)]
        );
        let same: BTreeMap<String, String> = [
            ("city".into(), "x".into()),
            ("tier".into(), "gold".into()),
            ("other".into(), "q".into()),
        ]
        .into();
        assert!(compare("u1", &last, Some(&same), &names).is_none());
        // An account the server does not return at all lost everything.
        assert_eq!(compare("u1", &last, None, &names).unwrap().values.len(), 2);
    }
}
