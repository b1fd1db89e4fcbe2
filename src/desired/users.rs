//! One users file: its YAML walked once, straight into lean entries (account, [`Attrs`]).
//!
//! The walker builds the model while it reads (no intermediate `serde_yaml::Value`), and
//! records every problem of the file as it goes instead of stopping at the first one.
//! Rules (DESIGN.md §1): top-level keys `defaults` and `users` only; values are YAML strings
//! of at most 50 bytes; names are declared in the project file; account ids are 1..=32 bytes;
//! `defaults` are merged under every user of the same file, the user's values winning.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::walk::{visit_other_kinds, Found, KeySeed, Problem, Walk};
use crate::model::{limits, Account, Attrs, NameIdx, Names};

/// One account of a users file, with where it came from (for duplicate reports).
#[derive(Debug)]
pub(crate) struct Entry {
    pub account: Account,
    pub attrs: Attrs,
    /// Index of the file in the run's list of users files.
    pub file: u32,
    /// Ordinal of the account's key node in its file.
    pub key: u32,
}

/// Walks a users file: entries in document order, `defaults` already merged.
pub(crate) fn walk(
    text: &str,
    names: &Names,
    file: u32,
    walk: &mut Walk,
) -> Result<Vec<Entry>, serde_yaml::Error> {
    let de = serde_yaml::Deserializer::from_str(text);
    UsersFile { walk, names, file }.deserialize(de)
}

/// Whose attributes a map holds, for messages.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Defaults,
    Account(&'a str),
}

impl fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Defaults => f.write_str("in `defaults`"),
            Owner::Account(a) => write!(f, "for account {a:?}"),
        }
    }
}

fn declared_list(names: &Names) -> String {
    let list: Vec<&str> = names.iter().map(|(_, n)| n).collect();
    if list.is_empty() {
        "the project file declares no attributes".to_owned()
    } else {
        format!("declared attributes: {}", list.join(", "))
    }
}

struct UsersFile<'w> {
    walk: &'w mut Walk,
    names: &'w Names,
    file: u32,
}

impl<'de> DeserializeSeed<'de> for UsersFile<'_> {
    type Value = Vec<Entry>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl UsersFile<'_> {
    fn found<E: de::Error>(self, node: u32, found: Found) -> Result<Vec<Entry>, E> {
        // An empty file is a users file without users (not an error: the plan's mass-removal
        // safety is what guards against an emptied file).
        if !matches!(found, Found::Null) {
            self.walk.problem(
                Problem::new(
                    node,
                    format!(
                        "a users file must be a map with `users` (and optionally `defaults`), not {}",
                        found.describe()
                    ),
                )
                .help("users:\n    u1: {name: \"value\"}"),
            );
        }
        Ok(Vec::new())
    }
}

impl<'de> Visitor<'de> for UsersFile<'_> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map with `users` and optionally `defaults`")
    }

    visit_other_kinds!();

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
        let n = self.walk.node()?;
        self.found(n, Found::Str)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let top = self.walk.node()?;
        let mut defaults: Option<(u32, Attrs)> = None;
        let mut users: Option<(u32, Vec<Entry>)> = None;
        while let Some((key, name)) = map.next_key_seed(KeySeed {
            walk: &mut *self.walk,
        })? {
            match &*name {
                "defaults" | "users" => {
                    let seen = if name == "defaults" {
                        defaults.as_ref().map(|d| d.0)
                    } else {
                        users.as_ref().map(|u| u.0)
                    };
                    if let Some(first) = seen {
                        self.walk.problem(
                            Problem::new(key, format!("`{name}` appears twice")).first_at(first),
                        );
                        map.next_value::<IgnoredAny>()?;
                    } else if name == "defaults" {
                        let attrs = map.next_value_seed(AttrsSeed {
                            walk: &mut *self.walk,
                            names: self.names,
                            owner: Owner::Defaults,
                            scratch: &mut Vec::new(),
                            defaults: None,
                        })?;
                        defaults = Some((key, attrs));
                    } else {
                        let entries = map.next_value_seed(UsersMap {
                            walk: &mut *self.walk,
                            names: self.names,
                            file: self.file,
                            defaults: defaults.as_ref().map(|(_, d)| d),
                        })?;
                        users = Some((key, entries));
                    }
                }
                other => {
                    self.walk.problem(
                        Problem::new(key, format!("unknown key `{other}` in a users file"))
                            .help("a users file has only `users` and optionally `defaults`"),
                    );
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some((users_at, mut entries)) = users else {
            self.walk.problem(
                Problem::new(top, "this users file has no `users` key")
                    .help("users:\n    u1: {name: \"value\"}"),
            );
            return Ok(Vec::new());
        };
        // `defaults` written after `users`: merged now (otherwise already merged while walking).
        if let Some((at, defaults)) = defaults {
            if at > users_at && !defaults.is_empty() {
                for e in &mut entries {
                    for (n, v) in defaults.iter() {
                        if !e.attrs.contains(n) {
                            e.attrs.insert(n, v.into());
                        }
                    }
                }
            }
        }
        Ok(entries)
    }
}

/// The `users` map: account → attributes.
struct UsersMap<'w> {
    walk: &'w mut Walk,
    names: &'w Names,
    file: u32,
    /// The file's `defaults` when written before `users`.
    defaults: Option<&'w Attrs>,
}

impl<'de> DeserializeSeed<'de> for UsersMap<'_> {
    type Value = Vec<Entry>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl UsersMap<'_> {
    fn found<E: de::Error>(self, node: u32, found: Found) -> Result<Vec<Entry>, E> {
        // `users:` with nothing under it: a file that manages no account (yet).
        if !matches!(found, Found::Null) {
            self.walk.problem(
                Problem::new(
                    node,
                    format!(
                        "`users` must be a map of account: {{name: value}}, not {}",
                        found.describe()
                    ),
                )
                .help("users:\n    u1: {name: \"value\"}"),
            );
        }
        Ok(Vec::new())
    }
}

impl<'de> Visitor<'de> for UsersMap<'_> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of account: {name: value}")
    }

    visit_other_kinds!();

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
        let n = self.walk.node()?;
        self.found(n, Found::Str)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.walk.node()?;
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        let mut scratch = Vec::with_capacity(self.names.declared_len());
        while let Some((key, account)) = map.next_key_seed(KeySeed {
            walk: &mut *self.walk,
        })? {
            let valid = check_account(&account, key, self.walk);
            let attrs = map.next_value_seed(AttrsSeed {
                walk: &mut *self.walk,
                names: self.names,
                owner: Owner::Account(&account),
                scratch: &mut scratch,
                defaults: self.defaults,
            })?;
            if valid {
                entries.push(Entry {
                    account: Box::from(&*account),
                    attrs,
                    file: self.file,
                    key,
                });
            }
        }
        Ok(entries)
    }
}

fn check_account(account: &str, key: u32, walk: &mut Walk) -> bool {
    if account.is_empty() {
        walk.problem(Problem::new(key, "account id is empty"));
        false
    } else if account.len() > limits::MAX_ACCOUNT_BYTES {
        walk.problem(Problem::new(
            key,
            format!(
                "account id {account:?} is {} bytes long; at most {} bytes are allowed",
                account.len(),
                limits::MAX_ACCOUNT_BYTES
            ),
        ));
        false
    } else {
        true
    }
}

/// A map of attribute name → value (an account's, or `defaults`).
struct AttrsSeed<'w, 'o> {
    walk: &'w mut Walk,
    names: &'w Names,
    owner: Owner<'o>,
    /// Values gathered before the account's [`Attrs`] is allocated at its exact size (a
    /// million accounts make every spare slot count). Reused from account to account.
    scratch: &'w mut Vec<(NameIdx, Box<str>)>,
    /// Merged under the values of this map.
    defaults: Option<&'w Attrs>,
}

impl<'de> DeserializeSeed<'de> for AttrsSeed<'_, '_> {
    type Value = Attrs;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl AttrsSeed<'_, '_> {
    fn found<E: de::Error>(self, node: u32, found: Found) -> Result<Attrs, E> {
        // `u1:` with nothing (or `u1: {}`): a managed account without attributes of its own.
        if !matches!(found, Found::Null) {
            let message = match self.owner {
                Owner::Defaults => format!(
                    "`defaults` must be a map of name: value, not {}",
                    found.describe()
                ),
                Owner::Account(a) => format!(
                    "the attributes of account {a:?} must be a map of name: value, not {}",
                    found.describe()
                ),
            };
            self.walk
                .problem(Problem::new(node, message).help("write e.g. u1: {city: \"Paris\"}"));
        }
        Ok(self.defaults.cloned().unwrap_or_default())
    }
}

impl<'de> Visitor<'de> for AttrsSeed<'_, '_> {
    type Value = Attrs;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute name: value")
    }

    visit_other_kinds!();

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
        let n = self.walk.node()?;
        self.found(n, Found::Str)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.walk.node()?;
        self.scratch.clear();
        // Where each name was first set (even to an invalid value), to point at it from a
        // repetition.
        let mut first_at = [None::<u32>; limits::MAX_ATTRIBUTE_NAMES];
        while let Some((key, name)) = map.next_key_seed(KeySeed {
            walk: &mut *self.walk,
        })? {
            let idx = self
                .names
                .index_of(&name)
                .filter(|&i| self.names.is_declared(i));
            let value = map.next_value_seed(ValueSeed {
                walk: &mut *self.walk,
                owner: self.owner,
                name: &name,
            })?;
            let Some(idx) = idx else {
                let p = if name.len() > limits::MAX_ATTR_BYTES {
                    Problem::new(
                        key,
                        format!(
                            "attribute name {name:?} {} is {} bytes long; at most {} bytes are allowed",
                            self.owner,
                            name.len(),
                            limits::MAX_ATTR_BYTES
                        ),
                    )
                } else {
                    Problem::new(
                        key,
                        format!(
                            "attribute {name:?} {} is not declared in the project file's `attributes`",
                            self.owner
                        ),
                    )
                };
                self.walk.problem(p.help(declared_list(self.names)));
                continue;
            };
            let Some(seen) = first_at.get_mut(usize::from(idx)) else {
                continue; // unreachable: declared names are at most 10
            };
            if let Some(first) = *seen {
                self.walk.problem(
                    Problem::new(
                        key,
                        format!("attribute {name:?} is set twice {}", self.owner),
                    )
                    .first_at(first),
                );
                continue;
            }
            *seen = Some(key);
            if let Some(v) = value {
                self.scratch.push((idx, v));
            }
        }
        if let Some(defaults) = self.defaults {
            for (n, v) in defaults.iter() {
                if !self.scratch.iter().any(|(m, _)| *m == n) {
                    self.scratch.push((n, v.into()));
                }
            }
        }
        self.scratch.sort_unstable_by_key(|(n, _)| *n);
        let mut attrs = Attrs::with_capacity(self.scratch.len());
        for (n, v) in self.scratch.drain(..) {
            attrs.insert(n, v);
        }
        Ok(attrs)
    }
}

/// One attribute value: a YAML string of at most 50 bytes.
struct ValueSeed<'w, 'o> {
    walk: &'w mut Walk,
    owner: Owner<'o>,
    name: &'o str,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Option<Box<str>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_, '_> {
    fn found<E: de::Error>(self, node: u32, found: Found) -> Result<Option<Box<str>>, E> {
        let name = self.name;
        let quoted = match found.text() {
            Some(text) => format!("quote it: {name}: \"{text}\""),
            None => match found {
                Found::Null => format!("quote it ({name}: \"\") or remove the line"),
                _ => format!("quote it, e.g. {name}: \"...\""),
            },
        };
        self.walk.problem(
            Problem::new(
                node,
                format!(
                    "value of {name:?} {} is {}; {quoted}",
                    self.owner,
                    found.describe()
                ),
            )
            .help("attribute values are strings"),
        );
        Ok(None)
    }

    fn string<E: de::Error>(self, v: &str) -> Result<Option<Box<str>>, E> {
        let node = self.walk.node()?;
        if v.len() > limits::MAX_ATTR_BYTES {
            self.walk.problem(Problem::new(
                node,
                format!(
                    "value of {:?} {} is {} bytes long; at most {} bytes (UTF-8) are allowed",
                    self.name,
                    self.owner,
                    v.len(),
                    limits::MAX_ATTR_BYTES
                ),
            ));
            return Ok(None);
        }
        Ok(Some(Box::from(v)))
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Option<Box<str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    visit_other_kinds!();

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.string(v)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let n = self.walk.node()?;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.found(n, Found::Map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names::new(&["sex".into(), "city".into(), "tier".into()])
    }

    fn entries(text: &str) -> (Vec<String>, Vec<String>) {
        let names = names();
        let mut w = Walk::new(text.len());
        let got = walk(text, &names, 0, &mut w).unwrap();
        let shown = got
            .iter()
            .map(|e| format!("{} {}", e.account, e.attrs.display(&names)))
            .collect();
        (shown, w.problems.into_iter().map(|p| p.message).collect())
    }

    #[test]
    fn defaults_merge_under_users_before_or_after() {
        for text in [
            "defaults: {tier: free}\nusers: {a: {tier: gold}, b: {city: x}, c: }\n",
            "users: {a: {tier: gold}, b: {city: x}, c: }\ndefaults: {tier: free}\n",
        ] {
            let (got, problems) = entries(text);
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(
                got,
                [
                    "a {tier: \"gold\"}",
                    "b {city: \"x\", tier: \"free\"}",
                    "c {tier: \"free\"}"
                ]
            );
        }
    }

    #[test]
    fn account_keys_are_literal_text() {
        let (got, _) = entries("users: {007: {}, 1.50: {}, null: {}}\n");
        assert_eq!(got, ["007 {}", "1.50 {}", "null {}"]);
    }

    #[test]
    fn problems_do_not_stop_the_walk() {
        let (got, problems) =
            entries("users:\n  a: {city: 1, city: x, nope: y}\n  \"\": {}\n  b: {sex: m}\nx: 1\n");
        assert_eq!(got, ["a {}", "b {sex: \"m\"}"]);
        assert_eq!(
            problems,
            [
                "value of \"city\" for account \"a\" is a number; quote it: city: \"1\"",
                "attribute \"city\" is set twice for account \"a\"",
                "attribute \"nope\" for account \"a\" is not declared in the project file's `attributes`",
                "account id is empty",
                "unknown key `x` in a users file",
            ]
        );
    }

    #[test]
    fn utf8_limits_count_bytes() {
        let ok = format!("users: {{a: {{city: {}}}}}\n", "é".repeat(25)); // 50 bytes
        assert!(entries(&ok).1.is_empty());
        let long = format!("users: {{a: {{city: {}}}}}\n", "é".repeat(26)); // 52 bytes
        assert_eq!(entries(&long).1.len(), 1);
        let account = format!("users: {{{}: {{}}}}\n", "界".repeat(11)); // 33 bytes
        assert!(entries(&account).1[0].contains("33 bytes"));
    }

    #[test]
    fn the_walk_is_repeatable_for_locating() {
        let text = "users:\n  a: {city: 1}\n";
        let names = names();
        let mut w = Walk::new(text.len());
        walk(text, &names, 0, &mut w).unwrap();
        let node = w.problems[0].node;
        let at = super::super::walk::locate_node(text.len(), node, &|w: &mut Walk| {
            walk(text, &names, 0, w).map(|_| ())
        });
        assert_eq!(at, (2, 13));
    }
}
