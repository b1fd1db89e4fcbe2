//! Diagnostics for user input: a message anchored at `file:line:column`.
//!
//! Loaders collect every problem of a run into a [`Diagnostics`] list so that all of them are
//! shown together, not only the first. The first line of each is `file:line:column: error:
//! message` (editors, CI annotations and users grep it); below it, when the loader had the
//! text, the source line with a caret under the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    pub message: String,
    /// What the user can do about it.
    pub help: Option<String>,
    /// The source line of the problem and how many characters the caret underlines.
    pub source: Option<(String, usize)>,
}

impl Diagnostic {
    pub fn new(file: &Path, line: usize, column: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            help: None,
            source: None,
        }
    }

    /// Attaches the source line (as read) and the width of the problem on it.
    pub fn with_source(mut self, line: &str, width: usize) -> Self {
        self.source = Some((line.to_owned(), width.max(1)));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column`, as editors and CI annotations understand it.
    pub fn location(&self) -> String {
        // A file name that is not UTF-8 is shown with its bytes escaped (DESIGN.md §8).
        let file = crate::escape::path(&self.file);
        match (self.line, self.column) {
            (0, _) => file,
            (l, 0) => format!("{file}:{l}"),
            (l, c) => format!("{file}:{l}:{c}"),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.location(), self.message)?;
        if let Some((line, width)) = &self.source {
            if self.line > 0 && self.column > 0 {
                snippet(f, self.line, self.column, line, *width)?;
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// ```text
///   |
/// 3 |     city: 42
///   |           ^^
/// ```
/// Characters that could move the cursor or reorder the text are shown escaped, and the caret
/// is placed under the escaped text.
fn snippet(
    f: &mut fmt::Formatter<'_>,
    line: usize,
    column: usize,
    text: &str,
    width: usize,
) -> fmt::Result {
    let gutter = " ".repeat(line.to_string().len());
    let mut shown = String::with_capacity(text.len());
    let mut caret_at = None;
    let mut caret_end = None;
    for (i, c) in text.trim_end_matches(['\r', '\n']).chars().enumerate() {
        if i + 1 == column {
            caret_at = Some(shown.chars().count());
        }
        if i + 1 == column + width {
            caret_end = Some(shown.chars().count());
        }
        match c {
            '\t' => shown.push(' '),
            c if is_unsafe(c) => crate::escape::push_escape(&mut shown, c),
            c => shown.push(c),
        }
    }
    let len = shown.chars().count();
    let start = caret_at.unwrap_or(len);
    let end = caret_end.unwrap_or(len).max(start + 1);
    // A long line (a whole document on one line) is shown around the caret only.
    let from = start.saturating_sub(SNIPPET_CONTEXT);
    let to = (end + SNIPPET_CONTEXT).min(len);
    let mut window: String = shown.chars().skip(from).take(to - from).collect();
    let mut offset = start - from;
    if from > 0 {
        window.insert(0, '…');
        offset += 1;
    }
    if to < len {
        window.push('…');
    }
    let width = (end - start).min(2 * SNIPPET_CONTEXT);
    write!(
        f,
        "\n{gutter} |\n{line} | {window}\n{gutter} | {}{}",
        " ".repeat(offset),
        "^".repeat(width)
    )
}

/// Characters shown on each side of the problem in a source line.
const SNIPPET_CONTEXT: usize = 60;

use crate::escape::is_unsafe;

/// Every problem found in one run, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Sorts by file, line and column so output is stable however files were parsed.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{} found", if n == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_unchanged_and_a_caret_follows() {
        let d = Diagnostic::new(Path::new("u.yaml"), 3, 11, "value is a number")
            .with_source("    city: 42\n", 2)
            .with_help("quote it");
        assert_eq!(
            d.to_string(),
            "u.yaml:3:11: error: value is a number\n  |\n3 |     city: 42\n  |           ^^\n  help: quote it"
        );
    }

    #[test]
    fn hostile_characters_are_escaped_and_the_caret_follows_them() {
        let d = Diagnostic::new(Path::new("u.yaml"), 12, 9, "x")
            .with_source("  \u{1b}[2J: \u{202e}ab", 2);
        let shown = d.to_string();
        assert!(!shown.chars().any(is_unsafe_but_newline), "{shown:?}");
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[2], "12 |   \\x1b[2J: \\u{202e}ab");
        // Under the escaped U+202E (8 characters shown) and the `a` after it.
        assert_eq!(
            lines[3],
            format!("   | {}{}", " ".repeat(11), "^".repeat(9))
        );
    }

    #[test]
    fn a_long_line_is_shown_around_the_problem() {
        let line = format!("{}x{}", "[".repeat(5000), "]".repeat(5000));
        let d = Diagnostic::new(Path::new("u.yaml"), 1, 5001, "x").with_source(&line, 1);
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines[2],
            format!("1 | …{}x{}…", "[".repeat(60), "]".repeat(60))
        );
        assert_eq!(lines[3], format!("  | {}^", " ".repeat(61)));
    }

    fn is_unsafe_but_newline(c: char) -> bool {
        c != '\n' && is_unsafe(c)
    }
}
