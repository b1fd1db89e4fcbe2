//! Opening a project's state in few round trips (DESIGN.md §7): after connecting, a reader
//! or a writer sends everything it needs in one flight and waits once.
//!
//! - The schema is checked once, and migrated (by a writer) in the same step: the migrations
//!   are one PL/pgSQL block run under the migration advisory lock, which creates all tables of a
//!   new database or takes an older schema through every missing step, atomically.
//! - A writer's flight is one multi-statement query: migrate, try the project's lock and write
//!   the lock row (only when the lock was got), create the project (only under that lock;
//!   binding one that recorded nothing to this app is the core's, `State::bind`), then read
//!   the schema version, the metadata and the lock row. Statements of one query run in order,
//!   each seeing what the one before did, so the metadata is read after the lock is held. The
//!   record and COPY statements are prepared in the same flight, behind it.
//! - A reader's flight opens its REPEATABLE READ snapshot and reads the schema version and the
//!   metadata in it, with the COPY of its accounts prepared ahead (outside the snapshot: a
//!   failed prepare, on tables too old for it, cannot abort the snapshot's transaction).
//!
//! Values are sent as literals (a multi-statement query takes no parameters), made by
//! [`literal`], which cannot be ended early by any input.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use super::{
    Driver, PgError, Result, Target, Writer, MIGRATIONS, MIGRATION_LOCK, MIN_READ_VERSION,
    SCHEMA_VERSION,
};
use crate::store::{random_id, Meta, FORMAT_VERSION};

/// The SQLSTATE the migration block raises for a schema newer than this binary's (its message
/// is the version found).
const NEWER_SCHEMA: &str = "TA001";
/// The SQLSTATE raised when there are no timattr tables and none may be created.
const NO_TABLES: &str = "TA002";

/// Whether the schema table exists where the search path finds it (see [`migration_block`]).
const TABLES_EXIST: &str = "EXISTS (SELECT 1 FROM pg_catalog.pg_class c
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relname = 'timattr_schema' AND n.nspname = ANY (current_schemas(false)))";

/// `s` as an SQL string literal: dollar-quoted with a tag that cannot end it early, so nothing
/// in it needs escaping.
pub(super) fn literal(s: &str) -> String {
    let mut n = 0;
    loop {
        let tag = format!("$t{n}$");
        if format!("{s}{tag}").find(&tag) == Some(s.len()) {
            return format!("{tag}{s}{tag}");
        }
        n += 1;
    }
}

/// The migrations as one block: nothing to do (and no lock taken) when the schema is current;
/// a newer schema is refused before anything is written; otherwise, under the migration lock,
/// every missing step and the new version, in the caller's transaction. With `create` false a
/// database without the tables raises [`NO_TABLES`] instead of getting them.
pub(super) fn migration_block(create: bool) -> String {
    let missing = if create {
        "v := 0;".to_owned()
    } else {
        format!("RAISE EXCEPTION USING ERRCODE = '{NO_TABLES}', MESSAGE = 'no timattr tables';")
    };
    // Whether the tables exist is read from `pg_class` with the statement's snapshot, not
    // looked up by name: a name lookup that missed before the lock was taken would be
    // remembered (the catalog cache) and miss again after another process created them.
    let version = format!(
        "IF NOT {TABLES_EXIST} THEN v := 0;
      ELSE SELECT COALESCE(max(version), 0) INTO v FROM timattr_schema; END IF;"
    );
    let newer = format!(
        "IF v > {SCHEMA_VERSION} THEN
         RAISE EXCEPTION USING ERRCODE = '{NEWER_SCHEMA}', MESSAGE = v::text; END IF;"
    );
    let mut steps = String::new();
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        steps.push_str(&format!("  IF v < {} THEN\n{sql}\n  END IF;\n", i + 1));
    }
    format!(
        "DO $timattr$
DECLARE v integer;
BEGIN
  IF NOT {TABLES_EXIST} THEN {missing}
  ELSE SELECT COALESCE(max(version), 0) INTO v FROM timattr_schema; END IF;
  IF v = {SCHEMA_VERSION} THEN RETURN; END IF;
  {newer}
  PERFORM pg_advisory_xact_lock({MIGRATION_LOCK});
  -- Again under the lock: another process may have migrated meanwhile.
  {version}
  {newer}
{steps}  UPDATE timattr_schema SET version = {SCHEMA_VERSION};
END $timattr$"
    )
}

/// What a migration or opening error means, when it is one of the blocks' own.
enum Raised {
    Newer(i32),
    NoTables,
}

fn raised(e: &tokio_postgres::Error) -> Option<Raised> {
    let db = e.as_db_error()?;
    match db.code().code() {
        NEWER_SCHEMA => Some(Raised::Newer(db.message().parse().unwrap_or(i32::MAX))),
        NO_TABLES => Some(Raised::NoTables),
        _ => None,
    }
}

/// A failed opening statement as the store reports it.
fn opening_error(t: &Target, e: &tokio_postgres::Error) -> PgError {
    match raised(e) {
        Some(Raised::Newer(found)) => PgError::NewerSchema {
            target: t.describe(),
            found,
        },
        _ => t.db_err(e),
    }
}

/// The rows of a multi-statement query's answer, each as its columns' text.
fn rows(answer: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    answer
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The COPY of a project's accounts at the current schema (see `PgStore::accounts_copy`).
pub(super) fn current_copy(t: &Target) -> String {
    super::read::copy_sql(&t.name, "tags")
}

/// The last reads of an opening: schema version, project row and (for writers) lock row.
fn final_read(t: &Target, lock_row: bool) -> String {
    let name = literal(&t.name);
    let lock = if lock_row {
        format!(", (SELECT to_jsonb(k)::text FROM timattr_locks k WHERE project = {name})")
    } else {
        String::new()
    };
    format!(
        "SELECT (SELECT max(version) FROM timattr_schema)::text,
                (SELECT to_jsonb(p)::text FROM timattr_projects p WHERE name = {name}){lock}"
    )
}

/// The project's metadata from its row as `to_jsonb` gives it (any schema: columns an older
/// one lacks read as their defaults).
pub(super) fn meta_from_json(t: &Target, json: &str) -> Result<Meta> {
    #[derive(serde::Deserialize)]
    struct ProjectRow {
        format_version: i64,
        sdkappid: i64,
        endpoint_host: String,
        lineage: String,
        serial: i64,
        #[serde(default)]
        slots: serde_json::Value,
        #[serde(default)]
        commit_id: String,
        #[serde(default)]
        slot_types: serde_json::Value,
    }
    let row: ProjectRow =
        serde_json::from_str(json).map_err(|e| t.corrupt(format!("the project row: {e}")))?;
    let map = |v: serde_json::Value| {
        if v.is_null() {
            serde_json::json!({})
        } else {
            v
        }
    };
    Ok(Meta {
        format_version: u32::try_from(row.format_version)
            .map_err(|_| t.corrupt("format version"))?,
        sdkappid: u32::try_from(row.sdkappid).map_err(|_| t.corrupt("sdkappid"))?,
        endpoint_host: row.endpoint_host,
        lineage: row.lineage,
        serial: u64::try_from(row.serial).map_err(|_| t.corrupt("serial"))?,
        commit_id: row.commit_id,
        slots: serde_json::from_value::<BTreeMap<u8, String>>(map(row.slots))
            .map_err(|e| t.corrupt(format!("slots: {e}")))?,
        slot_types: serde_json::from_value::<BTreeMap<u8, u8>>(map(row.slot_types))
            .map_err(|e| t.corrupt(format!("slot types: {e}")))?,
    })
}

/// The "locked by" error from the lock row as `to_jsonb` gives it.
fn locked_from_json(t: &Target, json: Option<&str>) -> PgError {
    #[derive(serde::Deserialize, Default)]
    struct LockRow {
        command: String,
        host: String,
        pid: i64,
        since: i64,
    }
    let row: LockRow = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| LockRow {
            command: "(unknown)".into(),
            host: "(unknown)".into(),
            ..LockRow::default()
        });
    super::write::locked(t, row.command, row.host, row.pid, row.since)
}

/// What a reader's flight found: the schema version and the project's metadata (`None`: no
/// tables, or no such project), and the COPY statement when it could be prepared.
pub(super) struct ReaderOpened {
    pub found: Option<(i32, Meta)>,
    pub copy: Option<Statement>,
}

/// A reader's flight: its snapshot begun, the schema checked and the metadata read in it.
pub(super) async fn reader(client: &Client, t: &Target) -> Result<ReaderOpened> {
    let sql = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
         {};
         DO $timattr$ BEGIN IF to_regclass('timattr_schema') IS NULL THEN
           RAISE EXCEPTION USING ERRCODE = '{NO_TABLES}', MESSAGE = 'no timattr tables'; END IF; END $timattr$;
         {}",
        super::read::IN_ACCOUNT_ORDER,
        final_read(t, false)
    );
    // The COPY first: it is parsed before the snapshot's transaction begins.
    let copy_sql = current_copy(t);
    let (copy, answer) =
        futures_util::future::join(client.prepare(&copy_sql), client.simple_query(&sql)).await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) if matches!(raised(&e), Some(Raised::NoTables)) => {
            return Ok(ReaderOpened {
                found: None,
                copy: None,
            })
        }
        Err(e) => return Err(t.db_err(&e)),
    };
    let row = rows(answer).pop().unwrap_or_default();
    let Some(version) = row.first().cloned().flatten() else {
        return Ok(ReaderOpened {
            found: None,
            copy: None,
        });
    };
    let version: i32 = version
        .parse()
        .map_err(|_| t.corrupt("the schema version"))?;
    readable(t, version)?;
    let found = match row.get(1).cloned().flatten() {
        Some(json) => Some((version, meta_from_json(t, &json)?)),
        None => None,
    };
    Ok(ReaderOpened {
        found,
        copy: copy.ok(),
    })
}

/// Refuses a schema this binary cannot read.
fn readable(t: &Target, version: i32) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(PgError::NewerSchema {
            target: t.describe(),
            found: version,
        });
    }
    if version < MIN_READ_VERSION {
        return Err(PgError::OlderSchema {
            target: t.describe(),
            found: version,
        });
    }
    Ok(())
}

/// What a writer creates when the project is missing: `open` (not `open_existing_writer`).
pub(super) struct Create<'a> {
    pub sdkappid: u32,
    pub host: &'a str,
}

/// What a writer's flight found.
pub(super) enum WriterOpened {
    /// No tables, and none were to be created: nothing was done, no lock taken. With the
    /// statements that were prepared nonetheless (a COPY is only checked when it runs).
    NoTables(Vec<Statement>),
    /// No such project (and none was to be created); the lock is held.
    NoProject,
    /// The lock is held and the metadata read under it.
    Locked {
        meta: Meta,
        record: Statement,
        copy: Statement,
    },
    /// Another writer holds the lock: the caller waits for it (or not) the slow way, with the
    /// statements already prepared.
    Busy {
        holder: PgError,
        record: Statement,
        copy: Statement,
    },
}

/// A writer's flight: migrate, lock, create (see the module's doc), read.
pub(super) async fn writer(
    client: &Client,
    t: &Target,
    w: &Writer,
    create: Option<Create<'_>>,
) -> Result<WriterOpened> {
    let name = literal(&t.name);
    let token = literal(&w.token);
    let ours =
        format!("EXISTS (SELECT 1 FROM timattr_locks WHERE project = {name} AND token = {token})");
    let host = literal(&super::write::hostname());
    let pid = std::process::id();
    let since = i64::try_from(crate::clock::now_unix()).unwrap_or(0);
    let mut sql = format!(
        "{};
         WITH l AS MATERIALIZED (SELECT pg_try_advisory_lock({key}) AS got),
              held AS (INSERT INTO timattr_locks (project, token, host, pid, command, since)
                       SELECT {name}, {token}, {host}, {pid}, {command}, {since} FROM l WHERE l.got
                       ON CONFLICT (project) DO UPDATE SET token = EXCLUDED.token, host = EXCLUDED.host,
                         pid = EXCLUDED.pid, command = EXCLUDED.command, since = EXCLUDED.since
                       RETURNING 1)
         SELECT l.got::text FROM l;\n",
        migration_block(create.is_some()),
        key = t.lock_key(),
        command = literal(&w.command),
    );
    if let Some(c) = &create {
        // Binding an existing project that recorded nothing to this app is the core's
        // (`State::bind`): a rare second round trip, the rule written once.
        let (app, endpoint) = (i64::from(c.sdkappid), literal(c.host));
        sql.push_str(&format!(
            "INSERT INTO timattr_projects (name, format_version, sdkappid, endpoint_host, lineage, serial, commit_id)
               SELECT {name}, {format}, {app}, {endpoint}, {lineage}, 0, {commit} WHERE {ours}
               ON CONFLICT (name) DO NOTHING;\n",
            format = FORMAT_VERSION,
            lineage = literal(&random_id()),
            commit = literal(&random_id()),
        ));
    }
    sql.push_str(&final_read(t, true));
    let (record_sql, copy_sql) = (super::write::record_sql(), current_copy(t));
    // The query first: the statements are parsed once it has created or migrated the tables.
    let (answer, record, copy) = futures_util::future::join3(
        client.simple_query(&sql),
        client.prepare(&record_sql),
        client.prepare(&copy_sql),
    )
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) if matches!(raised(&e), Some(Raised::NoTables)) => {
            let prepared = [record, copy].into_iter().flatten().collect();
            return Ok(WriterOpened::NoTables(prepared));
        }
        Err(e) => return Err(opening_error(t, &e)),
    };
    let db = |e: tokio_postgres::Error| t.db_err(&e);
    let (record, copy) = (record.map_err(db)?, copy.map_err(db)?);
    let rows = rows(answer);
    let got = rows.first().and_then(|r| r.first().cloned().flatten()) == Some("true".into());
    let last = rows.last().cloned().unwrap_or_default();
    if !got {
        let holder = locked_from_json(t, last.get(2).cloned().flatten().as_deref());
        return Ok(WriterOpened::Busy {
            holder,
            record,
            copy,
        });
    }
    match last.get(1).cloned().flatten() {
        Some(json) => Ok(WriterOpened::Locked {
            meta: meta_from_json(t, &json)?,
            record,
            copy,
        }),
        None if create.is_some() => Err(t.corrupt("the project row vanished after it was created")),
        None => Ok(WriterOpened::NoProject),
    }
}

/// A connection that found no tables, kept for the writer that creates them next in this
/// process (an apply's first open finds a new database empty, then creates the tables once
/// the plan is confirmed): that writer then starts without connecting again. It holds no lock
/// and no transaction.
/// Its statements are closed when it is taken: the Close messages then go out with the
/// taker's first flight instead of making a turn of their own.
type Idle = (String, Client, Driver, Vec<Statement>);

static IDLE: Mutex<Option<Idle>> = Mutex::new(None);

/// What identifies a connection's target for reuse.
fn idle_key(t: &Target) -> String {
    format!(
        "{}|{:?}|{:?}",
        t.describe(),
        t.config.get_user(),
        t.tls.ssl_mode()
    )
}

/// Keeps `client` for the next opening of `t` in this process.
pub(super) fn keep_idle(t: &Target, client: Client, driver: Driver, prepared: Vec<Statement>) {
    let old = IDLE.lock().unwrap_or_else(|p| p.into_inner()).replace((
        idle_key(t),
        client,
        driver,
        prepared,
    ));
    drop(old);
}

/// The connection kept for `t`, if any and still open.
pub(super) fn take_idle(t: &Target) -> Option<(Client, Driver)> {
    let idle = IDLE.lock().unwrap_or_else(|p| p.into_inner()).take();
    match idle {
        Some((key, client, driver, prepared)) if key == idle_key(t) && !client.is_closed() => {
            drop(prepared);
            Some((client, driver))
        }
        // Dropped: the driver closes the connection.
        _ => None,
    }
}
