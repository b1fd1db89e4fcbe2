//! The PostgreSQL store against a real server (127.0.0.1:5432, role `root`, trust auth): each
//! test makes its own database and drops it. Without a server the tests print "skipped" —
//! except under `CI=true`, where they fail.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::model::Account;
use crate::store::interface::{Opening, State};
use crate::store::Record;

const ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=root dbname=test sslmode=disable";

fn admin(sql: &str) -> std::result::Result<(), String> {
    let rt = runtime().map_err(|e| e.to_string())?;
    let sql = sql.to_owned();
    block(rt, async move {
        let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        client.batch_execute(&sql).await.map_err(|e| e.to_string())
    })
}

/// A database of its own, dropped at the end.
struct TestDb(String);

impl TestDb {
    fn create() -> Option<TestDb> {
        let name = format!("timattr_t_{:016x}", rand::random::<u64>());
        match admin(&format!("CREATE DATABASE {name}")) {
            Ok(()) => Some(TestDb(name)),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL not reachable at 127.0.0.1:5432 (CI=true): {e}")
            }
            Err(e) => {
                eprintln!("skipped: PostgreSQL not reachable ({e})");
                None
            }
        }
    }

    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::new(format!(
            "postgres://root@127.0.0.1:5432/{}?sslmode=disable",
            self.0
        ))
    }

    fn target(&self, name: &str) -> Target {
        Target::parse(&self.url(), name).unwrap()
    }

    fn sql(&self, sql: &str) {
        let rt = runtime().unwrap();
        let (url, sql) = (
            format!("host=127.0.0.1 user=root dbname={} sslmode=disable", self.0),
            sql.to_owned(),
        );
        block(rt, async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        });
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

fn writer(command: &str, timeout: Option<Duration>) -> WriterInfo {
    WriterInfo {
        command: command.into(),
        lock_timeout: timeout,
    }
}

fn names() -> Names {
    Names::new(&["sex".into(), "city".into()])
}

fn attrs(p: &[(u8, &str)]) -> Attrs {
    p.iter().map(|(n, v)| (*n, (*v).into())).collect()
}

/// An export's account lines (all but the header), as written.
fn account_lines(export: &[u8]) -> Vec<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(export), &mut text).unwrap();
    text.lines().skip(1).map(str::to_owned).collect()
}

#[test]
fn records_groups_reads_snapshots_and_round_trips_through_sled() {
    let Some(db) = TestDb::create() else { return };
    assert!(PgStore::open_existing(db.target("p")).unwrap().is_none());
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    let (a, b) = (attrs(&[(0, "m"), (1, "深\"圳\\\n")]), attrs(&[(1, "x")]));
    let first = Record {
        set: vec![("u1", &a), ("u2", &a), ("u3", &b)],
        removed: vec![],
        ..Default::default()
    };
    let second = Record {
        set: vec![],
        removed: vec![("u1", vec![0]), ("u2", vec![0, 1])],
        ..Default::default()
    };
    store.record(&[first, second], &names(), 1).unwrap();
    // A reader sees one snapshot: a later write does not show up in it.
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    store
        .record(
            &[Record {
                set: vec![("u9", &b)],
                removed: vec![],
                ..Default::default()
            }],
            &names(),
            1,
        )
        .unwrap();
    let mut n = names();
    assert_eq!(
        reader.load_last_applied(&mut n).unwrap(),
        vec![
            ("u1".into(), attrs(&[(1, "深\"圳\\\n")]).into()),
            ("u3".into(), b.clone().into())
        ]
    );
    assert_eq!(reader.meta().serial, 1);
    drop(reader);
    // The planner's split: u1 unchanged (text fast path), u3 changed, u9 only in the store.
    let desired = vec![
        ("u0".into(), b.clone().into()),
        ("u1".into(), attrs(&[(1, "深\"圳\\\n")]).into()),
        ("u3".into(), a.clone().into()),
    ];
    let split = store.split(desired, &mut n, |_| true).unwrap();
    assert_eq!((split.unchanged, split.managed), (1, 3));
    let changed: Vec<&str> = split.changed.iter().map(|(a, _)| &**a).collect();
    assert_eq!(changed, ["u0", "u3"]);
    let last: Vec<&str> = split.last.iter().map(|(a, _)| &**a).collect();
    assert_eq!(last, ["u3", "u9"]);
    // Export, restore into sled, export again: the same accounts; and back into PostgreSQL.
    let mut backup = Vec::new();
    assert_eq!(store.export(&mut backup).unwrap(), 3);
    let dir = tempfile::tempdir().unwrap();
    let mut sled = crate::store::Store::open(dir.path(), 1, "h").unwrap();
    let read = |b: &[u8]| crate::store::read_export(b);
    sled.restore_export(&read(&backup).unwrap()).unwrap();
    let mut n2 = names();
    assert_eq!(
        sled.load_last_applied(&mut n2).unwrap(),
        store.load_last_applied(&mut n).unwrap()
    );
    let mut back = Vec::new();
    sled.export(&mut back).unwrap();
    // Both write through the core's `export::Writer`: the account lines are the same bytes.
    assert_eq!(account_lines(&backup), account_lines(&back));
    let mut other = PgStore::open(db.target("q"), 1, "h", writer("state restore", None)).unwrap();
    let header = other.restore_export(&read(&back).unwrap()).unwrap();
    assert_eq!(header.lineage, store.meta().lineage);
    assert_eq!(
        other.load_last_applied(&mut n2).unwrap(),
        store.load_last_applied(&mut n).unwrap()
    );
    assert_eq!(
        other.history().unwrap().last().unwrap().operation,
        "restore"
    );
    // Another lineage is refused without --force.
    let mut foreign = read(&back).unwrap();
    foreign.header.lineage = "other".into();
    // (The guard is the core's, which `State::restore_export` runs first.)
    let err = crate::store::export::guard(&other, &foreign.header, false).unwrap_err();
    assert!(err.to_string().contains("lineage"), "{err}");
    assert_eq!(other.account_count().unwrap(), 3);
}

#[test]
fn jsonb_text_matches_the_server() {
    let Some(db) = TestDb::create() else { return };
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    let mut names = Names::new(&["a".into(), "bb".into(), "B".into(), "tier".into()]);
    let values = [
        "plain",
        "q\"uote",
        "back\\slash",
        "tab\tnl\ncr\r\u{1}\u{1f}",
        "ünï😀",
        "/<>&'",
    ];
    let all: Vec<Attrs> = values
        .iter()
        .map(|v| attrs(&[(0, v), (1, "x"), (2, "y"), (3, v)]))
        .collect();
    let accounts: Vec<String> = (0..all.len()).map(|i| format!("u{i}")).collect();
    let record = Record {
        set: accounts
            .iter()
            .map(|a| a.as_str())
            .zip(all.iter())
            .collect(),
        ..Default::default()
    };
    store.record(&[record], &names, 1).unwrap();
    let mut seen = 0;
    store
        .rows(|row| {
            let i: usize = row.account[1..].parse().unwrap();
            let mut mine = String::new();
            read::jsonb_text(&mut mine, &all[i], &names);
            assert_eq!(mine, row.attrs);
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, values.len());
    let desired = accounts
        .iter()
        .map(|a| a.as_str().into())
        .zip(all.iter().cloned().map(Into::into))
        .collect();
    assert_eq!(
        store
            .split(desired, &mut names, |_| true)
            .unwrap()
            .unchanged,
        values.len()
    );
}

#[test]
fn a_second_writer_is_refused_naming_the_holder_or_waits() {
    let Some(db) = TestDb::create() else { return };
    let first = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    let err = PgStore::open(db.target("p"), 1, "h", writer("import", None)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgError::Locked { .. }), "{text}");
    assert!(
        text.contains("`timattr apply`") && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    // Another project in the same database has its own lock; readers take none.
    PgStore::open(db.target("other"), 1, "h", writer("apply", None)).unwrap();
    assert!(PgStore::open_existing(db.target("p")).unwrap().is_some());
    // A waiting writer gets the lock once the holder is gone.
    let waiter = std::thread::spawn({
        let t = db.target("p");
        move || PgStore::open(t, 1, "h", writer("apply", Some(Duration::from_secs(20))))
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(first);
    waiter.join().unwrap().unwrap();
}

fn backend_pids(db: &TestDb) -> String {
    format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.0
    )
}

#[test]
fn a_lost_connection_is_re_established_unless_another_writer_came_between() {
    let Some(db) = TestDb::create() else { return };
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    let a = attrs(&[(0, "m")]);
    let rec = |acc: &'static str| Record {
        set: vec![(acc, &a)],
        removed: vec![],
        ..Default::default()
    };
    store.record(&[rec("u1")], &names(), 1).unwrap();
    db.sql(&backend_pids(&db));
    store.record(&[rec("u2")], &names(), 1).unwrap();
    assert_eq!(store.account_count().unwrap(), 2);
    // Cut again, and let another writer take the lock and write meanwhile.
    db.sql(&backend_pids(&db));
    // (the terminated backend lets go of the lock a moment later)
    let soon = Some(Duration::from_secs(5));
    let mut other = PgStore::open(db.target("p"), 1, "h", writer("apply", soon)).unwrap();
    other.record(&[rec("u3")], &names(), 2).unwrap();
    drop(other);
    let err = store.record(&[rec("u4")], &names(), 1).unwrap_err();
    assert!(matches!(err, PgError::Conflict { .. }), "{err}");
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    assert_eq!(reader.account_count().unwrap(), 3);
}

/// A TCP proxy to the test server that, once `cut` is set, swallows the next thing a client
/// sends and closes that client's socket: a connection lost with a statement under way.
fn cutting_proxy() -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write as _};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let armed = cut.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect("127.0.0.1:5432") else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_in, mut c_out) = (server, client);
            let armed = armed.clone();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = c_in.read(&mut buf) {
                    if armed.swap(false, Ordering::SeqCst) {
                        let _ = c_in.shutdown(Shutdown::Both);
                        let _ = s_out.shutdown(Shutdown::Both);
                        return;
                    }
                    if s_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, cut)
}

/// The connection is lost with a record under way (sent, never answered): the client must
/// see it gone and record again after reconnecting, never wait forever for an answer from a
/// connection nobody reads any more. A hang fails the test after 30 s instead of hanging the
/// suite.
#[test]
fn a_connection_lost_under_a_record_reconnects_instead_of_hanging() {
    let Some(db) = TestDb::create() else { return };
    let (port, cut) = cutting_proxy();
    let url = DatabaseUrl::new(format!(
        "postgres://root@127.0.0.1:{port}/{}?sslmode=disable",
        db.0
    ));
    let target = Target::parse(&url, "p").unwrap();
    let mut store = PgStore::open(target, 1, "h", writer("apply", None)).unwrap();
    for (round, account) in ["u1", "u2", "u3"].into_iter().enumerate() {
        cut.store(round > 0, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let a = attrs(&[(0, "m")]);
            let recorded = store.record(
                &[Record {
                    set: vec![(account, &a)],
                    ..Default::default()
                }],
                &names(),
                1,
            );
            let _ = tx.send(recorded.map_err(|e| e.to_string()));
            store
        });
        let answer = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("round {round}: the record hung on a lost connection"));
        assert_eq!(answer, Ok(()), "round {round}");
        store = worker.join().unwrap();
    }
    assert_eq!(store.account_count().unwrap(), 3);
}

#[test]
fn tables_are_migrated_and_a_newer_schema_is_refused() {
    let Some(db) = TestDb::create() else { return };
    // A database as the first schema left it.
    db.sql(MIGRATIONS[0]);
    db.sql("UPDATE timattr_schema SET version = 1;
            INSERT INTO timattr_projects (name, format_version, sdkappid, endpoint_host, lineage, serial)
            VALUES ('p', 2, 1, 'h', 'abc', 4);
            INSERT INTO timattr_accounts VALUES ('p', 'u1', '{\"sex\": \"m\"}');");
    // Readers read it as it is; a writer upgrades it and keeps the data.
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    assert_eq!(reader.meta().serial, 4);
    drop(reader);
    let store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    assert_eq!(
        (
            store.meta().lineage.as_str(),
            store.account_count().unwrap()
        ),
        ("abc", 1)
    );
    drop(store);
    db.sql("UPDATE timattr_schema SET version = 99");
    for err in [
        PgStore::open_existing(db.target("p")).unwrap_err(),
        PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap_err(),
    ] {
        assert!(
            matches!(err, PgError::NewerSchema { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade timattr"), "{err}");
    }
}

#[test]
fn the_interface_refuses_another_app_and_names_the_database() {
    let Some(db) = TestDb::create() else { return };
    let location = crate::settings::StateLocation::Postgres {
        url: db.url(),
        name: None,
    };
    let how = Opening {
        writer: Some("apply".into()),
        lock_timeout: None,
    };
    let mut state = State::open(&location, 7, "h", &how).unwrap();
    assert!(
        state.describe().contains("\"app-7\""),
        "{}",
        state.describe()
    );
    let slots: BTreeMap<u8, String> = [(0, "sex".to_owned())].into();
    state.record_slots(&slots, 1).unwrap();
    drop(state);
    let state = State::open_existing(&location, 7, "h", &Opening::default())
        .unwrap()
        .unwrap();
    assert_eq!(state.meta().slots, slots);
    let err = State::open_existing(&location, 7, "other-host", &Opening::default()).unwrap_err();
    assert!(
        err.to_string().contains("belongs to sdkappid 7 at h"),
        "{err}"
    );
    let unreachable = crate::settings::StateLocation::Postgres {
        url: DatabaseUrl::new("postgres://root@127.0.0.1:1/none?sslmode=disable"),
        name: None,
    };
    let started = std::time::Instant::now();
    let err = State::open_existing(&unreachable, 7, "h", &Opening::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot reach PostgreSQL at 127.0.0.1:1"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn an_empty_project_is_bound_to_no_app() {
    let Some(db) = TestDb::create() else { return };
    let location = crate::settings::StateLocation::Postgres {
        url: db.url(),
        name: Some("p".into()),
    };
    // The dropped store's connection (and lock) goes away in the background: wait for it.
    let how = Opening {
        writer: Some("apply".into()),
        lock_timeout: Some(Duration::from_secs(10)),
    };
    // A first apply against the wrong endpoint that recorded nothing.
    drop(State::open(&location, 1, "localhost", &how).unwrap());
    State::open_existing(&location, 2, "example.com", &Opening::default())
        .unwrap()
        .unwrap();
    let mut state = State::open(&location, 2, "example.com", &how).unwrap();
    assert_eq!(
        (state.meta().sdkappid, state.meta().endpoint_host.as_str()),
        (2, "example.com")
    );
    state
        .record_slots(&[(0, "sex".to_owned())].into(), 1)
        .unwrap();
    drop(state);
    // Rebound in the project's row, not only in this opening's metadata.
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    assert_eq!(reader.meta().sdkappid, 2);
    drop(reader);
    // Now it holds something of app 2: app 1 is refused.
    let err = State::open(&location, 1, "localhost", &how).unwrap_err();
    assert!(
        err.to_string()
            .contains("belongs to sdkappid 2 at example.com"),
        "{err}"
    );
}

/// Opens a writer of `target` and says whether its session is encrypted. The previous open's
/// session ends a moment after its store is dropped (see
/// `dropping_a_writer_releases_its_lock_at_once`), so it waits for that lock.
fn encrypted_session(target: Target) -> std::result::Result<bool, String> {
    let wait = Some(Duration::from_secs(10));
    let store = PgStore::open(target, 1, "h", writer("apply", wait)).map_err(|e| e.to_string())?;
    let client = store.client.clone();
    Ok(block(store.rt(), async move {
        client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }))
}

/// The server of this machine has TLS on with Debian's self-signed "snakeoil" certificate.
#[test]
fn sslmodes_encrypt_and_check_as_libpq_does() {
    let Some(db) = TestDb::create() else { return };
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if !std::path::Path::new(snakeoil).exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "no {snakeoil} under CI=true: the server's TLS setup is not the expected one"
        );
        eprintln!("skipped: no {snakeoil} (the server's TLS setup is not the expected one)");
        return;
    }
    let url =
        |query: &str| DatabaseUrl::new(format!("postgres://root@127.0.0.1:5432/{}?{query}", db.0));
    let encrypted = |query: &str| -> std::result::Result<bool, String> {
        let target = Target::parse(&url(query), "p").map_err(|e| e.to_string())?;
        encrypted_session(target)
    };
    assert_eq!(encrypted("sslmode=disable"), Ok(false));
    assert_eq!(encrypted("sslmode=require"), Ok(true));
    assert_eq!(
        encrypted(""),
        Ok(true),
        "prefer encrypts when the server offers TLS"
    );
    // A self-signed certificate is no trusted root.
    let err = encrypted("sslmode=verify-full").unwrap_err();
    assert!(
        err.contains("TLS with PostgreSQL at 127.0.0.1:5432 failed"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // With it as sslrootcert, verify-ca trusts the chain; verify-full also wants the name.
    assert_eq!(
        encrypted(&format!("sslmode=verify-ca&sslrootcert={snakeoil}")),
        Ok(true)
    );
    assert!(encrypted(&format!("sslmode=verify-full&sslrootcert={snakeoil}")).is_err());
}

fn tags(t: &[&str]) -> crate::model::Tags {
    t.iter().copied().collect()
}

fn managed(a: &[(u8, &str)], t: &[&str]) -> Managed {
    Managed::new(attrs(a), tags(t))
}

/// The plan of `desired` against a store, made as `plan` makes it (split, then diff).
fn plan_of(state: &State, desired: &[(Account, Managed)]) -> crate::plan::Plan {
    let mut names = names();
    let split = state.split(desired.to_vec(), &mut names, |_| true).unwrap();
    let d = crate::model::Desired {
        names: names.clone(),
        accounts: split.changed,
    };
    let mut plan = crate::plan::diff(d, split.last, names, &state.meta().slots).unwrap();
    plan.unchanged += split.unchanged;
    plan.managed = split.managed;
    plan
}

#[test]
fn tags_are_recorded_merged_removed_and_split() {
    let Some(db) = TestDb::create() else { return };
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    let a = attrs(&[(0, "m")]);
    let list = |t: &[&str]| -> Vec<crate::model::Tag> { t.iter().map(|t| (*t).into()).collect() };
    let (vip_beta, beta) = (list(&["beta", "vip"]), list(&["beta"]));
    let (alpha, x) = (list(&["alpha"]), list(&["x"]));
    // One group: u1 gets attributes and tags (vip twice), u2 only a tag, u3 a tag it then
    // loses in a later batch of the same group.
    let first = Record {
        set: vec![("u1", &a)],
        tags_added: vec![("u1", &vip_beta[..]), ("u2", &x[..]), ("u3", &x[..])],
        ..Default::default()
    };
    let second = Record {
        tags_added: vec![("u1", &vip_beta[1..])],
        tags_removed: vec![("u3", &x[..])],
        ..Default::default()
    };
    store.record(&[first, second], &names(), 1).unwrap();
    let mut n = names();
    assert_eq!(
        store.load_last_applied(&mut n).unwrap(),
        vec![
            ("u1".into(), managed(&[(0, "m")], &["beta", "vip"])),
            ("u2".into(), managed(&[], &["x"])),
        ]
    );
    // Tags change without attributes; an account left with nothing leaves the table.
    let third = Record {
        tags_added: vec![("u1", &alpha[..])],
        tags_removed: vec![("u1", &beta[..]), ("u2", &x[..])],
        ..Default::default()
    };
    store.record(&[third], &names(), 1).unwrap();
    assert_eq!(
        store.account("u1", &mut n).unwrap(),
        Some(managed(&[(0, "m")], &["alpha", "vip"]))
    );
    assert_eq!(store.account("u2", &mut n).unwrap(), None);
    assert_eq!(store.account_count().unwrap(), 1);
    db.sql("INSERT INTO timattr_accounts VALUES ('p', 'u5', '{}', '{t}')");
    // Split: equal tags and attributes are unchanged (fast path); other tags are not, and
    // their last-applied tags come along.
    let desired = vec![
        ("u1".into(), managed(&[(0, "m")], &["alpha", "vip"])),
        ("u5".into(), managed(&[], &["t", "u"])),
    ];
    let split = store.split(desired.clone(), &mut n, |_| true).unwrap();
    assert_eq!((split.unchanged, split.managed), (1, 2));
    assert_eq!(split.last, vec![("u5".into(), managed(&[], &["t"]))]);
    let without_tags = vec![("u1".into(), managed(&[(0, "m")], &[]))];
    let split = store.split(without_tags, &mut n, |_| true).unwrap();
    assert_eq!(split.unchanged, 0);
    assert_eq!(split.last[0].1.tags, tags(&["alpha", "vip"]));
    // A tag with a NUL is refused before anything is sent.
    let nul: Vec<crate::model::Tag> = vec!["a\0b".into()];
    let bad = Record {
        tags_added: vec![("u1", &nul[..])],
        ..Default::default()
    };
    let err = store.record(&[bad], &names(), 1).unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
    assert_eq!(store.account_count().unwrap(), 2);
}

#[test]
fn tags_move_between_sled_and_postgres_with_identical_plans() {
    let Some(db) = TestDb::create() else { return };
    let location = crate::settings::StateLocation::Postgres {
        url: db.url(),
        name: Some("p".into()),
    };
    let how = Opening {
        writer: Some("apply".into()),
        lock_timeout: None,
    };
    let mut pg = State::open(&location, 1, "h", &how).unwrap();
    let (a, b) = (attrs(&[(0, "m"), (1, "深\"圳")]), attrs(&[(1, "x")]));
    let vip: Vec<crate::model::Tag> = vec!["b\"eta".into(), "vip".into(), "ünï😀".into()];
    let record = Record {
        set: vec![("u1", &a), ("u2", &b)],
        tags_added: vec![("u1", &vip[..]), ("u3", &vip[1..2])],
        ..Default::default()
    };
    pg.record(&[record], &names(), pg.next_serial().unwrap())
        .unwrap();
    let mut backup = Vec::new();
    assert_eq!(pg.export(&mut backup).unwrap(), 3);
    let line = flate2::read::GzDecoder::new(&backup[..]);
    let text = std::io::read_to_string(line).unwrap();
    assert!(
        text.contains(r#""tags":["b\"eta","vip","ünï😀"]"#),
        "{text}"
    );
    // PostgreSQL → sled → PostgreSQL (another project): the same state, the same plans.
    let dir = tempfile::tempdir().unwrap();
    let sled_location = crate::settings::StateLocation::Sled(dir.path().to_path_buf());
    let mut sled = State::open(&sled_location, 1, "h", &how).unwrap();
    let read = |b: &[u8]| crate::store::read_export(b);
    sled.restore_export(&read(&backup).unwrap(), false).unwrap();
    let mut back = Vec::new();
    sled.export(&mut back).unwrap();
    let other = crate::settings::StateLocation::Postgres {
        url: db.url(),
        name: Some("q".into()),
    };
    let mut restored = State::open(&other, 1, "h", &how).unwrap();
    restored
        .restore_export(&read(&back).unwrap(), false)
        .unwrap();
    let (mut n1, mut n2) = (names(), names());
    let held = pg.load_last_applied(&mut n1).unwrap();
    assert_eq!(sled.load_last_applied(&mut n2).unwrap(), held);
    assert_eq!(restored.load_last_applied(&mut n2).unwrap(), held);
    assert_eq!(held[2], ("u3".into(), managed(&[], &["vip"])));
    let desired = vec![
        (
            "u1".into(),
            managed(&[(0, "m"), (1, "深\"圳")], &["vip", "new"]),
        ),
        ("u2".into(), managed(&[(1, "x")], &[])),
        ("u4".into(), managed(&[], &["vip"])),
    ];
    let plan = plan_of(&pg, &desired);
    assert_eq!(plan_of(&sled, &desired), plan);
    assert_eq!(plan_of(&restored, &desired), plan);
    assert_eq!((plan.changes.len(), plan.unchanged), (3, 1));
    let summary = plan.summary();
    assert_eq!((summary.tags_added, summary.tags_removed), (2, 3));
}

#[test]
fn a_database_of_the_previous_schema_is_read_then_migrated_in_place() {
    let Some(db) = TestDb::create() else { return };
    // The tables as schema 2 left them: attributes as jsonb, no tags.
    db.sql(MIGRATIONS[0]);
    db.sql(MIGRATIONS[1]);
    db.sql("UPDATE timattr_schema SET version = 2;
            INSERT INTO timattr_projects (name, format_version, sdkappid, endpoint_host, lineage, serial)
            VALUES ('p', 2, 1, 'h', 'abc', 4);
            INSERT INTO timattr_accounts VALUES ('p', 'u1', '{\"sex\": \"m\", \"city\": \"深\\\"圳\\\\\\n\"}');
            INSERT INTO timattr_accounts VALUES ('p', 'u2', '{\"city\": \"x\"}');");
    let before = vec![
        ("u1".into(), managed(&[(0, "m"), (1, "深\"圳\\\n")], &[])),
        ("u2".into(), managed(&[(1, "x")], &[])),
    ];
    // A reader reads it as it is: no tags, and the fast path still sees u1 unchanged.
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    let mut n = names();
    assert_eq!(reader.load_last_applied(&mut n).unwrap(), before);
    assert_eq!(
        reader.account("u1", &mut n).unwrap(),
        Some(before[0].1.clone())
    );
    let split = reader.split(before.clone(), &mut n, |_| true).unwrap();
    assert_eq!((split.unchanged, split.changed.len()), (2, 0));
    drop(reader);
    // A writer migrates in place: same accounts, same serial and lineage, now with tags.
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    assert_eq!(
        (store.meta().lineage.as_str(), store.meta().serial),
        ("abc", 4)
    );
    assert_eq!(db_version(&db), SCHEMA_VERSION);
    assert_eq!(store.load_last_applied(&mut n).unwrap(), before);
    let split = store.split(before.clone(), &mut n, |_| true).unwrap();
    assert_eq!(
        split.unchanged, 2,
        "the fast comparison holds after the migration"
    );
    let vip: Vec<crate::model::Tag> = vec!["vip".into()];
    let record = Record {
        tags_added: vec![("u2", &vip[..])],
        ..Default::default()
    };
    store.record(&[record], &names(), 5).unwrap();
    drop(store);
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    assert_eq!(
        reader.account("u2", &mut n).unwrap(),
        Some(managed(&[(1, "x")], &["vip"]))
    );
    // The SQL stays readable: the attributes parse as jsonb.
    db.sql("DO $$ BEGIN IF (SELECT attrs::jsonb ->> 'sex' FROM timattr_accounts WHERE account = 'u1') <> 'm' THEN RAISE 'unreadable'; END IF; END $$");
}

fn db_version(db: &TestDb) -> i32 {
    let rt = runtime().unwrap();
    let url = format!("host=127.0.0.1 user=root dbname={} sslmode=disable", db.0);
    block(rt, async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query_one("SELECT version FROM timattr_schema", &[])
            .await
            .unwrap()
            .get(0)
    })
}

#[test]
fn every_write_makes_a_new_commit_id_that_readers_see_and_a_restore_never_reuses() {
    let Some(db) = TestDb::create() else { return };
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    let mut seen = vec![store.meta().commit_id.clone()];
    let a = attrs(&[(0, "m")]);
    let one = |account| Record {
        set: vec![(account, &a)],
        ..Default::default()
    };
    store.record(&[one("u1")], &names(), 1).unwrap();
    seen.push(store.meta().commit_id.clone());
    let mut backup = Vec::new();
    store.export(&mut backup).unwrap();
    store
        .record_slot_types(&BTreeMap::new(), &BTreeMap::new(), 2)
        .unwrap();
    seen.push(store.meta().commit_id.clone());
    let pending = store.record_ahead(&[one("u2")], &names(), 2, ()).unwrap();
    store.settle(pending).unwrap();
    seen.push(store.meta().commit_id.clone());
    // A reader sees the writer's commit id.
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    assert_eq!(reader.meta().commit_id, *seen.last().unwrap());
    // Restoring the export (forced back to serial 1) makes a new id, not the exported one.
    let export = crate::store::read_export(&backup[..]).unwrap();
    assert_eq!(export.header.commit_id.as_deref(), Some(seen[1].as_str()));
    store.restore_export(&export).unwrap();
    assert_eq!(store.meta().serial, 1);
    seen.push(store.meta().commit_id.clone());
    store.restore_export(&export).unwrap();
    seen.push(store.meta().commit_id.clone());
    drop((store, reader));
    let reopened = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    assert_eq!(reopened.meta().commit_id, *seen.last().unwrap());
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "{seen:?}");
    assert!(seen.iter().all(|c| c.len() == 32), "{seen:?}");
}

/// The run's last group goes ahead with the final entry in one statement: once durable, the
/// run has ended and its entry says how.
#[test]
fn the_last_record_carries_the_runs_final_entry() {
    let Some(db) = TestDb::create() else { return };
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    store.begin(crate::store::HistoryEntry::now("apply", None));
    let a = attrs(&[(0, "m")]);
    let one = |account| Record {
        set: vec![(account, &a)],
        ..Default::default()
    };
    let first = store.record_ahead(&[one("u1")], &names(), 1, ()).unwrap();
    let last = store
        .record_last(&[one("u2")], &names(), 1, |e| e.status = "complete".into())
        .unwrap();
    store.settle(first).unwrap();
    assert!(
        store.run_mut().is_some(),
        "the run ends with its last record"
    );
    store.settle(last).unwrap();
    assert!(store.run_mut().is_none());
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    let history = reader.history().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0].status.as_str(), history[0].accounts_set),
        ("complete", 2)
    );
    assert_eq!(
        history[0].commit_id.as_ref(),
        Some(&reader.meta().commit_id)
    );
    assert_eq!(reader.account_count().unwrap(), 2);
}

/// Records pipelined behind one the database refused commit nothing: the final entry never
/// claims what failed, and the run is still under way (its entry saying `interrupted`).
#[test]
fn records_sent_behind_a_failed_one_commit_nothing() {
    let Some(db) = TestDb::create() else { return };
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    store.begin(crate::store::HistoryEntry::now("apply", None));
    // The database refuses u2's record (the statement fails, the connection stays).
    db.sql(
        "CREATE FUNCTION refuse_u2() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'no u2'; END $$;
         CREATE TRIGGER refuse_u2 BEFORE INSERT ON timattr_accounts
           FOR EACH ROW WHEN (NEW.account = 'u2') EXECUTE FUNCTION refuse_u2()",
    );
    let a = attrs(&[(0, "m")]);
    let one = |account| Record {
        set: vec![(account, &a)],
        ..Default::default()
    };
    let first = store.record_ahead(&[one("u1")], &names(), 1, ()).unwrap();
    let failing = store.record_ahead(&[one("u2")], &names(), 1, ()).unwrap();
    let behind = store.record_ahead(&[one("u3")], &names(), 1, ()).unwrap();
    let last = store
        .record_last(&[one("u4")], &names(), 1, |e| e.status = "complete".into())
        .unwrap();
    store.settle(first).unwrap();
    assert!(store.settle(failing).is_err());
    assert!(store.settle(behind).is_err());
    assert!(store.settle(last).is_err());
    assert!(store.run_mut().is_some());
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    assert_eq!(reader.account_count().unwrap(), 1);
    let history = reader.history().unwrap();
    assert_eq!(
        (history[0].status.as_str(), history[0].accounts_set),
        ("interrupted", 1)
    );
}

#[test]
fn every_serial_has_its_history_entry_written_with_the_commit_and_moves_with_exports() {
    let Some(db) = TestDb::create() else { return };
    let mut store = PgStore::open(db.target("p"), 1, "h", writer("apply", None)).unwrap();
    let a: crate::model::Attrs = [(0u8, "m".into())].into_iter().collect();
    let record = |account| Record {
        set: vec![(account, &a)],
        ..Default::default()
    };
    let mut entry = crate::store::HistoryEntry::now("apply", None);
    entry.targets = vec!["u*".into()];
    entry.plan_digest = Some("sha256:ab".into());
    store.begin(entry);
    store
        .record_slot_types(&[(0, "sex".to_owned())].into(), &BTreeMap::new(), 1)
        .unwrap();
    store.record(&[record("u1")], &names(), 1).unwrap();
    let pending = store
        .record_ahead(&[record("u2")], &names(), 1, ())
        .unwrap();
    store.settle(pending).unwrap();
    // Before the run ends, a reader already sees its entry, with what was committed.
    let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
    let seen = reader.history().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].status.as_str(), seen[0].accounts_set),
        ("interrupted", 2)
    );
    assert_eq!(seen[0].commit_id.as_ref(), Some(&store.meta().commit_id));
    drop(reader);
    store.finish(|e| e.status = "complete".into()).unwrap();
    let history = store.history().unwrap();
    assert_eq!(history.len(), 1);
    let applied = history[0].clone();
    assert_eq!(
        (
            applied.status.as_str(),
            applied.serial,
            applied.targets.len()
        ),
        ("complete", 1, 1)
    );
    assert_eq!(applied.plan_digest.as_deref(), Some("sha256:ab"));
    // PostgreSQL → sled → PostgreSQL: the entry survives, each restore adds its own.
    let mut backup = Vec::new();
    store.export(&mut backup).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sled = crate::store::Store::open(dir.path(), 1, "h").unwrap();
    let read = |b: &[u8]| crate::store::read_export(b).unwrap();
    sled.restore_export(&read(&backup)).unwrap();
    let mut back = Vec::new();
    sled.export(&mut back).unwrap();
    let mut other = PgStore::open(db.target("q"), 1, "h", writer("state restore", None)).unwrap();
    other.restore_export(&read(&back)).unwrap();
    let moved = other.history().unwrap();
    let ops: Vec<&str> = moved.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["apply", "restore", "restore"]);
    assert_eq!(moved[0], applied);
}

/// TLS against a throwaway cluster: Unix-only (initdb run as another user, file modes).
#[cfg(unix)]
mod tls_cluster {
    use super::*;

    /// A throwaway PostgreSQL cluster with `ssl = on` and a certificate for `localhost` signed by
    /// a CA made here, on a free 127.0.0.1 port; stopped and removed on drop.
    struct TlsCluster {
        dir: tempfile::TempDir,
        port: u16,
        ca: String,
        run_as: Option<&'static str>,
    }

    impl TlsCluster {
        /// `None` (with a message) where no cluster can be made: no PostgreSQL binaries, or
        /// initdb refusing to run.
        fn start() -> Option<TlsCluster> {
            let bin = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin"))
                .find(|b| b.join("initdb").exists());
            let Some(bin) = bin else {
                return skip("no /usr/lib/postgresql/*/bin/initdb");
            };
            // initdb refuses root: run the cluster as `postgres` then.
            let root = std::fs::metadata("/proc/self").map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.uid() == 0
            });
            let run_as = root.unwrap_or(false).then_some("postgres");
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let (ca, server) = certificates();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut cluster = TlsCluster {
                dir,
                port,
                ca: ca.clone(),
                run_as,
            };
            if let Some(user) = run_as {
                chown(cluster.dir.path(), user);
            }
            let init = cluster.command(
                &bin.join("initdb"),
                &["-D", &data.to_string_lossy(), "-A", "trust", "-U", "root"],
            );
            if !init {
                return skip("initdb failed");
            }
            std::fs::write(data.join("server.crt"), &server.0).unwrap();
            std::fs::write(data.join("server.key"), &server.1).unwrap();
            let conf = format!(
                "ssl = on\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
                cluster.dir.path().display()
            );
            let mut text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
            text.push_str(&conf);
            std::fs::write(data.join("postgresql.conf"), text).unwrap();
            if let Some(user) = run_as {
                chown(cluster.dir.path(), user);
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            let log = cluster.dir.path().join("log");
            let started = cluster.command(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "start",
                ],
            );
            if !started {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return skip(&format!("the cluster did not start: {log}"));
            }
            cluster.ca = ca;
            Some(cluster)
        }

        fn command(&self, program: &std::path::Path, args: &[&str]) -> bool {
            let mut c = match self.run_as {
                Some(user) => {
                    let mut c = std::process::Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(program);
                    c
                }
                None => std::process::Command::new(program),
            };
            c.args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        }

        fn write(&self, name: &str, pem: &str) -> String {
            let path = self.dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path.to_string_lossy().into_owned()
        }
    }

    impl Drop for TlsCluster {
        fn drop(&mut self) {
            let bin = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin/pg_ctl"))
                .find(|b| b.exists());
            if let Some(pg_ctl) = bin {
                let data = self.dir.path().join("data");
                self.command(
                    &pg_ctl,
                    &["-D", &data.to_string_lossy(), "-m", "immediate", "stop"],
                );
            }
        }
    }

    fn skip<T>(why: &str) -> Option<T> {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no throwaway TLS cluster under CI=true: {why}"
        );
        eprintln!("skipped: no throwaway TLS cluster ({why})");
        None
    }

    fn chown(dir: &std::path::Path, user: &str) {
        let _ = std::process::Command::new("chown")
            .args(["-R", user])
            .arg(dir)
            .status();
    }

    /// A CA (PEM) and a server certificate for `localhost` it signed (certificate, key: PEM).
    fn certificates() -> (String, (String, String)) {
        let (ca, ca_key) = a_ca("timattr test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let ca_params = ca_params("timattr test CA");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let server = params.signed_by(&key, &issuer).unwrap();
        (ca.pem(), (server.pem(), key.serialize_pem()))
    }

    fn ca_params(name: &str) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params
    }

    fn a_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = ca_params(name).self_signed(&key).unwrap();
        (cert, key)
    }

    #[test]
    fn tls_modes_against_a_cluster_with_a_test_ca_pass_and_fail_as_libpq_does() {
        let Some(cluster) = TlsCluster::start() else {
            return;
        };
        let right = cluster.write("ca.pem", &cluster.ca);
        let wrong = cluster.write("other-ca.pem", &a_ca("another CA").0.pem());
        let open = |host: &str, query: &str| -> std::result::Result<bool, String> {
            let url = DatabaseUrl::new(format!(
                "postgres://root@{host}:{}/postgres?{query}",
                cluster.port
            ));
            let target = Target::parse(&url, "p").map_err(|e| e.to_string())?;
            super::encrypted_session(target)
        };
        assert_eq!(open("localhost", "sslmode=require"), Ok(true));
        assert_eq!(open("localhost", "sslmode=disable"), Ok(false));
        assert_eq!(
            open(
                "localhost",
                &format!("sslmode=verify-ca&sslrootcert={right}")
            ),
            Ok(true)
        );
        assert_eq!(
            open(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={right}")
            ),
            Ok(true)
        );
        // verify-ca does not check the name; verify-full does, and says so.
        assert_eq!(
            open(
                "127.0.0.1",
                &format!("sslmode=verify-ca&sslrootcert={right}")
            ),
            Ok(true)
        );
        let err = open(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={right}"),
        )
        .unwrap_err();
        assert!(
            err.contains("not valid for the host name \"127.0.0.1\""),
            "{err}"
        );
        assert!(err.contains("localhost"), "{err}");
        assert!(!err.contains("cannot reach"), "{err}");
        // The wrong CA fails both checking modes, naming the file; require does not check.
        for mode in ["verify-ca", "verify-full"] {
            let err =
                open("localhost", &format!("sslmode={mode}&sslrootcert={wrong}")).unwrap_err();
            assert!(
                err.contains("not signed by the system's trusted roots nor by the CA in"),
                "{err}"
            );
            assert!(!err.contains("cannot reach"), "{err}");
        }
        let err = open("localhost", "sslmode=verify-full").unwrap_err();
        assert!(
            err.contains("give the CA that signed it with sslrootcert=FILE"),
            "{err}"
        );
    }
}

#[test]
fn a_missing_database_says_to_create_it() {
    if TestDb::create().is_none() {
        return;
    }
    let url = DatabaseUrl::new("postgres://root@127.0.0.1:5432/timattr_no_such_db?sslmode=disable");
    let err = PgStore::open_existing(Target::parse(&url, "p").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no database \"timattr_no_such_db\": create it (CREATE DATABASE"),
        "{err}"
    );
    assert!(!err.contains("check the host and port"), "{err}");
}

/// The timattr tables of `db` that exist, by name.
fn tables(db: &TestDb) -> Vec<String> {
    let rt = runtime().unwrap();
    let url = format!("host=127.0.0.1 user=root dbname={} sslmode=disable", db.0);
    block(rt, async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query(
                "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'timattr_%' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    })
}

#[test]
fn a_new_database_gets_every_table_from_its_first_writer_and_nothing_from_others() {
    let Some(db) = TestDb::create() else { return };
    // Readers and writers that create nothing find nothing, and leave nothing behind.
    assert!(PgStore::open_existing(db.target("p")).unwrap().is_none());
    assert!(
        PgStore::open_existing_writer(db.target("p"), writer("import", None))
            .unwrap()
            .is_none()
    );
    assert!(tables(&db).is_empty(), "{:?}", tables(&db));
    // The first writer (reusing the connection the last opening kept) creates every table of
    // the current schema at once, and its project.
    let store = PgStore::open(db.target("p"), 7, "h", writer("apply", None)).unwrap();
    assert_eq!(
        tables(&db),
        [
            "timattr_accounts",
            "timattr_history",
            "timattr_locks",
            "timattr_projects",
            "timattr_schema"
        ]
    );
    assert_eq!(db_version(&db), SCHEMA_VERSION);
    assert_eq!((store.meta().sdkappid, store.meta().serial), (7, 0));
    assert_eq!(store.account_count().unwrap(), 0);
    drop(store);
    // An existing project opens for writing; a missing one does not, tables or not.
    assert!(
        PgStore::open_existing_writer(db.target("p"), writer("import", None))
            .unwrap()
            .is_some()
    );
    assert!(
        PgStore::open_existing_writer(db.target("q"), writer("import", None))
            .unwrap()
            .is_none()
    );
}

#[test]
fn every_older_schema_migrates_in_one_opening_and_readers_never_migrate() {
    for version in 1..SCHEMA_VERSION {
        let Some(db) = TestDb::create() else { return };
        for step in &MIGRATIONS[..version as usize] {
            db.sql(step);
        }
        db.sql(&format!(
            "UPDATE timattr_schema SET version = {version};
             INSERT INTO timattr_projects (name, format_version, sdkappid, endpoint_host, lineage, serial)
             VALUES ('p', 2, 1, 'h', 'abc', 4);
             INSERT INTO timattr_accounts (project, account, attrs) VALUES ('p', 'u1', '{{\"sex\": \"m\"}}');"
        ));
        // A reader reads the old tables as they are and changes nothing.
        let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
        assert_eq!(
            (reader.meta().serial, reader.meta().commit_id.as_str()),
            (4, "")
        );
        let mut n = names();
        assert_eq!(
            reader.load_last_applied(&mut n).unwrap(),
            vec![("u1".into(), managed(&[(0, "m")], &[]))],
            "schema {version}"
        );
        drop(reader);
        assert_eq!(
            db_version(&db),
            version,
            "a reader migrated schema {version}"
        );
        // One writer's opening takes it to the current schema, data kept.
        let mut store = PgStore::open_existing_writer(db.target("p"), writer("import", None))
            .unwrap()
            .unwrap();
        assert_eq!(db_version(&db), SCHEMA_VERSION, "from schema {version}");
        assert_eq!(
            (store.meta().lineage.as_str(), store.meta().serial),
            ("abc", 4)
        );
        assert_eq!(store.load_last_applied(&mut n).unwrap().len(), 1);
        // And it writes at the new schema (tags, commit id, slot types).
        let vip: Vec<crate::model::Tag> = vec!["vip".into()];
        let record = Record {
            tags_added: vec![("u1", &vip[..])],
            ..Default::default()
        };
        store.record(&[record], &names(), 5).unwrap();
        let types = BTreeMap::from([(0, 1)]);
        store
            .record_slot_types(&BTreeMap::from([(0, "sex".into())]), &types, 5)
            .unwrap();
        drop(store);
        let reader = PgStore::open_existing(db.target("p")).unwrap().unwrap();
        assert_eq!(reader.meta().slot_types, types);
        assert_eq!(
            reader.account("u1", &mut n).unwrap(),
            Some(managed(&[(0, "m")], &["vip"]))
        );
    }
}

#[test]
fn concurrent_first_writers_of_a_new_database_create_the_tables_once() {
    let Some(db) = TestDb::create() else { return };
    let writers: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|name| {
            let t = db.target(name);
            std::thread::spawn(move || PgStore::open(t, 1, "h", writer("apply", None)).map(drop))
        })
        .collect();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    assert_eq!(db_version(&db), SCHEMA_VERSION);
}

#[test]
fn dropping_a_writer_releases_its_lock_at_once() {
    let Some(db) = TestDb::create() else { return };
    // No --lock-timeout: the next writer would be refused if the lock outlived the drop; the
    // server ends the closed session a moment after the socket closes, so a few short retries.
    let open = || {
        let mut tries = 0;
        loop {
            match PgStore::open(db.target("p"), 1, "h", writer("apply", None)) {
                Ok(store) => return store,
                Err(PgError::Locked { .. }) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    for _ in 0..5 {
        drop(open());
    }
}
