//! A fast path for the plain shape most big users files have (generated exports): a strict
//! subset of YAML read line by line, several times faster than the general parser.
//!
//! Accepted: an optional `defaults` map, then `users:`, then accounts, each either
//! `  id: {name: value, ...}` on one line or `  id:` followed by `    name: value` lines, with
//! ids, names and plain values made of ASCII letters, digits, `_`, `.` and `-` (not starting
//! with `.` or `-`), values also `"quoted"` or `'quoted'` without escapes, single spaces, `\n`
//! line ends, no comments or blank lines. A value of `tags` is a flow list of such values on
//! the same line: `tags: [vip, "beta"]` or `tags: []`. Within that subset YAML has one reading, which is
//! the one built here. Anything else, and any problem at all (an undeclared name, a number, a
//! duplicate, a value or tag outside its policy...), gives `None`, and the caller walks the text with the general parser, which
//! finds and words every problem. So the fast path can only be faster, never different.

use super::events::Pos;
use super::scalar::{self, Plain};
use super::users::{Defaults, Entry, Parsed, TAGS_KEY};
use crate::model::{limits, Attrs, NameIdx, Names, Tag, TagPool, Tags};
use crate::policy::Policies;

/// The entries of `text` (whose first line is line `1 + line_offset`), `defaults` merged, or
/// `None` when the text is not in the subset or has a problem.
pub(crate) fn walk(
    text: &str,
    line_offset: u32,
    names: &Names,
    policies: &Policies,
    file: u32,
    defaults: Option<&Defaults>,
) -> Option<Parsed> {
    let mut r = Reader {
        bytes: text.as_bytes(),
        at: 0,
        line: line_offset,
        names,
        policies,
        scratch: Vec::with_capacity(names.declared_len()),
        tags: Vec::new(),
        pool: TagPool::new(),
    };
    let mut own_defaults = None;
    let mut line = r.next_line()?;
    if let Some(rest) = line.strip_prefix(b"defaults:") {
        let at = Pos {
            line: r.line,
            col: 1,
        };
        let (attrs, tags) = r.map_value(rest, 0, None)?;
        own_defaults = Some((at, Defaults { attrs, tags }));
        line = r.next_line()?;
    }
    if line != b"users:" {
        return None;
    }
    let users_at = Pos {
        line: r.line,
        col: 1,
    };
    let merged = defaults.or(own_defaults.as_ref().map(|(_, d)| d));
    let mut entries = Vec::new();
    let mut indent = 0;
    while let Some(line) = r.peek_line() {
        let i = line.iter().take_while(|&&b| b == b' ').count();
        if indent == 0 {
            indent = i;
        }
        if i == 0 || i != indent {
            return None;
        }
        r.next_line()?;
        entries.push(r.account(line, indent, merged, file)?);
    }
    Some(Parsed {
        entries,
        defaults: own_defaults,
        users_at: Some(users_at),
    })
}

struct Reader<'t, 'n> {
    bytes: &'t [u8],
    at: usize,
    /// The number of the line last returned.
    line: u32,
    names: &'n Names,
    /// A value or tag outside its policy gives up (the general parser words the problem).
    policies: &'n Policies,
    scratch: Vec<(NameIdx, Box<str>)>,
    /// The tags of the list being read, reused from account to account.
    tags: Vec<Tag>,
    /// One allocation per distinct tag of the piece, however many users list it.
    pool: TagPool,
}

impl<'t> Reader<'t, '_> {
    /// The next line without its `\n`; `None` at the end. A `\r` or a tab anywhere, or a
    /// missing final `\n`, is outside the subset.
    fn next_line(&mut self) -> Option<&'t [u8]> {
        let rest = self.bytes.get(self.at..)?;
        let len = rest.iter().position(|&b| b == b'\n')?;
        let line = &rest[..len];
        self.at += len + 1;
        self.line += 1;
        Some(line)
    }

    fn peek_line(&self) -> Option<&'t [u8]> {
        let rest = self.bytes.get(self.at..).filter(|r| !r.is_empty())?;
        Some(match rest.iter().position(|&b| b == b'\n') {
            Some(len) => &rest[..len],
            None => rest,
        })
    }

    /// `  id: {...}` or `  id:` with the block lines under it.
    fn account(
        &mut self,
        line: &'t [u8],
        indent: usize,
        defaults: Option<&Defaults>,
        file: u32,
    ) -> Option<Entry> {
        let key_line = self.line;
        let (id, rest) = token(&line[indent..])?;
        let rest = rest.strip_prefix(b":")?;
        if id.is_empty() || id.len() > limits::MAX_ACCOUNT_BYTES {
            return None;
        }
        let (attrs, tags) = self.map_value(rest, indent, defaults)?;
        Some(Entry {
            account: Box::from(std::str::from_utf8(id).ok()?),
            attrs,
            tags,
            file,
            key: Pos {
                line: key_line,
                col: u32::try_from(indent + 1).ok()?,
            },
        })
    }

    /// What follows `key:` on its line: ` {...}` (flow), or nothing and block lines deeper
    /// than `indent` (nothing at all is null: only the defaults). The attributes with the
    /// defaults merged under them, and the own tags or else the defaults' tags.
    fn map_value(
        &mut self,
        rest: &'t [u8],
        indent: usize,
        defaults: Option<&Defaults>,
    ) -> Option<(Attrs, Option<Tags>)> {
        self.scratch.clear();
        let mut seen = 0u16;
        let mut tags = None;
        if let Some(flow) = rest.strip_prefix(b" {") {
            let body = flow.strip_suffix(b"}")?;
            let mut pairs = body;
            while !pairs.is_empty() {
                let (name, after) = token(pairs)?;
                let after = self.field(name, after.strip_prefix(b": ")?, &mut seen, &mut tags)?;
                pairs = match after.strip_prefix(b", ") {
                    Some(more) if !more.is_empty() => more,
                    Some(_) => return None,
                    None if after.is_empty() => after,
                    None => return None,
                };
            }
        } else if rest.is_empty() {
            self.block(indent, &mut seen, &mut tags)?;
        } else {
            return None;
        }
        let attrs = finish(&mut self.scratch, defaults.map(|d| &d.attrs));
        let tags = tags.or_else(|| defaults.and_then(|d| d.tags.clone()));
        Some((attrs, tags))
    }

    /// `name: value` lines indented deeper than `indent`, all alike.
    fn block(&mut self, indent: usize, seen: &mut u16, tags: &mut Option<Tags>) -> Option<()> {
        let mut inner = 0;
        while let Some(line) = self.peek_line() {
            let i = line.iter().take_while(|&&b| b == b' ').count();
            if i <= indent {
                break;
            }
            if inner == 0 {
                inner = i;
            }
            if i != inner {
                return None;
            }
            let line = self.next_line()?;
            let (name, after) = token(&line[i..])?;
            let after = self.field(name, after.strip_prefix(b": ")?, seen, tags)?;
            if !after.is_empty() {
                return None;
            }
        }
        Some(())
    }

    /// The value after `name: ` (an attribute's, or the `tags` list), recorded; what follows.
    fn field(
        &mut self,
        name: &[u8],
        text: &'t [u8],
        seen: &mut u16,
        tags: &mut Option<Tags>,
    ) -> Option<&'t [u8]> {
        if name == TAGS_KEY.as_bytes() {
            if tags.is_some() {
                return None;
            }
            let (list, after) = self.tag_list(text)?;
            *tags = Some(list);
            return Some(after);
        }
        let (value, after) = value(text)?;
        self.set(name, value, seen)?;
        Some(after)
    }

    /// `[a, "b c"]`: at most 100 distinct tags of 1..=50 bytes; what follows the `]`.
    fn tag_list(&mut self, text: &'t [u8]) -> Option<(Tags, &'t [u8])> {
        let mut rest = text.strip_prefix(b"[")?;
        self.tags.clear();
        if let Some(after) = rest.strip_prefix(b"]") {
            return Some((Tags::new(), after));
        }
        let after = loop {
            let (tag, after) = value(rest)?;
            if tag.is_empty() || tag.len() > limits::MAX_TAG_BYTES {
                return None;
            }
            let tag = std::str::from_utf8(tag).ok()?;
            if self.policies.tags().is_some_and(|p| !p.allows(tag)) {
                return None;
            }
            self.tags.push(self.pool.get(tag));
            if let Some(more) = after.strip_prefix(b", ") {
                rest = more;
                continue;
            }
            break after.strip_prefix(b"]")?;
        };
        self.tags.sort_unstable();
        if self.tags.len() > limits::MAX_TAGS_PER_USER || self.tags.windows(2).any(|w| w[0] == w[1])
        {
            return None;
        }
        // Collected at its exact size; already sorted and distinct.
        Some((Tags::from(self.tags.drain(..).collect::<Vec<_>>()), after))
    }

    /// Records a declared, not yet set name with a text value of at most 50 bytes.
    fn set(&mut self, name: &[u8], value: &[u8], seen: &mut u16) -> Option<()> {
        let name = std::str::from_utf8(name).ok()?;
        let idx = self
            .names
            .index_of(name)
            .filter(|&i| self.names.is_declared(i))?;
        let bit = 1u16.checked_shl(u32::from(idx))?;
        if *seen & bit != 0 || value.len() > limits::MAX_ATTR_BYTES {
            return None;
        }
        *seen |= bit;
        let value = std::str::from_utf8(value).ok()?;
        if self.policies.attr(idx).is_some_and(|p| !p.allows(value)) {
            return None;
        }
        self.scratch.push((idx, Box::from(value)));
        Some(())
    }
}

/// The scratch values with the defaults merged under them, as an exactly sized [`Attrs`].
fn finish(scratch: &mut Vec<(NameIdx, Box<str>)>, defaults: Option<&Attrs>) -> Attrs {
    if let Some(defaults) = defaults {
        for (n, v) in defaults.iter() {
            if !scratch.iter().any(|(m, _)| *m == n) {
                scratch.push((n, v.into()));
            }
        }
    }
    scratch.sort_unstable_by_key(|(n, _)| *n);
    let mut attrs = Attrs::with_capacity(scratch.len());
    for (n, v) in scratch.drain(..) {
        attrs.insert(n, v);
    }
    attrs
}

/// A plain token (`[A-Za-z0-9_][A-Za-z0-9_.-]*`) and what follows it.
fn token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *s.first()?;
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return None;
    }
    let len = s
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
        .unwrap_or(s.len());
    Some(s.split_at(len))
}

/// A value: a plain token that YAML reads as text, or a quoted string without escapes.
fn value(s: &[u8]) -> Option<(&[u8], &[u8])> {
    match s.first()? {
        &q @ (b'"' | b'\'') => {
            let len = s[1..].iter().position(|&b| b == q)?;
            let inner = &s[1..=len];
            if inner
                .iter()
                .any(|&b| !(0x20..0x7f).contains(&b) || b == b'\\')
            {
                return None;
            }
            Some((inner, &s[len + 2..]))
        }
        _ => {
            let (v, rest) = token(s)?;
            let text = std::str::from_utf8(v).ok()?;
            (scalar::resolve(text) == Plain::Text).then_some((v, rest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::problems::Problems;
    use super::super::users;
    use super::*;

    fn names() -> Names {
        Names::new(&["sex".into(), "city".into(), "tier".into()])
    }

    fn view(p: Parsed) -> Vec<String> {
        let names = names();
        p.into_entries()
            .iter()
            .map(|e| {
                let (attrs, tags) = (e.attrs.display(&names), &e.tags);
                format!("{} {attrs} {tags:?} {:?}", e.account, e.key)
            })
            .collect()
    }

    /// The fast path's reading of `text`, which must be the general parser's.
    fn same(text: &str) -> Option<Vec<String>> {
        let names = names();
        let fast = walk(text, 3, &names, &Policies::default(), 0, None)?;
        let mut problems = Problems::default();
        let slow = users::walk(
            text,
            3,
            &names,
            &Policies::default(),
            0,
            None,
            &mut problems,
        )
        .unwrap();
        assert!(problems.is_empty(), "{text:?}");
        let (fast, slow) = (view(fast), view(slow));
        assert_eq!(fast, slow, "{text:?}");
        Some(fast)
    }

    #[test]
    fn the_subset_reads_as_yaml_does() {
        let text = "defaults:\n  tier: free\nusers:\n  a1: {sex: m, city: \"São\"}\n  b-2.x:\n    city: 'x y'\n    tier: gold\n  c:\n  d: {}\n  true: {city: yes}\n";
        assert_eq!(same(text), None); // non-ASCII in a quoted value: not in the subset
        let text = text.replace("São", "Sao");
        let got = same(&text).unwrap();
        assert_eq!(got.len(), 5);
        assert!(got[1]
            .starts_with("b-2.x {city: \"x y\", tier: \"gold\"} None Pos { line: 8, col: 3 }"));
        same("defaults: {tier: free}\nusers:\n  a: {city: x}\n").unwrap();
        same("users:\n  a:\n      city: x\n      sex: m\n  b: {city: y}\n").unwrap();
    }

    #[test]
    fn flow_tag_lists_read_as_yaml_does() {
        let text = "defaults:\n  tier: free\n  tags: [news, 'd q']\nusers:\n  a: {sex: m, tags: [vip, \"b-1\", a.b, yes, 0123]}\n  b:\n    tags: []\n    city: x\n  c: {city: y}\n  d:\n";
        let got = same(text).unwrap();
        assert_eq!(
            got,
            [
                "a {sex: \"m\", tier: \"free\"} Some([\"0123\", \"a.b\", \"b-1\", \"vip\", \"yes\"]) Pos { line: 8, col: 3 }",
                "b {city: \"x\", tier: \"free\"} Some([]) Pos { line: 9, col: 3 }",
                "c {city: \"y\", tier: \"free\"} Some([\"d q\", \"news\"]) Pos { line: 12, col: 3 }",
                "d {tier: \"free\"} Some([\"d q\", \"news\"]) Pos { line: 13, col: 3 }",
            ]
        );
        same("defaults: {tags: [x]}\nusers:\n  a: {}\n  b: {tags: [y]}\n").unwrap();
        let hundred: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        let text = format!("users:\n  a: {{tags: [{}]}}\n", hundred.join(", "));
        assert!(same(&text).unwrap()[0].contains("\"t99\""));
        // No `tags` anywhere: no tags managed, as before.
        assert!(same("users:\n  a: {city: x}\n").unwrap()[0].contains(" None "));
    }

    #[test]
    fn both_readers_share_one_allocation_per_tag() {
        let text = "users:\n  a: {tags: [vip, beta]}\n  b: {tags: [\"vip\"]}\n";
        let names = names();
        let fast = walk(text, 0, &names, &Policies::default(), 0, None)
            .unwrap()
            .into_entries();
        let slow = users::walk(
            text,
            0,
            &names,
            &Policies::default(),
            0,
            None,
            &mut Problems::default(),
        )
        .unwrap();
        for entries in [fast, slow.into_entries()] {
            let vip = |i: usize| {
                let tags = entries[i].tags.as_ref().unwrap().as_slice();
                tags.iter().find(|t| &***t == "vip").unwrap().clone()
            };
            assert!(Tag::ptr_eq(&vip(0), &vip(1)));
        }
    }

    #[test]
    fn generated_files_read_alike() {
        // Deterministic variety: flow and block accounts, 0-3 names, plain and quoted values,
        // indentations of 1-4 spaces, with and without defaults.
        let values = [
            "x", "São", "a-b.c", "\"q v\"", "'s q'", "0123", "yes", "_", "1.2.3",
        ];
        let mut n = 7u32;
        let mut next = |m: u32| {
            n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (n >> 16) % m
        };
        for round in 0..40 {
            let indent = " ".repeat(1 + round % 4);
            let mut text = String::new();
            if round % 3 == 0 {
                text.push_str("defaults:\n  sex: f\n");
                if round % 2 == 0 {
                    text.push_str("  tags: [d1, 'd 2']\n");
                }
            }
            text.push_str("users:\n");
            for a in 0..30 {
                let mut pairs = Vec::new();
                for name in ["sex", "city", "tags", "tier"] {
                    if next(2) != 0 {
                        continue;
                    }
                    if name == "tags" {
                        let n = next(4) as usize;
                        let mut tags: Vec<&str> = values.to_vec();
                        tags.rotate_left(next(values.len() as u32) as usize);
                        pairs.push(format!("tags: [{}]", tags[..n].join(", ")));
                    } else {
                        let v = values[next(values.len() as u32) as usize];
                        pairs.push(format!("{name}: {v}"));
                    }
                }
                if next(2) == 0 {
                    text.push_str(&format!("{indent}u{a}: {{{}}}\n", pairs.join(", ")));
                } else {
                    text.push_str(&format!("{indent}u{a}:\n"));
                    for p in pairs {
                        text.push_str(&format!("{indent}   {p}\n"));
                    }
                }
            }
            let text = text.replace("São", "Sao");
            assert!(same(&text).is_some(), "{text}");
        }
    }

    #[test]
    fn anything_else_falls_back() {
        for text in [
            "users:\n  a: {city: 1}\n",               // a number
            "users:\n  a: {city: x, city: y}\n",      // set twice
            "users:\n  a: {cty: x}\n",                // undeclared
            "users:\n  a: {city: x}\n  a: {}\n",      // fine here: duplicates are found later
            "users:\n  a: {city: x}  \n",             // trailing space
            "users:\n  a: {city: x} # note\n",        // comment
            "users:\n  a: {city:  x}\n",              // two spaces
            "users:\n  a: {city: \"a\\\"b\"}\n",      // escapes
            "users:\n  a: {city: x}\r\n",             // CRLF
            "users:\n  a: {city: x}",                 // no final newline
            "users:\n  a: {city: x}\n\n  b: {}\n",    // blank line
            "users:\n  a: {city: x}\ndefaults: {}\n", // defaults after users
            "users:\n  a:\n    city: x\n   sex: m\n", // ragged block
            "users: {a: {}}\n",                       // flow users
            "users:\n  -a: {}\n",                     // odd key
            "users:\n  a: {city: .inf}\n",            // odd value
            "users:\n  a: {city: x,}\n",              // trailing comma
            "# c\nusers:\n  a: {}\n",                 // comment line
            "users:\n  a: {tags: [x, 1]}\n",          // a number
            "users:\n  a: {tags: [x, x]}\n",          // listed twice
            "users:\n  a: {tags: [x], tags: []}\n",   // set twice
            "users:\n  a: {tags: ['']}\n",            // empty
            "users:\n  a: {tags: [x,]}\n",            // trailing comma
            "users:\n  a: {tags: [x,y]}\n",           // no space
            "users:\n  a: {tags: x}\n",               // not a list
            "users:\n  a: {tags: [[x]]}\n",           // nested
            "users:\n  a:\n    tags:\n    - x\n",     // block list
            "users:\n  a: {tags: [x] }\n",            // space before the brace
        ] {
            let names = names();
            let fast = walk(text, 0, &names, &Policies::default(), 0, None);
            assert!(
                fast.is_none() || text == "users:\n  a: {city: x}\n  a: {}\n",
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_value_or_tag_outside_its_policy_falls_back() {
        use crate::policy::Policy;
        let names = names();
        let policies = Policies::new(
            vec![None, None, Some(Policy::values(["free", "gold"]))],
            Some(Policy::values(["vip"])),
        );
        let walk_with = |text: &str| walk(text, 0, &names, &policies, 0, None);
        assert!(walk_with("users:\n  a: {tier: gold, tags: [vip]}\n").is_some());
        for text in [
            "users:\n  a: {tier: glod}\n",
            "users:\n  a:\n    tier: glod\n",
            "defaults: {tier: glod}\nusers:\n  a: {}\n",
            "users:\n  a: {tags: [vpi]}\n",
            "defaults: {tags: [vip, x]}\nusers:\n  a: {}\n",
        ] {
            assert!(walk_with(text).is_none(), "{text:?}");
            let mut problems = Problems::default();
            users::walk(text, 0, &names, &policies, 0, None, &mut problems).unwrap();
            assert_eq!(problems.list.len(), 1, "{text:?}");
        }
    }
}
