//! Reading an answer: what counts as success, what a `Retry-After` asks, and what of the
//! server's text may reach a message. Pure functions, no I/O.
//!
//! Only a well-formed OK is a success: a JSON object with `"ActionStatus":"OK"` and
//! `"ErrorCode":0`, plus the command's documented payload. Anything else (`{}`, `[]`, `null`,
//! truncated JSON, a payload of the wrong type) is [`Problem::Malformed`], never a success.
//! Messages are built here from the shape of the answer, never by quoting it: a hostile or
//! broken server could echo the usersig back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire;

/// The longest wait a `Retry-After` may impose; a larger one is cut to this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The most of the server's ErrorInfo a message repeats.
const MAX_INFO_CHARS: usize = 200;

/// Why an answer is not a success.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A well-formed failure: the server's code and its (raw) ErrorInfo.
    Fail { code: i64, info: String },
    /// Not a well-formed answer of this command.
    Malformed(String),
}

/// A well-formed OK: its payload, and the accounts its `ErrorList` says failed.
#[derive(Debug)]
pub(crate) struct Answered<T> {
    pub body: T,
    pub failed: Vec<wire::ErrorEntry>,
}

/// Reads `body` as the answer of a command whose payload is `T`, ignoring any `ErrorList`
/// (for tests of the envelope and payload rules).
#[cfg(test)]
pub(crate) fn read<T: DeserializeOwned>(body: &[u8], payload: &str) -> Result<T, Problem> {
    read_partial(body, payload).map(|a| a.body)
}

/// Reads `body` as the answer of a command whose payload is `T` (`payload` names it for
/// messages, e.g. "AttrNames object"), with its `ErrorList`.
pub(crate) fn read_partial<T: DeserializeOwned>(
    body: &[u8],
    payload: &str,
) -> Result<Answered<T>, Problem> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Io => "unreadable",
            _ => "not JSON",
        };
        Problem::Malformed(format!("{what} at line {} column {}", e.line(), e.column()))
    })?;
    envelope(&doc)?;
    let failed = error_list(&doc)?;
    // The serde message would quote the offending value; say only what was expected.
    let body = serde_json::from_value(doc)
        .map_err(|_| Problem::Malformed(format!("OK without a well-formed {payload}")))?;
    Ok(Answered { body, failed })
}

/// The `ErrorList` of an OK (DESIGN.md §12): absent or `[]` means none failed; otherwise a list
/// of objects, each with a non-zero integer `ErrorCode` and a non-empty `To_Account`
/// (`ErrorInfo` optional). Anything ambiguous — another shape, an account listed twice — makes
/// the answer not OK: it could hide an account that was not applied.
fn error_list(doc: &Value) -> Result<Vec<wire::ErrorEntry>, Problem> {
    let Some(list) = doc.get("ErrorList") else {
        return Ok(Vec::new());
    };
    let bad = |why: &str| Problem::Malformed(format!("OK with an ErrorList {why}"));
    let Some(items) = list.as_array() else {
        return Err(bad(&format!("that is a {}, not a list", kind_of(list))));
    };
    let mut out: Vec<wire::ErrorEntry> = Vec::with_capacity(items.len());
    for item in items {
        let entry: wire::ErrorEntry = serde_json::from_value(item.clone())
            .map_err(|_| bad("entry without an integer ErrorCode and a To_Account string"))?;
        if entry.error_code == 0 || entry.to_account.is_empty() {
            return Err(bad("entry with ErrorCode 0 or an empty To_Account"));
        }
        if out.iter().any(|e| e.to_account == entry.to_account) {
            return Err(bad("that names one account twice"));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Checks the envelope: `Ok` only for `"ActionStatus":"OK"` with `"ErrorCode":0`.
fn envelope(doc: &Value) -> Result<(), Problem> {
    let Some(obj) = doc.as_object() else {
        return Err(Problem::Malformed(format!(
            "a JSON {} instead of an object",
            kind_of(doc)
        )));
    };
    let status = obj.get("ActionStatus").map(|v| v.as_str());
    let code = obj.get("ErrorCode").map(Value::as_i64);
    let info = || {
        obj.get("ErrorInfo")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match (status, code) {
        (Some(Some("OK")), Some(Some(0))) => Ok(()),
        // A non-zero code is a failure whatever ActionStatus says (spec §1).
        (Some(Some(_)) | None, Some(Some(code))) if code != 0 => {
            Err(Problem::Fail { code, info: info() })
        }
        (Some(Some("FAIL")), Some(Some(0)) | None) => Err(Problem::Fail {
            code: 0,
            info: info(),
        }),
        (None, None) => Err(Problem::Malformed(
            "no ActionStatus and no ErrorCode".to_owned(),
        )),
        (Some(Some("OK")), None) => Err(Problem::Malformed("OK without ErrorCode".to_owned())),
        _ => Err(Problem::Malformed(
            "ActionStatus or ErrorCode of the wrong type or value".to_owned(),
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP-date (IMF-fixdate),
/// capped at [`MAX_RETRY_AFTER`]. `None` when it is neither.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = http_date(value)?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Duration::from_secs(at.saturating_sub(now))
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
fn http_date(s: &str) -> Option<u64> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let year: u64 = year.parse().ok().filter(|y| *y >= 1970)?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// Server text made safe to print: each secret replaced, control and bidirectional
/// characters escaped (they could rewrite a terminal or CI log), length capped.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "(redacted)");
    }
    let mut safe = String::with_capacity(out.len().min(MAX_INFO_CHARS * 2));
    for (i, c) in out.chars().enumerate() {
        if i == MAX_INFO_CHARS {
            safe.push('…');
            break;
        }
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            safe.extend(c.escape_unicode());
        } else {
            safe.push(c);
        }
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire;

    fn malformed<T: DeserializeOwned + std::fmt::Debug>(body: &str, payload: &str) -> String {
        match read::<T>(body.as_bytes(), payload) {
            Err(Problem::Malformed(why)) => why,
            other => panic!("{body:?} should be malformed, got {other:?}"),
        }
    }

    #[test]
    fn only_a_well_formed_ok_is_a_success() {
        let ok = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RequestId":"r"}"#;
        assert!(read::<wire::Empty>(ok.as_bytes(), "answer").is_ok());
        for body in [
            "{}",
            "[]",
            "null",
            "1",
            "\"OK\"",
            r#"{"hello":1}"#,
            r#"{"ActionStatus":"OK"}"#,
            r#"{"ActionStatus":"OK","ErrorCode":"0"}"#,
            r#"{"ActionStatus":"ok","ErrorCode":0}"#,
            r#"{"ActionStatus":1,"ErrorCode":0}"#,
            r#"{"ErrorCode":0}"#,
            r#"{"ActionStatus":"OK","ErrorCode":0.5}"#,
            r#"{"ActionStatus":"OK","ErrorCode":0"#,
            "",
            "<html>login</html>",
        ] {
            malformed::<wire::Empty>(body, "answer");
        }
    }

    #[test]
    fn failures_carry_their_code_even_with_status_ok() {
        let fail = |body: &str| read::<wire::Empty>(body.as_bytes(), "answer").unwrap_err();
        assert_eq!(
            fail(r#"{"ActionStatus":"OK","ErrorCode":91000,"ErrorInfo":"x"}"#),
            Problem::Fail {
                code: 91000,
                info: "x".into()
            }
        );
        assert_eq!(
            fail(r#"{"ActionStatus":"FAIL","ErrorCode":90033}"#),
            Problem::Fail {
                code: 90033,
                info: String::new()
            }
        );
        assert_eq!(
            fail(r#"{"ActionStatus":"FAIL"}"#),
            Problem::Fail {
                code: 0,
                info: String::new()
            }
        );
        assert_eq!(
            fail(r#"{"ErrorCode":70009}"#),
            Problem::Fail {
                code: 70009,
                info: String::new()
            }
        );
    }

    #[test]
    fn reads_need_their_documented_payload() {
        let env = r#""ActionStatus":"OK","ErrorCode":0"#;
        let names = format!(r#"{{{env},"AttrNames":{{"0":"sex"}}}}"#);
        let got: wire::AttrNames = read(names.as_bytes(), "AttrNames").unwrap();
        assert_eq!(got.attr_names["0"], "sex");
        for body in [
            format!("{{{env}}}"),
            format!(r#"{{{env},"AttrNames":[]}}"#),
            format!(r#"{{{env},"AttrNames":{{"0":1}}}}"#),
            format!(r#"{{{env},"AttrNames":null}}"#),
        ] {
            malformed::<wire::AttrNames>(&body, "AttrNames");
        }
        for body in [
            format!("{{{env}}}"),
            format!(r#"{{{env},"UserAttrs":{{}}}}"#),
            format!(r#"{{{env},"UserAttrs":[{{"To_Account":"u"}}]}}"#),
            format!(r#"{{{env},"UserAttrs":[{{"To_Account":"u","Attrs":["a"]}}]}}"#),
            format!(r#"{{{env},"UserAttrs":[{{"To_Account":1,"Attrs":{{}}}}]}}"#),
        ] {
            malformed::<wire::UserAttrsList>(&body, "UserAttrs");
        }
        for body in [
            format!("{{{env}}}"),
            format!(r#"{{{env},"UserTags":[{{"To_Account":"u","Tags":"a"}}]}}"#),
        ] {
            malformed::<wire::UserTagsList>(&body, "UserTags");
        }
    }

    #[test]
    fn messages_never_quote_the_answer() {
        let sig = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIk4";
        for body in [
            format!(r#"{{"ActionStatus":"OK","ErrorCode":0,"AttrNames":{{"0":["{sig}"]}}}}"#),
            format!(r#"{{"ActionStatus":"{sig}","ErrorCode":0}}"#),
            format!(r#"{{"ActionStatus":"OK","ErrorCode":0,"{sig}"#),
            sig.to_owned(),
        ] {
            let why = malformed::<wire::AttrNames>(&body, "AttrNames");
            assert!(!why.contains(sig), "{why}");
        }
    }

    #[test]
    fn an_error_list_names_the_failed_accounts_and_anything_odd_is_not_ok() {
        let env = r#""ActionStatus":"OK","ErrorInfo":"","ErrorCode":0"#;
        let partial = |list: &str| {
            read_partial::<wire::Empty>(format!("{{{env},{list}}}").as_bytes(), "answer")
        };
        // The documented partial success (timpush-api.md §4).
        let a = partial(r#""ErrorList":[{"ErrorCode":90035,"To_Account":"379C2F0D"}]"#).unwrap();
        assert_eq!(a.failed.len(), 1);
        assert_eq!(
            (a.failed[0].error_code, &*a.failed[0].to_account),
            (90035, "379C2F0D")
        );
        assert_eq!(a.failed[0].error_info, "");
        let b =
            partial(r#""ErrorList":[{"ErrorCode":70107,"To_Account":"Mary","ErrorInfo":"no"}]"#)
                .unwrap();
        assert_eq!(b.failed[0].error_info, "no");
        // Absent or [] means none failed.
        assert!(partial(r#""ErrorList":[]"#).unwrap().failed.is_empty());
        assert!(
            read_partial::<wire::Empty>(format!("{{{env}}}").as_bytes(), "answer")
                .unwrap()
                .failed
                .is_empty()
        );
        for odd in [
            r#""ErrorList":null"#,
            r#""ErrorList":{}"#,
            r#""ErrorList":"Mary""#,
            r#""ErrorList":[{"To_Account":"Mary"}]"#,
            r#""ErrorList":[{"ErrorCode":"70107","To_Account":"Mary"}]"#,
            r#""ErrorList":[{"ErrorCode":0,"To_Account":"Mary"}]"#,
            r#""ErrorList":[{"ErrorCode":70107,"To_Account":""}]"#,
            r#""ErrorList":[{"ErrorCode":70107}]"#,
            r#""ErrorList":[{"ErrorCode":70107,"To_Account":"a"},{"ErrorCode":90035,"To_Account":"a"}]"#,
        ] {
            match partial(odd) {
                Err(Problem::Malformed(why)) => assert!(why.contains("ErrorList"), "{odd}: {why}"),
                other => panic!("{odd} should be malformed, got {other:?}"),
            }
        }
        // A FAIL stays a FAIL whatever ErrorList it carries.
        let fail = read_partial::<wire::Empty>(
            br#"{"ActionStatus":"FAIL","ErrorCode":90001,"ErrorList":[{"ErrorCode":70107,"To_Account":"a"}]}"#,
            "answer",
        );
        assert!(
            matches!(fail, Err(Problem::Fail { code: 90001, .. })),
            "{fail:?}"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date_and_is_capped() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:42 GMT", now),
            Some(Duration::from_secs(5))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("Wed, 01 Jan 2100 00:00:00 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        for bad in [
            "",
            "-1",
            "soon",
            "1.5",
            "Sun, 06 Foo 1994 08:49:42 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
        ] {
            assert_eq!(retry_after(bad, now), None, "{bad}");
        }
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Tue, 01 Dec 2026 08:45:18 GMT"),
            Some(1_796_114_718)
        );
    }

    #[test]
    fn scrub_redacts_secrets_and_escapes_controls() {
        let text = "bad sig SIG for key KEY\x1b[2J\r\u{202e}x";
        let safe = scrub(text, &["SIG", "KEY", ""]);
        assert_eq!(
            safe,
            "bad sig (redacted) for key (redacted)\\u{1b}[2J\\u{d}\\u{202e}x"
        );
        assert_eq!(
            scrub(&"a".repeat(500), &[]).chars().count(),
            MAX_INFO_CHARS + 1
        );
    }
}
