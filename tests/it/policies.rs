//! Value policies (DESIGN.md §11, issue 24): `validate`, `plan` and `apply` refuse values and
//! tags outside their policy at `file:line:col` with did-you-mean, every one in one run, in
//! `defaults` too; both readers of users files agree; a plain list of names plans exactly as
//! before; `import` and `drift` report live values outside the policies without changing what
//! they record or compare.

use crate::support;

use std::time::Duration;

use support::files::{self, shown, write};
use support::{Emulator, Project};
use timattr::model::Desired;

const POLICIES: &[&str] = &[
    "sex",
    "{name: city, pattern: '[A-Z][A-Za-z -]*'}",
    "{name: tier, values: [free, gold, vip]}",
];
const TAGS: &str = "tags: {allowed: [newsletter, vip, beta]}\n";

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A project against the built-in emulator (plans need no network).
fn project(users: &str) -> Project {
    let p = Project::new("embedded", POLICIES);
    p.write_project(POLICIES, TAGS);
    p.write_users("a.yaml", users);
    p
}

const BAD: &str = "\
defaults:
  tier: fre
  tags: [newsletter, newsleter]
users:
  u1: {tier: glod, city: berlin}
  u2: {tier: gold, city: Berlin, tags: [vpi, beta]}
  u3:
    tier: VIP
    sex: anything
";

#[test]
fn validate_plan_and_apply_refuse_every_violation_at_its_place() {
    let p = project(BAD);
    let expected = [
        "users/a.yaml:2:9: error: value \"fre\" of \"tier\" in `defaults` is not allowed (tier: one of: free, gold, vip)",
        "did you mean `free`?",
        "users/a.yaml:3:22: error: tag \"newsleter\" in `defaults` is not allowed (tags: one of: beta, newsletter, vip)",
        "did you mean `newsletter`?",
        "users/a.yaml:5:14: error: value \"glod\" of \"tier\" for account \"u1\" is not allowed",
        "did you mean `gold`?",
        "users/a.yaml:5:26: error: value \"berlin\" of \"city\" for account \"u1\" is not allowed (city: pattern: [A-Z][A-Za-z -]*)",
        "users/a.yaml:6:41: error: tag \"vpi\" for account \"u2\" is not allowed",
        "did you mean `vip`?",
        "users/a.yaml:8:11: error: value \"VIP\" of \"tier\" for account \"u3\" is not allowed",
    ];
    for args in [
        &["validate"][..],
        &["plan"],
        &["plan", "--format", "json"],
        &["apply", "--auto-approve"],
    ] {
        let run = p.run(args).expect(1);
        let err = run.stderr();
        let mut at = 0;
        for e in expected {
            let found = err[at..]
                .find(e)
                .unwrap_or_else(|| panic!("{args:?}: {e:?} missing or out of order in:\n{err}"));
            at += found + e.len();
        }
        assert!(run.stdout().is_empty(), "{args:?}: {}", run.stdout());
    }
    // Nothing was applied: the refused apply wrote no state.
    assert!(!p.state_dir().exists());
}

#[test]
fn values_inside_the_policies_plan_and_apply() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), POLICIES);
    p.write_project(POLICIES, TAGS);
    p.write_users(
        "a.yaml",
        "defaults: {tier: free, tags: [newsletter]}\nusers:\n  u1: {city: Berlin, sex: '?'}\n  u2: {tier: vip, city: New York, tags: [vip, beta]}\n",
    );
    p.run(&["validate"]).expect(0);
    p.run(&["apply", "--auto-approve"]).expect(0);
    let live = emu.attrs();
    assert_eq!(live["u1"]["tier"], "free");
    assert_eq!(live["u2"]["city"], "New York");
}

#[test]
fn an_invalid_pattern_is_an_error_in_the_project_file() {
    let p = Project::new("embedded", &["sex"]);
    p.write_project(
        &[
            "{name: city, pattern: '[A-Z'}",
            "{name: tier, values: [a], pattern: b}",
        ],
        "tags: {pattern: 'x)|(y'}\n",
    );
    p.write_users("a.yaml", "users: {u1: {city: X}}\n");
    let err = p.run(&["validate"]).expect(1).stderr();
    for e in [
        "timattr.yaml:6:36: error: `pattern` of attribute \"city\" is not a valid regular expression: unclosed character class",
        "timattr.yaml:6:80: error: attribute \"tier\" has both `values` and `pattern`; give one",
        "timattr.yaml:8:17: error: `tags.pattern` is not a valid regular expression: unopened group",
    ] {
        assert!(err.contains(e), "{e:?} missing in:\n{err}");
    }
    // A hostile pattern is refused by its compiled size, quickly.
    p.write_project(&["{name: city, pattern: '\\w{1000}{1000}'}"], "");
    let started = std::time::Instant::now();
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains("compiles to more than"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The project file of the loader tests, with policies.
const PROJECT: &str = "\
app:
  sdkappid: 1400000000
  admin: administrator
  region: singapore
attributes:
  - sex
  - {name: city, pattern: 'c[0-9]+'}
  - {name: tier, values: [free, gold]}
tags: {pattern: 't[0-9]+|d'}
users: [\"users/*.yaml\"]
";

fn load(dir: &std::path::Path) -> Result<Desired, timattr::diag::Diagnostics> {
    files::load_in(dir, PROJECT)
}

/// A users file in the fast path's subset (flow and block accounts, tags, defaults).
fn generated(n: usize, bad_at: Option<usize>) -> String {
    let mut s = String::from("defaults: {tier: free, tags: [d]}\nusers:\n");
    for i in 0..n {
        let tier = if Some(i) == bad_at { "glod" } else { "gold" };
        match i % 3 {
            0 => s.push_str(&format!(
                "  u{i:06}: {{city: c{}, tags: [t{}]}}\n",
                i % 97,
                i % 50
            )),
            1 => s.push_str(&format!("  u{i:06}:\n    tier: {tier}\n    sex: m\n")),
            _ => s.push_str(&format!("  u{i:06}: {{tier: {tier}}}\n")),
        }
    }
    s
}

/// The fast path and the general parser (a comment line takes a file out of the fast path's
/// subset), and a big file cut into pieces: the same desired state, the same refusals.
#[test]
fn both_readers_agree_on_policies() {
    let fast = tempfile::tempdir().unwrap();
    let slow = tempfile::tempdir().unwrap();
    let text = generated(3000, None);
    write(fast.path(), "users/a.yaml", &text);
    write(slow.path(), "users/a.yaml", &format!("# general\n{text}"));
    let (f, s) = (load(fast.path()).unwrap(), load(slow.path()).unwrap());
    assert!(f == s, "the two readers differ");
    assert_eq!(f.accounts.len(), 3000);

    let bad = generated(3000, Some(2000)).replace("  u000003: {city: c3", "  u000003: {city: x3");
    write(fast.path(), "users/a.yaml", &bad);
    write(slow.path(), "users/a.yaml", &format!("# general\n{bad}"));
    let f = shown(fast.path(), &load(fast.path()).unwrap_err());
    let s = shown(slow.path(), &load(slow.path()).unwrap_err());
    let line = |l: usize| l + 1; // the comment line
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        s,
        f.iter()
            .map(|e| {
                let (loc, msg) = e.split_once(": ").unwrap();
                let mut parts = loc.split(':');
                let (file, l, c) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                format!("{file}:{}:{c}: {msg}", line(l.parse().unwrap()))
            })
            .collect::<Vec<_>>()
    );
    assert!(
        f[0].contains("value \"x3\" of \"city\" for account \"u000003\""),
        "{f:?}"
    );
    assert!(
        f[1].contains("value \"glod\" of \"tier\" for account \"u002000\""),
        "{f:?}"
    );

    // One big file, cut into pieces parsed in parallel: a violation deep inside is reported
    // at its place, as a whole-file parse does.
    let big = tempfile::tempdir().unwrap();
    let text = generated(100_000, Some(50_000));
    assert!(text.len() > 2 << 20);
    write(big.path(), "users/all.yaml", &text);
    let err = shown(big.path(), &load(big.path()).unwrap_err());
    let n = text
        .lines()
        .position(|l| l.starts_with("  u050000"))
        .unwrap()
        + 1;
    assert_eq!(
        err,
        [format!(
            "users/all.yaml:{n}:19: value \"glod\" of \"tier\" for account \"u050000\" is not allowed (tier: one of: free, gold)"
        )]
    );
}

/// A plain list, and the same names as entries whose policies every value passes: the same
/// plan, byte for byte, in every format.
#[test]
fn a_plain_list_plans_exactly_as_before() {
    let users = "defaults: {tier: free}\nusers:\n  u1: {city: Berlin, sex: m, tags: [vip]}\n  u2: {tier: gold}\n";
    let plain = Project::new("embedded", &["sex", "city", "tier"]);
    plain.write_users("a.yaml", users);
    let named = project(users);
    for format in ["json", "text", "markdown"] {
        let a = plain.run(&["plan", "--format", format]).expect(0);
        let b = named.run(&["plan", "--format", format]).expect(0);
        assert_eq!(a.stdout(), b.stdout(), "{format}");
    }
    let v = json(&plain.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["summary"]["add"], 2);
}

#[test]
fn import_and_drift_report_live_violations_without_changing_state() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), POLICIES);
    p.write_project(POLICIES, TAGS);
    p.write_users(
        "a.yaml",
        "users:\n  u1: {tier: gold, city: Berlin, tags: [vip]}\n  u2: {tier: free}\n",
    );
    p.run(&["apply", "--auto-approve"]).expect(0);
    // Someone edits the app by hand: a typo, a lower-case city, a tag nobody declared.
    emu.running().set_user_attr("u1", "tier", "glod");
    emu.running().set_user_attr("u2", "city", "paris");
    emu.running().add_user_tags("u1", &["vpi"]);

    let run = p.run(&["drift", "--format", "json"]).expect(2);
    let v = json(&run.stdout());
    assert_eq!(
        v["policy_violations"],
        serde_json::json!([
            {"account": "u1", "attribute": "tier", "value": "glod", "policy": "one of: free, gold, vip"},
            {"account": "u1", "tag": "vpi", "value": "vpi", "policy": "one of: beta, newsletter, vip"},
            {"account": "u2", "attribute": "city", "value": "paris", "policy": "pattern: [A-Z][A-Za-z -]*"}
        ])
    );
    // What drift compares is unchanged: u1's tier drifted; u2's city is not managed.
    assert_eq!(v["summary"]["drifted_values"], 1);
    let text = p.run(&["drift"]).expect(2).stdout();
    assert!(
        text.contains("Live 3 values are outside the project's policies")
            && text.contains("u1 tier: \"glod\" (one of: free, gold, vip)"),
        "{text}"
    );
    let md = p.run(&["drift", "--format", "markdown"]).expect(2).stdout();
    assert!(
        md.contains("| <code>u2</code> | city | <code>paris</code> |"),
        "{md}"
    );

    // Import records the live values as they are, and says which are outside the policies.
    let before = p.run(&["state", "show", "u1"]).expect(0).stdout();
    let run = p.run(&["import", "--auto-approve"]).expect(0);
    assert!(
        run.stderr().contains("u1 tier: \"glod\"") && run.stderr().contains("u1 tag: \"vpi\""),
        "{}",
        run.stderr()
    );
    let after = json(&p.run(&["state", "show", "u1"]).expect(0).stdout());
    assert_eq!(after["attrs"]["tier"], "glod", "{before} -> {after}");
    // The same import without policies records the same state.
    let plain = Project::new(&emu.base_url(), &["sex", "city", "tier"]);
    std::fs::copy(p.path().join("users/a.yaml"), {
        std::fs::create_dir_all(plain.path().join("users")).unwrap();
        plain.path().join("users/a.yaml")
    })
    .unwrap();
    let run = plain.run(&["import", "--auto-approve"]).expect(0);
    assert!(!run.stderr().contains("outside"), "{}", run.stderr());
    for account in ["u1", "u2"] {
        let a = json(&p.run(&["state", "show", account]).expect(0).stdout());
        let b = json(&plain.run(&["state", "show", account]).expect(0).stdout());
        assert_eq!(a["attrs"], b["attrs"], "{account}");
        assert_eq!(a["tags"], b["tags"], "{account}");
    }
    // A project without policies has no `policy_violations` in its drift report.
    let v = json(&plain.run(&["drift", "--format", "json"]).expect(0).stdout());
    assert!(v.get("policy_violations").is_none(), "{v}");
}
