//! The store's promises as users see them (DESIGN.md §6 "Both backends, the same promises"):
//! readers never wait for a writer, a refused writer is told who holds the lock, and a store
//! that recorded nothing belongs to no app.

use crate::support;

use std::time::{Duration, Instant};

use support::{users, Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn project(emu: &Emulator, extra: &str) -> Project {
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(NAMES, extra);
    p
}

fn set_batches(emu: &Emulator) -> u64 {
    emu.running()
        .stats()
        .requests
        .get("im_set_attr")
        .copied()
        .unwrap_or(0)
}

fn json(run: &support::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()))
}

#[test]
fn readers_read_the_last_committed_state_while_a_slow_apply_holds_the_lock() {
    let emu = Emulator::start(Duration::from_millis(30), 0.0);
    let p = project(&emu, "");
    p.write_users_map("a.yaml", &users(150, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    // A slow apply of many changes: one request in flight, two a second.
    p.write_project(NAMES, "apply:\n  rate_limit: 2\n  concurrency: 1\n");
    p.write_users_map("a.yaml", &users(3_000, "-new"));
    let mut writer = p.spawn(&["apply", "--auto-approve"]);
    let before = set_batches(&emu);
    let deadline = Instant::now() + Duration::from_secs(60);
    while set_batches(&emu) < before + 2 {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    // It has recorded batches (serial 2) by now; readers see serial 1 or 2, whole.
    let plan = p.run(&["plan", "--format", "json"]).expect(0);
    let plan = json(&plan);
    let serial = plan["state"]["serial"].as_u64().unwrap();
    assert!(serial == 1 || serial == 2, "{plan}");
    let listed = p.run(&["state", "list"]).expect(0).stdout();
    assert!(listed.lines().count() >= 150, "{listed}");
    assert!(listed.contains("user00000"), "{listed}");
    p.run(&["state", "show", "user00001"]).expect(0);
    let history = p.run(&["state", "history", "--format", "json"]).expect(0);
    assert!(!json(&history).as_array().unwrap().is_empty());
    p.run(&["state", "export", "--out", "backup.gz"]).expect(0);
    let drift = p.run(&["drift"]);
    assert!(matches!(drift.code(), 0 | 2), "{}", drift.stderr());
    // A second writer is refused at once, naming the holder and the way to wait.
    let started = Instant::now();
    let second = p.run(&["apply", "--auto-approve"]).expect(1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    let err = second.stderr();
    assert!(
        err.contains("is locked by `timattr apply` on host "),
        "{err}"
    );
    assert!(err.contains(&format!("(pid {})", writer.id())), "{err}");
    assert!(err.contains("--lock-timeout"), "{err}");
    writer.kill().unwrap();
    writer.wait().unwrap();
    // The killed writer's publication for readers does not outlive it as the state: the
    // next reader reads the database itself.
    let after = json(&p.run(&["plan", "--format", "json"]).expect(0));
    assert!(
        after["state"]["serial"].as_u64().unwrap() >= serial,
        "{after}"
    );
}

#[test]
fn a_first_apply_that_recorded_nothing_does_not_bind_the_store() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    // The first apply points at a port nothing listens on: it fails before any request.
    let wrong = Project::new("http://localhost:9", NAMES);
    wrong.write_users_map("a.yaml", &users(10, ""));
    let failed = wrong.run(&["apply", "--auto-approve"]);
    assert_eq!(failed.code(), 1, "{}", failed.stderr());
    // The corrected project, same state directory.
    let p = Project {
        dir: wrong.dir,
        endpoint: emu.base_url(),
    };
    p.write_project(NAMES, "");
    let plan = p.run(&["plan"]).expect(0);
    assert!(!plan.stderr().contains("belongs to"), "{}", plan.stderr());
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(emu.attrs(), users(10, ""));
    // Once something is recorded, the store is this app's.
    let other = Project {
        dir: p.dir,
        endpoint: "http://localhost:9".into(),
    };
    other.write_project(NAMES, "");
    let err = other.run(&["plan"]).expect(1).stderr();
    assert!(err.contains("belongs to sdkappid"), "{err}");
}
