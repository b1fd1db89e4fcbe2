//! Writing a project's state: migrations, the writer lock, recording confirmed batches
//! (several per statement), slots, history and restore. Every write checks, in the same
//! statement, that this writer still holds the lock and that the project is at the lineage
//! and serial it read: the serial bump is a compare-and-swap inside the store. Every write of
//! the project row also gives it a new random commit id.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::{
    block, connection_lost, PgError, PgStore, Result, Target, Writer, RECONNECT_BACKOFF,
    SCHEMA_VERSION,
};
use crate::model::Names;
use crate::store::{random_id, HistoryEntry, Meta, Record, Run, FORMAT_VERSION};

/// After an opening found the lock held (by `holder`): fails at once without a timeout,
/// otherwise takes the lock as [`lock`] does, waiting up to `timeout`.
pub(super) async fn wait_for_lock(
    client: &Client,
    t: &Target,
    w: &Writer,
    timeout: Option<Duration>,
    holder: PgError,
) -> Result<()> {
    // A holder on this host whose process is gone may only be ending: [`lock`] gives it a
    // moment even without a timeout.
    let dead_here = matches!(&holder, PgError::Locked { host, pid, .. }
        if *host == hostname() && !process_alive(*pid));
    if timeout.is_none() && !dead_here {
        return Err(holder);
    }
    lock(client, t, w, timeout).await
}

/// Takes the project's writer lock on this connection, waiting up to `timeout`, and records
/// who holds it.
pub(super) async fn lock(
    client: &Client,
    t: &Target,
    w: &Writer,
    timeout: Option<Duration>,
) -> Result<()> {
    let db = |e: tokio_postgres::Error| t.db_err(&e);
    let deadline = timeout.map(|d| Instant::now() + d);
    let mut warned = false;
    let mut gone_since: Option<Instant> = None;
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&t.lock_key()])
            .await
            .map_err(db)?
            .get(0);
        if got {
            break;
        }
        let held = holder(client, t).await?;
        // A holder on this host whose process is gone: its server session is only ending
        // (the server notices the closed connection a moment later), so give it that moment.
        let dead_here = matches!(&held, PgError::Locked { host, pid, .. }
            if *host == hostname() && !process_alive(*pid));
        if dead_here
            && gone_since.get_or_insert_with(Instant::now).elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        match deadline {
            Some(d) if Instant::now() < d => {
                if !warned {
                    tracing::warn!("{held}; waiting for it (--lock-timeout)");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => return Err(held),
        }
    }
    let host = hostname();
    let pid = i64::from(std::process::id());
    let since = i64::try_from(crate::clock::now_unix()).unwrap_or(0);
    client
        .execute(
            "INSERT INTO timattr_locks (project, token, host, pid, command, since)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (project) DO UPDATE SET token = $2, host = $3, pid = $4, command = $5, since = $6",
            &[&t.name, &w.token, &host, &pid, &w.command, &since],
        )
        .await
        .map_err(db)?;
    Ok(())
}

/// The "locked by" error, naming the holder as its row says.
pub(super) async fn holder(client: &Client, t: &Target) -> Result<PgError> {
    let row = client
        .query_opt(
            "SELECT command, host, pid, since FROM timattr_locks WHERE project = $1",
            &[&t.name],
        )
        .await
        .map_err(|e| t.db_err(&e))?;
    let (command, host, pid, since) = match row {
        Some(r) => (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3)),
        None => ("(unknown)".to_owned(), "(unknown)".to_owned(), 0, 0),
    };
    Ok(locked(t, command, host, pid, since))
}

/// The "locked by" error of a lock row's values.
pub(super) fn locked(t: &Target, command: String, host: String, pid: i64, since: i64) -> PgError {
    let since = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(since).unwrap_or(0)),
    )
    .to_string();
    PgError::Locked {
        target: t.describe(),
        command,
        host,
        pid,
        since,
    }
}

pub(super) fn hostname() -> String {
    crate::store::who::hostname()
}

/// Whether process `pid` of this host still runs (assumed so where `/proc` cannot tell).
fn process_alive(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    pid == i64::from(std::process::id()) || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// After a reconnection: takes the lock again, and only if no other writer held it meanwhile
/// (the lock row still carries this writer's token).
async fn relock(client: &Client, t: &Target, w: &Writer) -> Result<()> {
    let db = |e: tokio_postgres::Error| t.db_err(&e);
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&t.lock_key()])
        .await
        .map_err(db)?
        .get(0);
    let still_ours = got
        && client
            .query_opt(
                "SELECT 1 FROM timattr_locks WHERE project = $1 AND token = $2",
                &[&t.name, &w.token],
            )
            .await
            .map_err(db)?
            .is_some();
    if !still_ours {
        return Err(PgError::Conflict {
            target: t.describe(),
            message: "another writer took the lock while the connection was lost".into(),
        });
    }
    Ok(())
}

/// The project's metadata, creating the project (new lineage, serial 0) when missing.
pub(super) async fn create_project(
    client: &Client,
    t: &Target,
    sdkappid: u32,
    host: &str,
) -> Result<Meta> {
    let (lineage, commit_id) = (random_id(), random_id());
    let version = FORMAT_VERSION as i32;
    client
        .execute(
            "INSERT INTO timattr_projects (name, format_version, sdkappid, endpoint_host, lineage, serial, commit_id)
             VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (name) DO NOTHING",
            &[&t.name, &version, &i64::from(sdkappid), &host, &lineage, &commit_id],
        )
        .await
        .map_err(|e| t.db_err(&e))?;
    super::read::meta(client, t, SCHEMA_VERSION)
        .await?
        .ok_or_else(|| t.corrupt("the project row vanished after it was created"))
}

/// Binds a project that recorded nothing yet to `sdkappid`/`host` (the caller holds the lock;
/// the core decides when, see `State::bind`). `serial = 0` guards the row all the same.
pub(super) async fn bind(
    client: &Client,
    t: &Target,
    meta: Meta,
    sdkappid: u32,
    host: &str,
) -> Result<Meta> {
    let commit_id = random_id();
    client
        .execute(
            "UPDATE timattr_projects SET sdkappid = $2, endpoint_host = $3, commit_id = $4 WHERE name = $1 AND serial = 0",
            &[&t.name, &i64::from(sdkappid), &host, &commit_id],
        )
        .await
        .map_err(|e| t.db_err(&e))?;
    Ok(Meta {
        sdkappid,
        endpoint_host: host.to_owned(),
        commit_id,
        ..meta
    })
}

/// The compare-and-swap every write carries: this writer's lock row, the lineage it read and
/// a serial of this run (`$base` before its first write, `$new` after).
pub(super) const CAS: &str = "name = $1 AND lineage = $2 AND serial IN ($3, $4)
    AND EXISTS (SELECT 1 FROM timattr_locks WHERE project = $1 AND token = $5)";

/// One statement recording a group of batches: the CAS bumps the serial, and only when it
/// matched — and the project's commit is the record sent before this one (`$14`) or this one
/// already (sent again after a lost connection), so that records pipelined behind a failed one
/// commit nothing — are the accounts merged (`||` sets names, `-` drops them; tags are united with the
/// added ones less the removed ones, sorted bytewise; an account left with nothing is deleted).
pub(super) fn record_sql() -> String {
    format!(
        "WITH cas AS (UPDATE timattr_projects SET serial = $4, commit_id = $11
                      WHERE {CAS} AND commit_id IN ($14, $11) RETURNING 1),
         input AS (SELECT t.account, t.setv::jsonb AS setv, t.rm::jsonb AS rm,
                          t.tadd::jsonb AS tadd, t.trm::jsonb AS trm
                   FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
                     AS t(account, setv, rm, tadd, trm)),
         merged AS (SELECT i.account,
                       (COALESCE(a.attrs, '{{}}'::jsonb) || i.setv)
                         - ARRAY(SELECT jsonb_array_elements_text(i.rm)) AS attrs,
                       CASE WHEN i.tadd IS NULL AND i.trm IS NULL THEN COALESCE(a.tags, '{{}}'::text[])
                       ELSE ARRAY(SELECT u.x FROM (SELECT unnest(COALESCE(a.tags, '{{}}'::text[]))
                                                   UNION SELECT jsonb_array_elements_text(COALESCE(i.tadd, '[]'::jsonb))) AS u(x)
                                  WHERE u.x <> ALL (ARRAY(SELECT jsonb_array_elements_text(COALESCE(i.trm, '[]'::jsonb))))
                                  ORDER BY u.x COLLATE \"C\")
                       END AS tags
                    FROM input i LEFT JOIN timattr_accounts a
                      ON a.project = $1 AND a.account = i.account
                    WHERE EXISTS (SELECT 1 FROM cas)),
         up AS (INSERT INTO timattr_accounts (project, account, attrs, tags)
                SELECT $1, account, attrs, tags FROM merged
                WHERE attrs <> '{{}}'::jsonb OR tags <> '{{}}'::text[]
                ON CONFLICT (project, account)
                DO UPDATE SET attrs = EXCLUDED.attrs, tags = EXCLUDED.tags RETURNING 1),
         del AS (DELETE FROM timattr_accounts a USING merged m
                 WHERE a.project = $1 AND a.account = m.account
                   AND m.attrs = '{{}}'::jsonb AND m.tags = '{{}}'::text[]
                 RETURNING 1),
         {}
         SELECT (SELECT count(*) FROM cas), (SELECT count(*) FROM up), (SELECT count(*) FROM del)",
        history_ctes(12, 13)
    )
}

/// The run's history entry (`$entry`, NULL without a run) written by the same statement as
/// the commit, when its CAS matched: the entry found by `$key` rewritten, else inserted.
fn history_ctes(entry: u8, key: u8) -> String {
    format!(
        "hist_up AS (UPDATE timattr_history SET entry = (${entry}::text)::jsonb
                     WHERE project = $1 AND ${entry}::text IS NOT NULL
                       AND entry @> (${key}::text)::jsonb AND EXISTS (SELECT 1 FROM cas)
                     RETURNING 1),
         hist_in AS (INSERT INTO timattr_history (project, entry)
                     SELECT $1, (${entry}::text)::jsonb
                     WHERE ${entry}::text IS NOT NULL AND EXISTS (SELECT 1 FROM cas)
                       AND NOT EXISTS (SELECT 1 FROM hist_up)
                     RETURNING 1)"
    )
}

/// What one group of records does, one entry per account in account order, as the record
/// statement's parameters: attributes set (a JSON object) and removed (a JSON list), tags
/// added and removed (JSON lists, NULL when the account's tags do not change).
#[derive(Debug, Default)]
struct Folded {
    accounts: Vec<String>,
    sets: Vec<String>,
    removes: Vec<String>,
    tags_added: Vec<Option<String>>,
    tags_removed: Vec<Option<String>>,
}

/// One account's part of a group: per name its last value (`None`: removed), per tag whether
/// it was last added or removed.
#[derive(Default)]
struct AccountOps<'a> {
    attrs: BTreeMap<&'a str, Option<&'a str>>,
    tags: BTreeMap<&'a str, bool>,
}

/// A group of records folded into one operation per account, in the order they happened (a
/// record's additions before its removals, as [`crate::store::Edit::apply`] has them).
fn fold(records: &[Record<'_>], names: &Names) -> Result<Folded> {
    let mut ops: BTreeMap<&str, AccountOps> = BTreeMap::new();
    for record in records {
        for (account, attrs) in &record.set {
            let op = &mut ops.entry(account).or_default().attrs;
            for (n, v) in attrs.iter() {
                op.insert(names.get(n), Some(v));
            }
        }
        for (account, removed) in &record.removed {
            let op = &mut ops.entry(account).or_default().attrs;
            for n in removed {
                op.insert(names.get(*n), None);
            }
        }
        for (edits, added) in [(&record.tags_added, true), (&record.tags_removed, false)] {
            for (account, tags) in edits {
                let op = &mut ops.entry(account).or_default().tags;
                for tag in tags.iter() {
                    op.insert(tag, added);
                }
            }
        }
    }
    let mut folded = Folded::default();
    for (account, op) in ops {
        let texts = op.attrs.iter().flat_map(|(n, v)| [Some(*n), *v]).flatten();
        if account.contains('\0')
            || texts
                .chain(op.tags.keys().copied())
                .any(|s| s.contains('\0'))
        {
            return Err(PgError::Restore(format!(
                "account {account:?} has a NUL character, which PostgreSQL cannot store"
            )));
        }
        let set: BTreeMap<&str, &str> = op
            .attrs
            .iter()
            .filter_map(|(n, v)| v.map(|v| (*n, v)))
            .collect();
        let rm: Vec<&str> = op
            .attrs
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        let tags = |wanted: bool| {
            let list: Vec<&str> = op
                .tags
                .iter()
                .filter(|(_, added)| **added == wanted)
                .map(|(t, _)| *t)
                .collect();
            (!op.tags.is_empty()).then(|| json(&list))
        };
        folded.accounts.push(account.to_owned());
        folded.sets.push(json(&set));
        folded.removes.push(json(&rm));
        folded.tags_added.push(tags(true));
        folded.tags_removed.push(tags(false));
    }
    Ok(folded)
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

impl PgStore {
    fn writer(&self) -> Result<&Writer> {
        self.writer.as_ref().ok_or_else(|| PgError::Conflict {
            target: self.target.describe(),
            message: "this store was opened for reading".into(),
        })
    }

    /// Runs one write, reconnecting (and re-taking the lock) once when the connection was
    /// lost. A write whose outcome is unknown is simply repeated: every write is idempotent.
    fn write<T, F, Fut>(&mut self, make: F) -> Result<T>
    where
        F: Fn(Arc<Client>, Arc<Target>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let mut reconnected = false;
        loop {
            let fut = make(self.client.clone(), self.target.clone());
            match block(self.rt(), fut) {
                Ok(v) => return Ok(v),
                Err(e) if connection_lost(&e) && !reconnected => {
                    tracing::warn!(
                        "lost the connection to {}: {}; reconnecting",
                        self.target.describe(),
                        super::describe_error(&e)
                    );
                    self.reconnect()?;
                    reconnected = true;
                }
                Err(e) => return Err(self.target.db_err(&e)),
            }
        }
    }

    /// Connects again with backoff and re-takes the lock; gives up after a few seconds.
    fn reconnect(&mut self) -> Result<()> {
        let writer = self.writer()?.clone();
        let mut last = None;
        for wait in RECONNECT_BACKOFF {
            std::thread::sleep(Duration::from_millis(wait));
            let (t, w) = (self.target.clone(), writer.clone());
            let attempt = block(self.rt(), async move {
                let (client, driver) = t.connect().await?;
                relock(&client, &t, &w).await?;
                Ok::<_, PgError>((client, driver))
            });
            match attempt {
                Ok((client, driver)) => {
                    tracing::warn!(
                        "reconnected to {} and took the lock again",
                        self.target.describe()
                    );
                    self.client = Arc::new(client);
                    // The lost connection's driver is dropped: it is closed for good.
                    self.driver = driver;
                    // Statements die with their connection (and a new client may reuse the
                    // old one's address).
                    *self.prepared.lock().expect("not poisoned") = None;
                    *self.copy.lock().expect("not poisoned") = None;
                    return Ok(());
                }
                Err(e @ PgError::Conflict { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!("reconnecting failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The CAS parameters of a write that leaves the project at `serial`.
    pub(super) fn cas(&self, serial: u64) -> Result<(String, i64, i64, String)> {
        let base = i64::try_from(self.meta.serial).unwrap_or(i64::MAX);
        let new = i64::try_from(serial).unwrap_or(i64::MAX);
        Ok((
            self.meta.lineage.clone(),
            base,
            new,
            self.writer()?.token.clone(),
        ))
    }

    pub(super) fn conflict(&self) -> PgError {
        PgError::Conflict {
            target: self.target.describe(),
            message: "the state changed under this writer (its lock, lineage or serial is no longer what it read); nothing more was recorded — run the command again".into(),
        }
    }

    /// Records a group of confirmed batches in one atomic statement, with `serial`.
    pub fn record(&mut self, records: &[Record<'_>], names: &Names, serial: u64) -> Result<()> {
        let params = self.record_params(records, names, serial)?;
        self.record_now(params, serial)
    }

    fn record_params(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
    ) -> Result<RecordParams> {
        let folded = fold(records, names)?;
        let (lineage, base, new, token) = self.cas(serial)?;
        let commit_id = random_id();
        let after = self
            .sent
            .replace(commit_id.clone())
            .unwrap_or_else(|| self.meta.commit_id.clone());
        if let Some(run) = self.run.as_mut() {
            run.entry.count(records);
        }
        let (entry, key) = self.run_entry(serial, &commit_id);
        Ok(Arc::new(RecordArgs {
            lineage,
            base,
            new,
            token,
            commit_id,
            after,
            folded,
            entry,
            key,
            ends_run: false,
        }))
    }

    /// The run's entry and key as a commit at `serial` writes them; `None` without a run.
    fn run_entry(&mut self, serial: u64, commit_id: &str) -> (Option<String>, Option<String>) {
        match self.run.as_mut() {
            Some(run) => {
                let entry = serde_json::to_string(run.at_commit(serial, commit_id))
                    .expect("history serializes");
                run.written = Some(Vec::new());
                (Some(entry), Some(run.key_json()))
            }
            None => (None, None),
        }
    }

    fn record_now(&mut self, params: RecordParams, serial: u64) -> Result<()> {
        let prepared = self.prepared.clone();
        let p = params.clone();
        let matched: i64 =
            self.write(move |client, t| record_statement(client, t, prepared.clone(), p.clone()))?;
        if matched != 1 {
            return Err(self.conflict());
        }
        self.committed(&params, serial);
        Ok(())
    }

    /// A record is durable: the project is at its commit, and a last record ends the run.
    fn committed(&mut self, params: &RecordArgs, serial: u64) {
        self.meta.serial = serial;
        self.meta.commit_id = params.commit_id.clone();
        if params.ends_run {
            self.run = None;
        }
    }

    /// Sends the run's last group ahead with the run's final entry, as `update` leaves it, in
    /// one statement; the run ends when [`PgStore::settle`] finds it durable. It commits only
    /// on top of every record sent before it, so the final entry never claims a record that
    /// failed.
    pub fn record_last(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        update: impl FnOnce(&mut HistoryEntry),
    ) -> Result<Pending> {
        if let Some(run) = self.run.as_mut() {
            update(&mut run.entry);
        }
        let mut params = self.record_params(records, names, serial)?;
        Arc::get_mut(&mut params)
            .expect("the parameters are not shared yet")
            .ends_run = true;
        self.send_ahead(params, serial, ())
    }

    /// Sends a group's record without waiting for the database's answer; [`PgStore::settle`]
    /// waits for it. Several can be under way at once. `hold` is dropped as soon as the
    /// database has answered (e.g. the in-flight slots of the group's batches).
    pub fn record_ahead(
        &mut self,
        records: &[Record<'_>],
        names: &Names,
        serial: u64,
        hold: impl Send + 'static,
    ) -> Result<Pending> {
        let params = self.record_params(records, names, serial)?;
        self.send_ahead(params, serial, hold)
    }

    /// Queues the record statement on the connection now, so that records reach the database
    /// in the order they were sent (each commits only on top of the one before it), and leaves
    /// its answer to a task, which drops `hold` once the database has answered.
    fn send_ahead(
        &mut self,
        params: RecordParams,
        serial: u64,
        hold: impl Send + 'static,
    ) -> Result<Pending> {
        if super::prepared_for(&self.prepared, &self.client).is_none() {
            // After a reconnection: prepared first, so the statement below goes out at once.
            let statement =
                self.write(|client, _| async move { client.prepare(&record_sql()).await })?;
            let key = Arc::as_ptr(&self.client) as usize;
            *self.prepared.lock().expect("not poisoned") = Some((key, statement));
        }
        let (client, t, prepared) = (
            self.client.clone(),
            self.target.clone(),
            self.prepared.clone(),
        );
        let key = Arc::as_ptr(&client) as usize;
        let mut statement = Box::pin(record_statement(client, t, prepared, params.clone()));
        // Its first poll hands the request to the connection (the statement is prepared on
        // this client); a task on the runtime waits for the answer.
        let rt = self.rt();
        let first = {
            let _in = rt.enter();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            statement.as_mut().poll(&mut cx)
        };
        let handle = match first {
            std::task::Poll::Ready(answer) => {
                drop(hold);
                rt.spawn(async move { answer })
            }
            std::task::Poll::Pending => rt.spawn(async move {
                let answer = statement.await;
                drop(hold);
                answer
            }),
        };
        Ok(Pending {
            handle,
            key,
            params,
            serial,
        })
    }

    /// Waits for a record sent ahead. A lost connection is re-established (once for all
    /// records that were under way on it) and the record sent again: it is idempotent.
    pub fn settle(&mut self, pending: Pending) -> Result<()> {
        let answer = match futures_executor::block_on(pending.handle) {
            Ok(answer) => answer,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match answer {
            Ok(1) => {
                // Records settle in the order they were sent: the last settled is the commit.
                self.committed(&pending.params, pending.serial);
                Ok(())
            }
            Ok(_) => Err(self.conflict()),
            Err(e) if connection_lost(&e) => {
                if Arc::as_ptr(&self.client) as usize == pending.key {
                    tracing::warn!(
                        "lost the connection to {}: {}; reconnecting",
                        self.target.describe(),
                        super::describe_error(&e)
                    );
                    self.reconnect()?;
                }
                self.record_now(pending.params, pending.serial)
            }
            Err(e) => Err(self.target.db_err(&e)),
        }
    }

    /// Records the attribute-name slots as the app now has them, with their account types,
    /// with `serial`. Which types a slot keeps, and that only non-zero ones are, is the core's
    /// (`State::record_slots`, `State::record_slot_types`).
    pub fn record_slot_types(
        &mut self,
        slots: &BTreeMap<u8, String>,
        types: &BTreeMap<u8, u8>,
        serial: u64,
    ) -> Result<()> {
        let (lineage, base, new, token) = self.cas(serial)?;
        let json = serde_json::to_string(slots).expect("slots serialize");
        let types_json = serde_json::to_string(types).expect("slot types serialize");
        let commit_id = random_id();
        let (entry, key) = self.run_entry(serial, &commit_id);
        let params = Arc::new((
            lineage,
            base,
            new,
            token,
            json,
            commit_id.clone(),
            entry,
            key,
            types_json,
        ));
        let n = self.write(move |client, t| {
            let p = params.clone();
            async move {
                let sql = format!(
                    "WITH cas AS (UPDATE timattr_projects SET slots = ($6::text)::jsonb, serial = $4, commit_id = $7, slot_types = ($10::text)::jsonb WHERE {CAS} RETURNING 1),
                     {}
                     SELECT count(*) FROM cas",
                    history_ctes(8, 9)
                );
                // Unprepared, parameters typed here: one round trip.
                let row = client
                    .query_typed_one(
                        &sql,
                        &[
                            (&t.name, Type::TEXT),
                            (&p.0, Type::TEXT),
                            (&p.1, Type::INT8),
                            (&p.2, Type::INT8),
                            (&p.3, Type::TEXT),
                            (&p.4, Type::TEXT),
                            (&p.5, Type::TEXT),
                            (&p.6, Type::TEXT),
                            (&p.7, Type::TEXT),
                            (&p.8, Type::TEXT),
                        ],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0) as u64)
            }
        })?;
        if n != 1 {
            return Err(self.conflict());
        }
        self.meta.slots = slots.clone();
        self.meta.slot_types = types.clone();
        self.meta.serial = serial;
        self.meta.commit_id = commit_id;
        // The next record commits on top of this one.
        self.sent = None;
        Ok(())
    }

    /// Begins a run: from now on every commit writes its history entry.
    pub fn begin(&mut self, entry: HistoryEntry) {
        self.run = Some(Run::new(entry));
    }

    /// The entry of the run under way.
    pub fn run_mut(&mut self) -> Option<&mut HistoryEntry> {
        self.run.as_mut().map(|r| &mut r.entry)
    }

    /// Ends the run: its entry, as `update` leaves it, is rewritten when the run committed
    /// anything, under this writer's lock.
    pub fn finish(&mut self, update: impl FnOnce(&mut HistoryEntry)) -> Result<()> {
        let Some(mut run) = self.run.take() else {
            return Ok(());
        };
        update(&mut run.entry);
        if run.written.is_none() {
            return Ok(());
        }
        let token = self.writer()?.token.clone();
        let entry = serde_json::to_string(&run.entry).expect("history serializes");
        let params = Arc::new((entry, run.key_json(), token));
        let n = self.write(move |client, t| {
            let p = params.clone();
            async move {
                // Unprepared, parameters typed here: one round trip.
                let rows = client
                    .query_typed(
                        "UPDATE timattr_history SET entry = ($2::text)::jsonb
                         WHERE project = $1 AND entry @> ($3::text)::jsonb
                           AND EXISTS (SELECT 1 FROM timattr_locks WHERE project = $1 AND token = $4)
                         RETURNING 1",
                        &[
                            (&t.name, Type::TEXT),
                            (&p.0, Type::TEXT),
                            (&p.1, Type::TEXT),
                            (&p.2, Type::TEXT),
                        ],
                    )
                    .await?;
                Ok(rows.len() as u64)
            }
        })?;
        if n != 1 {
            return Err(self.conflict());
        }
        Ok(())
    }
}

/// The parameters of one record statement (see [`record_sql`]).
#[derive(Debug)]
struct RecordArgs {
    lineage: String,
    base: i64,
    new: i64,
    token: String,
    /// The commit id the record gives the project (the same when it is sent again).
    commit_id: String,
    /// The commit id of the record sent before it (or the project's): it commits only on top.
    after: String,
    /// Whether it carries the run's final entry (the run ends when it is durable).
    ends_run: bool,
    folded: Folded,
    /// The run's history entry and the key that finds it (see `history_ctes`).
    entry: Option<String>,
    key: Option<String>,
}

type RecordParams = Arc<RecordArgs>;

/// A record sent ahead (see [`PgStore::record_ahead`]).
#[derive(Debug)]
pub struct Pending {
    handle: tokio::task::JoinHandle<Result<i64, tokio_postgres::Error>>,
    /// The client it was sent on.
    key: usize,
    params: RecordParams,
    serial: u64,
}

impl Pending {
    /// Whether the database has answered.
    pub fn is_answered(&self) -> bool {
        self.handle.is_finished()
    }
}

/// The record statement on `client`, prepared once per connection: one round trip.
async fn record_statement(
    client: Arc<Client>,
    t: Arc<Target>,
    prepared: super::Prepared,
    p: RecordParams,
) -> Result<i64, tokio_postgres::Error> {
    let key = Arc::as_ptr(&client) as usize;
    let statement = match super::prepared_for(&prepared, &client) {
        Some(s) => s,
        None => {
            let s = client.prepare(&record_sql()).await?;
            *prepared.lock().expect("not poisoned") = Some((key, s.clone()));
            s
        }
    };
    let f = &p.folded;
    let row = client
        .query_one(
            &statement,
            &[
                &t.name,
                &p.lineage,
                &p.base,
                &p.new,
                &p.token,
                &f.accounts,
                &f.sets,
                &f.removes,
                &f.tags_added,
                &f.tags_removed,
                &p.commit_id,
                &p.entry,
                &p.key,
                &p.after,
            ],
        )
        .await?;
    Ok(row.get(0))
}
