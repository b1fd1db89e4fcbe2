//! UserSig v2 (HMAC-SHA256): making one for the client, checking one for the emulator (spec §4).
//!
//! The key is the console SecretKey used as its UTF-8 bytes. Nothing here reads the clock:
//! callers pass `now_unix`, which keeps both sides testable against fixed vectors.

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::codes::code;
use super::Secret;

type HmacSha256 = Hmac<Sha256>;

/// A decoded usersig document: the fields the official libraries put inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub version: String,
    pub identifier: String,
    pub sdkappid: u32,
    pub time: u64,
    pub expire: u64,
    /// `TLS.sig`: base64 of the HMAC over the content lines.
    pub sig: String,
    /// `TLS.userbuf` (base64), signed too when present. The REST API does not use it, but the
    /// official libraries can make such sigs, and they must verify.
    pub userbuf: Option<String>,
}

impl Decoded {
    /// Unix time after which the sig is expired.
    pub fn expires_at(&self) -> u64 {
        self.time.saturating_add(self.expire)
    }
}

/// `TLS.sig`: standard base64 of HMAC-SHA256(key, content lines).
pub fn hmac_sig(sdkappid: u32, key: &Secret, identifier: &str, time: u64, expire: u64) -> String {
    STANDARD.encode(
        mac(sdkappid, key, identifier, time, expire, None)
            .finalize()
            .into_bytes(),
    )
}

fn mac(
    sdkappid: u32,
    key: &Secret,
    identifier: &str,
    time: u64,
    expire: u64,
    userbuf: Option<&str>,
) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(
        format!(
            "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
        )
        .as_bytes(),
    );
    if let Some(b) = userbuf {
        mac.update(format!("TLS.userbuf:{b}\n").as_bytes());
    }
    mac
}

/// A usersig for `identifier`, valid from `now_unix` for `expire_secs` seconds.
pub fn generate(
    sdkappid: u32,
    key: &Secret,
    identifier: &str,
    expire_secs: u64,
    now_unix: u64,
) -> String {
    let doc = serde_json::json!({
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire_secs,
        "TLS.time": now_unix,
        "TLS.sig": hmac_sig(sdkappid, key, identifier, now_unix, expire_secs),
    });
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let compressed = z
        .write_all(doc.to_string().as_bytes())
        .and_then(|()| z.finish())
        .unwrap_or_default();
    to_url_alphabet(&STANDARD.encode(compressed))
}

fn to_url_alphabet(b64: &str) -> String {
    b64.chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

fn from_url_alphabet(sig: &str) -> String {
    sig.chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect()
}

/// Bound on the inflated document, so a hostile sig cannot make the server allocate much.
const MAX_DOC: u64 = 16 * 1024;

/// Decodes a usersig without checking it: 70002 when empty, 70003 when it does not decode.
pub fn decode(sig: &str) -> Result<Decoded, i64> {
    if sig.is_empty() {
        return Err(code::SIG_EMPTY);
    }
    let compressed = STANDARD
        .decode(from_url_alphabet(sig))
        .map_err(|_| code::SIG_UNDECODABLE)?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(MAX_DOC)
        .read_to_end(&mut json)
        .map_err(|_| code::SIG_UNDECODABLE)?;
    let doc: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| code::SIG_UNDECODABLE)?;
    let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    // The official libraries write numbers; accept numeric strings too, as older ones did.
    let num = |k: &str| match doc.get(k) {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let bad = || code::SIG_UNDECODABLE;
    Ok(Decoded {
        version: text("TLS.ver").unwrap_or_default(),
        identifier: text("TLS.identifier").ok_or_else(bad)?,
        sdkappid: num("TLS.sdkappid")
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)?,
        time: num("TLS.time").ok_or_else(bad)?,
        expire: num("TLS.expire").ok_or_else(bad)?,
        sig: text("TLS.sig").ok_or_else(bad)?,
        userbuf: text("TLS.userbuf"),
    })
}

/// Checks a usersig the way the server does, returning its fields or the spec's 7000x code.
pub fn verify(
    sig: &str,
    sdkappid: u32,
    identifier: &str,
    key: &Secret,
    now_unix: u64,
) -> Result<Decoded, i64> {
    let d = decode(sig)?;
    if d.sdkappid != sdkappid {
        return Err(code::SIG_SDKAPPID_MISMATCH);
    }
    if d.identifier != identifier {
        return Err(code::SIG_IDENTIFIER_MISMATCH);
    }
    if now_unix > d.expires_at() {
        return Err(code::SIG_EXPIRED);
    }
    let given = STANDARD.decode(&d.sig).map_err(|_| code::SIG_MISMATCH)?;
    // verify_slice compares in constant time.
    mac(
        d.sdkappid,
        key,
        &d.identifier,
        d.time,
        d.expire,
        d.userbuf.as_deref(),
    )
    .verify_slice(&given)
    .map_err(|_| code::SIG_MISMATCH)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    const APP: u32 = 1_400_000_000;
    const TIME: u64 = 1_569_910_200;
    const EXPIRE: u64 = 15_552_000;
    const OFFICIAL_0: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIk4MLFKdmJBQWZKUBBQxMDKIDKpVYUZBalgmRMTU2NEOIlmbkQUTNLS0MDI7h4cWY6yGzngqxSp5TAYsuo8rxSd0evIIv8vHz-VE-LtPLUCKMyT1-fSEuTTH*vcK9IW6VaAGblMR0_";

    fn key() -> Secret {
        Secret::new(KEY.into())
    }

    #[test]
    fn tls_sig_matches_both_spec_vectors() {
        for (id, want) in [
            ("0", "CpjuBdQs9ZwnuGAJR8onoOeI9fweX2vIMMY94iOJWJY="),
            ("admin", "cgfuGSet0wP6alkhauyurL1OrdOGwTjvW3xLCo4zWxI="),
        ] {
            assert_eq!(hmac_sig(APP, &key(), id, TIME, EXPIRE), want, "{id}");
            let d = decode(&generate(APP, &key(), id, EXPIRE, TIME)).expect("decodes");
            assert_eq!(
                d,
                Decoded {
                    version: "2.0".into(),
                    identifier: id.into(),
                    sdkappid: APP,
                    time: TIME,
                    expire: EXPIRE,
                    sig: want.into(),
                    userbuf: None,
                }
            );
        }
    }

    #[test]
    fn official_whole_usersig_decodes_and_verifies() {
        let d = decode(OFFICIAL_0).expect("official sig decodes");
        assert_eq!(d.identifier, "0");
        assert_eq!(d.sdkappid, APP);
        assert_eq!(d.time, TIME);
        assert_eq!(d.expire, EXPIRE);
        assert_eq!(d.sig, "CpjuBdQs9ZwnuGAJR8onoOeI9fweX2vIMMY94iOJWJY=");
        assert_eq!(verify(OFFICIAL_0, APP, "0", &key(), TIME + 10), Ok(d));
    }

    #[test]
    fn generated_sig_uses_only_the_url_alphabet() {
        for id in ["0", "admin", "administrator", "ü-user"] {
            let sig = generate(APP, &key(), id, EXPIRE, TIME);
            assert!(
                sig.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*-_".contains(c)),
                "{sig}"
            );
        }
        assert_eq!(to_url_alphabet("a+b/c=="), "a*b-c__");
        assert_eq!(from_url_alphabet("a*b-c__"), "a+b/c==");
    }

    #[test]
    fn verify_answers_the_spec_codes() {
        let sig = generate(APP, &key(), "admin", 100, TIME);
        assert!(verify(&sig, APP, "admin", &key(), TIME + 100).is_ok());
        assert_eq!(verify(&sig, APP, "admin", &key(), TIME + 101), Err(70001));
        assert_eq!(verify("", APP, "admin", &key(), TIME), Err(70002));
        assert_eq!(verify("not a sig!", APP, "admin", &key(), TIME), Err(70003));
        // Valid base64 of bytes that are not zlib.
        assert_eq!(verify("aGVsbG8_", APP, "admin", &key(), TIME), Err(70003));
        let wrong_key = Secret::new("another key".into());
        assert_eq!(verify(&sig, APP, "admin", &wrong_key, TIME), Err(70009));
        assert_eq!(verify(&sig, APP, "other", &key(), TIME), Err(70013));
        assert_eq!(verify(&sig, APP + 1, "admin", &key(), TIME), Err(70014));
    }

    #[test]
    fn tampered_fields_fail_the_hmac() {
        // Same HMAC, but a longer expiry written into the document.
        let doc = serde_json::json!({
            "TLS.ver": "2.0", "TLS.identifier": "admin", "TLS.sdkappid": APP,
            "TLS.expire": EXPIRE * 10, "TLS.time": TIME,
            "TLS.sig": hmac_sig(APP, &key(), "admin", TIME, EXPIRE),
        });
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(doc.to_string().as_bytes()).unwrap();
        let sig = to_url_alphabet(&STANDARD.encode(z.finish().unwrap()));
        assert_eq!(verify(&sig, APP, "admin", &key(), TIME), Err(70009));
    }
}
