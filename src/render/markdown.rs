//! The markdown plan, for a pull-request comment: what apply would refuse and whether the plan
//! is partial at the top, the summary table, a per-attribute and a per-tag rollup (so a plan
//! of 20,000 changes can be reviewed), removals called out, per-user detail folded in
//! `<details>`, and
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

/// Tags as a cell: each in `<code>`, space-separated; `—` when there are none.
fn tags_cell(tags: &crate::model::Tags) -> String {
    if tags.is_empty() {
        return "—".into();
    }
    let cells: Vec<String> = tags
        .iter()
        .map(|t| format!("<code>{}</code>", cell(t)))
        .collect();
    cells.join(" ")
}

/// Rows of one account in the detail table: its attributes in name order, then the tags it
/// gains and loses.
pub fn change_rows(plan: &Plan, change: &Change) -> String {
    // (what, before, after) per row.
    let mut lines: Vec<(String, String, String)> = Vec::new();
    for (n, name) in plan.names.iter() {
        let new = change.set.get(n);
        let removed = change.remove.contains(&n);
        if new.is_none() && !removed {
            continue;
        }
        let after = if removed {
            "<i>removed</i>".to_owned()
        } else {
            value_cell(new)
        };
        lines.push((cell(name), value_cell(change.before.get(n)), after));
    }
    if !change.tags.add.is_empty() {
        let added = tags_cell(&change.tags.add);
        lines.push(("<i>tags added</i>".into(), "—".into(), added));
    }
    if !change.tags.remove.is_empty() {
        let removed = tags_cell(&change.tags.remove);
        lines.push((
            "<i>tags removed</i>".into(),
            removed,
            "<i>removed</i>".into(),
        ));
    }
    let mut rows = String::new();
    for (i, (what, before, after)) in lines.iter().enumerate() {
        let (who, action) = if i == 0 {
            (
                format!("<code>{}</code>", cell(&change.account)),
                change.action.as_str(),
            )
        } else {
            (String::new(), "")
        };
        let _ = writeln!(rows, "| {who} | {action} | {what} | {before} | {after} |");
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
    write_summary(&mut md, plan, ctx);
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
    write_tag_rollup(&mut md, plan);
    write_removals(&mut md, plan);
    write_detail(&mut md, plan);
    md
}

/// The summary table; its tag columns only when the plan changes tags.
fn write_summary(md: &mut String, plan: &Plan, ctx: PlanContext) {
    let s = plan.summary();
    let tags = s.tags_added + s.tags_removed > 0;
    md.push_str("| users to add | users to change | users leaving the store | users unchanged | attribute values |");
    md.push_str(if tags {
        " tags added | tags removed | requests |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    } else {
        " requests |\n|---:|---:|---:|---:|---:|---:|\n"
    });
    let _ = write!(
        md,
        "| {} | {} | {} | {} | {} |",
        s.add, s.change, s.remove, s.unchanged, s.values
    );
    if tags {
        let _ = write!(md, " {} | {} |", s.tags_added, s.tags_removed);
    }
    let _ = write!(
        md,
        " {} |\n\nAbout {:.2} s at {} req/s.\n\n",
        s.requests,
        seconds(s.requests, ctx.rate),
        ctx.rate
    );
}

/// What the reviewer must see first: that apply would refuse, that the plan is partial.
fn write_top(md: &mut String, plan: &Plan, ctx: PlanContext) {
    if let Some(why) = mass_removal(plan, ctx.max_removal_percent) {
        let _ = write!(
            md,
            "> [!CAUTION]\n> **Apply would refuse this plan:** {why}.\n\n"
        );
    }
    if plan.no_state {
        md.push_str("> [!NOTE]\n> **No state yet:** this plan was made without a last-applied state, so every account is new. If the app already has values, `timattr import` adopts them first.\n\n");
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

/// Tags listed in the tag rollup; the rest are counted.
const TAGS_LISTED: usize = 20;

/// Per tag: users gaining it, users losing it; the busiest [`TAGS_LISTED`] tags, then how
/// many more there are.
fn write_tag_rollup(md: &mut String, plan: &Plan) {
    let mut by_tag: std::collections::HashMap<&str, (usize, usize)> = Default::default();
    for c in &plan.changes {
        for t in c.tags.add.iter() {
            by_tag.entry(t).or_default().0 += 1;
        }
        for t in c.tags.remove.iter() {
            by_tag.entry(t).or_default().1 += 1;
        }
    }
    if by_tag.is_empty() {
        return;
    }
    let mut busiest: Vec<(&str, (usize, usize))> = by_tag.into_iter().collect();
    busiest.sort_by(|a, b| (b.1 .0 + b.1 .1).cmp(&(a.1 .0 + a.1 .1)).then(a.0.cmp(b.0)));
    md.push_str("| tag | users gaining it | users losing it |\n|---|---:|---:|\n");
    for (t, (added, removed)) in busiest.iter().take(TAGS_LISTED) {
        let _ = writeln!(md, "| <code>{}</code> | {added} | {removed} |", cell(t));
    }
    if busiest.len() > TAGS_LISTED {
        let _ = writeln!(
            md,
            "\n_and {}._",
            count(busiest.len() - TAGS_LISTED, "more tag", "more tags")
        );
    }
    md.push('\n');
}

/// The removals box: how many users lose values or tags, the first of them named.
fn write_removals(md: &mut String, plan: &Plan) {
    let s = plan.summary();
    if s.accounts_losing_values == 0 {
        return;
    }
    let what = if s.tags_removed > 0 {
        "attribute values or tags"
    } else {
        "attribute values"
    };
    // The table's "users leaving the store" is part of this count: say which is which.
    let leaving = match s.remove {
        0 => String::new(),
        1 => "; 1 of them leaves the store".to_owned(),
        n => format!("; {n} of them leave the store"),
    };
    let _ = write!(
        md,
        "> [!WARNING]\n> **Removals:** {} of {} lose {what}{leaving}.",
        s.accounts_losing_values,
        count(plan.managed, "managed user", "managed users"),
    );
    let losing: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.loses_something())
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
    fn tags_are_counted_rolled_up_called_out_and_detailed() {
        let names = Names::new(&["city".into()]);
        let m = |city: Option<&str>, tags: &[&str]| {
            let attrs: Attrs = city.map(|c| (0u8, c.into())).into_iter().collect();
            crate::model::Managed::new(attrs, tags.iter().copied().collect())
        };
        // 12 managed users; 2 lose a tag (16.7%): apply would refuse.
        let mut last: Vec<(crate::model::Account, crate::model::Managed)> = (0..10)
            .map(|i| (format!("k{i}").into(), m(Some("c"), &[])))
            .collect();
        last.push(("u1".into(), m(Some("x"), &["old", "vip"])));
        last.push(("u3".into(), m(None, &["old"])));
        let mut accounts = last[..10].to_vec();
        accounts.push(("u1".into(), m(Some("x"), &["a|b", "vip"])));
        accounts.push(("u2".into(), m(None, &["vip"])));
        let many: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        accounts.push(("u4".into(), m(None, &many)));
        let plan = crate::plan::diff(
            Desired {
                names: names.clone(),
                accounts,
            },
            last,
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
        assert!(
            md.contains("this plan removes attribute values or tags from 2 of 12 managed users"),
            "{md}"
        );
        assert!(md.contains("| users to add | users to change | users leaving the store | users unchanged | attribute values | tags added | tags removed | requests |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n| 2 | 1 | 1 | 10 | 0 | 27 | 2 | 4 |\n"), "{md}");
        assert!(md.contains("| tag | users gaining it | users losing it |\n|---|---:|---:|\n| <code>old</code> | 0 | 2 |\n| <code>a&#124;b</code> | 1 | 0 |\n"), "{md}");
        assert!(md.contains("_and 8 more tags._"), "{md}");
        assert!(
            md.contains("**Removals:** 2 of 12 managed users lose attribute values or tags; 1 of them leaves the store.\n> <code>u1</code>, <code>u3</code>\n"),
            "{md}"
        );
        assert!(md.contains("| <code>u1</code> | change | <i>tags added</i> | — | <code>a&#124;b</code> |\n|  |  | <i>tags removed</i> | <code>old</code> | <i>removed</i> |\n"), "{md}");
        assert!(
            md.contains("| <code>u2</code> | add | <i>tags added</i> | — | <code>vip</code> |\n"),
            "{md}"
        );
        assert!(
            !md.contains("attribute | values set"),
            "no attribute rollup without values: {md}"
        );
    }

    #[test]
    fn plans_of_many_long_hostile_tags_stay_under_the_cap() {
        let names = Names::new(&["city".into()]);
        // 300 accounts, each with 100 tags of up to 50 bytes, mostly `@` (5 characters escaped).
        let tags = |i: usize| -> crate::model::Tags {
            (0..100)
                .map(|k| format!("{i:03}{k:02}{}", "@".repeat(44)))
                .collect()
        };
        let accounts = (0..300)
            .map(|i| {
                let managed = crate::model::Managed::new(Attrs::new(), tags(i));
                (format!("user{i:06}").into(), managed)
            })
            .collect();
        let last = (0..300)
            .map(|i| {
                let managed = crate::model::Managed::new(Attrs::new(), tags(i + 1000));
                (format!("user{i:06}").into(), managed)
            })
            .collect();
        let plan = crate::plan::diff(
            Desired {
                names: names.clone(),
                accounts,
            },
            last,
            names,
            &[(0, "city".into())].into(),
        )
        .unwrap();
        let ctx = PlanContext {
            rate: 100,
            max_removal_percent: 10.0,
        };
        let md = plan_markdown(&plan, ctx);
        assert!(md.chars().count() < MAX_CHARS, "{}", md.chars().count());
        assert!(md.contains("_and 59980 more tags._"), "{md}");
        assert!(md.contains("users were left out"), "{md}");
        assert!(!md.contains('@'), "mentions escaped");
    }

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
