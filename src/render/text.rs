//! The text plan: each changed account with `+`, `~` or `-`, each changed name as
//! `old → new`, then the summary line.

use std::io::{self, Write};

use super::{
    count, escape, mass_removal, old_to_new, seconds, tag_counts, tag_edits, targets_text,
    PlanContext, Style,
};
use crate::plan::{Action, Change, Plan};

/// The last line of a plan.
pub fn summary_line(plan: &Plan, rate: u32) -> String {
    let partial = if plan.is_partial() {
        format!(
            " Partial plan: only accounts matching --target {}.",
            escape(&targets_text(&plan.targets))
        )
    } else {
        String::new()
    };
    if plan.is_empty() {
        return format!("No changes. Desired attributes match the last-applied state.{partial}");
    }
    let s = plan.summary();
    let tags = tag_counts(s.tags_added, s.tags_removed)
        .map(|t| format!(", {t}"))
        .unwrap_or_default();
    format!(
        "Plan: {} to add, {} to change, {} to remove ({}, {}{tags}); {}, about {:.2} s at {} req/s.{partial}",
        s.add,
        s.change,
        s.remove,
        count(s.users(), "user", "users"),
        count(s.values, "attribute value", "attribute values"),
        count(s.requests, "request", "requests"),
        seconds(s.requests, rate),
        rate
    )
}

/// What the reviewer must know before the detail: a partial plan, a plan apply refuses.
pub fn write_header(
    w: &mut impl Write,
    plan: &Plan,
    ctx: PlanContext,
    style: Style,
) -> io::Result<()> {
    if plan.is_partial() {
        writeln!(
            w,
            "{} only accounts matching --target {} are planned; the others are left as they are.\n",
            style.bold("Partial plan:"),
            escape(&targets_text(&plan.targets))
        )?;
    }
    if let Some(why) = mass_removal(plan, ctx.max_removal_percent) {
        writeln!(
            w,
            "{} {why}.\n",
            style.red(&style.bold("Apply would refuse this plan:"))
        )?;
    }
    Ok(())
}

/// Writes the whole text plan.
pub fn write_plan(
    w: &mut impl Write,
    plan: &Plan,
    ctx: PlanContext,
    style: Style,
) -> io::Result<()> {
    write_header(w, plan, ctx, style)?;
    if !plan.attribute_names.is_empty() {
        writeln!(w, "{}", style.bold("Attribute names to configure:"))?;
        for (slot, name) in &plan.attribute_names {
            writeln!(w, "  {} slot {slot}: {}", style.green("+"), escape(name))?;
        }
        writeln!(w)?;
    }
    for change in &plan.changes {
        write_change(w, plan, change, style)?;
    }
    if !plan.changes.is_empty() {
        writeln!(w)?;
    }
    writeln!(w, "{}", summary_line(plan, ctx.rate))
}

/// One account of the text plan.
pub fn write_change(
    w: &mut impl Write,
    plan: &Plan,
    change: &Change,
    style: Style,
) -> io::Result<()> {
    let sign = change.action.sign().to_string();
    let sign = match change.action {
        Action::Add => style.green(&sign),
        Action::Change => style.yellow(&sign),
        Action::Remove => style.red(&sign),
    };
    writeln!(w, "{sign} {}", style.bold(&escape(&change.account)))?;
    // Names in table order, sets and removes interleaved as the reader expects.
    for (n, name) in plan.names.iter() {
        let new = change.set.get(n);
        let removed = change.remove.contains(&n);
        if new.is_none() && !removed {
            continue;
        }
        let old = change.before.get(n);
        writeln!(w, "    {}: {}", escape(name), old_to_new(old, new, style))?;
    }
    // `tags` cannot be an attribute name (DESIGN.md §9), so this line reads unambiguously.
    if !change.tags.is_empty() {
        writeln!(w, "    tags: {}", tag_edits(&change.tags, style))?;
    }
    Ok(())
}

/// The requests a dry run would send, one line per batch (legacy family names).
pub fn write_requests(w: &mut impl Write, plan: &Plan) -> io::Result<()> {
    write_requests_of(w, plan, crate::api::Family::AllMemberPush)
}

/// [`write_requests`] with the command names of `family`.
pub fn write_requests_of(
    w: &mut impl Write,
    plan: &Plan,
    family: crate::api::Family,
) -> io::Result<()> {
    use crate::api::Command;
    writeln!(w, "\nRequests it would send:")?;
    if !plan.attribute_names.is_empty() {
        let (get, set) = (Command::GetAttrName, Command::SetAttrName);
        writeln!(w, "  {} (read the configured slots)", family.name(get))?;
        writeln!(w, "  {} for the names the app lacks", family.name(set))?;
    }
    for (i, batch) in plan.batches().iter().enumerate() {
        let (Some(&first), Some(&last)) = (batch.changes.first(), batch.changes.last()) else {
            continue;
        };
        // A tag batch carries up to 10 tags per account: say how many in all.
        let tags = if batch.kind.is_tags() {
            let n: usize = (0..batch.changes.len())
                .map(|k| batch.tags(plan, k).len())
                .sum();
            format!(", {}", count(n, "tag", "tags"))
        } else {
            String::new()
        };
        writeln!(
            w,
            "  {:<14} batch {:>5}: {:>3} accounts ({} … {}){tags}",
            family.name(batch.kind.operation()),
            i + 1,
            batch.changes.len(),
            escape(&plan.changes[first].account),
            escape(&plan.changes[last].account),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Attrs, Desired, Managed, Names};

    const CTX: PlanContext = PlanContext {
        rate: 100,
        max_removal_percent: 10.0,
    };

    fn plan() -> Plan {
        let names = Names::new(&["sex".into(), "city".into(), "tier".into()]);
        let a = |p: &[(u8, &str)]| -> Attrs { p.iter().map(|(n, v)| (*n, (*v).into())).collect() };
        let desired = Desired {
            names: names.clone(),
            accounts: vec![
                ("u1".into(), a(&[(1, "x")]).into()),
                ("u2".into(), a(&[(0, "m")]).into()),
                ("u4".into(), a(&[(0, "f")]).into()),
            ],
        };
        // u4 keeps its values: not every managed account loses one (DESIGN.md §4 safety).
        let last = vec![
            ("u1".into(), a(&[(1, "y"), (2, "gold")]).into()),
            ("u3".into(), a(&[(2, "free")]).into()),
            ("u4".into(), a(&[(0, "f")]).into()),
        ];
        let slots: BTreeMap<u8, String> = [(0, "sex".into()), (1, "city".into())].into();
        crate::plan::diff(desired, last, names, &slots).unwrap()
    }

    #[test]
    fn text_plan_matches_the_design() {
        let mut out = Vec::new();
        write_plan(&mut out, &plan(), CTX, Style::default()).unwrap();
        let out = String::from_utf8(out).unwrap();
        let want = "\
Attribute names to configure:
  + slot 2: tier

~ u1
    city: \"y\" → \"x\"
    tier: \"gold\" → (removed)
+ u2
    sex: (unset) → \"m\"
- u3
    tier: \"free\" → (removed)

Plan: 1 to add, 1 to change, 1 to remove (3 users, 4 attribute values); 4 requests, about 0.04 s at 100 req/s.
";
        assert_eq!(out, want);
    }

    #[test]
    fn empty_plan_says_no_changes() {
        let names = Names::new(&["sex".into()]);
        let slots: BTreeMap<u8, String> = [(0, "sex".into())].into();
        let p = crate::plan::diff(
            Desired {
                names: names.clone(),
                accounts: vec![],
            },
            vec![],
            names,
            &slots,
        )
        .unwrap();
        assert_eq!(
            summary_line(&p, 100),
            "No changes. Desired attributes match the last-applied state."
        );
    }

    /// u1 gains two tags and loses one, u2 only gains tags, u3 (leaving) loses its tag, u4
    /// gains 23 tags (three entries: three consecutive `im_add_tag` batches).
    fn tagged_plan() -> Plan {
        let names = Names::new(&["city".into()]);
        let m = |city: Option<&str>, tags: &[&str]| {
            let attrs: Attrs = city.map(|c| (0u8, c.into())).into_iter().collect();
            Managed::new(attrs, tags.iter().copied().collect())
        };
        let many: Vec<String> = (0..23).map(|i| format!("t{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let desired = Desired {
            names: names.clone(),
            accounts: vec![
                ("u1".into(), m(Some("x"), &["vip", "a b", "keep"])),
                ("u2".into(), m(Some("y"), &["beta"])),
                ("u4".into(), m(None, &many)),
            ],
        };
        let last = vec![
            ("u1".into(), m(Some("x"), &["keep", "old"])),
            ("u2".into(), m(Some("z"), &[])),
            ("u3".into(), m(None, &["gone"])),
        ];
        crate::plan::diff(desired, last, names, &[(0, "city".into())].into()).unwrap()
    }

    #[test]
    fn text_plan_shows_tags_and_counts_them_in_the_summary() {
        let mut out = Vec::new();
        write_plan(&mut out, &tagged_plan(), CTX, Style::default()).unwrap();
        let out = String::from_utf8(out).unwrap();
        let want = "\
~ u1
    tags: +\"a b\" +vip -old
~ u2
    city: \"z\" → \"y\"
    tags: +beta
- u3
    tags: -gone
+ u4
    tags: +t00 +t01 +t02 +t03 +t04 +t05 +t06 +t07 +t08 +t09 +t10 +t11 +t12 +t13 +t14 +t15 +t16 +t17 +t18 +t19 +t20 +t21 +t22

Plan: 1 to add, 2 to change, 1 to remove (4 users, 1 attribute value, 26 tags added, 2 removed); 5 requests, about 0.05 s at 100 req/s.
";
        assert_eq!(out, want);
        let mut requests = Vec::new();
        write_requests(&mut requests, &tagged_plan()).unwrap();
        let requests = String::from_utf8(requests).unwrap();
        let want = "
Requests it would send:
  im_set_attr    batch     1:   1 accounts (u2 … u2)
  im_add_tag     batch     2:   3 accounts (u1 … u4), 13 tags
  im_add_tag     batch     3:   1 accounts (u4 … u4), 10 tags
  im_add_tag     batch     4:   1 accounts (u4 … u4), 3 tags
  im_remove_tag  batch     5:   2 accounts (u1 … u3), 2 tags
";
        assert_eq!(requests, want);
    }

    #[test]
    fn colour_highlights_only_on_request() {
        let mut out = Vec::new();
        write_plan(&mut out, &plan(), CTX, Style { color: true }).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\x1b["));
    }
}
