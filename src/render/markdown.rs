//! The markdown plan, for a pull-request comment: what apply would refuse and whether the plan
//! is partial at the top, the summary table, a per-attribute rollup (so a plan of 20,000
//! changes can be reviewed), removals called out, per-user detail folded in `<details>`, and
//! always under [`MAX_CHARS`] characters, with a line saying how many users were left out and
//! where the full plan is.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{count, is_unsafe, mass_removal, seconds, PlanContext};
use crate::model::NameIdx;
use crate::plan::{Change, Plan};

/// GitHub refuses comments over 65,536 characters; stay well below.
pub const MAX_CHARS: usize = 60_000;
/// Room kept for the closing lines.
const FOOTER_RESERVE: usize = 600;
/// Accounts named in the removals call-out.
const REMOVALS_LISTED: usize = 20;

/// Escapes a value for a table cell: markup, table and mention characters, and the characters
/// that could move the cursor or reorder text (written as `\x1b`, `\u{202e}`).
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if is_unsafe(c) => super::push_escape(&mut out, c),
            // `@name` in a comment notifies that GitHub user.
            '@' => out.push_str("&#64;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '`' => out.push_str("&#96;"),
            '*' | '_' | '[' | ']' | '\\' | '~' => {
                out.push('\\');
                out.push(c);
            }
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
pub fn plan_markdown(plan: &Plan, ctx: PlanContext) -> String {
    let mut md = String::from("### timattr plan\n\n");
    write_top(&mut md, plan, ctx);
    if plan.is_empty() {
        md.push_str("No changes. Desired attributes match the last-applied state.\n");
        return md;
    }
    let s = plan.summary();
    let _ = write!(
        md,
        "| to add | to change | to remove | unchanged | attribute values | requests |\n|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} |\n\nAbout {:.2} s at {} req/s.\n\n",
        s.add, s.change, s.remove, s.unchanged, s.values, s.requests, seconds(s.requests, ctx.rate), ctx.rate
    );
    if !plan.attribute_names.is_empty() {
        md.push_str("**Attribute names to configure:** ");
        let list: Vec<String> = plan
            .attribute_names
            .iter()
            .map(|(slot, n)| format!("<code>{}</code> (slot {slot})", cell(n)))
            .collect();
        md.push_str(&list.join(", "));
        md.push_str("\n\n");
    }
    write_rollup(&mut md, plan);
    write_removals(&mut md, plan);
    write_detail(&mut md, plan);
    md
}

/// What the reviewer must see first: that apply would refuse, that the plan is partial.
fn write_top(md: &mut String, plan: &Plan, ctx: PlanContext) {
    if let Some(why) = mass_removal(plan, ctx.max_removal_percent) {
        let _ = write!(
            md,
            "> [!CAUTION]\n> **Apply would refuse this plan:** {why}.\n\n"
        );
    }
    if plan.is_partial() {
        let targets: Vec<String> = plan
            .targets
            .iter()
            .map(|t| format!("<code>{}</code>", cell(t)))
            .collect();
        let _ = write!(
            md,
            "> [!NOTE]\n> **Partial plan:** only accounts matching `--target` {} are planned; the others are left as they are.\n\n",
            targets.join(", ")
        );
    }
}

/// One attribute's share of a plan.
#[derive(Default)]
struct Rollup<'a> {
    set: usize,
    removed: usize,
    values: std::collections::HashMap<&'a str, usize>,
}

/// Per attribute: values set, distinct new values (the commonest named), values removed.
fn write_rollup(md: &mut String, plan: &Plan) {
    let mut by_name: std::collections::BTreeMap<NameIdx, Rollup> = Default::default();
    for c in &plan.changes {
        for (n, v) in c.set.iter() {
            let r = by_name.entry(n).or_default();
            r.set += 1;
            *r.values.entry(v).or_default() += 1;
        }
        for n in &c.remove {
            by_name.entry(*n).or_default().removed += 1;
        }
    }
    if by_name.is_empty() {
        return;
    }
    md.push_str("| attribute | values set | distinct new values | commonest new values | values removed |\n|---|---:|---:|---|---:|\n");
    for (n, r) in &by_name {
        let mut common: Vec<(&str, usize)> = r.values.iter().map(|(v, k)| (*v, *k)).collect();
        common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = common
            .iter()
            .take(3)
            .map(|(v, k)| format!("<code>{}</code> ×{k}", cell(v)))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(plan.names.get(*n)),
            r.set,
            r.values.len(),
            shown.join(", "),
            r.removed
        );
    }
    md.push('\n');
}

/// The removals box: how many users lose values, the first of them named.
fn write_removals(md: &mut String, plan: &Plan) {
    let s = plan.summary();
    if s.accounts_losing_values == 0 {
        return;
    }
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

/// Per-user rows folded in `<details>`, as many as fit under [`MAX_CHARS`].
fn write_detail(md: &mut String, plan: &Plan) {
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
            "\n_{} left out to keep this comment under {MAX_CHARS} characters. The full plan is in the workflow's plan artifact; `timattr show plan.gz` prints it from the saved plan._\n",
            count(left_out, "user was", "users were")
        );
    }
}

pub fn write_plan(w: &mut impl Write, plan: &Plan, ctx: PlanContext) -> io::Result<()> {
    w.write_all(plan_markdown(plan, ctx).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attrs, Desired, Names};

    #[test]
    fn huge_plans_stay_under_the_cap_and_say_how_many_were_left_out() {
        let names = Names::new(&["city".into()]);
        let accounts: Vec<(crate::model::Account, crate::model::Managed)> = (0..20_000)
            .map(|i| {
                (
                    format!("user{i:06}").into(),
                    [(0u8, "a|b<c>".repeat(8).into_boxed_str())]
                        .into_iter()
                        .collect::<Attrs>()
                        .into(),
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
        let md = plan_markdown(
            &plan,
            PlanContext {
                rate: 100,
                max_removal_percent: 10.0,
            },
        );
        assert!(md.chars().count() < MAX_CHARS, "{}", md.len());
        assert!(md.contains("users were left out"));
        assert!(md.contains("| 20000 | 0 | 0 |"));
        assert!(!md.contains("a|b"), "pipes must be escaped");
    }
}
