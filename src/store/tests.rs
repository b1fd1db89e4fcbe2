//! The core's rules, written once, tested once: through [`State`] over the in-memory test
//! backend (`memory`), which also shows that a backend plugs in without the core knowing it;
//! and the error kinds each real backend maps its typed errors onto.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::memory::{Held, Memory};
use super::postgres::PgError;
use super::sled::{lock, StoreError};
use super::{ErrorKind, HistoryEntry, Record, State, StateError};
use crate::model::{Attrs, Names};

fn state(sdkappid: u32, host: &str) -> (State, Arc<Mutex<Held>>) {
    let (store, held) = Memory::create(sdkappid, host);
    (State::new(Box::new(store)), held)
}

fn names() -> Names {
    Names::new(&["sex".into(), "city".into()])
}

fn attrs(p: &[(u8, &str)]) -> Attrs {
    p.iter().map(|(n, v)| (*n, (*v).into())).collect()
}

fn record_one(state: &mut State, account: &str, serial: u64) {
    let a = attrs(&[(0, "m")]);
    let record = Record {
        set: vec![(account, &a)],
        ..Default::default()
    };
    state.record(&[record], &names(), serial).unwrap();
}

#[test]
fn check_belongs_serial_zero_binds_nothing_else_app_and_host_must_match() {
    let (mut state, _) = state(1, "h");
    // Nothing recorded: any app may use it.
    state.check_belongs(2, "other").unwrap();
    record_one(&mut state, "u1", 1);
    state.check_belongs(1, "h").unwrap();
    for (app, host) in [(2, "h"), (1, "other"), (2, "other")] {
        let err = state.check_belongs(app, host).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OtherApp);
        // The backend's words, untouched.
        assert_eq!(
            err.to_string(),
            format!("memory store belongs to sdkappid 1 at h, not {app} at {host}")
        );
    }
}

#[test]
fn bind_takes_over_an_empty_store_and_refuses_a_used_one() {
    let (mut state, held) = state(1, "h");
    // Already this app's: nothing to write.
    state.bind(1, "h").unwrap();
    assert_eq!(held.lock().unwrap().rebinds, 0);
    state.bind(2, "example.com").unwrap();
    assert_eq!(held.lock().unwrap().rebinds, 1);
    let meta = state.meta();
    assert_eq!(
        (meta.sdkappid, meta.endpoint_host.as_str()),
        (2, "example.com")
    );
    record_one(&mut state, "u1", 1);
    let err = state.bind(1, "h").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OtherApp);
    assert_eq!(held.lock().unwrap().rebinds, 1);
    assert_eq!(state.meta().sdkappid, 2);
}

#[test]
fn next_serial_counts_up_and_never_wraps_at_u64_max() {
    let (mut state, _) = state(1, "h");
    assert_eq!(state.next_serial().unwrap(), 1);
    state.record_slots(&BTreeMap::new(), u64::MAX - 1).unwrap();
    assert_eq!(state.next_serial().unwrap(), u64::MAX);
    state.record_slots(&BTreeMap::new(), u64::MAX).unwrap();
    let err = state.next_serial().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        "memory store: the serial is at its maximum; restore a backup with a lower serial (`state restore --force`)"
    );
}

#[test]
fn record_slots_keeps_the_type_of_a_slot_only_while_it_keeps_its_name() {
    let (mut state, _) = state(1, "h");
    let slots: BTreeMap<u8, String> = [(0, "sex".into()), (1, "rid".into())].into();
    state
        .record_slot_types(&slots, &[(0, 0), (1, 1)].into(), 1)
        .unwrap();
    // Type 0 is not kept: a store without types reads as all type 0.
    assert_eq!(state.meta().slot_types, [(1, 1)].into());
    state.record_slots(&slots, 2).unwrap();
    assert_eq!(state.meta().slot_types, [(1, 1)].into());
    let renamed: BTreeMap<u8, String> = [(0, "sex".into()), (1, "other".into())].into();
    state.record_slots(&renamed, 3).unwrap();
    assert!(state.meta().slot_types.is_empty());
    assert_eq!(state.meta().slots, renamed);
}

#[test]
fn a_backend_that_does_not_pipeline_records_ahead_at_once_and_releases_the_hold() {
    let (mut state, held) = state(1, "h");
    let hold = Arc::new(());
    let a = attrs(&[(1, "x")]);
    let record = Record {
        set: vec![("u1", &a)],
        ..Default::default()
    };
    let pending = state
        .record_ahead(&[record], &names(), 1, hold.clone())
        .unwrap();
    // Durable already, and the hold (the batches' in-flight slots) given back.
    assert!(pending.is_answered());
    assert_eq!(Arc::strong_count(&hold), 1);
    assert!(held.lock().unwrap().accounts.contains_key("u1"));
    state.settle(pending).unwrap();
    assert_eq!(state.meta().serial, 1);
}

/// The last group and the run's final entry: by default recorded, then finished.
#[test]
fn the_last_record_ends_the_run() {
    let (mut state, held) = state(1, "h");
    state.begin(HistoryEntry::now("apply", None));
    record_one(&mut state, "u1", 1);
    let a = attrs(&[(1, "x")]);
    let record = Record {
        set: vec![("u2", &a)],
        ..Default::default()
    };
    let (pending, written) = state
        .record_last(&[record], &names(), 1, |e| e.status = "complete".into())
        .unwrap();
    written.unwrap();
    assert!(pending.is_answered());
    state.settle(pending).unwrap();
    assert!(state.run_mut().is_none());
    let held = held.lock().unwrap();
    assert!(held.accounts.contains_key("u2"));
    assert_eq!(held.history.len(), 1);
    assert_eq!(held.history[0].status, "complete");
}

#[test]
fn history_and_the_export_format_move_a_state_between_backends() {
    let (mut state, _) = state(1, "h");
    state.begin(HistoryEntry::now("apply", None));
    record_one(&mut state, "u1", 1);
    record_one(&mut state, "u2", 1);
    state.finish(|e| e.status = "complete".into()).unwrap();
    let history = state.history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].accounts_set, history[0].status.as_str()),
        (2, "complete")
    );
    // Memory → sled → memory, through the one format.
    let mut backup = Vec::new();
    assert_eq!(state.export(&mut backup).unwrap(), 2);
    let dir = tempfile::tempdir().unwrap();
    let location = crate::settings::StateLocation::Sled(dir.path().to_path_buf());
    let how = super::Opening {
        writer: Some("state restore".into()),
        lock_timeout: None,
    };
    let mut sled = State::open(&location, 1, "h", &how).unwrap();
    sled.restore_export(&super::read_export(&backup[..]).unwrap(), false)
        .unwrap();
    let mut back = Vec::new();
    sled.export(&mut back).unwrap();
    let (mut other, _) = self::state(1, "h");
    let header = other
        .restore_export(&super::read_export(&back[..]).unwrap(), false)
        .unwrap();
    assert_eq!((header.serial, header.accounts), (1, 2));
    let (mut n1, mut n2) = (names(), names());
    assert_eq!(
        other.load_last_applied(&mut n1).unwrap(),
        state.load_last_applied(&mut n2).unwrap()
    );
    let ops: Vec<String> = other
        .history()
        .unwrap()
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert_eq!(ops, ["apply", "restore", "restore"]);
    // The restore guard is the core's: another app's backup is refused by every backend.
    let (mut stranger, _) = self::state(9, "far");
    record_one(&mut stranger, "u9", 1);
    let err = stranger
        .restore_export(&super::read_export(&back[..]).unwrap(), true)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Restore);
    assert!(
        err.to_string().contains("the export belongs to sdkappid 1"),
        "{err}"
    );
}

/// The restore guard is the core's, run before any backend replaces anything: a store holds
/// something when it recorded a commit (serial > 0) or holds accounts (even at serial 0).
#[test]
fn restore_guard_counts_serial_or_accounts_and_forces_only_lineage_and_serial() {
    let (mut source, _) = state(1, "h");
    record_one(&mut source, "u1", 2);
    let mut backup = Vec::new();
    source.export(&mut backup).unwrap();
    let export = || super::read_export(&backup[..]).unwrap();
    // Nothing recorded, nothing held: bound to no app, any backup restores.
    let (mut empty, _) = state(9, "far");
    empty.restore_export(&export(), false).unwrap();
    assert_eq!(empty.meta().serial, 2);
    // Accounts at serial 0 count as history: another app's backup is refused, untouched.
    let (mut holding, held) = state(9, "far");
    let line = super::ExportLine {
        account: "u9".into(),
        attrs: [("sex".to_owned(), "f".to_owned())].into(),
        tags: vec![],
    };
    held.lock().unwrap().accounts.insert("u9".into(), line);
    let err = holding.restore_export(&export(), true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Restore);
    assert!(
        err.to_string()
            .starts_with("the export belongs to sdkappid 1"),
        "{err}"
    );
    assert_eq!(holding.account_count().unwrap(), 1);
    // Another lineage, then an older serial: refused unless forced.
    let (mut used, _) = state(1, "h");
    record_one(&mut used, "u2", 3);
    let err = used.restore_export(&export(), false).unwrap_err();
    assert!(
        err.to_string().starts_with("the export has lineage"),
        "{err}"
    );
    used.restore_export(&export(), true).unwrap();
    record_one(&mut used, "u2", 3);
    let err = used.restore_export(&export(), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the export has serial 2 but the store is at serial 3: it is older than the store (use --force to go back anyway)"
    );
    used.restore_export(&export(), true).unwrap();
    assert_eq!((used.meta().serial, used.account_count().unwrap()), (2, 1));
}

#[test]
fn sled_errors_map_to_kinds_with_their_messages_unchanged() {
    let path = PathBuf::from("/s");
    let cases: Vec<(StoreError, ErrorKind)> = vec![
        (
            StoreError::Locked {
                path: path.clone(),
                holder: None,
            },
            ErrorKind::Locked,
        ),
        (
            StoreError::Sled {
                path: path.clone(),
                message: "m".into(),
            },
            ErrorKind::Failed,
        ),
        (
            StoreError::Corrupt {
                path: path.clone(),
                message: "m".into(),
            },
            ErrorKind::Corrupt,
        ),
        (
            StoreError::NewerFormat {
                path: path.clone(),
                found: 9,
            },
            ErrorKind::NewerFormat,
        ),
        (
            StoreError::OlderFormat {
                path: path.clone(),
                found: 1,
            },
            ErrorKind::OlderFormat,
        ),
        (
            StoreError::OtherApp {
                path,
                store_app: 1,
                store_host: "a".into(),
                project_app: 2,
                project_host: "b".into(),
            },
            ErrorKind::OtherApp,
        ),
        (StoreError::Restore("r".into()), ErrorKind::Restore),
    ];
    assert_kinds(cases);
    let holder = lock::Holder::new("apply");
    let e = StateError::from(StoreError::Locked {
        path: "/s".into(),
        holder: Some(holder),
    });
    assert!(
        e.to_string()
            .starts_with("state at /s is locked by `timattr apply`"),
        "{e}"
    );
}

/// Each error becomes a [`StateError`] of its kind, with the same text and still typed.
fn assert_kinds<E>(cases: Vec<(E, ErrorKind)>)
where
    E: std::error::Error + Send + Sync + 'static,
    StateError: From<E>,
{
    for (e, kind) in cases {
        let text = e.to_string();
        let state = StateError::from(e);
        assert_eq!((state.kind(), state.to_string()), (kind, text));
        assert!(state.downcast_ref::<E>().is_some());
    }
}

#[test]
fn postgres_errors_map_to_kinds_with_their_messages_unchanged() {
    assert_kinds(pg_connection_cases());
    assert_kinds(pg_store_cases());
}

fn pg_connection_cases() -> Vec<(PgError, ErrorKind)> {
    vec![
        (
            PgError::Unreachable {
                addr: "h:1".into(),
                db: "d".into(),
                message: "m".into(),
            },
            ErrorKind::Unreachable,
        ),
        (
            PgError::NoDatabase {
                addr: "h:1".into(),
                db: "d".into(),
            },
            ErrorKind::Unreachable,
        ),
        (
            PgError::Tls {
                addr: "h:1".into(),
                message: "m".into(),
            },
            ErrorKind::Unreachable,
        ),
        (
            PgError::BadUrl {
                url: "u".into(),
                message: "m".into(),
            },
            ErrorKind::Failed,
        ),
    ]
}

fn pg_store_cases() -> Vec<(PgError, ErrorKind)> {
    let t = || "state \"p\" in PostgreSQL database \"d\" at h:5432".to_owned();
    vec![
        (
            PgError::Database {
                target: t(),
                message: "m".into(),
            },
            ErrorKind::Failed,
        ),
        (
            PgError::Locked {
                target: t(),
                command: "apply".into(),
                host: "h".into(),
                pid: 1,
                since: "s".into(),
            },
            ErrorKind::Locked,
        ),
        (
            PgError::NewerSchema {
                target: t(),
                found: 99,
            },
            ErrorKind::NewerFormat,
        ),
        (
            PgError::OlderSchema {
                target: t(),
                found: 0,
            },
            ErrorKind::OlderFormat,
        ),
        (
            PgError::OtherApp {
                target: t(),
                store_app: 1,
                store_host: "a".into(),
                project_app: 2,
                project_host: "b".into(),
            },
            ErrorKind::OtherApp,
        ),
        (
            PgError::Corrupt {
                target: t(),
                message: "m".into(),
            },
            ErrorKind::Corrupt,
        ),
        (
            PgError::Conflict {
                target: t(),
                message: "m".into(),
            },
            ErrorKind::Conflict,
        ),
        (PgError::Restore("r".into()), ErrorKind::Restore),
    ]
}
