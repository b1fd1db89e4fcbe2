//! One users file (or one chunk of a big one): its events walked once, straight into lean
//! entries (account, [`Attrs`], [`Tags`]), every problem recorded at its position as the walk
//! goes.
//!
//! Rules (DESIGN.md §1, §8, §9): top-level keys `defaults` and `users` only; values are YAML
//! strings of at most 50 bytes; names are declared in the project file; account ids are
//! 1..=32 bytes without control or bidirectional-formatting characters; `defaults` are merged
//! under every user of the same file, the user's values winning. The key `tags` (never an
//! attribute name) holds a list of 1..=100 distinct strings of 1..=50 bytes; a user's own list
//! replaces the list in `defaults`. Tags, like values, may hold any character: every output
//! escapes them, whereas an account id is also a key the tool matches on.
//!
//! Value policies (DESIGN.md §11) are checked as each value and tag is read, so a value outside
//! its policy is refused where it is written (in `defaults` once, not under every user), with
//! did-you-mean against the allowed values.

use std::borrow::Cow;
use std::fmt;

use super::events::{Ev, Hard, Pos, Stream, Style};
use super::problems::{Problem, Problems};
use super::scalar::{self, Plain};
use crate::model::{limits, Account, Attrs, NameIdx, Names, Tag, TagPool, Tags};
use crate::policy::{Policies, Policy};

/// One account of a users file, with where it came from (for duplicate reports).
#[derive(Debug)]
pub(crate) struct Entry {
    pub account: Account,
    pub attrs: Attrs,
    /// The user's own `tags` list, else the defaults' list; `None`: this file manages no tags
    /// of the account (an empty list in the desired state).
    pub tags: Option<Tags>,
    /// Index of the file in the run's list of users files.
    pub file: u32,
    /// Where the account's key is in its file.
    pub key: Pos,
}

/// A file's `defaults`: values merged under every user's own, and the tags of the users that
/// have no `tags` list of their own.
#[derive(Debug, Default, Clone)]
pub(crate) struct Defaults {
    pub attrs: Attrs,
    pub tags: Option<Tags>,
}

impl Defaults {
    /// Gives `e` what it did not set itself (for defaults written after the users).
    pub fn fill(&self, e: &mut Entry) {
        for (n, v) in self.attrs.iter() {
            if !e.attrs.contains(n) {
                e.attrs.insert(n, v.into());
            }
        }
        if e.tags.is_none() {
            e.tags.clone_from(&self.tags);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.tags.is_none()
    }
}

/// What a walk found: the entries in document order and the file's `defaults`.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub entries: Vec<Entry>,
    /// The `defaults` map and where its key is.
    pub defaults: Option<(Pos, Defaults)>,
    /// Where the `users` key is, when there is one.
    pub users_at: Option<Pos>,
}

impl Parsed {
    /// The entries with `defaults` merged, also when they were written after `users` (those
    /// before it were merged while walking).
    pub fn into_entries(self) -> Vec<Entry> {
        let mut entries = self.entries;
        if let (Some((at, defaults)), Some(users_at)) = (self.defaults, self.users_at) {
            if at > users_at && !defaults.is_empty() {
                for e in &mut entries {
                    defaults.fill(e);
                }
            }
        }
        entries
    }
}

/// Walks a users document whose first line is line `1 + line_offset` of file number `file`.
/// `defaults` (of a chunk's file) are merged under its users; a document's own `defaults`
/// are merged wherever they are written.
pub(crate) fn walk(
    text: &str,
    line_offset: u32,
    names: &Names,
    policies: &Policies,
    file: u32,
    defaults: Option<&Defaults>,
    problems: &mut Problems,
) -> Result<Parsed, Hard> {
    let mut w = Walker {
        s: Stream::new(text, line_offset),
        names,
        policies,
        file,
        problems,
        scratch: Vec::with_capacity(names.declared_len()),
        pool: TagPool::new(),
    };
    let (first, at) = w.s.next()?;
    let shape = match first {
        Ev::MapStart => {
            let parsed = w.top_map(at, defaults)?;
            w.s.finish()?;
            return Ok(parsed);
        }
        Ev::End => return Ok(Parsed::default()),
        ev => w.describe_skip(&ev)?,
    };
    w.s.finish()?;
    // An empty file is a users file without users (not an error: the plan's mass-removal
    // safety is what guards against an emptied file).
    if shape != "null" {
        w.problems.push(
            Problem::new(
                at,
                format!(
                    "a users file must be a map with `users` (and optionally `defaults`), not {shape}"
                ),
            )
            .help("users:\n    u1: {name: \"value\"}"),
        );
    }
    Ok(Parsed::default())
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

impl Owner<'_> {
    /// The path serde_yaml used to print in front of a tag error: `users.u1.city`.
    fn path(&self, name: &str) -> String {
        match self {
            Owner::Defaults => format!("defaults.{name}"),
            Owner::Account(a) => format!("users.{a}.{name}"),
        }
    }
}

struct Walker<'a, 'p> {
    s: Stream<'a>,
    names: &'p Names,
    /// Checked as each value and tag is read: no second pass over the model.
    policies: &'p Policies,
    file: u32,
    problems: &'p mut Problems,
    /// Values gathered before an account's [`Attrs`] is allocated at its exact size (a
    /// million accounts make every spare slot count). Reused from account to account.
    scratch: Vec<(NameIdx, Box<str>)>,
    /// One allocation per distinct tag of the piece, however many users list it.
    pool: TagPool,
}

impl<'a> Walker<'a, '_> {
    /// What a node that is not the expected map is (`a list`, `null`...), skipping it.
    fn describe_skip(&mut self, ev: &Ev<'a>) -> Result<&'static str, Hard> {
        self.s.skip_node(ev)?;
        Ok(describe(ev))
    }

    /// The next key of a map, or `None` at its end.
    fn key(&mut self) -> Result<Option<(Cow<'a, str>, Pos)>, Hard> {
        match self.s.next()? {
            (Ev::Scalar(text, _), at) => Ok(Some((text, at))),
            (Ev::MapEnd | Ev::End, _) => Ok(None),
            (ev, at) => Err(Hard::new(
                at,
                format!("a key must be plain text, not {}", describe(&ev)),
            )),
        }
    }

    fn top_map(&mut self, top: Pos, chunk_defaults: Option<&Defaults>) -> Result<Parsed, Hard> {
        let mut out = Parsed::default();
        let mut users_seen = false;
        while let Some((name, at)) = self.key()? {
            let seen = match &*name {
                "defaults" => out.defaults.as_ref().map(|d| d.0),
                "users" => out.users_at,
                other => {
                    self.problems.push(unknown_top_key(other, at));
                    self.s.next().and_then(|(ev, _)| self.s.skip_node(&ev))?;
                    continue;
                }
            };
            if let Some(first) = seen {
                self.problems
                    .push(Problem::new(at, format!("`{name}` appears twice")).first_at(first));
                self.s.next().and_then(|(ev, _)| self.s.skip_node(&ev))?;
            } else if name == "defaults" {
                let (attrs, tags) = self.fields(Owner::Defaults, None)?;
                out.defaults = Some((at, Defaults { attrs, tags }));
            } else {
                out.users_at = Some(at);
                users_seen = true;
                let defaults = chunk_defaults.or(out.defaults.as_ref().map(|(_, d)| d));
                out.entries = self.users_map(defaults)?;
            }
        }
        if !users_seen {
            self.problems.push(
                Problem::new(top, "this users file has no `users` key")
                    .help("users:\n    u1: {name: \"value\"}"),
            );
        }
        Ok(out)
    }

    /// The `users` map: account → attributes.
    fn users_map(&mut self, defaults: Option<&Defaults>) -> Result<Vec<Entry>, Hard> {
        let (ev, at) = self.s.next()?;
        if !matches!(ev, Ev::MapStart) {
            let shape = self.describe_skip(&ev)?;
            // `users:` with nothing under it: a file that manages no account (yet).
            if shape != "null" {
                self.problems.push(
                    Problem::new(
                        at,
                        format!("`users` must be a map of account: {{name: value}}, not {shape}"),
                    )
                    .help("users:\n    u1: {name: \"value\"}"),
                );
            }
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        while let Some((account, key)) = self.key()? {
            let valid = check_account(&account, key, self.problems);
            let (attrs, tags) = self.fields(Owner::Account(&account), defaults)?;
            if valid {
                entries.push(Entry {
                    account: Box::from(&*account),
                    attrs,
                    tags,
                    file: self.file,
                    key,
                });
            }
        }
        Ok(entries)
    }

    /// A map of attribute name → value and `tags` (an account's, or `defaults`), with the
    /// defaults filled in: values under the map's own, tags when it has no `tags` list.
    fn fields(
        &mut self,
        owner: Owner,
        defaults: Option<&Defaults>,
    ) -> Result<(Attrs, Option<Tags>), Hard> {
        let default_tags = || defaults.and_then(|d| d.tags.clone());
        let (ev, at) = self.s.next()?;
        if !matches!(ev, Ev::MapStart) {
            let shape = self.describe_skip(&ev)?;
            // `u1:` with nothing: a managed account without attributes of its own.
            if shape != "null" {
                self.problems.push(not_a_map(owner, shape, at));
            }
            let attrs = defaults.map(|d| d.attrs.clone()).unwrap_or_default();
            return Ok((attrs, default_tags()));
        }
        self.scratch.clear();
        // Where each name was first set (even to an invalid value), to point at it from a
        // repetition.
        let mut first_at = [None::<Pos>; limits::MAX_ATTRIBUTE_NAMES];
        let mut tags: Option<(Pos, Option<Tags>)> = None;
        while let Some((name, key)) = self.key()? {
            if name == TAGS_KEY {
                let list = self.tags(owner)?;
                match &tags {
                    Some((first, _)) => self.problems.push(
                        Problem::new(key, format!("`tags` is set twice {owner}")).first_at(*first),
                    ),
                    None => tags = Some((key, list)),
                }
                continue;
            }
            let idx = self
                .names
                .index_of(&name)
                .filter(|&i| self.names.is_declared(i));
            let value = self.value(owner, &name, idx)?;
            let Some(idx) = idx else {
                self.problems
                    .push(undeclared(&name, owner, key, self.names));
                continue;
            };
            let Some(seen) = first_at.get_mut(usize::from(idx)) else {
                continue; // unreachable: declared names are at most 10
            };
            if let Some(first) = *seen {
                self.problems.push(
                    Problem::new(key, format!("attribute {name:?} is set twice {owner}"))
                        .first_at(first),
                );
                continue;
            }
            *seen = Some(key);
            if let Some(v) = value {
                self.scratch.push((idx, v));
            }
        }
        let tags = match tags {
            Some((_, own)) => own,
            None => default_tags(),
        };
        Ok((self.own_attrs(defaults), tags))
    }

    /// The gathered values with the defaults merged under them, as an exactly sized [`Attrs`].
    fn own_attrs(&mut self, defaults: Option<&Defaults>) -> Attrs {
        if let Some(defaults) = defaults {
            for (n, v) in defaults.attrs.iter() {
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
        attrs
    }

    /// A `tags` list: strings of 1..=50 bytes, at most 100, each once. `None` when it is not
    /// a list (reported).
    fn tags(&mut self, owner: Owner) -> Result<Option<Tags>, Hard> {
        let (ev, at) = self.s.next().map_err(|h| with_path(h, owner, TAGS_KEY))?;
        if !matches!(ev, Ev::SeqStart) {
            let shape = self.describe_skip(&ev)?;
            self.problems.push(
                Problem::new(
                    at,
                    format!("`tags` {owner} must be a list of strings, not {shape}"),
                )
                .help("write e.g. tags: [vip, beta], or tags: [] for no tags"),
            );
            return Ok(None);
        }
        let mut found: Vec<(Tag, Pos)> = Vec::new();
        loop {
            let (ev, pos) = self.s.next().map_err(|h| with_path(h, owner, TAGS_KEY))?;
            let text = match ev {
                Ev::SeqEnd | Ev::End => break,
                Ev::Scalar(text, Style::Text) => text,
                Ev::Scalar(text, Style::Plain) if scalar::resolve(&text) == Plain::Text => text,
                ev => {
                    let problem = not_a_tag(&ev, owner, pos);
                    self.s.skip_node(&ev)?;
                    self.problems.push(problem);
                    continue;
                }
            };
            if let Some(problem) = tag_problem(&text, owner, pos) {
                self.problems.push(problem);
            } else if let Some(problem) = self
                .policies
                .tags()
                .and_then(|p| tag_refused(p, &text, owner, pos))
            {
                self.problems.push(problem);
            } else {
                found.push((self.pool.get(&text), pos));
            }
        }
        if found.len() > limits::MAX_TAGS_PER_USER {
            self.problems.push(
                Problem::new(
                    at,
                    format!(
                        "`tags` {owner} lists {} tags; a user holds at most {}",
                        found.len(),
                        limits::MAX_TAGS_PER_USER
                    ),
                )
                .help("the limit counts the tags other systems set on the user too"),
            );
        }
        // Sorted by tag, then place: a repetition points at the first place of its tag.
        found.sort_unstable();
        for pair in found.windows(2) {
            if pair[0].0 == pair[1].0 {
                self.problems.push(
                    Problem::new(
                        pair[1].1,
                        format!("tag {:?} is listed twice {owner}", pair[1].0),
                    )
                    .first_at(pair[0].1),
                );
            }
        }
        Ok(Some(found.into_iter().map(|(t, _)| t).collect()))
    }

    /// One attribute value: a YAML string of at most 50 bytes.
    /// One attribute value: a YAML string of at most 50 bytes, within the policy of the
    /// declared name `idx`.
    fn value(
        &mut self,
        owner: Owner,
        name: &str,
        idx: Option<NameIdx>,
    ) -> Result<Option<Box<str>>, Hard> {
        let (ev, at) = self.s.next().map_err(|h| with_path(h, owner, name))?;
        let quoted = match &ev {
            Ev::Scalar(text, Style::Text) => return Ok(self.string(text, owner, name, idx, at)),
            Ev::Scalar(text, Style::Plain) => match scalar::resolve(text) {
                Plain::Text => return Ok(self.string(text, owner, name, idx, at)),
                Plain::Null => format!("quote it ({name}: \"\") or remove the line"),
                // The text as written: `1.10` stays `"1.10"`, `0x1F` stays `"0x1F"`.
                _ => format!("quote it: {name}: \"{}\"", text.escape_debug()),
            },
            _ => format!("quote it, e.g. {name}: \"...\""),
        };
        let shape = self.describe_skip(&ev)?;
        self.problems.push(
            Problem::new(
                at,
                format!("value of {name:?} {owner} is {shape}; {quoted}"),
            )
            .help("attribute values are strings"),
        );
        Ok(None)
    }

    fn string(
        &mut self,
        v: &str,
        owner: Owner,
        name: &str,
        idx: Option<NameIdx>,
        at: Pos,
    ) -> Option<Box<str>> {
        if let Some(policy) = idx.and_then(|i| self.policies.attr(i)) {
            if !policy.allows(v) {
                self.problems
                    .push(value_refused(policy, v, owner, name, at));
                return None;
            }
        }
        if v.len() > limits::MAX_ATTR_BYTES {
            self.problems.push(Problem::new(
                at,
                format!(
                    "value of {name:?} {owner} is {} bytes long; at most {} bytes (UTF-8) are allowed",
                    v.len(),
                    limits::MAX_ATTR_BYTES
                ),
            ));
            return None;
        }
        Some(Box::from(v))
    }
}

/// A value outside its attribute's policy, with the allowed value it was probably meant to be.
fn value_refused(policy: &Policy, v: &str, owner: Owner, name: &str, at: Pos) -> Problem {
    let p = Problem::new(
        at,
        format!("value {v:?} of {name:?} {owner} is not allowed ({name}: {policy})"),
    );
    refused_help(p, policy, v, "the value", "`attributes`")
}

/// A tag outside the project's `tags` policy.
fn tag_refused(policy: &Policy, tag: &str, owner: Owner, at: Pos) -> Option<Problem> {
    if policy.allows(tag) {
        return None;
    }
    let p = Problem::new(
        at,
        format!("tag {tag:?} {owner} is not allowed (tags: {policy})"),
    );
    Some(refused_help(p, policy, tag, "the tag", "`tags`"))
}

/// "did you mean `gold`?", else what to change.
fn refused_help(p: Problem, policy: &Policy, text: &str, what: &str, key: &str) -> Problem {
    match (policy.did_you_mean(text), policy) {
        (Some(near), _) => p.help(format!("did you mean `{near}`?")),
        (None, Policy::Values(_)) => p.help(format!(
            "fix {what}, or add it to the project file's {key} if it is meant to exist"
        )),
        (None, Policy::Pattern(_)) => p.help(format!(
            "the whole text must match the pattern; fix {what}, or the pattern in the project file's {key}"
        )),
    }
}

/// The key of a user's tag list: never an attribute name (the project file refuses it).
pub(crate) const TAGS_KEY: &str = "tags";

/// A YAML-tag error under `name` with the path of the node in front, as users expect.
fn with_path(mut h: Hard, owner: Owner, name: &str) -> Hard {
    if h.tag {
        h.message = format!("{}: {}", owner.path(name), h.message);
    }
    h
}

/// An element of a `tags` list that is not a string: quoting it makes it one.
fn not_a_tag(ev: &Ev, owner: Owner, at: Pos) -> Problem {
    let shape = describe(ev);
    let fix = match ev {
        Ev::Scalar(text, _) if text.is_empty() => "remove the empty item".to_owned(),
        // The text as written: `1.10` stays `"1.10"`.
        Ev::Scalar(text, _) => format!("quote it: \"{}\"", text.escape_debug()),
        _ => "quote it, e.g. \"vip\"".to_owned(),
    };
    Problem::new(at, format!("a tag {owner} is {shape}; {fix}")).help("tags are strings")
}

/// What is wrong with a tag's text, if anything: its length (the API counts UTF-8 bytes).
fn tag_problem(tag: &str, owner: Owner, at: Pos) -> Option<Problem> {
    if tag.is_empty() {
        return Some(
            Problem::new(at, format!("a tag {owner} is empty"))
                .help("a tag is 1 to 50 bytes (UTF-8); remove the item"),
        );
    }
    (tag.len() > limits::MAX_TAG_BYTES).then(|| {
        Problem::new(
            at,
            format!(
                "tag {tag:?} {owner} is {} bytes long; at most {} bytes (UTF-8) are allowed",
                tag.len(),
                limits::MAX_TAG_BYTES
            ),
        )
    })
}

/// What an event starts: `a list`, `a number`, `null`...
fn describe(ev: &Ev) -> &'static str {
    match ev {
        Ev::Scalar(_, Style::Text) => "a string",
        Ev::Scalar(text, Style::Plain) => scalar::resolve(text).describe(),
        Ev::SeqStart => "a list",
        Ev::MapStart => "a map",
        Ev::SeqEnd | Ev::MapEnd | Ev::End => "nothing",
    }
}

fn unknown_top_key(key: &str, at: Pos) -> Problem {
    let p = Problem::new(at, format!("unknown key `{key}` in a users file"));
    match crate::suggest::did_you_mean(key, ["users", "defaults"]) {
        Some(s) => p.help(format!("did you mean `{s}`?")),
        None => p.help("a users file has only `users` and optionally `defaults`"),
    }
}

fn not_a_map(owner: Owner, shape: &str, at: Pos) -> Problem {
    let message = match owner {
        Owner::Defaults => format!("`defaults` must be a map of name: value, not {shape}"),
        Owner::Account(a) => {
            format!("the attributes of account {a:?} must be a map of name: value, not {shape}")
        }
    };
    Problem::new(at, message).help("write e.g. u1: {city: \"Paris\"}")
}

fn undeclared(name: &str, owner: Owner, key: Pos, names: &Names) -> Problem {
    let p = if name.len() > limits::MAX_ATTR_BYTES {
        Problem::new(
            key,
            format!(
                "attribute name {name:?} {owner} is {} bytes long; at most {} bytes are allowed",
                name.len(),
                limits::MAX_ATTR_BYTES
            ),
        )
    } else {
        Problem::new(
            key,
            format!(
                "attribute {name:?} {owner} is not declared in the project file's `attributes`"
            ),
        )
    };
    let declared = names.iter().take(names.declared_len()).map(|(_, n)| n);
    if let Some(near) = crate::suggest::did_you_mean(name, declared) {
        return p.help(format!("did you mean `{near}`?"));
    }
    let list: Vec<&str> = names
        .iter()
        .take(names.declared_len())
        .map(|(_, n)| n)
        .collect();
    if list.is_empty() {
        p.help("the project file declares no attributes")
    } else {
        p.help(format!("declared attributes: {}", list.join(", ")))
    }
}

/// Characters an account id may not hold: they could rewrite a terminal or reorder the text
/// of a reviewer's plan (the class every output escapes).
fn forbidden(c: char) -> Option<&'static str> {
    if !crate::escape::is_unsafe(c) {
        None
    } else if c.is_control() {
        Some("the control character")
    } else if matches!(c, '\u{2028}' | '\u{2029}') {
        Some("the separator character")
    } else {
        Some("the bidirectional formatting character")
    }
}

fn check_account(account: &str, key: Pos, problems: &mut Problems) -> bool {
    if account.is_empty() {
        problems.push(Problem::new(key, "account id is empty"));
        return false;
    }
    if account.len() > limits::MAX_ACCOUNT_BYTES {
        problems.push(Problem::new(
            key,
            format!(
                "account id {account:?} is {} bytes long; at most {} bytes are allowed",
                account.len(),
                limits::MAX_ACCOUNT_BYTES
            ),
        ));
        return false;
    }
    // Printable ASCII, the usual case, needs no closer look.
    if account.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return true;
    }
    let Some((c, what)) = account.chars().find_map(|c| forbidden(c).map(|w| (c, w))) else {
        return true;
    };
    problems.push(
        Problem::new(
            key,
            format!(
                "account id {} contains {what} U+{:04X}",
                escaped(account),
                u32::from(c)
            ),
        )
        .help("account ids are printed in plans and logs; use printable characters only"),
    );
    false
}

/// `"a\x1bb"`: the id quoted, escaped as every output escapes it.
fn escaped(s: &str) -> String {
    format!("\"{}\"", crate::escape::escape(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names::new(&["sex".into(), "city".into(), "tier".into()])
    }

    fn entries(text: &str) -> (Vec<String>, Vec<String>) {
        let names = names();
        let mut p = Problems::default();
        let entries = walk(text, 0, &names, &Policies::default(), 0, None, &mut p)
            .unwrap()
            .into_entries();
        let shown = entries
            .iter()
            .map(|e| match &e.tags {
                Some(t) => format!("{} {} {t:?}", e.account, e.attrs.display(&names)),
                None => format!("{} {}", e.account, e.attrs.display(&names)),
            })
            .collect();
        (shown, p.list.into_iter().map(|p| p.message).collect())
    }

    #[test]
    fn a_users_tags_replace_the_default_tags_before_or_after() {
        for text in [
            "defaults: {tier: free, tags: [news]}\nusers: {a: {tags: [vip, beta]}, b: {city: x}, c: , d: {tags: []}}\n",
            "users: {a: {tags: [vip, beta]}, b: {city: x}, c: , d: {tags: []}}\ndefaults: {tier: free, tags: [news]}\n",
        ] {
            let (got, problems) = entries(text);
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(
                got,
                [
                    "a {tier: \"free\"} [\"beta\", \"vip\"]",
                    "b {city: \"x\", tier: \"free\"} [\"news\"]",
                    "c {tier: \"free\"} [\"news\"]",
                    "d {tier: \"free\"} []",
                ]
            );
        }
        let (got, _) = entries("users:\n  a:\n    tags:\n      - x\n      - \"y z\"\n  b: {}\n");
        assert_eq!(got, ["a {} [\"x\", \"y z\"]", "b {}"]);
    }

    #[test]
    fn tag_problems_do_not_stop_the_walk() {
        let (got, problems) = entries(
            "users:\n  a: {tags: [1.10, ~, [x], '', v, v], tags: []}\n  b: {tags: vip, city: x}\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(
            problems,
            [
                "a tag for account \"a\" is a number; quote it: \"1.10\"",
                "a tag for account \"a\" is null; quote it: \"~\"",
                "a tag for account \"a\" is a list; quote it, e.g. \"vip\"",
                "a tag for account \"a\" is empty",
                "tag \"v\" is listed twice for account \"a\"",
                "`tags` is set twice for account \"a\"",
                "`tags` for account \"b\" must be a list of strings, not a string",
            ]
        );
    }

    #[test]
    fn tags_hold_any_character_like_values() {
        let (got, problems) = entries("users: {a: {tags: [\"x\\ey\", \"\\u202Eb\", 界]}}\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(got, ["a {} [\"x\\u{1b}y\", \"\\u{202e}b\", \"界\"]"]);
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
        let (got, _) = entries("users: {007: {}, 1.50: {}, null: {}, ~: {}}\n");
        assert_eq!(got, ["007 {}", "1.50 {}", "null {}", "~ {}"]);
    }

    #[test]
    fn problems_do_not_stop_the_walk() {
        let (got, problems) = entries(
            "users:\n  a: {city: 1.10, city: x, nope: y, sex: 0x1F}\n  \"\": {}\n  b: {sex: m}\nx: 1\n",
        );
        assert_eq!(got, ["a {}", "b {sex: \"m\"}"]);
        assert_eq!(
            problems,
            [
                "value of \"city\" for account \"a\" is a number; quote it: city: \"1.10\"",
                "attribute \"city\" is set twice for account \"a\"",
                "attribute \"nope\" for account \"a\" is not declared in the project file's `attributes`",
                "value of \"sex\" for account \"a\" is a number; quote it: sex: \"0x1F\"",
                "account id is empty",
                "unknown key `x` in a users file",
            ]
        );
    }

    #[test]
    fn yaml_1_2_words_are_text() {
        let (got, problems) = entries("users: {a: {city: yes, sex: no, tier: 0123}}\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(got, ["a {sex: \"no\", city: \"yes\", tier: \"0123\"}"]);
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
    fn control_and_bidi_characters_in_account_ids_are_refused() {
        for (id, code) in [
            ("a\\eb", "U+001B"),
            ("a\\rb", "U+000D"),
            ("a\\x7Fb", "U+007F"),
            ("a\\x85b", "U+0085"),
            ("a\\u202Eb", "U+202E"),
            ("a\\u2066b", "U+2066"),
            ("a\\u200Fb", "U+200F"),
            ("a\\u061Cb", "U+061C"),
        ] {
            let (got, problems) = entries(&format!("users: {{\"{id}\": {{city: x}}, ok: {{}}}}\n"));
            assert_eq!(got, ["ok {}"], "{id}");
            assert_eq!(problems.len(), 1, "{id}");
            assert!(problems[0].contains(code), "{}", problems[0]);
            assert!(
                !problems[0].chars().any(|c| forbidden(c).is_some()),
                "{:?}",
                problems[0]
            );
        }
        let (got, problems) = entries("users: {\"é界\": {city: \"x\\ey\"}}\n");
        assert!(
            problems.is_empty(),
            "values keep control characters: {problems:?}"
        );
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn positions_come_from_the_parser() {
        let names = names();
        let mut p = Problems::default();
        walk(
            "users:\n  a: {city: 1}\n",
            40,
            &names,
            &Policies::default(),
            0,
            None,
            &mut p,
        )
        .unwrap();
        assert_eq!(p.list[0].pos, Pos { line: 42, col: 13 });
    }

    fn policies() -> Policies {
        use crate::policy::Pattern;
        let city = Policy::Pattern(Pattern::new("[A-Z][a-z]+").unwrap());
        Policies::new(
            vec![
                None,
                Some(city),
                Some(Policy::values(["free", "gold", "vip"])),
            ],
            Some(Policy::values(["beta", "news", "vip"])),
        )
    }

    /// `line:col message [help]` of each problem under the policies above.
    fn refused(text: &str) -> Vec<String> {
        let mut p = Problems::default();
        walk(text, 0, &names(), &policies(), 0, None, &mut p).unwrap();
        p.list
            .into_iter()
            .map(|p| {
                let help = p.help.unwrap_or_default();
                format!("{}:{} {} [{help}]", p.pos.line, p.pos.col, p.message)
            })
            .collect()
    }

    #[test]
    fn values_and_tags_outside_their_policy_are_refused_where_they_are() {
        let got = refused(
            "defaults: {tier: fre, tags: [news, nwes]}\nusers:\n  a: {tier: glod, city: berlin, sex: anything}\n  b: {tier: gold, city: Berlin, tags: [vpi, beta]}\n  c: {tier: \"gold \"}\n",
        );
        assert_eq!(
            got,
            [
                "1:18 value \"fre\" of \"tier\" in `defaults` is not allowed (tier: one of: free, gold, vip) [did you mean `free`?]",
                "1:36 tag \"nwes\" in `defaults` is not allowed (tags: one of: beta, news, vip) [did you mean `news`?]",
                "3:13 value \"glod\" of \"tier\" for account \"a\" is not allowed (tier: one of: free, gold, vip) [did you mean `gold`?]",
                "3:25 value \"berlin\" of \"city\" for account \"a\" is not allowed (city: pattern: [A-Z][a-z]+) [the whole text must match the pattern; fix the value, or the pattern in the project file's `attributes`]",
                "4:40 tag \"vpi\" for account \"b\" is not allowed (tags: one of: beta, news, vip) [did you mean `vip`?]",
                "5:13 value \"gold \" of \"tier\" for account \"c\" is not allowed (tier: one of: free, gold, vip) [did you mean `gold`?]",
            ]
        );
        // Allowed values pass; attributes without a policy take anything.
        assert!(
            refused("users: {a: {tier: vip, city: Paris, sex: '?', tags: [vip]}}\n").is_empty()
        );
    }
}
