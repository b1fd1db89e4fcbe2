//! Table tests and a property test for the diff.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn names() -> Names {
    Names::new(&["sex".into(), "city".into(), "tier".into()])
}

fn attrs(pairs: &[(NameIdx, &str)]) -> Attrs {
    pairs.iter().map(|(n, v)| (*n, (*v).into())).collect()
}

fn desired(accounts: &[(&str, Attrs)]) -> Desired {
    let mut accounts: Vec<(Account, Managed)> = accounts
        .iter()
        .map(|(a, at)| ((*a).into(), at.clone().into()))
        .collect();
    accounts.sort_by(|a, b| a.0.cmp(&b.0));
    Desired {
        names: names(),
        accounts,
    }
}

fn all_slots() -> BTreeMap<u8, String> {
    [(0, "sex"), (1, "city"), (2, "tier")]
        .into_iter()
        .map(|(s, n)| (s, n.to_owned()))
        .collect()
}

#[test]
fn table() {
    struct Case {
        name: &'static str,
        d: Vec<(&'static str, Attrs)>,
        l: Vec<(&'static str, Attrs)>,
        want: Vec<(&'static str, Action, Attrs, Vec<NameIdx>)>,
        unchanged: usize,
    }
    let cases = vec![
        Case {
            name: "new account is added with all its names",
            d: vec![("u1", attrs(&[(0, "m"), (1, "x")]))],
            l: vec![],
            want: vec![("u1", Action::Add, attrs(&[(0, "m"), (1, "x")]), vec![])],
            unchanged: 0,
        },
        Case {
            name: "same values need nothing",
            d: vec![("u1", attrs(&[(1, "x")]))],
            l: vec![("u1", attrs(&[(1, "x")]))],
            want: vec![],
            unchanged: 1,
        },
        Case {
            name: "changed value is set, dropped name removed, same name left alone",
            d: vec![("u1", attrs(&[(0, "m"), (1, "y")]))],
            l: vec![("u1", attrs(&[(0, "m"), (1, "x"), (2, "gold")]))],
            want: vec![("u1", Action::Change, attrs(&[(1, "y")]), vec![2])],
            unchanged: 0,
        },
        Case {
            name: "account leaving the files loses all its names",
            d: vec![],
            l: vec![("u9", attrs(&[(0, "f"), (2, "free")]))],
            want: vec![("u9", Action::Remove, attrs(&[]), vec![0, 2])],
            unchanged: 0,
        },
        Case {
            name: "empty string is a value, not a removal",
            d: vec![("u1", attrs(&[(1, "")]))],
            l: vec![("u1", attrs(&[(1, "x")]))],
            want: vec![("u1", Action::Change, attrs(&[(1, "")]), vec![])],
            unchanged: 0,
        },
        Case {
            name: "account without attributes and not managed is untouched",
            d: vec![("u1", attrs(&[]))],
            l: vec![],
            want: vec![],
            unchanged: 1,
        },
        Case {
            name: "changes come sorted by account",
            d: vec![("b", attrs(&[(0, "1")])), ("a", attrs(&[(0, "1")]))],
            l: vec![("c", attrs(&[(0, "1")]))],
            want: vec![
                ("a", Action::Add, attrs(&[(0, "1")]), vec![]),
                ("b", Action::Add, attrs(&[(0, "1")]), vec![]),
                ("c", Action::Remove, attrs(&[]), vec![0]),
            ],
            unchanged: 0,
        },
    ];
    for case in cases {
        let last: Vec<(Account, Managed)> = case
            .l
            .iter()
            .map(|(a, at)| ((*a).into(), at.clone().into()))
            .collect();
        let plan = diff(desired(&case.d), last, names(), &all_slots()).unwrap();
        let got: Vec<(&str, Action, Attrs, Vec<NameIdx>)> = plan
            .changes
            .iter()
            .map(|c| (&*c.account, c.action, c.set.clone(), c.remove.clone()))
            .collect();
        assert_eq!(got, case.want, "{}", case.name);
        assert_eq!(plan.unchanged, case.unchanged, "{}", case.name);
        assert!(plan.attribute_names.is_empty(), "{}", case.name);
    }
}

#[test]
fn summary_counts_requests_per_hundred_accounts() {
    let d: Vec<(String, Attrs)> = (0..250)
        .map(|i| (format!("u{i:03}"), attrs(&[(0, "m")])))
        .collect();
    let d = desired(
        &d.iter()
            .map(|(a, at)| (a.as_str(), at.clone()))
            .collect::<Vec<_>>(),
    );
    let last = vec![("zz".into(), attrs(&[(1, "x")]).into())];
    let plan = diff(d, last, names(), &BTreeMap::new()).unwrap();
    let s = plan.summary();
    assert_eq!((s.add, s.change, s.remove), (250, 0, 1));
    // im_get_attr_name + im_set_attr_name + 3 set batches + 1 remove batch.
    assert_eq!(s.requests, 6);
    assert_eq!(s.values, 251);
    let batches = plan.batches();
    assert_eq!(batches.len(), 4);
    assert!(batches.iter().all(|b| b.changes.len() <= 100));
    assert_eq!(batches[3].kind, BatchKind::RemoveAttr);
}

#[test]
fn slots_keep_numbers_and_fill_gaps() {
    let configured: BTreeMap<u8, String> = [(0, "sex".to_owned()), (2, "other".to_owned())].into();
    let got = assign_slots(&["sex".into(), "city".into(), "tier".into()], &configured).unwrap();
    assert_eq!(got, [(1, "city".into()), (3, "tier".into())].into());
    let full: BTreeMap<u8, String> = (0..10).map(|i| (i, format!("n{i}"))).collect();
    let err = assign_slots(&["new".into()], &full).unwrap_err();
    assert!(err.to_string().contains("11 attribute names"), "{err}");
}

#[test]
fn mass_removal_needs_ten_managed_accounts_or_every_one() {
    let l: Vec<(Account, Managed)> = (0..9)
        .map(|i| (format!("u{i}").into(), attrs(&[(0, "m")]).into()))
        .collect();
    // 1 of 9 loses a value: fewer than 10 managed, not every one.
    let keep: Vec<(String, Attrs)> = (1..9)
        .map(|i| (format!("u{i}"), attrs(&[(0, "m")])))
        .collect();
    let d = desired(
        &keep
            .iter()
            .map(|(a, at)| (a.as_str(), at.clone()))
            .collect::<Vec<_>>(),
    );
    let plan = diff(d, l.clone(), names(), &all_slots()).unwrap();
    assert!(!plan.is_mass_removal(10.0));
    assert!(!plan.safety(10.0).every_account);
    // All 9 emptied: refused whatever their number.
    let plan = diff(desired(&[]), l, names(), &all_slots()).unwrap();
    assert!(plan.is_mass_removal(10.0));
    assert!(plan.is_mass_removal(100.0));
    let safety = plan.safety(10.0);
    assert!(safety.every_account && safety.apply_refuses);
    assert_eq!(safety.removal_percent, 100.0);
    let l: Vec<(Account, Managed)> = (0..20)
        .map(|i| (format!("u{i:02}").into(), attrs(&[(0, "m")]).into()))
        .collect();
    let keep: Vec<(String, Attrs)> = (0..18)
        .map(|i| (format!("u{i:02}"), attrs(&[(0, "m")])))
        .collect();
    let d = desired(
        &keep
            .iter()
            .map(|(a, at)| (a.as_str(), at.clone()))
            .collect::<Vec<_>>(),
    );
    let plan = diff(d, l, names(), &all_slots()).unwrap();
    // 2 of 20 = 10%: not more than 10%.
    assert!(!plan.is_mass_removal(10.0));
    assert!(plan.is_mass_removal(9.0));
}

fn arb_attrs() -> impl Strategy<Value = Attrs> {
    proptest::collection::btree_map(0u8..3, "[a-c]{0,2}", 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(n, v)| (n, v.into_boxed_str()))
            .collect()
    })
}

fn arb_side() -> impl Strategy<Value = BTreeMap<String, Attrs>> {
    proptest::collection::btree_map("u[0-9]{1,2}", arb_attrs(), 0..30)
}

/// The store never holds an account without attributes.
fn arb_last() -> impl Strategy<Value = BTreeMap<String, Attrs>> {
    arb_side().prop_map(|m| m.into_iter().filter(|(_, a)| !a.is_empty()).collect())
}

proptest! {
    /// Applying a plan's changes to `L` yields exactly `D`'s view of every managed account,
    /// and accounts in neither are never mentioned.
    #[test]
    fn applying_the_plan_reaches_desired(d in arb_side(), l in arb_last()) {
        let last: Vec<(Account, Managed)> = l.iter().map(|(a, at)| (a.as_str().into(), at.clone().into())).collect();
        let plan = diff(
            Desired { names: names(), accounts: d.iter().map(|(a, at)| (a.as_str().into(), at.clone().into())).collect() },
            last,
            names(),
            &all_slots(),
        ).unwrap();
        let mut state = l.clone();
        for c in &plan.changes {
            prop_assert!(d.contains_key(&*c.account) || l.contains_key(&*c.account));
            let entry = state.entry(c.account.to_string()).or_default();
            prop_assert_eq!(&*entry, &c.before);
            *entry = c.after();
            if entry.is_empty() {
                state.remove(&*c.account);
            }
        }
        let want: BTreeMap<String, Attrs> = d.clone().into_iter().filter(|(_, a)| !a.is_empty()).collect();
        prop_assert_eq!(state, want);
        let union: std::collections::BTreeSet<&String> = d.keys().chain(l.keys()).collect();
        prop_assert_eq!(plan.unchanged + plan.changes.len(), union.len());
    }
}

fn tags(list: &[&str]) -> Tags {
    list.iter().copied().collect()
}

fn managed(pairs: &[(NameIdx, &str)], t: &[&str]) -> Managed {
    Managed::new(attrs(pairs), tags(t))
}

fn diff_managed(d: Vec<(&str, Managed)>, l: Vec<(&str, Managed)>) -> Plan {
    let desired = Desired {
        names: names(),
        accounts: d.into_iter().map(|(a, m)| (a.into(), m)).collect(),
    };
    let last = l.into_iter().map(|(a, m)| (a.into(), m)).collect();
    diff(desired, last, names(), &all_slots()).unwrap()
}

#[test]
fn tags_follow_the_three_way_rule() {
    let plan = diff_managed(
        vec![
            ("a", managed(&[], &["new", "vip"])),
            ("b", managed(&[(1, "x")], &["keep", "vip"])),
            ("c", managed(&[(1, "x")], &["same"])),
        ],
        vec![
            ("b", managed(&[(1, "x")], &["keep", "old"])),
            ("c", managed(&[(1, "x")], &["same"])),
            ("d", managed(&[(0, "m")], &["gone"])),
        ],
    );
    let got: Vec<(&str, Action, Vec<&str>, Vec<&str>)> = plan
        .changes
        .iter()
        .map(|c| {
            (
                &*c.account,
                c.action,
                c.tags.add.iter().collect(),
                c.tags.remove.iter().collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", Action::Add, vec!["new", "vip"], vec![]),
            ("b", Action::Change, vec!["vip"], vec!["old"]),
            ("d", Action::Remove, vec![], vec!["gone"]),
        ]
    );
    assert_eq!(plan.unchanged, 1);
    let s = plan.summary();
    assert_eq!((s.tags_added, s.tags_removed, s.values), (3, 2, 1));
    // b and d lose something; a only gains.
    assert_eq!(s.accounts_losing_values, 2);
    // Sets (none: b's value is unchanged), tag adds, removes (d), tag removes: one each.
    assert_eq!(s.requests, 3);
}

#[test]
fn an_account_without_tags_in_either_side_plans_as_before() {
    let plan = diff_managed(
        vec![("a", managed(&[(0, "m")], &[]))],
        vec![("a", managed(&[(0, "f")], &[]))],
    );
    assert!(plan.changes[0].tags.is_empty());
    let kinds: Vec<BatchKind> = plan.batches().iter().map(|b| b.kind).collect();
    assert_eq!(kinds, vec![BatchKind::SetAttr]);
}

#[test]
fn tag_batches_keep_phase_order_and_ten_tags_per_entry_in_consecutive_batches() {
    let many: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut d = Vec::new();
    for i in 0..150 {
        let t: &[&str] = if i == 99 { &many } else { &["x"] };
        d.push((format!("u{i:03}"), managed(&[(0, "m")], t)));
    }
    let l = [("zz".to_owned(), managed(&[(1, "y")], &["old"]))];
    let plan = diff_managed(
        d.iter().map(|(a, m)| (a.as_str(), m.clone())).collect(),
        l.iter().map(|(a, m)| (a.as_str(), m.clone())).collect(),
    );
    let batches = plan.batches();
    let kinds: Vec<BatchKind> = batches.iter().map(|b| b.kind).collect();
    use BatchKind::*;
    assert_eq!(
        kinds,
        vec![SetAttr, SetAttr, AddTag, AddTag, AddTag, RemoveAttr, RemoveTag]
    );
    assert_eq!(plan.summary().requests, batches.len());
    for b in &batches {
        assert!(b.changes.len() <= 100);
        let mut seen = std::collections::BTreeSet::new();
        for (k, &i) in b.changes.iter().enumerate() {
            assert!(seen.insert(i), "an account twice in one request");
            assert!(b.tags(&plan, k).len() <= 10);
            if b.kind.is_tags() {
                assert!(!b.tags(&plan, k).is_empty());
            }
        }
    }
    // u099's 25 tags go out 10 + 10 + 5 in three consecutive batches, every tag once.
    let u099 = plan
        .changes
        .iter()
        .position(|c| &*c.account == "u099")
        .unwrap();
    let mut sent: Vec<&str> = Vec::new();
    let mut at = Vec::new();
    for (n, b) in batches.iter().enumerate() {
        for (k, &i) in b.changes.iter().enumerate() {
            if i == u099 && b.kind == AddTag {
                at.push(n);
                sent.extend(b.tags(&plan, k).iter().map(|t| &**t));
            }
        }
    }
    assert_eq!(at, vec![2, 3, 4]);
    assert_eq!(sent, many);
    // Halving keeps each entry's part.
    let (left, right) = batches[3].halves();
    assert_eq!(
        left.changes.len() + right.changes.len(),
        batches[3].changes.len()
    );
    assert_eq!(
        left.entries().chain(right.entries()).collect::<Vec<_>>(),
        batches[3].entries().collect::<Vec<_>>()
    );
}

proptest! {
    #[test]
    fn tag_batches_send_every_tag_once_within_limits(counts in proptest::collection::vec(0usize..30, 0..260)) {
        let d: Vec<(String, Managed)> = counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let t: Tags = (0..n).map(|j| format!("t{j:02}")).collect();
                (format!("u{i:04}"), Managed::new(Attrs::new(), t))
            })
            .collect();
        let plan = diff_managed(d.iter().map(|(a, m)| (a.as_str(), m.clone())).collect(), vec![]);
        let batches = plan.batches();
        prop_assert_eq!(plan.summary().requests, batches.len());
        let mut sent = vec![0usize; plan.changes.len()];
        let mut last_batch = vec![None::<usize>; plan.changes.len()];
        for (n, b) in batches.iter().enumerate() {
            prop_assert!(b.changes.len() <= 100);
            for (k, &i) in b.changes.iter().enumerate() {
                prop_assert!(last_batch[i].is_none_or(|p| p + 1 == n), "not consecutive");
                last_batch[i] = Some(n);
                sent[i] += b.tags(&plan, k).len();
            }
        }
        for (i, c) in plan.changes.iter().enumerate() {
            prop_assert_eq!(sent[i], c.tags.add.len());
        }
    }
}
