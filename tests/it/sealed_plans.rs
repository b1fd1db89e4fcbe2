//! Sealed saved plans (DESIGN.md §4 "Saved plan"): what was reviewed is exactly what is
//! applied. Each tampering, a stale plan (also one whose serial a forced restore reused), an
//! old-format plan and a mass removal are refused with nothing sent to the emulator; a
//! `--target` plan, a part of the fresh plan, applies; `show` says which check fails. Every
//! test that involves the state runs on sled and on PostgreSQL.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use crate::pg::TestDb;
use crate::support::{Emulator, Project};

const NAMES: &[&str] = &["sex", "city"];

/// The stores to run on: sled, and PostgreSQL when the server is there.
fn backends() -> Vec<(&'static str, Option<TestDb>)> {
    let mut out = vec![("sled", None)];
    if let Some(db) = TestDb::create() {
        out.push(("postgres", Some(db)));
    }
    out
}

fn project(emu: &Emulator, db: &Option<TestDb>) -> Project {
    let p = Project::new(&emu.base_url(), NAMES);
    if let Some(db) = db {
        p.write_project(NAMES, &format!("state: {}\n", db.url()));
    }
    p
}

/// Users `u1..=n` with a city (`city<i><salt>`) and the tag `vip`.
fn users_yaml(n: usize, salt: &str) -> String {
    let mut yaml = String::from("users:\n");
    for i in 1..=n {
        yaml.push_str(&format!(
            "  u{i}: {{sex: m, city: \"c{i}{salt}\", tags: [vip]}}\n"
        ));
    }
    yaml
}

fn requests(emu: &Emulator) -> u64 {
    emu.running().stats().total_requests()
}

fn read_plan(p: &Project, name: &str) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p.path().join(name)).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn write_plan(p: &Project, name: &str, text: &str) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(p.path().join(name), gz.finish().unwrap()).unwrap();
}

/// `doc` written back with a digest that matches it, as someone who read the format would.
fn resealed(mut doc: serde_json::Value) -> String {
    use sha2::Digest;
    doc.as_object_mut().unwrap().remove("digest");
    let text = serde_json::to_string(&doc).unwrap();
    let body = text.strip_suffix('}').unwrap();
    let digest = sha2::Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{body},\"digest\":\"sha256:{hex}\"}}\n")
}

/// Edits a saved plan's JSON: `naive.gz` as it stands (the digest no longer matches) and
/// `sealed.gz` with a matching digest.
fn tamper(p: &Project, edit: impl Fn(&mut serde_json::Value)) {
    let text = read_plan(p, "plan.gz");
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut doc);
    let digest = doc["digest"].clone();
    let mut naive = doc.clone();
    naive["digest"] = digest;
    write_plan(p, "naive.gz", &serde_json::to_string(&naive).unwrap());
    write_plan(p, "sealed.gz", &resealed(doc));
}

/// An edit of a saved plan's JSON.
type Edit = dyn Fn(&mut serde_json::Value);

fn change<'a>(doc: &'a mut serde_json::Value, account: &str) -> &'a mut serde_json::Value {
    doc["changes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["account"] == account)
        .unwrap()
}

fn push_change(doc: &mut serde_json::Value, c: serde_json::Value) {
    let changes = doc["changes"].as_array_mut().unwrap();
    changes.push(c);
    changes.sort_by(|a, b| a["account"].as_str().cmp(&b["account"].as_str()));
}

#[test]
fn each_tampering_is_refused_with_nothing_sent() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    for (backend, db) in backends() {
        let p = project(&emu, &db);
        p.write_users("a.yaml", &users_yaml(3, ""));
        p.run(&["apply", "--auto-approve"]).expect(0);
        p.write_users("a.yaml", &users_yaml(3, "b"));
        p.run(&["plan", "--out", "plan.gz"]).expect(0);
        let before = (emu.attrs(), requests(&emu));
        let evil = |doc: &mut serde_json::Value| {
            let c = change(doc, "u1");
            c["set"]["city"] = "EVIL".into();
            c["after"]["city"] = "EVIL".into();
        };
        let added = |doc: &mut serde_json::Value| {
            push_change(
                doc,
                serde_json::json!({"account": "u9", "action": "add", "set": {"city": "x"},
                    "remove": [], "before": {}, "after": {"city": "x"}}),
            )
        };
        let stranger = |doc: &mut serde_json::Value| {
            push_change(
                doc,
                serde_json::json!({"account": "stranger", "action": "remove", "set": {},
                    "remove": ["secret"], "tags": {"add": [], "remove": ["theirs"]},
                    "before": {"secret": "v"}, "after": {}}),
            )
        };
        let long = |doc: &mut serde_json::Value| {
            let c = change(doc, "u2");
            c["set"]["city"] = "x".repeat(60).into();
            c["after"]["city"] = "x".repeat(60).into();
        };
        let cases: [(&str, &Edit, &str); 4] = [
            (
                "EVIL",
                &evil,
                r#"u1: after.city is "EVIL", the files say "c1b""#,
            ),
            ("added", &added, "u9: not in the files or the state"),
            (
                "stranger",
                &stranger,
                "stranger: not in the files or the state",
            ),
            ("long", &long, r#"u2: after.city is "xxxxxxxx"#),
        ];
        for (what, edit, why) in cases {
            tamper(&p, edit);
            let err = p.run(&["apply", "naive.gz"]).expect(1).stderr();
            assert!(
                err.contains("the saved plan was modified or damaged"),
                "{backend} {what}: {err}"
            );
            let err = p.run(&["apply", "sealed.gz"]).expect(1).stderr();
            assert!(err.contains(why), "{backend} {what}: {err}");
            assert!(err.contains("Nothing was sent"), "{backend} {what}: {err}");
            assert_eq!((emu.attrs(), requests(&emu)), before, "{backend} {what}");
        }
        // The plan as reviewed still applies.
        p.run(&["apply", "plan.gz"]).expect(0);
        assert_eq!(emu.attrs()["u1"]["city"], "c1b", "{backend}");
    }
}

#[test]
fn a_serial_reused_by_a_forced_restore_is_still_stale() {
    for (backend, db) in backends() {
        let emu = Emulator::start(Duration::ZERO, 0.0);
        let p = project(&emu, &db);
        p.write_users("a.yaml", &users_yaml(2, ""));
        p.run(&["apply", "--auto-approve"]).expect(0);
        p.run(&["state", "export", "--out", "b1.gz"]).expect(0);
        p.write_users("a.yaml", &users_yaml(2, "b"));
        p.run(&["apply", "--auto-approve"]).expect(0);
        p.write_users("a.yaml", &users_yaml(2, "b3"));
        p.run(&["plan", "--out", "p2.gz"]).expect(0);
        let planned = serde_json::from_str::<serde_json::Value>(&read_plan(&p, "p2.gz")).unwrap();
        assert_eq!(planned["state"]["serial"], 2, "{backend}");
        let planned_commit = planned["state"]["commit_id"].as_str().unwrap().to_owned();
        p.run(&["state", "restore", "b1.gz", "--force"]).expect(0);
        p.write_users("a.yaml", &users_yaml(2, "other"));
        p.run(&["apply", "--auto-approve"]).expect(0);
        let json = p.run(&["plan", "--format", "json"]).expect(0).stdout();
        let now: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(now["state"]["serial"], 2, "{backend}: the serial is reused");
        let now_commit = now["state"]["commit_id"].as_str().unwrap().to_owned();
        assert_ne!(now_commit, planned_commit, "{backend}");
        // Even with the files as they were reviewed, the plan is for a state that is gone.
        p.write_users("a.yaml", &users_yaml(2, "b3"));
        let before = (emu.attrs(), requests(&emu));
        for verb in ["apply", "show"] {
            let err = p.run(&[verb, "p2.gz"]).expect(1).stderr();
            assert!(err.contains("stale"), "{backend} {verb}: {err}");
            assert!(
                err.contains(&planned_commit) && err.contains(&now_commit),
                "{backend} {verb}: {err}"
            );
            assert!(err.contains("serial 2"), "{backend} {verb}: {err}");
        }
        assert_eq!((emu.attrs(), requests(&emu)), before, "{backend}");
        assert_eq!(emu.attrs()["u1"]["city"], "c1other", "{backend}");
    }
}

#[test]
fn a_target_plan_applies_and_an_unrelated_apply_makes_a_plan_stale() {
    for (backend, db) in backends() {
        let emu = Emulator::start(Duration::ZERO, 0.0);
        let p = project(&emu, &db);
        p.write_users("a.yaml", &users_yaml(3, ""));
        p.run(&["apply", "--auto-approve"]).expect(0);
        p.write_users("a.yaml", &users_yaml(3, "b"));
        p.run(&["plan", "--target", "u1", "--out", "t.gz"])
            .expect(0);
        p.run(&["plan", "--out", "all.gz"]).expect(0);
        let out = p.run(&["apply", "t.gz"]).expect(0);
        let attrs = emu.attrs();
        assert_eq!(attrs["u1"]["city"], "c1b", "{backend}: {}", out.stderr());
        assert_eq!(attrs["u2"]["city"], "c2", "{backend}");
        // The full plan was made before u1 changed: stale, though u2 and u3 did not change.
        let before = requests(&emu);
        let err = p.run(&["apply", "all.gz"]).expect(1).stderr();
        assert!(err.contains("stale"), "{backend}: {err}");
        assert_eq!(requests(&emu), before, "{backend}");
        // Planned again, it applies.
        p.run(&["plan", "--out", "all.gz"]).expect(0);
        p.run(&["apply", "all.gz"]).expect(0);
        assert_eq!(emu.attrs()["u3"]["city"], "c3b", "{backend}");
    }
}

#[test]
fn a_plan_saved_before_seals_is_refused_with_the_hint_to_plan_again() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu, &None);
    p.write_users("a.yaml", &users_yaml(2, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    p.write_users("a.yaml", &users_yaml(2, "b"));
    p.run(&["plan", "--out", "plan.gz"]).expect(0);
    let mut doc: serde_json::Value = serde_json::from_str(&read_plan(&p, "plan.gz")).unwrap();
    doc.as_object_mut().unwrap().remove("digest");
    doc["state"].as_object_mut().unwrap().remove("commit_id");
    write_plan(&p, "old.gz", &serde_json::to_string(&doc).unwrap());
    let before = requests(&emu);
    for verb in ["apply", "show"] {
        let err = p.run(&[verb, "old.gz"]).expect(1).stderr();
        assert!(err.contains("older timattr"), "{verb}: {err}");
        assert!(
            err.contains("timattr plan --out FILE` again"),
            "{verb}: {err}"
        );
    }
    assert_eq!(requests(&emu), before);
    // An export made before commit ids still restores, and the restore is a new commit.
    p.run(&["state", "export", "--out", "b.gz"]).expect(0);
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p.path().join("b.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let mut header: serde_json::Value = serde_json::from_str(header).unwrap();
    assert!(header["commit_id"].is_string(), "{header}");
    header.as_object_mut().unwrap().remove("commit_id");
    write_plan(&p, "old-backup.gz", &format!("{header}\n{rest}"));
    p.run(&["plan", "--out", "plan.gz"]).expect(0);
    p.run(&["state", "restore", "old-backup.gz"]).expect(0);
    let err = p.run(&["apply", "plan.gz"]).expect(1).stderr();
    assert!(err.contains("stale"), "{err}");
}

#[test]
fn show_says_which_check_fails() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    for (backend, db) in backends() {
        let p = project(&emu, &db);
        p.write_users("a.yaml", &users_yaml(2, ""));
        p.run(&["apply", "--auto-approve"]).expect(0);
        p.write_users("a.yaml", &users_yaml(2, "b"));
        p.run(&["plan", "--out", "plan.gz"]).expect(0);
        let ok = p.run(&["show", "plan.gz"]).expect(0);
        for check in ["✓ digest", "✓ app", "✓ fresh", "✓ content"] {
            assert!(ok.stderr().contains(check), "{backend}: {}", ok.stderr());
        }
        assert!(ok.stdout().contains("c1b"), "{backend}: {}", ok.stdout());
        tamper(&p, |doc| {
            let c = change(doc, "u1");
            c["set"]["city"] = "EVIL".into();
            c["after"]["city"] = "EVIL".into();
        });
        let naive = p.run(&["show", "naive.gz"]).expect(1).stderr();
        assert!(naive.contains("✗ digest"), "{backend}: {naive}");
        let sealed = p.run(&["show", "sealed.gz"]).expect(1).stderr();
        assert!(sealed.contains("✓ digest"), "{backend}: {sealed}");
        assert!(sealed.contains("✓ fresh"), "{backend}: {sealed}");
        assert!(
            sealed.contains(r#"✗ content: "#) && sealed.contains(r#"u1: after.city is "EVIL""#),
            "{backend}: {sealed}"
        );
        assert!(sealed.contains("would refuse it"), "{backend}: {sealed}");
        // The files changed since: the content check fails, naming the account.
        p.write_users("a.yaml", &users_yaml(2, "c"));
        let moved = p.run(&["show", "plan.gz", "--format", "json"]).expect(1);
        serde_json::from_str::<serde_json::Value>(&moved.stdout()).unwrap();
        assert!(
            moved
                .stderr()
                .contains(r#"u1: after.city is "c1b", the files say "c1c""#),
            "{backend}: {}",
            moved.stderr()
        );
        // An apply since: not fresh.
        p.run(&["apply", "--auto-approve"]).expect(0);
        let stale = p.run(&["show", "plan.gz"]).expect(1).stderr();
        assert!(stale.contains("✗ fresh"), "{backend}: {stale}");
    }
}

#[test]
fn emptying_a_small_project_is_a_mass_removal() {
    for (backend, db) in backends() {
        let emu = Emulator::start(Duration::ZERO, 0.0);
        let p = project(&emu, &db);
        p.write_users("a.yaml", &users_yaml(9, ""));
        p.run(&["apply", "--auto-approve"]).expect(0);
        let full = emu.attrs();
        assert_eq!(full.len(), 9);
        p.write_users("a.yaml", "users: {}\n");
        let json = p.run(&["plan", "--format", "json"]).expect(0).stdout();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["safety"]["apply_refuses"], true, "{backend}: {json}");
        assert_eq!(v["safety"]["removes_from_every_account"], true, "{backend}");
        let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
        assert!(md.contains("Apply would refuse"), "{backend}: {md}");
        assert!(
            md.contains("every one of the 9 managed users"),
            "{backend}: {md}"
        );
        p.run(&["plan", "--out", "empty.gz"]).expect(0);
        let before = requests(&emu);
        let err = p.run(&["apply", "--auto-approve"]).expect(1).stderr();
        assert!(
            err.contains("every one of the 9 managed users"),
            "{backend}: {err}"
        );
        let err = p.run(&["apply", "empty.gz"]).expect(1).stderr();
        assert!(err.contains("--allow-mass-removal"), "{backend}: {err}");
        assert_eq!((emu.attrs(), requests(&emu)), (full, before), "{backend}");
        // Removing from some of them is not.
        p.write_users("a.yaml", &users_yaml(8, ""));
        p.run(&["apply", "--auto-approve"]).expect(0);
        p.write_users("a.yaml", "users: {}\n");
        p.run(&["apply", "--auto-approve", "--allow-mass-removal"])
            .expect(0);
        assert_eq!(emu.attrs(), BTreeMap::new(), "{backend}");
    }
}
