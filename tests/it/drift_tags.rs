//! User tags (DESIGN.md §9) in `drift`, `drift --fix` and `import`, against the emulator on
//! 127.0.0.1: a managed tag missing live is drift, another system's tags never are, and import
//! adopts the live tags the files also have.

use crate::support;

use std::time::Duration;

use support::{users, Emulator, Project};

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
#[cfg(target_os = "linux")] // util-linux `script -qec`
fn run_in_terminal(p: &Project, args: &str, answer: &str) -> support::Run {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
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
    support::Run(out)
}

#[test]
fn a_project_without_tags_never_reads_or_shows_tags() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(120, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    // Another system tags a managed user: not ours, never read.
    emu.running().add_user_tags("user00001", &["theirs"]);
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
#[cfg(target_os = "linux")] // util-linux `script -qec`
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

/// u1 has attributes and tags, u2 only tags, u3 no tags.
const TAGGED: &str =
    "users:\n  u1: {city: x, tags: [vip, beta]}\n  u2: {tags: [news]}\n  u3: {city: y}\n";

fn applied_with_tags() -> (Emulator, Project) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users("a.yaml", TAGGED);
    p.run(&["apply", "--auto-approve"]).expect(0);
    (emu, p)
}

#[test]
fn a_managed_tag_removed_remotely_is_drift_and_fix_adds_it_back() {
    let (emu, p) = applied_with_tags();
    let text = p.run(&["drift"]).expect(0).stdout();
    assert!(
        text.contains("The live attributes and tags of 3 managed users match"),
        "{text}"
    );
    assert_eq!(requests(&emu, "im_get_tag"), 1, "u1 and u2 in one read");
    let r = emu.running();
    r.remove_user_tags("u1", &["beta"]);
    r.remove_user_tags("u2", &["news"]);
    // Other systems' tags, on managed and unmanaged users, are never drift.
    r.add_user_tags("u1", &["theirs"]);
    r.add_user_tags("u3", &["theirs"]);
    r.add_user_tags("stranger", &["theirs"]);
    let out = p.run(&["drift", "--format", "json"]).expect(2).stdout();
    let v = json(&out);
    assert_eq!(
        v["summary"],
        serde_json::json!({"checked":3,"drifted_users":2,"drifted_values":0,"drifted_tags":2,
            "pending_add":0,"pending_change":0,"pending_remove":0})
    );
    assert_eq!(
        v["drift"],
        serde_json::json!([
            {"account":"u1","values":{},"tags_missing":["beta"]},
            {"account":"u2","values":{},"tags_missing":["news"]}
        ])
    );
    assert!(
        !out.contains("theirs") && !out.contains("stranger"),
        "{out}"
    );
    let text = p.run(&["drift"]).expect(2).stdout();
    assert!(
        text.contains("~ u1\n    tags (missing live): \"beta\"\n"),
        "{text}"
    );
    assert!(text.contains("2 managed tags are missing live"), "{text}");
    let md = p.run(&["drift", "--format", "markdown"]).expect(2).stdout();
    assert!(md.contains("<i>tag</i> <code>news</code>"), "{md}");

    // --fix adds the managed tags back (and only those), exits 0, and drift is gone.
    let adds = requests(&emu, "im_add_tag");
    p.run(&["drift", "--fix", "--auto-approve"]).expect(0);
    assert_eq!(requests(&emu, "im_add_tag"), adds + 1);
    assert_eq!(requests(&emu, "im_remove_tag"), 0);
    assert_eq!(live_tags(&emu, "u1"), ["beta", "theirs", "vip"]);
    assert_eq!(live_tags(&emu, "u2"), ["news"]);
    assert_eq!(live_tags(&emu, "u3"), ["theirs"]);
    p.run(&["drift"]).expect(0);
    // The tags added back are recorded as applied again: nothing pending.
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn drift_with_tags_tells_drift_from_pending_tag_changes() {
    let (emu, p) = applied_with_tags();
    emu.running().remove_user_tags("u1", &["vip"]);
    // Pending, not drift: the files now want u2 without `news` and with `later`.
    p.write_users(
        "a.yaml",
        "users:\n  u1: {city: x, tags: [vip, beta]}\n  u2: {tags: [later]}\n  u3: {city: y}\n",
    );
    let v = json(&p.run(&["drift", "--format", "json"]).expect(2).stdout());
    assert_eq!(v["summary"]["drifted_users"], 1, "{v}");
    assert_eq!(v["drift"][0]["tags_missing"], serde_json::json!(["vip"]));
    assert_eq!(v["summary"]["pending_change"], 1, "{v}");
    assert_eq!(v["pending"][0]["account"], "u2");
}

#[test]
fn import_adopts_the_live_tags_the_files_also_have() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users(
        "a.yaml",
        "users:\n  u1: {city: x, tags: [vip, beta]}\n  u2: {city: y, tags: [news]}\n  u3: {city: z}\n",
    );
    let r = emu.running();
    for (account, city) in [("u1", "x"), ("u2", "y"), ("u3", "z")] {
        r.set_user_attr(account, "city", city);
    }
    r.add_user_tags("u1", &["vip", "theirs"]);
    r.add_user_tags("u3", &["theirs"]);
    p.run(&["import", "--auto-approve"]).expect(0);
    assert_eq!(
        requests(&emu, "im_get_tag"),
        1,
        "u3 has no tags in the files"
    );
    // Recorded: u1 `vip` only. So the plan changes u1 and u2 (their attributes are recorded
    // as they are live: only tags are left to add), not u3, and removes nothing.
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    let accounts: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["u1", "u2"], "{v}");
    assert_eq!(v["summary"]["change"], 2, "{v}");
    // A managed tag adopted is watched: removed remotely, it drifts.
    r.remove_user_tags("u1", &["vip"]);
    let v = json(&p.run(&["drift", "--format", "json"]).expect(2).stdout());
    assert_eq!(v["drift"][0]["tags_missing"], serde_json::json!(["vip"]));
    r.add_user_tags("u1", &["vip"]);
    p.run(&["apply", "--auto-approve"]).expect(0);
    // One im_add_tag (u1 `beta`, u2 `news`), nothing removed: `theirs` was never managed.
    assert_eq!(requests(&emu, "im_add_tag"), 1);
    assert_eq!(requests(&emu, "im_remove_tag"), 0);
    assert_eq!(live_tags(&emu, "u1"), ["beta", "theirs", "vip"]);
    assert_eq!(live_tags(&emu, "u2"), ["news"]);
    assert_eq!(live_tags(&emu, "u3"), ["theirs"]);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn import_when_every_desired_tag_is_live_leaves_an_empty_plan() {
    let (emu, p) = applied_with_tags();
    emu.running().add_user_tags("u1", &["theirs"]);
    std::fs::remove_dir_all(p.state_dir()).unwrap();
    p.run(&["plan", "--detailed-exitcode"]).expect(2);
    p.run(&["import", "--auto-approve"]).expect(0);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
    p.run(&["drift"]).expect(0);
}

#[test]
#[cfg(target_os = "linux")] // util-linux `script -qec`
fn import_over_a_state_previews_tag_adoption() {
    let (emu, p) = applied_with_tags();
    let r = emu.running();
    r.remove_user_tags("u1", &["beta"]);
    r.add_user_tags("u2", &["later"]);
    // The files now also want `later` for u2, which another system already set.
    p.write_users(
        "a.yaml",
        "users:\n  u1: {city: x, tags: [vip, beta]}\n  u2: {tags: [news, later]}\n  u3: {city: y}\n",
    );
    let run = run_in_terminal(&p, "import", "no\n").expect(1);
    let out = run.stdout();
    assert!(
        out.contains("(0 attribute values, 1 tag adopted, 1 tag not live dropped)"),
        "{out}"
    );
    assert!(out.contains("nothing was recorded"), "{out}");
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["changes"][0]["account"], "u2", "nothing recorded: {v}");
    run_in_terminal(&p, "import", "yes\n").expect(0);
    // u1 `beta` was dropped (not live): the plan adds it; u2 `later` was adopted.
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["changes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["changes"][0]["account"], "u1");
    p.run(&["drift"]).expect(0);
    // Adopted `later` is managed now: removed remotely, it drifts.
    emu.running().remove_user_tags("u2", &["later"]);
    let v = json(&p.run(&["drift", "--format", "json"]).expect(2).stdout());
    assert_eq!(v["drift"][0]["tags_missing"], serde_json::json!(["later"]));
    emu.running().add_user_tags("u2", &["later"]);
    let adds = requests(&emu, "im_add_tag");
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(requests(&emu, "im_add_tag"), adds + 1);
    assert_eq!(live_tags(&emu, "u1"), ["beta", "vip"]);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}
