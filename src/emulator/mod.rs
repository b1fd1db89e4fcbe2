//! The emulator: the server side of the `v4/all_member_push` API family, for offline use
//! (`timattr emulator`, `endpoint: embedded`) and for tests.
//!
//! It checks what the real service checks (usersig, admin, request rules of spec §2, a
//! per-command rate limit), can add latency and inject faults, and keeps its data in memory
//! behind one mutex, persisted as a snapshot plus a write-ahead journal (`persist`).
//! It shares the wire types and codes with the client in [`crate::api`].

mod persist;
mod rules;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::codes::code;
use crate::api::wire::{self, command, Status};
use crate::api::{usersig, Secret};

pub use persist::journal_path;
use rules::{Op, Reject, Request};

/// How to run an emulator.
#[derive(Clone, Debug)]
pub struct Config {
    /// Port 0 picks a free port.
    pub listen: SocketAddr,
    pub sdkappid: u32,
    /// The one admin account (`identifier`).
    pub admin: String,
    pub key: Secret,
    /// Added before each answer.
    pub latency: Duration,
    /// Probability (0..=1) of answering 91000, 60007 or HTTP 502 instead, applying nothing.
    pub fault_rate: f64,
    /// Snapshot file; its journal is `FILE.journal`. `None` keeps data in memory only.
    pub data: Option<PathBuf>,
    /// Requests per command per sliding second (the real service allows 100).
    pub rate_limit: u32,
}

impl Config {
    /// An in-memory emulator on a free loopback port with the service's defaults.
    pub fn local(sdkappid: u32, admin: &str, key: Secret) -> Self {
        Config {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            sdkappid,
            admin: admin.to_owned(),
            key,
            latency: Duration::ZERO,
            fault_rate: 0.0,
            data: None,
            rate_limit: 100,
        }
    }
}

/// The app's data: attribute-name slots and each user's attributes and tags.
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
pub struct Data {
    pub attr_names: BTreeMap<u8, String>,
    pub users: BTreeMap<String, UserData>,
}

#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
pub struct UserData {
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Traffic seen so far, for tests of pacing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Requests that reached each command (any outcome).
    pub requests: BTreeMap<String, u64>,
    /// 60007 answers, from the rate limit or injected.
    pub throttled: u64,
    /// Injected faults (91000, 60007, 502).
    pub faults: u64,
    /// Most arrivals in any sliding one-second window, per command.
    pub max_per_second: BTreeMap<String, u32>,
}

impl Stats {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not emulator data ({why}); move it away to start empty", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("emulator server failed: {0}")]
    Serve(String),
}

/// Arrivals of one command in the last second.
#[derive(Default)]
struct Window {
    requests: u64,
    /// Every arrival (for the max-per-second statistic).
    arrivals: VecDeque<Instant>,
    /// Arrivals that were let through (what the limit counts).
    admitted: VecDeque<Instant>,
    max: u32,
}

fn expire(q: &mut VecDeque<Instant>, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        q.pop_front();
    }
}

#[derive(Default)]
struct Traffic {
    windows: HashMap<&'static str, Window>,
    throttled: u64,
    faults: u64,
}

struct Store {
    data: Data,
    journal: Option<persist::Journal>,
}

impl Store {
    /// Journals then applies a write. A journal failure applies nothing.
    fn write(&mut self, op: &Op) -> std::io::Result<()> {
        if let Some(j) = &mut self.journal {
            j.append(op)?;
        }
        self.data.apply(op);
        if let Some(j) = self.journal.as_mut().filter(|j| j.wants_compaction()) {
            if let Err(e) = j.compact(&self.data) {
                // The journal still holds everything; compaction is retried on the next write.
                tracing::warn!("emulator snapshot failed: {e}");
            }
        }
        Ok(())
    }
}

struct Shared {
    sdkappid: u32,
    admin: String,
    key: Secret,
    rate_limit: u32,
    latency_us: AtomicU64,
    fault_rate_bits: AtomicU64,
    store: Mutex<Store>,
    traffic: Mutex<Traffic>,
}

/// Locks ignoring poison: a panicking handler cannot leave the data half-written, since
/// writes are validated before anything is applied.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running emulator. Dropping it stops serving at once without a final snapshot (like a
/// killed process: the journal still holds every write answered OK); [`Running::stop`] is graceful.
pub struct Running {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Binds, loads the data file if any, and serves in a background task.
pub async fn start(cfg: Config) -> Result<Running, EmulatorError> {
    let (data, journal) = match cfg.data.clone() {
        Some(path) => {
            let (d, j) = tokio::task::spawn_blocking(move || persist::open(&path))
                .await
                .map_err(|e| EmulatorError::Serve(e.to_string()))??;
            (d, Some(j))
        }
        None => (Data::default(), None),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let shared = Arc::new(Shared {
        sdkappid: cfg.sdkappid,
        admin: cfg.admin,
        key: cfg.key,
        rate_limit: cfg.rate_limit,
        latency_us: AtomicU64::new(duration_us(cfg.latency)),
        fault_rate_bits: AtomicU64::new(cfg.fault_rate.to_bits()),
        store: Mutex::new(Store { data, journal }),
        traffic: Mutex::new(Traffic::default()),
    });
    let app = Router::new()
        .route("/v4/all_member_push/{command}", any(handle))
        .fallback(|| async { fail(code::MALFORMED_URL, "no such API path") })
        .with_state(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    tracing::debug!(%addr, "emulator listening");
    Ok(Running {
        addr,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Serves until Ctrl-C, then persists and returns. For `timattr emulator`.
pub async fn run_until_ctrl_c(cfg: Config) -> Result<(), EmulatorError> {
    let running = start(cfg).await?;
    eprintln!("listening on {}", running.base_url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| EmulatorError::Serve(format!("waiting for Ctrl-C: {e}")))?;
    running.stop().await
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, with a wildcard listen address replaced by loopback.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        format!("http://{addr}")
    }

    /// Stops accepting, lets requests in flight finish, then writes the snapshot.
    pub async fn stop(mut self) -> Result<(), EmulatorError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            // Idle keep-alive connections close at once; a stuck one must not hang the stop.
            match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(EmulatorError::Serve(e.to_string())),
                Ok(Err(e)) => return Err(EmulatorError::Serve(e.to_string())),
                Err(_) => task.abort(),
            }
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = lock(&shared.store);
            let Store { data, journal } = &mut *store;
            match journal {
                Some(j) => j.compact(data),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| EmulatorError::Serve(e.to_string()))?
    }

    /// A copy of the current data.
    pub fn snapshot(&self) -> Data {
        lock(&self.shared.store).data.clone()
    }

    /// Sets a value behind the client's back (another system editing the app), for drift tests.
    pub fn set_user_attr(&self, account: &str, name: &str, value: &str) {
        self.edit(Op::SetAttr {
            users: vec![wire::UserAttrs {
                to_account: account.to_owned(),
                attrs: [(name.to_owned(), value.to_owned())].into(),
            }],
        });
    }

    /// Removes a value behind the client's back, for drift tests.
    pub fn remove_user_attr(&self, account: &str, name: &str) {
        self.edit(Op::RemoveAttr {
            users: vec![wire::UserAttrNames {
                to_account: account.to_owned(),
                attrs: vec![name.to_owned()],
            }],
        });
    }

    fn edit(&self, op: Op) {
        if let Err(e) = lock(&self.shared.store).write(&op) {
            tracing::warn!("emulator journal write failed: {e}");
        }
    }

    pub fn set_fault_rate(&self, p: f64) {
        self.shared
            .fault_rate_bits
            .store(p.to_bits(), Ordering::Relaxed);
    }

    pub fn set_latency(&self, d: Duration) {
        self.shared
            .latency_us
            .store(duration_us(d), Ordering::Relaxed);
    }

    pub fn stats(&self) -> Stats {
        let t = lock(&self.shared.traffic);
        Stats {
            requests: t
                .windows
                .iter()
                .map(|(c, w)| (c.to_string(), w.requests))
                .collect(),
            throttled: t.throttled,
            faults: t.faults,
            max_per_second: t
                .windows
                .iter()
                .map(|(c, w)| (c.to_string(), w.max))
                .collect(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn fail(code: i64, info: impl Into<String>) -> Response {
    Json(Status::fail(code, info)).into_response()
}

fn ok<T: Serialize>(body: T) -> Response {
    Json(wire::Response {
        status: Status::ok(),
        body,
    })
    .into_response()
}

/// Percent-decodes a query component (`+` is a space, as in forms).
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[allow(clippy::too_many_lines)] // split by the api rework
async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    Path(cmd): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let latency = s.latency_us.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    if method != Method::POST {
        return fail(code::MALFORMED_URL, "the API only accepts POST");
    }
    let Some(cmd) = command::ALL.iter().copied().find(|c| *c == cmd) else {
        return fail(code::WRONG_COMMAND, format!("unknown command {cmd}"));
    };
    arrive(&s, cmd);
    let q = query_params(query.as_deref().unwrap_or(""));
    let Some(sdkappid) = q.get("sdkappid") else {
        return fail(code::MISSING_SDKAPPID, "sdkappid is missing");
    };
    match sdkappid.parse::<u32>() {
        Ok(n) if n == s.sdkappid => {}
        Ok(_) => return fail(code::SDKAPPID_NOT_FOUND, "no such SDKAppID here"),
        Err(_) => return fail(code::MALFORMED_URL, "sdkappid is not a number"),
    }
    let identifier = q.get("identifier").map(String::as_str).unwrap_or("");
    let sig = q.get("usersig").map(String::as_str).unwrap_or("");
    if let Err(c) = usersig::verify(sig, s.sdkappid, identifier, &s.key, now_unix()) {
        return fail(c, "usersig check failed");
    }
    if identifier != s.admin {
        return fail(code::NOT_ADMIN, "identifier is not an app admin");
    }
    if !admit(&s, cmd) {
        return fail(code::FREQUENCY_LIMIT, "API call frequency over the limit");
    }
    if let Some(r) = injected_fault(&s) {
        return r;
    }
    let mut store = lock(&s.store);
    match rules::parse(cmd, &body, &store.data) {
        Err(Reject { code, info }) => fail(code, info),
        Ok(Request::Write(op)) => match store.write(&op) {
            Ok(()) => ok(wire::Empty {}),
            Err(e) => {
                tracing::warn!("emulator journal write failed: {e}");
                fail(code::INTERNAL, "could not record the write")
            }
        },
        Ok(Request::GetAttrName) => ok(wire::AttrNames {
            attr_names: store
                .data
                .attr_names
                .iter()
                .map(|(slot, n)| (slot.to_string(), n.clone()))
                .collect(),
        }),
        // Answered in reverse order: the documented sample reorders too, and clients must cope.
        Ok(Request::GetAttr(accounts)) => ok(wire::UserAttrsList {
            user_attrs: accounts
                .into_iter()
                .rev()
                .map(|a| wire::UserAttrs {
                    attrs: store
                        .data
                        .users
                        .get(&a)
                        .map(|u| u.attrs.clone())
                        .unwrap_or_default(),
                    to_account: a,
                })
                .collect(),
        }),
        Ok(Request::GetTag(accounts)) => ok(wire::UserTagsList {
            user_tags: accounts
                .into_iter()
                .rev()
                .map(|a| wire::UserTags {
                    tags: store
                        .data
                        .users
                        .get(&a)
                        .map(|u| u.tags.clone())
                        .unwrap_or_default(),
                    to_account: a,
                })
                .collect(),
        }),
    }
}

/// Counts an arrival and keeps the busiest-second statistic.
fn arrive(s: &Shared, cmd: &'static str) {
    let now = Instant::now();
    let mut t = lock(&s.traffic);
    let w = t.windows.entry(cmd).or_default();
    w.requests += 1;
    expire(&mut w.arrivals, now);
    w.arrivals.push_back(now);
    w.max = w
        .max
        .max(u32::try_from(w.arrivals.len()).unwrap_or(u32::MAX));
}

/// The rate limit: at most `rate_limit` admitted requests per command in any sliding second.
/// Refused requests do not count, so a client that slows down gets through again.
fn admit(s: &Shared, cmd: &'static str) -> bool {
    let now = Instant::now();
    let mut t = lock(&s.traffic);
    let w = t.windows.entry(cmd).or_default();
    expire(&mut w.admitted, now);
    if w.admitted.len() >= s.rate_limit as usize {
        t.throttled += 1;
        return false;
    }
    w.admitted.push_back(now);
    true
}

fn injected_fault(s: &Shared) -> Option<Response> {
    let p = f64::from_bits(s.fault_rate_bits.load(Ordering::Relaxed));
    if p <= 0.0 || rand::random::<f64>() >= p {
        return None;
    }
    let mut t = lock(&s.traffic);
    t.faults += 1;
    Some(match rand::random::<u8>() % 3 {
        0 => fail(code::INTERNAL, "injected fault: internal error"),
        1 => {
            t.throttled += 1;
            fail(code::FREQUENCY_LIMIT, "injected fault: frequency limit")
        }
        _ => (StatusCode::BAD_GATEWAY, "502 Bad Gateway (injected fault)").into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_url_decoded() {
        let q = query_params("usersig=a%2Ab-c_&identifier=ad%20min&x&sdkappid=1+2&bad=%zz%4");
        assert_eq!(q["usersig"], "a*b-c_");
        assert_eq!(q["identifier"], "ad min");
        assert_eq!(q["x"], "");
        assert_eq!(q["sdkappid"], "1 2");
        assert_eq!(q["bad"], "%zz%4");
    }
}
