//! The markdown plan, for a pull-request comment: summary table first, removals called out,
//! per-user detail folded in `<details>`, and always under [`MAX_CHARS`] characters, with a
//! line saying how many users were left out.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::seconds;
use crate::plan::{Change, Plan};

/// GitHub refuses comments over 65,536 characters; stay well below.
pub const MAX_CHARS: usize = 60_000;
/// Room kept for the closing lines.
const FOOTER_RESERVE: usize = 600;
/// Accounts named in the removals call-out.
const REMOVALS_LISTED: usize = 20;

/// Escapes a value for a table cell.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '`' => out.push_str("&#96;"),
            '*' | '_' | '[' | ']' | '\\' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn value_cell(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("<code>{}</code>", cell(v)),
        None => "—".into(),
    }
}

/// Rows of one account in the detail table.
pub fn change_rows(plan: &Plan, change: &Change) -> String {
    let mut rows = String::new();
    let mut first = true;
    for (n, name) in plan.names.iter() {
        let new = change.set.get(n);
        let removed = change.remove.contains(&n);
        if new.is_none() && !removed {
            continue;
        }
        let (who, action) = if first {
            (
                format!("<code>{}</code>", cell(&change.account)),
                change.action.as_str(),
            )
        } else {
            (String::new(), "")
        };
        first = false;
        let _ = writeln!(
            rows,
            "| {who} | {action} | {} | {} | {} |",
            cell(name),
            value_cell(change.before.get(n)),
            if removed {
                "<i>removed</i>".to_owned()
            } else {
                value_cell(new)
            }
        );
    }
    rows
}

/// Builds the whole comment as a string (it is capped, so it is small).
pub fn plan_markdown(plan: &Plan, rate: u32) -> String {
    let mut md = String::from("### timattr plan\n\n");
    if plan.is_empty() {
        md.push_str("No changes. Desired attributes match the last-applied state.\n");
        return md;
    }
    let s = plan.summary();
    let _ = write!(
        md,
        "| to add | to change | to remove | unchanged | attribute values | requests |\n|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} |\n\nAbout {:.2} s at {} req/s.\n\n",
        s.add, s.change, s.remove, s.unchanged, s.values, s.requests, seconds(s.requests, rate), rate
    );
    if !plan.attribute_names.is_empty() {
        md.push_str("**Attribute names to configure:** ");
        let list: Vec<String> = plan
            .attribute_names
            .iter()
            .map(|(slot, n)| format!("`{}` (slot {slot})", cell(n)))
            .collect();
        md.push_str(&list.join(", "));
        md.push_str("\n\n");
    }
    if s.accounts_losing_values > 0 {
        let _ = write!(
            md,
            "> [!WARNING]\n> **Removals:** {} of {} managed users lose attribute values ({} leave the store).",
            s.accounts_losing_values, plan.managed, s.remove
        );
        let losing: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| !c.remove.is_empty())
            .take(REMOVALS_LISTED)
            .map(|c| format!("<code>{}</code>", cell(&c.account)))
            .collect();
        let _ = write!(md, "\n> {}", losing.join(", "));
        if s.accounts_losing_values > REMOVALS_LISTED {
            let _ = write!(
                md,
                " and {} more",
                s.accounts_losing_values - REMOVALS_LISTED
            );
        }
        md.push_str("\n\n");
    }
    let _ = write!(
        md,
        "<details><summary>Changes by user ({})</summary>\n\n| user | action | attribute | before | after |\n|---|---|---|---|---|\n",
        plan.changes.len()
    );
    let mut shown = 0;
    for change in &plan.changes {
        let rows = change_rows(plan, change);
        if md.len() + rows.len() + FOOTER_RESERVE > MAX_CHARS {
            break;
        }
        md.push_str(&rows);
        shown += 1;
    }
    md.push_str("\n</details>\n");
    let left_out = plan.changes.len() - shown;
    if left_out > 0 {
        let _ = write!(
            md,
            "\n_{left_out} users were left out to keep this comment under {MAX_CHARS} characters; run `timattr plan` to see them all._\n"
        );
    }
    md
}

pub fn write_plan(w: &mut impl Write, plan: &Plan, rate: u32) -> io::Result<()> {
    w.write_all(plan_markdown(plan, rate).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attrs, Desired, Names};

    #[test]
    fn huge_plans_stay_under_the_cap_and_say_how_many_were_left_out() {
        let names = Names::new(&["city".into()]);
        let accounts: Vec<(crate::model::Account, Attrs)> = (0..20_000)
            .map(|i| {
                (
                    format!("user{i:06}").into(),
                    [(0u8, "a|b<c>".repeat(8).into_boxed_str())]
                        .into_iter()
                        .collect(),
                )
            })
            .collect();
        let plan = crate::plan::diff(
            Desired {
                names: names.clone(),
                accounts,
            },
            vec![],
            names,
            &[(0, "city".into())].into(),
        )
        .unwrap();
        let md = plan_markdown(&plan, 100);
        assert!(md.chars().count() < MAX_CHARS, "{}", md.len());
        assert!(md.contains("users were left out"));
        assert!(md.contains("| 20000 | 0 | 0 |"));
        assert!(!md.contains("a|b"), "pipes must be escaped");
    }
}
