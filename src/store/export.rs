//! `state export` / `state restore`: gzip-compressed JSON lines, a header line then one line
//! per account, so a backup can be read with `zcat | jq` and survives throwaway CI runners.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::{blocks, codec, sled_err, HistoryEntry, Meta, Result, Store, StoreError};
use crate::model::{Attrs, Names};

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    pub format_version: u32,
    pub sdkappid: u32,
    pub endpoint_host: String,
    pub lineage: String,
    pub serial: u64,
    pub slots: BTreeMap<u8, String>,
    pub accounts: u64,
}

/// Every following line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportLine {
    pub account: String,
    pub attrs: BTreeMap<String, String>,
}

impl Store {
    /// Writes the whole store to `out` (gzip JSON lines). Returns the number of accounts.
    pub fn export(&self, out: impl Write) -> std::io::Result<u64> {
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        let header = ExportHeader {
            format_version: self.meta.format_version,
            sdkappid: self.meta.sdkappid,
            endpoint_host: self.meta.endpoint_host.clone(),
            lineage: self.meta.lineage.clone(),
            serial: self.meta.serial,
            slots: self.meta.slots.clone(),
            accounts: self.account_count().map_err(std::io::Error::other)? as u64,
        };
        serde_json::to_writer(&mut gz, &header)?;
        gz.write_all(b"\n")?;
        let mut names = Names::default();
        let count = self
            .scan(|account, attrs| {
                let attrs = self.decode(attrs, &mut names)?;
                let line = ExportLine {
                    account: account.to_owned(),
                    attrs: attrs
                        .iter()
                        .map(|(n, v)| (names.get(n).to_owned(), v.to_owned()))
                        .collect(),
                };
                serde_json::to_writer(&mut gz, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| gz.write_all(b"\n"))
                    .map_err(|e| StoreError::Restore(format!("cannot write the export: {e}")))
            })
            .map_err(std::io::Error::other)?;
        gz.finish()?.flush()?;
        Ok(count as u64)
    }

    /// Replaces the store's content with an export. Refuses another lineage or an older serial
    /// unless `force`. Returns the header that was restored.
    #[allow(clippy::too_many_lines)] // split by the store rework
    pub fn restore(&mut self, input: impl std::io::Read, force: bool) -> Result<ExportHeader> {
        let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(input));
        let mut lines = reader.lines();
        let bad = |m: String| StoreError::Restore(format!("the export cannot be read: {m}"));
        let header_line = lines
            .next()
            .ok_or_else(|| bad("it is empty".into()))?
            .map_err(|e| bad(e.to_string()))?;
        let header: ExportHeader =
            serde_json::from_str(&header_line).map_err(|e| bad(format!("header: {e}")))?;
        if header.format_version > super::FORMAT_VERSION {
            return Err(StoreError::NewerFormat {
                path: self.path.clone(),
                found: header.format_version,
            });
        }
        let has_history = self.meta.serial > 0 || self.account_count()? > 0;
        if !force && has_history {
            if header.lineage != self.meta.lineage {
                return Err(StoreError::Restore(format!(
                    "the export has lineage {} but the store has lineage {}: it is another store's backup (use --force to replace this store anyway)",
                    header.lineage, self.meta.lineage
                )));
            }
            if header.serial < self.meta.serial {
                return Err(StoreError::Restore(format!(
                    "the export has serial {} but the store is at serial {}: it is older than the store (use --force to go back anyway)",
                    header.serial, self.meta.serial
                )));
            }
        }
        if !force
            && (header.sdkappid != self.meta.sdkappid
                || header.endpoint_host != self.meta.endpoint_host)
        {
            return Err(StoreError::Restore(format!(
                "the export belongs to sdkappid {} at {}, but this store to sdkappid {} at {} (use --force to replace it anyway)",
                header.sdkappid, header.endpoint_host, self.meta.sdkappid, self.meta.endpoint_host
            )));
        }
        // Read every line before touching the store: a truncated file must not half-restore.
        let mut names = Names::default();
        let mut accounts: Vec<(Box<str>, Attrs)> = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| bad(e.to_string()))?;
            if line.is_empty() {
                continue;
            }
            let l: ExportLine =
                serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", i + 2)))?;
            let line_no = i + 2;
            if l.account.is_empty() || l.account.len() > crate::model::limits::MAX_ACCOUNT_BYTES {
                return Err(bad(format!(
                    "line {line_no}: account id {:?} is not 1 to 32 bytes",
                    l.account
                )));
            }
            let mut attrs = Attrs::with_capacity(l.attrs.len());
            for (n, v) in &l.attrs {
                if n.is_empty() || n.len() > u8::MAX as usize || v.len() > u16::MAX as usize {
                    return Err(bad(format!(
                        "line {line_no}: attribute {n:?} of {:?} is out of bounds",
                        l.account
                    )));
                }
                let n = names.intern(n).ok_or_else(|| {
                    bad(format!(
                        "line {line_no}: more than 255 distinct attribute names"
                    ))
                })?;
                attrs.insert(n, v.as_str().into());
            }
            accounts.push((l.account.into_boxed_str(), attrs));
        }
        if accounts.len() as u64 != header.accounts {
            return Err(bad(format!(
                "the header announces {} accounts but {} follow (truncated?)",
                header.accounts,
                accounts.len()
            )));
        }
        accounts.sort_by(|a, b| a.0.cmp(&b.0));
        if accounts.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(bad("an account appears twice".into()));
        }
        let mut batch = sled::Batch::default();
        for kv in self.db.scan_prefix(blocks::PREFIX).keys() {
            batch.remove(kv.map_err(|e| sled_err(&self.path, e))?);
        }
        let entries: blocks::Entries = accounts
            .iter()
            .filter(|(_, attrs)| !attrs.is_empty())
            .map(|(account, attrs)| (account.clone(), codec::encode(attrs, &names)))
            .collect();
        for chunk in blocks::chunks(&entries) {
            if let Some((first, _)) = chunk.first() {
                batch.insert(blocks::key(first), blocks::encode(chunk));
            }
        }
        let meta = Meta {
            format_version: super::FORMAT_VERSION,
            sdkappid: header.sdkappid,
            endpoint_host: header.endpoint_host.clone(),
            lineage: header.lineage.clone(),
            serial: header.serial,
            slots: header.slots.clone(),
        };
        self.commit(batch, meta)?;
        self.add_history(&HistoryEntry {
            time: now_unix(),
            serial: header.serial,
            operation: "restore".into(),
            status: "complete".into(),
            accounts_set: header.accounts,
            accounts_removed: 0,
            names_configured: 0,
            requests: 0,
            retries: 0,
        })?;
        Ok(header)
    }
}

/// Now, in Unix seconds.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
