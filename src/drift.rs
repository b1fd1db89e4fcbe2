//! Drift: live attributes and tags (`R`) against last-applied (`L`), per managed account.
//!
//! Only names and tags recorded in `L` are compared: names, tags and accounts timattr does not
//! manage are never reported. A managed value missing from the live data is drift too (deleted
//! remotely); a managed tag drifts only by missing live, since another system's tags on the same
//! account are not ours (DESIGN.md §9). The views of a report are in [`crate::render::drift`].

use std::collections::BTreeMap;

use crate::model::{Account, Attrs, NameIdx, Names, Tags};
use crate::plan::{Action, Change, Plan, TagChange};

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
    /// Last-applied tags the account no longer has live (removed remotely).
    pub tags_missing: Tags,
}

/// What `timattr drift` found.
#[derive(Debug, Clone)]
pub struct Report {
    pub names: Names,
    /// Sorted by account.
    pub drifted: Vec<AccountDrift>,
    /// Managed accounts that were read.
    pub checked: usize,
    /// Managed accounts with last-applied tags, whose tags were read too.
    pub tags_checked: usize,
    /// Desired ≠ last-applied: changes not applied yet (not drift).
    pub pending: Plan,
    /// Managed accounts the API says do not exist (70107 in a read's `ErrorList`, DESIGN.md
    /// §12), sorted: gone with everything recorded for them, not "values deleted"; a fix cannot
    /// bring them back.
    pub gone: Vec<Account>,
    /// Live values and tags outside the project's policies, sorted (DESIGN.md §11); `None`
    /// when the project has no policies. Reported only: they are not drift.
    pub policy_violations: Option<Vec<crate::policy::Violation>>,
}

impl Report {
    pub fn drifted_values(&self) -> usize {
        self.drifted.iter().map(|d| d.values.len()).sum()
    }

    /// Managed tags missing live, over every account.
    pub fn drifted_tags(&self) -> usize {
        self.drifted.iter().map(|d| d.tags_missing.len()).sum()
    }

    /// Whether anything differs live: drifted values or tags, or accounts gone.
    pub fn has_drift(&self) -> bool {
        !self.drifted.is_empty() || !self.gone.is_empty()
    }

    /// The changes that put the last-applied values and tags back (for `drift --fix`; the
    /// accounts that are gone are not in it).
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
                    tags: TagChange {
                        add: d.tags_missing.clone(),
                        remove: Tags::new(),
                    },
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
            no_state: false,
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
        tags_missing: Tags::new(),
    })
}

/// The last-applied tags of one account that it lacks live (`None`: the server did not answer
/// for the account, which then has none of them).
pub fn missing_tags(last: &Tags, live: Option<&[String]>) -> Tags {
    let live: Tags = live
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    last.minus(&live)
}

/// Adds the accounts' missing tags (sorted by account, none empty) to the attribute drift
/// (sorted by account): one [`AccountDrift`] per account, sorted.
pub fn with_missing_tags(
    attrs: Vec<AccountDrift>,
    tags: Vec<(Account, Tags)>,
) -> Vec<AccountDrift> {
    let mut merged = Vec::with_capacity(attrs.len() + tags.len());
    let mut tags = tags.into_iter().peekable();
    for mut d in attrs {
        while let Some((account, missing)) = tags.next_if(|(a, _)| *a < d.account) {
            merged.push(AccountDrift {
                account,
                values: Vec::new(),
                tags_missing: missing,
            });
        }
        if let Some((_, missing)) = tags.next_if(|(a, _)| *a == d.account) {
            d.tags_missing = missing;
        }
        merged.push(d);
    }
    merged.extend(tags.map(|(account, tags_missing)| AccountDrift {
        account,
        values: Vec::new(),
        tags_missing,
    }));
    merged
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

    fn tags(t: &[&str]) -> Tags {
        t.iter().copied().collect()
    }

    #[test]
    fn a_managed_tag_drifts_only_by_missing_live() {
        let last = tags(&["beta", "vip"]);
        let live = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Foreign tags live are none of our business; a managed one gone is drift.
        let got = live(&["other-system", "vip"]);
        assert_eq!(missing_tags(&last, Some(&got)), tags(&["beta"]));
        assert!(missing_tags(&last, Some(&live(&["vip", "x", "beta"]))).is_empty());
        assert_eq!(missing_tags(&last, None), last);
        assert!(missing_tags(&Tags::new(), Some(&live(&["x"]))).is_empty());
    }

    fn attr_drift(account: &str) -> AccountDrift {
        AccountDrift {
            account: account.into(),
            values: vec![DriftedValue {
                name: 0,
                last_applied: "x".into(),
                live: None,
            }],
            tags_missing: Tags::new(),
        }
    }

    #[test]
    fn tag_drift_joins_attribute_drift_per_account_in_order() {
        let merged = with_missing_tags(
            vec![attr_drift("b"), attr_drift("d")],
            vec![
                ("a".into(), tags(&["t1"])),
                ("b".into(), tags(&["t2"])),
                ("c".into(), tags(&["t3"])),
                ("e".into(), tags(&["t4"])),
            ],
        );
        let shape: Vec<(&str, usize, Vec<&str>)> = merged
            .iter()
            .map(|d| (&*d.account, d.values.len(), d.tags_missing.iter().collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a", 0, vec!["t1"]),
                ("b", 1, vec!["t2"]),
                ("c", 0, vec!["t3"]),
                ("d", 1, vec![]),
                ("e", 0, vec!["t4"]),
            ]
        );
        assert_eq!(with_missing_tags(vec![attr_drift("a")], vec![]).len(), 1);
    }

    #[test]
    fn the_fix_adds_the_missing_tags_back_and_removes_nothing() {
        let names = Names::new(&["city".into()]);
        let pending = crate::plan::diff(
            crate::model::Desired {
                names: names.clone(),
                accounts: vec![],
            },
            vec![],
            names.clone(),
            &[(0, "city".into())].into(),
        )
        .unwrap();
        let mut both = attr_drift("u1");
        both.tags_missing = tags(&["vip"]);
        let only_tags = AccountDrift {
            account: "u2".into(),
            values: Vec::new(),
            tags_missing: tags(&["a", "b"]),
        };
        let report = Report {
            names,
            drifted: vec![both, only_tags],
            checked: 5,
            tags_checked: 2,
            pending,
            gone: Vec::new(),
            policy_violations: None,
        };
        assert_eq!(report.drifted_tags(), 3);
        let fix = report.fix_plan();
        assert_eq!(fix.changes[0].tags.add, tags(&["vip"]));
        assert_eq!(fix.changes[0].set.get(0), Some("x"));
        assert!(fix.changes[1].set.is_empty() && fix.changes[1].remove.is_empty());
        assert_eq!(fix.changes[1].tags.add, tags(&["a", "b"]));
        assert!(fix.changes.iter().all(|c| c.tags.remove.is_empty()));
        let s = fix.summary();
        assert_eq!((s.tags_added, s.tags_removed), (3, 0));
        // One im_set_attr for u1, one im_add_tag for both: no empty attribute entry for u2.
        let batches = fix.batches();
        let kinds: Vec<_> = batches.iter().map(|b| (b.kind, b.changes.len())).collect();
        assert_eq!(
            kinds,
            vec![
                (crate::plan::BatchKind::SetAttr, 1),
                (crate::plan::BatchKind::AddTag, 2)
            ]
        );
    }
}
