//! Tags in the plan views, saved plans and state views (DESIGN.md §4, §9), as users see them:
//! `show` and `apply` of a saved plan that carries tags, the plan that follows, `state show`,
//! and saved plans with forged tags refused.

use crate::support;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};
use support::{users, Emulator, Project, Run};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn read_plan(p: &Project, name: &str) -> Value {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p.path().join(name)).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn write_plan(p: &Project, name: &str, v: &Value) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(v.to_string().as_bytes()).unwrap();
    std::fs::write(p.path().join(name), gz.finish().unwrap()).unwrap();
}

fn parsed(run: &Run) -> Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()))
}

fn requests(emu: &Emulator) -> u64 {
    emu.running().stats().requests.values().sum()
}

/// A project of 3 users against the emulator, two of them with tags, and its first saved plan
/// (`p.gz`).
fn tagged_saved_plan() -> (Emulator, Project) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    let mut yaml = String::from("users:\n");
    for (i, (account, attrs)) in users(3, "").iter().enumerate() {
        let tags = ["tags: [beta, vip]", "tags: [\"a b\"]", "tags: []"][i];
        yaml.push_str(&format!(
            "  {account}: {{sex: {}, city: {}, tier: {}, {tags}}}\n",
            attrs["sex"], attrs["city"], attrs["tier"]
        ));
    }
    p.write_users("a.yaml", &yaml);
    p.run(&["plan", "--out", "p.gz"]).expect(0);
    (emu, p)
}

#[test]
fn a_saved_plan_with_tags_is_shown_applied_and_recorded() {
    let (emu, p) = tagged_saved_plan();
    let text = p.run(&["show", "p.gz"]).expect(0).stdout();
    assert!(
        text.contains("+ user00000\n    sex: (unset) → \"m\"\n    city: (unset) → \"city0\"\n    tier: (unset) → \"tier0\"\n    tags: +beta +vip\n"),
        "{text}"
    );
    assert!(text.contains("    tags: +\"a b\"\n"), "{text}");
    assert!(
        text.contains("(3 users, 9 attribute values, 3 tags added); 4 requests"),
        "{text}"
    );
    let v = parsed(&p.run(&["show", "p.gz", "--format", "json"]).expect(0));
    assert_eq!(v["summary"]["tags_added"], 3, "{v}");
    assert_eq!(v["summary"]["tags_removed"], 0, "{v}");
    assert_eq!(
        v["changes"][1]["tags"],
        json!({"add": ["a b"], "remove": []})
    );
    assert!(v["changes"][2].get("tags").is_none(), "{v}");
    let md = p
        .run(&["show", "p.gz", "--format", "markdown"])
        .expect(0)
        .stdout();
    assert!(md.contains("| tags added | tags removed |"), "{md}");
    assert!(
        md.contains("| <i>tags added</i> | — | <code>beta</code> <code>vip</code> |"),
        "{md}"
    );

    let dry = p.run(&["apply", "p.gz", "--dry-run"]).expect(0).stdout();
    assert!(
        dry.contains("im_add_tag     batch     2:   2 accounts (user00000 … user00001), 3 tags"),
        "{dry}"
    );
    assert_eq!(requests(&emu), 0, "a dry run sends nothing");

    p.run(&["apply", "p.gz"]).expect(0);
    let live = emu.running().snapshot().users;
    let mut tags = live["user00000"].tags.clone();
    tags.sort();
    assert_eq!(tags, ["beta", "vip"]);
    assert_eq!(live["user00001"].tags, ["a b"]);
    assert!(live["user00002"].tags.is_empty());

    let shown = p
        .run(&["state", "show", "user00000", "--format", "text"])
        .expect(0)
        .stdout();
    assert_eq!(
        shown,
        "user00000\n    city: \"city0\"\n    sex: \"m\"\n    tier: \"tier0\"\n    tags: beta vip\n"
    );
    let shown = p
        .run(&["state", "show", "user00001", "--format", "text"])
        .expect(0)
        .stdout();
    assert!(shown.ends_with("    tags: \"a b\"\n"), "{shown}");
    let v = parsed(
        &p.run(&["state", "show", "user00000", "--format", "json"])
            .expect(0),
    );
    assert_eq!(v["tags"], json!(["beta", "vip"]));
    let v = parsed(
        &p.run(&["state", "show", "user00002", "--format", "json"])
            .expect(0),
    );
    assert!(v.get("tags").is_none(), "no tags, no key: {v}");
}

#[test]
fn tags_the_files_do_not_want_are_planned_for_removal() {
    let (emu, p) = tagged_saved_plan();
    p.run(&["apply", "p.gz"]).expect(0);
    // The users files want no tags: the recorded ones go, and only those.
    p.write_users_map("a.yaml", &users(3, ""));
    let text = p.run(&["plan"]).expect(0).stdout();
    assert_eq!(
        text,
        "~ user00000\n    tags: -beta -vip\n~ user00001\n    tags: -\"a b\"\n\nPlan: 0 to add, 2 to change, 0 to remove (2 users, 0 attribute values, 3 tags removed); 1 request, about 0.01 s at 100 req/s.\n"
    );
    let v = parsed(&p.run(&["plan", "--format", "json"]).expect(0));
    assert_eq!(
        v["summary"],
        json!({"add": 0, "change": 2, "remove": 0, "unchanged": 1, "requests": 1,
            "tags_added": 0, "tags_removed": 3})
    );
    assert_eq!(
        v["changes"][0],
        json!({"account": "user00000", "action": "change", "set": {}, "remove": [],
            "tags": {"add": [], "remove": ["beta", "vip"]},
            "before": {"sex": "m", "city": "city0", "tier": "tier0"},
            "after": {"sex": "m", "city": "city0", "tier": "tier0"}})
    );
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(
        md.contains("**Removals:** 2 of 3 managed users lose attribute values or tags."),
        "{md}"
    );
    let dry = p.run(&["apply", "--dry-run"]).expect(0).stdout();
    assert!(
        dry.contains("im_remove_tag  batch     1:   2 accounts (user00000 … user00001), 3 tags"),
        "{dry}"
    );
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert!(emu
        .running()
        .snapshot()
        .users
        .values()
        .all(|u| u.tags.is_empty()));
    let text = p.run(&["plan"]).expect(0).stdout();
    assert!(text.starts_with("No changes."), "{text}");
}

#[test]
fn forged_tags_in_a_saved_plan_are_refused_before_anything_is_sent() {
    let (emu, p) = tagged_saved_plan();
    let good = read_plan(&p, "p.gz");
    for (tags, why) in [
        (json!({"add": ["vip", "beta"]}), "not sorted"),
        (json!({"add": ["vip", "vip"]}), "appears twice"),
        (json!({"add": ["x".repeat(51)]}), "not 1 to 50 bytes"),
        (json!({"add": [""]}), "not 1 to 50 bytes"),
        (json!({"add": ["a\u{0}b"]}), "without NUL"),
        (json!({"remove": ["vip"]}), "is new but has tags to remove"),
        (json!({"add": 7}), "not a timattr plan file"),
    ] {
        let mut v = good.clone();
        v["changes"][0]["tags"] = tags.clone();
        write_plan(&p, "forged.gz", &v);
        for verb in ["show", "apply"] {
            let run = p.run(&[verb, "forged.gz"]).expect(1);
            let err = run.stderr();
            assert!(err.contains("forged.gz"), "{verb} {tags}: {err}");
            assert!(err.contains(why), "{verb} {tags}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    assert_eq!(requests(&emu), 0);
    assert!(!p.state_dir().join("db").exists(), "nothing recorded");
    // The untouched plan still applies.
    p.run(&["apply", "p.gz"]).expect(0);
}

/// A project whose users files give tags: u1 its own, u2 the file's default, u3 none.
fn tagged_project(emu: &Emulator) -> Project {
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users(
        "a.yaml",
        "defaults:\n  tags: [newsletter]\nusers:\n  u1: {city: a, tags: [vip, beta]}\n  u2: {city: b}\n  u3: {tier: free, tags: []}\n",
    );
    p
}

#[test]
fn a_tagged_project_plans_saves_shows_and_applies_its_tags() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = tagged_project(&emu);
    let text = p.run(&["plan", "--detailed-exitcode"]).expect(2).stdout();
    assert!(
        text.contains("+ u1\n    city: (unset) → \"a\"\n    tags: +beta +vip\n+ u2\n    city: (unset) → \"b\"\n    tags: +newsletter\n+ u3\n    tier: (unset) → \"free\"\n\n"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 3 to add, 0 to change, 0 to remove (3 users, 3 attribute values, 3 tags added); 4 requests,"),
        "{text}"
    );
    let v = parsed(&p.run(&["plan", "--format", "json"]).expect(0));
    assert_eq!(v["summary"]["tags_added"], 3, "{v}");
    assert_eq!(v["summary"]["tags_removed"], 0, "{v}");
    assert_eq!(
        v["changes"][0]["tags"],
        json!({"add": ["beta", "vip"], "remove": []})
    );
    assert!(v["changes"][2].get("tags").is_none(), "{v}");

    // Saved, shown as planned in every format, applied as saved.
    for format in ["text", "json", "markdown"] {
        let planned = p
            .run(&["plan", "--format", format, "--out", "p.gz"])
            .expect(0)
            .stdout();
        let shown = p
            .run(&["show", "p.gz", "--format", format])
            .expect(0)
            .stdout();
        assert_eq!(shown, planned, "{format}");
    }
    assert_eq!(
        read_plan(&p, "p.gz")["changes"][1]["tags"],
        json!({"add": ["newsletter"], "remove": []})
    );
    p.run(&["apply", "p.gz"]).expect(0);
    let live = emu.running().snapshot().users;
    let mut u1 = live["u1"].tags.clone();
    u1.sort();
    assert_eq!(u1, ["beta", "vip"]);
    assert_eq!(live["u2"].tags, ["newsletter"]);
    assert!(live["u3"].tags.is_empty());
    let shown = p
        .run(&["state", "show", "u1", "--format", "text"])
        .expect(0)
        .stdout();
    assert_eq!(shown, "u1\n    city: \"a\"\n    tags: beta vip\n");
    let text = p.run(&["plan", "--detailed-exitcode"]).expect(0).stdout();
    assert!(text.starts_with("No changes."), "{text}");

    // Only tags change: still a change (exit 2), both ways in one line.
    p.write_users(
        "a.yaml",
        "defaults:\n  tags: [newsletter]\nusers:\n  u1: {city: a, tags: [vip, gold]}\n  u2: {city: b}\n  u3: {tier: free, tags: []}\n",
    );
    let text = p.run(&["plan", "--detailed-exitcode"]).expect(2).stdout();
    assert_eq!(
        text,
        "~ u1\n    tags: +gold -beta\n\nPlan: 0 to add, 1 to change, 0 to remove (1 user, 0 attribute values, 1 tag added, 1 removed); 2 requests, about 0.02 s at 100 req/s.\n"
    );
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(md.contains("| 0 | 1 | 0 | 2 | 0 | 1 | 1 | 2 |"), "{md}");
    assert!(
        md.contains("| <code>u1</code> | change | <i>tags added</i> | — | <code>gold</code> |\n|  |  | <i>tags removed</i> | <code>beta</code> | <i>removed</i> |"),
        "{md}"
    );
    p.run(&["apply", "--auto-approve"]).expect(0);
    let mut u1 = emu.running().snapshot().users["u1"].tags.clone();
    u1.sort();
    assert_eq!(u1, ["gold", "vip"]);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

/// 20 users, each with a value and the tag `vip`, as the last-applied state.
fn twenty_tagged(emu: &Emulator) -> Project {
    let p = Project::new(&emu.base_url(), NAMES);
    let mut yaml = String::from("defaults:\n  tags: [vip]\nusers:\n");
    for i in 0..20 {
        yaml.push_str(&format!("  u{i:02}: {{city: c}}\n"));
    }
    p.write_users("a.yaml", &yaml);
    p.run(&["apply", "--auto-approve"]).expect(0);
    p
}

#[test]
fn removing_tags_alone_counts_toward_the_mass_removal_safety() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = twenty_tagged(&emu);
    // Same values, but the file no longer gives the default tag: 20 of 20 accounts lose a tag.
    let mut yaml = String::from("users:\n");
    for i in 0..20 {
        yaml.push_str(&format!("  u{i:02}: {{city: c}}\n"));
    }
    p.write_users("a.yaml", &yaml);
    let v = parsed(&p.run(&["plan", "--format", "json"]).expect(0));
    assert_eq!(v["summary"]["tags_removed"], 20, "{v}");
    assert_eq!(v["safety"]["apply_refuses"], true, "{v}");
    assert_eq!(v["safety"]["removal_percent"], 100.0, "{v}");
    let before = requests(&emu);
    let run = p.run(&["apply", "--auto-approve"]).expect(1);
    assert!(
        run.stderr().contains("--allow-mass-removal"),
        "{}",
        run.stderr()
    );
    assert_eq!(requests(&emu), before, "a refused apply sends nothing");
    assert_eq!(emu.running().snapshot().users["u03"].tags, ["vip"]);
    p.run(&["apply", "--auto-approve", "--allow-mass-removal"])
        .expect(0);
    assert!(emu.running().snapshot().users["u03"].tags.is_empty());
}

#[test]
fn target_limits_tag_changes_to_the_matching_accounts() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = twenty_tagged(&emu);
    let mut yaml = String::from("defaults:\n  tags: [gold]\nusers:\n");
    for i in 0..20 {
        yaml.push_str(&format!("  u{i:02}: {{city: c}}\n"));
    }
    p.write_users("a.yaml", &yaml);
    let v = parsed(
        &p.run(&["plan", "--format", "json", "--target", "u0*"])
            .expect(0),
    );
    assert_eq!(v["changes"].as_array().unwrap().len(), 10, "{v}");
    assert_eq!(
        v["changes"][0]["tags"],
        json!({"add": ["gold"], "remove": ["vip"]})
    );
    // Replacing a tag removes one: 10 of 20 users lose a tag, past the 10% safety.
    p.run(&["apply", "--auto-approve", "--target", "u0*"])
        .expect(1);
    p.run(&[
        "apply",
        "--auto-approve",
        "--allow-mass-removal",
        "--target",
        "u0*",
    ])
    .expect(0);
    let live = emu.running().snapshot().users;
    assert_eq!(live["u05"].tags, ["gold"]);
    assert_eq!(live["u15"].tags, ["vip"], "outside the target: untouched");
    let text = p.run(&["plan"]).expect(0).stdout();
    assert!(
        text.contains("0 to add, 10 to change, 0 to remove (10 users, 0 attribute values, 10 tags added, 10 removed)"),
        "{text}"
    );
}
