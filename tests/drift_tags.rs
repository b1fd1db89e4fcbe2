//! User tags (DESIGN.md §9) in `drift`, `drift --fix` and `import`, against the emulator on
//! 127.0.0.1: a managed tag missing live is drift, another system's tags never are, and import
//! adopts the live tags the files also have.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{users, Emulator, Project, Run};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Requests the emulator has answered for `command`.
fn requests(emu: &Emulator, command: &str) -> u64 {
    let stats = emu.running().stats();
    stats.requests.get(command).copied().unwrap_or(0)
}

/// The live tags of `account`, sorted.
fn live_tags(emu: &Emulator, account: &str) -> Vec<String> {
    let data = emu.running().snapshot();
    let mut tags = data
        .users
        .get(account)
        .map(|u| u.tags.clone())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// The binary in a terminal (`script` gives it a pseudo-terminal), `answer` typed at its
/// question; stdout and stderr both end up in the run's stdout.
fn run_in_terminal(p: &Project, args: &str, answer: &str) -> Run {
    let cmd = p.cmd(&[]);
    let mut child = Command::new("script")
        .args(["-qec", &format!("\"$BIN\" {args}"), "/dev/null"])
        .env("BIN", env!("CARGO_BIN_EXE_timattr"))
        .current_dir(p.path())
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the binary in a terminal");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    // Kept open until the run ends: an early end of input would answer the question.
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    Run(out)
}

#[test]
fn a_project_without_tags_never_reads_or_shows_tags() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(120, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    // Another system tags a managed user: not ours, never read.
    emu.running().add_user_tag("user00001", "theirs");
    emu.running().set_user_attr("user00002", "city", "moved");
    let out = p.run(&["drift", "--format", "json"]).expect(2).stdout();
    let v = json(&out);
    assert!(v["summary"].get("drifted_tags").is_none(), "{v}");
    assert!(v["drift"][0].get("tags_missing").is_none(), "{v}");
    let text = p.run(&["drift"]).expect(2).stdout();
    assert!(!text.contains("tag"), "{text}");
    p.run(&["drift", "--fix", "--auto-approve"]).expect(0);
    let text = p.run(&["drift"]).expect(0).stdout();
    assert!(
        text.contains("The live attributes of 120 managed users match"),
        "{text}"
    );
    p.run(&["import", "--auto-approve"]).expect(0);
    for command in ["im_get_tag", "im_add_tag", "im_remove_tag"] {
        assert_eq!(requests(&emu, command), 0, "{command}");
    }
    assert_eq!(live_tags(&emu, "user00001"), ["theirs"]);
}

#[test]
fn import_over_a_state_in_a_terminal_previews_then_records_on_yes() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users("a.yaml", "users:\n  u1: {city: x}\n  u2: {city: y}\n");
    p.run(&["apply", "--auto-approve"]).expect(0);
    emu.running().set_user_attr("u1", "city", "live");
    let run = run_in_terminal(&p, "import", "no\n").expect(1);
    assert!(
        run.stdout().contains("\"x\" → \"live\""),
        "{}",
        run.stdout()
    );
    let run = run_in_terminal(&p, "import", "yes\n").expect(0);
    assert!(run.stdout().contains("Import complete"), "{}", run.stdout());
    let show = p.run(&["state", "show", "u1"]).expect(0).stdout();
    assert!(show.contains("live"), "{show}");
}
