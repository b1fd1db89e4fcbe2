//! Views of the live values and tags outside the project's policies (DESIGN.md §11), which
//! `drift` and `import` report beside what they compare or record: text lines, the JSON
//! `policy_violations` entries, and a markdown table.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::{count, escape, markdown, quote, Style};
use crate::policy::{Subject, Violation};

/// Text lines shown before the rest are only counted (JSON lists them all).
const MAX_TEXT_LINES: usize = 100;

/// One entry of `policy_violations`: `attribute` or `tag` says what holds the live `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationDoc {
    pub account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The tag (equal to `value`), for a tag outside the `tags` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub value: String,
    /// The policy in words: `one of: free, gold, vip` or `pattern: ^[a-z]+$`.
    pub policy: String,
}

impl ViolationDoc {
    pub fn of(v: &Violation) -> ViolationDoc {
        let (attribute, tag) = match &v.subject {
            Subject::Attribute(name) => (Some(name.clone()), None),
            Subject::Tag => (None, Some(v.value.clone())),
        };
        ViolationDoc {
            account: v.account.to_string(),
            attribute,
            tag,
            value: v.value.clone(),
            policy: v.policy.clone(),
        }
    }
}

/// `attribute tier` / `tag`: what a violation is about, for people.
fn subject(v: &Violation) -> String {
    match &v.subject {
        Subject::Attribute(name) => escape(name).into_owned(),
        Subject::Tag => "tag".into(),
    }
}

/// The heading line of a report of `n` violations (`n` > 0).
pub fn heading(n: usize) -> String {
    format!(
        "Live {} outside the project's policies (reported only: {}):",
        count(n, "value is", "values are"),
        "the files decide what is applied"
    )
}

/// The violations as text, at most [`MAX_TEXT_LINES`] of them then a count; nothing when none.
pub fn write_text(w: &mut impl Write, violations: &[Violation], style: Style) -> io::Result<()> {
    if violations.is_empty() {
        return Ok(());
    }
    writeln!(w, "{}", style.yellow(&heading(violations.len())))?;
    for v in violations.iter().take(MAX_TEXT_LINES) {
        writeln!(
            w,
            "  {} {}: {} {}",
            style.bold(&escape(&v.account)),
            subject(v),
            style.red(&quote(&v.value)),
            style.dim(&format!("({})", escape(&v.policy)))
        )?;
    }
    if violations.len() > MAX_TEXT_LINES {
        writeln!(
            w,
            "  … and {} more (--format json lists them all)",
            violations.len() - MAX_TEXT_LINES
        )?;
    }
    Ok(())
}

/// A folded markdown table of the violations, as many rows as keep `md` under the markdown
/// cap; nothing when none.
pub fn push_markdown(md: &mut String, violations: &[Violation]) {
    if violations.is_empty() {
        return;
    }
    let _ = write!(
        md,
        "\n<details><summary>{}</summary>\n\n| user | attribute | live value | policy |\n|---|---|---|---|\n",
        markdown::cell(&heading(violations.len()))
    );
    let mut shown = 0;
    for v in violations {
        let row = format!(
            "| <code>{}</code> | {} | <code>{}</code> | <code>{}</code> |\n",
            markdown::cell(&v.account),
            match &v.subject {
                Subject::Attribute(n) => markdown::cell(n),
                Subject::Tag => "<i>tag</i>".into(),
            },
            markdown::cell(&v.value),
            markdown::cell(&v.policy),
        );
        if md.len() + row.len() + 600 > markdown::MAX_CHARS {
            break;
        }
        md.push_str(&row);
        shown += 1;
    }
    md.push_str("\n</details>\n");
    if shown < violations.len() {
        let _ = writeln!(
            md,
            "\n_{} left out to keep this comment under {} characters; `--format json` lists them all._",
            count(violations.len() - shown, "value was", "values were"),
            markdown::MAX_CHARS
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations() -> Vec<Violation> {
        vec![
            Violation {
                account: "u1".into(),
                subject: Subject::Attribute("tier".into()),
                value: "glod".into(),
                policy: "one of: free, gold".into(),
            },
            Violation {
                account: "u\u{1b}2".into(),
                subject: Subject::Tag,
                value: "v|<b>".into(),
                policy: "pattern: ^[a-z]+$".into(),
            },
        ]
    }

    #[test]
    fn every_view_names_account_subject_value_and_policy() {
        let v = violations();
        let mut text = Vec::new();
        write_text(&mut text, &v, Style::default()).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "Live 2 values are outside the project's policies (reported only: the files decide what is applied):\n  u1 tier: \"glod\" (one of: free, gold)\n  u\\x1b2 tag: \"v|<b>\" (pattern: ^[a-z]+$)\n"
        );
        let docs: Vec<ViolationDoc> = v.iter().map(ViolationDoc::of).collect();
        assert_eq!(
            serde_json::to_value(&docs).unwrap(),
            serde_json::json!([
                {"account": "u1", "attribute": "tier", "value": "glod", "policy": "one of: free, gold"},
                {"account": "u\u{1b}2", "tag": "v|<b>", "value": "v|<b>", "policy": "pattern: ^[a-z]+$"}
            ])
        );
        let mut md = String::new();
        push_markdown(&mut md, &v);
        assert!(
            md.contains("| <code>u1</code> | tier | <code>glod</code> |"),
            "{md}"
        );
        assert!(!md.contains("<b>"), "{md}");
        let mut none = Vec::new();
        write_text(&mut none, &[], Style::default()).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn long_reports_are_cut_with_a_count() {
        let many: Vec<Violation> = (0..150_000)
            .map(|i| Violation {
                account: format!("u{i}").into(),
                subject: Subject::Tag,
                value: "X".into(),
                policy: "pattern: [a-z]+".into(),
            })
            .collect();
        let mut text = Vec::new();
        write_text(&mut text, &many, Style::default()).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().count(), 102);
        assert!(text.ends_with("… and 149900 more (--format json lists them all)\n"));
        let mut md = String::new();
        push_markdown(&mut md, &many);
        assert!(md.len() < markdown::MAX_CHARS);
        assert!(
            md.contains("values were left out"),
            "{}",
            &md[md.len() - 200..]
        );
    }
}
