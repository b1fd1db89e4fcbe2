//! The output layer: views of a plan, of a drift report and of an apply, written to
//! `impl Write` (large plans stream instead of being built in memory first). Text for people,
//! JSON for programs, markdown for pull-request comments; [`progress`] is the apply's
//! progress display on stderr.

pub mod drift;
pub mod json;
pub mod markdown;
pub mod output;
pub mod progress;
pub mod report;
pub mod text;

use std::fmt::Write as _;

/// The output formats of `plan` and `drift` (`cli` maps its flag onto this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Markdown,
}

/// How text output may decorate itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// A value as the text views quote it.
pub fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `"old" → "new"` with, on a colour terminal, the changed characters of long values
/// highlighted (inline diff).
pub fn old_to_new(old: Option<&str>, new: Option<&str>, style: Style) -> String {
    old_to_new_as(old, new, style, "(removed)")
}

/// [`old_to_new`], saying `gone` when there is no new value.
pub fn old_to_new_as(old: Option<&str>, new: Option<&str>, style: Style, gone: &str) -> String {
    match (old, new) {
        (Some(o), Some(n)) if style.color && o.chars().count() + n.chars().count() > 16 => {
            inline_diff(o, n, style)
        }
        (o, n) => format!(
            "{} → {}",
            o.map(|o| style.red(&quote(o)))
                .unwrap_or_else(|| style.dim("(unset)")),
            n.map(|n| style.green(&quote(n)))
                .unwrap_or_else(|| style.dim(gone))
        ),
    }
}

/// Both values quoted, the characters that differ underlined.
fn inline_diff(o: &str, n: &str, style: Style) -> String {
    let diff = similar::TextDiff::from_chars(o, n);
    let (mut left, mut right) = (String::from("\""), String::from("\""));
    for change in diff.iter_all_changes() {
        // Escaped like `quote` does, one piece at a time.
        let s = quote(change.value());
        let s = &s[1..s.len() - 1];
        match change.tag() {
            similar::ChangeTag::Equal => {
                left.push_str(&style.red(s));
                right.push_str(&style.green(s));
            }
            similar::ChangeTag::Delete => left.push_str(&style.paint("1;4;31", s)),
            similar::ChangeTag::Insert => right.push_str(&style.paint("1;4;32", s)),
        }
    }
    left.push('"');
    right.push('"');
    format!("{left} → {right}")
}

/// Seconds the requests take at `rate` per second, for the summary line.
pub fn seconds(requests: usize, rate: u32) -> f64 {
    requests as f64 / f64::from(rate.max(1))
}
