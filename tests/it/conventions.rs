//! CLI conventions and messages (issue 26), run as a user meets them: a `--target` typo, the
//! first plan without a state, a dry run of a refused plan, counts and plurals, the kinds of
//! files `show` and `state restore` are given, colours, CI annotations.

use crate::support;

use std::time::Duration;

use support::{users, Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn applied(n: usize) -> (Emulator, Project) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(n, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    (emu, p)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_target_matching_no_account_is_an_error_not_no_changes() {
    let (emu, p) = applied(3);
    // Matches the files (and the state): fine, even when nothing changed.
    p.run(&["plan", "--target", "user0000[12]"]).expect(0);
    for args in [
        &["plan", "--target", "nomatch-*"][..],
        &["plan", "--target", "user00001", "--target", "usr*"],
        &["apply", "--auto-approve", "--target", "nomatch-*"],
        &["apply", "--dry-run", "--target", "nomatch-*"],
    ] {
        let run = p.run(args).expect(1);
        assert!(
            run.stderr().contains("no account of the users files or the state"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    let run = p.run(&["plan", "--target", "user00001", "--target", "usr*", "--target", "x?"]).expect(1);
    assert!(
        run.stderr().contains(r#"patterns "usr*", "x?" match no account"#),
        "{}",
        run.stderr()
    );
    // An account only the state knows (it leaves the files) still matches.
    p.write_users_map("a.yaml", &users(2, ""));
    let run = p.run(&["plan", "--target", "user00002", "--format", "json"]).expect(0);
    assert_eq!(json(&run.stdout())["summary"]["remove"], 1);
    drop(emu);
}

#[test]
fn with_no_state_the_markdown_and_json_plans_say_so_at_the_top() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(
        md.starts_with("### timattr plan\n\n> [!NOTE]\n> **No state yet:**"),
        "{md}"
    );
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["state"]["exists"], false, "{v}");
    assert_eq!(v["state"]["lineage"], serde_json::Value::Null, "{v}");
    p.run(&["apply", "--auto-approve"]).expect(0);
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(!md.contains("No state yet"), "{md}");
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["state"]["exists"], true, "{v}");
    // A saved plan made without a state says it too when shown.
    let q = Project::new("embedded", NAMES);
    q.write_users_map("a.yaml", &users(2, ""));
    q.run(&["plan", "--out", "p.gz"]).expect(0);
    let md = q.run(&["show", "p.gz", "--format", "markdown"]).expect(0).stdout();
    assert!(md.contains("**No state yet:**"), "{md}");
}

#[test]
fn a_dry_run_of_a_plan_apply_would_refuse_exits_1_and_says_so() {
    let (emu, p) = applied(20);
    p.write_users_map("a.yaml", &users(10, ""));
    let run = p.run(&["apply", "--dry-run"]).expect(1);
    assert!(
        run.stderr().contains("error: apply would refuse this plan"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("Dry run: nothing was sent"), "{}", run.stderr());
    p.run(&["apply", "--dry-run", "--allow-mass-removal"]).expect(0);
    assert_eq!(emu.attrs().len(), 20, "a dry run sends nothing");
}

#[test]
fn the_piped_progress_line_names_the_phase_and_counts_its_users() {
    // Three slow set batches, one at a time: the apply outlasts the 5 s between log lines.
    let emu = Emulator::start(Duration::from_millis(2_500), 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(NAMES, "apply:\n  concurrency: 1\n");
    p.write_users_map("a.yaml", &users(250, ""));
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    let err = run.stderr();
    let line = err
        .lines()
        .find(|l| l.starts_with("set attributes: "))
        .unwrap_or_else(|| panic!("no progress line: {err}"));
    let counts = line["set attributes: ".len()..].split(' ').next().unwrap();
    let (done, total) = counts.split_once('/').unwrap();
    assert_eq!(total, "250", "{line}");
    assert!(done.parse::<u64>().unwrap() <= 250, "{line}");
    assert!(line.contains("250 users  "), "{line}");
    assert!(!err.contains("applied "), "{err}");
}
