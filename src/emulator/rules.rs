//! The emulator's request rules (spec §2, including the [rule] items): a request is validated
//! whole against the current data, and becomes either a read or a write [`Op`]; nothing is
//! applied unless every part of it is valid.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Data, UserData};
use crate::api::codes::code;
use crate::api::wire::{self, command};
use crate::model::limits::{MAX_ACCOUNT_BYTES, MAX_ATTRIBUTE_NAMES, MAX_ATTR_BYTES, MAX_BATCH};

/// Tags a user may hold in total.
const MAX_TAGS_PER_USER: usize = 100;
/// Tags per user in one `im_add_tag` request.
const MAX_TAGS_PER_REQUEST: usize = 10;

/// A validated write. Also the journal's line format, so replay applies exactly what was answered OK:
/// `{"set_attr":{"users":[...]}}`. Externally tagged, because an internally tagged enum buffers
/// its content and then cannot read the slot numbers back from JSON's string keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    SetAttrName { slots: BTreeMap<u8, String> },
    SetAttr { users: Vec<wire::UserAttrs> },
    RemoveAttr { users: Vec<wire::UserAttrNames> },
    AddTag { users: Vec<wire::UserTags> },
    RemoveTag { users: Vec<wire::UserTags> },
    RemoveAllTags { accounts: Vec<String> },
}

/// What a valid request asks for.
#[derive(Debug)]
pub(crate) enum Request {
    Write(Op),
    GetAttrName,
    GetAttr(Vec<String>),
    GetTag(Vec<String>),
}

/// A refusal: the code and the ErrorInfo to answer with.
#[derive(Debug, PartialEq)]
pub(crate) struct Reject {
    pub code: i64,
    pub info: String,
}

fn reject<T>(code: i64, info: impl Into<String>) -> Result<T, Reject> {
    Err(Reject {
        code,
        info: info.into(),
    })
}

fn shape<T>(info: impl Into<String>) -> Result<T, Reject> {
    reject(code::JSON_PARSE, info)
}

/// Validates a request for `cmd` (one of [`command::ALL`]) against `data`.
pub(crate) fn parse(cmd: &str, body: &[u8], data: &Data) -> Result<Request, Reject> {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return shape(format!("invalid JSON: {e}")),
    };
    let Some(obj) = doc.as_object() else {
        return shape("the request body must be a JSON object");
    };
    match cmd {
        command::SET_ATTR_NAME => set_attr_name(obj, data),
        command::GET_ATTR_NAME => Ok(Request::GetAttrName),
        command::SET_ATTR => set_attr(obj, data),
        command::GET_ATTR => Ok(Request::GetAttr(accounts(obj)?)),
        command::REMOVE_ATTR => remove_attr(obj, data),
        command::GET_TAG => Ok(Request::GetTag(accounts(obj)?)),
        command::ADD_TAG => add_tag(obj, data),
        command::REMOVE_TAG => Ok(Request::Write(Op::RemoveTag {
            users: user_tags(obj)?,
        })),
        command::REMOVE_ALL_TAGS => Ok(Request::Write(Op::RemoveAllTags {
            accounts: accounts(obj)?,
        })),
        other => reject(code::WRONG_COMMAND, format!("unknown command {other}")),
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a Value, Reject> {
    match obj.get(name) {
        Some(v) => Ok(v),
        None => shape(format!("missing field {name}")),
    }
}

/// An array of at most [`MAX_BATCH`] entries.
fn batch<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a Vec<Value>, Reject> {
    let Some(items) = field(obj, name)?.as_array() else {
        return shape(format!("{name} must be an array"));
    };
    if items.len() > MAX_BATCH {
        return reject(
            code::TOO_MANY_ACCOUNTS,
            format!(
                "{} accounts in one request; at most {MAX_BATCH}",
                items.len()
            ),
        );
    }
    Ok(items)
}

fn account(v: &Value) -> Result<String, Reject> {
    match v.as_str() {
        Some(a) if !a.is_empty() && a.len() <= MAX_ACCOUNT_BYTES => Ok(a.to_owned()),
        _ => shape(format!(
            "To_Account must be a string of 1..={MAX_ACCOUNT_BYTES} bytes, got {v}"
        )),
    }
}

/// `{"To_Account":[...]}`.
fn accounts(obj: &Map<String, Value>) -> Result<Vec<String>, Reject> {
    batch(obj, "To_Account")?.iter().map(account).collect()
}

/// The entries of `UserAttrs`/`UserTags`: each an object with `To_Account` and `field`.
fn entries<'a>(
    obj: &'a Map<String, Value>,
    list: &str,
    field_name: &str,
) -> Result<Vec<(String, &'a Value)>, Reject> {
    batch(obj, list)?
        .iter()
        .map(|e| {
            let Some(e) = e.as_object() else {
                return shape(format!("each {list} entry must be an object"));
            };
            Ok((account(field(e, "To_Account")?)?, field(e, field_name)?))
        })
        .collect()
}

fn configured(data: &Data, name: &str) -> bool {
    data.attr_names.values().any(|n| n == name)
}

fn set_attr_name(obj: &Map<String, Value>, data: &Data) -> Result<Request, Reject> {
    let Some(names) = field(obj, "AttrNames")?.as_object() else {
        return shape("AttrNames must be an object");
    };
    let mut slots = BTreeMap::new();
    for (key, name) in names {
        let slot = match key.parse::<u8>() {
            Ok(n) if usize::from(n) < MAX_ATTRIBUTE_NAMES && key.len() == 1 => n,
            _ => return shape(format!("attribute slot {key:?} is not one of \"0\"..\"9\"")),
        };
        match name.as_str() {
            Some(n) if !n.is_empty() && n.len() <= MAX_ATTR_BYTES => {
                slots.insert(slot, n.to_owned());
            }
            _ => {
                return shape(format!(
                    "attribute name in slot {key} must be a string of 1..={MAX_ATTR_BYTES} bytes"
                ))
            }
        }
    }
    // The same name in two slots would make values ambiguous.
    let mut after = data.attr_names.clone();
    after.extend(slots.clone());
    let mut seen = HashMap::new();
    for (slot, name) in &after {
        if let Some(other) = seen.insert(name.as_str(), slot) {
            return shape(format!(
                "attribute name {name:?} in slots {other} and {slot}"
            ));
        }
    }
    Ok(Request::Write(Op::SetAttrName { slots }))
}

fn set_attr(obj: &Map<String, Value>, data: &Data) -> Result<Request, Reject> {
    let mut users = Vec::new();
    for (to_account, attrs) in entries(obj, "UserAttrs", "Attrs")? {
        let Some(attrs) = attrs.as_object() else {
            return shape("Attrs must be an object of name → value");
        };
        let mut out = BTreeMap::new();
        for (name, value) in attrs {
            if !configured(data, name) {
                return reject(
                    code::INVALID_ATTRIBUTE,
                    format!("attribute name {name:?} is not configured"),
                );
            }
            match value.as_str() {
                Some(v) if v.len() <= MAX_ATTR_BYTES => {
                    out.insert(name.clone(), v.to_owned());
                }
                Some(v) => {
                    return reject(
                        code::INVALID_ATTRIBUTE,
                        format!(
                        "value of {name:?} for {to_account} is {} bytes; at most {MAX_ATTR_BYTES}",
                        v.len()
                    ),
                    )
                }
                None => {
                    return reject(
                        code::INVALID_ATTRIBUTE,
                        format!("value of {name:?} for {to_account} is not a string"),
                    )
                }
            }
        }
        users.push(wire::UserAttrs {
            to_account,
            attrs: out,
        });
    }
    Ok(Request::Write(Op::SetAttr { users }))
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, Reject> {
    let Some(items) = v.as_array() else {
        return shape(format!("{what} must be an array of strings"));
    };
    items
        .iter()
        .map(|s| match s.as_str() {
            Some(s) => Ok(s.to_owned()),
            None => shape(format!("{what} must be an array of strings")),
        })
        .collect()
}

fn remove_attr(obj: &Map<String, Value>, data: &Data) -> Result<Request, Reject> {
    let mut users = Vec::new();
    for (to_account, attrs) in entries(obj, "UserAttrs", "Attrs")? {
        let attrs = strings(attrs, "Attrs")?;
        if let Some(name) = attrs.iter().find(|n| !configured(data, n)) {
            return reject(
                code::INVALID_ATTRIBUTE,
                format!("attribute name {name:?} is not configured"),
            );
        }
        users.push(wire::UserAttrNames { to_account, attrs });
    }
    Ok(Request::Write(Op::RemoveAttr { users }))
}

fn user_tags(obj: &Map<String, Value>) -> Result<Vec<wire::UserTags>, Reject> {
    entries(obj, "UserTags", "Tags")?
        .into_iter()
        .map(|(to_account, tags)| {
            Ok(wire::UserTags {
                to_account,
                tags: strings(tags, "Tags")?,
            })
        })
        .collect()
}

fn add_tag(obj: &Map<String, Value>, data: &Data) -> Result<Request, Reject> {
    let users = user_tags(obj)?;
    // Tag counts after this request, entries applied in order (duplicates accumulate).
    let mut after: HashMap<&str, Vec<&str>> = HashMap::new();
    for u in &users {
        if u.tags.len() > MAX_TAGS_PER_REQUEST {
            return reject(
                code::TOO_MANY_TAGS,
                format!(
                    "{} tags for {} in one request; at most {MAX_TAGS_PER_REQUEST}",
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
        let tags = after.entry(u.to_account.as_str()).or_insert_with(|| {
            data.users
                .get(&u.to_account)
                .map(|d| d.tags.iter().map(String::as_str).collect())
                .unwrap_or_default()
        });
        for t in &u.tags {
            if !tags.contains(&t.as_str()) {
                tags.push(t);
            }
        }
        if tags.len() > MAX_TAGS_PER_USER {
            return reject(
                code::TOO_MANY_TAGS,
                format!(
                    "{} would have more than {MAX_TAGS_PER_USER} tags",
                    u.to_account
                ),
            );
        }
    }
    Ok(Request::Write(Op::AddTag { users }))
}

impl Data {
    /// Applies a validated write. Every op is a blind write per (user, name) or (user, tag), so
    /// applying a journal twice leaves the same data as applying it once.
    pub(crate) fn apply(&mut self, op: &Op) {
        match op {
            Op::SetAttrName { slots } => self.attr_names.extend(slots.clone()),
            Op::SetAttr { users } => {
                for u in users {
                    let d = self.users.entry(u.to_account.clone()).or_default();
                    d.attrs.extend(u.attrs.clone());
                }
            }
            Op::RemoveAttr { users } => {
                for u in users {
                    self.edit(&u.to_account, |d| {
                        for name in &u.attrs {
                            d.attrs.remove(name);
                        }
                    });
                }
            }
            Op::AddTag { users } => {
                for u in users {
                    let d = self.users.entry(u.to_account.clone()).or_default();
                    for t in &u.tags {
                        if !d.tags.contains(t) {
                            d.tags.push(t.clone());
                        }
                    }
                }
            }
            Op::RemoveTag { users } => {
                for u in users {
                    self.edit(&u.to_account, |d| d.tags.retain(|t| !u.tags.contains(t)));
                }
            }
            Op::RemoveAllTags { accounts } => {
                for a in accounts {
                    self.edit(a, |d| d.tags.clear());
                }
            }
        }
    }

    /// Edits an existing user and forgets it once it holds nothing, keeping the data lean.
    fn edit(&mut self, account: &str, f: impl FnOnce(&mut UserData)) {
        if let Some(d) = self.users.get_mut(account) {
            f(d);
            if d.attrs.is_empty() && d.tags.is_empty() {
                self.users.remove(account);
            }
        }
    }
}
