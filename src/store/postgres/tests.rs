//! The PostgreSQL store against a real server (127.0.0.1:5432, role `root`, trust auth): each
//! test makes its own database and drops it. Without a server the tests print "skipped" —
//! except under `CI=true`, where they fail.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::store::interface::{Opening, State};
use crate::store::Record;

const ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=root dbname=test sslmode=disable";

fn admin(sql: &str) -> std::result::Result<(), String> {
    let rt = runtime().map_err(|e| e.to_string())?;
    let sql = sql.to_owned();
    block(&rt, async move {
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
        block(&rt, async move {
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
    sled.restore_export(&read(&backup).unwrap(), false).unwrap();
    let mut n2 = names();
    assert_eq!(
        sled.load_last_applied(&mut n2).unwrap(),
        store.load_last_applied(&mut n).unwrap()
    );
    let mut back = Vec::new();
    sled.export(&mut back).unwrap();
    let mut other = PgStore::open(db.target("q"), 1, "h", writer("state restore", None)).unwrap();
    let header = other.restore_export(&read(&back).unwrap(), false).unwrap();
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
    let err = other.restore_export(&foreign, false).unwrap_err();
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
        .rows(|account, stored| {
            let i: usize = account[1..].parse().unwrap();
            let mut mine = String::new();
            read::jsonb_text(&mut mine, &all[i], &names);
            assert_eq!(mine, stored);
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

/// The server of this machine has TLS on with Debian's self-signed "snakeoil" certificate.
#[test]
fn sslmodes_encrypt_and_check_as_libpq_does() {
    let Some(db) = TestDb::create() else { return };
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if !std::path::Path::new(snakeoil).exists() {
        eprintln!("skipped: no {snakeoil} (the server's TLS setup is not the expected one)");
        return;
    }
    let url =
        |query: &str| DatabaseUrl::new(format!("postgres://root@127.0.0.1:5432/{}?{query}", db.0));
    let encrypted = |query: &str| -> std::result::Result<bool, String> {
        let target = Target::parse(&url(query), "p").map_err(|e| e.to_string())?;
        let store =
            PgStore::open(target, 1, "h", writer("apply", None)).map_err(|e| e.to_string())?;
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
        err.contains("cannot reach PostgreSQL at 127.0.0.1:5432"),
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
