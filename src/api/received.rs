//! Answers as received: the status, headers and body of each answer the client got, handed to
//! an observer (`timattr doctor` reads the server's `Date` from it and `--record` saves it).
//!
//! The request is never part of it (its URL carries the usersig). The answer is passed on
//! byte for byte, except that the key and the usersig — in every spelling the request held
//! them — are replaced by `***` by the one redaction step ([`crate::redact::bytes`]), so that
//! a server echoing them cannot carry them into a file.

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

#[cfg(test)]
mod tests {
    use super::*;

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
