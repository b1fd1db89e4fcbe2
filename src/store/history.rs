//! History (DESIGN.md §6), written once for both backends: one entry for every serial,
//! written by the backend in the same atomic step as each commit of its run, saying what
//! happened (command, result, counts, serial, commit id) and who and what did it (actor, host,
//! git commit, CI run, `--target` patterns, saved-plan digest).
//!
//! A run ([`Run`]) is begun on an open store before its first commit; every commit of the run
//! rewrites the run's entry (status `interrupted` until the run ends, so that a run killed with
//! `kill -9` still leaves an entry with what it recorded); the end writes the final status.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{who, Record};

/// One line of `timattr state history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds when the run started.
    pub time: u64,
    /// Serial after the operation.
    pub serial: u64,
    /// `apply`, `drift-fix`, `import`, `state-rm` or `restore`.
    pub operation: String,
    /// `complete`, `partial` (some users refused by the API), `interrupted` (also: killed
    /// before it could say more) or `failed`.
    pub status: String,
    pub accounts_set: u64,
    pub accounts_removed: u64,
    pub names_configured: u64,
    pub requests: u64,
    pub retries: u64,
    /// (account, tag) pairs recorded as added and removed.
    #[serde(default)]
    pub tags_added: u64,
    #[serde(default)]
    pub tags_removed: u64,
    /// The commit id of the last commit of the run (absent in entries made before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    /// Who ran it: `GITHUB_ACTOR`, `GITLAB_USER_LOGIN`, else the OS user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The project's git commit: `GITHUB_SHA`, `CI_COMMIT_SHA`, else the work tree's HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// The CI run's page, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run_url: Option<String>,
    /// The `--target` patterns of a partial run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// The digest of the saved plan applied (`apply FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
}

impl HistoryEntry {
    /// A new entry of `operation` made here and now, by whoever runs this process, status
    /// `interrupted` until told otherwise.
    pub fn now(operation: &str, project_dir: Option<&Path>) -> HistoryEntry {
        let who = project_dir.map(crate::provenance::current);
        HistoryEntry {
            time: crate::clock::now_unix(),
            serial: 0,
            operation: operation.to_owned(),
            status: "interrupted".into(),
            accounts_set: 0,
            accounts_removed: 0,
            names_configured: 0,
            requests: 0,
            retries: 0,
            tags_added: 0,
            tags_removed: 0,
            commit_id: None,
            actor: who.as_ref().and_then(|w| w.actor.clone()),
            host: Some(who::hostname()),
            git_commit: who.as_ref().and_then(|w| w.commit.clone()),
            ci_run_url: who.and_then(|w| w.run_url),
            targets: Vec::new(),
            plan_digest: None,
        }
    }

    /// Adds what `records` record to the counts.
    pub fn count(&mut self, records: &[Record<'_>]) {
        let tags = |entries: &[(&str, &[crate::model::Tag])]| -> u64 {
            entries.iter().map(|e| e.1.len() as u64).sum()
        };
        for r in records {
            self.accounts_set += r.set.len() as u64;
            self.accounts_removed += r.removed.len() as u64;
            self.tags_added += tags(&r.tags_added);
            self.tags_removed += tags(&r.tags_removed);
        }
    }
}

/// A run being recorded: its entry, and whether a commit has written it yet.
#[derive(Debug, Clone)]
pub struct Run {
    pub entry: HistoryEntry,
    /// Set by the backend once the entry is in the store (sled: its key).
    pub written: Option<Vec<u8>>,
}

impl Run {
    pub fn new(entry: HistoryEntry) -> Run {
        Run {
            entry,
            written: None,
        }
    }

    /// The entry as a commit at `serial` with `commit_id` writes it.
    pub fn at_commit(&mut self, serial: u64, commit_id: &str) -> &HistoryEntry {
        self.entry.serial = serial;
        self.entry.commit_id = Some(commit_id.to_owned());
        &self.entry
    }

    /// The JSON that finds this run's entry among the others (`@>` in PostgreSQL).
    pub fn key_json(&self) -> String {
        serde_json::json!({
            "serial": self.entry.serial,
            "time": self.entry.time,
            "operation": self.entry.operation,
        })
        .to_string()
    }
}

/// The entry a restore adds after the exported history: the run begun for it (who and where)
/// when there is one.
pub fn restored(run: Option<Run>, serial: u64, accounts: u64) -> HistoryEntry {
    let mut entry = run.map_or_else(|| HistoryEntry::now("restore", None), |r| r.entry);
    entry.operation = "restore".into();
    entry.status = "complete".into();
    entry.serial = serial;
    entry.accounts_set = accounts;
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_written_before_the_new_fields_still_read() {
        let old = r#"{"time":1,"serial":2,"operation":"apply","status":"complete","accounts_set":3,"accounts_removed":0,"names_configured":0,"requests":1,"retries":0}"#;
        let e: HistoryEntry = serde_json::from_str(old).unwrap();
        assert_eq!((e.serial, e.actor, e.targets.len()), (2, None, 0));
    }

    #[test]
    fn a_run_counts_what_its_records_hold() {
        let a: crate::model::Attrs = [(0u8, "x".into())].into_iter().collect();
        let tags: Vec<crate::model::Tag> = vec!["t1".into(), "t2".into()];
        let record = Record {
            set: vec![("u1", &a), ("u2", &a)],
            removed: vec![("u3", vec![0])],
            tags_added: vec![("u1", &tags)],
            tags_removed: vec![],
        };
        let mut run = Run::new(HistoryEntry::now("apply", None));
        run.entry.count(std::slice::from_ref(&record));
        let e = run.at_commit(4, "c0ffee").clone();
        assert_eq!(
            (e.accounts_set, e.accounts_removed, e.tags_added, e.serial),
            (2, 1, 2, 4)
        );
        assert_eq!(e.commit_id.as_deref(), Some("c0ffee"));
        assert!(run.key_json().contains("\"serial\":4"));
    }
}
