//! The state of last-applied values `L`, backend-neutral: this module and its shared
//! submodules are the core; each backend is a module beside them that only says how it
//! keeps its own encoding.
//!
//! The core owns:
//! - the shared types: [`Meta`] (what a store says about itself), [`Record`] and [`Edit`]
//!   (what a commit changes), [`HistoryEntry`] (`history`), the export format (`export`);
//! - the [`Backend`] trait (`backend`) and [`State`] (`interface`), which picks the backend
//!   from the settings in one match and writes the rules every backend shares once: binding
//!   an empty store (serial 0) to the app, refusing another app's, the serial's bound, the
//!   recorded slot types, pipelined records;
//! - the rules of the data: the restore guard and reading a backup (`export`), the history
//!   entry each commit writes (`history`, `who`), the split merge the planner reads (`split`);
//! - the one error, [`StateError`], whose kinds every backend maps onto (`error`).
//!
//! The backends: [`sled`] (the embedded default, a directory) and [`postgres`] (a shared
//! database). Everything specific to one lives in its module, so replacing or adding one is
//! that module's work plus one arm in `interface`'s opening match.

pub mod backend;
mod error;
pub mod export;
pub mod history;
pub mod interface;
#[cfg(test)]
pub(crate) mod memory;
pub mod postgres;
pub mod sled;
pub mod split;
pub mod who;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Attrs, Managed, Tag};

/// The embedded default's store, under the name tests of other modules (PostgreSQL's, the
/// executor's) use to move a state through sled.
pub use self::sled::SledStore as Store;
pub use backend::{Backend, Opening, PendingRecord};
pub use error::{ErrorKind, StateError};
pub use export::{check_app, read_export, Export, ExportHeader, ExportLine, MAX_EXPORT_BYTES};
pub use history::{HistoryEntry, Run};
pub use interface::State;
pub use split::Split;

/// The state's format version, in [`Meta`] and in every export header: bumped when sled's
/// layout changes (older binaries refuse newer stores; see `sled` for the versions it
/// migrates), and the newest an export may carry.
pub const FORMAT_VERSION: u32 = 3;

/// A new random id (128 bits, hex): lineages and commit ids.
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The recorded types of the slots that keep their names in `slots` (a slot's type never
/// changes, so recording names alone keeps them).
pub(crate) fn kept_types(meta: &Meta, slots: &BTreeMap<u8, String>) -> BTreeMap<u8, u8> {
    meta.slot_types
        .iter()
        .filter(|(s, _)| slots.get(s) == meta.slots.get(s))
        .map(|(s, t)| (*s, *t))
        .collect()
}

/// What the store says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub format_version: u32,
    pub sdkappid: u32,
    pub endpoint_host: String,
    pub lineage: String,
    pub serial: u64,
    /// A random id made by every commit and never made again (not by a restore of an older
    /// export, not by another lineage): unlike the serial, it names one exact state. Empty in a
    /// store written before commit ids, until its next commit.
    #[serde(default)]
    pub commit_id: String,
    /// Attribute-name slots as configured in the app: slot `0..=9` → name.
    #[serde(default)]
    pub slots: BTreeMap<u8, String>,
    /// The account type (`AttrTypes`) of each slot that is not a UserID slot (DESIGN.md §12):
    /// only non-zero types are kept, so a store without them — every store of the legacy
    /// family, and every one made before types existed — reads as all type 0, byte for byte.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slot_types: BTreeMap<u8, u8>,
}

impl Meta {
    /// The metadata of a new, empty store of `sdkappid`/`host`: a new lineage, serial 0, no
    /// commit yet (its first commit makes the id), no slots.
    pub fn new(sdkappid: u32, host: &str) -> Meta {
        Meta {
            format_version: FORMAT_VERSION,
            sdkappid,
            endpoint_host: host.to_owned(),
            lineage: random_id(),
            serial: 0,
            commit_id: String::new(),
            slots: BTreeMap::new(),
            slot_types: BTreeMap::new(),
        }
    }

    /// Whether the store recorded nothing yet (serial 0): such a store is bound to no app.
    pub fn recorded_nothing(&self) -> bool {
        self.serial == 0
    }

    /// Whether the store was made for `sdkappid` at `host`.
    pub fn belongs(&self, sdkappid: u32, host: &str) -> bool {
        self.sdkappid == sdkappid && self.endpoint_host == host
    }

    /// Whether a project of `sdkappid`/`host` may use this store (DESIGN.md §6): it was made
    /// for that app, or it recorded nothing yet (a writer binds it).
    pub fn usable_by(&self, sdkappid: u32, host: &str) -> bool {
        self.recorded_nothing() || self.belongs(sdkappid, host)
    }

    /// The recorded account type of `slot` (0, UserID, unless recorded otherwise).
    pub fn slot_type(&self, slot: u8) -> u8 {
        self.slot_types.get(&slot).copied().unwrap_or(0)
    }
}

/// A batch of outcomes the API confirmed, to be written in one atomic step. The tag lists may
/// name an account several times (its runs of 10 tags in consecutive batches of one group).
#[derive(Debug, Default)]
pub struct Record<'a> {
    /// Accounts whose values were set: the names and values the server confirmed.
    pub set: Vec<(&'a str, &'a Attrs)>,
    /// Accounts whose names were removed.
    pub removed: Vec<(&'a str, Vec<crate::model::NameIdx>)>,
    /// Accounts that got tags: the tags the server confirmed.
    pub tags_added: Vec<(&'a str, &'a [Tag])>,
    /// Accounts that lost tags: the tags the server confirmed removed.
    pub tags_removed: Vec<(&'a str, &'a [Tag])>,
}

/// What one [`Record`] does to one account.
#[derive(Debug, Default, Clone)]
pub struct Edit<'a> {
    pub set: Option<&'a Attrs>,
    pub removed: &'a [crate::model::NameIdx],
    /// Every confirmed run of added (removed) tags, in the record's order.
    pub tags_added: Vec<&'a [Tag]>,
    pub tags_removed: Vec<&'a [Tag]>,
}

impl Edit<'_> {
    /// `managed` after the edit: sets merged in, removed names and tags dropped.
    pub fn apply(&self, managed: &mut Managed) {
        if let Some(set) = self.set {
            for (n, v) in set.iter() {
                managed.attrs.insert(n, v.into());
            }
        }
        for n in self.removed {
            managed.attrs.remove(*n);
        }
        if !self.tags_added.is_empty() || !self.tags_removed.is_empty() {
            let added = self
                .tags_added
                .iter()
                .flat_map(|run| run.iter().map(|t| &**t));
            let removed = self
                .tags_removed
                .iter()
                .flat_map(|run| run.iter().map(|t| &**t));
            managed.tags = managed.tags.edited(added, removed);
        }
    }
}

impl Record<'_> {
    /// The edit of each account, in account order (blocks and rows are ranges of accounts).
    pub fn edits(&self) -> BTreeMap<&str, Edit<'_>> {
        let mut ops: BTreeMap<&str, Edit> = BTreeMap::new();
        for (account, attrs) in &self.set {
            ops.entry(account).or_default().set = Some(attrs);
        }
        for (account, removed) in &self.removed {
            ops.entry(account).or_default().removed = removed;
        }
        for (account, tags) in &self.tags_added {
            ops.entry(account).or_default().tags_added.push(tags);
        }
        for (account, tags) in &self.tags_removed {
            ops.entry(account).or_default().tags_removed.push(tags);
        }
        ops
    }
}
