//! Problems found while walking a file, and their diagnostics with the source line.
//!
//! A walk records problems at the positions the parser gave, without stopping, so one pass
//! finds every problem of a file (at most [`MAX_PROBLEMS_PER_FILE`], then a count).

use std::path::Path;

use super::events::{Hard, Pos};
use crate::diag::Diagnostic;

/// Problems collected per file; beyond this they are only counted.
pub(crate) const MAX_PROBLEMS_PER_FILE: usize = 100;

/// A problem at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub pos: Pos,
    pub message: String,
    pub help: Option<String>,
    /// An earlier position the message refers to (the first definition of a duplicate); it
    /// is appended to the message.
    pub first: Option<Pos>,
}

impl Problem {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Problem {
            pos,
            message: message.into(),
            help: None,
            first: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn first_at(mut self, pos: Pos) -> Self {
        self.first = Some(pos);
        self
    }
}

impl From<Hard> for Problem {
    fn from(h: Hard) -> Self {
        let p = Problem::new(h.pos, h.message);
        match h.help {
            Some(help) => p.help(help),
            None => p,
        }
    }
}

/// The problems of one file: the first [`MAX_PROBLEMS_PER_FILE`], then a count.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub list: Vec<Problem>,
    pub more: usize,
}

impl Problems {
    pub fn push(&mut self, p: Problem) {
        if self.list.len() < MAX_PROBLEMS_PER_FILE {
            self.list.push(p);
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.more == 0
    }

    /// The diagnostics of `file` (whose text is `text`), in file order, each with its source
    /// line, then the count of those left out.
    pub fn into_diagnostics(self, file: &Path, text: &str) -> Vec<Diagnostic> {
        let mut list = self.list;
        // Found in walk order (a repeated key only at the end of its map): shown in file order.
        list.sort_by_key(|p| p.pos);
        let lines = source_lines(text, list.iter().map(|p| p.pos.line));
        let mut out: Vec<Diagnostic> = list
            .into_iter()
            .map(|p| {
                let mut message = p.message;
                if let Some(first) = p.first {
                    let at = at(file, first).location();
                    message = format!("{message} (first at {at})");
                }
                let mut d = at(file, p.pos);
                d.message = message;
                d.help = p.help;
                attach_source(d, &lines)
            })
            .collect();
        if self.more > 0 {
            out.push(more_problems(file, self.more));
        }
        out
    }
}

/// An empty diagnostic at `pos` of `file`.
pub(crate) fn at(file: &Path, pos: Pos) -> Diagnostic {
    Diagnostic::new(file, pos.line as usize, pos.col as usize, "")
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

/// The text of the wanted lines (1-based), found in one pass over `text`.
pub(crate) fn source_lines(text: &str, wanted: impl Iterator<Item = u32>) -> Vec<(u32, String)> {
    let mut wanted: Vec<u32> = wanted.filter(|&l| l > 0).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut out = Vec::with_capacity(wanted.len());
    let mut want = wanted.into_iter().peekable();
    for (i, line) in text.split('\n').enumerate() {
        let Some(&next) = want.peek() else { break };
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if n == next {
            out.push((n, line.strip_prefix('\u{feff}').unwrap_or(line).to_owned()));
            want.next();
        }
    }
    out
}

/// Adds the source line, with a caret as wide as the token at the column.
pub(crate) fn attach_source(d: Diagnostic, lines: &[(u32, String)]) -> Diagnostic {
    let Ok(i) = lines.binary_search_by_key(&(d.line as u32), |(l, _)| *l) else {
        return d;
    };
    let line = &lines[i].1;
    let width = token_width(line, d.column);
    d.with_source(line, width)
}

/// The width in characters of the token starting at `column` (1-based): a quoted scalar to
/// its closing quote, anything else up to a space or a flow indicator.
fn token_width(line: &str, column: usize) -> usize {
    let mut chars = line.chars().skip(column.saturating_sub(1));
    let Some(first) = chars.next() else { return 1 };
    if first == '"' || first == '\'' {
        let rest = chars.position(|c| c == first).map_or(0, |p| p + 1);
        return 1 + rest;
    }
    1 + chars
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
        .count()
}

/// A hard error of a file as a diagnostic with its source line.
pub(crate) fn hard_diagnostic(file: &Path, text: &str, h: Hard) -> Diagnostic {
    let lines = source_lines(text, std::iter::once(h.pos.line));
    let mut d = at(file, h.pos);
    d.message = h.message;
    d.help = h.help;
    attach_source(d, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_capped_then_counted() {
        let mut p = Problems::default();
        for i in 0..(MAX_PROBLEMS_PER_FILE as u32 + 7) {
            p.push(Problem::new(Pos { line: i, col: 1 }, "x"));
        }
        assert_eq!(p.list.len(), MAX_PROBLEMS_PER_FILE);
        assert_eq!(p.more, 7);
    }

    #[test]
    fn diagnostics_are_in_file_order_with_source_and_first_place() {
        let mut p = Problems::default();
        p.push(Problem::new(Pos { line: 3, col: 5 }, "b").first_at(Pos { line: 2, col: 5 }));
        p.push(Problem::new(Pos { line: 1, col: 8 }, "a"));
        let d = p.into_diagnostics(
            Path::new("f.yaml"),
            "users:\n  u: {}\n    \"quoted x\": 1\n",
        );
        assert_eq!(d[0].location(), "f.yaml:1:8");
        assert_eq!(d[1].message, "b (first at f.yaml:2:5)");
        assert_eq!(d[1].source, Some(("    \"quoted x\": 1".to_owned(), 10)));
    }

    #[test]
    fn token_widths() {
        assert_eq!(token_width("  city: 42}", 9), 2);
        assert_eq!(token_width("  city: 'a b'", 9), 5);
        assert_eq!(token_width("x", 5), 1);
    }
}
