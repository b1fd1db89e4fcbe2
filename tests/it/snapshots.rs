//! Snapshots of every command's output (insta): validate, the text, markdown and JSON plans,
//! show, drift, the apply summary, `state list|show|history` and doctor in text and JSON, and
//! a few error messages, so wording changes are reviewed rather than accidental. Paths, times
//! and lineage ids are filtered out. Update with `INSTA_UPDATE=always cargo test --test
//! it snapshots::` (or `cargo insta review`) and review the diff of `tests/it/snapshots/`.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{users, Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

/// Filters for what changes between runs.
fn filters(p: &Project) -> Vec<(String, String)> {
    let dir = p.path().display().to_string();
    vec![
        (regex_escape(&dir), "[DIR]".into()),
        (r"\b\d+\.\d\d s\b".into(), "[SECS] s".into()),
        (r"\d+ users/s".into(), "[N] users/s".into()),
        (r"\d+\.\d\d ms per batch".into(), "[MS] ms per batch".into()),
        (r"127\.0\.0\.1:\d+".into(), "127.0.0.1:[PORT]".into()),
        (r"sha256:[0-9a-f]{64}".into(), "sha256:[DIGEST]".into()),
        (r"\b[0-9a-f]{32}\b".into(), "[ID]".into()),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ".into(), "[TIME]".into()),
        (r"Date: [^)]*GMT".into(), "Date: [DATE]".into()),
        // Who ran it, where: the history's provenance and doctor's CI context.
        (r#""(actor|host)":"[^"]*""#.into(), r#""$1":"[$1]""#.into()),
        (r"(?m)  \S+ on \S+$".into(), "  [actor] on [host]".into()),
        (
            r"(?m)^(· CI context\s+).*$".into(),
            "${1}[CI CONTEXT]".into(),
        ),
        (
            r#"("name":"ci","status":"[a-z]+","finding":)"(?:[^"\\]|\\.)*""#.into(),
            r#"$1"[CI CONTEXT]""#.into(),
        ),
    ]
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

fn snapshot(p: &Project, name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    for (from, to) in filters(p) {
        settings.add_filter(&from, to);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// 12 applied users, then: one changed, one new, two gone (2 of 12 lose values: refused).
fn reviewed_change() -> (Emulator, Project) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(12, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let mut next: BTreeMap<_, _> = users(12, "")
        .into_iter()
        .filter(|(a, _)| a != "user00003" && a != "user00007")
        .collect();
    next.get_mut("user00001")
        .unwrap()
        .insert("city".into(), "Shanghai".into());
    next.insert(
        "vip-acme".into(),
        [("tier".to_owned(), "gold".to_owned())].into(),
    );
    p.write_users_map("a.yaml", &next);
    (emu, p)
}

#[test]
fn text_plan() {
    let (_emu, p) = reviewed_change();
    let run = p.run(&["plan"]).expect(0);
    snapshot(&p, "text_plan", &run.stdout());
    let run = p.run(&["plan", "--target", "user0000[0-2]"]).expect(0);
    snapshot(&p, "text_plan_partial", &run.stdout());
}

#[test]
fn markdown_plan() {
    let (_emu, p) = reviewed_change();
    let run = p.run(&["plan", "--format", "markdown"]).expect(0);
    snapshot(&p, "markdown_plan", &run.stdout());
}

#[test]
fn markdown_plan_rollup_of_a_large_change() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(20_000, "-new"));
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    // The top of the comment: what a reviewer reads before the folded detail.
    let top: String = md.split("<details>").next().unwrap().to_owned();
    snapshot(&p, "markdown_plan_large_top", &top);
    let tail: Vec<&str> = md.lines().rev().take(2).collect();
    snapshot(&p, "markdown_plan_large_tail", &tail.join("\n"));
}

#[test]
fn drift_text() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(4, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    emu.running()
        .set_user_attr("user00001", "city", "x (removed)");
    emu.running().remove_user_attr("user00002", "tier");
    let run = p.run(&["drift"]).expect(2);
    snapshot(&p, "drift_text", &run.stdout());
}

#[test]
fn error_messages() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    let mut all = String::new();
    for args in [
        &["drift"][..],
        &["apply"],
        &["plan", "--format", "md"],
        &["state", "list"],
        &["plan", "--target", "[x"],
    ] {
        let run = p.run(args).expect(1);
        all.push_str(&format!("$ timattr {}\n{}\n", args.join(" "), run.stderr()));
    }
    let run = p
        .cmd(&["apply", "--auto-approve"])
        .env_remove(support::SECRET_ENV)
        .output()
        .unwrap();
    all.push_str(&format!(
        "$ timattr apply --auto-approve (no secret)\n{}\n",
        String::from_utf8_lossy(&run.stderr)
    ));
    snapshot(&p, "error_messages", &all);
}

/// `name` then the command's stdout, for snapshots holding several runs.
fn runs(p: &Project, cmds: &[(&[&str], i32)]) -> String {
    let mut all = String::new();
    for (args, code) in cmds {
        let run = p.run(args).expect(*code);
        all.push_str(&format!("$ timattr {}\n{}\n", args.join(" "), run.stdout()));
    }
    all
}

#[test]
fn validate_and_apply_summary() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(4, ""));
    let run = p.run(&["validate"]).expect(0);
    snapshot(&p, "validate", &format!("{}{}", run.stdout(), run.stderr()));
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    let both = format!("--- stdout\n{}--- stderr\n{}", run.stdout(), run.stderr());
    snapshot(&p, "apply_summary", &both);
}

#[test]
fn plan_json_and_show() {
    let (_emu, p) = reviewed_change();
    let run = p.run(&["plan", "--format", "json"]).expect(0);
    snapshot(&p, "plan_json", &run.stdout());
    p.run(&["plan", "--out", "change.plan"]).expect(0);
    let shown = runs(
        &p,
        &[
            (&["show", "change.plan"], 0),
            (&["show", "change.plan", "--format", "json"], 0),
        ],
    );
    snapshot(&p, "show", &shown);
}

#[test]
fn drift_json() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(4, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    emu.running().set_user_attr("user00001", "city", "moved");
    emu.running().remove_user_attr("user00002", "tier");
    let run = p.run(&["drift", "--format", "json"]).expect(2);
    snapshot(&p, "drift_json", &run.stdout());
}

#[test]
fn state_views() {
    let (_emu, p) = reviewed_change();
    let text = runs(
        &p,
        &[
            (&["state", "list"], 0),
            (&["state", "show", "user00001"], 0),
            (&["state", "history"], 0),
        ],
    );
    snapshot(&p, "state_text", &text);
    let json = runs(
        &p,
        &[
            (&["state", "list", "--format", "json"], 0),
            (&["state", "show", "user00001", "--format", "json"], 0),
            (&["state", "history", "--format", "json"], 0),
        ],
    );
    snapshot(&p, "state_json", &json);
}

#[test]
fn doctor_text_and_json() {
    let (_emu, p) = reviewed_change();
    let text = p.run(&["doctor"]).expect(0).stdout();
    snapshot(&p, "doctor_text", &text);
    let json = p.run(&["doctor", "--format", "json"]).expect(0).stdout();
    snapshot(&p, "doctor_json", &json);
}
