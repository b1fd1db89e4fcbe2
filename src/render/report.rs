//! Views of what a run did: the final line of an apply or a fix, the history table, one
//! account's state.

use std::io::{self, Write};
use std::time::Duration;

use super::count;
use crate::store::{ExportLine, HistoryEntry};

/// The counts of an apply (or a fix), for its final line and a benchmark reading it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyTotals {
    /// `complete`, `interrupted` or `failed`.
    pub status: &'static str,
    /// Distinct accounts that something was applied to (values set or removed, tags added or
    /// removed): what "users changed" counts.
    pub accounts_changed: u64,
    pub accounts_set: u64,
    pub accounts_removed: u64,
    /// Accounts that tags were added to, removed from.
    pub accounts_tags_added: u64,
    pub accounts_tags_removed: u64,
    pub names_configured: u64,
    pub requests: u64,
    pub retries: u64,
    pub elapsed: Duration,
    /// Batches written to the store, and the time that took.
    pub batches_recorded: u64,
    pub record_time: Duration,
    /// Most batches confirmed by the API but not yet recorded at any moment (≤ concurrency).
    pub max_unrecorded: usize,
    /// Entries the API applied that the store could not record (it failed mid-run): not
    /// claimed, sent again by the next apply.
    pub unrecorded_entries: u64,
}

/// `Apply complete: 4 users changed (3 with values set, 1 with tags added), … requests (…
/// retries) in T s (U users/s).` Each number says what it counts; the parts that are zero
/// are left out. `verbose` (`-v`) adds the internals (store write time, records awaited),
/// which tell an operator or a benchmark about the store, not a user about the app.
pub fn apply_line(label: &str, t: &ApplyTotals, verbose: bool) -> String {
    let secs = t.elapsed.as_secs_f64();
    let mut parts = Vec::new();
    for (n, what) in [
        (t.accounts_set, "with values set"),
        (t.accounts_removed, "with values removed"),
        (t.accounts_tags_added, "with tags added"),
        (t.accounts_tags_removed, "with tags removed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let parts = if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    };
    let names = if t.names_configured > 0 {
        format!(
            ", {} configured",
            count(
                t.names_configured as usize,
                "attribute name",
                "attribute names"
            )
        )
    } else {
        String::new()
    };
    let internals = if verbose {
        let per_batch = if t.batches_recorded > 0 {
            t.record_time.as_secs_f64() * 1000.0 / t.batches_recorded as f64
        } else {
            0.0
        };
        format!(
            "; store writes {per_batch:.2} ms per batch; at most {} awaiting their record",
            count(t.max_unrecorded, "confirmed batch", "confirmed batches"),
        )
    } else {
        String::new()
    };
    // The counts are what the store recorded; what the API applied beyond that is said too.
    let unrecorded = if t.unrecorded_entries > 0 {
        format!(
            " ({} applied but not recorded)",
            count(t.unrecorded_entries as usize, "entry", "entries")
        )
    } else {
        String::new()
    };
    format!(
        "{label} {}: {} changed{parts}{unrecorded}{names}; {} ({}) in {secs:.2} s ({:.0} users/s{internals}).",
        t.status,
        count(t.accounts_changed as usize, "user", "users"),
        count(t.requests as usize, "request", "requests"),
        count(t.retries as usize, "retry", "retries"),
        t.accounts_changed as f64 / secs.max(1e-9),
    )
}

/// How an apply or a fix ended, beyond its totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    /// `Apply` or `Fix`.
    pub label: &'a str,
    pub totals: &'a ApplyTotals,
    pub batches_ok: usize,
    pub batches_failed: usize,
    pub batches_not_sent: usize,
    /// Of `batches_ok`, those the store could not record.
    pub batches_unrecorded: u64,
    pub serial: u64,
    /// What stopped the run (an error, a signal), already phrased.
    pub stopped_by: Option<String>,
}

/// The batches of a stopped run, one account of them: applied and recorded, applied but not
/// recorded, failed, not sent.
pub fn batches_line(o: &Outcome<'_>) -> String {
    let unrecorded = (o.batches_unrecorded as usize).min(o.batches_ok);
    let recorded = o.batches_ok - unrecorded;
    let mut line = format!(
        "{} applied and recorded",
        count(recorded, "batch", "batches")
    );
    if unrecorded > 0 {
        line.push_str(&format!(
            ", {unrecorded} applied but not recorded (the next apply sends them again)"
        ));
    }
    line.push_str(&format!(
        ", {} failed, {} not sent",
        o.batches_failed, o.batches_not_sent
    ));
    line
}

/// What the store holds of a stopped run: everything the API confirmed, or not.
pub fn recorded_note(o: &Outcome<'_>) -> &'static str {
    if o.batches_unrecorded == 0 {
        "Everything the API confirmed is recorded"
    } else {
        "The state claims only what it recorded"
    }
}

/// The result of an apply or a fix for the GitHub step summary.
pub fn outcome_markdown(o: &Outcome<'_>) -> String {
    let t = o.totals;
    let mut md = format!(
        "### timattr {}\n\n**{}** at serial {}.\n\n| users set | users with values removed | attribute names configured | batches applied | batches applied, not recorded | batches failed | batches not sent | requests | retries |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        o.label.to_lowercase(),
        t.status,
        o.serial,
        t.accounts_set,
        t.accounts_removed,
        t.names_configured,
        o.batches_ok,
        o.batches_unrecorded,
        o.batches_failed,
        o.batches_not_sent,
        t.requests,
        t.retries
    );
    if let Some(why) = &o.stopped_by {
        md.push_str(&format!(
            "\n> [!WARNING]\n> Stopped: {}. {}: {}; run it again once the cause is fixed.\n",
            super::markdown::cell(why),
            recorded_note(o),
            batches_line(o)
        ));
    }
    md
}

/// The `state history` table.
pub fn write_history(w: &mut impl Write, entries: &[HistoryEntry]) -> io::Result<()> {
    writeln!(
        w,
        "time                  serial  operation  status       set  removed  names  requests  retries  by, commit, run"
    )?;
    for h in entries {
        let time = rfc3339(h.time);
        writeln!(
            w,
            "{time}  {:>6}  {:<9}  {:<11}  {:>4}  {:>7}  {:>5}  {:>8}  {:>7}  {}",
            h.serial,
            super::escape(&h.operation),
            super::escape(&h.status),
            h.accounts_set,
            h.accounts_removed,
            h.names_configured,
            h.requests,
            h.retries,
            history_details(h)
        )?;
    }
    Ok(())
}

/// Who and what of an entry, as far as it is known: `alice on host-1; git 1a2b3c4d5e6f;
/// https://…/runs/7; --target u1*; plan sha256:…`.
fn history_details(h: &HistoryEntry) -> String {
    let mut parts = Vec::new();
    match (&h.actor, &h.host) {
        (Some(a), Some(host)) => {
            parts.push(format!("{} on {}", super::escape(a), super::escape(host)))
        }
        (Some(a), None) => parts.push(super::escape(a).into_owned()),
        (None, Some(host)) => parts.push(format!("on {}", super::escape(host))),
        (None, None) => {}
    }
    if let Some(sha) = &h.git_commit {
        parts.push(format!("git {}", super::escape(&sha[..sha.len().min(12)])));
    }
    if let Some(url) = &h.ci_run_url {
        parts.push(super::escape(url).into_owned());
    }
    if !h.targets.is_empty() {
        let t: Vec<String> = h
            .targets
            .iter()
            .map(|t| super::escape(t).into_owned())
            .collect();
        parts.push(format!("--target {}", t.join(",")));
    }
    if let Some(d) = &h.plan_digest {
        parts.push(format!("plan {}", super::escape(d)));
    }
    parts.join("; ")
}

/// `state history --format json`: the entries as one compact JSON array, oldest first, each
/// `time` in RFC 3339 (UTC) as the text table shows it, not Unix seconds.
pub fn write_history_json(w: &mut impl Write, entries: &[HistoryEntry]) -> io::Result<()> {
    let mut docs = serde_json::to_value(entries)?;
    for (doc, entry) in docs.as_array_mut().into_iter().flatten().zip(entries) {
        doc["time"] = rfc3339(entry.time).into();
    }
    super::json::to_safe_writer(w, &docs, false)?;
    writeln!(w)
}

/// Unix seconds as RFC 3339 in UTC, to the second (`2026-12-07T23:45:49Z`).
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// `state show --format text`: the account, then one `name: "value"` line per attribute, then
/// `tags: a b` when it has managed tags (`tags` is never an attribute name).
pub fn write_account_text(w: &mut impl Write, account: &ExportLine) -> io::Result<()> {
    writeln!(w, "{}", super::escape(&account.account))?;
    for (name, value) in &account.attrs {
        writeln!(w, "    {}: {}", super::escape(name), super::quote(value))?;
    }
    if !account.tags.is_empty() {
        let tags: Vec<String> = account.tags.iter().map(|t| super::tag(t)).collect();
        writeln!(w, "    tags: {}", tags.join(" "))?;
    }
    Ok(())
}

/// `state show`: one account as a line of `state export` has it, pretty.
pub fn write_account(w: &mut impl Write, account: &ExportLine) -> io::Result<()> {
    super::json::to_safe_writer(w, account, false)?;
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_line_keeps_the_numbers_benchmarks_read() {
        let t = ApplyTotals {
            status: "complete",
            accounts_changed: 200,
            accounts_set: 200,
            names_configured: 3,
            requests: 3,
            elapsed: Duration::from_secs(2),
            batches_recorded: 2,
            record_time: Duration::from_millis(3),
            max_unrecorded: 2,
            ..ApplyTotals::default()
        };
        let line = apply_line("Apply", &t, false);
        assert_eq!(
            line,
            "Apply complete: 200 users changed (200 with values set), 3 attribute names configured; 3 requests (0 retries) in 2.00 s (100 users/s)."
        );
        let line = apply_line("Apply", &t, true);
        assert!(
            line.ends_with(" in 2.00 s (100 users/s; store writes 1.50 ms per batch; at most 2 confirmed batches awaiting their record)."),
            "{line}"
        );
        let one = ApplyTotals {
            accounts_changed: 1,
            accounts_set: 1,
            requests: 1,
            retries: 1,
            max_unrecorded: 1,
            names_configured: 1,
            ..t
        };
        let line = apply_line("Apply", &one, true);
        assert!(
            line.starts_with("Apply complete: 1 user changed (1 with values set), 1 attribute name configured; 1 request (1 retry) in"),
            "{line}"
        );
        assert!(
            line.contains("at most 1 confirmed batch awaiting"),
            "{line}"
        );
    }

    #[test]
    fn a_fix_counts_tag_only_repairs_among_the_users_changed() {
        let t = ApplyTotals {
            status: "complete",
            accounts_changed: 4,
            accounts_set: 3,
            accounts_tags_added: 1,
            requests: 2,
            elapsed: Duration::from_secs(1),
            ..ApplyTotals::default()
        };
        assert_eq!(
            apply_line("Fix", &t, false),
            "Fix complete: 4 users changed (3 with values set, 1 with tags added); 2 requests (0 retries) in 1.00 s (4 users/s)."
        );
    }

    #[test]
    fn an_account_shows_its_tags_only_when_it_has_some() {
        let mut line = ExportLine {
            account: "u1".into(),
            attrs: [("city".to_owned(), "x".to_owned())].into(),
            tags: Vec::new(),
        };
        let text = |line: &ExportLine| {
            let mut out = Vec::new();
            write_account_text(&mut out, line).unwrap();
            String::from_utf8(out).unwrap()
        };
        let json = |line: &ExportLine| {
            let mut out = Vec::new();
            write_account(&mut out, line).unwrap();
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        assert_eq!(text(&line), "u1\n    city: \"x\"\n");
        assert_eq!(
            json(&line),
            serde_json::json!({"account": "u1", "attrs": {"city": "x"}})
        );
        line.tags = vec!["a b".into(), "vip".into(), "\u{1b}x".into()];
        assert_eq!(
            text(&line),
            "u1\n    city: \"x\"\n    tags: \"a b\" vip \"\\x1bx\"\n"
        );
        assert_eq!(
            json(&line)["tags"],
            serde_json::json!(["a b", "vip", "\u{1b}x"])
        );
    }

    #[test]
    fn a_stopped_run_says_what_applied_failed_and_was_not_sent() {
        let t = ApplyTotals {
            status: "failed",
            accounts_changed: 600,
            accounts_set: 600,
            requests: 10,
            retries: 4,
            elapsed: Duration::from_secs(1),
            batches_recorded: 6,
            max_unrecorded: 1,
            ..ApplyTotals::default()
        };
        let o = Outcome {
            label: "Apply",
            totals: &t,
            batches_ok: 6,
            batches_failed: 4,
            batches_not_sent: 0,
            batches_unrecorded: 0,
            serial: 3,
            stopped_by: Some("error: the API refused <x>".into()),
        };
        assert_eq!(
            batches_line(&o),
            "6 batches applied and recorded, 4 failed, 0 not sent"
        );
        let md = outcome_markdown(&o);
        assert!(
            md.starts_with("### timattr apply\n\n**failed** at serial 3."),
            "{md}"
        );
        assert!(
            md.contains("| 600 | 0 | 0 | 6 | 0 | 4 | 0 | 10 | 4 |"),
            "{md}"
        );
        assert!(
            md.contains("Stopped: error: the API refused &lt;x&gt;. Everything the API confirmed is recorded"),
            "{md}"
        );
    }

    /// A store that failed mid-run: one account of the batches, never also "everything is
    /// recorded".
    #[test]
    fn a_run_whose_store_failed_gives_one_consistent_account() {
        let t = ApplyTotals {
            status: "failed",
            accounts_changed: 300,
            accounts_set: 300,
            requests: 10,
            elapsed: Duration::from_secs(1),
            batches_recorded: 3,
            max_unrecorded: 2,
            unrecorded_entries: 200,
            ..ApplyTotals::default()
        };
        let o = Outcome {
            label: "Apply",
            totals: &t,
            batches_ok: 5,
            batches_failed: 0,
            batches_not_sent: 35,
            batches_unrecorded: 2,
            serial: 3,
            stopped_by: Some("state at s: cannot read or write the database: StorageFull".into()),
        };
        assert_eq!(
            batches_line(&o),
            "3 batches applied and recorded, 2 applied but not recorded (the next apply sends them again), 0 failed, 35 not sent"
        );
        let line = apply_line("Apply", &t, false);
        assert!(
            line.contains(
                "300 users changed (300 with values set) (200 entries applied but not recorded)"
            ),
            "{line}"
        );
        let md = outcome_markdown(&o);
        assert!(
            !md.contains("Everything the API confirmed is recorded"),
            "{md}"
        );
        assert!(
            md.contains("| 300 | 0 | 0 | 5 | 2 | 0 | 35 | 10 | 0 |"),
            "{md}"
        );
    }
}
