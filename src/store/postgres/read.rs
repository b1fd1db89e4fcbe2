//! Reading a project's state: schema check, metadata, accounts (streamed in account order),
//! history and export. Readers see one snapshot (see [`super::PgStore::open_existing`]).

use std::io::Write;
use std::sync::Arc;

use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::Client;

use super::{
    attrs_from_json, block, PgError, PgStore, Result, Split, Target, MIN_READ_VERSION,
    SCHEMA_VERSION,
};
use crate::model::{Account, Attrs, Managed, Names};
use crate::store::{ExportHeader, ExportLine, HistoryEntry, Meta};

/// Rows are handed from the connection's task to the caller in chunks of this many.
const CHUNK: usize = 2048;

/// Whether the database has timattr tables this binary can read (`false`: none at all).
pub(super) async fn schema_readable(client: &Client, t: &Target) -> Result<bool> {
    let found = schema_version(client, t).await?;
    match found {
        None => Ok(false),
        Some(v) if v > SCHEMA_VERSION => Err(PgError::NewerSchema {
            target: t.describe(),
            found: v,
        }),
        Some(v) if v < MIN_READ_VERSION => Err(PgError::OlderSchema {
            target: t.describe(),
            found: v,
        }),
        Some(_) => Ok(true),
    }
}

/// The schema version, `None` when the tables were never created.
pub(super) async fn schema_version(client: &Client, t: &Target) -> Result<Option<i32>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('timattr_schema') IS NOT NULL", &[])
        .await
        .map_err(|e| t.db_err(&e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one("SELECT max(version) FROM timattr_schema", &[])
        .await
        .map_err(|e| t.db_err(&e))?;
    Ok(row.get(0))
}

/// The project's metadata, `None` when the project does not exist.
pub(super) async fn meta(client: &Client, t: &Target) -> Result<Option<Meta>> {
    let row = client
        .query_opt(
            "SELECT format_version, sdkappid, endpoint_host, lineage, serial, slots::text
             FROM timattr_projects WHERE name = $1",
            &[&t.name],
        )
        .await
        .map_err(|e| t.db_err(&e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let sdkappid: i64 = row.get(1);
    let serial: i64 = row.get(4);
    let slots: String = row.get(5);
    Ok(Some(Meta {
        format_version: u32::try_from(row.get::<_, i32>(0))
            .map_err(|_| t.corrupt("format version"))?,
        sdkappid: u32::try_from(sdkappid).map_err(|_| t.corrupt("sdkappid"))?,
        endpoint_host: row.get(2),
        lineage: row.get(3),
        serial: u64::try_from(serial).map_err(|_| t.corrupt("serial"))?,
        slots: serde_json::from_str(&slots).map_err(|e| t.corrupt(format!("slots: {e}")))?,
    }))
}

impl PgStore {
    /// Visits every managed account in account order with its attributes as the JSON text the
    /// database prints. The rows are read on the store's runtime while `f` runs here, so
    /// decoding overlaps the transfer. Returns the number of accounts.
    pub(super) fn rows(&self, mut f: impl FnMut(&str, &str) -> Result<()>) -> Result<usize> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<(String, String)>>>(8);
        let client = self.client.clone();
        let t = self.target.clone();
        self.rt().spawn(async move {
            let result = stream_rows(&client, &t, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        let mut n = 0;
        while let Some(chunk) = futures_executor::block_on(rx.recv()) {
            for (account, attrs) in chunk? {
                f(&account, &attrs)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Splits the desired accounts into those the store holds exactly (counted) and the rest,
    /// with the last-applied attributes the planner needs: those of the rest and of accounts
    /// only in the store. Most accounts of a large app are unchanged between two plans, so
    /// each row is first compared as text with what the database would print for the desired
    /// attributes, and only decoded when that differs.
    pub fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Split> {
        let mut split = Split::default();
        let mut wanted = desired.into_iter().peekable();
        let mut scratch = String::with_capacity(256);
        let t = self.target.clone();
        split.managed = self.rows(|account, stored| {
            if !keep(account) {
                return Ok(());
            }
            while let Some(d) = wanted.next_if(|(a, _)| &**a < account) {
                split.changed.push(d);
            }
            match wanted.next_if(|(a, _)| &**a == account) {
                Some(d) => {
                    jsonb_text(&mut scratch, &d.1.attrs, names);
                    if d.1.tags.is_empty() && scratch == stored {
                        split.unchanged += 1;
                        return Ok(());
                    }
                    let last =
                        attrs_from_json(stored.as_bytes(), names).map_err(|m| t.corrupt(m))?;
                    if last == d.1 {
                        split.unchanged += 1;
                    } else {
                        split.last.push((account.into(), last));
                        split.changed.push(d);
                    }
                }
                None => {
                    let last =
                        attrs_from_json(stored.as_bytes(), names).map_err(|m| t.corrupt(m))?;
                    split.last.push((account.into(), last));
                }
            }
            Ok(())
        })?;
        split.changed.extend(wanted);
        Ok(split)
    }

    /// Every managed account in account order, with `f` told each id.
    pub fn accounts(&self, mut f: impl FnMut(&str)) -> Result<usize> {
        self.rows(|account, _| {
            f(account);
            Ok(())
        })
    }

    /// Every managed account with its last-applied attributes, in account order.
    pub fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        let mut out = Vec::new();
        let t = self.target.clone();
        self.rows(|account, attrs| {
            let attrs = attrs_from_json(attrs.as_bytes(), names).map_err(|m| t.corrupt(m))?;
            out.push((account.into(), attrs));
            Ok(())
        })?;
        Ok(out)
    }

    /// One account's last-applied attributes.
    pub fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        let (client, t, account) = (self.client.clone(), self.target.clone(), account.to_owned());
        let row = block(self.rt(), async move {
            client
                .query_opt(
                    "SELECT attrs::text FROM timattr_accounts WHERE project = $1 AND account = $2",
                    &[&t.name, &account],
                )
                .await
                .map_err(|e| t.db_err(&e))
        })?;
        row.map(|r| attrs_from_json(r.get::<_, &str>(0).as_bytes(), names))
            .transpose()
            .map_err(|m| self.target.corrupt(m))
    }

    /// The number of managed accounts.
    pub fn account_count(&self) -> Result<usize> {
        let (client, t) = (self.client.clone(), self.target.clone());
        let n: i64 = block(self.rt(), async move {
            client
                .query_one(
                    "SELECT count(*) FROM timattr_accounts WHERE project = $1",
                    &[&t.name],
                )
                .await
                .map(|r| r.get(0))
                .map_err(|e| t.db_err(&e))
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Every history entry, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        let (client, t) = (self.client.clone(), self.target.clone());
        let rows = block(self.rt(), async move {
            client
                .query(
                    "SELECT entry::text FROM timattr_history WHERE project = $1 ORDER BY seq",
                    &[&t.name],
                )
                .await
                .map_err(|e| t.db_err(&e))
        })?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0))
                    .map_err(|e| self.target.corrupt(format!("history: {e}")))
            })
            .collect()
    }

    /// Writes the whole project to `out` in the format of `state export` (gzip JSON lines, the
    /// same as a sled store's). Returns the number of accounts.
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
        let mut written: std::io::Result<()> = Ok(());
        let count = self
            .rows(|account, attrs| {
                let attrs = serde_json::from_str(attrs)
                    .map_err(|e| self.target.corrupt(format!("an account's attributes: {e}")))?;
                let line = ExportLine {
                    account: account.to_owned(),
                    attrs,
                    tags: Vec::new(),
                };
                if written.is_ok() {
                    written = serde_json::to_writer(&mut gz, &line)
                        .map_err(std::io::Error::from)
                        .and_then(|()| gz.write_all(b"\n"));
                }
                Ok(())
            })
            .map_err(std::io::Error::other)?;
        written?;
        gz.finish()?.flush()?;
        Ok(count as u64)
    }
}

async fn stream_rows(
    client: &Arc<Client>,
    t: &Target,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<(String, String)>>>,
) -> Result<()> {
    let rows = client
        .query_raw(
            "SELECT account, attrs::text FROM timattr_accounts WHERE project = $1 ORDER BY account",
            [&t.name],
        )
        .await
        .map_err(|e| t.db_err(&e))?;
    pin_mut!(rows);
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(row) = rows.try_next().await.map_err(|e| t.db_err(&e))? {
        chunk.push((row.get::<_, String>(0), row.get::<_, String>(1)));
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if tx.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk)).await;
    }
    Ok(())
}

/// Writes attributes as PostgreSQL prints a `jsonb` object into `out` (cleared first): keys
/// ordered by length then bytes, `", "` and `": "` separators, and its string escapes. Used
/// only as a fast equality test; a mismatch falls back to decoding.
pub(super) fn jsonb_text(out: &mut String, attrs: &Attrs, names: &Names) {
    out.clear();
    let mut pairs: Vec<(&str, &str)> = attrs.iter().map(|(n, v)| (names.get(n), v)).collect();
    pairs.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.0.cmp(b.0)));
    out.push('{');
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        escape_into(out, n);
        out.push_str(": ");
        escape_into(out, v);
    }
    out.push('}');
}

fn escape_into(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
