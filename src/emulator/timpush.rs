//! The timpush family's side of the emulator: `POST /v4/timpush/{command}` on the same data as
//! the legacy family, answering as timpush-api.md says.
//!
//! The gate is the legacy handler's (method, command, sdkappid, usersig, admin, rate limit per
//! command, injected faults), and a request is still validated whole first (shape, ≤ 100
//! accounts, names configured, value and tag lengths: any failure refuses it all). What is
//! new is judged per account afterwards, and lands in the answer's `ErrorList` instead of
//! failing the request (partial success, §1):
//!
//! - an account listed as missing does not exist: 70107 for every command that takes accounts
//!   (the reads list it only there, not in `UserAttrs`/`UserTags`);
//! - `set_attr` with a name whose slot is of the other account type than the account, and
//!   `add_tag` with a tag first used by the other type: 90035.
//!
//! Listed accounts are not applied; the others are. `set_attr_name` takes `AttrTypes` (default
//! 0) and refuses a change of a named slot's type, or a name in two slots, with 90033.
//! `add_tag` honours `Replace` (1 overwrites every tag of the user, up to 100) and counts such
//! requests in [`super::Stats::replace_requests`], so tests can check timattr never sends one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::handler::{authenticate, fail, injected, Auth};
use super::rules::{self, reject, shape, Op, Reject, Request};
use super::{lock, Data, Shared};
use crate::api::codes::code;
use crate::api::wire::{self, ErrorEntry, ErrorList, Status};
use crate::api::{wire_timpush, Command, Family};
use crate::model::limits::{MAX_ATTRIBUTE_NAMES, MAX_ATTR_BYTES, MAX_TAGS_PER_USER};

/// An OK with the command's payload and the failed accounts.
#[derive(Serialize)]
struct Answer<T> {
    #[serde(flatten)]
    status: Status,
    #[serde(flatten)]
    body: T,
    #[serde(flatten)]
    errors: ErrorList,
}

fn ok<T: Serialize>(body: T, failed: Vec<ErrorEntry>) -> Response {
    Json(Answer {
        status: Status::ok(),
        body,
        errors: ErrorList { error_list: failed },
    })
    .into_response()
}

fn failed(account: &str, code: i64) -> ErrorEntry {
    ErrorEntry {
        error_code: code,
        to_account: account.to_owned(),
        error_info: String::new(),
    }
}

/// What a valid timpush request does: a write of what may be applied (if anything) with the
/// accounts that failed, or a read.
enum Judged {
    Write(Option<Op>, Vec<ErrorEntry>),
    Read(Read),
}

enum Read {
    Slots,
    Attrs(Vec<String>),
    Tags(Vec<String>),
}

pub(crate) async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    Path(cmd): Path<String>,
    query: Result<Query<Auth>, QueryRejection>,
    body: Bytes,
) -> Response {
    s.faults.delay().await;
    if method != Method::POST {
        return fail(code::MALFORMED_URL, "the API only accepts POST");
    }
    let Some(command) = Family::Timpush.command(&cmd) else {
        return fail(code::WRONG_COMMAND, format!("unknown command {cmd}"));
    };
    let name = Family::Timpush.name(command);
    lock(&s.traffic).arrive(name);
    let Ok(Query(auth)) = query else {
        return fail(code::MALFORMED_URL, "the query string could not be read");
    };
    if let Err((code, info)) = authenticate(&s, &auth) {
        return fail(code, info);
    }
    if !lock(&s.traffic).admit(name, s.rate_limit) {
        return fail(code::FREQUENCY_LIMIT, "API call frequency over the limit");
    }
    if let Some(fault) = s.faults.draw() {
        return injected(&s, fault);
    }
    let mut store = lock(&s.store);
    let judged = match judge(command, &body, &store.data) {
        Ok(j) => j,
        Err(Reject { code, info }) => return fail(code, info),
    };
    match judged {
        Judged::Write(op, failed) => {
            if matches!(op, Some(Op::ReplaceTags { .. })) {
                lock(&s.traffic).replaced();
            }
            if let Some(op) = op {
                if let Err(e) = store.write(&op) {
                    tracing::warn!("emulator journal write failed: {e}");
                    return fail(code::INTERNAL, "could not record the write");
                }
            }
            ok(wire::Empty {}, failed)
        }
        Judged::Read(read) => answer(read, &store.data),
    }
}

/// Validates the request whole, then judges each account.
fn judge(command: Command, body: &[u8], data: &Data) -> Result<Judged, Reject> {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return shape(format!("invalid JSON: {e}")),
    };
    if !doc.is_object() {
        return shape("the request body must be a JSON object");
    }
    let write = |op: Op| Ok(Judged::Write(Some(op), Vec::new()));
    match command {
        Command::SetAttrName => write(set_attr_name(rules::read(&doc, "AttrNames")?, data)?),
        Command::GetAttrName => {
            rules::read::<wire::Empty>(&doc, "")?;
            Ok(Judged::Read(Read::Slots))
        }
        Command::GetAttr => Ok(Judged::Read(Read::Attrs(rules::accounts(&doc)?))),
        Command::GetTag => Ok(Judged::Read(Read::Tags(rules::accounts(&doc)?))),
        Command::SetAttr => match rules::set_attr(&doc, data)? {
            Request::Write(Op::SetAttr { users }) => Ok(set_attr(users, data)),
            _ => unreachable!("set_attr validates into a SetAttr write"),
        },
        Command::RemoveAttr => match rules::remove_attr(rules::read(&doc, "UserAttrs")?, data)? {
            Request::Write(Op::RemoveAttr { users }) => {
                let (users, failed) = existing(users, |u| &u.to_account, data);
                Ok(written(users, failed, |users| Op::RemoveAttr { users }))
            }
            _ => unreachable!("remove_attr validates into a RemoveAttr write"),
        },
        Command::AddTag => add_tag(&doc, data),
        Command::RemoveTag => {
            let (users, failed) = existing(rules::user_tags(&doc)?, |u| &u.to_account, data);
            Ok(written(users, failed, |users| Op::RemoveTag { users }))
        }
        Command::RemoveAllTags => {
            let (accounts, failed) = existing(rules::accounts(&doc)?, |a| a, data);
            Ok(written(accounts, failed, |accounts| Op::RemoveAllTags {
                accounts,
            }))
        }
    }
}

/// The write of the entries that did not fail (none when all did).
fn written<T>(entries: Vec<T>, failed: Vec<ErrorEntry>, op: impl FnOnce(Vec<T>) -> Op) -> Judged {
    let op = (!entries.is_empty()).then(|| op(entries));
    Judged::Write(op, failed)
}

/// Splits the entries of existing accounts from those of missing ones (70107).
fn existing<T>(
    entries: Vec<T>,
    account: impl Fn(&T) -> &String,
    data: &Data,
) -> (Vec<T>, Vec<ErrorEntry>) {
    let mut failed = Vec::new();
    let mut kept = Vec::with_capacity(entries.len());
    for e in entries {
        let a = account(&e);
        if data.missing.contains(a) {
            push_once(&mut failed, a, code::ACCOUNT_NOT_FOUND);
        } else {
            kept.push(e);
        }
    }
    (kept, failed)
}

/// An account is listed once, with its first failure (a duplicate entry fails the same way).
fn push_once(failed: &mut Vec<ErrorEntry>, account: &str, code: i64) {
    if !failed.iter().any(|e| e.to_account == account) {
        failed.push(self::failed(account, code));
    }
}

/// `set_attr_name` with `AttrTypes`: keys of `AttrTypes` must be among `AttrNames`', types 0 or
/// 1 (default 0); a named slot keeps its type (90033), and a name lives in one slot (90033).
fn set_attr_name(req: wire_timpush::AttrNames, data: &Data) -> Result<Op, Reject> {
    let mut slots = BTreeMap::new();
    for (key, name) in &req.attr_names {
        let slot = match key.parse::<u8>() {
            Ok(n) if usize::from(n) < MAX_ATTRIBUTE_NAMES && key.len() == 1 => n,
            _ => return shape(format!("attribute slot {key:?} is not one of \"0\"..\"9\"")),
        };
        if name.is_empty() || name.len() > MAX_ATTR_BYTES {
            return shape(format!(
                "attribute name in slot {key} must be a string of 1..={MAX_ATTR_BYTES} bytes"
            ));
        }
        slots.insert(slot, name.clone());
    }
    let mut types = BTreeMap::new();
    for (key, ty) in &req.attr_types {
        let Some(slot) = key.parse::<u8>().ok().filter(|s| slots.contains_key(s)) else {
            return shape(format!("AttrTypes key {key:?} is not a slot of AttrNames"));
        };
        let Ok(ty @ (0 | 1)) = u8::try_from(*ty) else {
            return shape(format!("account type {ty} of slot {key} is not 0 or 1"));
        };
        types.insert(slot, ty);
    }
    for (slot, name) in &slots {
        let ty = types.get(slot).copied().unwrap_or(0);
        if data.attr_names.contains_key(slot) && data.slot_type(*slot) != ty {
            return reject(
                code::INVALID_ATTRIBUTE,
                format!(
                    "attrName:{name} at index:{slot}: the account type in AttrTypes cannot be modified"
                ),
            );
        }
    }
    let mut after = data.attr_names.clone();
    after.extend(slots.clone());
    let mut seen = HashMap::new();
    for (slot, name) in &after {
        if let Some(other) = seen.insert(name.as_str(), slot) {
            return reject(
                code::INVALID_ATTRIBUTE,
                format!("attrName:{name} already exists at index:{other} (slot {slot})"),
            );
        }
    }
    Ok(Op::SetSlots { slots, types })
}

/// `set_attr`: missing accounts fail with 70107; an account with a name of the other type
/// fails with 90035. The account's whole entry is then not applied.
fn set_attr(users: Vec<wire::UserAttrs>, data: &Data) -> Judged {
    let (users, mut failed) = existing(users, |u| &u.to_account, data);
    let mut kept = Vec::with_capacity(users.len());
    for u in users {
        let ty = data.account_type(&u.to_account);
        let mismatch = u
            .attrs
            .keys()
            .any(|name| data.name_type(name).is_some_and(|t| t != ty));
        if mismatch {
            push_once(&mut failed, &u.to_account, code::WRONG_ACCOUNT_TYPE);
        } else if !failed.iter().any(|e| e.to_account == u.to_account) {
            kept.push(u);
        }
    }
    written(kept, failed, |users| Op::SetAttr { users })
}

/// `add_tag`: validated whole like the legacy command (≤ 10 tags per entry unless `Replace` is
/// 1, then ≤ 100; tag lengths; a user's 100), then per account: missing (70107), or a tag
/// whose type — set by its first use — is not the account's (90035).
fn add_tag(doc: &Value, data: &Data) -> Result<Judged, Reject> {
    let replace = match doc.get("Replace") {
        None => false,
        Some(v) => match v.as_i64() {
            Some(0) => false,
            Some(1) => true,
            _ => return shape("Replace must be 0 or 1"),
        },
    };
    let users = rules::user_tags(doc)?;
    if replace {
        check_replace(&users)?;
    } else {
        match rules::add_tag(users.clone(), data)? {
            Request::Write(Op::AddTag { .. }) => {}
            _ => unreachable!("add_tag validates into an AddTag write"),
        }
    }
    let (users, mut failed) = existing(users, |u| &u.to_account, data);
    let mut kept = Vec::with_capacity(users.len());
    for u in users {
        let ty = data.account_type(&u.to_account);
        if u.tags
            .iter()
            .any(|t| tag_type(data, t).is_some_and(|tt| tt != ty))
        {
            push_once(&mut failed, &u.to_account, code::WRONG_ACCOUNT_TYPE);
        } else if !failed.iter().any(|e| e.to_account == u.to_account) {
            kept.push(u);
        }
    }
    Ok(if replace {
        written(kept, failed, |users| Op::ReplaceTags { users })
    } else {
        written(kept, failed, |users| Op::AddTag { users })
    })
}

/// `Replace: 1`: at most 100 tags per user, each 1..=50 bytes.
fn check_replace(users: &[wire::UserTags]) -> Result<(), Reject> {
    for u in users {
        if u.tags.len() > MAX_TAGS_PER_USER {
            return reject(
                code::TOO_MANY_TAGS,
                format!(
                    "{} tags for {}; at most {MAX_TAGS_PER_USER}",
                    u.tags.len(),
                    u.to_account
                ),
            );
        }
        if let Some(t) = u
            .tags
            .iter()
            .find(|t| t.is_empty() || t.len() > MAX_ATTR_BYTES)
        {
            return reject(
                code::TAG_TOO_LONG,
                format!("tag {t:?} must be 1..={MAX_ATTR_BYTES} bytes"),
            );
        }
    }
    Ok(())
}

/// The account type of `tag`: recorded, 0 when some user holds it, `None` when it is unused.
fn tag_type(data: &Data, tag: &str) -> Option<u8> {
    if let Some(t) = data.tag_types.get(tag) {
        return Some(*t);
    }
    data.users
        .values()
        .any(|u| u.tags.iter().any(|t| t == tag))
        .then_some(0)
}

/// A read's answer: slots with every slot's type; users in reverse order (clients must key by
/// account), missing accounts only in the `ErrorList`.
fn answer(read: Read, data: &Data) -> Response {
    let split = |accounts: Vec<String>| {
        let (missing, found): (Vec<String>, Vec<String>) =
            accounts.into_iter().partition(|a| data.missing.contains(a));
        let mut failed = Vec::new();
        for a in &missing {
            push_once(&mut failed, a, code::ACCOUNT_NOT_FOUND);
        }
        (found, failed)
    };
    let user = |a: &String| data.users.get(a);
    match read {
        Read::Slots => ok(
            wire_timpush::AttrNames {
                attr_names: data
                    .attr_names
                    .iter()
                    .map(|(slot, n)| (slot.to_string(), n.clone()))
                    .collect(),
                attr_types: data
                    .attr_names
                    .keys()
                    .map(|slot| (slot.to_string(), i64::from(data.slot_type(*slot))))
                    .collect(),
            },
            Vec::new(),
        ),
        Read::Attrs(accounts) => {
            let (found, failed) = split(accounts);
            let user_attrs = found
                .into_iter()
                .rev()
                .map(|a| wire::UserAttrs {
                    attrs: user(&a).map(|u| u.attrs.clone()).unwrap_or_default(),
                    to_account: a,
                })
                .collect();
            ok(wire::UserAttrsList { user_attrs }, failed)
        }
        Read::Tags(accounts) => {
            let (found, failed) = split(accounts);
            let user_tags = found
                .into_iter()
                .rev()
                .map(|a| wire::UserTags {
                    tags: user(&a).map(|u| u.tags.clone()).unwrap_or_default(),
                    to_account: a,
                })
                .collect();
            ok(wire::UserTagsList { user_tags }, failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Setup;
    use super::*;

    #[test]
    fn slots_parse_with_and_without_a_type() {
        assert_eq!(
            Setup::parse_slot("2=device_city:registration_id"),
            Ok((2, ("device_city".to_owned(), 1)))
        );
        assert_eq!(Setup::parse_slot("0=city"), Ok((0, ("city".to_owned(), 0))));
        assert_eq!(
            Setup::parse_slot("0=a:b:user_id"),
            Ok((0, ("a:b".to_owned(), 0)))
        );
        for bad in ["10=x", "x", "=x", "1=", "1=x:device", "-1=x"] {
            assert!(Setup::parse_slot(bad).is_err(), "{bad}");
        }
    }

    /// The journal replays what timpush wrote: slot types, tag types, replaced tags.
    #[test]
    fn timpush_writes_replay_to_the_same_data() {
        let mut data = Data::default();
        data.registration_ids.insert("r".into());
        let ops = [
            Op::SetSlots {
                slots: [(0, "city".to_owned()), (1, "dev".to_owned())].into(),
                types: [(0, 0), (1, 1)].into(),
            },
            Op::AddTag {
                users: vec![wire::UserTags {
                    to_account: "r".into(),
                    tags: vec!["device".into()],
                }],
            },
            Op::ReplaceTags {
                users: vec![wire::UserTags {
                    to_account: "u".into(),
                    tags: vec!["only".into()],
                }],
            },
        ];
        let mut replayed = data.clone();
        for op in &ops {
            data.apply(op);
            let line = serde_json::to_string(op).unwrap();
            replayed.apply(&serde_json::from_str(&line).unwrap());
        }
        assert_eq!(data, replayed);
        assert_eq!(data.attr_types, [(1, 1)].into());
        assert_eq!(data.tag_types, [("device".to_owned(), 1)].into());
        assert_eq!(data.users["u"].tags, ["only"]);
        // A named slot keeps its type: setting it again as type 0 is refused.
        let again = wire_timpush::AttrNames {
            attr_names: [("1".to_owned(), "dev".to_owned())].into(),
            attr_types: BTreeMap::new(),
        };
        assert_eq!(set_attr_name(again, &data).unwrap_err().code, 90033);
    }
}
