//! Cutting a plan into requests, in the phase order of DESIGN.md §3 and §9: the attribute names
//! first, then `im_set_attr`, `im_add_tag`, `im_remove_attr` and `im_remove_tag` batches, each
//! of at most 100 accounts with one entry per account.
//!
//! A tag entry carries at most 10 tags; an account with more gets one entry in each of several
//! consecutive batches (never two entries in one request, which the API would merge past 10).

use super::{Change, Plan};
use crate::model::{limits, Tag, Tags};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchKind {
    SetAttr,
    AddTag,
    RemoveAttr,
    RemoveTag,
}

impl BatchKind {
    /// Every kind, in sending order.
    pub const PHASES: [BatchKind; 4] = [
        BatchKind::SetAttr,
        BatchKind::AddTag,
        BatchKind::RemoveAttr,
        BatchKind::RemoveTag,
    ];

    /// The API command the batch is sent with.
    pub fn command(self) -> &'static str {
        match self {
            BatchKind::SetAttr => "im_set_attr",
            BatchKind::AddTag => "im_add_tag",
            BatchKind::RemoveAttr => "im_remove_attr",
            BatchKind::RemoveTag => "im_remove_tag",
        }
    }

    /// The API operation the batch is sent with, whatever the family calls it.
    pub fn operation(self) -> crate::api::Command {
        use crate::api::Command;
        match self {
            BatchKind::SetAttr => Command::SetAttr,
            BatchKind::AddTag => Command::AddTag,
            BatchKind::RemoveAttr => Command::RemoveAttr,
            BatchKind::RemoveTag => Command::RemoveTag,
        }
    }

    pub fn is_tags(self) -> bool {
        matches!(self, BatchKind::AddTag | BatchKind::RemoveTag)
    }

    /// The tags a change sends in this kind of batch (none for attribute kinds).
    pub fn tags_of(self, change: &Change) -> &Tags {
        match self {
            BatchKind::AddTag => &change.tags.add,
            _ => &change.tags.remove,
        }
    }

    /// Entries `change` needs in this kind of batch.
    fn entries_for(self, change: &Change) -> usize {
        match self {
            BatchKind::SetAttr => usize::from(!change.set.is_empty()),
            BatchKind::RemoveAttr => usize::from(!change.remove.is_empty()),
            BatchKind::AddTag | BatchKind::RemoveTag => self.tags_of(change).chunks(),
        }
    }
}

/// One request's worth of accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub kind: BatchKind,
    /// Indices into [`Plan::changes`], one entry each.
    pub changes: Vec<usize>,
    /// Tag batches: which run of at most 10 tags ([`Tags::chunk`]) each entry carries, parallel
    /// to `changes`. Empty for attribute batches.
    pub parts: Vec<u8>,
}

impl Batch {
    /// An attribute batch (or a tag batch of first parts only).
    pub fn new(kind: BatchKind, changes: Vec<usize>) -> Batch {
        let parts = if kind.is_tags() {
            vec![0; changes.len()]
        } else {
            Vec::new()
        };
        Batch {
            kind,
            changes,
            parts,
        }
    }

    /// `(change index, part)` of each entry.
    pub fn entries(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.changes
            .iter()
            .enumerate()
            .map(|(k, &i)| (i, self.parts.get(k).map_or(0, |&p| p as usize)))
    }

    /// The tags entry `k` carries (empty for attribute batches).
    pub fn tags<'p>(&self, plan: &'p Plan, k: usize) -> &'p [Tag] {
        if !self.kind.is_tags() {
            return &[];
        }
        let change = &plan.changes[self.changes[k]];
        let part = self.parts.get(k).map_or(0, |&p| p as usize);
        self.kind.tags_of(change).chunk(part)
    }

    /// The batch cut into two halves (for narrowing a refused request down to one account).
    pub fn halves(&self) -> (Batch, Batch) {
        let mid = self.changes.len() / 2;
        let part = |r: std::ops::Range<usize>| Batch {
            kind: self.kind,
            changes: self.changes[r.clone()].to_vec(),
            parts: if self.parts.is_empty() {
                Vec::new()
            } else {
                self.parts[r].to_vec()
            },
        };
        (part(0..mid), part(mid..self.changes.len()))
    }
}

/// Packs accounts with several entries into consecutive batches of at most 100 entries, one
/// entry per account per batch. Batch fills never increase from one batch to the next, so the
/// first batch with room is where an account's first entry goes.
#[derive(Debug, Default)]
pub(super) struct TagRounds {
    fills: Vec<usize>,
    open: usize,
}

impl TagRounds {
    /// Places an account with `n` entries; returns the batch of its first entry.
    pub(super) fn push(&mut self, n: usize) -> usize {
        let start = self.open;
        for b in start..start + n {
            if b == self.fills.len() {
                self.fills.push(0);
            }
            self.fills[b] += 1;
        }
        while self.fills.get(self.open) == Some(&limits::MAX_BATCH) {
            self.open += 1;
        }
        start
    }

    pub(super) fn batches(&self) -> usize {
        self.fills.len()
    }
}

impl Plan {
    /// The value batches in sending order, phase by phase.
    pub fn batches(&self) -> Vec<Batch> {
        let mut out = Vec::new();
        for kind in BatchKind::PHASES {
            if kind.is_tags() {
                out.extend(self.tag_batches(kind));
                continue;
            }
            let picked: Vec<usize> = self
                .changes
                .iter()
                .enumerate()
                .filter(|(_, c)| kind.entries_for(c) > 0)
                .map(|(i, _)| i)
                .collect();
            out.extend(
                picked
                    .chunks(limits::MAX_BATCH)
                    .map(|chunk| Batch::new(kind, chunk.to_vec())),
            );
        }
        out
    }

    fn tag_batches(&self, kind: BatchKind) -> Vec<Batch> {
        let mut rounds = TagRounds::default();
        let mut out: Vec<Batch> = Vec::new();
        for (i, c) in self.changes.iter().enumerate() {
            let n = kind.entries_for(c);
            let start = rounds.push(n);
            for part in 0..n {
                if start + part == out.len() {
                    out.push(Batch {
                        kind,
                        changes: Vec::new(),
                        parts: Vec::new(),
                    });
                }
                let batch = &mut out[start + part];
                batch.changes.push(i);
                batch.parts.push(u8::try_from(part).unwrap_or(u8::MAX));
            }
        }
        out
    }
}
