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
    /// The source line of the problem and how many characters the caret underlines: at most
    /// [`KEPT_AROUND`] characters on each side of the problem (a 50 MB line is not copied).
    pub source: Option<(String, usize)>,
    /// Characters of the line left out before `source`, and whether some were left out after.
    pub source_cut: (usize, bool),
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
            source_cut: (0, false),
        }
    }

    /// Attaches the source line (as read) and the width of the problem on it; only the part
    /// around the problem is kept.
    pub fn with_source(mut self, line: &str, width: usize) -> Self {
        let line = line.trim_end_matches(['\r', '\n']);
        let width = width.max(1);
        let from = self.column.saturating_sub(1).saturating_sub(KEPT_AROUND);
        let keep = self.column.saturating_sub(1) - from + width + KEPT_AROUND;
        let mut chars = line.chars().skip(from);
        let kept: String = chars.by_ref().take(keep).collect();
        self.source_cut = (from, chars.next().is_some());
        self.source = Some((kept, width));
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
                let (before, after) = self.source_cut;
                let column = self.column - before;
                snippet(f, self.line, (column, *width), line, (before > 0, after))?;
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
/// Characters that could move the cursor or reorder the text are shown escaped, tabs are
/// expanded to the next multiple of 8, and the caret is placed under the text as shown. At
/// most [`MAX_COLUMNS`] columns are shown, cut with `…` around the problem.
fn snippet(
    f: &mut fmt::Formatter<'_>,
    line: usize,
    (column, width): (usize, usize),
    text: &str,
    (cut_before, cut_after): (bool, bool),
) -> fmt::Result {
    let gutter = " ".repeat(line.to_string().len());
    let mut shown: Vec<char> = Vec::with_capacity(text.len());
    let mut caret_at = None;
    let mut caret_end = None;
    let mut escaped = String::new();
    for (i, c) in text.chars().enumerate() {
        if i + 1 == column {
            caret_at = Some(shown.len());
        }
        if i + 1 == column + width {
            caret_end = Some(shown.len());
        }
        match c {
            '\t' => shown.extend(std::iter::repeat_n(' ', TAB - shown.len() % TAB)),
            c if is_unsafe(c) => {
                escaped.clear();
                crate::escape::push_escape(&mut escaped, c);
                shown.extend(escaped.chars());
            }
            c => shown.push(c),
        }
    }
    let len = shown.len();
    let start = caret_at.unwrap_or(len);
    let end = caret_end.unwrap_or(len).max(start + 1);
    // The problem and what surrounds it, in at most MAX_COLUMNS columns with the `…`s.
    let room = MAX_COLUMNS - 2;
    let caret = (end - start).min(room / 2);
    let mut from = start.saturating_sub((room - caret) / 2);
    let to = (from + room).min(len);
    from = from.min(to.saturating_sub(room));
    let mut window: String = shown[from..to].iter().collect();
    let mut offset = start - from;
    if from > 0 || cut_before {
        window.insert(0, '…');
        offset += 1;
    }
    if to < len || cut_after {
        window.push('…');
    }
    write!(
        f,
        "\n{gutter} |\n{line} | {window}\n{gutter} | {}{}",
        " ".repeat(offset),
        "^".repeat(caret.min(to.saturating_sub(start)).max(1))
    )
}

/// The most columns of a source line an excerpt shows (DESIGN.md §8).
pub const MAX_COLUMNS: usize = 200;
/// Characters of a source line kept on each side of the problem.
const KEPT_AROUND: usize = MAX_COLUMNS;
/// Tab stops every this many columns.
const TAB: usize = 8;

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
    fn a_long_line_is_shown_around_the_problem_in_at_most_200_columns() {
        let line = format!("{}x{}", "[".repeat(5000), "]".repeat(5000));
        let d = Diagnostic::new(Path::new("u.yaml"), 1, 5001, "x").with_source(&line, 1);
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines[2],
            format!("1 | …{}x{}…", "[".repeat(98), "]".repeat(99))
        );
        assert_eq!(lines[2].chars().count(), 4 + MAX_COLUMNS);
        assert_eq!(lines[3], format!("  | {}^", " ".repeat(99)));
        // A problem near the start of a long line, and one near its end.
        let d = Diagnostic::new(Path::new("u.yaml"), 1, 3, "x").with_source(&line, 1);
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[2], format!("1 | {}…", "[".repeat(198)));
        assert_eq!(lines[3], "  |   ^");
        let d = Diagnostic::new(Path::new("u.yaml"), 1, 10_000, "x").with_source(&line, 2);
        let lines: Vec<String> = d.to_string().lines().map(str::to_owned).collect();
        assert_eq!(lines[2], format!("1 | …{}", "]".repeat(198)));
        assert_eq!(lines[3], format!("  | {}^^", " ".repeat(197)));
    }

    #[test]
    fn a_huge_line_is_not_kept_whole() {
        let line = "a".repeat(50 << 20);
        let d = Diagnostic::new(Path::new("u.yaml"), 1, 25 << 20, "x").with_source(&line, 3);
        let kept = d.source.as_ref().unwrap().0.len();
        assert!(kept <= 3 * MAX_COLUMNS, "{kept}");
        let shown = d.to_string();
        assert!(shown.len() < 1000, "{}", shown.len());
    }

    #[test]
    fn tabs_are_expanded_and_the_caret_lines_up() {
        let d = Diagnostic::new(Path::new("u.yaml"), 2, 8, "x").with_source("\tcity:\t42", 2);
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines[2],
            format!("2 | {}city:{}42", " ".repeat(8), " ".repeat(3))
        );
        assert_eq!(lines[3], format!("  | {}^^", " ".repeat(16)));
    }

    fn is_unsafe_but_newline(c: char) -> bool {
        c != '\n' && is_unsafe(c)
    }
}
