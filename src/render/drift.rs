//! Views of a drift report: text, JSON (one serde type, [`DriftDoc`]) and markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::json::ChangeDoc;
use super::{escape, markdown, old_to_new_as, Style};
use crate::drift::Report;

/// The JSON drift report, as written and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftDoc {
    pub format_version: u32,
    pub summary: DriftSummaryDoc,
    pub drift: Vec<DriftedDoc>,
    /// Desired ≠ last-applied: changes not applied yet (not drift).
    pub pending: Vec<ChangeDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftSummaryDoc {
    pub checked: usize,
    pub drifted_users: usize,
    pub drifted_values: usize,
    pub pending_add: usize,
    pub pending_change: usize,
    pub pending_remove: usize,
}

/// One drifted account: attribute name → values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftedDoc {
    pub account: String,
    pub values: BTreeMap<String, DriftValueDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftValueDoc {
    pub last_applied: String,
    /// `null`: deleted remotely.
    pub live: Option<String>,
}

impl DriftDoc {
    pub fn of_report(report: &Report) -> DriftDoc {
        let p = report.pending.summary();
        let names = &report.names;
        DriftDoc {
            format_version: 1,
            summary: DriftSummaryDoc {
                checked: report.checked,
                drifted_users: report.drifted.len(),
                drifted_values: report.drifted_values(),
                pending_add: p.add,
                pending_change: p.change,
                pending_remove: p.remove,
            },
            drift: report
                .drifted
                .iter()
                .map(|d| DriftedDoc {
                    account: d.account.to_string(),
                    values: d
                        .values
                        .iter()
                        .map(|v| {
                            let doc = DriftValueDoc {
                                last_applied: v.last_applied.to_string(),
                                live: v.live.as_deref().map(str::to_owned),
                            };
                            (names.get(v.name).to_owned(), doc)
                        })
                        .collect(),
                })
                .collect(),
            pending: report
                .pending
                .changes
                .iter()
                .map(|c| ChangeDoc::of_change(c, &report.pending.names))
                .collect(),
        }
    }
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
        writeln!(
            w,
            "{} {}",
            style.yellow("~"),
            style.bold(&escape(&d.account))
        )?;
        for v in &d.values {
            let shown = old_to_new_as(
                Some(&v.last_applied),
                v.live.as_deref(),
                style,
                "(deleted remotely)",
            );
            writeln!(w, "    {}: {shown}", escape(report.names.get(v.name)))?;
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
    super::json::to_safe_writer(w, &DriftDoc::of_report(report), false)?;
    writeln!(w)
}

pub fn write_markdown(w: &mut impl Write, report: &Report) -> io::Result<()> {
    w.write_all(markdown_text(report).as_bytes())
}

/// The markdown report (capped like the markdown plan, so it is small).
pub fn markdown_text(report: &Report) -> String {
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
        for v in &d.values {
            let _ = writeln!(
                rows,
                "| <code>{}</code> | {} | <code>{}</code> | {} |",
                markdown::cell(&d.account),
                markdown::cell(report.names.get(v.name)),
                markdown::cell(&v.last_applied),
                v.live
                    .as_deref()
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
    use crate::drift::{AccountDrift, DriftedValue};
    use crate::model::Names;

    fn report() -> Report {
        let names = Names::new(&["city".into(), "tier".into()]);
        let pending = crate::plan::diff(
            crate::model::Desired {
                names: names.clone(),
                accounts: vec![],
            },
            vec![],
            names.clone(),
            &[(0, "city".into()), (1, "tier".into())].into(),
        )
        .unwrap();
        Report {
            names,
            drifted: vec![AccountDrift {
                account: "u1".into(),
                values: vec![
                    DriftedValue {
                        name: 0,
                        last_applied: "x (removed)".into(),
                        live: Some("y".into()),
                    },
                    DriftedValue {
                        name: 1,
                        last_applied: "gold".into(),
                        live: None,
                    },
                ],
            }],
            checked: 3,
            pending,
        }
    }

    #[test]
    fn json_is_the_serde_type_and_has_the_designed_fields() {
        let mut out = Vec::new();
        write_json(&mut out, &report()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"checked":3,"drifted_users":1,"drifted_values":2,
                "pending_add":0,"pending_change":0,"pending_remove":0})
        );
        assert_eq!(
            v["drift"][0]["values"]["tier"],
            serde_json::json!({"last_applied":"gold","live":null})
        );
        let back: DriftDoc = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, DriftDoc::of_report(&report()));
    }

    #[test]
    fn text_labels_deletions_without_rewriting_values() {
        let mut out = Vec::new();
        write_text(&mut out, &report(), Style::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("city: \"x (removed)\" → \"y\""), "{text}");
        assert!(
            text.contains("tier: \"gold\" → (deleted remotely)"),
            "{text}"
        );
    }
}
