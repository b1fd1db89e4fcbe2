//! A sled store's backup and restore, in the core's one export format (see
//! [`crate::store::export`]): the restore guard (run by `State` before a restore) and the
//! header are the core's.

use std::io::Write;

use super::{blocks, codec, sled_err, Result, SledStore, StoreError};
use crate::model::Names;
#[cfg(test)]
use crate::store::export::read_export;
use crate::store::export::{Export, ExportHeader, ExportLine, Writer};

impl SledStore {
    /// Writes the whole store to `out` (gzip JSON lines). Returns the number of accounts.
    pub fn export(&self, out: impl Write) -> std::io::Result<u64> {
        let history = self.history().map_err(std::io::Error::other)?;
        let header = ExportHeader::of(&self.meta, self.accounts, history);
        let mut backup = Writer::new(out, &header)?;
        let mut names = Names::default();
        self.scan(|account, attrs| {
            let managed = self.decode(attrs, &mut names)?;
            backup
                .line(&ExportLine::new(account, &managed, &names))
                .map_err(|e| StoreError::Restore(format!("cannot write the export: {e}")))
        })
        .map_err(std::io::Error::other)?;
        backup.finish()
    }

    /// Replaces the store's content with an export, as `State::restore_export` does: the
    /// core's restore guard first. Returns the header that was restored.
    #[cfg(test)]
    pub fn restore(&mut self, input: impl std::io::Read, force: bool) -> Result<ExportHeader> {
        let export = read_export(input).map_err(|e| StoreError::Restore(e.to_string()))?;
        crate::store::export::guard(self, &export.header, force)
            .map_err(|e| StoreError::Restore(e.to_string()))?;
        self.restore_export(&export)
    }

    /// Replaces the store's content with an export already read by [`crate::store::read_export`]
    /// and let through by the core's restore guard.
    pub fn restore_export(&mut self, export: &Export) -> Result<ExportHeader> {
        self.writable()?;
        let header = &export.header;
        let mut batch = sled::Batch::default();
        for prefix in [blocks::PREFIX, super::HISTORY_PREFIX] {
            for kv in self.db.scan_prefix(prefix).keys() {
                batch.remove(kv.map_err(|e| sled_err(&self.path, e))?);
            }
        }
        // The exported history, then the restore's own entry, in the same step.
        let own = crate::store::history::restored(
            self.run.take(),
            header.serial,
            export.accounts.len() as u64,
        );
        for entry in header.history.iter().chain(std::iter::once(&own)) {
            let key = super::history_key(&self.db, &self.path)?;
            batch.insert(key, serde_json::to_vec(entry).unwrap_or_default());
        }
        let entries: blocks::Entries = export
            .accounts
            .iter()
            .map(|(account, attrs)| (account.clone(), codec::encode(attrs, &export.names)))
            .collect();
        for chunk in blocks::chunks(&entries) {
            if let Some((first, _)) = chunk.first() {
                batch.insert(blocks::key(first), blocks::encode(chunk));
            }
        }
        // `commit` makes the new commit id.
        self.commit(batch, header.restored_meta(), entries.len() as u64)?;
        Ok(header.clone())
    }
}
