//! Views of a drift report: text, JSON (one serde type, [`DriftDoc`]) and markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::json::ChangeDoc;
use super::policy::ViolationDoc;
use super::{count, escape, markdown, old_to_new_as, quote, Style};
use crate::drift::Report;

/// The JSON drift report, as written and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftDoc {
    pub format_version: u32,
    pub summary: DriftSummaryDoc,
    pub drift: Vec<DriftedDoc>,
    /// Desired ≠ last-applied: changes not applied yet (not drift).
    pub pending: Vec<ChangeDoc>,
    /// Managed accounts that do not exist live (70107); left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<String>,
    /// Live values and tags outside the project's policies (reported, not drift); left out
    /// when the project has no policies, so such a project's report is the one it always was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_violations: Option<Vec<ViolationDoc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftSummaryDoc {
    pub checked: usize,
    pub drifted_users: usize,
    pub drifted_values: usize,
    /// Managed tags missing live; left out when none (a project without tags reads as before).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drifted_tags: usize,
    /// Managed accounts that do not exist live; left out when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gone_users: usize,
    pub pending_add: usize,
    pub pending_change: usize,
    pub pending_remove: usize,
}

/// One drifted account: attribute name → values, and the managed tags missing live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftedDoc {
    pub account: String,
    pub values: BTreeMap<String, DriftValueDoc>,
    /// Sorted; left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_missing: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
                drifted_tags: report.drifted_tags(),
                gone_users: report.gone.len(),
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
                    tags_missing: d.tags_missing.iter().map(str::to_owned).collect(),
                })
                .collect(),
            pending: report
                .pending
                .changes
                .iter()
                .map(|c| ChangeDoc::of_change(c, &report.pending.names))
                .collect(),
            gone: report.gone.iter().map(|a| a.to_string()).collect(),
            policy_violations: report
                .policy_violations
                .as_ref()
                .map(|v| v.iter().map(ViolationDoc::of).collect()),
        }
    }
}

/// The line about the accounts that are gone, if any.
fn gone_line(report: &Report) -> Option<String> {
    (!report.gone.is_empty()).then(|| {
        format!(
            "Gone: {} the last-applied state manages {} no longer in the app (70107: the account does not exist); `drift --fix` cannot bring {} back.",
            count(report.gone.len(), "account", "accounts"),
            if report.gone.len() == 1 { "is" } else { "are" },
            if report.gone.len() == 1 { "it" } else { "them" },
        )
    })
}

/// The error of `drift --fix` when accounts are gone: each named, and what to do.
pub fn gone_error(gone: &[crate::model::Account]) -> crate::Error {
    let shown: Vec<String> = gone
        .iter()
        .take(20)
        .map(|a| escape(a).into_owned())
        .collect();
    let more = if gone.len() > 20 { ", …" } else { "" };
    crate::Error::msg(format!(
        "{} managed by the state {} not exist in the app (70107): {}{more}; nothing was sent for {}. Remove {} from the users files and apply (or forget {} with `timattr state rm`)",
        count(gone.len(), "account", "accounts"),
        if gone.len() == 1 { "does" } else { "do" },
        shown.join(", "),
        if gone.len() == 1 { "it" } else { "them" },
        if gone.len() == 1 { "it" } else { "them" },
        if gone.len() == 1 { "it" } else { "them" },
    ))
}

pub fn summary_line(report: &Report) -> String {
    // Tags are named only when some are managed: a project without tags reads as before.
    if !report.gone.is_empty() && report.drifted.is_empty() {
        format!(
            "Drift: {} gone from the app ({} users checked).",
            count(report.gone.len(), "managed user", "managed users"),
            report.checked
        )
    } else if report.drifted.is_empty() {
        format!(
            "No drift. The live {} of {} match the last-applied state.",
            if report.tags_checked > 0 {
                "attributes and tags"
            } else {
                "attributes"
            },
            count(report.checked, "managed user", "managed users")
        )
    } else {
        let tags = match report.drifted_tags() {
            0 => String::new(),
            n => format!(
                " and {} missing live",
                count(n, "managed tag is", "managed tags are")
            ),
        };
        let values = report.drifted_values();
        format!(
            "Drift: {}, {} {} from the last-applied state{tags} ({} checked).",
            count(report.drifted.len(), "user", "users"),
            count(values, "attribute value", "attribute values"),
            if values == 1 { "differs" } else { "differ" },
            count(report.checked, "user", "users")
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
        if !d.tags_missing.is_empty() {
            let tags: Vec<String> = d
                .tags_missing
                .iter()
                .map(|t| style.red(&quote(t)))
                .collect();
            writeln!(
                w,
                "    tags {}: {}",
                style.dim("(missing live)"),
                tags.join(" ")
            )?;
        }
    }
    for a in &report.gone {
        writeln!(
            w,
            "{} {} {}",
            style.red("!"),
            style.bold(&escape(a)),
            style.dim("(the account does not exist in the app: 70107)")
        )?;
    }
    if report.has_drift() {
        writeln!(w)?;
    }
    writeln!(w, "{}", summary_line(report))?;
    if let Some(g) = gone_line(report) {
        writeln!(w, "{g}")?;
    }
    if let Some(p) = pending_line(report) {
        writeln!(w, "{p}")?;
    }
    super::policy::write_text(w, violations(report), style)
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
    if let Some(g) = gone_line(report) {
        let shown: Vec<String> = report
            .gone
            .iter()
            .take(100)
            .map(|a| format!("<code>{}</code>", markdown::cell(a)))
            .collect();
        let _ = writeln!(md, "{g} {}\n", shown.join(", "));
    }
    if report.drifted.is_empty() {
        super::policy::push_markdown(&mut md, violations(report));
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
        for t in d.tags_missing.iter() {
            let _ = writeln!(
                rows,
                "| <code>{}</code> | <i>tag</i> <code>{}</code> | <i>tagged</i> | <i>missing</i> |",
                markdown::cell(&d.account),
                markdown::cell(t),
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
            "\n_{} left out to keep this comment under {} characters; run `timattr drift` to see them all._",
            count(report.drifted.len() - shown, "user was", "users were"),
            markdown::MAX_CHARS
        );
    }
    super::policy::push_markdown(&mut md, violations(report));
    md
}

fn violations(report: &Report) -> &[crate::policy::Violation] {
    report.policy_violations.as_deref().unwrap_or_default()
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
                tags_missing: Default::default(),
            }],
            checked: 3,
            tags_checked: 0,
            pending,
            gone: Vec::new(),
            policy_violations: None,
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
        // Without tags the document is the one it always was.
        assert!(v["summary"].get("drifted_tags").is_none());
        assert!(v["drift"][0].get("tags_missing").is_none());
    }

    /// `report()` where u1 also lost two managed tags and u2 lost only a tag.
    fn tag_report() -> Report {
        let mut r = report();
        r.tags_checked = 2;
        r.drifted[0].tags_missing = ["vip", "beta|<b>"].into_iter().collect();
        r.drifted.push(AccountDrift {
            account: "u2".into(),
            values: Vec::new(),
            tags_missing: ["vip"].into_iter().collect(),
        });
        r
    }

    #[test]
    fn missing_tags_show_in_every_view() {
        let r = tag_report();
        let mut out = Vec::new();
        write_json(&mut out, &r).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["summary"]["drifted_tags"], 3);
        assert_eq!(v["summary"]["drifted_users"], 2);
        assert_eq!(
            v["drift"][0]["tags_missing"],
            serde_json::json!(["beta|<b>", "vip"])
        );
        assert_eq!(v["drift"][1]["values"], serde_json::json!({}));
        assert_eq!(v["drift"][1]["tags_missing"], serde_json::json!(["vip"]));
        let back: DriftDoc = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, DriftDoc::of_report(&r));

        let mut out = Vec::new();
        write_text(&mut out, &r, Style::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("~ u2\n    tags (missing live): \"vip\"\n"),
            "{text}"
        );
        assert!(
            text.contains("and 3 managed tags are missing live (3 users checked)"),
            "{text}"
        );

        let md = markdown_text(&r);
        assert!(
            md.contains("| <code>u2</code> | <i>tag</i> <code>vip</code> | <i>tagged</i> | <i>missing</i> |"),
            "{md}"
        );
        assert!(!md.contains("<b>"), "cells are escaped: {md}");
    }

    #[test]
    fn no_drift_names_tags_only_when_some_are_managed() {
        let mut r = report();
        r.drifted.clear();
        assert!(summary_line(&r).contains("live attributes of 3"));
        r.tags_checked = 1;
        assert!(summary_line(&r).contains("live attributes and tags of 3"));
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
