//! Commands that need only the project file never read the users files: a broken users file
//! (mid-edit, mid-merge) must not stop a backup, an inspection or a reviewed saved plan.

use crate::support;

use std::time::Duration;

use support::{users, Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

#[test]
fn state_usersig_and_saved_plans_work_with_a_broken_users_file() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(20, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let v2 = users(20, "-v2");
    p.write_users_map("a.yaml", &v2);
    p.run(&["plan", "--out", "v2.plan"]).expect(0);

    p.write_users("a.yaml", "users: [this is not: valid\n");
    let err = p.run(&["plan"]).expect(1).stderr();
    assert!(err.contains("a.yaml"), "the file is really broken: {err}");

    let list = p.run(&["state", "list"]).expect(0).stdout();
    assert_eq!(list.lines().count(), 20, "{list}");
    p.run(&["state", "show", "user00003"]).expect(0);
    p.run(&["state", "history"]).expect(0);
    p.run(&["state", "export", "--out", "backup.jsonl.gz"])
        .expect(0);
    p.run(&["state", "restore", "backup.jsonl.gz"]).expect(0);
    let sig = p.run(&["usersig"]).expect(0).stdout();
    assert!(!sig.trim().is_empty());
    // The reviewed plan applies as it was saved.
    p.run(&["apply", "v2.plan"]).expect(0);
    assert_eq!(emu.attrs(), v2);
}
