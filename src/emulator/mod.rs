//! The emulator: the server side of both API families — `v4/all_member_push` and
//! `v4/timpush`, on the same data (the path decides) — for offline use (`timattr emulator`,
//! `endpoint: embedded`) and for tests.
//!
//! It checks what the real service checks (usersig, admin, request rules of spec §2, a
//! per-command rate limit), can add latency and inject faults, and keeps its data in memory
//! behind one mutex, persisted as a snapshot plus a write-ahead journal. It reads requests and
//! writes answers with the client's own wire types and codes ([`crate::api`]).
//!
//! - `server`: lifecycle (start, stop, the [`Running`] handle).
//! - `handler`: one request, checked in the service's order.
//! - `timpush`: the timpush family's requests: account types, missing accounts and the
//!   `ErrorList` of partial success (timpush-api.md).
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
mod timpush;
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
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
    /// Slots, RegistrationIDs and missing accounts to add to the data at start.
    pub setup: Setup,
    /// Misconfigurations to simulate (none by default).
    pub simulate: Simulate,
    /// Load `data` but never write it: writes answered OK stay in memory (`timattr doctor`
    /// on `endpoint: embedded`; always so while simulating).
    pub read_only_data: bool,
}

/// What the emulated app holds before the first request (flags of `timattr emulator`, or the
/// `TIMATTR_EMULATOR_*` variables for `endpoint: embedded`): added to the data at start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Setup {
    /// Slots configured up front: slot → (name, account type 0 or 1).
    pub slots: BTreeMap<u8, (String, u8)>,
    /// Accounts that are RegistrationIDs (every other account is a UserID).
    pub registration_ids: Vec<String>,
    /// Accounts that do not exist: timpush answers 70107 for them.
    pub missing: Vec<String>,
}

/// The environment variables that set up the embedded emulator (the flags of
/// `timattr emulator` have no other way in): comma-separated lists.
pub mod env {
    /// `SLOT=NAME[:user_id|registration_id]`, e.g. `2=device_city:registration_id`.
    pub const SLOTS: &str = "TIMATTR_EMULATOR_SLOTS";
    pub const REGISTRATION_IDS: &str = "TIMATTR_EMULATOR_REGISTRATION_IDS";
    pub const MISSING_ACCOUNTS: &str = "TIMATTR_EMULATOR_MISSING_ACCOUNTS";
}

impl Setup {
    /// Parses one `SLOT=NAME[:TYPE]` (`--slot`, [`env::SLOTS`]).
    pub fn parse_slot(s: &str) -> Result<(u8, (String, u8)), String> {
        let bad = || format!("{s:?} is not SLOT=NAME[:user_id|registration_id] with SLOT 0 to 9");
        let (slot, rest) = s.split_once('=').ok_or_else(bad)?;
        let slot: u8 = slot
            .trim()
            .parse()
            .ok()
            .filter(|n| *n < 10)
            .ok_or_else(bad)?;
        let (name, ty) = match rest.rsplit_once(':') {
            Some((name, ty)) => {
                let ty = crate::model::AccountType::parse(ty.trim()).ok_or_else(bad)?;
                (name, ty.code())
            }
            None => (rest, 0),
        };
        let name = name.trim();
        if name.is_empty() || name.len() > crate::model::limits::MAX_ATTR_BYTES {
            return Err(bad());
        }
        Ok((slot, (name.to_owned(), ty)))
    }

    /// The setup the [`env`] variables give (unset ones add nothing).
    pub fn from_env() -> Result<Setup, String> {
        let list = |var: &str| -> Vec<String> {
            std::env::var(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut setup = Setup {
            registration_ids: list(env::REGISTRATION_IDS),
            missing: list(env::MISSING_ACCOUNTS),
            ..Setup::default()
        };
        for s in list(env::SLOTS) {
            let (slot, v) = Setup::parse_slot(&s).map_err(|e| format!("{}: {e}", env::SLOTS))?;
            setup.slots.insert(slot, v);
        }
        Ok(setup)
    }

    /// Adds the setup to `data`.
    fn apply(&self, data: &mut Data) {
        for (slot, (name, ty)) in &self.slots {
            data.attr_names.insert(*slot, name.clone());
            if *ty == 0 {
                data.attr_types.remove(slot);
            } else {
                data.attr_types.insert(*slot, *ty);
            }
        }
        data.registration_ids
            .extend(self.registration_ids.iter().cloned());
        data.missing.extend(self.missing.iter().cloned());
    }
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
            setup: Setup::default(),
            simulate: Simulate::default(),
            read_only_data: false,
        }
    }
}

/// The app's data: attribute-name slots and each user's attributes and tags; for the timpush
/// family also the account type of slots and tags, which accounts are RegistrationIDs and which
/// do not exist. Those are absent from the file while empty, so a legacy data file stays as it was.
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
pub struct Data {
    pub attr_names: BTreeMap<u8, String>,
    pub users: BTreeMap<String, UserData>,
    /// Non-zero account types of slots (1 = RegistrationID).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attr_types: BTreeMap<u8, u8>,
    /// The account type of each tag that is not a UserID tag, set by its first use (no API
    /// sets a tag's type).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_types: BTreeMap<String, u8>,
    /// Accounts that are RegistrationIDs; every other account is a UserID.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub registration_ids: BTreeSet<String>,
    /// Accounts that do not exist (timpush: 70107 in the `ErrorList`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub missing: BTreeSet<String>,
}

impl Data {
    /// The account type of `account`: 1 for a RegistrationID, 0 for a UserID.
    pub fn account_type(&self, account: &str) -> u8 {
        u8::from(self.registration_ids.contains(account))
    }

    /// The account type of `slot` (0 unless set otherwise).
    pub fn slot_type(&self, slot: u8) -> u8 {
        self.attr_types.get(&slot).copied().unwrap_or(0)
    }

    /// The account type of the attribute called `name`, if it is configured.
    pub fn name_type(&self, name: &str) -> Option<u8> {
        let slot = self.attr_names.iter().find(|(_, n)| *n == name)?.0;
        Some(self.slot_type(*slot))
    }
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
    /// timpush `add_tag` requests applied with `Replace: 1` (timattr never sends one).
    pub replace_requests: u64,
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
