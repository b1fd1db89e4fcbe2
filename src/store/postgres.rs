//! The state in PostgreSQL (DESIGN.md §7): the only module that uses the database client.
//!
//! Several projects share one database, keyed by `name`. Tables (created and migrated by the
//! tool, see [`MIGRATIONS`]):
//!
//! - `timattr_schema`: one row, the schema version; a newer one is refused, not misread;
//! - `timattr_projects`: per project the metadata of `Meta` (app, lineage, serial, commit id,
//!   slots and their account types); every write of the row makes a new random commit id;
//! - `timattr_accounts`: one row per managed account: its attributes as a JSON object by name
//!   (readable with plain SQL; a batch merges into it with `||` and `-` in one statement) and
//!   its tags as a `text[]` sorted bytewise;
//! - `timattr_history`: one row per apply, import, fix or restore;
//! - `timattr_locks`: who holds a project's writer lock (host, pid, command, since).
//!
//! Writers hold a session-level `pg_advisory_lock` on their own connection, so the lock dies
//! with the process or the connection. Every write is one statement that also checks, as a
//! compare-and-swap, that the project is still at the lineage and serial this writer read
//! under the lock and that the lock row is still its own: a writer that lost its lock can
//! never overwrite another's work. Readers take no lock and read one REPEATABLE READ
//! snapshot for their whole run.
//!
//! Round trips are few (DESIGN.md §7, see [`open`]): opening is connecting and one flight;
//! statements run often are prepared once per connection, the others sent unprepared.
//!
//! The client is async; the store's methods are synchronous. The connection is driven on the
//! process's one runtime ([`crate::runtime`]), and a call waits for a task on it, so the store
//! works the same from plain code and from inside that runtime's `block_on`. Dropping a store
//! closes its connection at once, which releases its lock.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio_postgres::Client;

use super::Meta;
use crate::model::{Attrs, Managed, NameIdx, Names, TagPool};
use crate::settings::DatabaseUrl;

mod tls;

/// The schema this binary writes. Readers also accept [`MIN_READ_VERSION`] and later.
pub const SCHEMA_VERSION: i32 = 5;
/// The oldest schema readers can read without a migration.
pub const MIN_READ_VERSION: i32 = 1;

/// Schema steps: `MIGRATIONS[i]` takes the tables from version `i` to `i + 1`.
pub const MIGRATIONS: [&str; 5] = [
    // 1: projects, accounts, history.
    "CREATE TABLE timattr_schema (version integer NOT NULL);
     INSERT INTO timattr_schema VALUES (0);
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
         PRIMARY KEY (project, seq));",
    // 2: the holder of each project's writer lock, so a refused writer can name it.
    "CREATE TABLE timattr_locks (
         project text PRIMARY KEY,
         token text NOT NULL,
         host text NOT NULL,
         pid bigint NOT NULL,
         command text NOT NULL,
         since bigint NOT NULL);",
    // 3: tags (issue 16). A constant default: no table rewrite, old rows read as untagged.
    "ALTER TABLE timattr_accounts ADD COLUMN tags text[] NOT NULL DEFAULT '{}';",
    // 4: commit ids (issue 20). Empty until the project's next write.
    "ALTER TABLE timattr_projects ADD COLUMN commit_id text NOT NULL DEFAULT '';",
    // 5: the account type of each slot (issue 27). Old rows read as all type 0.
    "ALTER TABLE timattr_projects ADD COLUMN slot_types jsonb NOT NULL DEFAULT '{}';",
];

/// The first schema whose accounts have tags; readers of older ones see none.
const TAGS_VERSION: i32 = 3;
/// The first schema whose projects have a commit id; readers of older ones see none.
const COMMIT_ID_VERSION: i32 = 4;

/// Serialises migrations between processes (an arbitrary constant of this tool).
const MIGRATION_LOCK: i64 = 0x7469_6d61_7474_7201;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection attempts after a connection is lost mid-run, and the waits between them.
const RECONNECT_BACKOFF: [u64; 5] = [200, 500, 1000, 2000, 4000];

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot reach PostgreSQL at {addr} (database {db:?}): {message}; check the host and port of the state URL (`state` or TIMATTR_STATE) and that the server accepts connections")]
    Unreachable {
        addr: String,
        db: String,
        message: String,
    },
    #[error("PostgreSQL at {addr} has no database {db:?}: create it (CREATE DATABASE \"{db}\"), or fix the database name in the state URL (`state` or TIMATTR_STATE)")]
    NoDatabase { addr: String, db: String },
    #[error("TLS with PostgreSQL at {addr} failed: {message}")]
    Tls { addr: String, message: String },
    #[error("the state URL {url} is not usable: {message}")]
    BadUrl { url: String, message: String },
    #[error("{target}: {message}")]
    Database { target: String, message: String },
    #[error("{target} is locked by `timattr {command}` on host {host} (pid {pid}) since {since}: wait for it to finish, or let this command wait with --lock-timeout DURATION")]
    Locked {
        target: String,
        command: String,
        host: String,
        pid: i64,
        since: String,
    },
    #[error("{target}: the tables have schema version {found}, newer than this timattr understands ({SCHEMA_VERSION}): upgrade timattr")]
    NewerSchema { target: String, found: i32 },
    #[error("{target}: the tables have schema version {found}, older than this timattr reads: run a writer (`timattr apply`, `import` or `state restore`) of this version once to upgrade them")]
    OlderSchema { target: String, found: i32 },
    #[error("{target} belongs to sdkappid {store_app} at {store_host}, but the project is sdkappid {project_app} at {project_host}: give this project its own `state.name`")]
    OtherApp {
        target: String,
        store_app: i64,
        store_host: String,
        project_app: u32,
        project_host: String,
    },
    #[error("{target} is damaged: {message}; restore it from a `timattr state export` backup or rebuild it with `timattr import`")]
    Corrupt { target: String, message: String },
    #[error("{target}: {message}")]
    Conflict { target: String, message: String },
    #[error("{0}")]
    Restore(String),
}

type Result<T, E = PgError> = std::result::Result<T, E>;

/// Where a project's state lives in PostgreSQL, parsed from its URL.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: tls::Mode,
    /// `host:port`, for messages.
    pub addr: String,
    pub dbname: String,
    /// The project's key in the database.
    pub name: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Target {
    /// Parses `url` (libpq's URL form, `sslmode` and `sslrootcert` as libpq has them). The
    /// password comes from the URL or else `PGPASSWORD`; the user from the URL, `PGUSER` or
    /// the login name.
    pub fn parse(url: &DatabaseUrl, name: &str) -> Result<Target> {
        let bad = |message: String| PgError::BadUrl {
            url: url.redacted(),
            message,
        };
        // The URL is split as the checks and the redaction split it: no second reading.
        url.parts().map_err(bad)?;
        let (rest, tls) = tls::Mode::split_from_url(url.expose()).map_err(bad)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        if config.get_password().is_none() {
            if let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
                config.password(p.as_encoded_bytes());
            }
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".into());
            config.user(user);
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("timattr")
            .keepalives_idle(Duration::from_secs(30));
        let dbname = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or_default()
            .to_owned();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let addr = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
        };
        Ok(Target {
            config,
            tls,
            addr,
            dbname,
            name: name.to_owned(),
        })
    }

    /// `state "NAME" in PostgreSQL database "DB" at HOST:PORT`: never with a password.
    pub fn describe(&self) -> String {
        format!(
            "state {:?} in PostgreSQL database {:?} at {}",
            self.name, self.dbname, self.addr
        )
    }

    fn db_err(&self, e: &tokio_postgres::Error) -> PgError {
        PgError::Database {
            target: self.describe(),
            message: describe_error(e),
        }
    }

    fn corrupt(&self, message: impl Into<String>) -> PgError {
        PgError::Corrupt {
            target: self.describe(),
            message: message.into(),
        }
    }

    /// The advisory-lock key of this project (FNV-1a of its name, so every binary agrees).
    fn lock_key(&self) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"timattr:".iter().chain(self.name.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h as i64
    }

    /// Connects; the connection is driven on the runtime until its [`Driver`] is dropped.
    async fn connect(&self) -> Result<(Client, Driver)> {
        let unreachable = |e: tokio_postgres::Error| self.connect_failure(&e);
        let connector = self.tls.connector().map_err(|message| PgError::BadUrl {
            url: format!("for {}", self.addr),
            message,
        })?;
        Ok(match connector {
            None => {
                let (client, conn) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(unreachable)?;
                (client, Driver::spawn(conn))
            }
            Some(tls) => {
                let mut config = self.config.clone();
                config.ssl_mode(self.tls.ssl_mode());
                let (client, conn) = config.connect(tls).await.map_err(unreachable)?;
                (client, Driver::spawn(conn))
            }
        })
    }
}

impl Target {
    /// Why connecting failed, as precisely as the error says: a missing database and a TLS
    /// failure are not "cannot reach".
    fn connect_failure(&self, e: &tokio_postgres::Error) -> PgError {
        if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) {
            return PgError::NoDatabase {
                addr: self.addr.clone(),
                db: self.dbname.clone(),
            };
        }
        if let Some(tls) = tls_failure(e) {
            return PgError::Tls {
                addr: self.addr.clone(),
                message: self.tls.explain(&tls, self.host()),
            };
        }
        PgError::Unreachable {
            addr: self.addr.clone(),
            db: self.dbname.clone(),
            message: describe_error(e),
        }
    }

    /// The host name the client connects to (what `verify-full` checks).
    fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }
}

/// The TLS error under a client error, if the handshake is what failed.
fn tls_failure(e: &tokio_postgres::Error) -> Option<rustls::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            return Some(r.clone());
        }
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>());
        if let Some(r) = inner {
            return Some(r.clone());
        }
        source = s.source();
    }
    None
}

type ConnectionFuture = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// Drives one connection on the runtime, and closes it when dropped: the connection (and its
/// socket) is dropped then and there, not when the runtime next gets to it, so the server ends
/// the session, and releases its advisory locks, as soon as the store is gone.
struct Driver {
    connection: Arc<Mutex<Option<ConnectionFuture>>>,
    task: tokio::task::AbortHandle,
}

impl Driver {
    /// Spawns the task driving `conn` (called on the runtime).
    fn spawn(
        conn: impl Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    ) -> Driver {
        let connection: Arc<Mutex<Option<ConnectionFuture>>> =
            Arc::new(Mutex::new(Some(Box::pin(conn))));
        let slot = connection.clone();
        let task = tokio::spawn(async move {
            let ended = std::future::poll_fn(|cx| {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                let Some(conn) = slot.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                let ended = conn.as_mut().poll(cx);
                if ended.is_ready() {
                    // Dropped at once: while the connection lives, the client's channel to it
                    // stays open and a statement sent after the server went away would wait
                    // forever instead of failing (and being sent again after a reconnect).
                    *slot = None;
                }
                ended
            })
            .await;
            if let Err(e) = ended {
                tracing::debug!("database connection ended: {}", describe_error(&e));
            }
        });
        Driver {
            connection,
            task: task.abort_handle(),
        }
    }

    /// Closes the connection now.
    fn close(&self) {
        let conn = self
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(conn);
        self.task.abort();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.close();
    }
}

/// A client error as one line: the server's message and code, or the client's own.
fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(": ");
                s.push_str(&cause.to_string());
                source = cause.source();
            }
            s
        }
    }
}

/// Whether an error means the connection is gone (rather than a refused statement).
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now.
        Some(code) => code.code().starts_with("57P") || code.code().starts_with("08"),
        None => e.as_db_error().is_none(),
    }
}

/// The writer side of an open store: the lock it holds and who it says it is.
#[derive(Debug, Clone)]
struct Writer {
    token: String,
    command: String,
}

/// The state of one project in PostgreSQL.
pub struct PgStore {
    client: Arc<Client>,
    /// Closes the connection (so releases the lock) when the store is dropped.
    driver: Driver,
    target: Arc<Target>,
    meta: Meta,
    /// The schema version of the tables (older than [`SCHEMA_VERSION`] only for readers).
    schema: i32,
    writer: Option<Writer>,
    /// The record statement, prepared once per connection (keyed by the client's address):
    /// with a distant database, each group commit is then one round trip.
    prepared: Prepared,
    /// The COPY of the accounts, prepared while opening (keyed likewise).
    copy: Prepared,
    /// The run being recorded: every commit writes its history entry.
    run: Option<super::Run>,
    /// The commit id of the last record sent (ahead or not): the next record commits only on
    /// top of it (see `write::record_sql`). `None`: the project's, as last read or written.
    sent: Option<String>,
}

type Prepared = Arc<std::sync::Mutex<Option<(usize, tokio_postgres::Statement)>>>;

/// `statement` prepared on `client`, to be kept in a [`Prepared`].
fn prepared_on(client: &Arc<Client>, statement: tokio_postgres::Statement) -> Prepared {
    Arc::new(Mutex::new(Some((Arc::as_ptr(client) as usize, statement))))
}

/// The statement kept in `prepared` if it was prepared on `client`.
fn prepared_for(prepared: &Prepared, client: &Arc<Client>) -> Option<tokio_postgres::Statement> {
    let key = Arc::as_ptr(client) as usize;
    prepared
        .lock()
        .expect("not poisoned")
        .clone()
        .filter(|(k, _)| *k == key)
        .map(|(_, s)| s)
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target.describe())
            .field("meta", &self.meta)
            .finish()
    }
}

/// The process's runtime (see [`crate::runtime`]).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    crate::runtime::get()
        .map_err(|e| PgError::Restore(format!("cannot start the database runtime: {e}")))
}

/// Runs `f` on `rt` and waits for it from any thread, inside another runtime or not.
fn block<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl Future<Output = T> + Send + 'static,
) -> T {
    let task = rt.spawn(f);
    match futures_executor::block_on(task) {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What a writer tells the lock table and the refused writers about itself.
pub struct WriterInfo {
    /// The command holding the lock, e.g. `apply` or `drift --fix`.
    pub command: String,
    /// How long to wait for another writer's lock; `None` fails at once.
    pub lock_timeout: Option<Duration>,
}

pub mod backend;
mod copy;
mod open;
pub mod probe;
mod read;
mod restore;
pub mod write;

impl PgStore {
    /// Opens a project's state for reading, without creating anything: `Ok(None)` when the
    /// database has no timattr tables or no such project yet. Everything read through it comes
    /// from one snapshot. Connecting and one round trip (see [`open::reader`]).
    pub fn open_existing(target: Target) -> Result<Option<PgStore>> {
        let target = Arc::new(target);
        let t = target.clone();
        let opened = block(runtime()?, async move {
            let (client, driver) = t.connect().await?;
            let opened = open::reader(&client, &t).await?;
            Ok::<_, PgError>(
                opened
                    .found
                    .map(|found| (client, driver, found, opened.copy)),
            )
        })?;
        Ok(opened.map(|(client, driver, (schema, meta), copy)| {
            let client = Arc::new(client);
            let copy = match copy.filter(|_| schema >= TAGS_VERSION) {
                Some(statement) => prepared_on(&client, statement),
                None => Prepared::default(),
            };
            PgStore {
                client,
                driver,
                target,
                meta,
                schema,
                writer: None,
                prepared: Prepared::default(),
                copy,
                run: None,
                sent: None,
            }
        }))
    }

    /// Opens an existing project for writing, without creating anything: `Ok(None)` when
    /// there are no tables or no such project. Holds the lock from here on.
    pub fn open_existing_writer(target: Target, who: WriterInfo) -> Result<Option<PgStore>> {
        Self::open_writer(target, who, None)
    }

    /// Opens a project's state for writing: migrates the tables, takes the project's lock
    /// (waiting up to `who.lock_timeout`), then reads the metadata — so a writer that waited
    /// sees what the previous one wrote — creating the project for `sdkappid`/`host` when
    /// missing. Binding or refusing a project of another app is the core's
    /// (`State::bind`).
    pub fn open(target: Target, sdkappid: u32, host: &str, who: WriterInfo) -> Result<PgStore> {
        Ok(
            Self::open_writer(target, who, Some((sdkappid, host.to_owned())))?
                .expect("a project is created when missing"),
        )
    }

    /// The writers' opening: connecting (or a connection kept by an opening that found no
    /// tables) and one round trip (see [`open::writer`]); when another writer holds the lock,
    /// waiting for it, then creating and reading as each step comes.
    fn open_writer(
        target: Target,
        who: WriterInfo,
        create: Option<(u32, String)>,
    ) -> Result<Option<PgStore>> {
        let target = Arc::new(target);
        let t = target.clone();
        let writer = Writer {
            token: format!("{:032x}", rand::random::<u128>()),
            command: who.command,
        };
        let w = writer.clone();
        let opened = block(runtime()?, async move {
            let (client, driver) = match open::take_idle(&t) {
                Some(kept) => kept,
                None => t.connect().await?,
            };
            let how = create.as_ref().map(|(sdkappid, host)| open::Create {
                sdkappid: *sdkappid,
                host,
            });
            let (meta, record, copy) = match open::writer(&client, &t, &w, how).await? {
                open::WriterOpened::NoTables(prepared) => {
                    open::keep_idle(&t, client, driver, prepared);
                    return Ok(None);
                }
                open::WriterOpened::NoProject => return Ok(None),
                open::WriterOpened::Locked { meta, record, copy } => (meta, record, copy),
                open::WriterOpened::Busy {
                    holder,
                    record,
                    copy,
                } => {
                    write::wait_for_lock(&client, &t, &w, who.lock_timeout, holder).await?;
                    let meta = match &create {
                        Some((sdkappid, host)) => {
                            Some(write::create_project(&client, &t, *sdkappid, host).await?)
                        }
                        None => read::meta(&client, &t, SCHEMA_VERSION).await?,
                    };
                    let Some(meta) = meta else { return Ok(None) };
                    (meta, record, copy)
                }
            };
            Ok::<_, PgError>(Some((client, driver, meta, record, copy)))
        })?;
        Ok(opened.map(|(client, driver, meta, record, copy)| {
            let client = Arc::new(client);
            PgStore {
                prepared: prepared_on(&client, record),
                copy: prepared_on(&client, copy),
                client,
                driver,
                target,
                meta,
                schema: SCHEMA_VERSION,
                writer: Some(writer),
                run: None,
                sent: None,
            }
        }))
    }

    fn rt(&self) -> &'static tokio::runtime::Runtime {
        crate::runtime::get().expect("the runtime was built when the store was opened")
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Writes `sdkappid`/`host` into the project's row, which recorded nothing yet (the core
    /// decides when: `State::bind`); a writer's.
    pub fn rebind(&mut self, sdkappid: u32, host: &str) -> Result<()> {
        let (client, t, meta, host) = (
            self.client.clone(),
            self.target.clone(),
            self.meta.clone(),
            host.to_owned(),
        );
        self.meta = block(self.rt(), async move {
            write::bind(&client, &t, meta, sdkappid, &host).await
        })?;
        Ok(())
    }
}

/// Decodes one account as stored: its attributes (a JSON object of strings, names interned in
/// `names` when the table lacks them) and its tags (kept sorted and unique however stored,
/// shared through `pool`).
fn managed_from_row<'a>(
    json: &[u8],
    tags: impl IntoIterator<Item = &'a str>,
    names: &mut Names,
    pool: &mut TagPool,
) -> Result<Managed, String> {
    let map: BTreeMap<String, String> =
        serde_json::from_slice(json).map_err(|e| format!("an account's attributes: {e}"))?;
    let mut attrs = Attrs::with_capacity(map.len());
    for (n, v) in map {
        let idx: NameIdx = names
            .intern(&n)
            .ok_or("more than 255 distinct attribute names")?;
        attrs.insert(idx, v.into_boxed_str());
    }
    let tags = tags.into_iter().map(|t| pool.get(t)).collect();
    Ok(Managed::new(attrs, tags))
}

#[cfg(test)]
mod tests;
