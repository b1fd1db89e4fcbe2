//! Views of what a run did: the final line of an apply or a fix, the history table, one
//! account's state.

use std::io::{self, Write};
use std::time::Duration;

use crate::store::{ExportLine, HistoryEntry};

/// The counts of an apply (or a fix), for its final line and a benchmark reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyTotals {
    /// `complete`, `interrupted` or `failed`.
    pub status: &'static str,
    pub accounts_set: u64,
    pub accounts_removed: u64,
    pub names_configured: u64,
    pub requests: u64,
    pub retries: u64,
    pub elapsed: Duration,
    /// Batches written to the store, and the time that took.
    pub batches_recorded: u64,
    pub record_time: Duration,
    /// Most batches confirmed by the API but not yet recorded at any moment (≤ concurrency).
    pub max_unrecorded: usize,
}

/// `Apply complete: … requests (… retries) in T s (U users/s; store writes X ms per batch; …).`
pub fn apply_line(label: &str, t: &ApplyTotals) -> String {
    let secs = t.elapsed.as_secs_f64();
    let per_batch = if t.batches_recorded > 0 {
        t.record_time.as_secs_f64() * 1000.0 / t.batches_recorded as f64
    } else {
        0.0
    };
    format!(
        "{label} {}: {} users set, {} users with values removed, {} attribute names configured; {} requests ({} retries) in {secs:.2} s ({:.0} users/s; store writes {per_batch:.2} ms per batch; at most {} confirmed batches awaiting their record).",
        t.status,
        t.accounts_set,
        t.accounts_removed,
        t.names_configured,
        t.requests,
        t.retries,
        (t.accounts_set + t.accounts_removed) as f64 / secs.max(1e-9),
        t.max_unrecorded,
    )
}

/// The `state history` table.
pub fn write_history(w: &mut impl Write, entries: &[HistoryEntry]) -> io::Result<()> {
    writeln!(
        w,
        "time                  serial  operation  status       set  removed  names  requests  retries"
    )?;
    for h in entries {
        let time =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(h.time));
        writeln!(
            w,
            "{time}  {:>6}  {:<9}  {:<11}  {:>4}  {:>7}  {:>5}  {:>8}  {:>7}",
            h.serial,
            h.operation,
            h.status,
            h.accounts_set,
            h.accounts_removed,
            h.names_configured,
            h.requests,
            h.retries
        )?;
    }
    Ok(())
}

/// `state show`: one account as a line of `state export` has it, pretty.
pub fn write_account(w: &mut impl Write, account: &ExportLine) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, account)?;
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_line_keeps_the_numbers_benchmarks_read() {
        let t = ApplyTotals {
            status: "complete",
            accounts_set: 200,
            accounts_removed: 0,
            names_configured: 3,
            requests: 3,
            retries: 0,
            elapsed: Duration::from_secs(2),
            batches_recorded: 2,
            record_time: Duration::from_millis(3),
            max_unrecorded: 2,
        };
        let line = apply_line("Apply", &t);
        assert!(line.starts_with("Apply complete: 200 users set,"), "{line}");
        assert!(
            line.contains(" in 2.00 s (100 users/s; store writes 1.50 ms per batch;"),
            "{line}"
        );
        assert!(
            line.contains("at most 2 confirmed batches awaiting their record"),
            "{line}"
        );
    }
}
