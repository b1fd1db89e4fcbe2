//! CI signals and operator controls (issue 12), run as a pipeline would: exit codes, JSON
//! fields, the top of the markdown plan, confirmations, `--target`, `show`, `state rm`, and
//! escaping of hostile account ids and values in text and markdown.

use crate::support;

use std::time::Duration;

use support::{users, Emulator, Project, Run};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn applied(n: usize) -> (Emulator, Project) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(n, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    (emu, p)
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()))
}

fn requests(emu: &Emulator) -> u64 {
    emu.running().stats().requests.values().sum()
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    for args in [
        &["plan", "--detailed-exitcode", "--bogus"][..],
        &["drift", "--format", "md"],
        &["apply", "--concurrency", "0"],
        &["state", "rm"],
        &["frobnicate"],
        &[],
    ] {
        let run = p.run(args);
        assert_eq!(run.code(), 1, "{args:?}: {}", run.stderr());
        assert!(!run.stderr().is_empty(), "{args:?} says why");
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let run = p.run(args).expect(0);
        assert!(!run.stdout().is_empty(), "{args:?}");
    }
}

#[test]
fn json_plan_carries_safety_and_state_and_the_plans_say_apply_would_refuse() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(30, ""));
    // No state yet: the plan warns, the JSON says lineage null, serial 0.
    let run = p.run(&["plan", "--format", "json"]).expect(0);
    assert!(run.stderr().contains("no state"), "{}", run.stderr());
    assert!(run.stderr().contains("import"), "{}", run.stderr());
    let v = json(&run);
    assert_eq!(v["state"]["lineage"], serde_json::Value::Null);
    assert_eq!(v["state"]["serial"], 0);
    assert_eq!(v["safety"]["apply_refuses"], false);
    p.run(&["apply", "--auto-approve"]).expect(0);
    // 5 of 30 users lose their values: 16.7% > 10%.
    p.write_users_map("a.yaml", &users(25, ""));
    let run = p.run(&["plan", "--format", "json"]).expect(0);
    let v = json(&run);
    assert_eq!(v["format_version"], 1);
    assert_eq!(
        v["safety"],
        serde_json::json!({"removal_percent": 16.7, "max_removal_percent": 10, "apply_refuses": true})
    );
    assert!(v["state"]["lineage"].is_string(), "{v}");
    assert_eq!(v["state"]["serial"], 1);
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    let top: String = md.lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(top.contains("Apply would refuse"), "{md}");
    assert!(top.contains("--allow-mass-removal"), "{md}");
    assert!(top.contains("16.7%"), "{md}");
    let text = p.run(&["plan"]).expect(0).stdout();
    assert!(text.starts_with("Apply would refuse this plan:"), "{text}");
    p.run(&["apply", "--auto-approve"]).expect(1);
}

#[test]
fn drift_without_state_fails_also_in_json() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(3, ""));
    for args in [&["drift"][..], &["drift", "--format", "json"]] {
        let run = p.run(args).expect(1);
        assert!(run.stderr().contains("no state"), "{}", run.stderr());
        assert!(run.stdout().is_empty(), "{}", run.stdout());
    }
    assert!(!p.state_dir().exists(), "drift created a state");
}

#[test]
fn drift_fix_and_import_ask_and_a_pipe_is_refused_before_anything_changes() {
    let (emu, p) = applied(5);
    emu.running()
        .set_user_attr("user00001", "city", "elsewhere");
    let before = requests(&emu);
    let run = p.run(&["drift", "--fix"]).expect(1);
    assert!(run.stderr().contains("--auto-approve"), "{}", run.stderr());
    assert_eq!(requests(&emu), before, "nothing read or sent");
    assert_eq!(emu.attrs()["user00001"]["city"], "elsewhere");
    // Import over the existing state: refused the same way, and the state is unchanged.
    let serial = json(&p.run(&["state", "history", "--format", "json"]).expect(0));
    let run = p.run(&["import"]).expect(1);
    assert!(run.stderr().contains("--auto-approve"), "{}", run.stderr());
    assert_eq!(requests(&emu), before);
    let after = json(&p.run(&["state", "history", "--format", "json"]).expect(0));
    assert_eq!(serial, after);
    // With approval the fix shows the repairs and applies them.
    let run = p.run(&["drift", "--fix", "--auto-approve"]).expect(0);
    assert!(run.stdout().contains("Repairs"), "{}", run.stdout());
    assert!(
        run.stdout().contains("city: \"elsewhere\" → \"city1\""),
        "{}",
        run.stdout()
    );
    assert_eq!(emu.attrs()["user00001"]["city"], "city1");
}

#[test]
fn target_plans_and_applies_only_matching_accounts_and_a_saved_targeted_plan_too() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(30, ""));
    let run = p
        .run(&["plan", "--target", "user0000*", "--format", "json"])
        .expect(0);
    let v = json(&run);
    assert_eq!(v["summary"]["add"], 10, "{v}");
    assert_eq!(v["targets"], serde_json::json!(["user0000*"]));
    let text = p.run(&["plan", "--target", "user0000*"]).expect(0).stdout();
    assert!(text.starts_with("Partial plan:"), "{text}");
    assert!(
        text.contains("Partial plan: only accounts matching"),
        "{text}"
    );
    let md = p
        .run(&["plan", "--target", "user0000*", "--format", "markdown"])
        .expect(0)
        .stdout();
    assert!(md.contains("Partial plan"), "{md}");
    p.run(&[
        "plan",
        "--target",
        "user0001*",
        "--target",
        "user00029",
        "--out",
        "t.gz",
    ])
    .expect(0);
    p.run(&["apply", "t.gz"]).expect(0);
    let listed = json(&p.run(&["state", "list", "--format", "json"]).expect(0));
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut want: Vec<String> = (10..20).map(|i| format!("user{i:05}")).collect();
    want.push("user00029".into());
    assert_eq!(listed, want);
    assert_eq!(emu.attrs().len(), 11);
    p.run(&["apply", "--auto-approve", "--target", "user0000[0-4]"])
        .expect(0);
    assert_eq!(emu.attrs().len(), 16);
    p.run(&["plan", "--target", "[oops"]).expect(1);
}

#[test]
fn show_prints_a_saved_plan_as_plan_did() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(4, ""));
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
    let run = p.run(&["show", "missing.gz"]).expect(1);
    assert!(run.stderr().contains("missing.gz"), "{}", run.stderr());
}

#[test]
fn state_rm_forgets_accounts_without_sending_anything() {
    let (emu, p) = applied(5);
    let before = requests(&emu);
    let live = emu.attrs();
    let run = p.run(&["state", "rm", "user00001", "user00003"]).expect(0);
    assert!(
        run.stderr().contains("Forgot 2 accounts"),
        "{}",
        run.stderr()
    );
    assert_eq!(requests(&emu), before, "nothing sent");
    assert_eq!(emu.attrs(), live, "live values untouched");
    let listed = json(&p.run(&["state", "list", "--format", "json"]).expect(0));
    assert_eq!(
        listed,
        serde_json::json!(["user00000", "user00002", "user00004"])
    );
    // Unmanaged now: the files still want them, so the plan adds them.
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0));
    assert_eq!(v["summary"]["add"], 2, "{v}");
    // Unknown accounts: refused, nothing changed.
    let run = p.run(&["state", "rm", "user00000", "nobody"]).expect(1);
    assert!(run.stderr().contains("\"nobody\""), "{}", run.stderr());
    let listed = json(&p.run(&["state", "list", "--format", "json"]).expect(0));
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let history = json(&p.run(&["state", "history", "--format", "json"]).expect(0));
    let ops: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["apply", "state-rm"]);
    let show = p
        .run(&["state", "show", "user00000", "--format", "text"])
        .expect(0)
        .stdout();
    assert!(show.starts_with("user00000\n    city: \"city0\""), "{show}");
}

#[test]
fn concurrency_on_the_command_line() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(250, ""));
    p.run(&["apply", "--auto-approve", "--concurrency", "1"])
        .expect(0);
    assert_eq!(emu.attrs().len(), 250);
    p.run(&["drift", "--concurrency", "2"]).expect(0);
    p.run(&["import", "--auto-approve", "--concurrency", "3"])
        .expect(0);
    p.run(&["drift", "--concurrency", "x"]).expect(1);
}

#[test]
fn a_misspelt_secret_variable_gets_a_suggestion() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    let project = std::fs::read_to_string(p.path().join("timattr.yaml")).unwrap();
    let project = project.replace(support::SECRET_ENV, "TIMATTR_TEST_SECRT");
    std::fs::write(p.path().join("timattr.yaml"), project).unwrap();
    p.write_users_map("a.yaml", &users(2, ""));
    let run = p.run(&["apply", "--auto-approve"]).expect(1);
    assert!(
        run.stderr()
            .contains(&format!("did you mean {}?", support::SECRET_ENV)),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains(support::KEY));
}

#[test]
fn the_request_estimate_is_what_the_first_apply_sends_and_counts_agree() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(1, ""));
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0));
    let text = p.run(&["plan"]).expect(0).stdout();
    assert!(
        text.contains("(1 user, 3 attribute values); 3 requests,"),
        "{text}"
    );
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(v["summary"]["requests"], requests(&emu), "{v}");
    assert!(
        run.stderr().contains("1 user changed (1 with values set)"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains(" 1 users"), "{}", run.stderr());
}

#[test]
#[cfg(target_os = "linux")] // util-linux `script -qec`
fn state_export_refuses_a_terminal() {
    let (_emu, p) = applied(2);
    // `script` gives the command a terminal for stdout.
    let bin = env!("CARGO_BIN_EXE_timattr");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{bin} state export"), "/dev/null"])
        .current_dir(p.path())
        .output();
    let Ok(out) = out else {
        if std::env::var_os("CI").is_some_and(|v| v == "true") {
            panic!("`script` (util-linux) is needed under CI");
        }
        eprintln!("skipped: no `script` to give the command a terminal");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--out"), "{text}");
    assert!(!text.contains('\u{1f}'), "no gzip on the terminal: {text}");
    // A pipe is fine.
    let run = p.run(&["state", "export"]).expect(0);
    assert!(run.0.stdout.starts_with(&[0x1f, 0x8b]));
}

/// Account ids and values with ESC, BEL, CR, a C1 CSI, U+202E, a mention and markup, in YAML
/// escapes (YAML itself forbids raw C1 characters).
/// Account ids that would move the cursor or reorder text: refused at validation.
const HOSTILE_IDS: &str = r#"users:
  "esc\e[2Jx": {city: "v"}
  "rtl\u202Egnp.exe": {city: "a"}
  "c1\u009B31m": {city: "x"}
"#;

/// Values (and a markup-looking id) that must be printed inertly.
const HOSTILE: &str = r#"users:
  esc: {city: "v\e]0;title\a"}
  rtl: {city: "a\rb\u202E"}
  c1: {city: "x (removed)\u009B31m"}
  "@octocat": {city: "<b>|`x`"}
"#;

/// No byte or character that moves the cursor or reorders text.
fn assert_inert(what: &str, out: &str) {
    for c in out.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what}: raw {:?} in\n{out}", c);
    }
}

#[test]
fn hostile_ids_and_values_are_escaped_in_text_and_markdown() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    // Ids with controls never get past validation; the diagnostics quote them inertly.
    p.write_users("a.yaml", HOSTILE_IDS);
    let refused = p.run(&["validate"]).expect(1);
    assert_inert("validation errors", &refused.stderr());
    assert!(
        refused.stderr().contains("esc\\x1b[2Jx"),
        "{}",
        refused.stderr()
    );
    assert!(
        refused.stderr().contains("\\u{202e}"),
        "{}",
        refused.stderr()
    );
    // Values with controls are data: printed escaped everywhere.
    p.write_users("a.yaml", HOSTILE);
    p.run(&["validate"]).expect(0);
    let text = p.run(&["plan"]).expect(0).stdout();
    assert_inert("text plan", &text);
    assert!(text.contains("\"v\\x1b]0;title\\x07\""), "{text}");
    assert!(text.contains("\"a\\x0db\\u{202e}\""), "{text}");
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert_inert("markdown plan", &md);
    assert!(!md.contains("@octocat") && !md.contains("<b>"), "{md}");
    let json = p.run(&["plan", "--format", "json"]).expect(0).stdout();
    assert_inert("json plan", &json.replace('\n', ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_inert("state list", &p.run(&["state", "list"]).expect(0).stdout());
    let missing = p
        .run(&["state", "show", "no\u{1b}[2J\u{202e}body"])
        .expect(1);
    assert_inert("an error", &missing.stderr());
    assert!(
        missing.stderr().contains("no\\x1b[2J\\u{202e}body"),
        "{}",
        missing.stderr()
    );
    // Drift: a deleted value and a value that reads "(removed)" cannot be confused.
    emu.running().remove_user_attr("rtl", "city");
    emu.running().set_user_attr("esc", "city", "y (removed)");
    let drift = p.run(&["drift"]).expect(2).stdout();
    assert_inert("drift", &drift);
    assert!(drift.contains("→ \"y (removed)\""), "{drift}");
    assert!(drift.contains("→ (deleted remotely)"), "{drift}");
    let md = p.run(&["drift", "--format", "markdown"]).expect(2).stdout();
    assert_inert("drift markdown", &md);
}

/// Ids with controls can still reach the store through a restored export (restore checks
/// sizes, not characters): every view of the state escapes them.
#[test]
fn hostile_ids_from_a_restored_export_are_escaped() {
    use std::io::{Read, Write};
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    p.run(&["state", "export", "--out", "b.gz"]).expect(0);
    let file = p.path().join("b.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let ids = users(2, "");
    let mut hostile = ids.keys().map(|k| k.to_string()).collect::<Vec<_>>();
    hostile[0] = "a\u{1b}[2J".into();
    hostile[1] = "b\u{202e}xe.".into();
    hostile.sort();
    for (plain, bad) in ids.keys().zip(&hostile) {
        let quoted = serde_json::to_string(bad).unwrap();
        text = text.replace(&format!("\"{plain}\""), &quoted);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    p.run(&["state", "restore", "b.gz", "--force"]).expect(0);
    let list = p.run(&["state", "list"]).expect(0).stdout();
    assert_inert("state list", &list);
    assert!(list.contains("a\\x1b[2J"), "{list}");
    for format in ["text", "markdown"] {
        let plan = p.run(&["plan", "--format", format]).expect(0).stdout();
        assert_inert(format, &plan);
        assert!(plan.contains("\\u{202e}"), "{plan}");
    }
    let history = p.run(&["state", "history"]).expect(0).stdout();
    assert_inert("history", &history);
}

#[test]
fn step_summary_sections_are_separated_and_apply_reports_its_result() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(3, ""));
    let summary = p.path().join("summary.md");
    std::fs::write(&summary, "<details>x</details>").unwrap();
    let mut cmd = p.cmd(&["plan"]);
    cmd.env("GITHUB_STEP_SUMMARY", &summary);
    assert!(cmd.status().unwrap().success());
    let mut cmd = p.cmd(&["apply", "--auto-approve"]);
    cmd.env("GITHUB_STEP_SUMMARY", &summary);
    assert!(cmd.status().unwrap().success());
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("<details>x</details>\n\n### timattr plan"),
        "{text}"
    );
    assert!(text.contains("\n\n### timattr apply\n"), "{text}");
    assert!(text.contains("**complete** at serial 1"), "{text}");
}

/// Runs the binary on a terminal (`script`) with `answer` typed in; `None` without `script`
/// (skipped, or failed under CI).
#[cfg(target_os = "linux")] // util-linux `script -qec`
fn on_terminal(p: &Project, args: &str, answer: &str) -> Option<(i32, String)> {
    use std::io::Write;
    let bin = env!("CARGO_BIN_EXE_timattr");
    let child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{bin} {args}; echo \"exit=$?\""),
            "/dev/null",
        ])
        .current_dir(p.path())
        .env(support::SECRET_ENV, support::KEY)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        if std::env::var_os("CI").is_some_and(|v| v == "true") {
            panic!("`script` (util-linux) is needed under CI");
        }
        eprintln!("skipped: no `script` to give the command a terminal");
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let code = text
        .rsplit_once("exit=")
        .and_then(|(_, c)| c.trim().parse().ok())
        .unwrap_or(-1);
    Some((code, text))
}

#[test]
#[cfg(target_os = "linux")] // util-linux `script -qec`
fn import_over_a_state_shows_what_it_would_adopt_and_asks() {
    let (emu, p) = applied(3);
    emu.running().set_user_attr("user00002", "city", "moved");
    // Refused at the question: nothing recorded.
    let Some((code, text)) = on_terminal(&p, "import", "no\n") else {
        return;
    };
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("city: \"city2\" → \"moved\""), "{text}");
    assert!(text.contains("Do you want to record"), "{text}");
    assert!(text.contains("nothing was recorded"), "{text}");
    let show = json(&p.run(&["state", "show", "user00002"]).expect(0));
    assert_eq!(show["attrs"]["city"], "city2");
    // Accepted: recorded.
    let (code, text) = on_terminal(&p, "import", "yes\n").unwrap();
    assert_eq!(code, 0, "{text}");
    let show = json(&p.run(&["state", "show", "user00002"]).expect(0));
    assert_eq!(show["attrs"]["city"], "moved");
}

#[test]
#[cfg(target_os = "linux")] // util-linux `script -qec`
fn drift_fix_on_a_terminal_asks_and_no_sends_nothing() {
    let (emu, p) = applied(3);
    emu.running().set_user_attr("user00002", "city", "moved");
    let before = emu.running().stats().requests.get("im_set_attr").copied();
    let Some((code, text)) = on_terminal(&p, "drift --fix", "no\n") else {
        return;
    };
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("Repairs"), "{text}");
    assert!(text.contains("fix cancelled"), "{text}");
    assert_eq!(
        emu.running().stats().requests.get("im_set_attr").copied(),
        before
    );
    let (code, text) = on_terminal(&p, "drift --fix", "yes\n").unwrap();
    assert_eq!(code, 0, "{text}");
    assert_eq!(emu.attrs()["user00002"]["city"], "city2");
}
