//! The client of the `v4/all_member_push` API family (spec `tim-api.md`): wire types, UserSig,
//! error codes and classes, redaction. The only module that touches reqwest.
//!
//! The client makes one attempt per call; pacing, retries and backoff belong to the limiter,
//! which decides from [`ApiError::class`]. The one exception is an expired usersig (70001),
//! which only the client can cure: it signs anew and resends that request once.
//!
//! Secrets never leave this module in printable form: the key and the sig are [`Secret`]s, URLs
//! are logged without their query, and errors carry codes and meanings, never the request.

mod client;
pub mod codes;
mod secret;
pub mod usersig;
pub mod wire;

use std::fmt;

pub use client::{Client, ClientConfig};
pub use codes::{classify, fix, meaning, ErrorClass};
pub use secret::Secret;

/// Fixed demo key shared by `endpoint: embedded` and its in-process emulator (not a secret:
/// the embedded emulator only listens on loopback inside the same process).
pub const DEMO_SECRET_KEY: &str = "timattr-embedded-demo-key-0000000000000000000000000000000000000";

/// A failed API call: which command, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {kind}")]
pub struct ApiError {
    pub command: &'static str,
    pub kind: ApiErrorKind,
}

/// What went wrong with a call. Display says the code, its meaning and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// The server answered FAIL with this code. `info` is the server's ErrorInfo (scrubbed of
    /// the sig and key by the client).
    Code { code: i64, info: String },
    /// HTTP status other than 200.
    Http(u16),
    /// No answer within the configured timeout.
    Timeout,
    /// Connecting, sending or reading failed (refused, reset, DNS, TLS).
    Connect(String),
    /// The answer was not the JSON we expected.
    Decode(String),
}

impl fmt::Display for ApiErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiErrorKind::Code { code, info } => {
                write!(f, "error {code} ({}): {}", meaning(*code), fix(*code))?;
                if !info.is_empty() {
                    write!(f, " (server said: {info})")?;
                }
                Ok(())
            }
            ApiErrorKind::Http(status) if *status >= 500 => write!(
                f,
                "HTTP {status} (server or gateway error): temporary network problem; run the command again"
            ),
            ApiErrorKind::Http(429) => write!(
                f,
                "HTTP 429 (too many requests): lower apply.rate_limit, or wait and run the command again"
            ),
            ApiErrorKind::Http(status) => write!(
                f,
                "HTTP {status} (unexpected status): check app.region / app.endpoint points at the Chat REST API"
            ),
            ApiErrorKind::Timeout => write!(
                f,
                "timeout (no answer in time): check the network and run the command again"
            ),
            ApiErrorKind::Connect(why) => write!(
                f,
                "network error ({why}): check the network and app.region / app.endpoint, then run the command again"
            ),
            ApiErrorKind::Decode(why) => write!(
                f,
                "unexpected response ({why}): check app.endpoint points at the Chat REST API; otherwise report a bug"
            ),
        }
    }
}

impl ApiError {
    pub fn new(command: &'static str, kind: ApiErrorKind) -> Self {
        ApiError { command, kind }
    }

    /// How the caller should treat this failure (spec §3).
    pub fn class(&self) -> ErrorClass {
        match &self.kind {
            ApiErrorKind::Code { code, .. } => classify(*code),
            ApiErrorKind::Http(429) => ErrorClass::SlowDown,
            ApiErrorKind::Http(s) if *s >= 500 => ErrorClass::Retry,
            ApiErrorKind::Http(_) => ErrorClass::Fatal,
            ApiErrorKind::Timeout | ApiErrorKind::Connect(_) => ErrorClass::Retry,
            // A 200 answer we cannot read is a wrong endpoint or a bug; resending will not help.
            ApiErrorKind::Decode(_) => ErrorClass::Fatal,
        }
    }

    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<i64> {
        match &self.kind {
            ApiErrorKind::Code { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ApiErrorKind) -> ApiError {
        ApiError::new(wire::command::SET_ATTR, kind)
    }

    #[test]
    fn display_names_command_code_meaning_and_fix() {
        let e = err(ApiErrorKind::Code {
            code: 90033,
            info: "name x".into(),
        });
        assert_eq!(
            e.to_string(),
            format!(
                "im_set_attr: error 90033 ({}): {} (server said: name x)",
                meaning(90033),
                fix(90033)
            )
        );
        assert_eq!(e.code(), Some(90033));
        assert!(err(ApiErrorKind::Http(502))
            .to_string()
            .starts_with("im_set_attr: HTTP 502"));
        assert!(err(ApiErrorKind::Timeout).to_string().contains("timeout"));
    }

    #[test]
    fn classes_of_network_failures() {
        assert_eq!(err(ApiErrorKind::Http(502)).class(), ErrorClass::Retry);
        assert_eq!(err(ApiErrorKind::Http(503)).class(), ErrorClass::Retry);
        assert_eq!(err(ApiErrorKind::Http(404)).class(), ErrorClass::Fatal);
        assert_eq!(err(ApiErrorKind::Timeout).class(), ErrorClass::Retry);
        assert_eq!(
            err(ApiErrorKind::Connect("reset".into())).class(),
            ErrorClass::Retry
        );
        assert_eq!(
            err(ApiErrorKind::Decode("x".into())).class(),
            ErrorClass::Fatal
        );
        let code = |c| {
            err(ApiErrorKind::Code {
                code: c,
                info: String::new(),
            })
            .class()
        };
        assert_eq!(code(91000), ErrorClass::Retry);
        assert_eq!(code(60007), ErrorClass::SlowDown);
        assert_eq!(code(70001), ErrorClass::RegenerateSig);
        assert_eq!(code(70050), ErrorClass::RetryAfterMinute);
        assert_eq!(code(90009), ErrorClass::Fatal);
        assert_eq!(err(ApiErrorKind::Timeout).code(), None);
    }
}
