//! The client of the API families (`v4/all_member_push`, spec `tim-api.md`; `v4/timpush`, spec
//! `timpush-api.md`): wire types (one module per family, [`family`] maps the nine operations to
//! each one's names), UserSig, error codes and classes, redaction. The only module that touches
//! reqwest.
//!
//! The client makes one attempt per call; pacing, retries and backoff belong to the limiter
//! ([`crate::limiter::Limiter::call`]), which decides from [`ApiError::class`] (through the
//! limiter's `Failure` trait) and honours `Retry-After`. The one exception is an expired
//! usersig (70001), which only the client can cure: it signs anew and resends that request once.
//!
//! Only a well-formed OK is a success (`answer`): the envelope, the command's payload and, for
//! reads, exactly the accounts asked about. An OK may carry an `ErrorList` of accounts that
//! failed (partial success, DESIGN.md §12): writes return them as [`Failed`] entries, reads
//! return the accounts answered 70107 as missing; an entry naming an account that was not in
//! the request, or one of a read with another code, makes the answer not OK. Anything else is an [`ApiError`] naming the command,
//! the endpoint's host and the attempts made. Answers are read up to a size cap, redirects are
//! not followed, and a slow answer is announced while it is awaited.
//!
//! An observer ([`Client::observe`]) is shown every answer as received ([`received`]), the key
//! and the usersig replaced; [`reach`] resolves the endpoint's host and tries its TLS handshake
//! before any request (`timattr doctor`).
//!
//! Secrets never leave this module in printable form: the key and the sig are [`Secret`]s, URLs
//! are logged without their query, errors carry codes and meanings, never the request, and
//! messages about an answer describe its shape instead of quoting it.

mod answer;
mod client;
pub mod codes;
pub mod family;
pub mod reach;
pub mod received;
mod secret;
pub mod usersig;
pub mod wire;
pub mod wire_timpush;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use client::{AttrSlots, Client, ClientConfig, Live};
pub use codes::{classify, fix, meaning, ErrorClass};
pub use family::{Command, Family};
pub use received::{Observer, Received};
pub use secret::Secret;

/// Fixed demo key shared by `endpoint: embedded` and its in-process emulator (not a secret:
/// the embedded emulator only listens on loopback inside the same process).
pub const DEMO_SECRET_KEY: &str = "timattr-embedded-demo-key-0000000000000000000000000000000000000";

pub use crate::clock::now_unix;

/// One account the API left out of an otherwise successful write (an `ErrorList` entry): not
/// applied, so never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub account: String,
    pub code: i64,
    /// The server's ErrorInfo for it (often empty), scrubbed like any server text.
    pub info: Box<str>,
}

/// The accounts of a write's answer that failed: empty on a full success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures {
    /// The command that answered (empty when nothing failed).
    pub command: &'static str,
    pub failed: Vec<Failed>,
}

impl Failures {
    pub fn is_empty(&self) -> bool {
        self.failed.is_empty()
    }
}

impl From<()> for Failures {
    fn from((): ()) -> Self {
        Failures::default()
    }
}

/// A failed API call: which command, against which host, after how many attempts, and what
/// went wrong. The host is the URL's host (and port) only: the query carries the usersig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub command: &'static str,
    /// `host[:port]` of the endpoint (shared with the client: errors stay small and cheap).
    pub host: Arc<str>,
    /// Requests sent for this call, retries included (set by whoever retries).
    pub attempts: u32,
    /// How long the server asked us to wait (`Retry-After` on HTTP 429/503, whole seconds,
    /// capped), if it did.
    pub retry_after_secs: Option<u32>,
    /// Boxed: errors travel inside run reports, which should stay small.
    pub kind: Box<ApiErrorKind>,
}

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// The server answered FAIL (or a non-zero ErrorCode) with this code. `info` is the
    /// server's ErrorInfo, scrubbed of the sig and key and of control characters.
    Code { code: i64, info: Box<str> },
    /// HTTP status other than 200 (redirects are not followed: they would carry the usersig
    /// to another host).
    Http(u16),
    /// No answer within the configured timeout.
    Timeout,
    /// Connecting, sending or reading failed (refused, reset, closed mid-answer, DNS, TLS).
    Connect(Box<str>),
    /// The endpoint's TLS certificate was not accepted (self-signed, expired, another name):
    /// not transient, so never retried.
    Certificate(Box<str>),
    /// An HTTP 200 whose body is not a well-formed answer of this command: not JSON, no
    /// envelope, the wrong payload, too large. Never a success.
    Decode(Box<str>),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ApiError {
            command,
            host,
            attempts,
            ..
        } = self;
        let tries = match attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        let advice = self.advice();
        write!(f, "{command}: {}", self.reason_short())?;
        if !host.is_empty() {
            write!(f, " from {host}")?;
        }
        write!(f, " after {tries}: {advice}")?;
        if let ApiErrorKind::Code { info, .. } = &*self.kind {
            if !info.is_empty() {
                write!(f, " (server said: {info})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// A failure of one attempt at `command`; the client adds its host with [`Self::at`].
    pub fn new(command: &'static str, kind: ApiErrorKind) -> Self {
        ApiError {
            command,
            host: Arc::from(""),
            attempts: 1,
            retry_after_secs: None,
            kind: Box::new(kind),
        }
    }

    /// The same failure, at `host`.
    pub fn at(mut self, host: Arc<str>) -> Self {
        self.host = host;
        self
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_secs
            .map(|s| Duration::from_secs(u64::from(s)))
    }

    /// What happened, in a few words (no advice): for retry lines and the start of messages.
    pub fn reason_short(&self) -> String {
        match &*self.kind {
            ApiErrorKind::Code { code, .. } => format!("error {code} ({})", meaning(*code)),
            ApiErrorKind::Http(s) if *s >= 500 => format!("server error: HTTP {s}"),
            ApiErrorKind::Http(429) => "rate limited: HTTP 429".to_owned(),
            ApiErrorKind::Http(s) if (300..400).contains(s) => {
                format!("redirect: HTTP {s} (not followed)")
            }
            ApiErrorKind::Http(s) => format!("unexpected status: HTTP {s}"),
            ApiErrorKind::Timeout => "timeout: no answer in time".to_owned(),
            ApiErrorKind::Connect(why) => format!("network error ({why})"),
            ApiErrorKind::Certificate(why) => format!("TLS certificate not accepted ({why})"),
            ApiErrorKind::Decode(why) => format!("malformed answer ({why})"),
        }
    }

    /// What the user should do.
    pub fn advice(&self) -> &'static str {
        const ENDPOINT: &str = "check that app.region / app.endpoint points at the Chat REST API";
        match &*self.kind {
            ApiErrorKind::Code { code, .. } => fix(*code),
            ApiErrorKind::Http(s) if *s >= 500 => {
                "the server kept failing; check the service status and app.region / app.endpoint, then run the command again later"
            }
            ApiErrorKind::Http(429) => "lower apply.rate_limit, or wait and run the command again",
            ApiErrorKind::Http(_) => ENDPOINT,
            ApiErrorKind::Timeout => {
                "check the network and app.region / app.endpoint, then run the command again"
            }
            ApiErrorKind::Connect(_) => {
                "check the network and app.region / app.endpoint, then run the command again"
            }
            ApiErrorKind::Certificate(_) => {
                "the endpoint's certificate is not trusted (self-signed, expired, or made for another host name); check app.region / app.endpoint — nothing was sent, and a certificate error is not retried"
            }
            ApiErrorKind::Decode(_) => {
                "nothing was recorded; check that app.region / app.endpoint points at the Chat REST API (not a proxy or login page), then run the command again"
            }
        }
    }

    /// How the caller should treat this failure (spec §3).
    pub fn class(&self) -> ErrorClass {
        match &*self.kind {
            ApiErrorKind::Code { code, .. } => classify(*code),
            ApiErrorKind::Http(429) => ErrorClass::SlowDown,
            ApiErrorKind::Http(s) if *s >= 500 => ErrorClass::Retry,
            ApiErrorKind::Http(_) | ApiErrorKind::Certificate(_) => ErrorClass::Fatal,
            ApiErrorKind::Timeout | ApiErrorKind::Connect(_) => ErrorClass::Retry,
            // A garbled 200 may be a flaky proxy; a few more tries, then it is fatal.
            ApiErrorKind::Decode(_) => ErrorClass::RetryFew,
        }
    }

    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<i64> {
        match &*self.kind {
            ApiErrorKind::Code { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl crate::limiter::Failure for ApiError {
    fn retry(&self) -> crate::limiter::Retry {
        use crate::limiter::Retry;
        match self.class() {
            ErrorClass::Retry => Retry::Backoff,
            ErrorClass::SlowDown => Retry::SlowDown,
            ErrorClass::RetryFew => Retry::Few,
            ErrorClass::RetryAfterMinute => Retry::OnceAfter(Duration::from_secs(60)),
            // RegenerateSig was already retried once by the client with a new sig.
            ErrorClass::RegenerateSig | ErrorClass::Fatal => Retry::Never,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        ApiError::retry_after(self)
    }

    fn label(&self) -> &str {
        self.command
    }

    fn reason(&self) -> String {
        format!("{} from {}", self.reason_short(), self.host)
    }

    fn set_attempts(&mut self, attempts: u32) {
        self.attempts = attempts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ApiErrorKind) -> ApiError {
        ApiError::new(wire::command::SET_ATTR, kind).at("adminapisgp.im.qcloud.com".into())
    }

    #[test]
    fn display_names_command_code_meaning_host_attempts_and_fix() {
        let mut e = err(ApiErrorKind::Code {
            code: 90033,
            info: "name x".into(),
        });
        assert_eq!(
            e.to_string(),
            format!(
                "im_set_attr: error 90033 ({}) from adminapisgp.im.qcloud.com after 1 attempt: {} (server said: name x)",
                meaning(90033),
                fix(90033)
            )
        );
        assert_eq!(e.code(), Some(90033));
        e.attempts = 3;
        assert!(e.to_string().contains("after 3 attempts"), "{e}");
        assert!(err(ApiErrorKind::Timeout).to_string().contains("timeout"));
    }

    #[test]
    fn a_persistent_server_error_is_not_called_temporary() {
        let mut e = err(ApiErrorKind::Http(500));
        e.attempts = 8;
        let text = e.to_string();
        assert!(
            text.starts_with(
                "im_set_attr: server error: HTTP 500 from adminapisgp.im.qcloud.com after 8 attempts"
            ),
            "{text}"
        );
        assert!(!text.contains("temporary"), "{text}");
        let redirect = err(ApiErrorKind::Http(302)).to_string();
        assert!(redirect.contains("redirect: HTTP 302"), "{redirect}");
        let garbled = err(ApiErrorKind::Decode("no envelope".into())).to_string();
        assert!(
            garbled.contains("malformed answer (no envelope)"),
            "{garbled}"
        );
        assert!(garbled.contains("nothing was recorded"), "{garbled}");
    }

    #[test]
    fn classes_of_network_failures() {
        assert_eq!(err(ApiErrorKind::Http(502)).class(), ErrorClass::Retry);
        assert_eq!(err(ApiErrorKind::Http(503)).class(), ErrorClass::Retry);
        assert_eq!(err(ApiErrorKind::Http(429)).class(), ErrorClass::SlowDown);
        assert_eq!(err(ApiErrorKind::Http(404)).class(), ErrorClass::Fatal);
        assert_eq!(err(ApiErrorKind::Http(301)).class(), ErrorClass::Fatal);
        assert_eq!(err(ApiErrorKind::Timeout).class(), ErrorClass::Retry);
        assert_eq!(
            err(ApiErrorKind::Connect("reset".into())).class(),
            ErrorClass::Retry
        );
        assert_eq!(
            err(ApiErrorKind::Decode("x".into())).class(),
            ErrorClass::RetryFew
        );
        let code = |c| {
            err(ApiErrorKind::Code {
                code: c,
                info: "".into(),
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
