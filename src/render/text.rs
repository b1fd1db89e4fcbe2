//! The text plan: each changed account with `+`, `~` or `-`, each changed name as
//! `old → new`, then the summary line.

use std::io::{self, Write};

use super::{count, escape, mass_removal, old_to_new, seconds, targets_text, PlanContext, Style};
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
    format!(
        "Plan: {} to add, {} to change, {} to remove ({}, {}); {}, about {:.2} s at {} req/s.{partial}",
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
    if let Some(why) = mass_removal(&plan.safety(ctx.max_removal_percent)) {
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
    Ok(())
}

/// The requests a dry run would send, one line per batch.
pub fn write_requests(w: &mut impl Write, plan: &Plan) -> io::Result<()> {
    writeln!(w, "\nRequests it would send:")?;
    if !plan.attribute_names.is_empty() {
        writeln!(w, "  im_get_attr_name (read the configured slots)")?;
        writeln!(w, "  im_set_attr_name for the names the app lacks")?;
    }
    for (i, batch) in plan.batches().iter().enumerate() {
        let (Some(&first), Some(&last)) = (batch.changes.first(), batch.changes.last()) else {
            continue;
        };
        writeln!(
            w,
            "  {:<14} batch {:>5}: {:>3} accounts ({} … {})",
            batch.kind.command(),
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
    use crate::model::{Attrs, Desired, Names};

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
            ],
        };
        let last = vec![
            ("u1".into(), a(&[(1, "y"), (2, "gold")]).into()),
            ("u3".into(), a(&[(2, "free")]).into()),
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

    #[test]
    fn colour_highlights_only_on_request() {
        let mut out = Vec::new();
        write_plan(&mut out, &plan(), CTX, Style { color: true }).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\x1b["));
    }
}
