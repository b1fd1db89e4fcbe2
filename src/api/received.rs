//! Answers as received: the status, headers and body of each answer the client got, handed to
//! an observer (`timattr doctor` reads the server's `Date` from it and `--record` saves it).
//!
//! The request is never part of it (its URL carries the usersig). The answer is passed on
//! byte for byte, except that the key and the usersig — in every spelling the request held
//! them — are replaced by `***`, so that a server echoing them cannot carry them into a file.

use std::sync::Arc;
use std::time::SystemTime;

/// One answer, as the server sent it (secrets replaced by `***`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The command the answer belongs to, e.g. `im_get_attr_name`.
    pub command: &'static str,
    pub status: u16,
    /// In the order received; values as bytes (a header need not be UTF-8).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Called with every answer the client receives.
pub type Observer = Arc<dyn Fn(&Received) + Send + Sync>;

impl Received {
    /// The server's clock, from its `Date` header (RFC 9110's IMF-fixdate and the obsolete
    /// forms), when it sent a readable one.
    pub fn date(&self) -> Option<SystemTime> {
        let (_, value) = self
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("date"))?;
        httpdate::parse_http_date(std::str::from_utf8(value).ok()?.trim()).ok()
    }

    /// The answer as an HTTP/1.1 message: status line, headers, a blank line, the body.
    pub fn to_http(&self) -> Vec<u8> {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// `bytes` with every occurrence of each secret replaced by `***`.
pub(crate) fn redact(bytes: &[u8], secrets: &[&[u8]]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let mut next = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(secret) {
                next.extend_from_slice(b"***");
                i += secret.len();
            } else {
                next.push(out[i]);
                i += 1;
            }
        }
        out = next;
    }
    out
}

/// Every spelling of `secret` a request or an echo of it may hold: as is, percent-encoded
/// as the client's query has it and with every punctuation character encoded (`*` as `%2A`),
/// and with the usersig's `*-_` mapped back to base64's `+/=`.
pub(crate) fn spellings(secret: &str) -> Vec<Vec<u8>> {
    let base64: String = secret
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect();
    let strict: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut all: Vec<Vec<u8>> = Vec::new();
    for s in [secret.to_owned(), query_encode(secret), strict, base64] {
        let s = s.into_bytes();
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all
}

/// `s` as a query value, encoded the way the client's URLs encode it.
fn query_encode(s: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", s)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_every_occurrence_of_every_spelling() {
        let sig = "eJyr*Vg-rx_";
        let spelled = spellings(sig);
        assert!(
            spelled.contains(&b"eJyr%2AVg%2Drx%5F".to_vec()),
            "{spelled:?}"
        );
        assert!(spelled.contains(&b"eJyr+Vg/rx=".to_vec()), "{spelled:?}");
        let body = b"a eJyr*Vg-rx_ b eJyr%2AVg%2Drx%5F c eJyr+Vg/rx= d KEY";
        let mut secrets: Vec<&[u8]> = spelled.iter().map(Vec::as_slice).collect();
        secrets.push(b"KEY");
        secrets.push(b"");
        assert_eq!(redact(body, &secrets), b"a *** b *** c *** d ***".to_vec());
    }

    #[test]
    fn date_is_read_from_the_header_and_the_http_text_keeps_the_bytes() {
        let r = Received {
            command: "im_get_attr_name",
            status: 200,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("Date".into(), b"Sun, 06 Nov 1994 08:49:37 GMT".to_vec()),
            ],
            body: b"{\"ActionStatus\":\"OK\"}\xff".to_vec(),
        };
        let secs = r.date().unwrap();
        assert_eq!(
            secs.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            784_111_777
        );
        let text = r.to_http();
        assert!(text.starts_with(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nDate: Sun"));
        assert!(text.ends_with(b"\r\n\r\n{\"ActionStatus\":\"OK\"}\xff"));
        let no_date = Received {
            headers: vec![("date".into(), b"yesterday".to_vec())],
            ..r
        };
        assert_eq!(no_date.date(), None);
    }
}
