//! Shared state in PostgreSQL (DESIGN.md §7), with the real binary and a real database: two
//! working directories ("runners") sharing one project's state, concurrent and killed writers,
//! a connection cut mid-apply, schema versions, moving between sled and PostgreSQL, and a
//! password that never shows.
//!
//! Each test makes its own database on 127.0.0.1:5432 (role `root`, trust auth) and drops
//! it. Without a server they print "skipped: PostgreSQL not reachable"; under `CI=true` they
//! fail instead.

use crate::pg;
use crate::support;

use std::time::{Duration, Instant};

use pg::TestDb;
use support::{users, Emulator, Project, Run};

const NAMES: &[&str] = &["sex", "city", "tier"];

/// A runner: a working directory of its own with the project's files, its state in `db`.
fn runner(emu: &Emulator, db: &TestDb, extra: &str) -> Project {
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(NAMES, &format!("state: {}\n{extra}", db.url()));
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

fn wait_for_set_batches(emu: &Emulator, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while set_batches(emu) < n {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_runners_share_plans_applies_and_saved_plan_staleness() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let a = runner(&emu, &db, "");
    // Runner B names the database only through TIMATTR_STATE (as CI does from a secret).
    let b = Project::new(&emu.base_url(), NAMES);
    let b_run = |args: &[&str]| Run(b.cmd(args).env("TIMATTR_STATE", db.url()).output().unwrap());
    let want = users(250, "");
    a.write_users_map("u.yaml", &want);
    b.write_users_map("u.yaml", &want);
    a.run(&["plan", "--out", "plan.gz"]).expect(0);
    b_run(&["plan", "--detailed-exitcode"]).expect(2);
    a.run(&["apply", "plan.gz"]).expect(0);
    assert_eq!(emu.attrs(), want);
    // B sees A's apply: nothing to do, same accounts.
    let plan = b_run(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout().contains("No changes."), "{}", plan.stdout());
    assert_eq!(
        b_run(&["state", "list"]).expect(0).stdout().lines().count(),
        250
    );
    // A saved plan made before another runner's apply is stale.
    let mut changed = want.clone();
    changed
        .get_mut("user00001")
        .unwrap()
        .insert("city".into(), "elsewhere".into());
    a.write_users_map("u.yaml", &changed);
    b.write_users_map("u.yaml", &changed);
    a.run(&["plan", "--out", "plan.gz"]).expect(0);
    b_run(&["apply", "--auto-approve"]).expect(0);
    let stale = a.run(&["apply", "plan.gz"]).expect(1);
    assert!(
        stale.stderr().contains("saved plan is stale"),
        "{}",
        stale.stderr()
    );
    assert_eq!(emu.attrs(), changed);
    assert_eq!(support::store_claims(&a), changed);
    let history = a.run(&["state", "history"]).expect(0).stdout();
    assert_eq!(
        history.lines().filter(|l| l.contains("apply")).count(),
        2,
        "{history}"
    );
}

#[test]
fn a_second_writer_is_refused_naming_the_holder_or_waits_and_plans_after() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::from_millis(10), 0.0);
    // 5 requests per second: 30 batches take about 6 s.
    let a = runner(&emu, &db, "apply:\n  rate_limit: 5\n  concurrency: 2\n");
    let b = runner(&emu, &db, "");
    let want = users(3_000, "");
    a.write_users_map("u.yaml", &want);
    b.write_users_map("u.yaml", &want);
    let mut first = a.spawn(&["apply", "--auto-approve"]);
    wait_for_set_batches(&emu, 2);
    let refused = b.run(&["apply", "--auto-approve"]).expect(1);
    let err = refused.stderr();
    assert!(
        err.contains("is locked by `timattr apply` on host"),
        "{err}"
    );
    assert!(err.contains(&format!("(pid {})", first.id())), "{err}");
    assert!(err.contains("--lock-timeout"), "{err}");
    // Readers take no lock while the apply runs.
    b.run(&["plan"]).expect(0);
    // A waiting writer plans only once it has the lock: it finds nothing left to send.
    let waited = b
        .run(&["--lock-timeout", "2m", "apply", "--auto-approve"])
        .expect(0);
    assert!(first.wait().unwrap().success());
    assert!(
        waited.stdout().contains("No changes."),
        "{}",
        waited.stdout()
    );
    assert_eq!(
        set_batches(&emu),
        30,
        "the waiting writer sent a change twice"
    );
    assert_eq!(support::store_claims(&b), want);
}

#[test]
fn kill_9_releases_the_lock_and_another_runner_resumes() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::from_millis(10), 0.0);
    let a = runner(&emu, &db, "apply:\n  rate_limit: 5\n  concurrency: 4\n");
    let b = runner(&emu, &db, "");
    let want = users(4_000, "");
    a.write_users_map("u.yaml", &want);
    b.write_users_map("u.yaml", &want);
    let mut child = a.spawn(&["apply", "--auto-approve"]);
    wait_for_set_batches(&emu, 5);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sent_before = set_batches(&emu);
    assert!(
        sent_before < 40,
        "{sent_before} set batches before the kill"
    );
    support::assert_claims_confirmed(&b, &emu);
    let claimed = support::store_claims(&b).len() as u64;
    // The lock died with the process's connection: another runner takes over (the timeout
    // only covers the server noticing the closed socket).
    b.run(&["--lock-timeout", "30s", "apply", "--auto-approve"])
        .expect(0);
    let resent = set_batches(&emu) - sent_before;
    let left = 40 - claimed.div_ceil(100);
    assert!(
        resent <= left + 4,
        "resent {resent} batches, {left} were left"
    );
    assert_eq!(emu.attrs(), want);
    assert_eq!(support::store_claims(&a), want);
}

#[test]
fn a_connection_cut_mid_apply_is_re_established_and_nothing_is_lost() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::from_millis(10), 0.0);
    let a = runner(&emu, &db, "apply:\n  rate_limit: 5\n  concurrency: 2\n");
    let want = users(3_000, "");
    a.write_users_map("u.yaml", &want);
    let child = a
        .cmd(&["apply", "--auto-approve"])
        // (the plan on stdout would fill a pipe nobody reads until the end)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_set_batches(&emu, 3);
    assert!(
        db.terminate_connections() >= 1,
        "the apply had no connection"
    );
    let out = Run(child.wait_with_output().unwrap()).expect(0);
    assert!(out.stderr().contains("reconnected"), "{}", out.stderr());
    assert_eq!(emu.attrs(), want);
    assert_eq!(support::store_claims(&a), want);
}

#[test]
fn an_unreachable_database_fails_fast_before_any_request() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(
        NAMES,
        "state: postgres://root@127.0.0.1:1/none?sslmode=disable\n",
    );
    p.write_users_map("u.yaml", &users(10, ""));
    let out = p.run(&["apply", "--auto-approve"]).expect(1);
    assert!(
        out.stderr()
            .contains("cannot reach PostgreSQL at 127.0.0.1:1"),
        "{}",
        out.stderr()
    );
    assert_eq!(emu.running().stats().requests.values().sum::<u64>(), 0);
}

#[test]
fn tables_of_a_newer_timattr_are_refused() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let a = runner(&emu, &db, "");
    a.write_users_map("u.yaml", &users(5, ""));
    a.run(&["apply", "--auto-approve"]).expect(0);
    db.sql("UPDATE timattr_schema SET version = 99");
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"],
        &["state", "list"],
    ] {
        let out = a.run(args).expect(1);
        assert!(
            out.stderr()
                .contains("schema version 99, newer than this timattr"),
            "{}",
            out.stderr()
        );
    }
}

#[test]
fn export_from_sled_and_restore_into_postgres_gives_identical_plans_and_back() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let sled = Project::new(&emu.base_url(), NAMES);
    let want = users(300, "");
    sled.write_users_map("u.yaml", &want);
    sled.run(&["apply", "--auto-approve"]).expect(0);
    sled.run(&["state", "export", "--out", "backup.jsonl.gz"])
        .expect(0);
    let shared = runner(&emu, &db, "");
    shared.write_users_map("u.yaml", &want);
    std::fs::copy(
        sled.path().join("backup.jsonl.gz"),
        shared.path().join("backup.jsonl.gz"),
    )
    .unwrap();
    shared
        .run(&["state", "restore", "backup.jsonl.gz"])
        .expect(0);
    // The same edit planned against either store: the same plan.
    let edited = users(280, "x");
    sled.write_users_map("u.yaml", &edited);
    shared.write_users_map("u.yaml", &edited);
    let from_sled = sled.run(&["plan", "--format", "json"]).expect(0).stdout();
    let from_pg = shared.run(&["plan", "--format", "json"]).expect(0).stdout();
    assert_eq!(same_commit(&from_sled), same_commit(&from_pg));
    assert!(
        from_pg.contains("\"remove\": 20") || from_pg.contains("\"remove\":20"),
        "{from_pg}"
    );
    // And back: PostgreSQL → a fresh sled directory.
    shared
        .run(&["state", "export", "--out", "back.jsonl.gz"])
        .expect(0);
    let again = Project::new(&emu.base_url(), NAMES);
    again.write_users_map("u.yaml", &edited);
    std::fs::copy(
        shared.path().join("back.jsonl.gz"),
        again.path().join("back.jsonl.gz"),
    )
    .unwrap();
    again.run(&["state", "restore", "back.jsonl.gz"]).expect(0);
    assert_eq!(
        same_commit(&again.run(&["plan", "--format", "json"]).expect(0).stdout()),
        same_commit(&from_pg)
    );
    // The history came along both ways: the sled apply, then each restore's own entry.
    let history = again
        .run(&["state", "history", "--format", "json"])
        .expect(0);
    let history: serde_json::Value = serde_json::from_str(&history.stdout()).unwrap();
    let ops: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["apply", "restore", "restore"], "{history}");
    assert!(history[0]["host"].is_string(), "{history}");
}

/// A JSON plan without its state's commit id: a restore makes a new one (DESIGN.md §4), so
/// the same content in two stores differs only there.
fn same_commit(plan: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(plan).unwrap();
    let commit = v["state"].as_object_mut().unwrap().remove("commit_id");
    assert!(
        commit.is_some_and(|c| c.as_str().is_some_and(|c| c.len() == 32)),
        "{plan}"
    );
    v
}

#[test]
fn a_database_password_never_shows_in_output_or_logs() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let role = format!("timattr_pw_{:08x}", rand::random::<u32>());
    let password = format!("S3cret-{:016x}", rand::random::<u64>());
    TestDb::admin(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{password}'; GRANT ALL ON DATABASE {} TO {role}",
        db.name
    ));
    db.sql(&format!("GRANT ALL ON SCHEMA public TO {role}"));
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("u.yaml", &users(20, ""));
    // In the project file: refused, saying where the password goes, without repeating it.
    let in_file = format!("postgres://{role}:{password}@127.0.0.1:5432/{}", db.name);
    p.write_project(NAMES, &format!("state: \"{in_file}\"\n"));
    let refused = p.run(&["plan"]).expect(1);
    assert!(
        refused.stderr().contains("PGPASSWORD"),
        "{}",
        refused.stderr()
    );
    // From TIMATTR_STATE and PGPASSWORD, at trace level, through success and failure.
    p.write_project(NAMES, "");
    let urls = [
        format!(
            "postgres://{role}:{password}@127.0.0.1:5432/{}?sslmode=disable",
            db.name
        ),
        format!(
            "postgres://{role}:{password}@127.0.0.1:1/{}?sslmode=disable",
            db.name
        ),
    ];
    let mut outputs = Vec::new();
    for url in &urls {
        for args in [
            &["-vvv", "apply", "--auto-approve"][..],
            &["-vvv", "state", "export"],
            &["-vvv", "plan"],
        ] {
            let out = p
                .cmd(args)
                .env("TIMATTR_STATE", url)
                .env("RUST_LOG", "trace")
                .output()
                .unwrap();
            outputs.push(out);
        }
    }
    let via_env = format!(
        "postgres://{role}@127.0.0.1:5432/{}?sslmode=disable",
        db.name
    );
    let out = p
        .cmd(&["-vvv", "plan"])
        .env("TIMATTR_STATE", &via_env)
        .env("PGPASSWORD", &password)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    outputs.push(out);
    assert!(
        outputs[0].status.success(),
        "{}",
        String::from_utf8_lossy(&outputs[0].stderr)
    );
    assert_eq!(outputs[3].status.code(), Some(1));
    for out in &outputs {
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(&password), "the password leaked:\n{text}");
        }
    }
    assert_no_file_holds(p.path(), &password);
    drop(db);
    TestDb::admin(&format!("DROP ROLE IF EXISTS {role}"));
}

fn assert_no_file_holds(dir: &std::path::Path, secret: &str) {
    for file in walk(dir) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{}",
            file.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_database_that_stays_away_stops_the_apply_with_nothing_unconfirmed_claimed() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::from_millis(10), 0.0);
    let a = runner(&emu, &db, "apply:\n  rate_limit: 5\n  concurrency: 2\n");
    let want = users(3_000, "");
    a.write_users_map("u.yaml", &want);
    let child = a
        .cmd(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_set_batches(&emu, 3);
    TestDb::admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        db.name
    ));
    db.terminate_connections();
    let out = Run(child.wait_with_output().unwrap()).expect(1);
    let err = out.stderr();
    assert!(err.contains("applied by the API but not recorded"), "{err}");
    let sent = set_batches(&emu);
    assert!(sent < 30, "it kept sending: {sent} batches");
    TestDb::admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        db.name
    ));
    support::assert_claims_confirmed(&a, &emu);
    a.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(emu.attrs(), want);
    assert_eq!(support::store_claims(&a), want);
}

/// `state rm` forgets accounts in either store: they leave the state (the next plan adds them
/// again), the serial moves (saved plans go stale), and an unknown account changes nothing.
#[test]
fn state_rm_forgets_accounts_in_sled_and_postgres() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let db = TestDb::create();
    let mut projects = vec![Project::new(&emu.base_url(), NAMES)];
    if let Some(db) = &db {
        projects.push(runner(&emu, db, ""));
    }
    for (i, p) in projects.iter().enumerate() {
        let want = users(20, &format!("r{i}"));
        p.write_users_map("u.yaml", &want);
        p.run(&["apply", "--auto-approve"]).expect(0);
        p.run(&["plan", "--out", "plan.gz"]).expect(0);
        let refused = p.run(&["state", "rm", "user00001", "nobody"]).expect(1);
        assert!(refused.stderr().contains("nobody"), "{}", refused.stderr());
        p.run(&["state", "rm", "user00001", "user00002"]).expect(0);
        let listed = p.run(&["state", "list"]).expect(0).stdout();
        assert_eq!(listed.lines().count(), 18, "{listed}");
        assert!(!listed.contains("user00001\n"), "{listed}");
        // Live values stay; the next plan adds the accounts again.
        assert_eq!(emu.attrs()["user00001"], want["user00001"]);
        let plan = p.run(&["plan"]).expect(0).stdout();
        assert!(plan.contains("2 to add"), "{plan}");
        let stale = p.run(&["apply", "plan.gz"]).expect(1);
        assert!(stale.stderr().contains("stale"), "{}", stale.stderr());
    }
}

/// The tables exactly as a timattr of schema 2 made them (attributes as jsonb, no tags).
const SCHEMA_2: &str = "CREATE TABLE timattr_schema (version integer NOT NULL);
     INSERT INTO timattr_schema VALUES (2);
     CREATE TABLE timattr_projects (
         name text PRIMARY KEY,
         format_version integer NOT NULL,
         sdkappid bigint NOT NULL,
         endpoint_host text NOT NULL,
         lineage text NOT NULL,
         serial bigint NOT NULL,
         slots jsonb NOT NULL DEFAULT '{}',
         created_at timestamptz NOT NULL DEFAULT now());
     CREATE TABLE timattr_accounts (
         project text NOT NULL REFERENCES timattr_projects (name) ON DELETE CASCADE,
         account text COLLATE \"C\" NOT NULL,
         attrs jsonb NOT NULL,
         PRIMARY KEY (project, account));
     CREATE TABLE timattr_history (
         project text NOT NULL REFERENCES timattr_projects (name) ON DELETE CASCADE,
         seq bigserial,
         entry jsonb NOT NULL,
         PRIMARY KEY (project, seq));
     CREATE TABLE timattr_locks (
         project text PRIMARY KEY,
         token text NOT NULL,
         host text NOT NULL,
         pid bigint NOT NULL,
         command text NOT NULL,
         since bigint NOT NULL);";

/// An export with some tags added to its accounts (as a store holding tags exports it).
fn with_tags(export: &[u8], tags: &[(&str, &[&str])]) -> Vec<u8> {
    use std::io::{BufRead, Write};
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for line in std::io::BufReader::new(flate2::read::GzDecoder::new(export)).lines() {
        let mut v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if let Some((_, t)) = tags.iter().find(|(a, _)| v["account"] == *a) {
            v["tags"] = serde_json::json!(t);
        }
        writeln!(gz, "{v}").unwrap();
    }
    gz.finish().unwrap()
}

#[test]
fn a_schema_2_database_is_read_as_it_is_then_migrated_and_tags_move_between_stores() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let a = runner(&emu, &db, "");
    let want = users(40, "");
    a.write_users_map("u.yaml", &want);
    // The app as an earlier apply left it (names configured, values set)...
    let earlier = Project::new(&emu.base_url(), NAMES);
    earlier.write_users_map("u.yaml", &want);
    earlier.run(&["apply", "--auto-approve"]).expect(0);
    // ...and its state in the previous schema, made by hand.
    db.sql(SCHEMA_2);
    db.sql(&format!(
        "INSERT INTO timattr_projects (name, format_version, sdkappid, endpoint_host, lineage, serial, slots)
         VALUES ('app-{}', 3, {}, '127.0.0.1', 'old0lineage', 7, '{{\"0\": \"sex\", \"1\": \"city\", \"2\": \"tier\"}}')",
        support::SDKAPPID,
        support::SDKAPPID
    ));
    for (account, attrs) in &want {
        let json = serde_json::to_string(attrs).unwrap().replace('\'', "''");
        db.sql(&format!(
            "INSERT INTO timattr_accounts VALUES ('app-{}', '{account}', '{json}')",
            support::SDKAPPID
        ));
    }
    // Readers read it without migrating it.
    let plan = a.run(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout().contains("No changes."), "{}", plan.stdout());
    assert_eq!(support::store_claims(&a), want);
    assert_eq!(db.count("SELECT version::bigint FROM timattr_schema"), 2);
    // A writer migrates it in place and goes on from the same lineage and serial.
    let mut changed = want.clone();
    changed
        .get_mut("user00003")
        .unwrap()
        .insert("tier".into(), "gold".into());
    a.write_users_map("u.yaml", &changed);
    a.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(
        db.count("SELECT version::bigint FROM timattr_schema"),
        i64::from(timattr::store::postgres::SCHEMA_VERSION)
    );
    assert_eq!(support::store_claims(&a), changed);
    assert_eq!(
        db.count("SELECT serial FROM timattr_projects"),
        8,
        "the serial went on from the old tables"
    );
    let plan = a.run(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout().contains("No changes."), "{}", plan.stdout());
    // Tags in an export restore into PostgreSQL, come back out sorted, and restore into sled
    // with the same plan.
    let export = a.run(&["state", "export"]).expect(0).0.stdout;
    let tagged = with_tags(
        &export,
        &[("user00001", &["beta", "vip"]), ("user00002", &["ünï"])],
    );
    std::fs::write(a.path().join("tagged.jsonl.gz"), &tagged).unwrap();
    a.run(&["state", "restore", "tagged.jsonl.gz"]).expect(0);
    assert_eq!(
        db.count("SELECT count(*) FROM timattr_accounts WHERE tags = '{beta,vip}'"),
        1
    );
    let sled = Project::new(&emu.base_url(), NAMES);
    sled.write_users_map("u.yaml", &changed);
    let back = a.run(&["state", "export"]).expect(0).0.stdout;
    std::fs::write(sled.path().join("back.jsonl.gz"), &back).unwrap();
    sled.run(&["state", "restore", "back.jsonl.gz"]).expect(0);
    let lines = |b: &[u8]| {
        use std::io::BufRead;
        std::io::BufReader::new(flate2::read::GzDecoder::new(b))
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect::<Vec<serde_json::Value>>()
    };
    let from_pg = lines(&back);
    assert_eq!(from_pg, lines(&tagged)[..]);
    assert_eq!(
        lines(&sled.run(&["state", "export"]).expect(0).0.stdout),
        from_pg
    );
    let plan_pg = a.run(&["plan", "--format", "json"]).expect(0).stdout();
    let plan_sled = sled.run(&["plan", "--format", "json"]).expect(0).stdout();
    assert_eq!(same_commit(&plan_pg), same_commit(&plan_sled));
}

/// A TCP proxy to the database on 127.0.0.1:5432 that holds every chunk 10 ms each way and
/// counts round trips as the state bench does (`examples/bench_state.rs`): a chunk from the
/// client after the server last sent on that connection (or its first) starts one; a
/// Terminate message alone waits for nothing and is not one.
struct TurnCounter {
    addr: std::net::SocketAddr,
    turns: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TurnCounter {
    fn start() -> TurnCounter {
        use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let turns = Arc::new(AtomicUsize::new(0));
        let counted = turns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect("127.0.0.1:5432") else {
                    return;
                };
                let last = Arc::new(AtomicU8::new(0));
                for (from, to, side) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap(), 1),
                    (server, client, 2),
                ] {
                    let (last, turns) = (last.clone(), counted.clone());
                    std::thread::spawn(move || {
                        pump(from, to, move |chunk| {
                            if chunk != [b'X', 0, 0, 0, 4]
                                && last.swap(side, Ordering::SeqCst) != side
                                && side == 1
                            {
                                turns.fetch_add(1, Ordering::SeqCst);
                            }
                        })
                    });
                }
            }
        });
        TurnCounter { addr, turns }
    }

    fn url(&self, db: &TestDb) -> String {
        db.url().replace("127.0.0.1:5432", &self.addr.to_string())
    }

    fn count(&self) -> usize {
        self.turns.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Copies `from` to `to`, each chunk 10 ms after it was read, telling `saw` of each.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    mut saw: impl FnMut(&[u8]) + Send + 'static,
) {
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        saw(&buf[..n]);
        if tx
            .send((
                Instant::now() + Duration::from_millis(10),
                buf[..n].to_vec(),
            ))
            .is_err()
        {
            break;
        }
    }
}

#[test]
fn a_no_op_plan_and_state_list_take_three_round_trips_and_a_first_apply_few() {
    let Some(db) = TestDb::create() else { return };
    let proxy = TurnCounter::start();
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(NAMES, &format!("state: {}\n", proxy.url(&db)));
    let want = users(300, "");
    p.write_users_map("u.yaml", &want);
    // The first apply creates the tables: connecting, looking (none yet), creating with the
    // lock and the project, the slots, its records (three batches: one to three groups), the
    // last of which carries the final history entry.
    let before = proxy.count();
    p.run(&["apply", "--auto-approve"]).expect(0);
    let apply = proxy.count() - before;
    assert!(apply <= 7, "the first apply took {apply} round trips");
    let history = p
        .run(&["state", "history", "--format", "json"])
        .expect(0)
        .stdout();
    assert!(history.contains("\"complete\""), "{history}");
    // Connecting, one flight (snapshot, schema, metadata; the COPY prepared), the COPY.
    for args in [&["plan", "--detailed-exitcode"][..], &["state", "list"]] {
        let before = proxy.count();
        p.run(args).expect(0);
        let trips = proxy.count() - before;
        assert!(trips <= 3, "{args:?} took {trips} round trips");
    }
}

#[test]
fn a_users_file_error_comes_before_a_store_error_and_leaves_no_lock() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    // The store is opened while the files load: a broken file is still the error shown, with
    // an unreachable database too.
    let away = Project::new(&emu.base_url(), NAMES);
    away.write_project(
        NAMES,
        "state: postgres://root@127.0.0.1:1/none?sslmode=disable\n",
    );
    away.write_users("u.yaml", "users:\n  u1: {sex: [\n");
    for args in [&["plan"][..], &["apply", "--auto-approve"], &["drift"]] {
        let out = away.run(args).expect(1);
        assert!(
            out.stderr().contains("u.yaml") && !out.stderr().contains("PostgreSQL"),
            "{args:?}: {}",
            out.stderr()
        );
    }
    // A writer that opened (and locked) while a broken file loaded leaves no lock behind.
    let a = runner(&emu, &db, "");
    a.write_users_map("u.yaml", &users(5, ""));
    a.run(&["apply", "--auto-approve"]).expect(0);
    a.write_users("u.yaml", "users:\n  u1: {sex: [\n");
    a.run(&["apply", "--auto-approve"]).expect(1);
    a.write_users_map("u.yaml", &users(6, ""));
    a.run(&["apply", "--auto-approve"]).expect(0);
}
