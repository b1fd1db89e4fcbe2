//! Value policies (DESIGN.md §11): what each attribute may hold and which tags exist, so a
//! typo (`tier: glod`) is refused before it becomes a new push segment.
//!
//! Pure: a [`Policy`] is a sorted list of allowed values or an anchored regular expression
//! (the `regex` crate: linear time, no backtracking blow-up, a capped compiled size).
//! The project-file loader builds them, the users-file walk checks each value as it reads it,
//! and `import`/`drift` check live values. Nothing here knows YAML, the store or the API.

use std::fmt;

use std::collections::BTreeMap;

use crate::model::{Account, NameIdx, Names};

/// The compiled size a pattern may take. Values are at most 50 bytes, so no honest pattern
/// comes near it; a hostile one (`\w{1000}{1000}`) is refused instead of eating memory.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// What an attribute value or a tag may be.
#[derive(Clone)]
pub enum Policy {
    /// One of these values, sorted and distinct (a binary search per value).
    Values(Box<[Box<str>]>),
    /// A regular expression the whole value must match.
    Pattern(Pattern),
}

/// A regular expression as written, and compiled anchored (`^(?:…)$`) once.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source` so that it matches whole values only. The pattern is checked on its
    /// own first: `a)|(b` is an error, not `^(?:a)|(b)$` (which would match any value ending
    /// in b).
    pub fn new(source: &str) -> Result<Pattern, String> {
        let build = |p: &str| {
            regex::RegexBuilder::new(p)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
        };
        build(source).map_err(|e| pattern_error(&e))?;
        let regex = build(&format!("^(?:{source})$")).map_err(|e| pattern_error(&e))?;
        Ok(Pattern {
            source: source.to_owned(),
            regex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A regex error in one line: the syntax error's last line (`error: unclosed group`) with
/// the part of the pattern it points at, or the size cap.
fn pattern_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let what = lines
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or("invalid syntax");
            // The regex crate shows the pattern and carets under the bad part.
            let pointed = lines
                .iter()
                .position(|l| l.trim_start().starts_with('^') && l.trim().chars().all(|c| c == '^'))
                .and_then(|i| {
                    let pattern = lines.get(i.checked_sub(1)?)?;
                    let carets = lines[i];
                    let start = carets.find('^')?;
                    let end = carets.rfind('^')? + 1;
                    pattern.get(start..end).map(str::to_owned)
                });
            match pointed {
                Some(p) if !p.trim().is_empty() => format!("{what} (at `{p}`)"),
                _ => what.to_owned(),
            }
        }
        regex::Error::CompiledTooBig(limit) => format!(
            "it compiles to more than {limit} bytes; values are at most 50 bytes, so write a simpler pattern"
        ),
        other => other.to_string(),
    }
}

impl Policy {
    /// A `values` policy: sorted and deduplicated here.
    pub fn values<S: Into<Box<str>>>(values: impl IntoIterator<Item = S>) -> Policy {
        let mut v: Vec<Box<str>> = values.into_iter().map(Into::into).collect();
        v.sort_unstable();
        v.dedup();
        Policy::Values(v.into_boxed_slice())
    }

    /// Whether `value` is allowed.
    pub fn allows(&self, value: &str) -> bool {
        match self {
            Policy::Values(v) => v.binary_search_by(|x| (**x).cmp(value)).is_ok(),
            Policy::Pattern(p) => p.regex.is_match(value),
        }
    }

    /// The allowed value `value` was probably meant to be (`glod` → `gold`).
    pub fn did_you_mean(&self, value: &str) -> Option<&str> {
        match self {
            Policy::Values(v) => crate::suggest::did_you_mean(value, v.iter().map(|s| &**s)),
            Policy::Pattern(_) => None,
        }
    }

    /// The policy in a few words for messages and reports: `one of: free, gold, vip` or
    /// `pattern: ^[a-z]+$`.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Values(v) => {
                f.write_str("one of: ")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(x)?;
                }
                Ok(())
            }
            Policy::Pattern(p) => write!(f, "pattern: {}", p.source),
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Policy({self})")
    }
}

/// Two policies are equal when they allow the same written values or the same pattern text.
impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Policy::Values(a), Policy::Values(b)) => a == b,
            (Policy::Pattern(a), Policy::Pattern(b)) => a.source == b.source,
            _ => false,
        }
    }
}

/// The project's policies: one per declared attribute (by its index among the declared
/// names), and one for tags. Empty for a plain list of names: nothing is checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policies {
    attrs: Vec<Option<Policy>>,
    tags: Option<Policy>,
}

impl Policies {
    /// `attrs[i]` is the policy of the `i`-th declared attribute.
    pub fn new(attrs: Vec<Option<Policy>>, tags: Option<Policy>) -> Policies {
        let attrs = if attrs.iter().all(Option::is_none) {
            Vec::new()
        } else {
            attrs
        };
        Policies { attrs, tags }
    }

    /// These policies with `tags` as the policy of tags.
    pub fn with_tags(mut self, tags: Policy) -> Policies {
        self.tags = Some(tags);
        self
    }

    /// The policy of a declared attribute, if it has one.
    pub fn attr(&self, idx: NameIdx) -> Option<&Policy> {
        self.attrs.get(usize::from(idx))?.as_ref()
    }

    /// The policy of tags, if the project has one.
    pub fn tags(&self) -> Option<&Policy> {
        self.tags.as_ref()
    }

    /// Whether nothing is checked.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.tags.is_none()
    }
}

/// What a live value outside its policy belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// The attribute of that name.
    Attribute(String),
    /// A tag (the value is the tag).
    Tag,
}

/// A live value or tag outside the project's policy (reported by `import` and `drift`, which
/// still record or compare it as it is: the live app is what it is).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub account: Account,
    pub subject: Subject,
    pub value: String,
    /// The policy in words ([`Policy::describe`]).
    pub policy: String,
}

impl Policies {
    /// The live values of `account` that their declared attribute's policy refuses.
    pub fn check_live_attrs(
        &self,
        account: &str,
        live: Option<&BTreeMap<String, String>>,
        names: &Names,
        out: &mut Vec<Violation>,
    ) {
        let Some(live) = live.filter(|_| !self.attrs.is_empty()) else {
            return;
        };
        for (i, policy) in self.attrs.iter().enumerate() {
            let Some(policy) = policy else { continue };
            let Ok(idx) = NameIdx::try_from(i) else { break };
            let Some(value) = live.get(names.get(idx)) else {
                continue;
            };
            if !policy.allows(value) {
                out.push(Violation {
                    account: account.into(),
                    subject: Subject::Attribute(names.get(idx).to_owned()),
                    value: value.clone(),
                    policy: policy.describe(),
                });
            }
        }
    }

    /// The live tags of `account` that the tags policy refuses: every tag read, since a tag
    /// set by hand or by another system lands in a push segment all the same.
    pub fn check_live_tags(
        &self,
        account: &str,
        live: Option<&[String]>,
        out: &mut Vec<Violation>,
    ) {
        let Some(policy) = &self.tags else { return };
        for tag in live.unwrap_or_default() {
            if !policy.allows(tag) {
                out.push(Violation {
                    account: account.into(),
                    subject: Subject::Tag,
                    value: tag.clone(),
                    policy: policy.describe(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_a_sorted_lookup_with_did_you_mean() {
        let p = Policy::values(["vip", "free", "gold", "free"]);
        assert_eq!(p.describe(), "one of: free, gold, vip");
        assert!(p.allows("gold") && p.allows("free") && p.allows("vip"));
        assert!(!p.allows("glod") && !p.allows("Gold") && !p.allows(""));
        assert_eq!(p.did_you_mean("glod"), Some("gold"));
        assert_eq!(p.did_you_mean("zzz"), None);
    }

    #[test]
    fn a_pattern_matches_the_whole_value() {
        let p = Policy::Pattern(Pattern::new("[A-Z][a-z]+").unwrap());
        assert!(p.allows("Berlin"));
        for bad in ["berlin", "xBerlin", "Berlin1", "Berlin\n", ""] {
            assert!(!p.allows(bad), "{bad:?}");
        }
        // Alternatives are anchored as a whole, not only the first and the last.
        let p = Policy::Pattern(Pattern::new("a|b").unwrap());
        assert!(p.allows("a") && p.allows("b") && !p.allows("ab") && !p.allows("xb"));
        // The user's own anchors change nothing.
        let p = Policy::Pattern(Pattern::new("^[a-z]+$").unwrap());
        assert!(p.allows("abc") && !p.allows("ab1"));
        assert_eq!(p.describe(), "pattern: ^[a-z]+$");
        assert_eq!(p.did_you_mean("x"), None);
    }

    #[test]
    fn a_pattern_cannot_break_out_of_its_anchors() {
        // Valid once wrapped (`^(?:a)|(b)$`), but not on its own: refused.
        let err = Pattern::new("a)|(b").unwrap_err();
        assert!(err.contains("unopened group"), "{err}");
    }

    #[test]
    fn invalid_patterns_say_what_and_where() {
        let err = Pattern::new("[a-").unwrap_err();
        assert!(err.contains("unclosed character class"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = Pattern::new("a{2,1}").unwrap_err();
        assert!(err.contains("invalid repetition count range"), "{err}");
        assert!(err.contains("`{2,1}`"), "{err}");
    }

    #[test]
    fn a_hostile_pattern_is_refused_not_compiled() {
        let err = Pattern::new(r"\w{1000}{1000}").unwrap_err();
        assert!(err.contains("more than"), "{err}");
        // Linear time: a classic catastrophic-backtracking pattern answers at once.
        let p = Pattern::new("(a+)+b").unwrap();
        assert!(!Policy::Pattern(p).allows(&"a".repeat(50)));
    }

    #[test]
    fn plain_lists_have_no_policies() {
        let p = Policies::new(vec![None, None], None);
        assert!(p.is_empty());
        assert_eq!(p.attr(1), None);
        let p = Policies::new(vec![None, Some(Policy::values(["x"]))], None);
        assert!(!p.is_empty());
        assert!(p.attr(1).is_some() && p.attr(0).is_none() && p.attr(9).is_none());
    }

    #[test]
    fn live_values_and_tags_outside_the_policy_are_found() {
        let names = Names::new(&["sex".into(), "tier".into()]);
        let p = Policies::new(vec![None, Some(Policy::values(["free", "gold"]))], None)
            .with_tags(Policy::Pattern(Pattern::new("[a-z]+").unwrap()));
        let live: BTreeMap<String, String> = [("sex", "?"), ("tier", "glod"), ("other", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut out = Vec::new();
        p.check_live_attrs("u1", Some(&live), &names, &mut out);
        p.check_live_attrs("u2", None, &names, &mut out);
        p.check_live_tags("u1", Some(&["ok".into(), "Bad".into()]), &mut out);
        let shown: Vec<String> = out
            .iter()
            .map(|v| format!("{} {:?} {} ({})", v.account, v.subject, v.value, v.policy))
            .collect();
        assert_eq!(
            shown,
            [
                "u1 Attribute(\"tier\") glod (one of: free, gold)",
                "u1 Tag Bad (pattern: [a-z]+)",
            ]
        );
        let mut none = Vec::new();
        Policies::default().check_live_attrs("u1", Some(&live), &names, &mut none);
        Policies::default().check_live_tags("u1", Some(&["Bad".into()]), &mut none);
        assert!(none.is_empty());
    }
}
