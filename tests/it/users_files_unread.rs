//! Commands that need only the project file never read the users files: a broken users file
//! (mid-edit, mid-merge) must not stop a backup or an inspection. A saved plan is the
//! exception by design (DESIGN.md §4): `apply FILE` and `show FILE` plan the current files to
//! check the plan against them, so a broken file stops them, with nothing sent.

use crate::support;

use std::time::Duration;

use support::{users, Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

#[test]
fn state_and_usersig_work_with_a_broken_users_file_and_saved_plans_check_it() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    let v1 = users(20, "");
    p.write_users_map("a.yaml", &v1);
    p.run(&["apply", "--auto-approve"]).expect(0);
    let v2 = users(20, "-v2");
    p.write_users_map("a.yaml", &v2);
    p.run(&["plan", "--out", "v2.plan"]).expect(0);

    p.write_users("a.yaml", "users: [this is not: valid\n");
    let err = p.run(&["plan"]).expect(1).stderr();
    assert!(err.contains("a.yaml"), "the file is really broken: {err}");

    // The saved plan cannot be checked against broken files: refused, nothing sent.
    let sent = emu.running().stats().total_requests();
    for verb in ["apply", "show"] {
        let err = p.run(&[verb, "v2.plan"]).expect(1).stderr();
        assert!(err.contains("a.yaml"), "{verb}: {err}");
    }
    assert_eq!(emu.running().stats().total_requests(), sent);
    assert_eq!(emu.attrs(), v1);

    let list = p.run(&["state", "list"]).expect(0).stdout();
    assert_eq!(list.lines().count(), 20, "{list}");
    p.run(&["state", "show", "user00003"]).expect(0);
    p.run(&["state", "history"]).expect(0);
    p.run(&["state", "export", "--out", "backup.jsonl.gz"])
        .expect(0);
    let sig = p.run(&["usersig"]).expect(0).stdout();
    assert!(!sig.trim().is_empty());
    // The files mended, the reviewed plan applies as it was saved.
    p.write_users_map("a.yaml", &v2);
    p.run(&["apply", "v2.plan"]).expect(0);
    assert_eq!(emu.attrs(), v2);
    // A restore is a commit of its own: the plan made before it is stale.
    p.write_users("a.yaml", "users: [this is not: valid\n");
    p.run(&["state", "restore", "backup.jsonl.gz", "--force"])
        .expect(0);
    p.write_users_map("a.yaml", &v2);
    let err = p.run(&["apply", "v2.plan"]).expect(1).stderr();
    assert!(err.contains("stale"), "{err}");
}
