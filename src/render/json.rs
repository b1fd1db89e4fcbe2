//! The JSON plan (`--format json`), streamed one change at a time, and its saved form
//! (`plan --out`), which adds the state's lineage and serial so `apply FILE` can refuse a
//! stale plan.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::model::{Attrs, Names};
use crate::plan::{Action, Change, Plan};

pub const FORMAT_VERSION: u32 = 1;

/// What a saved plan records about the store it was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRef {
    /// `null` when there was no store yet.
    pub lineage: Option<String>,
    pub serial: u64,
    pub sdkappid: u32,
    pub endpoint_host: String,
    /// The declared attribute names at planning time, in order.
    pub attributes: Vec<String>,
    /// Managed accounts at planning time (for the mass-removal rule).
    pub managed: usize,
}

/// Appends `s` as a JSON string. Most values need no escaping: copy those directly and leave
/// the rest to serde_json (a million-change plan spends most of its rendering time here).
fn push_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

fn push_attrs<'a>(
    out: &mut Vec<u8>,
    attrs: impl Iterator<Item = (crate::model::NameIdx, &'a str)>,
    names: &Names,
) {
    out.push(b'{');
    for (i, (n, v)) in attrs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, names.get(n));
        out.push(b':');
        push_str(out, v);
    }
    out.push(b'}');
}

/// The attributes after the change, in name order, without building them.
fn after(change: &Change) -> impl Iterator<Item = (crate::model::NameIdx, &str)> {
    let mut before = change.before.iter().peekable();
    let mut set = change.set.iter().peekable();
    std::iter::from_fn(move || loop {
        match (before.peek().copied(), set.peek().copied()) {
            (None, None) => return None,
            (Some(b), Some(s)) if b.0 == s.0 => {
                before.next();
                return set.next();
            }
            (Some(b), s) if s.is_none_or(|s| b.0 < s.0) => {
                before.next();
                if !change.remove.contains(&b.0) {
                    return Some(b);
                }
            }
            _ => return set.next(),
        }
    })
}

/// Appends one element of `changes`.
pub fn push_change(out: &mut Vec<u8>, change: &Change, names: &Names) {
    out.extend_from_slice(b"{\"account\":");
    push_str(out, &change.account);
    out.extend_from_slice(b",\"action\":\"");
    out.extend_from_slice(change.action.as_str().as_bytes());
    out.extend_from_slice(b"\",\"set\":");
    push_attrs(out, change.set.iter(), names);
    out.extend_from_slice(b",\"remove\":[");
    for (i, n) in change.remove.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, names.get(*n));
    }
    out.extend_from_slice(b"],\"before\":");
    push_attrs(out, change.before.iter(), names);
    out.extend_from_slice(b",\"after\":");
    push_attrs(out, after(change), names);
    out.push(b'}');
}

/// One element of `changes`.
pub fn write_change(w: &mut impl Write, change: &Change, names: &Names) -> io::Result<()> {
    let mut buf = Vec::with_capacity(256);
    push_change(&mut buf, change, names);
    w.write_all(&buf)
}

/// The plan as one JSON document (DESIGN.md §4); with `state`, the saved-plan form.
pub fn write_plan(w: &mut impl Write, plan: &Plan, state: Option<&StateRef>) -> io::Result<()> {
    let s = plan.summary();
    write!(
        w,
        "{{\"format_version\":{FORMAT_VERSION},\"summary\":{{\"add\":{},\"change\":{},\"remove\":{},\"unchanged\":{},\"requests\":{}}}",
        s.add, s.change, s.remove, s.unchanged, s.requests
    )?;
    if let Some(state) = state {
        w.write_all(b",\"state\":")?;
        serde_json::to_writer(&mut *w, state)?;
    }
    w.write_all(b",\"attribute_names\":{\"set\":")?;
    let slots: BTreeMap<String, &str> = plan
        .attribute_names
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_str()))
        .collect();
    serde_json::to_writer(&mut *w, &slots)?;
    w.write_all(b"},\"changes\":[")?;
    // Rendered in chunks: one write per ~64 KiB instead of dozens per change.
    let mut buf = Vec::with_capacity(1 << 17);
    for (i, change) in plan.changes.iter().enumerate() {
        buf.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        push_change(&mut buf, change, &plan.names);
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b"\n]}\n");
    w.write_all(&buf)
}

#[derive(Deserialize)]
struct PlanDoc {
    format_version: u32,
    summary: SummaryDoc,
    state: Option<StateRef>,
    attribute_names: SlotsDoc,
    changes: Vec<ChangeDoc>,
}

#[derive(Deserialize)]
struct SummaryDoc {
    unchanged: usize,
}

#[derive(Deserialize)]
struct SlotsDoc {
    set: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ChangeDoc {
    account: String,
    action: String,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
    before: BTreeMap<String, String>,
}

/// Reads a saved plan back. Errors are phrased for the user.
pub fn read_saved(bytes: &[u8]) -> Result<(Plan, StateRef), String> {
    let doc: PlanDoc =
        serde_json::from_slice(bytes).map_err(|e| format!("not a timattr plan file: {e}"))?;
    if doc.format_version != FORMAT_VERSION {
        return Err(format!(
            "plan file format {} is not supported (expected {FORMAT_VERSION})",
            doc.format_version
        ));
    }
    let state = doc.state.ok_or(
        "not a saved plan: it has no state reference (make it with `timattr plan --out FILE`)",
    )?;
    let mut names = Names::new(&state.attributes);
    let too_many = || "the plan names more than 255 attributes".to_owned();
    let attrs = |m: BTreeMap<String, String>, names: &mut Names| -> Result<Attrs, String> {
        m.into_iter()
            .map(|(n, v)| {
                if n.len() > u8::MAX as usize || v.len() > u16::MAX as usize {
                    return Err(format!("attribute {n:?} is too long"));
                }
                Ok((names.intern(&n).ok_or_else(too_many)?, v.into_boxed_str()))
            })
            .collect()
    };
    let mut changes = Vec::with_capacity(doc.changes.len());
    for c in doc.changes {
        if c.account.is_empty() || c.account.len() > crate::model::limits::MAX_ACCOUNT_BYTES {
            return Err(format!("account id {:?} is not 1 to 32 bytes", c.account));
        }
        let action = Action::parse(&c.action)
            .ok_or_else(|| format!("unknown action {:?} for {}", c.action, c.account))?;
        let set = attrs(c.set, &mut names)?;
        let before = attrs(c.before, &mut names)?;
        let remove = c
            .remove
            .iter()
            .map(|n| names.intern(n).ok_or_else(too_many))
            .collect::<Result<_, _>>()?;
        changes.push(Change {
            account: c.account.into_boxed_str(),
            action,
            set,
            remove,
            before,
        });
    }
    if !changes.windows(2).all(|w| w[0].account < w[1].account) {
        return Err("changes are not sorted by account, or an account appears twice".into());
    }
    let mut attribute_names = BTreeMap::new();
    for (slot, name) in doc.attribute_names.set {
        let slot: u8 = slot
            .parse()
            .ok()
            .filter(|s| *s < 10)
            .ok_or_else(|| format!("bad attribute slot {slot:?}"))?;
        attribute_names.insert(slot, name);
    }
    let plan = Plan {
        names,
        attribute_names,
        changes,
        unchanged: doc.summary.unchanged,
        managed: state.managed,
    };
    Ok((plan, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Desired;

    #[test]
    fn forged_plan_files_are_refused_not_panicked_on() {
        let state = r#""state":{"lineage":null,"serial":0,"sdkappid":1,"endpoint_host":"h","attributes":[],"managed":0}"#;
        let doc = |changes: &str| {
            format!(
                r#"{{"format_version":1,"summary":{{"unchanged":0}},{state},"attribute_names":{{"set":{{}}}},"changes":[{changes}]}}"#
            )
        };
        let long = format!(
            r#"{{"account":"{}","action":"add","set":{{}},"remove":[],"before":{{}}}}"#,
            "x".repeat(40)
        );
        assert!(read_saved(doc(&long).as_bytes())
            .unwrap_err()
            .contains("1 to 32 bytes"));
        let names: Vec<String> = (0..300).map(|i| format!("\"n{i}\":\"v\"")).collect();
        let many = format!(
            r#"{{"account":"u1","action":"add","set":{{{}}},"remove":[],"before":{{}}}}"#,
            names.join(",")
        );
        assert!(read_saved(doc(&many).as_bytes())
            .unwrap_err()
            .contains("255"));
        assert!(read_saved(b"{not json").is_err());
    }

    #[test]
    fn strings_are_escaped_and_after_merges_without_building() {
        let names = Names::new(&["a".into(), "b".into(), "c".into(), "d".into()]);
        let attrs =
            |p: &[(u8, &str)]| -> Attrs { p.iter().map(|(n, v)| (*n, (*v).into())).collect() };
        let change = Change {
            account: "u\"1\n".into(),
            action: Action::Change,
            set: attrs(&[(1, "new \\ \u{1}"), (3, "d")]),
            remove: vec![2],
            before: attrs(&[(0, "keep"), (1, "old"), (2, "gone")]),
        };
        let mut out = Vec::new();
        push_change(&mut out, &change, &names);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["account"], "u\"1\n");
        assert_eq!(
            v["after"],
            serde_json::json!({"a": "keep", "b": "new \\ \u{1}", "d": "d"})
        );
        let after: Vec<_> = after(&change).map(|(n, v)| (n, v.to_owned())).collect();
        let built: Vec<_> = change
            .after()
            .iter()
            .map(|(n, v)| (n, v.to_owned()))
            .collect();
        assert_eq!(after, built);
    }

    #[test]
    fn json_has_the_designed_fields_and_round_trips() {
        let names = Names::new(&["city".into(), "tier".into()]);
        let a = |p: &[(u8, &str)]| -> Attrs { p.iter().map(|(n, v)| (*n, (*v).into())).collect() };
        let plan = crate::plan::diff(
            Desired {
                names: names.clone(),
                accounts: vec![("u1".into(), a(&[(0, "x")]))],
            },
            vec![("u1".into(), a(&[(0, "y"), (1, "gold")]))],
            names,
            &[(0, "city".into())].into(),
        )
        .unwrap();
        let mut out = Vec::new();
        write_plan(&mut out, &plan, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"add":0,"change":1,"remove":0,"unchanged":0,"requests":3})
        );
        assert_eq!(v["attribute_names"]["set"], serde_json::json!({"1":"tier"}));
        assert_eq!(
            v["changes"][0],
            serde_json::json!({"account":"u1","action":"change","set":{"city":"x"},"remove":["tier"],
                "before":{"city":"y","tier":"gold"},"after":{"city":"x"}})
        );
        assert!(read_saved(&out).unwrap_err().contains("no state reference"));

        let state = StateRef {
            lineage: Some("abc".into()),
            serial: 7,
            sdkappid: 1,
            endpoint_host: "h".into(),
            attributes: vec!["city".into(), "tier".into()],
            managed: 1,
        };
        let mut saved = Vec::new();
        write_plan(&mut saved, &plan, Some(&state)).unwrap();
        let (back, st) = read_saved(&saved).unwrap();
        assert_eq!(st, state);
        assert_eq!(back, plan);
    }
}
