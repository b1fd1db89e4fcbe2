//! Reading a project's state: schema check, metadata, accounts (streamed in account order),
//! history and export. Readers see one snapshot (see [`super::PgStore::open_existing`]).

use std::io::Write;
use std::sync::Arc;

use futures_util::{pin_mut, StreamExt};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use super::copy::{CopyRows, Row};
use super::{block, managed_from_row, PgStore, Result, Target, COMMIT_ID_VERSION, TAGS_VERSION};
use crate::model::{Account, Attrs, Managed, NameIdx, Names, TagPool};
use crate::store::export::Writer;
use crate::store::split::{Merge, Split, Stored};
use crate::store::{ExportHeader, ExportLine, HistoryEntry, Meta};

/// COPY messages (one per row) are handed from the connection's task to the caller in chunks
/// of this many.
const CHUNK: usize = 1024;

/// Has the accounts read in their index's order rather than sorted after a full scan. Right
/// after a big restore or first apply the table's statistics are stale, and the planner then
/// picks a bitmap scan and a sort: the server reads and sorts all the rows before it sends the
/// first one (0.9 s of a 1M-account no-op plan, against 0.5 s streamed from the index).
pub(super) const IN_ACCOUNT_ORDER: &str = "SET LOCAL enable_sort = off";

/// One message of a COPY out of the database, or its failure.
type CopyItem = <tokio_postgres::CopyOutStream as futures_util::Stream>::Item;

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

/// The project's metadata in tables of `schema`, `None` when the project does not exist.
pub(super) async fn meta(client: &Client, t: &Target, schema: i32) -> Result<Option<Meta>> {
    let commit_id = if schema >= COMMIT_ID_VERSION {
        "commit_id"
    } else {
        "''"
    };
    let row = client
        .query_opt(
            &format!(
                // `slot_types` through the row's JSON: tables of an older schema, without the
                // column, read as no types (every slot type 0).
                "SELECT format_version, sdkappid, endpoint_host, lineage, serial, slots::text, {commit_id},
                        COALESCE((to_jsonb(p) -> 'slot_types')::text, '{{}}')
                 FROM timattr_projects p WHERE name = $1"
            ),
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
    let slot_types: String = row.get(7);
    Ok(Some(Meta {
        format_version: u32::try_from(row.get::<_, i32>(0))
            .map_err(|_| t.corrupt("format version"))?,
        sdkappid: u32::try_from(sdkappid).map_err(|_| t.corrupt("sdkappid"))?,
        endpoint_host: row.get(2),
        lineage: row.get(3),
        serial: u64::try_from(serial).map_err(|_| t.corrupt("serial"))?,
        commit_id: row.get(6),
        slots: serde_json::from_str(&slots).map_err(|e| t.corrupt(format!("slots: {e}")))?,
        slot_types: serde_json::from_str(&slot_types)
            .map_err(|e| t.corrupt(format!("slot types: {e}")))?,
    }))
}

/// The COPY that streams every account of project `name` in account order, with `tags` the
/// tags column as the schema has it (COPY takes no parameters: the name is a literal).
pub(super) fn copy_sql(name: &str, tags: &str) -> String {
    format!(
        "COPY (SELECT account, attrs::text, {tags} FROM timattr_accounts WHERE project = {} ORDER BY account) TO STDOUT (FORMAT binary)",
        super::open::literal(name)
    )
}

impl PgStore {
    /// The tags column as this schema has it (none before [`TAGS_VERSION`]).
    fn tags_column(&self) -> &'static str {
        if self.schema >= TAGS_VERSION {
            "tags"
        } else {
            "'{}'::text[]"
        }
    }

    /// The COPY that streams every account of the project in account order.
    pub(super) fn accounts_copy(&self) -> String {
        copy_sql(&self.target.name, self.tags_column())
    }

    /// Visits every managed account in account order, read in place from the COPY messages
    /// (attributes as the JSON text the database holds). The messages are received on the
    /// store's runtime while `f` runs here, so decoding overlaps the transfer. Returns the
    /// number of accounts.
    pub(super) fn rows(&self, mut f: impl FnMut(Row<'_>) -> Result<()>) -> Result<usize> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<CopyItem>>>(16);
        let (client, t, sql) = (
            self.client.clone(),
            self.target.clone(),
            self.accounts_copy(),
        );
        // A reader's transaction has it set already (see `open_existing`).
        let in_transaction = self.writer.is_none();
        let prepared = super::prepared_for(&self.copy, &self.client);
        self.rt().spawn(async move {
            let copy = Copy { sql, prepared };
            if let Err(e) = stream_rows(&client, &t, &copy, in_transaction, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        let mut reader = CopyRows::default();
        let mut n = 0;
        while let Some(chunk) = futures_executor::block_on(rx.recv()) {
            for msg in chunk? {
                let msg = msg.map_err(|e| self.target.db_err(&e))?;
                n += reader.feed(&msg, &self.target, &mut f)?;
            }
        }
        reader.finish(&self.target)?;
        Ok(n)
    }

    /// Splits the desired accounts into those the store holds exactly (counted) and the rest,
    /// with the last-applied attributes and tags the planner needs: those of the rest and of
    /// accounts only in the store. Most accounts of a large app are unchanged between two
    /// plans, so each row is first compared as stored (tags, and the attributes' text against
    /// what the database would print for the desired ones), and only decoded when that differs.
    pub fn split(
        &self,
        desired: Vec<(Account, Managed)>,
        names: &mut Names,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Split> {
        let mut merge = Merge::new(desired, keep);
        let mut printer = JsonbPrinter::default();
        let mut pool = TagPool::new();
        let t = self.target.clone();
        let managed = self.rows(|row| {
            merge.visit(row.account, |want| {
                if let Some(d) = want {
                    if row.tags.equals(&d.tags) && printer.print(&d.attrs, names) == row.attrs {
                        return Ok(Stored::Same);
                    }
                }
                managed_from_row(row.attrs.as_bytes(), row.tags.iter(), names, &mut pool)
                    .map(Stored::Last)
                    .map_err(|m| t.corrupt(m))
            })
        })?;
        Ok(merge.finish(managed))
    }

    /// Every managed account in account order, with `f` told each id.
    pub fn accounts(&self, mut f: impl FnMut(&str)) -> Result<usize> {
        self.rows(|row| {
            f(row.account);
            Ok(())
        })
    }

    /// Every managed account with its last-applied attributes and tags, in account order.
    pub fn load_last_applied(&self, names: &mut Names) -> Result<Vec<(Account, Managed)>> {
        let mut out = Vec::new();
        let mut pool = TagPool::new();
        let t = self.target.clone();
        self.rows(|row| {
            let managed = managed_from_row(row.attrs.as_bytes(), row.tags.iter(), names, &mut pool)
                .map_err(|m| t.corrupt(m))?;
            out.push((row.account.into(), managed));
            Ok(())
        })?;
        Ok(out)
    }

    /// One account's last-applied attributes and tags.
    pub fn account(&self, account: &str, names: &mut Names) -> Result<Option<Managed>> {
        let (client, t, account) = (self.client.clone(), self.target.clone(), account.to_owned());
        let sql = format!(
            "SELECT attrs::text, {} FROM timattr_accounts WHERE project = $1 AND account = $2",
            self.tags_column()
        );
        let row = block(self.rt(), async move {
            client
                .query_typed_opt(&sql, &[(&t.name, Type::TEXT), (&account, Type::TEXT)])
                .await
                .map_err(|e| t.db_err(&e))
        })?;
        let corrupt = |m: String| self.target.corrupt(m);
        let Some(row) = row else { return Ok(None) };
        let attrs: &str = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
        let tags: Vec<&str> = row
            .try_get(1)
            .map_err(|e| corrupt(format!("an account's tags: {e}")))?;
        managed_from_row(attrs.as_bytes(), tags, names, &mut TagPool::new())
            .map(Some)
            .map_err(corrupt)
    }

    /// The number of managed accounts.
    pub fn account_count(&self) -> Result<usize> {
        let (client, t) = (self.client.clone(), self.target.clone());
        let n: i64 = block(self.rt(), async move {
            client
                .query_typed_one(
                    "SELECT count(*) FROM timattr_accounts WHERE project = $1",
                    &[(&t.name, Type::TEXT)],
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
                .query_typed(
                    "SELECT entry::text FROM timattr_history WHERE project = $1 ORDER BY seq",
                    &[(&t.name, Type::TEXT)],
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

    /// Writes the whole project to `out` in the format of `state export`, through the core's
    /// [`Writer`] (the same format as a sled store's). Returns the number of accounts.
    pub fn export(&self, out: impl Write) -> std::io::Result<u64> {
        let history = self.history().map_err(std::io::Error::other)?;
        let accounts = self.account_count().map_err(std::io::Error::other)? as u64;
        let header = ExportHeader::of(&self.meta, accounts, history);
        let mut backup = Writer::new(out, &header)?;
        // A failed write ends the export with its own error, after the COPY is drained.
        let mut written: std::io::Result<()> = Ok(());
        self.rows(|row| {
            let attrs = serde_json::from_str(row.attrs)
                .map_err(|e| self.target.corrupt(format!("an account's attributes: {e}")))?;
            let line = ExportLine {
                account: row.account.to_owned(),
                attrs,
                tags: row.tags.iter().map(str::to_owned).collect(),
            };
            if written.is_ok() {
                written = backup.line(&line);
            }
            Ok(())
        })
        .map_err(std::io::Error::other)?;
        written?;
        backup.finish()
    }
}

/// The COPY of the accounts: prepared while opening when it could be (then it is one round
/// trip, not two), else its text.
struct Copy {
    sql: String,
    prepared: Option<Statement>,
}

impl Copy {
    async fn start(
        &self,
        client: &Client,
    ) -> Result<tokio_postgres::CopyOutStream, tokio_postgres::Error> {
        match &self.prepared {
            Some(statement) => client.copy_out(statement).await,
            None => client.copy_out(self.sql.as_str()).await,
        }
    }
}

/// Streams the COPY to `tx` in chunks of messages; a failed message ends the stream. Outside
/// a transaction, the index order is asked for around the COPY (sent together with it, and
/// the reset sent behind it: no extra round trip).
async fn stream_rows(
    client: &Arc<Client>,
    t: &Target,
    copy: &Copy,
    in_transaction: bool,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<CopyItem>>>,
) -> Result<()> {
    let db = |e: tokio_postgres::Error| t.db_err(&e);
    if in_transaction {
        let stream = copy.start(client).await.map_err(db)?;
        return forward(stream, tx).await;
    }
    let set = IN_ACCOUNT_ORDER.replace(" LOCAL", "");
    let (set, stream) =
        futures_util::future::join(client.batch_execute(&set), copy.start(client)).await;
    set.map_err(db)?;
    let stream = stream.map_err(db)?;
    // Sent now (its first poll sends it), answered once the COPY's rows are through.
    let reset = client.batch_execute("RESET enable_sort");
    pin_mut!(reset);
    let _ = futures_util::FutureExt::now_or_never(reset.as_mut());
    let result = forward(stream, tx).await;
    reset.await.map_err(db)?;
    result
}

async fn forward(
    stream: tokio_postgres::CopyOutStream,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<CopyItem>>>,
) -> Result<()> {
    pin_mut!(stream);
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(item) = stream.next().await {
        let failed = item.is_err();
        chunk.push(item);
        if failed || chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if tx.send(Ok(full)).await.is_err() || failed {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk)).await;
    }
    Ok(())
}

/// Prints attributes as PostgreSQL prints a `jsonb` object: keys ordered by length then
/// bytes, `", "` and `": "` separators, and its string escapes. Used only as a fast equality
/// test; a mismatch falls back to decoding. Keeps its buffer and the order of the names
/// between accounts, so printing allocates nothing.
#[derive(Debug, Default)]
pub(super) struct JsonbPrinter {
    out: String,
    /// Every name of the table in jsonb's key order.
    order: Vec<NameIdx>,
    /// How many names the table had when `order` was made (names are only ever added).
    known: usize,
}

impl JsonbPrinter {
    pub fn print(&mut self, attrs: &Attrs, names: &Names) -> &str {
        if self.known != names.len() {
            self.order = names.iter().map(|(i, _)| i).collect();
            self.order.sort_by(|a, b| {
                let (a, b) = (names.get(*a), names.get(*b));
                a.len().cmp(&b.len()).then(a.cmp(b))
            });
            self.known = names.len();
        }
        self.out.clear();
        self.out.push('{');
        let mut first = true;
        for &n in &self.order {
            let Some(v) = attrs.get(n) else { continue };
            if !first {
                self.out.push_str(", ");
            }
            first = false;
            escape_into(&mut self.out, names.get(n));
            self.out.push_str(": ");
            escape_into(&mut self.out, v);
        }
        self.out.push('}');
        &self.out
    }
}

/// Writes attributes as PostgreSQL prints a `jsonb` object into `out` (cleared first).
#[cfg(test)]
pub(super) fn jsonb_text(out: &mut String, attrs: &Attrs, names: &Names) {
    out.clear();
    out.push_str(JsonbPrinter::default().print(attrs, names));
}

fn escape_into(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
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
