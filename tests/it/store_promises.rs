//! The store's promises as users see them (DESIGN.md §6 "Both backends, the same promises"):
//! readers never wait for a writer, a refused writer is told who holds the lock, and a store
//! that recorded nothing belongs to no app.

use crate::support;

use std::time::{Duration, Instant};

use support::{users, Emulator, Project};

use crate::pg::TestDb;

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

/// The summary of a run whose store failed: one account, never also "everything recorded".
fn assert_one_account(err: &str) {
    assert!(err.contains("applied and recorded"), "{err}");
    assert!(err.contains("applied but not recorded"), "{err}");
    assert!(
        !err.contains("Everything the API confirmed is recorded"),
        "{err}"
    );
}

/// A small tmpfs, unmounted on drop; `None` where mounting is not allowed (not root).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
}

#[test]
fn a_full_disk_mid_apply_gives_one_account_and_claims_only_what_was_recorded() {
    let Some(fs) = Tmpfs::mount("16m") else {
        // CI runs as root: there a missing tmpfs is a failure, never a silent pass.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs under CI=true (needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let emu = Emulator::start(Duration::from_millis(5), 0.0);
    let state = fs.0.path().join("state");
    let p = project(
        &emu,
        &format!(
            "state: {}\napply:\n  rate_limit: 10\n  concurrency: 2\n",
            state.display()
        ),
    );
    let want = users(3_000, "");
    p.write_users_map("a.yaml", &want);
    let child = p
        .cmd(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while set_batches(&emu) < 4 {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    let filler = fs.0.path().join("filler");
    fill(&filler);
    let out = support::Run(child.wait_with_output().unwrap()).expect(1);
    let err = out.stderr();
    assert_one_account(&err);
    assert!(
        set_batches(&emu) < 30,
        "it kept sending after the store failed"
    );
    std::fs::remove_file(&filler).unwrap();
    support::assert_claims_confirmed(&p, &emu);
    // The next apply sends what was not recorded, and converges.
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(emu.attrs(), want);
    assert_eq!(support::store_claims(&p), want);
}

fn pg_project(emu: &Emulator, db: &TestDb, url: &str, extra: &str) -> Project {
    let _ = db;
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(NAMES, &format!("state: {url}\n{extra}"));
    p
}

/// A slow apply into PostgreSQL, whose lock another writer takes over mid-run.
#[test]
fn a_lost_lock_mid_apply_gives_one_account_and_the_run_keeps_its_history() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::from_millis(5), 0.0);
    let p = pg_project(
        &emu,
        &db,
        &db.url(),
        "apply:\n  rate_limit: 10\n  concurrency: 2\n",
    );
    let want = users(3_000, "");
    p.write_users_map("a.yaml", &want);
    let child = p
        .cmd(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while set_batches(&emu) < 4 {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    // As if another writer had taken the lock over while this one's connection was away.
    db.sql("UPDATE timattr_locks SET token = 'another writer'");
    let out = support::Run(child.wait_with_output().unwrap()).expect(1);
    let err = out.stderr();
    assert_one_account(&err);
    assert!(err.contains("the state changed under this writer"), "{err}");
    assert!(
        set_batches(&emu) < 30,
        "it kept sending after the store failed"
    );
    support::assert_claims_confirmed(&p, &emu);
    // Its serial has its history entry (written with its first commit).
    let serial = db.count("SELECT serial FROM timattr_projects");
    assert_eq!(serial, 1);
    let entries =
        db.count("SELECT count(*) FROM timattr_history WHERE (entry->>'serial')::bigint = 1");
    assert_eq!(entries, 1);
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(emu.attrs(), want);
}

/// A role that may write the accounts but not the history: nothing of the run is recorded
/// (no serial without its entry), and the summary says what the API applied.
#[test]
fn a_role_without_insert_on_history_records_nothing_and_says_so() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = pg_project(&emu, &db, &db.url(), "");
    p.write_users_map("a.yaml", &users(50, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let role = format!("{}_w", db.name);
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT SELECT, INSERT, UPDATE, DELETE ON timattr_schema, timattr_projects, timattr_accounts, timattr_locks TO {role};
         GRANT SELECT, UPDATE ON timattr_history TO {role};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};"
    ));
    let limited = format!(
        "postgres://{role}@127.0.0.1:5432/{}?sslmode=disable",
        db.name
    );
    p.write_project(NAMES, &format!("state: {limited}\n"));
    p.write_users_map("a.yaml", &users(50, "-new"));
    let before = db.count("SELECT count(*) FROM timattr_history");
    let out = p.run(&["apply", "--auto-approve"]).expect(1);
    let err = out.stderr();
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("0 batches applied and recorded"), "{err}");
    assert!(err.contains("1 applied but not recorded"), "{err}");
    assert!(
        !err.contains("Everything the API confirmed is recorded"),
        "{err}"
    );
    assert_eq!(db.count("SELECT serial FROM timattr_projects"), 1);
    assert_eq!(db.count("SELECT count(*) FROM timattr_history"), before);
    // The state still holds what it held; the next apply (with the privilege) sends it again.
    p.write_project(NAMES, &format!("state: {}\n", db.url()));
    assert_eq!(support::store_claims(&p), users(50, ""));
    let plan = p.run(&["plan", "--format", "json"]).expect(0).stdout();
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["summary"]["change"], 50, "{plan}");
    db.sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

/// `kill -9` in the middle of an apply: the serial it recorded has its history entry (written
/// with the first commit), saying `interrupted`, with who ran it and the `--target` patterns.
#[test]
fn a_killed_apply_leaves_its_serial_with_a_history_entry() {
    let emu = Emulator::start(Duration::from_millis(5), 0.0);
    let p = project(&emu, "apply:\n  rate_limit: 10\n  concurrency: 2\n");
    p.write_users_map("a.yaml", &users(3_000, ""));
    let mut child = p
        .cmd(&["apply", "--auto-approve", "--target", "user0*"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_ACTOR", "octocat")
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "org/app")
        .env("GITHUB_RUN_ID", "42")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while set_batches(&emu) < 4 {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let plan = json(&p.run(&["plan", "--format", "json"]).expect(0));
    assert_eq!(plan["state"]["serial"], 1, "{plan}");
    let history = json(&p.run(&["state", "history", "--format", "json"]).expect(0));
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{history}");
    let e = &entries[0];
    assert_eq!(e["serial"], 1, "{history}");
    assert_eq!(e["status"], "interrupted", "{history}");
    assert!(e["accounts_set"].as_u64().unwrap() > 0, "{history}");
    assert_eq!(e["actor"], "octocat", "{history}");
    assert_eq!(e["git_commit"], "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(
        e["ci_run_url"],
        "https://github.com/org/app/actions/runs/42"
    );
    assert_eq!(e["targets"], serde_json::json!(["user0*"]), "{history}");
    assert_eq!(e["commit_id"], plan["state"]["commit_id"], "{history}");
    let text = p.run(&["state", "history"]).expect(0).stdout();
    assert!(text.contains("interrupted"), "{text}");
    assert!(text.contains("octocat on "), "{text}");
    assert!(text.contains("git 0123456789ab"), "{text}");
    assert!(text.contains("--target user0*"), "{text}");
}
