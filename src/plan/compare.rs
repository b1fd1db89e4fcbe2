//! Whether a saved plan holds only what planning now gives (DESIGN.md §4 "Saved plan"): every
//! change in it must equal, account by account, the change of the fresh plan of the current
//! files against the current state — same action, `before`, `after`, names set and removed,
//! and tags. A saved plan may leave accounts out (a `--target` plan does), never add one.
//!
//! Pure: both plans come in, the differences come out, in account order; names are compared
//! by text, since each plan has its own name table.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Change, Plan};
use crate::model::{Account, Attrs, Names};

/// Which side of a change a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Before,
    After,
    Set,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Before => "before",
            Part::After => "after",
            Part::Set => "set",
        }
    }
}

/// The first way one saved change differs from the fresh one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Planning now gives no change for the account.
    NotPlanned,
    Action {
        saved: Action,
        fresh: Action,
    },
    /// A name's value in `before`, `after` or `set` (`None`: the name is absent there).
    Value {
        part: Part,
        name: String,
        saved: Option<String>,
        fresh: Option<String>,
    },
    /// A name one of them removes and the other does not (`saved`: the saved plan removes it).
    Removal {
        name: String,
        saved: bool,
    },
    /// A tag one of them adds (`add`) or removes, and the other does not.
    Tag {
        add: bool,
        tag: String,
        saved: bool,
    },
}

/// Every saved change that differs from the fresh plan's change of the same account, with the
/// first difference found, in account order. Empty when the saved plan is part of the fresh
/// one.
pub fn differences(saved: &Plan, fresh: &Plan) -> Vec<(Account, Difference)> {
    let mut out = Vec::new();
    for change in &saved.changes {
        let found = fresh
            .changes
            .binary_search_by(|c| c.account.cmp(&change.account))
            .ok()
            .map(|i| &fresh.changes[i]);
        let difference = match found {
            None => Some(Difference::NotPlanned),
            Some(f) => first_difference(change, &saved.names, f, &fresh.names),
        };
        if let Some(d) = difference {
            out.push((change.account.clone(), d));
        }
    }
    out
}

fn by_name<'a>(attrs: &'a Attrs, names: &'a Names) -> BTreeMap<&'a str, &'a str> {
    attrs.iter().map(|(n, v)| (names.get(n), v)).collect()
}

/// The first name whose value differs between two maps.
fn value_difference(
    part: Part,
    saved: &BTreeMap<&str, &str>,
    fresh: &BTreeMap<&str, &str>,
) -> Option<Difference> {
    let names: BTreeSet<&str> = saved.keys().chain(fresh.keys()).copied().collect();
    names.into_iter().find_map(|name| {
        let (s, f) = (saved.get(name), fresh.get(name));
        (s != f).then(|| Difference::Value {
            part,
            name: name.to_owned(),
            saved: s.map(|v| (*v).to_owned()),
            fresh: f.map(|v| (*v).to_owned()),
        })
    })
}

/// The first item in exactly one of two sorted lists, and whether it is in `saved`.
fn list_difference<'a>(
    saved: impl Iterator<Item = &'a str>,
    fresh: impl Iterator<Item = &'a str>,
) -> Option<(String, bool)> {
    let saved: BTreeSet<&str> = saved.collect();
    let fresh: BTreeSet<&str> = fresh.collect();
    saved
        .symmetric_difference(&fresh)
        .next()
        .map(|x| ((*x).to_owned(), saved.contains(x)))
}

fn first_difference(
    saved: &Change,
    saved_names: &Names,
    fresh: &Change,
    fresh_names: &Names,
) -> Option<Difference> {
    if saved.action != fresh.action {
        return Some(Difference::Action {
            saved: saved.action,
            fresh: fresh.action,
        });
    }
    let parts = [
        (Part::Before, saved.before.clone(), fresh.before.clone()),
        (Part::After, saved.after(), fresh.after()),
        (Part::Set, saved.set.clone(), fresh.set.clone()),
    ];
    for (part, s, f) in &parts {
        let d = value_difference(*part, &by_name(s, saved_names), &by_name(f, fresh_names));
        if d.is_some() {
            return d;
        }
    }
    let removal = list_difference(
        saved.remove.iter().map(|n| saved_names.get(*n)),
        fresh.remove.iter().map(|n| fresh_names.get(*n)),
    );
    if let Some((name, saved)) = removal {
        return Some(Difference::Removal { name, saved });
    }
    for add in [true, false] {
        let side = |c: &Change| {
            if add {
                c.tags.add.clone()
            } else {
                c.tags.remove.clone()
            }
        };
        let (s, f) = (side(saved), side(fresh));
        if let Some((tag, saved)) = list_difference(s.iter(), f.iter()) {
            return Some(Difference::Tag { add, tag, saved });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Desired, Managed, Tags};

    fn names() -> Names {
        Names::new(&["sex".into(), "city".into()])
    }

    fn managed(p: &[(u8, &str)], tags: &[&str]) -> Managed {
        let attrs: Attrs = p.iter().map(|(n, v)| (*n, (*v).into())).collect();
        let tags: Tags = tags.iter().copied().collect();
        Managed::new(attrs, tags)
    }

    fn plan(d: &[(&str, Managed)], l: &[(&str, Managed)]) -> Plan {
        let desired = Desired {
            names: names(),
            accounts: d.iter().map(|(a, m)| ((*a).into(), m.clone())).collect(),
        };
        let last = l.iter().map(|(a, m)| ((*a).into(), m.clone())).collect();
        let slots = [(0, "sex".to_owned()), (1, "city".to_owned())].into();
        crate::plan::diff(desired, last, names(), &slots).unwrap()
    }

    fn fresh() -> Plan {
        plan(
            &[
                ("u1", managed(&[(1, "b")], &["vip"])),
                ("u2", managed(&[(0, "m")], &[])),
            ],
            &[
                ("u1", managed(&[(1, "a")], &["old"])),
                ("u3", managed(&[(0, "f")], &[])),
            ],
        )
    }

    #[test]
    fn the_fresh_plan_and_any_part_of_it_pass() {
        let f = fresh();
        assert_eq!(f.changes.len(), 3);
        assert!(differences(&f, &f).is_empty());
        let mut part = f.clone();
        part.changes.remove(1);
        assert!(differences(&part, &f).is_empty());
        // A plan whose names were interned in another order is the same plan.
        let mut other = f.clone();
        other.names = Names::new(&["city".into(), "sex".into()]);
        for c in &mut other.changes {
            let swap = |a: &Attrs| -> Attrs { a.iter().map(|(n, v)| (1 - n, v.into())).collect() };
            c.before = swap(&c.before);
            c.set = swap(&c.set);
            c.remove = c.remove.iter().map(|n| 1 - n).collect();
        }
        assert!(differences(&other, &f).is_empty());
    }

    #[test]
    fn each_tampering_is_named_with_its_first_difference() {
        let f = fresh();
        let mut t = f.clone();
        // u1: city set to EVIL.
        t.changes[0].set = [(1, "EVIL".into())].into_iter().collect();
        let d = differences(&t, &f);
        assert_eq!(
            d,
            vec![(
                "u1".into(),
                Difference::Value {
                    part: Part::After,
                    name: "city".into(),
                    saved: Some("EVIL".into()),
                    fresh: Some("b".into())
                }
            )]
        );
        // u1: a `before` that is not the state.
        let mut t = f.clone();
        t.changes[0].before = [(1, "zz".into())].into_iter().collect();
        assert!(matches!(
            &differences(&t, &f)[0].1,
            Difference::Value {
                part: Part::Before,
                ..
            }
        ));
        // An account planning does not give.
        let mut t = f.clone();
        let mut extra = t.changes[1].clone();
        extra.account = "u9".into();
        t.changes.push(extra);
        assert_eq!(
            differences(&t, &f),
            vec![("u9".into(), Difference::NotPlanned)]
        );
        // The action changed.
        let mut t = f.clone();
        t.changes[2].action = Action::Change;
        assert_eq!(
            differences(&t, &f)[0].1,
            Difference::Action {
                saved: Action::Change,
                fresh: Action::Remove
            }
        );
        // An extra tag removed, and a removal nobody planned.
        let mut t = f.clone();
        t.changes[0].tags.remove = ["foreign", "old"].into_iter().collect();
        assert_eq!(
            differences(&t, &f)[0].1,
            Difference::Tag {
                add: false,
                tag: "foreign".into(),
                saved: true
            }
        );
        let mut t = f.clone();
        t.changes[1].remove = vec![1];
        t.changes[1].before = [(1, "x".into())].into_iter().collect();
        assert!(matches!(
            &differences(&t, &f)[0].1,
            Difference::Value {
                part: Part::Before,
                ..
            }
        ));
        // Same after, but a set that only repeats the old value is still not the plan.
        let mut t = f.clone();
        t.changes[0].set = [(0, "m".into()), (1, "b".into())].into_iter().collect();
        t.changes[0].before = [(0, "m".into()), (1, "a".into())].into_iter().collect();
        assert!(!differences(&t, &f).is_empty());
    }

    #[test]
    fn an_undeclared_name_is_a_difference() {
        let f = fresh();
        let mut t = f.clone();
        let mut names = f.names.clone();
        let other = names.intern("other").unwrap();
        t.names = names;
        t.changes[2].remove.push(other);
        t.changes[2].before.insert(other, "v".into());
        let d = differences(&t, &f);
        assert_eq!(d.len(), 1);
        assert!(
            matches!(&d[0].1, Difference::Value { part: Part::Before, name, .. } if name == "other"),
            "{d:?}"
        );
    }
}
