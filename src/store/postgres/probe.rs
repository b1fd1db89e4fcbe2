//! What `timattr doctor` asks a PostgreSQL state, reading only: the schema version, the
//! project's metadata, who holds its writer lock now, and whether the connecting role may do
//! what an apply does to the tool's tables — asked of the privilege functions
//! (`has_table_privilege`, ...), never tried.

use super::{block, read, runtime, PgError, Result, Target, SCHEMA_VERSION};
use crate::store::Meta;

/// The privileges an apply uses, per table (sequence: `timattr_history`'s serial column).
const NEEDED: [(&str, &[&str]); 5] = [
    ("timattr_schema", &["SELECT"]),
    ("timattr_projects", &["SELECT", "INSERT", "UPDATE"]),
    (
        "timattr_accounts",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    ("timattr_history", &["SELECT", "INSERT"]),
    ("timattr_locks", &["SELECT", "INSERT", "UPDATE"]),
];
const HISTORY_SEQUENCE: &str = "timattr_history_seq_seq";

/// A PostgreSQL state as doctor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The role connected as.
    pub role: String,
    /// The tables' schema version; `None`: no tables yet (the first writer creates them).
    pub schema: Option<i32>,
    /// The project's metadata; `None`: no such project yet.
    pub meta: Option<Meta>,
    /// Who holds the project's writer lock right now, as its lock row says.
    pub holder: Option<String>,
    /// What the role lacks for an apply: `GRANT` statements that would give it.
    pub missing: Vec<String>,
    /// The tables are older than this timattr's schema and the role does not own them: the
    /// first writer migrates them (`ALTER TABLE`), which only their owner may.
    pub migration_needs_owner: bool,
}

impl Target {
    /// Connects and reads the probe in one read-only transaction.
    pub fn probe(&self) -> Result<Probe> {
        let rt = runtime()?;
        let t = self.clone();
        block(rt, async move {
            let (client, _driver) = t.connect().await?;
            let db = |e: tokio_postgres::Error| t.db_err(&e);
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(db)?;
            let role: String = client
                .query_one("SELECT current_user::text", &[])
                .await
                .map_err(db)?
                .get(0);
            let schema = read::schema_version(&client, &t).await?;
            let meta = match schema {
                Some(v) if (super::MIN_READ_VERSION..=SCHEMA_VERSION).contains(&v) => {
                    read::meta(&client, &t, v).await?
                }
                _ => None,
            };
            let missing = missing(&client, &t, &role, schema).await?;
            let migration_needs_owner = match schema {
                Some(v) if v < SCHEMA_VERSION => !owns_tables(&client, &t).await?,
                _ => false,
            };
            let holder = match schema {
                Some(v) if v >= 2 => holder(&client, &t).await?,
                _ => None,
            };
            Ok(Probe {
                role,
                schema,
                meta,
                holder,
                missing,
                migration_needs_owner,
            })
        })
    }
}

/// `GRANT`s the role needs for an apply; with no tables yet, the right to create them.
async fn missing(
    client: &tokio_postgres::Client,
    t: &Target,
    role: &str,
    schema: Option<i32>,
) -> Result<Vec<String>> {
    let db = |e: tokio_postgres::Error| t.db_err(&e);
    let ask = |sql: &'static str, args: Vec<String>| async move {
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client
            .query_one(sql, &refs)
            .await
            .map(|r| r.get::<_, bool>(0))
    };
    let quoted = quote_ident(role);
    let mut out = Vec::new();
    let create_needed = schema.is_none_or(|v| v < SCHEMA_VERSION);
    if create_needed {
        // The first writer creates the tables (a newer timattr migrates them) in the current schema.
        let ok = ask(
            "SELECT has_database_privilege(current_database(), 'CONNECT') AND has_schema_privilege(current_schema(), 'CREATE')",
            vec![],
        )
        .await
        .map_err(db)?;
        if !ok {
            let schema_name: String = client
                .query_one("SELECT coalesce(current_schema(), 'public')::text", &[])
                .await
                .map_err(db)?
                .get(0);
            out.push(format!(
                "GRANT CREATE ON SCHEMA {} TO {quoted};",
                quote_ident(&schema_name)
            ));
        }
    }
    if schema.is_none() {
        return Ok(out);
    }
    for (table, privileges) in NEEDED {
        let mut lacking = Vec::new();
        for p in privileges {
            let ok = ask(
                "SELECT has_table_privilege($1::text, $2::text)",
                vec![table.to_owned(), (*p).to_owned()],
            )
            .await
            .map_err(db)?;
            if !ok {
                lacking.push(*p);
            }
        }
        if !lacking.is_empty() {
            out.push(format!(
                "GRANT {} ON {table} TO {quoted};",
                lacking.join(", ")
            ));
        }
    }
    let seq = ask(
        "SELECT to_regclass($1::text) IS NULL OR has_sequence_privilege($1::text, 'USAGE')",
        vec![HISTORY_SEQUENCE.to_owned()],
    )
    .await
    .map_err(db)?;
    if !seq {
        out.push(format!(
            "GRANT USAGE ON SEQUENCE {HISTORY_SEQUENCE} TO {quoted};"
        ));
    }
    Ok(out)
}

/// Whether the role owns (or is a member of the owner of) the accounts table, which the
/// migrations alter.
async fn owns_tables(client: &tokio_postgres::Client, t: &Target) -> Result<bool> {
    client
        .query_one(
            "SELECT coalesce((SELECT pg_has_role(current_user, c.relowner, 'USAGE')
                 FROM pg_class c WHERE c.oid = to_regclass('timattr_accounts')), false)",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| t.db_err(&e))
}

/// The holder of the project's advisory lock, if a session holds it now.
async fn holder(client: &tokio_postgres::Client, t: &Target) -> Result<Option<String>> {
    let db = |e: tokio_postgres::Error| t.db_err(&e);
    let key = t.lock_key();
    // pg_advisory_lock(bigint) shows in pg_locks as classid = high half, objid = low half.
    // (oids, so both unsigned: the key's bits, not its sign-extended halves)
    let bits = key as u64;
    let (high, low) = ((bits >> 32) as i64, (bits & 0xffff_ffff) as i64);
    let held: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            &[&high, &low],
        )
        .await
        .map_err(db)?
        .get(0);
    if !held {
        return Ok(None);
    }
    match super::write::holder(client, t).await? {
        PgError::Locked {
            command,
            host,
            pid,
            since,
            ..
        } => Ok(Some(format!(
            "`timattr {command}` on host {host} (pid {pid}) since {since}"
        ))),
        other => Err(other),
    }
}

/// `name` as a quoted SQL identifier when it needs quoting.
fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(super::quote_ident("timattr_ro"), "timattr_ro");
        assert_eq!(super::quote_ident("CI Runner"), "\"CI Runner\"");
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
