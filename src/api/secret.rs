//! A string that must never be printed: the SecretKey, and the UserSig made from it.
//!
//! Redaction is by type: `Debug` and `Display` print `(redacted)`, so a secret inside any struct
//! that derives `Debug` (a config, an error, a log field) stays hidden. The value is only reachable
//! through [`Secret::expose`], which makes every place that needs the real bytes easy to find.

use std::fmt;

/// A secret string; see the module docs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Also registers the value with [`crate::redact`]: from now on no output shows it.
    pub fn new(value: String) -> Self {
        crate::redact::register(&value);
        Secret(value)
    }

    /// The real value. Only for signing, and for putting the sig into the request URL.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("hunter2-key".into());
        assert_eq!(format!("{s:?}"), "(redacted)");
        assert_eq!(format!("{s}"), "(redacted)");
        assert_eq!(format!("{:#?}", Some(&s)), "Some(\n    (redacted),\n)");
        assert_eq!(s.expose(), "hunter2-key");
    }
}
