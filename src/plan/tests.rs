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
    let mut accounts: Vec<(Account, Attrs)> = accounts
        .iter()
        .map(|(a, at)| ((*a).into(), at.clone()))
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
        let last: Vec<(Account, Attrs)> = case
            .l
            .iter()
            .map(|(a, at)| ((*a).into(), at.clone()))
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
    let last = vec![("zz".into(), attrs(&[(1, "x")]))];
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
fn mass_removal_needs_ten_managed_accounts() {
    let l: Vec<(Account, Attrs)> = (0..9)
        .map(|i| (format!("u{i}").into(), attrs(&[(0, "m")])))
        .collect();
    let plan = diff(desired(&[]), l, names(), &all_slots()).unwrap();
    assert!(!plan.is_mass_removal(10.0));
    let l: Vec<(Account, Attrs)> = (0..20)
        .map(|i| (format!("u{i:02}").into(), attrs(&[(0, "m")])))
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
        let last: Vec<(Account, Attrs)> = l.iter().map(|(a, at)| (a.as_str().into(), at.clone())).collect();
        let plan = diff(
            Desired { names: names(), accounts: d.iter().map(|(a, at)| (a.as_str().into(), at.clone())).collect() },
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
