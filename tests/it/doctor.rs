//! `timattr doctor`: every check passing on the emulator, each simulated misconfiguration
//! failing its own check with the fix (and the checks that need it skipped), read-only by
//! construction (only `im_get_attr_name` sent; a read-only sled directory and a SELECT-only
//! PostgreSQL role reported, not written), `--record` without secrets, and the JSON shape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::hostile::{Act, Hostile};
use crate::pg::TestDb;
use crate::support::{users, Emulator, Project, Run, KEY, SECRET_ENV};

const NAMES: &[&str] = &["sex", "city", "tier"];
const ORDER: [&str; 13] = [
    "project",
    "users",
    "secret",
    "endpoint",
    "tls",
    "api",
    "family",
    "attribute_names",
    "other_slots",
    "clock",
    "state",
    "state_write",
    "ci",
];

fn project(endpoint: &str) -> Project {
    let p = Project::new(endpoint, NAMES);
    p.write_users_map("a.yaml", &users(5, ""));
    p
}

/// Runs `doctor --format json` and returns the run and its document.
fn doctor_json(p: &Project, extra: &[&str], env: &[(&str, &str)]) -> (Run, Value) {
    let mut args = vec!["doctor", "--format", "json"];
    args.extend_from_slice(extra);
    let mut cmd = p.cmd(&args);
    cmd.env_remove("TIMATTR_EMULATOR_SIMULATE")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = Run(cmd.output().unwrap());
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout(),
            run.stderr()
        )
    });
    (run, doc)
}

/// The check named `name`.
fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc}"))
}

fn status<'a>(doc: &'a Value, name: &str) -> &'a str {
    check(doc, name)["status"].as_str().unwrap()
}

fn finding(doc: &Value, name: &str) -> String {
    check(doc, name)["finding"].as_str().unwrap().to_owned()
}

fn fix(doc: &Value, name: &str) -> String {
    check(doc, name)["fix"].as_str().unwrap().to_owned()
}

/// Every check but the ones in `failed` passes or informs; those fail; `skipped` are skipped
/// with "skipped: needs …".
fn assert_outcome(doc: &Value, failed: &[&str], skipped: &[&str]) {
    for name in ORDER {
        let s = status(doc, name);
        if failed.contains(&name) {
            assert_eq!(s, "fail", "{name}: {doc:#}");
            assert!(
                !fix(doc, name).is_empty(),
                "{name} fails without a fix: {doc:#}"
            );
        } else if skipped.contains(&name) {
            assert_eq!(s, "skip", "{name}: {doc:#}");
            assert!(finding(doc, name).starts_with("skipped: needs "), "{doc:#}");
        } else {
            assert!(s == "pass" || s == "info", "{name} is {s}: {doc:#}");
        }
    }
    assert_eq!(doc["ok"], failed.is_empty(), "{doc:#}");
}

/// Every file under `dir`, path → bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn every_check_passes_on_the_emulator_and_only_im_get_attr_name_is_sent() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu.base_url());
    p.run(&["apply", "--auto-approve"]).expect(0);
    let before = emu.running().stats().requests;
    let state_before = tree(&p.state_dir());
    let data_before = emu.running().snapshot();

    let (run, doc) = doctor_json(&p, &[], &[]);
    let run = run.expect(0);
    assert_outcome(&doc, &[], &[]);
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ORDER);
    assert!(
        finding(&doc, "attribute_names").contains("sex (slot 0)"),
        "{doc:#}"
    );
    assert!(finding(&doc, "state").contains("serial 1"), "{doc:#}");
    assert!(
        finding(&doc, "family").contains("all_member_push"),
        "{doc:#}"
    );
    assert!(finding(&doc, "tls").contains("loopback"), "{doc:#}");

    // Read-only by construction: one im_get_attr_name, nothing else; no byte of the state
    // or of the app changed.
    let mut sent = emu.running().stats().requests;
    for (cmd, n) in &before {
        *sent.get_mut(cmd).unwrap() -= n;
    }
    sent.retain(|_, n| *n > 0);
    assert_eq!(sent, BTreeMap::from([("im_get_attr_name".to_owned(), 1)]));
    assert_eq!(tree(&p.state_dir()), state_before);
    assert_eq!(emu.running().snapshot(), data_before);
    assert!(!run.stdout().contains(KEY) && !run.stderr().contains(KEY));

    // The text view: a ✓ per passing check and the summary.
    let text = p.run(&["doctor"]).expect(0).stdout();
    assert!(text.contains("✓ API and UserSig"), "{text}");
    assert!(text.contains("All 13 checks pass"), "{text}");
}

#[test]
fn embedded_passes_and_creates_nothing() {
    let p = project("embedded");
    let (_, doc) = doctor_json(&p, &[], &[]);
    assert_outcome(&doc, &[], &[]);
    assert!(finding(&doc, "secret").contains("not needed"), "{doc:#}");
    assert!(
        finding(&doc, "attribute_names").contains("the next apply configures them"),
        "{doc:#}"
    );
    // Neither a store nor the embedded emulator's data file was made.
    assert!(!p.state_dir().exists());
}

#[test]
fn each_simulated_failure_fails_its_check_with_the_fix_and_skips_what_needs_it() {
    let p = project("embedded");
    let sim = |list: &str| {
        let (run, doc) = doctor_json(&p, &[], &[("TIMATTR_EMULATOR_SIMULATE", list)]);
        assert_eq!(run.code(), 1, "{list}: {doc:#}");
        doc
    };
    let after_api = ["attribute_names", "other_slots"];

    let doc = sim("wrong-key");
    assert_outcome(&doc, &["api"], &after_api);
    assert!(finding(&doc, "api").contains("error 70009"), "{doc:#}");
    assert!(finding(&doc, "api").contains("wrong SecretKey"), "{doc:#}");
    assert!(fix(&doc, "api").contains("SecretKey is wrong"), "{doc:#}");

    let doc = sim("wrong-sdkappid");
    assert_outcome(&doc, &["api"], &after_api);
    assert!(finding(&doc, "api").contains("error 70020"), "{doc:#}");
    assert!(fix(&doc, "api").contains("app.region"), "{doc:#}");

    let doc = sim("full-slots");
    assert_outcome(&doc, &["attribute_names"], &[]);
    assert!(
        finding(&doc, "attribute_names").contains("only 0 of 10 are free"),
        "{doc:#}"
    );
    assert!(
        fix(&doc, "attribute_names").contains("cannot delete"),
        "{doc:#}"
    );
    assert_eq!(status(&doc, "other_slots"), "info");
    assert!(
        finding(&doc, "other_slots").contains("other_system_0"),
        "{doc:#}"
    );

    for skew in ["clock-skew=10m", "clock-skew=-10m"] {
        let doc = sim(skew);
        assert_outcome(&doc, &["clock"], &[]);
        assert!(finding(&doc, "clock").contains("10m"), "{doc:#}");
        assert!(finding(&doc, "clock").contains("UserSigs carry"), "{doc:#}");
        assert!(fix(&doc, "clock").contains("clock"), "{doc:#}");
    }
    // Four minutes off passes, with the skew named.
    let (_, doc) = doctor_json(&p, &[], &[("TIMATTR_EMULATOR_SIMULATE", "clock-skew=4m")]);
    assert_outcome(&doc, &[], &[]);
    assert!(finding(&doc, "clock").contains("4m"), "{doc:#}");

    // A typo in the list is named, not ignored.
    let (_, doc) = doctor_json(&p, &[], &[("TIMATTR_EMULATOR_SIMULATE", "wrong-kye")]);
    assert!(
        finding(&doc, "api").contains("did you mean `wrong-key`"),
        "{doc:#}"
    );
    // Simulating never wrote the emulator's data or a store.
    assert!(!p.state_dir().exists());
}

#[test]
fn the_emulator_command_simulates_too() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = project(&format!("http://127.0.0.1:{port}"));
    let mut emu = p
        .cmd(&[
            "emulator",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--secret-env",
            SECRET_ENV,
            "--simulate",
            "wrong-sdkappid,full-slots",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the emulator did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, doc) = doctor_json(&p, &[], &[]);
    let _ = emu.kill();
    let _ = emu.wait();
    assert_outcome(&doc, &["api"], &["attribute_names", "other_slots"]);
    assert!(finding(&doc, "api").contains("error 70020"), "{doc:#}");
    let bad = p.run(&["emulator", "--simulate", "full-slot"]).expect(1);
    assert!(
        bad.stderr().contains("did you mean `full-slots`"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn a_missing_secret_or_project_file_skips_what_needs_it() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu.base_url());
    let mut cmd = p.cmd(&["doctor", "--format", "json"]);
    cmd.env_remove(SECRET_ENV);
    let run = Run(cmd.output().unwrap()).expect(1);
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_outcome(
        &doc,
        &["secret"],
        &["api", "attribute_names", "other_slots", "clock"],
    );
    assert!(
        fix(&doc, "secret").contains(&format!("export {SECRET_ENV}")),
        "{doc:#}"
    );
    assert!(finding(&doc, "api").contains("needs the secret"), "{doc:#}");
    assert_eq!(emu.running().stats().total_requests(), 0);

    // A key pasted with its newline would fail as a wrong key: doctor says why first.
    let mut cmd = p.cmd(&["doctor", "--format", "json"]);
    cmd.env(SECRET_ENV, format!("{KEY}\n"));
    let run = Run(cmd.output().unwrap()).expect(1);
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert!(finding(&doc, "secret").contains("whitespace"), "{doc:#}");
    assert!(!run.stdout().contains(KEY));

    std::fs::write(p.path().join("timattr.yaml"), "app: {sdkappid: nope}\n").unwrap();
    let (run, doc) = doctor_json(&p, &[], &[]);
    assert_eq!(run.code(), 1);
    assert_eq!(status(&doc, "project"), "fail");
    for name in &ORDER[1..] {
        assert_eq!(status(&doc, name), "skip", "{name}: {doc:#}");
    }
    assert!(
        finding(&doc, "project").contains("timattr.yaml:1:"),
        "{doc:#}"
    );
}

#[test]
fn a_failed_tls_handshake_is_named_and_the_api_check_skipped() {
    // A plain HTTP server asked for TLS: the handshake fails, nothing is sent.
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let port = emu.running().addr().port();
    let p = project(&format!("https://localhost:{port}"));
    let (_, doc) = doctor_json(&p, &[], &[]);
    assert_outcome(
        &doc,
        &["tls"],
        &["api", "attribute_names", "other_slots", "clock"],
    );
    assert!(
        finding(&doc, "endpoint").contains("localhost resolves"),
        "{doc:#}"
    );
    assert!(
        finding(&doc, "tls").contains("TLS handshake failed"),
        "{doc:#}"
    );
    assert_eq!(emu.running().stats().total_requests(), 0);
}

/// The state directory made read-only for this process, even as root (where permission
/// bits do not stop writes): a read-only bind mount of it onto itself, else the immutable
/// attribute; `None` when neither works here.
#[cfg(unix)] // chmod, mount, chattr
struct ReadOnly {
    dir: PathBuf,
    how: &'static str,
}

#[cfg(unix)] // chmod, mount, chattr
impl ReadOnly {
    fn make(dir: &Path) -> Option<ReadOnly> {
        use std::os::unix::fs::PermissionsExt;
        let sh = |cmd: &str| {
            Command::new("sh")
                .args(["-c", cmd])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let d = dir.display();
        if rustix::process::geteuid().as_raw() != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            return Some(ReadOnly {
                dir: dir.to_owned(),
                how: "chmod",
            });
        }
        if sh(&format!("mount --bind '{d}' '{d}'")) {
            if sh(&format!("mount -o remount,ro,bind '{d}'")) {
                return Some(ReadOnly {
                    dir: dir.to_owned(),
                    how: "mount",
                });
            }
            sh(&format!("umount '{d}'"));
        }
        if sh(&format!("chattr +i '{d}'")) {
            return Some(ReadOnly {
                dir: dir.to_owned(),
                how: "chattr",
            });
        }
        None
    }
}

#[cfg(unix)] // chmod, mount, chattr
impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let d = self.dir.display().to_string();
        match self.how {
            "mount" => {
                let _ = Command::new("umount").arg(&d).status();
            }
            "chattr" => {
                let _ = Command::new("chattr").args(["-i", &d]).status();
            }
            _ => {
                let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
            }
        }
    }
}

#[test]
#[cfg(unix)] // chmod, mount, chattr
fn a_read_only_state_directory_is_read_and_reported_unrecordable() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu.base_url());
    p.run(&["apply", "--auto-approve"]).expect(0);
    // Writable first: the check passes.
    let (_, doc) = doctor_json(&p, &[], &[]);
    assert_eq!(status(&doc, "state_write"), "pass", "{doc:#}");
    let before = tree(&p.state_dir());
    let Some(guard) = ReadOnly::make(&p.state_dir()) else {
        eprintln!("skipped: cannot make a directory read-only for root here (no mount, no chattr)");
        return;
    };
    let (run, doc) = doctor_json(&p, &[], &[]);
    drop(guard);
    assert_eq!(run.code(), 1);
    assert_outcome(&doc, &["state_write"], &[]);
    assert!(finding(&doc, "state").contains("serial 1"), "{doc:#}");
    assert!(
        finding(&doc, "state_write").contains("an apply could not record"),
        "{doc:#}"
    );
    assert!(fix(&doc, "state_write").contains("writable"), "{doc:#}");
    assert_eq!(tree(&p.state_dir()), before);
}

#[test]
fn a_select_only_postgres_role_is_reported_with_the_grants_it_lacks() {
    let Some(db) = TestDb::create() else { return };
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu.base_url());
    let url = db.url();
    let mut apply = p.cmd(&["apply", "--auto-approve"]);
    apply.env("TIMATTR_STATE", &url);
    Run(apply.output().unwrap()).expect(0);

    // The owner may write: the check passes.
    let (_, doc) = doctor_json(&p, &[], &[("TIMATTR_STATE", &url)]);
    assert_outcome(&doc, &[], &[]);
    assert!(finding(&doc, "state").contains("serial 1"), "{doc:#}");
    assert!(
        finding(&doc, "state_write").contains("may read and write"),
        "{doc:#}"
    );

    let role = format!("doctor_ro_{:08x}", rand::random::<u32>());
    TestDb::admin(&format!("CREATE ROLE {role} LOGIN"));
    db.sql(&format!(
        "GRANT SELECT ON timattr_schema, timattr_projects, timattr_accounts, timattr_history, timattr_locks TO {role}"
    ));
    let ro_url = url.replace("postgres://root@", &format!("postgres://{role}@"));
    let history = db.count("SELECT count(*) FROM timattr_history");
    let (run, doc) = doctor_json(&p, &[], &[("TIMATTR_STATE", &ro_url)]);
    let history_after = db.count("SELECT count(*) FROM timattr_history");
    drop(db);
    TestDb::admin(&format!("DROP ROLE IF EXISTS {role}"));
    assert_eq!(run.code(), 1);
    assert_outcome(&doc, &["state_write"], &[]);
    assert!(
        finding(&doc, "state").contains(&format!("role {role}")),
        "{doc:#}"
    );
    let fix = fix(&doc, "state_write");
    for grant in [
        format!("GRANT INSERT, UPDATE ON timattr_projects TO {role};"),
        format!("GRANT INSERT, UPDATE, DELETE ON timattr_accounts TO {role};"),
        format!("GRANT INSERT ON timattr_history TO {role};"),
        format!("GRANT INSERT, UPDATE ON timattr_locks TO {role};"),
        format!("GRANT USAGE ON SEQUENCE timattr_history_seq_seq TO {role};"),
    ] {
        assert!(fix.contains(&grant), "{grant} missing from: {fix}");
    }
    assert_eq!(history, history_after);
}

#[test]
fn tables_an_upgrade_must_migrate_need_their_owner() {
    let Some(db) = TestDb::create() else { return };
    // Tables as an older timattr left them (schema 2), every privilege granted but ownership.
    for step in &timattr::store::postgres::MIGRATIONS[..2] {
        db.sql(step);
    }
    db.sql("UPDATE timattr_schema SET version = 2");
    let role = format!("doctor_rw_{:08x}", rand::random::<u32>());
    TestDb::admin(&format!("CREATE ROLE {role} LOGIN"));
    db.sql(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};
         GRANT CREATE ON SCHEMA public TO {role};"
    ));
    let p = project("embedded");
    let url = db
        .url()
        .replace("postgres://root@", &format!("postgres://{role}@"));
    let (_, doc) = doctor_json(&p, &[], &[("TIMATTR_STATE", &url)]);
    let (_, owner) = doctor_json(&p, &[], &[("TIMATTR_STATE", &db.url())]);
    drop(db);
    TestDb::admin(&format!("DROP ROLE IF EXISTS {role}"));
    assert_outcome(&doc, &["state_write"], &[]);
    assert!(
        finding(&doc, "state").contains("schema version 2"),
        "{doc:#}"
    );
    assert!(
        finding(&doc, "state_write").contains("only their owner"),
        "{doc:#}"
    );
    assert!(
        fix(&doc, "state_write").contains("as the tables' owner"),
        "{doc:#}"
    );
    assert_outcome(&owner, &[], &[]);
}

/// The advisory-lock key of a project, as the store computes it (FNV-1a of `timattr:NAME`).
fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"timattr:".iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// A project applied once with its state in `db`: the emulator, the project, the state URL,
/// and a session of our own on the database (driven on the emulator's runtime).
fn applied_in_postgres(db: &TestDb) -> (Emulator, Project, String, tokio_postgres::Client) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu.base_url());
    let url = db.url();
    let mut apply = p.cmd(&["apply", "--auto-approve"]);
    apply.env("TIMATTR_STATE", &url);
    Run(apply.output().unwrap()).expect(0);
    let conninfo = format!(
        "host=127.0.0.1 port=5432 user=root dbname={} sslmode=disable",
        db.name
    );
    let (client, conn) = emu
        .runtime
        .block_on(tokio_postgres::connect(&conninfo, tokio_postgres::NoTls))
        .unwrap();
    emu.runtime.spawn(conn);
    (emu, p, url, client)
}

#[test]
fn a_writer_holding_the_postgres_lock_is_named() {
    let Some(db) = TestDb::create() else { return };
    let (emu, p, url, client) = applied_in_postgres(&db);
    let rt = &emu.runtime;
    // Another session takes the project's writer lock and names itself, as a writer does.
    rt.block_on(client.batch_execute(&format!(
        "SELECT pg_advisory_lock({});
         UPDATE timattr_locks SET command = 'import', host = 'runner-7', pid = 4242 WHERE project = 'app-1400000000';",
        lock_key("app-1400000000")
    )))
    .unwrap();
    let (run, doc) = doctor_json(&p, &[], &[("TIMATTR_STATE", &url)]);
    assert_eq!(run.code(), 1);
    assert_outcome(&doc, &["state"], &[]);
    assert!(
        finding(&doc, "state")
            .contains("locked now by `timattr import` on host runner-7 (pid 4242)"),
        "{doc:#}"
    );
    assert!(fix(&doc, "state").contains("--lock-timeout"), "{doc:#}");
    // Once that session ends, nobody holds it (the server lets go a moment after).
    drop(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, doc) = doctor_json(&p, &[], &[("TIMATTR_STATE", &url)]);
        if status(&doc, "state") == "pass" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{doc:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// DESIGN.md §6: a store that recorded nothing yet (serial 0) is bound to no app, so doctor
/// passes it as the next apply would; one that recorded something for another app fails.
#[test]
fn a_postgres_project_of_another_app_fails_unless_it_recorded_nothing() {
    let Some(db) = TestDb::create() else { return };
    let (emu, p, url, client) = applied_in_postgres(&db);
    let rt = &emu.runtime;
    let sql = |q: &str| rt.block_on(client.batch_execute(q)).unwrap();
    sql("UPDATE timattr_projects SET sdkappid = 1400000999, endpoint_host = 'other.example' WHERE name = 'app-1400000000'");
    let (run, doc) = doctor_json(&p, &[], &[("TIMATTR_STATE", &url)]);
    assert_eq!(run.code(), 1, "{doc:#}");
    assert!(
        finding(&doc, "state").contains("belongs to sdkappid 1400000999 at other.example"),
        "{doc:#}"
    );
    assert!(fix(&doc, "state").contains("state.name"), "{doc:#}");
    sql("UPDATE timattr_projects SET serial = 0 WHERE name = 'app-1400000000'");
    let (_, doc) = doctor_json(&p, &[], &[("TIMATTR_STATE", &url)]);
    assert_eq!(status(&doc, "state"), "pass", "{doc:#}");
}

/// Neither the key nor any usersig the server saw (nor a long piece of one, in any spelling)
/// in `bytes`.
fn assert_no_secrets(bytes: &[u8], sigs: &[String], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!text.contains(KEY), "{what}: the key leaked:\n{text}");
    assert!(!sigs.is_empty(), "the server saw no sig");
    for sig in sigs {
        let encoded: String = url_encode(sig);
        for s in [sig.clone(), encoded] {
            for piece in [&s[..], &s[..24], &s[s.len() - 24..]] {
                assert!(!text.contains(piece), "{what}: a usersig leaked:\n{text}");
            }
        }
    }
}

/// Every byte but letters and digits percent-encoded (`*` as `%2A`), as some servers echo.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn record_saves_each_answer_as_received_and_never_a_secret() {
    // A server that echoes the usersig and the key back, in a header and in the body.
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let h = emu.runtime.block_on(Hostile::start(
        Some(emu.base_url()),
        std::sync::Arc::new(|_: &str, _| Act::Forward),
    ));
    let seen = h.clone();
    h.set_script(std::sync::Arc::new(move |_: &str, _| {
        let sig = seen.sigs().last().cloned().unwrap_or_default();
        let enc = url_encode(&sig);
        Act::Answer {
            status: 200,
            headers: vec![
                ("X-Echo".into(), sig.clone()),
                ("Date".into(), httpdate::fmt_http_date(std::time::SystemTime::now())),
            ],
            body: format!(
                r#"{{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"sig {sig} {enc} key {KEY}","AttrNames":{{"0":"sex"}}}}"#
            )
            .into_bytes(),
        }
    }));
    let p = project(&h.base_url());
    let dir = p.path().join("answers");
    let (run, doc) = doctor_json(&p, &["--record", dir.to_str().unwrap()], &[]);
    assert_eq!(status(&doc, "api"), "pass", "{doc:#}");
    let files = tree(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let (path, bytes) = files.iter().next().unwrap();
    assert!(path.ends_with("01-im_get_attr_name.http"), "{path:?}");
    let text = String::from_utf8_lossy(bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.to_lowercase().contains("\r\nx-echo: ***\r\n"),
        "{text}"
    );
    assert!(text.contains(r#""AttrNames":{"0":"sex"}"#), "{text}");
    assert!(text.contains("sig *** *** key ***"), "{text}");
    let sigs = h.sigs();
    for (path, bytes) in &files {
        assert_no_secrets(bytes, &sigs, &path.display().to_string());
    }
    assert_no_secrets(&run.0.stdout, &sigs, "stdout");
    assert_no_secrets(&run.0.stderr, &sigs, "stderr");
}

#[test]
fn a_failed_answer_is_explained_and_recorded_too() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let h = emu.runtime.block_on(Hostile::start(
        Some(emu.base_url()),
        std::sync::Arc::new(|_: &str, _| Act::status(502, "<html>Bad Gateway</html>")),
    ));
    let p = project(&h.base_url());
    let dir = p.path().join("answers");
    let (run, doc) = doctor_json(&p, &["--record", dir.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 1);
    assert_outcome(&doc, &["api"], &["attribute_names", "other_slots"]);
    assert!(finding(&doc, "api").contains("HTTP 502"), "{doc:#}");
    assert!(fix(&doc, "api").contains("app.region"), "{doc:#}");
    let files = tree(&dir);
    let text = String::from_utf8_lossy(files.values().next().unwrap()).into_owned();
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
    assert!(text.ends_with("<html>Bad Gateway</html>"), "{text}");
    // The hostile server sends no Date header: the clocks cannot be compared.
    assert_eq!(status(&doc, "clock"), "info", "{doc:#}");
    assert_eq!(h.commands(), ["im_get_attr_name"]);
}

#[test]
fn record_on_the_emulator_saves_the_answer_with_its_headers() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu.base_url());
    let dir = p.path().join("rec");
    let (run, _) = doctor_json(&p, &["--record", dir.to_str().unwrap()], &[]);
    run.expect(0);
    let files = tree(&dir);
    let names: Vec<String> = files
        .keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["01-im_get_attr_name.http"]);
    let text = String::from_utf8_lossy(files.values().next().unwrap()).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.to_lowercase().contains("\r\ndate: "), "{text}");
    assert!(text.ends_with(r#""AttrNames":{}}"#), "{text}");
    assert!(!text.contains(KEY) && !text.contains("usersig"), "{text}");
}

#[test]
fn json_is_one_document_of_checks_and_ok() {
    let p = project("embedded");
    let (run, doc) = doctor_json(&p, &[], &[]);
    assert_eq!(run.stdout().trim_end().lines().count(), 1);
    let mut top: Vec<&String> = doc.as_object().unwrap().keys().collect();
    top.sort();
    assert_eq!(top, ["checks", "ok"]);
    for c in doc["checks"].as_array().unwrap() {
        let mut keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["finding", "fix", "name", "status"], "{c}");
        assert!(
            ["pass", "fail", "skip", "info"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
    }
    // The CI context is what history would record.
    let (_, doc) = doctor_json(
        &p,
        &[],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_SHA", "0123abc"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "org/app"),
            ("GITHUB_RUN_ID", "99"),
        ],
    );
    let ci = finding(&doc, "ci");
    assert!(ci.starts_with("GitHub Actions"), "{ci}");
    assert!(ci.contains("octocat") && ci.contains("0123abc"), "{ci}");
    assert!(
        ci.contains("https://github.com/org/app/actions/runs/99"),
        "{ci}"
    );
}
