//! The JSON plan (`--format json`) and its saved form (`plan --out`), which adds the state's
//! lineage, serial and commit id so `apply FILE` can refuse a stale plan, and ends with the
//! SHA-256 digest of everything before it (see [`write_sealed`]; checked by `ops::saved`).
//!
//! [`PlanDoc`] is the one definition of the format: it reads saved plans (derived), and its
//! derived writer is the reference. Plans of a million changes are written by a streaming
//! hand writer ([`write_plan`]) instead, which is several times faster (BENCHMARKS.md,
//! "JSON plan writer"); the tests hold it to the derived type: written by hand, read by
//! serde, equal to [`PlanDoc::of_plan`].

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::model::{limits, Attrs, Names, Tags};
use crate::plan::{Action, Change, Plan, Safety, TagChange};

pub const FORMAT_VERSION: u32 = 1;

/// What a saved plan records about the store it was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRef {
    /// `null` when there was no store yet.
    pub lineage: Option<String>,
    pub serial: u64,
    /// The store's commit id (`null` when there was no store yet; absent in plans saved before
    /// commit ids, which are refused).
    #[serde(default)]
    pub commit_id: Option<String>,
    pub sdkappid: u32,
    pub endpoint_host: String,
    /// The declared attribute names at planning time, in order.
    pub attributes: Vec<String>,
    /// Managed accounts at planning time (for the mass-removal rule).
    pub managed: usize,
}

/// The `state` object of a JSON plan: the [`StateRef`] and whether a store existed at all, so
/// that a pipeline sees "everything is new because there is no state yet" without parsing
/// stderr. Reading a plan back ignores `exists` (it follows from `lineage`).
#[derive(Serialize)]
struct StateOut<'a> {
    exists: bool,
    #[serde(flatten)]
    state: &'a StateRef,
}

impl<'a> StateOut<'a> {
    fn of(state: &'a StateRef) -> StateOut<'a> {
        StateOut {
            exists: state.lineage.is_some(),
            state,
        }
    }
}

/// Appends `s` as a JSON string. Most values need no escaping: copy those directly (a
/// million-change plan spends most of its rendering time here). Besides what JSON requires,
/// the C1 controls, bidirectional controls and line separators are written as `\uXXXX`, so a
/// plan piped to a terminal cannot reorder text either (DESIGN.md §8).
fn push_str(out: &mut Vec<u8>, s: &str) {
    let plain = s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain && (s.is_ascii() || !s.chars().any(super::is_unsafe)) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if super::is_unsafe(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

/// Writes `value` as JSON like serde does, with the non-ASCII characters of
/// [`super::is_unsafe`] (which serde leaves raw) written as `\uXXXX` escapes. They can only
/// occur inside strings, where the escape reads back as the same character.
pub fn to_safe_writer(w: &mut impl Write, value: &impl Serialize, pretty: bool) -> io::Result<()> {
    let bytes = if pretty {
        serde_json::to_vec_pretty(value)?
    } else {
        serde_json::to_vec(value)?
    };
    let text = String::from_utf8(bytes).expect("serde_json writes UTF-8");
    if text.is_ascii() || !text.chars().any(super::is_unsafe) {
        return w.write_all(text.as_bytes());
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !c.is_ascii() && super::is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    w.write_all(out.as_bytes())
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

fn push_list<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, s);
    }
    out.push(b']');
}

/// Appends one element of `changes`. `tags` is written only when the change has tag changes,
/// so the plan of a project without tags is the same document as before tags existed.
pub fn push_change(out: &mut Vec<u8>, change: &Change, names: &Names) {
    out.extend_from_slice(b"{\"account\":");
    push_str(out, &change.account);
    out.extend_from_slice(b",\"action\":\"");
    out.extend_from_slice(change.action.as_str().as_bytes());
    out.extend_from_slice(b"\",\"set\":");
    push_attrs(out, change.set.iter(), names);
    out.extend_from_slice(b",\"remove\":");
    push_list(out, change.remove.iter().map(|n| names.get(*n)));
    if !change.tags.is_empty() {
        out.extend_from_slice(b",\"tags\":{\"add\":");
        push_list(out, change.tags.add.iter());
        out.extend_from_slice(b",\"remove\":");
        push_list(out, change.tags.remove.iter());
        out.push(b'}');
    }
    out.extend_from_slice(b",\"before\":");
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

/// The plan as one JSON document (DESIGN.md §4), with the mass-removal verdict when `safety`
/// is given and the state it was made against when `state` is.
pub fn write_plan(
    w: &mut impl Write,
    plan: &Plan,
    state: Option<&StateRef>,
    safety: Option<&Safety>,
) -> io::Result<()> {
    write_members(w, plan, state, safety)?;
    w.write_all(b"}\n")
}

/// The member that closes a saved plan: `,"digest":"sha256:<hex>"}`.
pub const DIGEST_MEMBER: &str = ",\"digest\":\"";
pub const DIGEST_PREFIX: &str = "sha256:";

/// The saved form of a plan: the document of [`write_plan`] with `state` and `safety`, closed
/// by a last member `"digest": "sha256:<hex>"`, the SHA-256 of every byte of the document
/// before that member (from its `{` to the `]` of `changes`). Returns the digest.
pub fn write_sealed(
    w: &mut impl Write,
    plan: &Plan,
    state: &StateRef,
    safety: &Safety,
) -> io::Result<String> {
    use sha2::Digest;
    let mut hashing = Hashing {
        inner: w,
        hasher: sha2::Sha256::new(),
    };
    write_members(&mut hashing, plan, Some(state), Some(safety))?;
    let digest = format!("{DIGEST_PREFIX}{}", hex(&hashing.hasher.finalize()));
    writeln!(hashing.inner, "{DIGEST_MEMBER}{digest}\"}}")?;
    Ok(digest)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Passes writes on and hashes them.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hasher: sha2::Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The document's members, without its closing `}`.
fn write_members(
    w: &mut impl Write,
    plan: &Plan,
    state: Option<&StateRef>,
    safety: Option<&Safety>,
) -> io::Result<()> {
    let s = plan.summary();
    write!(
        w,
        "{{\"format_version\":{FORMAT_VERSION},\"summary\":{{\"add\":{},\"change\":{},\"remove\":{},\"unchanged\":{},\"requests\":{}",
        s.add, s.change, s.remove, s.unchanged, s.requests
    )?;
    if let Some(t) = TagCountsDoc::of(s.tags_added, s.tags_removed) {
        write!(
            w,
            ",\"tags_added\":{},\"tags_removed\":{}",
            t.tags_added, t.tags_removed
        )?;
    }
    w.write_all(b"}")?;
    if let Some(safety) = safety {
        w.write_all(b",\"safety\":")?;
        serde_json::to_writer(&mut *w, &SafetyDoc::from(safety))?;
    }
    if let Some(state) = state {
        w.write_all(b",\"state\":")?;
        to_safe_writer(w, &StateOut::of(state), false)?;
    }
    if plan.is_partial() {
        w.write_all(b",\"targets\":")?;
        to_safe_writer(w, &plan.targets, false)?;
    }
    w.write_all(b",\"attribute_names\":{\"set\":")?;
    let slots: BTreeMap<String, &str> = plan
        .attribute_names
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_str()))
        .collect();
    to_safe_writer(w, &slots, false)?;
    w.write_all(b"},\"changes\":[")?;
    // Rendered in chunks: one write per ~64 KiB instead of dozens per change.
    let mut buf = Vec::with_capacity(1 << 17);
    for (i, change) in plan.changes.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_change(&mut buf, change, &plan.names);
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b"]");
    w.write_all(&buf)
}

/// A plan document, as written and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDoc {
    pub format_version: u32,
    pub summary: SummaryDoc,
    /// Whether `apply` would refuse the plan as a mass removal (added in format 1; absent in
    /// older saved plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyDoc>,
    /// The state the plan was made against: in saved plans and in `plan --format json` (with
    /// `lineage: null` and `serial: 0` when there is no state yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateRef>,
    /// The `--target` patterns of a partial plan; absent when the plan covers every account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    pub attribute_names: SlotsDoc,
    pub changes: Vec<ChangeDoc>,
    /// Saved plans only: `sha256:<hex>` of the document before this member (see
    /// [`write_sealed`]); absent in plans saved before digests, which are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The mass-removal verdict (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetyDoc {
    /// Managed accounts losing attribute values or tags, in percent (one decimal).
    #[serde(serialize_with = "whole_as_integer")]
    pub removal_percent: f64,
    #[serde(serialize_with = "whole_as_integer")]
    pub max_removal_percent: f64,
    /// Present (`true`) only when every managed account loses something: refused whatever
    /// their number, even under `max_removal_percent` or with fewer than 10 accounts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removes_from_every_account: bool,
    /// `apply` refuses unless `--allow-mass-removal`.
    pub apply_refuses: bool,
}

/// `10` rather than `10.0` for a whole percentage, as people write it in the project file.
fn whole_as_integer<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

impl From<&Safety> for SafetyDoc {
    fn from(s: &Safety) -> SafetyDoc {
        SafetyDoc {
            removal_percent: s.removal_percent,
            max_removal_percent: s.max_removal_percent,
            removes_from_every_account: s.every_account,
            apply_refuses: s.apply_refuses,
        }
    }
}

/// The plan's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryDoc {
    #[serde(default)]
    pub add: usize,
    #[serde(default)]
    pub change: usize,
    #[serde(default)]
    pub remove: usize,
    pub unchanged: usize,
    #[serde(default)]
    pub requests: usize,
    /// Present only when the plan adds or removes tags (both counts then), so the summary of a
    /// project without tags is the object it always was.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagCountsDoc>,
}

/// Tags added and removed over all accounts (DESIGN.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCountsDoc {
    pub tags_added: usize,
    pub tags_removed: usize,
}

impl TagCountsDoc {
    /// The counts, when there are any.
    pub fn of(tags_added: usize, tags_removed: usize) -> Option<TagCountsDoc> {
        (tags_added + tags_removed > 0).then_some(TagCountsDoc {
            tags_added,
            tags_removed,
        })
    }
}

/// Attribute-name slots to configure (slot number as a string → name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotsDoc {
    pub set: BTreeMap<String, String>,
}

/// One element of `changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeDoc {
    pub account: String,
    pub action: String,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
    /// Tags to add and to remove; absent when the change has none (and in plans saved before
    /// tags).
    #[serde(default, skip_serializing_if = "TagChangeDoc::is_empty")]
    pub tags: TagChangeDoc,
    pub before: BTreeMap<String, String>,
    /// Derived from the others; written for readers, ignored when read back.
    #[serde(default)]
    pub after: BTreeMap<String, String>,
}

/// The `tags` of a change: both lists sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChangeDoc {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

impl TagChangeDoc {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    fn of(tags: &TagChange) -> TagChangeDoc {
        let list = |t: &Tags| t.iter().map(str::to_owned).collect();
        TagChangeDoc {
            add: list(&tags.add),
            remove: list(&tags.remove),
        }
    }
}

impl ChangeDoc {
    pub fn of_change(change: &Change, names: &Names) -> ChangeDoc {
        let map = |attrs: &mut dyn Iterator<Item = (crate::model::NameIdx, &str)>| {
            attrs
                .map(|(n, v)| (names.get(n).to_owned(), v.to_owned()))
                .collect()
        };
        ChangeDoc {
            account: change.account.to_string(),
            action: change.action.as_str().to_owned(),
            set: map(&mut change.set.iter()),
            remove: change
                .remove
                .iter()
                .map(|n| names.get(*n).to_owned())
                .collect(),
            tags: TagChangeDoc::of(&change.tags),
            before: map(&mut change.before.iter()),
            after: map(&mut after(change)),
        }
    }
}

impl PlanDoc {
    /// The document of `plan`, as [`write_plan`] writes it.
    pub fn of_plan(plan: &Plan, state: Option<&StateRef>, safety: Option<&Safety>) -> PlanDoc {
        let s = plan.summary();
        PlanDoc {
            format_version: FORMAT_VERSION,
            summary: SummaryDoc {
                add: s.add,
                change: s.change,
                remove: s.remove,
                unchanged: s.unchanged,
                requests: s.requests,
                tags: TagCountsDoc::of(s.tags_added, s.tags_removed),
            },
            safety: safety.map(SafetyDoc::from),
            state: state.cloned(),
            targets: plan.targets.clone(),
            attribute_names: SlotsDoc {
                set: plan
                    .attribute_names
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            },
            changes: plan
                .changes
                .iter()
                .map(|c| ChangeDoc::of_change(c, &plan.names))
                .collect(),
            digest: None,
        }
    }

    /// The saved plan this document holds, and its mass-removal verdict when it has one.
    /// Errors are phrased for the user.
    pub fn into_saved(self) -> Result<(Plan, StateRef, Option<SafetyDoc>), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "plan file format {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ));
        }
        let state = self.state.ok_or(
            "not a saved plan: it has no state reference (make it with `timattr plan --out FILE`)",
        )?;
        let mut names = Names::new(&state.attributes);
        let changes = self
            .changes
            .into_iter()
            .map(|c| c.into_change(&mut names))
            .collect::<Result<Vec<_>, _>>()?;
        if !changes.windows(2).all(|w| w[0].account < w[1].account) {
            return Err("changes are not sorted by account, or an account appears twice".into());
        }
        let mut attribute_names = BTreeMap::new();
        for (slot, name) in self.attribute_names.set {
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
            unchanged: self.summary.unchanged,
            managed: state.managed,
            targets: self.targets,
            no_state: state.lineage.is_none(),
        };
        Ok((plan, state, self.safety))
    }
}

fn too_many_names() -> String {
    "the plan names more than 255 attributes".to_owned()
}

fn attrs_of(m: BTreeMap<String, String>, names: &mut Names) -> Result<Attrs, String> {
    m.into_iter()
        .map(|(n, v)| {
            if n.len() > u8::MAX as usize || v.len() > u16::MAX as usize {
                return Err(format!("attribute {n:?} is too long"));
            }
            Ok((
                names.intern(&n).ok_or_else(too_many_names)?,
                v.into_boxed_str(),
            ))
        })
        .collect()
}

impl ChangeDoc {
    fn into_change(self, names: &mut Names) -> Result<Change, String> {
        let c = self;
        if c.account.is_empty() || c.account.len() > crate::model::limits::MAX_ACCOUNT_BYTES {
            return Err(format!("account id {:?} is not 1 to 32 bytes", c.account));
        }
        let action = Action::parse(&c.action)
            .ok_or_else(|| format!("unknown action {:?} for {}", c.action, c.account))?;
        let set = attrs_of(c.set, names)?;
        let before = attrs_of(c.before, names)?;
        let remove = c
            .remove
            .iter()
            .map(|n| names.intern(n).ok_or_else(too_many_names))
            .collect::<Result<_, _>>()?;
        let tags = tag_change_of(c.tags, &c.account, action)?;
        Ok(Change {
            account: c.account.into_boxed_str(),
            action,
            set,
            remove,
            before,
            tags,
        })
    }
}

/// The most tags one side of a saved change may list: the store may hold twice the API's
/// limit while an apply replaces a full set (new ones are recorded before old ones go).
const MAX_TAGS_PER_SIDE: usize = 2 * limits::MAX_TAGS_PER_USER;

/// The tags of a saved change, checked as the loader and the store would have them: each 1 to
/// 50 bytes without NUL, each list sorted without repeats, no tag both added and removed, and
/// nothing added to an account that leaves the store or removed from one not in it yet.
fn tag_change_of(doc: TagChangeDoc, account: &str, action: Action) -> Result<TagChange, String> {
    let side = |list: Vec<String>, what: &str| -> Result<Tags, String> {
        if list.len() > MAX_TAGS_PER_SIDE {
            return Err(format!(
                "{account:?} has more than {MAX_TAGS_PER_SIDE} tags to {what}"
            ));
        }
        if let Some(t) = list
            .iter()
            .find(|t| t.is_empty() || t.len() > limits::MAX_TAG_BYTES || t.contains('\0'))
        {
            return Err(format!(
                "tag {t:?} of {account:?} is not 1 to {} bytes without NUL",
                limits::MAX_TAG_BYTES
            ));
        }
        if !list.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!(
                "the tags to {what} of {account:?} are not sorted, or one appears twice"
            ));
        }
        Ok(list.into_iter().collect())
    };
    let tags = TagChange {
        add: side(doc.add, "add")?,
        remove: side(doc.remove, "remove")?,
    };
    if let Some(t) = tags.add.iter().find(|t| tags.remove.contains(t)) {
        return Err(format!(
            "tag {t:?} of {account:?} is both added and removed"
        ));
    }
    let contradiction = match action {
        Action::Add => (!tags.remove.is_empty()).then_some("is new but has tags to remove"),
        Action::Remove => (!tags.add.is_empty()).then_some("leaves the store but has tags to add"),
        Action::Change => None,
    };
    match contradiction {
        Some(why) => Err(format!("{account:?} {why}")),
        None => Ok(tags),
    }
}

/// Reads a saved plan back. Errors are phrased for the user.
pub fn read_saved(bytes: &[u8]) -> Result<(Plan, StateRef, Option<SafetyDoc>), String> {
    let doc: PlanDoc =
        serde_json::from_slice(bytes).map_err(|e| format!("not a timattr plan file: {e}"))?;
    doc.into_saved()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Desired, Managed};

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
        let tagged = |action: &str, tags: &str| {
            doc(&format!(
                r#"{{"account":"u1","action":"{action}","set":{{}},"remove":[],"tags":{tags},"before":{{}}}}"#
            ))
        };
        let refused = |action: &str, tags: &str, why: &str| {
            let err = read_saved(tagged(action, tags).as_bytes()).unwrap_err();
            assert!(err.contains(why), "{tags}: {err}");
        };
        let long = format!(r#"{{"add":["{}"]}}"#, "t".repeat(51));
        refused("change", &long, "not 1 to 50 bytes");
        refused("change", r#"{"add":[""]}"#, "not 1 to 50 bytes");
        refused("change", r#"{"remove":["a\u0000b"]}"#, "without NUL");
        refused("change", r#"{"add":["b","a"]}"#, "not sorted");
        refused("change", r#"{"add":["a","a"]}"#, "appears twice");
        refused(
            "change",
            r#"{"add":["a"],"remove":["a"]}"#,
            "both added and removed",
        );
        refused("remove", r#"{"add":["a"]}"#, "leaves the store");
        refused("add", r#"{"remove":["a"]}"#, "is new");
        refused("change", r#"{"add":"vip"}"#, "not a timattr plan file");
        let many: Vec<String> = (0..201).map(|i| format!("\"t{i:03}\"")).collect();
        refused(
            "change",
            &format!(r#"{{"remove":[{}]}}"#, many.join(",")),
            "more than 200 tags to remove",
        );
        // At the limits, and without a `remove` list: read.
        let fifty = format!(r#"{{"add":["{}"]}}"#, "é".repeat(25));
        let (plan, _, _) = read_saved(tagged("change", &fifty).as_bytes()).unwrap();
        assert_eq!(plan.changes[0].tags.add.len(), 1);
        assert!(plan.changes[0].tags.remove.is_empty());
        let (plan, _, _) = read_saved(
            tagged(
                "remove",
                &format!(r#"{{"remove":[{}]}}"#, many[..200].join(",")),
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(plan.changes[0].tags.remove.len(), 200);
    }

    #[test]
    fn tags_appear_only_when_a_plan_changes_some() {
        let names = Names::new(&["city".into()]);
        let a = |p: &[(u8, &str)]| -> Attrs { p.iter().map(|(n, v)| (*n, (*v).into())).collect() };
        let m = |p: &[(u8, &str)], t: &[&str]| Managed::new(a(p), t.iter().copied().collect());
        let plan = crate::plan::diff(
            Desired {
                names: names.clone(),
                accounts: vec![
                    ("u1".into(), m(&[(0, "x")], &["vip", "beta"])),
                    ("u2".into(), m(&[(0, "y")], &[])),
                    ("u3".into(), m(&[], &["new"])),
                ],
            },
            vec![
                ("u1".into(), m(&[(0, "x")], &["old", "vip"])),
                ("u2".into(), m(&[(0, "z")], &[])),
                ("u4".into(), m(&[], &["gone"])),
            ],
            names,
            &[(0, "city".into())].into(),
        )
        .unwrap();
        let mut out = Vec::new();
        write_plan(&mut out, &plan, None, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"add":1,"change":2,"remove":1,"unchanged":0,"requests":3,
                "tags_added":2,"tags_removed":2})
        );
        assert_eq!(
            v["changes"][0],
            serde_json::json!({"account":"u1","action":"change","set":{},"remove":[],
                "tags":{"add":["beta"],"remove":["old"]},"before":{"city":"x"},"after":{"city":"x"}})
        );
        assert!(v["changes"][1].get("tags").is_none(), "{v}");
        assert_eq!(
            v["changes"][2]["tags"],
            serde_json::json!({"add":["new"],"remove":[]})
        );
        assert_eq!(
            v["changes"][3]["tags"],
            serde_json::json!({"add":[],"remove":["gone"]})
        );
        // A plan without tag changes has the summary it always had.
        let untagged = Plan {
            changes: vec![plan.changes[1].clone()],
            ..plan.clone()
        };
        let mut out = Vec::new();
        write_plan(&mut out, &untagged, None, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"add":0,"change":1,"remove":0,"unchanged":0,"requests":1})
        );
        // Saved and read back: the same plan, tags included.
        let state = StateRef {
            lineage: Some("abc".into()),
            serial: 3,
            commit_id: Some("c".into()),
            sdkappid: 1,
            endpoint_host: "h".into(),
            attributes: vec!["city".into()],
            managed: 3,
        };
        let mut saved = Vec::new();
        write_plan(&mut saved, &plan, Some(&state), None).unwrap();
        assert_eq!(read_saved(&saved).unwrap().0, plan);
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
            tags: Default::default(),
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
                accounts: vec![("u1".into(), a(&[(0, "x")]).into())],
            },
            vec![("u1".into(), a(&[(0, "y"), (1, "gold")]).into())],
            names,
            &[(0, "city".into())].into(),
        )
        .unwrap();
        let mut out = Vec::new();
        write_plan(&mut out, &plan, None, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"add":0,"change":1,"remove":0,"unchanged":0,"requests":4})
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
            commit_id: Some("c".into()),
            sdkappid: 1,
            endpoint_host: "h".into(),
            attributes: vec!["city".into(), "tier".into()],
            managed: 1,
        };
        let mut saved = Vec::new();
        write_plan(&mut saved, &plan, Some(&state), None).unwrap();
        let (back, st, safety) = read_saved(&saved).unwrap();
        assert_eq!(safety, None);
        assert_eq!(st, state);
        assert_eq!(back, plan);
    }

    #[test]
    fn the_hand_writer_writes_what_the_derived_type_reads() {
        let names = Names::new(&["city".into(), "tier".into(), "sex".into()]);
        let a = |p: &[(u8, &str)]| -> Attrs { p.iter().map(|(n, v)| (*n, (*v).into())).collect() };
        let desired = Desired {
            names: names.clone(),
            accounts: vec![
                ("a\u{1b}[2J".into(), a(&[(0, "x\"y"), (2, "m")]).into()),
                ("u1".into(), a(&[(0, "x")]).into()),
                ("u2".into(), a(&[(1, "\u{202e}gold\n")]).into()),
            ],
        };
        let last = vec![
            ("u1".into(), a(&[(0, "y"), (1, "gold")]).into()),
            ("u3".into(), a(&[(1, "free")]).into()),
        ];
        let plan = crate::plan::diff(desired, last, names, &[(0, "city".into())].into()).unwrap();
        let state = StateRef {
            lineage: None,
            serial: 0,
            commit_id: None,
            sdkappid: 1,
            endpoint_host: "h".into(),
            attributes: vec!["city".into(), "tier".into(), "sex".into()],
            managed: 2,
        };
        let safety = plan.safety(10.0);
        let mut targeted = plan.clone();
        targeted.targets = vec!["u*".into(), "a\u{1b}".into()];
        for (plan, state, safety) in [
            (&plan, None, None),
            (&plan, Some(&state), Some(&safety)),
            (&targeted, Some(&state), None),
        ] {
            let mut by_hand = Vec::new();
            write_plan(&mut by_hand, plan, state, safety).unwrap();
            let read: PlanDoc = serde_json::from_slice(&by_hand).unwrap();
            let derived = PlanDoc::of_plan(plan, state, safety);
            assert_eq!(read, derived);
            let again: PlanDoc =
                serde_json::from_slice(&serde_json::to_vec(&derived).unwrap()).unwrap();
            assert_eq!(again, derived);
        }
    }

    fn arb_accounts(
    ) -> impl proptest::strategy::Strategy<Value = Vec<(crate::model::Account, crate::model::Managed)>>
    {
        use proptest::prelude::*;
        // Values with quotes, backslashes, control and bidi characters, and non-ASCII text.
        let value = "[a\"\\\u{1}\u{1b}\n\u{202e}é中]{0,6}";
        let attrs = proptest::collection::btree_map(0u8..3, value, 0..3).prop_map(|m| {
            m.into_iter()
                .map(|(n, v)| (n, v.into_boxed_str()))
                .collect::<Attrs>()
        });
        // Tags from a small pool (so that D and L share some), with the same hostile characters.
        let tags = proptest::collection::btree_set("[ab\"\\\u{1b}\u{202e}é]{1,2}", 0..5)
            .prop_map(|t| t.into_iter().collect::<crate::model::Tags>());
        let managed = (attrs, tags).prop_map(|(a, t)| Managed::new(a, t));
        proptest::collection::btree_map("[a-z\"\\\u{7}]{1,4}", managed, 0..12).prop_map(|m| {
            m.into_iter()
                .map(|(a, managed)| (a.into_boxed_str(), managed))
                .collect()
        })
    }

    proptest::proptest! {
        #[test]
        fn any_plan_written_by_hand_reads_back_as_the_derived_document(
            desired in arb_accounts(),
            last in arb_accounts(),
            tenths in 0u16..1000,
        ) {
            let names = Names::new(&["a".into(), "b".into(), "c".into()]);
            let plan = crate::plan::diff(
                Desired { names: names.clone(), accounts: desired },
                last,
                names,
                &[(0, "a".into())].into(),
            )
            .unwrap();
            let safety = plan.safety(f64::from(tenths) / 10.0);
            let mut by_hand = Vec::new();
            write_plan(&mut by_hand, &plan, None, Some(&safety)).unwrap();
            let read: PlanDoc = serde_json::from_slice(&by_hand).unwrap();
            proptest::prop_assert_eq!(read, PlanDoc::of_plan(&plan, None, Some(&safety)));
            // And as a saved plan it reads back as the same plan, tags included.
            let state = StateRef {
                lineage: Some("l".into()),
                serial: 1,
                commit_id: Some("c".into()),
                sdkappid: 1,
                endpoint_host: "h".into(),
                attributes: vec!["a".into(), "b".into(), "c".into()],
                managed: plan.managed,
            };
            let mut saved = Vec::new();
            write_plan(&mut saved, &plan, Some(&state), Some(&safety)).unwrap();
            proptest::prop_assert_eq!(read_saved(&saved).unwrap().0, plan);
        }
    }
}
