//! Walking a YAML document node by node, and finding where a problem is.
//!
//! serde_yaml 0.9 exposes no spans, but an error raised inside a `Visitor` comes back carrying
//! the mark (line, column) of the node being deserialized. So the walkers of this module's
//! siblings number every node they visit (its *ordinal*) and record problems as
//! `(ordinal, message)` without failing, which lets one parse find every problem of a file.
//! Only when a file has problems is it walked again, once per problem, with a [`Walk`] whose
//! target is that ordinal: the walker then fails on purpose at that node and serde_yaml tells
//! us where it is. Files without problems pay nothing extra.
//!
//! The walk also bounds the work a file can cause: a node budget proportional to the file's
//! size stops alias bombs (a small file whose aliases expand to millions of nodes).

use serde::de;
use std::borrow::Cow;
use std::fmt;

use crate::diag::Diagnostic;
use std::path::Path;

/// Problems collected per file; beyond this they are only counted.
pub(crate) const MAX_PROBLEMS_PER_FILE: usize = 100;

/// The message of the deliberate failure of a locating walk (never shown to users).
const LOCATE_STOP: &str = "timattr: located";

/// A problem found at a node, to be reported at that node's location.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub node: u32,
    pub message: String,
    pub help: Option<String>,
    /// An earlier node the message refers to (the first definition of a duplicate); its
    /// location is appended to the message.
    pub first: Option<u32>,
}

impl Problem {
    pub fn new(node: u32, message: impl Into<String>) -> Self {
        Problem {
            node,
            message: message.into(),
            help: None,
            first: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn first_at(mut self, node: u32) -> Self {
        self.first = Some(node);
        self
    }
}

/// The state of one walk over one document: the node counter, its budget, the problems found,
/// and (when locating) the node at which to stop.
#[derive(Debug)]
pub(crate) struct Walk {
    nodes: u32,
    budget: u32,
    target: Option<u32>,
    pub problems: Vec<Problem>,
    /// Problems beyond [`MAX_PROBLEMS_PER_FILE`], only counted.
    pub more: usize,
}

impl Walk {
    /// A walk over a document of `len` bytes. Written out, every node takes at least a byte,
    /// so more nodes than about twice the size can only come from aliases expanding.
    pub fn new(len: usize) -> Self {
        let budget = len.saturating_mul(2).saturating_add(1000);
        Walk {
            nodes: 0,
            budget: u32::try_from(budget).unwrap_or(u32::MAX),
            target: None,
            problems: Vec::new(),
            more: 0,
        }
    }

    fn locating(len: usize, target: u32) -> Self {
        Walk {
            target: Some(target),
            ..Walk::new(len)
        }
    }

    /// Enters the next node. Must be called first thing in every `visit_*` method, so that
    /// both walks number nodes alike and a deliberate failure carries this node's mark.
    pub fn node<E: de::Error>(&mut self) -> Result<u32, E> {
        let n = self.nodes;
        if n >= self.budget {
            return Err(E::custom(format!(
                "the document expands to more than {} YAML nodes (an alias bomb?); \
                 write the data out instead of repeating aliases",
                self.budget
            )));
        }
        self.nodes += 1;
        if self.target == Some(n) {
            return Err(E::custom(LOCATE_STOP));
        }
        Ok(n)
    }

    pub fn problem(&mut self, p: Problem) {
        // A locating walk repeats the first walk exactly; it needs no list.
        if self.target.is_some() {
            return;
        }
        if self.problems.len() < MAX_PROBLEMS_PER_FILE {
            self.problems.push(p);
        } else {
            self.more += 1;
        }
    }

    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }
}

/// A hard error of serde_yaml (syntax, recursion or repetition limit, a budget overrun...)
/// as a diagnostic at its location.
pub(crate) fn hard_error(file: &Path, text: &str, err: &serde_yaml::Error) -> Diagnostic {
    let mut message = err.to_string();
    let (line, column) = match err.location() {
        Some(loc) => {
            // serde_yaml appends the location to the message; we print it in front instead.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
            (loc.line(), loc.column())
        }
        // The one error serde_yaml gives without a mark: point at the second document.
        None => second_document(text).map_or((0, 0), |line| (line, 1)),
    };
    Diagnostic::new(file, line, column, message)
}

/// The line of a `---` that starts a second document, if any.
fn second_document(text: &str) -> Option<usize> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") && content {
            return Some(i + 1);
        }
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') && !t.starts_with('%') && !line.starts_with("---") {
            content = true;
        }
    }
    None
}

/// Where node `target` is: walks the document again and stops there.
pub(crate) fn locate_node<F>(len: usize, target: u32, walk: &F) -> (usize, usize)
where
    F: Fn(&mut Walk) -> Result<(), serde_yaml::Error>,
{
    let mut w = Walk::locating(len, target);
    match walk(&mut w) {
        Err(e) => e.location().map_or((0, 0), |l| (l.line(), l.column())),
        Ok(()) => (0, 0),
    }
}

/// Turns the problems of a walk into located diagnostics, followed by a count of the
/// problems left out.
pub(crate) fn located<F>(
    file: &Path,
    len: usize,
    problems: Vec<Problem>,
    more: usize,
    walk: &F,
) -> Vec<Diagnostic>
where
    F: Fn(&mut Walk) -> Result<(), serde_yaml::Error>,
{
    let mut out = Vec::with_capacity(problems.len() + 1);
    for p in problems {
        let (line, column) = locate_node(len, p.node, walk);
        let mut message = p.message;
        if let Some(first) = p.first {
            let (l, c) = locate_node(len, first, walk);
            let at = Diagnostic::new(file, l, c, "").location();
            message = format!("{message} (first at {at})");
        }
        let mut d = Diagnostic::new(file, line, column, message);
        d.help = p.help;
        out.push(d);
    }
    // Problems are found in walk order (a repeated key only at the end of its map): report
    // them in file order.
    out.sort_by_key(|d| (d.line, d.column));
    if more > 0 {
        out.push(more_problems(file, more));
    }
    out
}

pub(crate) fn more_problems(file: &Path, more: usize) -> Diagnostic {
    Diagnostic::new(
        file,
        0,
        0,
        format!(
            "and {more} more problem{} in this file",
            if more == 1 { "" } else { "s" }
        ),
    )
}

/// What a node turned out to be when a visitor expected something else.
pub(crate) enum Found {
    Bool(bool),
    Number(String),
    Null,
    Str,
    List,
    Map,
}

impl Found {
    /// `a number`, `a list`...
    pub fn describe(&self) -> &'static str {
        match self {
            Found::Bool(_) => "a boolean",
            Found::Number(_) => "a number",
            Found::Null => "null",
            Found::Str => "a string",
            Found::List => "a list",
            Found::Map => "a map",
        }
    }

    /// The scalar as text, for "quote it" suggestions.
    pub fn text(&self) -> Option<String> {
        match self {
            Found::Bool(b) => Some(b.to_string()),
            Found::Number(n) => Some(n.clone()),
            _ => None,
        }
    }
}

/// `visit_*` methods for the kinds a visitor does not expect: each enters its node and hands
/// it to the visitor's `found(node, Found)`. The content of collections is skipped with
/// `IgnoredAny`, which does not follow aliases. YAML tags end the walk with an error.
macro_rules! visit_other_kinds {
    () => {
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Bool(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Number(v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Number(v.to_string()))
        }
        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Number(v.to_string()))
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Number(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Number(v.to_string()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Null)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            let n = self.walk.node()?;
            self.found(n, $crate::desired::walk::Found::Null)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let n = self.walk.node()?;
            // Skipped unread: `IgnoredAny` does not follow aliases.
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            self.found(n, $crate::desired::walk::Found::List)
        }
        fn visit_enum<A: serde::de::EnumAccess<'de>>(
            self,
            _data: A,
        ) -> Result<Self::Value, A::Error> {
            self.walk.node::<A::Error>()?;
            Err(serde::de::Error::custom(
                "YAML tags (`!name value`) are not supported; remove the tag",
            ))
        }
    };
}
pub(crate) use visit_other_kinds;

/// A map key, read as its literal text whatever it looks like (`123`, `true`, `~`):
/// account ids are often numeric, and `0123` must stay `0123`.
pub(crate) struct KeySeed<'w> {
    pub walk: &'w mut Walk,
}

impl<'de> de::DeserializeSeed<'de> for KeySeed<'_> {
    type Value = (u32, Cow<'de, str>);

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for KeySeed<'_> {
    type Value = (u32, Cow<'de, str>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a plain key (text)")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok((self.walk.node()?, Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((self.walk.node()?, Cow::Owned(v.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_stops_a_walk() {
        let mut w = Walk::new(0);
        for _ in 0..1000 {
            w.node::<serde_yaml::Error>().unwrap();
        }
        let err = w.node::<serde_yaml::Error>().unwrap_err();
        assert!(err.to_string().contains("alias bomb"), "{err}");
    }

    #[test]
    fn problems_are_capped_then_counted() {
        let mut w = Walk::new(10);
        for i in 0..(MAX_PROBLEMS_PER_FILE as u32 + 7) {
            w.problem(Problem::new(i, "x"));
        }
        assert_eq!(w.problems.len(), MAX_PROBLEMS_PER_FILE);
        assert_eq!(w.more, 7);
    }

    #[test]
    fn a_locating_walk_stops_at_its_target_and_records_nothing() {
        let mut w = Walk::locating(100, 2);
        assert_eq!(w.node::<serde_yaml::Error>().unwrap(), 0);
        w.problem(Problem::new(0, "x"));
        assert_eq!(w.node::<serde_yaml::Error>().unwrap(), 1);
        assert!(w.node::<serde_yaml::Error>().is_err());
        assert!(!w.has_problems());
    }

    #[test]
    fn hard_errors_carry_their_location_once() {
        let err = serde_yaml::from_str::<serde::de::IgnoredAny>("a: [1,\nb: 2\n").unwrap_err();
        let d = hard_error(Path::new("f.yaml"), "", &err);
        assert!(d.line > 0 && d.column > 0, "{d}");
        let own = format!("at line {} column {}", d.line, d.column);
        assert!(!d.message.contains(&own), "{}", d.message);
    }
}
