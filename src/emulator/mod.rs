//! The emulator: the server side of the `v4/all_member_push` API family, for offline use
//! (`timattr emulator`, `endpoint: embedded`) and for tests.
//!
//! It checks what the real service checks (usersig, admin, request rules of spec §2, a
//! per-command rate limit), can add latency and inject faults, and keeps its data in memory
//! behind one mutex, persisted as a snapshot plus a write-ahead journal. It reads requests and
//! writes answers with the client's own wire types and codes ([`crate::api`]).
//!
//! - `server`: lifecycle (start, stop, the [`Running`] handle).
//! - `handler`: one request, checked in the service's order.
//! - `rules`: validation of a request against the data, into a read or a write `Op`.
//! - `traffic`: the per-command rate windows and statistics.
//! - `faults`: latency and injected faults.
//! - `simulate`: misconfigurations of a real app (wrong key or SDKAppID, full slots, clock
//!   skew), for `timattr doctor`.
//! - `persist`: the data file (snapshot, written to a temporary file and renamed) and journal.

mod faults;
mod handler;
mod persist;
mod rules;
mod server;
mod simulate;
mod traffic;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::Secret;

pub use persist::journal_path;
use rules::Op;
pub use server::{run_until_ctrl_c, start, Running};
pub use simulate::{Simulate, ENV as SIMULATE_ENV};

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
    /// Misconfigurations to simulate (none by default).
    pub simulate: Simulate,
    /// Load `data` but never write it: writes answered OK stay in memory (`timattr doctor`
    /// on `endpoint: embedded`; always so while simulating).
    pub read_only_data: bool,
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
            simulate: Simulate::default(),
            read_only_data: false,
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

/// The data and its journal, behind one mutex.
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

/// What every request handler shares.
struct Shared {
    sdkappid: u32,
    admin: String,
    key: Secret,
    rate_limit: u32,
    faults: faults::Faults,
    store: Mutex<Store>,
    traffic: Mutex<traffic::Traffic>,
}

/// Locks ignoring poison: a panicking handler cannot leave the data half-written, since
/// writes are validated before anything is applied.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
