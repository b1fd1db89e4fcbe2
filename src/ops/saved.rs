//! Saved plan files (`plan --out`, `apply FILE`, `show FILE`) and the checks that make them
//! sealed (DESIGN.md §4 "Saved plan"): what was reviewed is exactly what is applied.
//!
//! A saved plan is gzip-compressed JSON holding the changes, the state's lineage, serial and
//! commit id at planning time, and a SHA-256 digest of its own content. Before anything is
//! sent, `apply FILE` (and `show FILE`, which reports instead of refusing) checks:
//! - the seal: the digest matches (else "modified or damaged"); a plan without one was saved
//!   by an older timattr and is refused with the hint to plan again;
//! - the app: the plan's sdkappid and endpoint host are the project's;
//! - freshness: the store's commit id is the plan's (under the writer's lock for `apply`) —
//!   commit ids are never made twice, so a serial reused by `state restore --force` cannot
//!   pass for the reviewed state;
//! - content: every change equals the change of the fresh plan of the current files against
//!   the current state ([`crate::plan::compare`]); the plan executed is then made of those
//!   fresh changes, so nothing but the account selection comes from the file.

use std::io::Read;
use std::path::Path;

use crate::model::Desired;
use crate::plan::compare::{self, Difference};
use crate::plan::{Plan, Safety};
use crate::render::json::{PlanDoc, SafetyDoc, StateRef, DIGEST_MEMBER, DIGEST_PREFIX};
use crate::render::quote;
use crate::settings::Settings;
use crate::store::interface::State;
use crate::{Error, Result};

/// How many differing accounts a refusal names.
const NAMED: usize = 5;

/// Writes a saved plan, with its mass-removal verdict, and returns its digest. The file is
/// written beside its target and renamed (DESIGN.md §8), so a failed write leaves the previous
/// plan file intact.
pub fn save(path: &Path, plan: &Plan, state: &StateRef, safety: &Safety) -> Result<String> {
    let mut digest = String::new();
    crate::files::write_atomically(path, |out| {
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        // Masked before compression: the redaction step sees the plan's text.
        let mut clear = crate::redact::Writer::new(gz);
        digest = crate::render::json::write_sealed(&mut clear, plan, state, safety)?;
        clear.into_inner()?.finish()?.flush()
    })
    .map_err(|e| Error::io(format!("cannot write plan file {}", path.display()), e))?;
    Ok(digest)
}

/// The most a saved plan may inflate to (DESIGN.md §8). Plan JSON compresses about 5–15×, a
/// decompression bomb about 1000×: allowing 64× the file's size (at least 64 MiB) reads any
/// real plan and stops a bomb before it costs memory.
fn inflate_cap(compressed: u64) -> u64 {
    compressed.saturating_mul(64).max(64 << 20)
}

/// Whether a saved plan's content is what its digest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seal {
    /// The digest matches (`sha256:<hex>`).
    Intact(String),
    /// The content does not match the digest it carries.
    Broken { recorded: String, actual: String },
    /// No digest: saved by a timattr older than sealed plans.
    Missing,
}

/// A saved plan as read, not yet checked.
#[derive(Debug)]
pub struct Saved {
    pub plan: Plan,
    pub state: StateRef,
    /// The mass-removal verdict at planning time (absent in the oldest plans).
    pub safety: Option<SafetyDoc>,
    pub seal: Seal,
}

fn not_a_plan(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::msg(format!(
        "{} is not a saved plan (gzip JSON from `timattr plan --out`), or it was damaged: {why}",
        crate::render::escape(&path.display().to_string())
    ))
}

/// Reads a saved plan and works out its seal; the seal is checked by [`check_seal`]. A state
/// export or a JSON plan given instead is named as what it is.
pub fn read(path: &Path) -> Result<Saved> {
    read_plan(path).map_err(|e| match crate::files::doc_kind(path) {
        // Another of the tool's files: say which, not what its parser missed.
        Some(
            kind @ (crate::files::DocKind::Export | crate::files::DocKind::Plan { gzipped: false }),
        ) => Error::msg(format!(
            "{} is not a saved plan: this is {}",
            path.display(),
            kind.described()
        )),
        _ => e,
    })
}

fn read_plan(path: &Path) -> Result<Saved> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read plan file {}", path.display()), e))?;
    let compressed = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    crate::files::gzip_reader_capped(file, inflate_cap(compressed), path.display().to_string())
        .read_to_end(&mut bytes)
        .map_err(|e| not_a_plan(path, e))?;
    let doc: PlanDoc = serde_json::from_slice(&bytes).map_err(|e| {
        Error::msg(format!(
            "{}: not a timattr plan file (gzip JSON from `timattr plan --out`), or it was damaged: {e}",
            crate::render::escape(&path.display().to_string())
        ))
    })?;
    let seal = seal_of(&bytes, doc.digest.as_deref());
    let (plan, state, safety) = doc.into_saved().map_err(|e| {
        // An edit that breaks the plan's own rules is reported as the edit it is.
        match &seal {
            Seal::Broken { .. } => Error::msg(format!(
                "{}: the saved plan was modified or damaged ({e}); run `timattr plan --out FILE` again and review the new plan",
                path.display()
            )),
            _ => Error::msg(format!("{}: {e}", path.display())),
        }
    })?;
    Ok(Saved {
        plan,
        state,
        safety,
        seal,
    })
}

/// The seal of a plan document `bytes` whose `digest` member holds `recorded`: the digest
/// covers every byte before that member, which must close the document.
pub fn seal_of(bytes: &[u8], recorded: Option<&str>) -> Seal {
    use sha2::Digest;
    let Some(recorded) = recorded else {
        return Seal::Missing;
    };
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let member = format!("{DIGEST_MEMBER}{recorded}\"}}");
    let actual = match bytes[..end].strip_suffix(member.as_bytes()) {
        Some(body) => format!(
            "{DIGEST_PREFIX}{}",
            crate::render::json::hex(&sha2::Sha256::digest(body))
        ),
        None => "(the digest is not where the plan writes it)".to_owned(),
    };
    if actual == recorded {
        Seal::Intact(actual)
    } else {
        Seal::Broken {
            recorded: recorded.to_owned(),
            actual,
        }
    }
}

/// Refuses a plan whose digest does not match, or that has none.
pub fn check_seal(saved: &Saved) -> Result<()> {
    match &saved.seal {
        Seal::Intact(_) => Ok(()),
        Seal::Broken { recorded, actual } => Err(Error::msg(format!(
            "the saved plan was modified or damaged: its content hashes to {}, but it records {}; run `timattr plan --out FILE` again and review the new plan",
            crate::render::escape(actual),
            crate::render::escape(recorded)
        ))),
        Seal::Missing => Err(Error::msg(
            "the saved plan has no digest or commit id: it was saved by an older timattr and cannot be checked; run `timattr plan --out FILE` again and review the new plan",
        )),
    }
}

/// A saved plan applies only to the app it was made for.
pub fn check_same_app(settings: &Settings, state: &StateRef) -> Result<()> {
    if state.sdkappid != settings.sdkappid || state.endpoint_host != settings.endpoint.host() {
        return Err(Error::msg(format!(
            "the saved plan is for sdkappid {} at {}, but the project is sdkappid {} at {}",
            state.sdkappid,
            crate::render::escape(&state.endpoint_host),
            settings.sdkappid,
            settings.endpoint.host()
        )));
    }
    Ok(())
}

/// A saved plan applies only to the exact state it was made against: the store's current
/// commit id must be the plan's. A plan made before any store existed applies while the store
/// has recorded nothing (serial 0).
pub fn check_not_stale(store: Option<&State>, state: &StateRef) -> Result<()> {
    let (lineage, serial, commit) = match store {
        Some(s) => (
            Some(s.meta().lineage.as_str()),
            s.meta().serial,
            Some(s.meta().commit_id.as_str()),
        ),
        None => (None, 0, None),
    };
    let same = match (&state.lineage, &state.commit_id) {
        (Some(l), Some(c)) => lineage == Some(l.as_str()) && commit == Some(c.as_str()),
        (None, None) => serial == 0,
        // A plan against a store but without its commit id: saved before commit ids.
        _ => false,
    };
    if same {
        return Ok(());
    }
    let id = |c: Option<&str>| match c {
        Some("") => "(none yet)".to_owned(),
        Some(c) => crate::render::escape(c).into_owned(),
        None => "none".to_owned(),
    };
    let lineages = match (&state.lineage, lineage) {
        (Some(p), Some(s)) if p != s => format!(
            " The plan's lineage is {}, the state's {}.",
            crate::render::escape(p),
            s
        ),
        _ => String::new(),
    };
    Err(Error::msg(format!(
        "the saved plan is stale: it was made at serial {} (commit id {}), but the state is now at serial {} (commit id {}).{lineages} The state changed since the plan was reviewed; run `timattr plan --out FILE` again and review the new plan",
        state.serial,
        id(state.commit_id.as_deref()),
        serial,
        id(commit),
    )))
}

/// Which accounts of `saved` are in the desired files (the rest are looked up in the store).
fn in_files(saved: &Plan, desired: &Desired) -> Vec<bool> {
    saved
        .changes
        .iter()
        .map(|c| {
            desired
                .accounts
                .binary_search_by(|(a, _)| a.cmp(&c.account))
                .is_ok()
        })
        .collect()
}

/// One difference, phrased for the user: `u1: after.city is "EVIL", the files say "b"`.
fn explain(account: &str, d: &Difference, known: bool) -> String {
    let value = |v: &Option<String>| v.as_deref().map_or("absent".to_owned(), quote);
    let why = match d {
        Difference::NotPlanned if known => {
            "the current files and state give no change for it".to_owned()
        }
        Difference::NotPlanned => "not in the files or the state".to_owned(),
        Difference::Action { saved, fresh } => format!(
            "the plan says {}, the files and the state say {}",
            saved.as_str(),
            fresh.as_str()
        ),
        Difference::Value {
            part,
            name,
            saved,
            fresh,
        } => {
            let source = match part {
                compare::Part::Before => "the state has",
                compare::Part::After => "the files say",
                compare::Part::Set => "the fresh plan has",
            };
            format!(
                "{}.{} is {}, {source} {}",
                part.as_str(),
                crate::render::escape(name),
                value(saved),
                value(fresh)
            )
        }
        Difference::Removal { name, saved } => format!(
            "{} {}, the files and the state {}",
            if *saved { "removes" } else { "does not remove" },
            quote(name),
            if *saved { "do not" } else { "do" }
        ),
        Difference::Tag { add, tag, saved } => format!(
            "{} tag {}, the files and the state {}",
            match (add, saved) {
                (true, true) => "adds",
                (true, false) => "does not add",
                (false, true) => "removes",
                (false, false) => "does not remove",
            },
            crate::render::tag(tag),
            if *saved { "do not" } else { "do" }
        ),
    };
    format!("{}: {why}", crate::render::escape(account))
}

/// What planning the current files against the current state says of a saved plan.
#[derive(Debug)]
pub struct Verdict {
    /// Each differing account, explained; empty when the saved plan is part of the fresh one.
    pub differences: Vec<String>,
    /// Why the attribute names to configure differ, when they do.
    pub names: Option<String>,
}

impl Verdict {
    pub fn passes(&self) -> bool {
        self.differences.is_empty() && self.names.is_none()
    }

    /// The refusal, naming the first few accounts that differ.
    pub fn error(&self) -> Option<Error> {
        if self.passes() {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(n) = &self.names {
            parts.push(n.clone());
        }
        if !self.differences.is_empty() {
            let more = self.differences.len().saturating_sub(NAMED);
            let mut list = self.differences[..self.differences.len().min(NAMED)].join("; ");
            if more > 0 {
                list.push_str(&format!("; and {more} more"));
            }
            parts.push(format!(
                "{} not what the current files and state give: {list}",
                crate::render::count(self.differences.len(), "change is", "changes are")
            ));
        }
        Some(Error::msg(format!(
            "the saved plan does not match the current files and state: {}. Nothing was sent; run `timattr plan --out FILE` again and review the new plan",
            parts.join(". ")
        )))
    }
}

/// Compares a saved plan with the fresh plan of `desired` against `store` (full, whatever the
/// saved plan's targets: a targeted plan is a part of it). Returns the verdict and the plan to
/// execute: the fresh changes of the saved plan's accounts, with the fresh managed count.
pub fn verify(
    settings: &Settings,
    saved: &Plan,
    desired: Desired,
    store: Option<&State>,
) -> Result<(Verdict, Plan)> {
    let known_in_files = in_files(saved, &desired);
    let (fresh, _) =
        super::plan::make_plan(settings, desired, store, &super::plan::Targets::default())?;
    let found = compare::differences(saved, &fresh);
    let mut differences = Vec::with_capacity(found.len());
    for (account, d) in &found {
        let known = match d {
            Difference::NotPlanned => {
                let i = saved
                    .changes
                    .binary_search_by(|c| c.account.cmp(account))
                    .unwrap_or(0);
                let mut names = saved.names.clone();
                known_in_files[i]
                    || store
                        .map(|s| s.account(account, &mut names))
                        .transpose()?
                        .flatten()
                        .is_some()
            }
            _ => true,
        };
        differences.push(explain(account, d, known));
    }
    let names = (saved.attribute_names != fresh.attribute_names).then(|| {
        let show = |m: &std::collections::BTreeMap<u8, String>| {
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.iter()
                    .map(|(k, v)| format!("slot {k} = {}", quote(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        format!(
            "the attribute names to configure are {}, the project needs {}",
            show(&saved.attribute_names),
            show(&fresh.attribute_names)
        )
    });
    let execute = part_of(fresh, saved);
    Ok((Verdict { differences, names }, execute))
}

/// One check of `show FILE`: its name, and what it found (`Err`: it fails).
#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub outcome: std::result::Result<String, String>,
}

/// The checks `apply FILE` makes, made for `show FILE`: each says whether it passes, rather
/// than the first failure stopping the rest. Reads the files and the store, writes nothing.
pub fn checks(settings: Result<&Settings>, saved: &Saved) -> Vec<Check> {
    let check = |name, outcome: Result<String>| Check {
        name,
        outcome: outcome.map_err(|e| e.to_string()),
    };
    let mut out = vec![check(
        "digest",
        check_seal(saved).map(|()| match &saved.seal {
            Seal::Intact(d) => format!("the content matches its digest {d}"),
            _ => unreachable!("check_seal passes only an intact seal"),
        }),
    )];
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            let why = format!("cannot check without the project: {e}");
            for name in ["app", "fresh", "content"] {
                out.push(check(name, Err(Error::msg(why.clone()))));
            }
            return out;
        }
    };
    out.push(check(
        "app",
        check_same_app(settings, &saved.state).map(|()| {
            format!(
                "made for this project's app (sdkappid {})",
                settings.sdkappid
            )
        }),
    ));
    let store = super::state::open_read_only(settings);
    let fresh = match &store {
        Ok(store) => check_not_stale(store.as_ref(), &saved.state).map(|()| {
            format!(
                "made at the state's current commit (serial {}, commit id {})",
                saved.state.serial,
                saved
                    .state
                    .commit_id
                    .as_deref()
                    .unwrap_or("none: no state yet")
            )
        }),
        Err(e) => Err(Error::msg(format!("cannot read the state: {e}"))),
    };
    out.push(check("fresh", fresh));
    let content = store.and_then(|store| {
        let desired = crate::desired::load_users(settings)?;
        let (verdict, _) = verify(settings, &saved.plan, desired, store.as_ref())?;
        match verdict.error() {
            Some(e) => Err(e),
            None => Ok(format!(
                "each of its {} is what the current files and state give",
                crate::render::count(saved.plan.changes.len(), "change", "changes")
            )),
        }
    });
    out.push(check("content", content));
    out
}

/// The fresh plan cut down to the accounts of `saved` (and its targets, for the views).
fn part_of(mut fresh: Plan, saved: &Plan) -> Plan {
    let mut wanted = saved.changes.iter().map(|c| &c.account).peekable();
    fresh.changes.retain(|c| {
        while wanted.next_if(|a| **a < c.account).is_some() {}
        wanted.next_if(|a| **a == c.account).is_some()
    });
    fresh.unchanged = saved.unchanged;
    fresh.targets = saved.targets.clone();
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(body: &str) -> Vec<u8> {
        use sha2::Digest;
        let digest = format!(
            "sha256:{}",
            crate::render::json::hex(&sha2::Sha256::digest(body.as_bytes()))
        );
        format!("{body},\"digest\":\"{digest}\"}}\n").into_bytes()
    }

    fn digest_in(bytes: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v["digest"].as_str().map(str::to_owned)
    }

    #[test]
    fn the_digest_covers_every_byte_before_it() {
        let body = r#"{"format_version":1,"changes":[{"account":"u1","set":{"city":"b"}}]"#;
        let bytes = sealed(body);
        let recorded = digest_in(&bytes);
        assert!(
            matches!(seal_of(&bytes, recorded.as_deref()), Seal::Intact(d) if Some(d.clone()) == recorded)
        );
        // One byte changed anywhere before the digest breaks the seal.
        for at in [1, body.len() / 2, body.len() - 1] {
            let mut edited = bytes.clone();
            edited[at] ^= 0x01;
            assert!(
                matches!(seal_of(&edited, recorded.as_deref()), Seal::Broken { .. }),
                "byte {at}"
            );
        }
        // Even a change that keeps the JSON's meaning (whitespace) is an edit.
        let spaced = sealed(body)
            .iter()
            .flat_map(|b| {
                if *b == b',' {
                    vec![b',', b' ']
                } else {
                    vec![*b]
                }
            })
            .collect::<Vec<_>>();
        assert!(matches!(
            seal_of(&spaced, recorded.as_deref()),
            Seal::Broken { .. }
        ));
        // A digest that is not the last member does not count.
        let moved = format!(
            r#"{{"digest":"{}","format_version":1}}"#,
            recorded.clone().unwrap()
        );
        assert!(matches!(
            seal_of(moved.as_bytes(), recorded.as_deref()),
            Seal::Broken { .. }
        ));
        assert_eq!(seal_of(body.as_bytes(), None), Seal::Missing);
    }

    #[test]
    fn a_real_saved_plan_is_intact_and_edits_break_it() {
        let names = crate::model::Names::new(&["city".into()]);
        let desired = Desired {
            names: names.clone(),
            accounts: vec![(
                "u1".into(),
                crate::model::Managed::new(
                    [(0, "b".into())].into_iter().collect(),
                    Default::default(),
                ),
            )],
        };
        let plan = crate::plan::diff(desired, vec![], names, &Default::default()).unwrap();
        let state = StateRef {
            lineage: Some("l".into()),
            serial: 3,
            commit_id: Some("c".into()),
            sdkappid: 1,
            endpoint_host: "h".into(),
            attributes: vec!["city".into()],
            managed: 0,
        };
        let mut bytes = Vec::new();
        let digest =
            crate::render::json::write_sealed(&mut bytes, &plan, &state, &plan.safety(10.0))
                .unwrap();
        assert_eq!(digest.len(), "sha256:".len() + 64);
        assert_eq!(digest_in(&bytes), Some(digest.clone()));
        assert_eq!(seal_of(&bytes, Some(&digest)), Seal::Intact(digest.clone()));
        let text = String::from_utf8(bytes).unwrap();
        let edited = text.replace("\"b\"", "\"EVIL\"");
        assert!(matches!(
            seal_of(edited.as_bytes(), Some(&digest)),
            Seal::Broken { .. }
        ));
        let doc: PlanDoc = serde_json::from_str(&text).unwrap();
        assert_eq!(doc.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(doc.state.unwrap().commit_id.as_deref(), Some("c"));
    }

    #[test]
    fn differences_are_explained_escaped() {
        let d = Difference::Value {
            part: compare::Part::After,
            name: "city".into(),
            saved: Some("EVIL".into()),
            fresh: Some("b".into()),
        };
        assert_eq!(
            explain("u1", &d, true),
            r#"u1: after.city is "EVIL", the files say "b""#
        );
        assert_eq!(
            explain("u9", &Difference::NotPlanned, false),
            "u9: not in the files or the state"
        );
        let tag = Difference::Tag {
            add: false,
            tag: "other\u{1b}[2J".into(),
            saved: true,
        };
        let text = explain("u\u{202e}9", &tag, true);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        let v = Verdict {
            differences: (0..7).map(|i| format!("u{i}: x")).collect(),
            names: None,
        };
        let e = v.error().unwrap().to_string();
        assert!(e.contains("u4: x; and 2 more") && !e.contains("u5"), "{e}");
        assert!(e.contains("7 changes are not"), "{e}");
    }
}
