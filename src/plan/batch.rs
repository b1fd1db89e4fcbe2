//! Cutting a plan into requests: the attribute names first, then `im_set_attr` batches, then
//! `im_remove_attr` batches, each of at most 100 accounts with one entry per account.

use super::Plan;
use crate::model::limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchKind {
    SetAttr,
    RemoveAttr,
}

impl BatchKind {
    /// The API command the batch is sent with.
    pub fn command(self) -> &'static str {
        match self {
            BatchKind::SetAttr => "im_set_attr",
            BatchKind::RemoveAttr => "im_remove_attr",
        }
    }
}

/// One request's worth of accounts: indices into [`Plan::changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub kind: BatchKind,
    pub changes: Vec<usize>,
}

impl Plan {
    /// The value batches in sending order: every set batch, then every remove batch.
    pub fn batches(&self) -> Vec<Batch> {
        let mut out = Vec::new();
        for kind in [BatchKind::SetAttr, BatchKind::RemoveAttr] {
            let picked: Vec<usize> = self
                .changes
                .iter()
                .enumerate()
                .filter(|(_, c)| match kind {
                    BatchKind::SetAttr => !c.set.is_empty(),
                    BatchKind::RemoveAttr => !c.remove.is_empty(),
                })
                .map(|(i, _)| i)
                .collect();
            out.extend(picked.chunks(limits::MAX_BATCH).map(|chunk| Batch {
                kind,
                changes: chunk.to_vec(),
            }));
        }
        out
    }
}
