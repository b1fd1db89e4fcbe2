//! `state restore` into PostgreSQL: the backup, read and checked whole by
//! [`crate::store::read_export`], replaces the project's accounts in one transaction.

use super::write::CAS;
use super::{block, PgError, PgStore, Result};
use crate::store::{random_id, Export, ExportHeader, FORMAT_VERSION};

/// Accounts inserted per statement.
const INSERT_CHUNK: usize = 5000;

impl PgStore {
    /// Replaces the project's content with an export (of a sled store or another project),
    /// which the core's restore guard let through (`State::restore_export`). Returns the
    /// header that was restored.
    pub fn restore_export(&mut self, export: &Export) -> Result<ExportHeader> {
        let header = export.header.clone();
        let accounts: Vec<Restored> = export
            .accounts()
            .map(|(account, values, tags)| {
                let map: std::collections::BTreeMap<&str, &str> = values.into_iter().collect();
                let json = serde_json::to_string(&map).expect("strings serialize");
                let tags = (!tags.is_empty()).then(|| {
                    serde_json::to_string(&tags.iter().collect::<Vec<_>>())
                        .expect("strings serialize")
                });
                (account.to_owned(), json, tags)
            })
            .collect();
        let nul = |s: &str| s.contains("\\u0000");
        if let Some((a, _, _)) = accounts
            .iter()
            .find(|(a, j, g)| a.contains('\0') || nul(j) || g.as_deref().is_some_and(nul))
        {
            return Err(PgError::Restore(format!(
                "account {a:?} has a NUL character, which PostgreSQL cannot store"
            )));
        }
        if header.format_version > FORMAT_VERSION {
            return Err(PgError::Restore(format!(
                "the export has format version {}, newer than this timattr understands ({FORMAT_VERSION}): upgrade timattr",
                header.format_version
            )));
        }
        let (lineage, base, _, token) = self.cas(self.meta.serial)?;
        // The exported history, then the restore's own entry.
        let own = crate::store::history::restored(self.run.take(), header.serial, header.accounts);
        let history: Vec<String> = header
            .history
            .iter()
            .chain(std::iter::once(&own))
            .map(|e| serde_json::to_string(e).expect("history serializes"))
            .collect();
        let (client, t) = (self.client.clone(), self.target.clone());
        let commit_id = random_id();
        let new_meta = (
            header.lineage.clone(),
            i64::try_from(header.serial).unwrap_or(i64::MAX),
            serde_json::to_string(&header.slots).expect("slots serialize"),
            i64::from(header.sdkappid),
            header.endpoint_host.clone(),
            // Never the exported commit's id: a restored state is a commit of its own.
            commit_id.clone(),
            serde_json::to_string(&header.slot_types).expect("slot types serialize"),
        );
        let cas = (lineage, base, token);
        let matched = block(self.rt(), async move {
            let db = |e: tokio_postgres::Error| t.db_err(&e);
            client.batch_execute("BEGIN").await.map_err(db)?;
            let result = replace_all(&client, &t, &cas, &new_meta, &accounts, &history).await;
            let end = if matches!(result, Ok(true)) {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            client.batch_execute(end).await.map_err(db)?;
            result.map_err(db)
        })?;
        if !matched {
            return Err(self.conflict());
        }
        self.analyze();
        self.meta.lineage = header.lineage.clone();
        self.meta.serial = header.serial;
        self.meta.slots = header.slots.clone();
        self.meta.slot_types = header.slot_types.clone();
        self.meta.sdkappid = header.sdkappid;
        self.meta.endpoint_host = header.endpoint_host.clone();
        self.meta.commit_id = commit_id;
        Ok(header)
    }

    /// Refreshes the accounts table's statistics after replacing its rows, so that the next
    /// plan reads them from the index at once (autovacuum would only get to it later).
    /// Failing to is not an error: the restore is committed.
    fn analyze(&self) {
        let (client, t) = (self.client.clone(), self.target.clone());
        let analyzed = block(self.rt(), async move {
            client
                .batch_execute("ANALYZE timattr_accounts")
                .await
                .map_err(|e| t.db_err(&e))
        });
        if let Err(e) = analyzed {
            tracing::warn!("after the restore: {e}");
        }
    }
}

/// One account to restore: its id, attributes (a JSON object) and tags (a JSON list, `None`
/// when it has none).
type Restored = (String, String, Option<String>);

/// The new metadata of a restored project: lineage, serial, slots (JSON), sdkappid, host,
/// commit id, slot types (JSON).
type NewMeta = (String, i64, String, i64, String, String, String);

/// Inside a transaction: the CAS on the project row, then every account replaced and the
/// history entry added. `false` when the CAS did not match (nothing was changed).
async fn replace_all(
    client: &tokio_postgres::Client,
    t: &super::Target,
    cas: &(String, i64, String),
    meta: &NewMeta,
    accounts: &[Restored],
    history: &[String],
) -> std::result::Result<bool, tokio_postgres::Error> {
    let (lineage, base, token) = cas;
    let n = client
        .execute(
            &format!("UPDATE timattr_projects SET lineage = $6, serial = $7, slots = ($8::text)::jsonb, sdkappid = $9, endpoint_host = $10, commit_id = $11, slot_types = ($12::text)::jsonb WHERE {CAS}"),
            &[&t.name, lineage, base, base, token, &meta.0, &meta.1, &meta.2, &meta.3, &meta.4, &meta.5, &meta.6],
        )
        .await?;
    if n != 1 {
        return Ok(false);
    }
    client
        .execute(
            "DELETE FROM timattr_accounts WHERE project = $1",
            &[&t.name],
        )
        .await?;
    for chunk in accounts.chunks(INSERT_CHUNK) {
        let a: Vec<&str> = chunk.iter().map(|(a, _, _)| a.as_str()).collect();
        let j: Vec<&str> = chunk.iter().map(|(_, j, _)| j.as_str()).collect();
        let g: Vec<Option<&str>> = chunk.iter().map(|(_, _, g)| g.as_deref()).collect();
        client
            .execute(
                "INSERT INTO timattr_accounts (project, account, attrs, tags)
                 SELECT $1, t.a, t.j::jsonb, ARRAY(SELECT jsonb_array_elements_text(t.g::jsonb))
                 FROM unnest($2::text[], $3::text[], $4::text[]) AS t(a, j, g)",
                &[&t.name, &a, &j, &g],
            )
            .await?;
    }
    client
        .execute("DELETE FROM timattr_history WHERE project = $1", &[&t.name])
        .await?;
    for chunk in history.chunks(INSERT_CHUNK) {
        // In order: `seq` follows the array's order.
        client
            .execute(
                "INSERT INTO timattr_history (project, entry)
                 SELECT $1, e::jsonb FROM unnest($2::text[]) WITH ORDINALITY AS h(e, n) ORDER BY n",
                &[&t.name, &chunk],
            )
            .await?;
    }
    Ok(true)
}
