//! The one redaction step before every output (DESIGN.md §8): stdout, stderr, the logs, the
//! files the tool writes and the step summary pass through [`Writer`] (or [`text`]), which
//! replaces every registered secret with `***`.
//!
//! Secrets are registered as soon as they are known: the SecretKey when it is read from the
//! environment, each UserSig when it is made, the database password of `TIMATTR_STATE`,
//! `PGPASSWORD` and of a project file that (wrongly) holds one. Each is registered in every
//! spelling the configuration can hold or an output can produce: raw, percent-decoded,
//! percent-encoded, JSON-escaped and terminal-escaped. This module is the last line of
//! defence; the first is not reading what is not ours (`desired::paths`) and never putting a
//! secret into a message.
//!
//! [`Writer`] is a plain `io::Write` adapter, so a colour layer (anstream) composes with it. It
//! holds back the last `longest secret − 1` bytes of what it was given until the next write,
//! a flush or its drop: a secret split across two writes is still found whole.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not registered: masking every `ab` of an output would make it
/// unreadable and hide nothing (such a password is guessed, not read).
pub const MIN_LEN: usize = 4;

/// The registered secrets, each spelling once, and their matcher.
struct Set {
    needles: Vec<Vec<u8>>,
    matcher: Option<AhoCorasick>,
    longest: usize,
}

impl Set {
    fn new(mut needles: Vec<Vec<u8>>) -> Set {
        needles.sort();
        needles.dedup();
        // Leftmost-longest: of two spellings starting at one place, the longer is masked whole.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&needles)
            .ok()
            .filter(|_| !needles.is_empty());
        let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
        Set {
            needles,
            matcher,
            longest,
        }
    }
}

static SECRETS: RwLock<Option<Arc<Set>>> = RwLock::new(None);

fn current() -> Option<Arc<Set>> {
    SECRETS.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Unreserved characters (RFC 3986) stay; everything else is encoded, as URL builders do.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A query value as the client's URLs (`application/x-www-form-urlencoded`) write it.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// Every spelling of `secret` an output could hold.
fn spellings(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    if let Ok(decoded) = percent_decode_str(secret).decode_utf8() {
        out.push(decoded.into_owned());
    }
    for s in out.clone() {
        out.push(utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string());
        out.push(utf8_percent_encode(&s, COMPONENT).to_string());
        if let Ok(json) = serde_json::to_string(&s) {
            out.push(json[1..json.len() - 1].to_owned());
        }
        out.push(crate::escape::escape(&s).into_owned());
        out.push(format!("{s:?}").trim_matches('"').to_owned());
        out.push(
            utf8_percent_encode(&s, QUERY)
                .to_string()
                .replace("%20", "+"),
        );
        // A UserSig is base64 with `+/=` written `*-_`: an echo may map it back.
        out.push(
            s.chars()
                .map(|c| match c {
                    '*' => '+',
                    '-' => '/',
                    '_' => '=',
                    c => c,
                })
                .collect(),
        );
    }
    out.retain(|s| s.len() >= MIN_LEN);
    out
}

/// Registers `secret` (in all its spellings): from now on no output shows it. Returns false
/// when it is too short to be masked.
pub fn register(secret: &str) -> bool {
    let new = spellings(secret);
    if new.is_empty() {
        return false;
    }
    let mut guard = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let mut needles = guard
        .as_ref()
        .map(|s| s.needles.clone())
        .unwrap_or_default();
    let before = needles.len();
    needles.extend(new.into_iter().map(String::into_bytes));
    needles.sort();
    needles.dedup();
    if needles.len() != before {
        *guard = Some(Arc::new(Set::new(needles)));
    }
    true
}

/// Registers the password a database URL carries (in its user info or a `password=` query
/// parameter), however the URL is split: each candidate reading is registered.
pub fn register_url_password(url: &str) {
    let Some((_, rest)) = url.split_once("://") else {
        return;
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    // Every `:`…`@` span of the part before the query is a password under some reading of
    // an ill-formed URL (an unencoded `@`, `/` or `:`); all of them are masked.
    let head = &rest[..end];
    if let Some(last_at) = head.rfind('@') {
        let userinfo = &head[..last_at];
        if let Some(colon) = userinfo.find(':') {
            let password = &userinfo[colon + 1..];
            register(password);
            for (i, _) in password.match_indices(['@', ':', '/']) {
                register(&password[..i]);
                register(&password[i + 1..]);
            }
        }
    }
    for kv in rest[end..].trim_start_matches(['?', '#']).split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            if k.eq_ignore_ascii_case("password") {
                register(v);
            }
        }
    }
}

/// Registers what the environment holds for the tool before anything runs: the database
/// passwords of `TIMATTR_STATE` and `PGPASSWORD`, and the SecretKey of the default variable.
/// (The project's own `secret_env` is registered when the key is read.)
pub fn register_environment() {
    for var in ["TIM_SECRET_KEY", "PGPASSWORD"] {
        if let Some(v) = std::env::var_os(var) {
            register(&v.to_string_lossy());
        }
    }
    if let Some(v) = std::env::var_os(crate::settings::STATE_ENV) {
        register_url_password(&v.to_string_lossy());
    }
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn text(text: &str) -> Cow<'_, str> {
    let Some(set) = current() else {
        return Cow::Borrowed(text);
    };
    let Some(m) = &set.matcher else {
        return Cow::Borrowed(text);
    };
    if !m.is_match(text) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(m.replace_all(text, &vec![MASK; set.needles.len()]))
}

/// `bytes` (not necessarily UTF-8: an answer's headers and body as received) with every
/// registered secret replaced by [`MASK`].
pub fn bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Some(m) = current().and_then(|set| set.matcher.clone()) else {
        return Cow::Borrowed(bytes);
    };
    if !m.is_match(bytes) {
        return Cow::Borrowed(bytes);
    }
    Cow::Owned(m.replace_all_bytes(bytes, &vec![MASK; m.patterns_len()]))
}

/// Whether any secret is registered (when none is, a gzip output need not be re-encoded).
pub fn active() -> bool {
    current().is_some_and(|s| s.matcher.is_some())
}

/// A writer for gzip bytes produced elsewhere (the store's export): they are inflated,
/// masked as text and compressed again, so that the redaction step sees what the file says.
pub struct Gzip<W: Write>(flate2::write::GzDecoder<Writer<flate2::write::GzEncoder<W>>>);

impl<W: Write> Gzip<W> {
    pub fn new(out: W) -> Gzip<W> {
        let encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        Gzip(flate2::write::GzDecoder::new(Writer::new(encoder)))
    }

    /// Completes the gzip output and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.0.finish()?.into_inner()?.finish()
    }
}

impl<W: Write> Write for Gzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes `line` and a newline to stderr, redacted; errors are ignored (stderr is gone).
pub fn eprintln(line: &str) {
    let mut err = Writer::new(io::stderr().lock());
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// An `io::Write` adapter that masks every registered secret of what passes through it.
pub struct Writer<W: Write> {
    inner: Option<W>,
    pending: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Writer<W> {
        Writer {
            inner: Some(inner),
            pending: Vec::new(),
        }
    }

    /// The inner writer (what was written may still be held back).
    pub fn get_ref(&self) -> &W {
        self.inner.as_ref().expect("present until dropped")
    }

    /// Writes out what is held back and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.drain(true)?;
        Ok(self.inner.take().expect("present until dropped"))
    }

    /// Masks and writes `pending`, all of it or all but what could be the start of a secret.
    fn drain(&mut self, all: bool) -> io::Result<()> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let set = current();
        let Some((set, m)) = set.as_ref().and_then(|s| Some((s, s.matcher.as_ref()?))) else {
            inner.write_all(&self.pending)?;
            self.pending.clear();
            return Ok(());
        };
        let keep = if all { 0 } else { set.longest - 1 };
        let safe = self.pending.len().saturating_sub(keep);
        let mut out = Vec::with_capacity(self.pending.len());
        let mut done = 0;
        for found in m.find_iter(&self.pending) {
            // A match starting in the held-back tail may be the prefix of a longer spelling.
            if found.start() >= safe {
                break;
            }
            out.extend_from_slice(&self.pending[done..found.start()]);
            out.extend_from_slice(MASK.as_bytes());
            done = found.end();
        }
        let upto = safe.max(done);
        out.extend_from_slice(&self.pending[done..upto]);
        inner.write_all(&out)?;
        self.pending.drain(..upto);
        Ok(())
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        // Small writes (a log line in pieces) gather; the tail is always held back.
        if self.pending.len() >= 8 << 10 {
            self.drain(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain(true)?;
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for Writer<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Through a writer, in pieces cut at `cuts`.
    fn through(text: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        let mut from = 0;
        for &c in cuts {
            let c = c.min(text.len()).max(from);
            w.write_all(&text[from..c]).unwrap();
            from = c;
        }
        w.write_all(&text[from..]).unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn every_spelling_is_masked() {
        let key = "k3y/with:odd@chars%20\"q";
        assert!(register(key));
        assert!(!register("ab"));
        let encoded = utf8_percent_encode(key, NON_ALPHANUMERIC).to_string();
        let decoded = percent_decode_str(key).decode_utf8().unwrap().into_owned();
        let json = serde_json::to_string(key).unwrap();
        for shown in [key.to_owned(), encoded, decoded, json] {
            let line = format!("before {shown} after");
            let out = text(&line);
            assert!(!out.contains(&shown), "{out}");
            assert!(out.contains(MASK), "{out}");
            let streamed = String::from_utf8(through(line.as_bytes(), &[9, 10, 11])).unwrap();
            assert_eq!(streamed, out, "{line}");
        }
    }

    #[test]
    fn gzip_outputs_are_masked_inside() {
        use std::io::Read as _;
        register("gz-Secret-77");
        let mut plain = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        plain.write_all(b"{\"v\":\"gz-Secret-77\"}\n").unwrap();
        let compressed = plain.finish().unwrap();
        let mut g = Gzip::new(Vec::new());
        for piece in compressed.chunks(7) {
            g.write_all(piece).unwrap();
        }
        let out = g.finish().unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"v\":\"***\"}\n");
    }

    #[test]
    fn url_passwords_are_registered_however_the_url_is_split() {
        register_url_password("postgres://root:p@ssLEAKZ@127.0.0.1:5432/x?password=qzwxqzwx");
        for fragment in ["p@ssLEAKZ", "ssLEAKZ", "qzwxqzwx"] {
            let line = format!("at {fragment}@127");
            assert!(!text(&line).contains(fragment), "{}", text(&line));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn registered_secrets_never_pass(
            secret in "[ -~]{8,40}",
            before in "[ -~\n]{0,200}",
            after in "[ -~\n]{0,200}",
            cuts in proptest::collection::vec(0usize..500, 0..6),
        ) {
            register(&secret);
            let text_in = format!("{before}{secret}{after}");
            let mut cuts = cuts;
            cuts.sort_unstable();
            let out = String::from_utf8(through(text_in.as_bytes(), &cuts)).unwrap();
            prop_assert!(!out.contains(&secret), "{:?}", out);
            prop_assert_eq!(out, text(&text_in).into_owned());
        }
    }

    #[test]
    fn a_usersig_echoed_in_any_spelling_is_masked_in_bytes() {
        let sig = "eJyrXYZ*Vg-rx_QQ";
        register(sig);
        let body = b"a eJyrXYZ*Vg-rx_QQ b eJyrXYZ%2AVg%2Drx%5FQQ c eJyrXYZ+Vg/rx=QQ d \xff";
        let masked = bytes(body);
        assert_eq!(&masked[..], &b"a *** b *** c *** d \xff"[..]);
        assert!(matches!(bytes(b"nothing here \xfe"), Cow::Borrowed(_)));
    }
}
