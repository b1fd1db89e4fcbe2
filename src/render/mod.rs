//! The output layer: views of a plan, of a drift report and of an apply, written to
//! `impl Write` (large plans stream instead of being built in memory first). Text for people,
//! JSON for programs, markdown for pull-request comments; [`progress`] is the apply's
//! progress display on stderr.

pub mod ci;
pub mod doctor;
pub mod drift;
pub mod json;
pub mod markdown;
pub mod output;
pub mod policy;
pub mod progress;
pub mod report;
pub mod text;

/// The output formats of `plan` and `drift` (`cli` maps its flag onto this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Markdown,
}

/// The changed characters of a long value: bold, underlined, in `color`.
fn highlight(color: anstyle::AnsiColor) -> anstyle::Style {
    anstyle::Style::new()
        .bold()
        .underline()
        .fg_color(Some(color.into()))
}

/// How text output may decorate itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// `s` in `style` when colours are on (anstyle writes the escape codes).
    pub fn paint(&self, style: anstyle::Style, s: &str) -> String {
        if self.color {
            format!("{style}{s}{style:#}")
        } else {
            s.to_owned()
        }
    }
    fn fg(&self, color: anstyle::AnsiColor, s: &str) -> String {
        self.paint(anstyle::Style::new().fg_color(Some(color.into())), s)
    }
    pub fn green(&self, s: &str) -> String {
        self.fg(anstyle::AnsiColor::Green, s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.fg(anstyle::AnsiColor::Yellow, s)
    }
    pub fn red(&self, s: &str) -> String {
        self.fg(anstyle::AnsiColor::Red, s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint(anstyle::Style::new().bold(), s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint(anstyle::Style::new().dimmed(), s)
    }
}

use crate::escape::push_escape;
pub use crate::escape::{escape, escape_text, is_unsafe};

/// A value as the text views quote it: always in double quotes (so no value can pass for a
/// label such as `(removed)`), quotes and backslashes escaped, and the characters of
/// [`is_unsafe`] escaped.
pub fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_unsafe(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `1 user`, `2 users`: a count with the noun that agrees with it.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the views of a plan need besides the plan: the pace of the requests and the
/// mass-removal threshold of the project (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanContext {
    pub rate: u32,
    pub max_removal_percent: f64,
}

/// Why `apply` would refuse `plan` against `max_removal_percent`, phrased for the reviewer,
/// when it would (DESIGN.md §4). An account losing a tag counts as losing something, and the
/// reason says so when the plan removes tags.
pub fn mass_removal(plan: &crate::plan::Plan, max_removal_percent: f64) -> Option<String> {
    let s = plan.safety(max_removal_percent);
    s.apply_refuses.then(|| {
        let what = if plan.summary().tags_removed > 0 {
            "attribute values or tags"
        } else {
            "attribute values"
        };
        let share = if s.every_account {
            format!(
                "every one of the {} managed users (any number of users counts when it is all of them)",
                s.managed
            )
        } else {
            format!(
                "{} of {} managed users ({:.1}%, more than max_removal_percent {}%)",
                s.losing, s.managed, s.removal_percent, s.max_removal_percent
            )
        };
        format!(
            "this plan removes {what} from {share}: check for an emptied or mis-globbed users file; if the removal is intended, `timattr apply --allow-mass-removal` is the reviewed override"
        )
    })
}

/// A tag as the text views write it: bare when that is unambiguous, quoted like a value when
/// it holds whitespace, quotes, backslashes or the characters of [`is_unsafe`].
pub fn tag(t: &str) -> String {
    let plain = !t.is_empty()
        && t.chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '\\' && !is_unsafe(c));
    if plain {
        t.to_owned()
    } else {
        quote(t)
    }
}

/// `+vip -old`: the tags a change adds and removes, added first, on a colour terminal green
/// and red like the other `+` and `-`.
pub fn tag_edits(tags: &crate::plan::TagChange, style: Style) -> String {
    let added = tags
        .add
        .iter()
        .map(|t| style.green(&format!("+{}", tag(t))));
    let removed = tags
        .remove
        .iter()
        .map(|t| style.red(&format!("-{}", tag(t))));
    added.chain(removed).collect::<Vec<_>>().join(" ")
}

/// `3 tags added, 1 removed`, `1 tag removed`: the tag counts of a summary line, `None` when
/// there are none (the summary of a plan without tag changes stays as it was).
pub fn tag_counts(added: usize, removed: usize) -> Option<String> {
    match (added, removed) {
        (0, 0) => None,
        (a, 0) => Some(format!("{} added", count(a, "tag", "tags"))),
        (0, r) => Some(format!("{} removed", count(r, "tag", "tags"))),
        (a, r) => Some(format!("{} added, {r} removed", count(a, "tag", "tags"))),
    }
}

/// The `--target` patterns of a partial plan, as the views name them.
pub fn targets_text(targets: &[String]) -> String {
    let quoted: Vec<String> = targets.iter().map(|t| quote(t)).collect();
    quoted.join(", ")
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
            similar::ChangeTag::Delete => {
                left.push_str(&style.paint(highlight(anstyle::AnsiColor::Red), s))
            }
            similar::ChangeTag::Insert => {
                right.push_str(&style.paint(highlight(anstyle::AnsiColor::Green), s))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped_and_quoting_is_unambiguous() {
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            escape("x\u{202e}y\u{9b}z\u{7f}"),
            "x\\u{202e}y\\u{9b}z\\x7f"
        );
        assert!(matches!(
            escape("plain é 中"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(quote("(removed)"), "\"(removed)\"");
        assert_eq!(quote("a\"b\\\r"), "\"a\\\"b\\\\\\x0d\"");
        assert_eq!(
            escape_text("line 1\u{1b}[A\n\tcaret\u{2066}\n"),
            "line 1\\x1b[A\n\tcaret\\u{2066}\n"
        );
        assert_eq!(count(1, "user", "users"), "1 user");
        assert_eq!(count(0, "user", "users"), "0 users");
    }

    #[test]
    fn tags_are_bare_unless_that_would_be_ambiguous() {
        assert_eq!(tag("vip"), "vip");
        assert_eq!(tag("中文-tag_1"), "中文-tag_1");
        assert_eq!(tag("a b"), "\"a b\"");
        assert_eq!(tag("a\"b"), "\"a\\\"b\"");
        assert_eq!(tag("x\u{1b}[2J"), "\"x\\x1b[2J\"");
        assert_eq!(tag("\u{202e}gold"), "\"\\u{202e}gold\"");
        let change = crate::plan::TagChange {
            add: ["vip", "a b"].into_iter().collect(),
            remove: ["old"].into_iter().collect(),
        };
        assert_eq!(tag_edits(&change, Style::default()), "+\"a b\" +vip -old");
        assert_eq!(
            tag_edits(&change, Style { color: true }),
            "\x1b[32m+\"a b\"\x1b[0m \x1b[32m+vip\x1b[0m \x1b[31m-old\x1b[0m"
        );
        assert_eq!(tag_counts(0, 0), None);
        assert_eq!(tag_counts(1, 0).unwrap(), "1 tag added");
        assert_eq!(tag_counts(0, 2).unwrap(), "2 tags removed");
        assert_eq!(tag_counts(3, 1).unwrap(), "3 tags added, 1 removed");
    }
}
