//! The emulator's request rules (spec §2, including the [rule] items): a request is read with
//! the same [`wire`] type the client writes it with, validated whole against the current data,
//! and becomes either a read or a write [`Op`]; nothing is applied unless every part of it is
//! valid.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    SetAttrName {
        slots: BTreeMap<u8, String>,
    },
    /// timpush `set_attr_name`: names with their account types (every slot given has one).
    SetSlots {
        slots: BTreeMap<u8, String>,
        types: BTreeMap<u8, u8>,
    },
    /// timpush `add_tag` with `Replace: 1`: each user's tags become exactly these.
    ReplaceTags {
        users: Vec<wire::UserTags>,
    },
    SetAttr {
        users: Vec<wire::UserAttrs>,
    },
    RemoveAttr {
        users: Vec<wire::UserAttrNames>,
    },
    AddTag {
        users: Vec<wire::UserTags>,
    },
    RemoveTag {
        users: Vec<wire::UserTags>,
    },
    RemoveAllTags {
        accounts: Vec<String>,
    },
}

/// What a valid request asks for.
#[derive(Debug)]
pub(crate) enum Request {
    Write(Op),
    Read(Read),
}

/// A validated read.
#[derive(Debug)]
pub(crate) enum Read {
    AttrNames,
    Attrs(Vec<String>),
    Tags(Vec<String>),
}

/// A refusal: the code and the ErrorInfo to answer with.
#[derive(Debug, PartialEq)]
pub(crate) struct Reject {
    pub code: i64,
    pub info: String,
}

pub(crate) fn reject<T>(code: i64, info: impl Into<String>) -> Result<T, Reject> {
    Err(Reject {
        code,
        info: info.into(),
    })
}

pub(crate) fn shape<T>(info: impl Into<String>) -> Result<T, Reject> {
    reject(code::JSON_PARSE, info)
}

/// Validates a request for `cmd` (one of [`command::ALL`]) against `data`.
pub(crate) fn parse(cmd: &str, body: &[u8], data: &Data) -> Result<Request, Reject> {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return shape(format!("invalid JSON: {e}")),
    };
    if !doc.is_object() {
        return shape("the request body must be a JSON object");
    }
    match cmd {
        command::SET_ATTR_NAME => set_attr_name(read(&doc, "AttrNames")?, data),
        command::GET_ATTR_NAME => {
            read::<wire::Empty>(&doc, "").map(|_| Request::Read(Read::AttrNames))
        }
        command::SET_ATTR => set_attr(&doc, data),
        command::GET_ATTR => Ok(Request::Read(Read::Attrs(accounts(&doc)?))),
        command::REMOVE_ATTR => remove_attr(read(&doc, "UserAttrs")?, data),
        command::GET_TAG => Ok(Request::Read(Read::Tags(accounts(&doc)?))),
        command::ADD_TAG => add_tag(user_tags(&doc)?, data),
        command::REMOVE_TAG => Ok(Request::Write(Op::RemoveTag {
            users: user_tags(&doc)?,
        })),
        command::REMOVE_ALL_TAGS => Ok(Request::Write(Op::RemoveAllTags {
            accounts: accounts(&doc)?,
        })),
        other => reject(code::WRONG_COMMAND, format!("unknown command {other}")),
    }
}

/// Reads `doc` as the wire type `T`. `list` names its list of accounts (if any): more than
/// [`MAX_BATCH`] entries is 90018 whatever their shape, as the service counts before it reads.
pub(crate) fn read<T: DeserializeOwned>(doc: &Value, list: &str) -> Result<T, Reject> {
    if let Some(n) = doc.get(list).and_then(Value::as_array).map(Vec::len) {
        if n > MAX_BATCH {
            return reject(
                code::TOO_MANY_ACCOUNTS,
                format!("{n} accounts in one request; at most {MAX_BATCH}"),
            );
        }
    }
    T::deserialize(doc).or_else(|e| shape(format!("request shape: {e}")))
}

fn account(a: &str) -> Result<(), Reject> {
    if a.is_empty() || a.len() > MAX_ACCOUNT_BYTES {
        return shape(format!(
            "To_Account must be a string of 1..={MAX_ACCOUNT_BYTES} bytes, got {a:?}"
        ));
    }
    Ok(())
}

/// `{"To_Account":[...]}`.
pub(crate) fn accounts(doc: &Value) -> Result<Vec<String>, Reject> {
    let req: wire::Accounts = read(doc, "To_Account")?;
    req.to_account.iter().try_for_each(|a| account(a))?;
    Ok(req.to_account)
}

fn configured(data: &Data, name: &str) -> bool {
    data.attr_names.values().any(|n| n == name)
}

fn set_attr_name(req: wire::AttrNames, data: &Data) -> Result<Request, Reject> {
    let mut slots = BTreeMap::new();
    for (key, name) in req.attr_names {
        let slot = match key.parse::<u8>() {
            Ok(n) if usize::from(n) < MAX_ATTRIBUTE_NAMES && key.len() == 1 => n,
            _ => return shape(format!("attribute slot {key:?} is not one of \"0\"..\"9\"")),
        };
        if name.is_empty() || name.len() > MAX_ATTR_BYTES {
            return shape(format!(
                "attribute name in slot {key} must be a string of 1..={MAX_ATTR_BYTES} bytes"
            ));
        }
        slots.insert(slot, name);
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

/// An attribute value that is not a string is an invalid attribute (90033), not a parse
/// error: the wire type cannot hold it, so this looks before the typed read fails.
fn non_string_value(doc: &Value) -> Option<String> {
    let users = doc.get("UserAttrs")?.as_array()?;
    users.iter().find_map(|u| {
        let attrs = u.get("Attrs")?.as_object()?;
        attrs
            .iter()
            .find(|(_, v)| !v.is_string())
            .map(|(name, _)| name.clone())
    })
}

pub(crate) fn set_attr(doc: &Value, data: &Data) -> Result<Request, Reject> {
    let req: wire::UserAttrsList = match read(doc, "UserAttrs") {
        Ok(r) => r,
        Err(e) => match non_string_value(doc) {
            Some(name) if e.code == code::JSON_PARSE => {
                return reject(
                    code::INVALID_ATTRIBUTE,
                    format!("value of {name:?} is not a string"),
                )
            }
            _ => return Err(e),
        },
    };
    for u in &req.user_attrs {
        account(&u.to_account)?;
        for (name, value) in &u.attrs {
            if !configured(data, name) {
                return reject(
                    code::INVALID_ATTRIBUTE,
                    format!("attribute name {name:?} is not configured"),
                );
            }
            if value.len() > MAX_ATTR_BYTES {
                return reject(
                    code::INVALID_ATTRIBUTE,
                    format!(
                        "value of {name:?} for {} is {} bytes; at most {MAX_ATTR_BYTES}",
                        u.to_account,
                        value.len()
                    ),
                );
            }
        }
    }
    Ok(Request::Write(Op::SetAttr {
        users: req.user_attrs,
    }))
}

pub(crate) fn remove_attr(req: wire::UserAttrNamesList, data: &Data) -> Result<Request, Reject> {
    for u in &req.user_attrs {
        account(&u.to_account)?;
        if let Some(name) = u.attrs.iter().find(|n| !configured(data, n)) {
            return reject(
                code::INVALID_ATTRIBUTE,
                format!("attribute name {name:?} is not configured"),
            );
        }
    }
    Ok(Request::Write(Op::RemoveAttr {
        users: req.user_attrs,
    }))
}

pub(crate) fn user_tags(doc: &Value) -> Result<Vec<wire::UserTags>, Reject> {
    let req: wire::UserTagsList = read(doc, "UserTags")?;
    req.user_tags
        .iter()
        .try_for_each(|u| account(&u.to_account))?;
    Ok(req.user_tags)
}

pub(crate) fn add_tag(users: Vec<wire::UserTags>, data: &Data) -> Result<Request, Reject> {
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
            Op::SetSlots { slots, types } => {
                self.attr_names.extend(slots.clone());
                for slot in slots.keys() {
                    match types.get(slot).copied().unwrap_or(0) {
                        0 => self.attr_types.remove(slot),
                        t => self.attr_types.insert(*slot, t),
                    };
                }
            }
            Op::ReplaceTags { users } => {
                for u in users {
                    self.type_tags(&u.to_account, &u.tags);
                    self.users.entry(u.to_account.clone()).or_default().tags = u.tags.clone();
                    self.edit(&u.to_account, |_| {});
                }
            }
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
                    self.type_tags(&u.to_account, &u.tags);
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

    /// Tags first used by `account` take its account type (only non-zero types are kept).
    fn type_tags(&mut self, account: &str, tags: &[String]) {
        let ty = self.account_type(account);
        for t in tags {
            if ty != 0 && !self.tag_types.contains_key(t) && !self.tag_in_use(t) {
                self.tag_types.insert(t.clone(), ty);
            }
        }
    }

    /// Whether any user holds `tag` (a tag in use already has its type, 0 when unrecorded).
    fn tag_in_use(&self, tag: &str) -> bool {
        self.users.values().any(|u| u.tags.iter().any(|t| t == tag))
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
