//! Drift: live attributes (`R`) against last-applied (`L`), per managed account and name.
//!
//! Only names recorded in `L` are compared: names and accounts timattr does not manage are
//! never reported. A managed value missing from the live data is drift too (deleted remotely).

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::model::{Account, Attrs, NameIdx, Names};
use crate::plan::{Action, Change, Plan};
use crate::render::{markdown, old_to_new, Style};

/// One drifted account: per name, the last-applied value and the live one (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDrift {
    pub account: Account,
    pub values: Vec<(NameIdx, Box<str>, Option<Box<str>>)>,
}

/// What `timattr drift` found.
#[derive(Debug, Clone)]
pub struct Report {
    pub names: Names,
    /// Sorted by account.
    pub drifted: Vec<AccountDrift>,
    /// Managed accounts that were read.
    pub checked: usize,
    /// Desired ≠ last-applied: changes not applied yet (not drift).
    pub pending: Plan,
}

impl Report {
    pub fn drifted_values(&self) -> usize {
        self.drifted.iter().map(|d| d.values.len()).sum()
    }

    /// The changes that put the last-applied values back (for `drift --fix`).
    pub fn fix_plan(&self) -> Plan {
        let changes = self
            .drifted
            .iter()
            .map(|d| {
                let set: Attrs = d
                    .values
                    .iter()
                    .map(|(n, last, _)| (*n, last.clone()))
                    .collect();
                let before: Attrs = d
                    .values
                    .iter()
                    .filter_map(|(n, _, live)| live.clone().map(|l| (*n, l)))
                    .collect();
                Change {
                    account: d.account.clone(),
                    action: Action::Change,
                    set,
                    remove: Vec::new(),
                    before,
                }
            })
            .collect();
        Plan {
            names: self.names.clone(),
            attribute_names: BTreeMap::new(),
            changes,
            unchanged: self.checked - self.drifted.len(),
            managed: self.checked,
        }
    }
}

/// Compares one account's last-applied attributes with its live ones.
pub fn compare(
    account: &str,
    last: &Attrs,
    live: Option<&BTreeMap<String, String>>,
    names: &Names,
) -> Option<AccountDrift> {
    let values: Vec<(NameIdx, Box<str>, Option<Box<str>>)> = last
        .iter()
        .filter_map(|(n, want)| {
            let got = live.and_then(|l| l.get(names.get(n)));
            (got.map(|g| g.as_str()) != Some(want))
                .then(|| (n, want.into(), got.map(|g| g.as_str().into())))
        })
        .collect();
    (!values.is_empty()).then(|| AccountDrift {
        account: account.into(),
        values,
    })
}

pub fn summary_line(report: &Report) -> String {
    if report.drifted.is_empty() {
        format!(
            "No drift. The live attributes of {} managed users match the last-applied state.",
            report.checked
        )
    } else {
        format!(
            "Drift: {} users, {} attribute values differ from the last-applied state ({} users checked).",
            report.drifted.len(),
            report.drifted_values(),
            report.checked
        )
    }
}

fn pending_line(report: &Report) -> Option<String> {
    let s = report.pending.summary();
    (!report.pending.is_empty()).then(|| {
        format!(
            "Pending (desired ≠ last-applied, not drift): {} to add, {} to change, {} to remove; run `timattr plan` to review them.",
            s.add, s.change, s.remove
        )
    })
}

pub fn write_text(w: &mut impl Write, report: &Report, style: Style) -> io::Result<()> {
    for d in &report.drifted {
        writeln!(w, "{} {}", style.yellow("~"), style.bold(&d.account))?;
        for (n, last, live) in &d.values {
            let shown = old_to_new(Some(last), live.as_deref(), style)
                .replace("(removed)", "(deleted remotely)");
            writeln!(w, "    {}: {shown}", report.names.get(*n))?;
        }
    }
    if !report.drifted.is_empty() {
        writeln!(w)?;
    }
    writeln!(w, "{}", summary_line(report))?;
    if let Some(p) = pending_line(report) {
        writeln!(w, "{p}")?;
    }
    Ok(())
}

pub fn write_json(w: &mut impl Write, report: &Report) -> io::Result<()> {
    let p = report.pending.summary();
    write!(
        w,
        "{{\"format_version\":1,\"summary\":{{\"checked\":{},\"drifted_users\":{},\"drifted_values\":{},\"pending_add\":{},\"pending_change\":{},\"pending_remove\":{}}},\"drift\":[",
        report.checked,
        report.drifted.len(),
        report.drifted_values(),
        p.add,
        p.change,
        p.remove
    )?;
    for (i, d) in report.drifted.iter().enumerate() {
        w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        w.write_all(b"{\"account\":")?;
        serde_json::to_writer(&mut *w, &*d.account)?;
        w.write_all(b",\"values\":{")?;
        for (j, (n, last, live)) in d.values.iter().enumerate() {
            if j > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut *w, report.names.get(*n))?;
            w.write_all(b":{\"last_applied\":")?;
            serde_json::to_writer(&mut *w, &**last)?;
            w.write_all(b",\"live\":")?;
            serde_json::to_writer(&mut *w, &live.as_deref())?;
            w.write_all(b"}")?;
        }
        w.write_all(b"}}")?;
    }
    w.write_all(b"\n],\"pending\":[")?;
    for (i, c) in report.pending.changes.iter().enumerate() {
        w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        crate::render::json::write_change(w, c, &report.pending.names)?;
    }
    w.write_all(b"\n]}\n")
}

pub fn markdown(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut md = String::from("### timattr drift\n\n");
    let _ = writeln!(md, "{}\n", summary_line(report));
    if let Some(p) = pending_line(report) {
        let _ = writeln!(md, "{p}\n");
    }
    if report.drifted.is_empty() {
        return md;
    }
    md.push_str("<details><summary>Drifted users</summary>\n\n| user | attribute | last applied | live |\n|---|---|---|---|\n");
    let mut shown = 0;
    for d in &report.drifted {
        let mut rows = String::new();
        for (n, last, live) in &d.values {
            let _ = writeln!(
                rows,
                "| <code>{}</code> | {} | <code>{}</code> | {} |",
                markdown::cell(&d.account),
                markdown::cell(report.names.get(*n)),
                markdown::cell(last),
                live.as_deref()
                    .map(|l| format!("<code>{}</code>", markdown::cell(l)))
                    .unwrap_or_else(|| "<i>deleted</i>".into())
            );
        }
        if md.len() + rows.len() + 600 > markdown::MAX_CHARS {
            break;
        }
        md.push_str(&rows);
        shown += 1;
    }
    md.push_str("\n</details>\n");
    if shown < report.drifted.len() {
        let _ = writeln!(
            md,
            "\n_{} users were left out to keep this comment under {} characters; run `timattr drift` to see them all._",
            report.drifted.len() - shown,
            markdown::MAX_CHARS
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_managed_names_are_compared() {
        let names = Names::new(&["city".into(), "tier".into()]);
        let last: Attrs = [(0u8, "x".into()), (1u8, "gold".into())]
            .into_iter()
            .collect();
        let live: BTreeMap<String, String> =
            [("city".into(), "y".into()), ("other".into(), "z".into())].into();
        let d = compare("u1", &last, Some(&live), &names).unwrap();
        assert_eq!(
            d.values,
            vec![(0, "x".into(), Some("y".into())), (1, "gold".into(), None)]
        );
        let same: BTreeMap<String, String> = [
            ("city".into(), "x".into()),
            ("tier".into(), "gold".into()),
            ("other".into(), "q".into()),
        ]
        .into();
        assert!(compare("u1", &last, Some(&same), &names).is_none());
        // An account the server does not return at all lost everything.
        assert_eq!(compare("u1", &last, None, &names).unwrap().values.len(), 2);
    }
}
