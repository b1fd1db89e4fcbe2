//! `timattr drift`, `import` and `state` against the emulator on 127.0.0.1.

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

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn no_drift_exits_zero() {
    let (_emu, p) = applied(120);
    let run = p.run(&["drift"]).expect(0);
    assert!(run.stdout().contains("No drift"), "{}", run.stdout());
}

#[test]
fn drift_reports_changed_and_deleted_values_but_not_unmanaged_ones() {
    let (emu, p) = applied(120);
    let r = emu.running();
    r.set_user_attr("user00003", "city", "elsewhere");
    r.remove_user_attr("user00007", "tier");
    // Not managed: another name, another account.
    r.set_user_attr("user00009", "lang", "fr");
    r.set_user_attr("stranger", "city", "x");
    let out = p.run(&["drift", "--format", "json"]).expect(2).stdout();
    let v = json(&out);
    assert_eq!(v["summary"]["checked"], 120);
    assert_eq!(v["summary"]["drifted_users"], 2);
    assert_eq!(v["summary"]["drifted_values"], 2);
    assert_eq!(v["drift"][0]["account"], "user00003");
    assert_eq!(v["drift"][0]["values"]["city"]["live"], "elsewhere");
    assert_eq!(v["drift"][0]["values"]["city"]["last_applied"], "city3");
    assert_eq!(v["drift"][1]["account"], "user00007");
    assert!(v["drift"][1]["values"]["tier"]["live"].is_null());
    assert!(!out.contains("stranger") && !out.contains("lang"));
    let md = p.run(&["drift", "--format", "markdown"]).expect(2).stdout();
    assert!(md.contains("user00007") && md.contains("deleted"), "{md}");

    // --fix puts the last-applied values back, exits 0, and drift is gone.
    p.run(&["drift", "--fix", "--auto-approve"]).expect(0);
    let live = emu.attrs();
    assert_eq!(live["user00003"]["city"], "city3");
    assert_eq!(live["user00007"]["tier"], "tier1");
    assert_eq!(live["user00009"]["lang"], "fr", "unmanaged names survive");
    assert_eq!(live["stranger"]["city"], "x");
    p.run(&["drift"]).expect(0);
    let history = p.run(&["state", "history"]).expect(0).stdout();
    assert!(history.contains("drift-fix"), "{history}");
}

#[test]
fn drift_tells_remote_drift_from_pending_changes() {
    let (emu, p) = applied(30);
    emu.running().set_user_attr("user00001", "sex", "x");
    // Pending: a desired change not applied yet.
    let mut next = users(30, "");
    next.get_mut("user00002")
        .unwrap()
        .insert("city".into(), "moved".into());
    p.write_users_map("a.yaml", &next);
    let v = json(&p.run(&["drift", "--format", "json"]).expect(2).stdout());
    assert_eq!(v["summary"]["drifted_users"], 1);
    assert_eq!(v["summary"]["pending_change"], 1);
    assert_eq!(v["pending"][0]["account"], "user00002");
    let text = p.run(&["drift"]).expect(2).stdout();
    assert!(text.contains("Pending"), "{text}");
}

#[test]
fn import_adopts_live_values_on_an_empty_store() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    let want = users(150, "");
    p.write_users_map("a.yaml", &want);
    // The app already has names and most values (set by an older script).
    let r = emu.running();
    for (account, attrs) in want.iter().take(140) {
        for (n, v) in attrs {
            r.set_user_attr(account, n, v);
        }
    }
    r.set_user_attr("user00000", "city", "stale"); // a true difference
    p.run(&["import", "--auto-approve"]).expect(0);
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    // 10 users have no live values (added), one differs (changed).
    assert_eq!(v["summary"]["add"], 10, "{v}");
    assert_eq!(v["summary"]["change"], 1, "{v}");
    assert_eq!(v["summary"]["remove"], 0, "{v}");
    assert_eq!(v["changes"][0]["account"], "user00000");
    assert_eq!(v["changes"][0]["before"]["city"], "stale");
    p.run(&["apply", "--auto-approve"]).expect(0);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn import_on_a_store_that_already_has_accounts() {
    let (emu, p) = applied(20);
    // Someone changed a value and removed another behind our back; the files add users.
    emu.running()
        .set_user_attr("user00004", "city", "live-value");
    emu.running().remove_user_attr("user00005", "sex");
    p.write_users_map("a.yaml", &users(25, ""));
    p.run(&["import", "--auto-approve"]).expect(0);
    let show = p.run(&["state", "show", "user00004"]).expect(0).stdout();
    assert!(show.contains("live-value"), "{show}");
    let show = p.run(&["state", "show", "user00005"]).expect(0).stdout();
    assert!(
        !show.contains("\"sex\""),
        "no live value, not recorded: {show}"
    );
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["summary"]["add"], 5);
    assert_eq!(v["summary"]["change"], 2);
}

#[test]
fn export_delete_restore_then_plan_is_clean() {
    let (_emu, p) = applied(60);
    p.run(&["state", "export", "--out", "backup.jsonl.gz"])
        .expect(0);
    let list = p.run(&["state", "list"]).expect(0).stdout();
    assert_eq!(list.lines().count(), 60);
    std::fs::remove_dir_all(p.state_dir()).unwrap();
    p.run(&["plan", "--detailed-exitcode"]).expect(2);
    p.run(&["state", "restore", "backup.jsonl.gz"]).expect(0);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
    assert_eq!(p.run(&["state", "list"]).expect(0).stdout(), list);
}

#[test]
fn restore_refuses_another_lineage_or_an_older_serial() {
    let (_emu, p) = applied(10);
    p.run(&["state", "export", "--out", "old.gz"]).expect(0);
    p.write_users_map("a.yaml", &users(10, "-v2"));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let err = p.run(&["state", "restore", "old.gz"]).expect(1).stderr();
    assert!(err.contains("older"), "{err}");
    // Another store's backup.
    let (_emu2, other) = applied(3);
    other
        .run(&["state", "export", "--out", "other.gz"])
        .expect(0);
    let foreign = other.path().join("other.gz");
    let err = p
        .run(&["state", "restore", foreign.to_str().unwrap()])
        .expect(1)
        .stderr();
    assert!(err.contains("lineage"), "{err}");
    p.run(&["state", "restore", "old.gz", "--force"]).expect(0);
    p.run(&["plan", "--detailed-exitcode"]).expect(2);
}

#[test]
fn state_show_and_history() {
    let (_emu, p) = applied(5);
    let show = json(&p.run(&["state", "show", "user00001"]).expect(0).stdout());
    assert_eq!(show["attrs"]["city"], "city1");
    p.run(&["state", "show", "nobody"]).expect(1);
    let history = p.run(&["state", "history"]).expect(0).stdout();
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(history.contains("apply") && history.contains("complete"));
}

#[test]
fn import_adopts_only_the_names_each_account_has_in_the_files() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users("a.yaml", "users:\n  u1: {city: x}\n");
    let r = emu.running();
    r.set_user_attr("u1", "city", "x");
    // Another system set a declared name this file does not give u1: not ours to remove.
    r.set_user_attr("u1", "tier", "gold");
    p.run(&["import", "--auto-approve"]).expect(0);
    // (The emulator's slots were never configured, so the plan still wants the names.)
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["changes"], serde_json::json!([]), "{v}");
    let show = p.run(&["state", "show", "u1"]).expect(0).stdout();
    assert!(!show.contains("tier"), "{show}");
    p.run(&["drift"]).expect(0);
}

/// Waits (bounded) until the server has answered `n` requests of `command`.
#[cfg(unix)]
fn wait_for(emu: &Emulator, command: &str, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while emu
        .running()
        .stats()
        .requests
        .get(command)
        .copied()
        .unwrap_or(0)
        < n
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{command} never got going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[cfg(unix)] // sends a signal with kill(1)
fn sigterm_stops_drift_and_import_with_143() {
    let (emu, p) = applied(2_000);
    // One read per second: 20 reads, time enough to stop each run mid-way.
    p.write_project(NAMES, "apply:\n  rate_limit: 1\n  concurrency: 1\n");
    for args in [&["drift"][..], &["import", "--auto-approve"]] {
        let reads_before = emu
            .running()
            .stats()
            .requests
            .get("im_get_attr")
            .copied()
            .unwrap_or(0);
        let child = p
            .cmd(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&emu, "im_get_attr", reads_before + 2);
        let pid = child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(143), "{args:?}: {err}");
        assert!(err.contains("nterrupted"), "{args:?}: {err}");
    }
    let history = p.run(&["state", "history"]).expect(0).stdout();
    assert!(
        history
            .lines()
            .any(|l| l.contains("import") && l.contains("interrupted")),
        "{history}"
    );
}
