//! The views of a doctor report: text for people (one line per check, the fix under a failed
//! one) and one compact JSON document for programs:
//! `{"checks":[{"name","status","finding","fix"}],"ok":bool}`.

use std::io::{self, Write};

use serde::Serialize;

use super::{escape_text, Style};
use crate::ops::doctor::{name, Check, Report, Status};

pub fn write_text(out: &mut impl Write, report: &Report, style: Style) -> io::Result<()> {
    let width = report
        .checks
        .iter()
        .map(|c| name::title(c.name).chars().count())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let mark = match c.status {
            Status::Pass => style.green("✓"),
            Status::Fail => style.red("✗"),
            Status::Skip => style.dim("-"),
            Status::Info => "·".to_owned(),
        };
        let title = name::title(c.name);
        let pad = " ".repeat(width - title.chars().count());
        let finding = indent(&escape_text(&c.finding), width + 4);
        writeln!(out, "{mark} {}{pad}  {finding}", style.bold(title))?;
        if !c.fix.is_empty() {
            let fix = indent(&escape_text(&c.fix), width + 9);
            writeln!(out, "{}  fix: {fix}", " ".repeat(width + 2))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", summary(report))
}

/// Continuation lines of a multi-line finding, lined up under its first line.
fn indent(text: &str, by: usize) -> String {
    text.replace('\n', &format!("\n{}", " ".repeat(by)))
}

fn summary(report: &Report) -> String {
    let failed: Vec<&str> = report.failed().map(|c| name::title(c.name)).collect();
    let total = report.checks.len();
    match failed.len() {
        0 => format!("All {total} checks pass: an apply has what it needs."),
        n => format!(
            "{n} of {total} checks failed ({}): fix them in this order and run `timattr doctor` again.",
            failed.join(", ")
        ),
    }
}

#[derive(Serialize)]
struct Document<'a> {
    checks: &'a [Check],
    ok: bool,
}

pub fn write_json(out: &mut impl Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &Document {
            checks: &report.checks,
            ok: report.ok(),
        },
    )?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::default();
        r.checks.push(Check {
            name: name::PROJECT,
            status: Status::Pass,
            finding: "timattr.yaml loads".into(),
            fix: String::new(),
        });
        r.checks.push(Check {
            name: name::API,
            status: Status::Fail,
            finding: "error 70009\x1b[2J".into(),
            fix: "export the key".into(),
        });
        r.checks.push(Check {
            name: name::CLOCK,
            status: Status::Skip,
            finding: "skipped: needs an answer (api)".into(),
            fix: String::new(),
        });
        r
    }

    #[test]
    fn text_has_a_line_per_check_the_fix_under_a_failure_and_a_summary() {
        let mut out = Vec::new();
        write_text(&mut out, &report(), Style::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "✓ project file     timattr.yaml loads");
        assert_eq!(lines[1], "✗ API and UserSig  error 70009\\x1b[2J");
        assert_eq!(lines[2], "                   fix: export the key");
        assert_eq!(
            lines[3],
            "- clock            skipped: needs an answer (api)"
        );
        assert_eq!(
            lines[5],
            "1 of 3 checks failed (API and UserSig): fix them in this order and run `timattr doctor` again."
        );
    }

    #[test]
    fn json_is_one_compact_document() {
        let mut out = Vec::new();
        write_json(&mut out, &report()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["checks"][1]["name"], "api");
        assert_eq!(v["checks"][1]["status"], "fail");
        assert_eq!(v["checks"][1]["fix"], "export the key");
        assert_eq!(v["checks"][2]["status"], "skip");
    }
}
