//! The HTTP client: one POST per call, one usersig reused until close to its expiry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::answer::{self, Problem};
use super::codes::code;
use super::received::{self, Observer, Received};
use super::wire::{self, command};
use super::{now_unix, usersig, ApiError, ApiErrorKind, Secret};

/// A sig is valid this long; one is made per client and reused, not one per request.
const SIG_LIFETIME: u64 = 7 * 24 * 3600;
/// Sign anew when less than this is left, so a sig never expires in flight.
const SIG_RENEW_BEFORE: u64 = 3600;
/// The longest wait for a connection; the per-request timeout bounds the whole exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer slower than this (or a third of the timeout, if less) is announced while it is
/// awaited.
const SLOW_NOTICE: Duration = Duration::from_secs(10);
/// The largest answer read: a full `im_get_attr` of 100 users is well under 100 KB, and a
/// hostile or broken server must not make the client buffer without bound.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Where and as whom the client talks.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `scheme://host[:port]`, without a path.
    pub base_url: String,
    pub sdkappid: u32,
    /// The app admin account sent as `identifier`.
    pub identifier: String,
    /// The console SecretKey.
    pub secret: Secret,
    /// Per-request timeout (connect + send + answer).
    pub timeout: Duration,
}

/// The API client. Cheap to clone; clones share the connection pool and the usersig.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    /// `host[:port]`, the only part of the URL that errors show.
    host: Arc<str>,
    /// The per-request timeout, for the slow-answer notice.
    timeout: Duration,
    sdkappid: u32,
    identifier: String,
    secret: Secret,
    sig: Mutex<Option<CachedSig>>,
    /// Shown every answer received (`timattr doctor`); set at most once.
    observer: std::sync::OnceLock<Observer>,
}

#[derive(Clone)]
struct CachedSig {
    sig: Secret,
    valid_until: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("sdkappid", &self.inner.sdkappid)
            .field("identifier", &self.inner.identifier)
            .field("secret", &self.inner.secret)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ApiError> {
        let base_url = cfg.base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url).map_err(|e| {
            ApiError::new(
                "client",
                ApiErrorKind::Connect(format!("invalid endpoint URL: {e}").into()),
            )
        })?;
        let host: Arc<str> = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}").into(),
            (Some(h), None) => h.into(),
            (None, _) => "(no host)".into(),
        };
        let bad = |why: String| {
            ApiError::new("client", ApiErrorKind::Connect(why.into())).at(host.clone())
        };
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(CONNECT_TIMEOUT))
            // A redirect would carry the usersig in its query to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("timattr/", env!("CARGO_PKG_VERSION")));
        // A proxy from the environment must not intercept the loopback emulator.
        let name = parsed.host_str().unwrap_or_default();
        if crate::settings::is_loopback(name.trim_matches(['[', ']'])) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| bad(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                host,
                timeout: cfg.timeout,
                sdkappid: cfg.sdkappid,
                identifier: cfg.identifier,
                secret: cfg.secret,
                sig: Mutex::new(None),
                observer: std::sync::OnceLock::new(),
            }),
        })
    }

    /// `host[:port]` of the endpoint, as errors name it.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Shows `observer` every answer received from now on, secrets replaced (see
    /// [`Received`]). A client has at most one observer; a second is ignored.
    pub fn observe(&self, observer: Observer) {
        let _ = self.inner.observer.set(observer);
    }

    /// Hands an answer to the observer, with the key and `sig` replaced in every spelling.
    fn notify(
        &self,
        command: &'static str,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: &[u8],
        sig: &Secret,
    ) {
        let Some(observer) = self.inner.observer.get() else {
            return;
        };
        let mut spelled = received::spellings(sig.expose());
        spelled.extend(received::spellings(self.inner.secret.expose()));
        let secrets: Vec<&[u8]> = spelled.iter().map(Vec::as_slice).collect();
        observer(&Received {
            command,
            status,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name, received::redact(&value, &secrets)))
                .collect(),
            body: received::redact(body, &secrets),
        });
    }

    /// Sets attribute-name slots (`0..=9` → name); other slots keep their names.
    pub async fn set_attr_name(&self, slots: &BTreeMap<u8, String>) -> Result<(), ApiError> {
        let req = wire::AttrNames {
            attr_names: slots
                .iter()
                .map(|(slot, name)| (slot.to_string(), name.clone()))
                .collect(),
        };
        self.write(command::SET_ATTR_NAME, &req).await
    }

    /// The app's attribute-name slots; unset slots are absent.
    pub async fn get_attr_name(&self) -> Result<BTreeMap<u8, String>, ApiError> {
        let cmd = command::GET_ATTR_NAME;
        let resp: wire::AttrNames = self.call(cmd, &wire::Empty {}, "AttrNames object").await?;
        resp.attr_names
            .into_iter()
            .map(|(slot, name)| match slot.parse::<u8>() {
                Ok(n) if slot.len() == 1 => Ok((n, name)),
                _ => Err(self.error(
                    cmd,
                    ApiErrorKind::Decode("an attribute slot that is not \"0\"..\"9\"".into()),
                )),
            })
            .collect()
    }

    /// Upserts the given attribute values of each user.
    pub async fn set_attr(&self, users: &[wire::UserAttrs]) -> Result<(), ApiError> {
        let req = wire::UserAttrsList {
            user_attrs: users.to_vec(),
        };
        self.write(command::SET_ATTR, &req).await
    }

    /// The attributes of each account, keyed by account (the server may answer in any order,
    /// but must answer for exactly the accounts asked about).
    pub async fn get_attr(
        &self,
        accounts: &[String],
    ) -> Result<HashMap<String, BTreeMap<String, String>>, ApiError> {
        let cmd = command::GET_ATTR;
        let resp: wire::UserAttrsList = self
            .call(cmd, &accounts_req(accounts), "UserAttrs list")
            .await?;
        let got: HashMap<_, _> = resp
            .user_attrs
            .into_iter()
            .map(|u| (u.to_account, u.attrs))
            .collect();
        self.covers(cmd, accounts, got)
    }

    /// Removes the named attributes of each user.
    pub async fn remove_attr(&self, users: &[wire::UserAttrNames]) -> Result<(), ApiError> {
        let req = wire::UserAttrNamesList {
            user_attrs: users.to_vec(),
        };
        self.write(command::REMOVE_ATTR, &req).await
    }

    /// The tags of each account, keyed by account.
    pub async fn get_tag(
        &self,
        accounts: &[String],
    ) -> Result<HashMap<String, Vec<String>>, ApiError> {
        let cmd = command::GET_TAG;
        let resp: wire::UserTagsList = self
            .call(cmd, &accounts_req(accounts), "UserTags list")
            .await?;
        let got: HashMap<_, _> = resp
            .user_tags
            .into_iter()
            .map(|u| (u.to_account, u.tags))
            .collect();
        self.covers(cmd, accounts, got)
    }

    pub async fn add_tag(&self, users: &[wire::UserTags]) -> Result<(), ApiError> {
        self.write(command::ADD_TAG, &tags_req(users)).await
    }

    pub async fn remove_tag(&self, users: &[wire::UserTags]) -> Result<(), ApiError> {
        self.write(command::REMOVE_TAG, &tags_req(users)).await
    }

    pub async fn remove_all_tags(&self, accounts: &[String]) -> Result<(), ApiError> {
        self.write(command::REMOVE_ALL_TAGS, &accounts_req(accounts))
            .await
    }

    /// A read's answer must hold exactly the accounts asked about: a missing one would read
    /// as "no values" and an extra one is not ours.
    fn covers<V>(
        &self,
        cmd: &'static str,
        asked: &[String],
        got: HashMap<String, V>,
    ) -> Result<HashMap<String, V>, ApiError> {
        let missing = asked.iter().filter(|a| !got.contains_key(*a)).count();
        let asked_set: HashSet<&String> = asked.iter().collect();
        let extra = got.keys().filter(|a| !asked_set.contains(a)).count();
        if missing + extra == 0 {
            return Ok(got);
        }
        Err(self.error(
            cmd,
            ApiErrorKind::Decode(
                format!(
                "answer for {} accounts: {missing} asked about missing, {extra} not asked about",
                got.len()
            )
                .into(),
            ),
        ))
    }

    /// A write: success is the bare OK envelope.
    async fn write<Req: Serialize>(&self, cmd: &'static str, req: &Req) -> Result<(), ApiError> {
        self.call::<_, wire::Empty>(cmd, req, "answer")
            .await
            .map(drop)
    }

    fn error(&self, cmd: &'static str, kind: ApiErrorKind) -> ApiError {
        ApiError::new(cmd, kind).at(self.inner.host.clone())
    }

    /// Makes the client use `sig` as if it were valid until `valid_until` (Unix seconds).
    /// For tests of the 70001 path: a sig the client trusts but the server finds expired.
    #[doc(hidden)]
    pub fn use_sig_until(&self, sig: String, valid_until: u64) {
        *self.lock_sig() = Some(CachedSig {
            sig: Secret::new(sig),
            valid_until,
        });
    }

    fn lock_sig(&self) -> std::sync::MutexGuard<'_, Option<CachedSig>> {
        // The guarded value is replaced whole, so a poisoned lock still holds a consistent one.
        self.inner.sig.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current sig, signing a new one when there is none, it is close to expiry, or it is
    /// `rejected` (the one the server just called expired; other tasks may have renewed already).
    fn sig(&self, rejected: Option<&Secret>) -> Secret {
        let now = now_unix();
        let mut cached = self.lock_sig();
        let usable = cached.as_ref().filter(|c| {
            c.valid_until > now + SIG_RENEW_BEFORE && rejected.is_none_or(|r| *r != c.sig)
        });
        if let Some(c) = usable {
            return c.sig.clone();
        }
        let i = &self.inner;
        let sig = Secret::new(usersig::generate(
            i.sdkappid,
            &i.secret,
            &i.identifier,
            SIG_LIFETIME,
            now,
        ));
        *cached = Some(CachedSig {
            sig: sig.clone(),
            valid_until: now + SIG_LIFETIME,
        });
        sig
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        cmd: &'static str,
        req: &Req,
        payload: &str,
    ) -> Result<Resp, ApiError> {
        let body = serde_json::to_vec(req).map_err(|_| {
            self.error(
                cmd,
                ApiErrorKind::Decode("request could not be encoded".into()),
            )
        })?;
        let sig = self.sig(None);
        match self.send(cmd, &body, &sig, payload).await {
            Err(e) if e.code() == Some(code::SIG_EXPIRED) => {
                tracing::debug!(
                    command = cmd,
                    "usersig expired; signing a new one and resending once"
                );
                let fresh = self.sig(Some(&sig));
                self.send(cmd, &body, &fresh, payload).await
            }
            other => other,
        }
    }

    /// One exchange; an answer slower than [`SLOW_NOTICE`] is announced at `warn`, so a
    /// hanging server is never a silent wait.
    async fn send<Resp: DeserializeOwned>(
        &self,
        cmd: &'static str,
        body: &[u8],
        sig: &Secret,
        payload: &str,
    ) -> Result<Resp, ApiError> {
        let exchange = self.exchange(cmd, body, sig, payload);
        tokio::pin!(exchange);
        let notice = SLOW_NOTICE.min(self.inner.timeout / 3);
        tokio::select! {
            done = &mut exchange => return done,
            () = tokio::time::sleep(notice) => {}
        }
        tracing::warn!(
            "{cmd}: no answer from {} after {:.1} s; waiting up to {:.1} s in all",
            self.inner.host,
            notice.as_secs_f64(),
            self.inner.timeout.as_secs_f64()
        );
        exchange.await
    }

    async fn exchange<Resp: DeserializeOwned>(
        &self,
        cmd: &'static str,
        body: &[u8],
        sig: &Secret,
        payload: &str,
    ) -> Result<Resp, ApiError> {
        let i = &self.inner;
        // Logged instead of the real URL, whose query carries the usersig.
        let endpoint = format!("{}/v4/all_member_push/{cmd}", i.base_url);
        let sdkappid = i.sdkappid.to_string();
        let random = rand::random::<u32>().to_string();
        let url = reqwest::Url::parse_with_params(
            &endpoint,
            [
                ("sdkappid", sdkappid.as_str()),
                ("identifier", i.identifier.as_str()),
                ("usersig", sig.expose()),
                ("random", random.as_str()),
                ("contenttype", "json"),
            ],
        )
        .map_err(|e| {
            self.error(
                cmd,
                ApiErrorKind::Connect(format!("invalid endpoint URL: {e}").into()),
            )
        })?;
        tracing::debug!(command = cmd, url = %endpoint, bytes = body.len(), "POST");
        let resp = i
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| self.error(cmd, network_kind(e)))?;
        let status = resp.status();
        // Only with an observer: the headers as received, for `doctor` (Date) and `--record`.
        let observed = i.observer.get().map(|_| {
            resp.headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect::<Vec<_>>()
        });
        if status != reqwest::StatusCode::OK {
            tracing::debug!(command = cmd, url = %endpoint, status = status.as_u16(), "HTTP failure");
            let mut e = self.error(cmd, ApiErrorKind::Http(status.as_u16()));
            if matches!(status.as_u16(), 429 | 503) {
                e.retry_after_secs = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| answer::retry_after(v, SystemTime::now()))
                    .and_then(|d| u32::try_from(d.as_secs()).ok());
            }
            if let Some(headers) = observed {
                let body = self.body(cmd, resp).await.unwrap_or_default();
                self.notify(cmd, status.as_u16(), headers, &body, sig);
            }
            return Err(e);
        }
        let bytes = self.body(cmd, resp).await?;
        if let Some(headers) = observed {
            self.notify(cmd, status.as_u16(), headers, &bytes, sig);
        }
        answer::read(&bytes, payload).map_err(|p| match p {
            Problem::Fail { code, info } => {
                tracing::debug!(command = cmd, code, "FAIL");
                let info = answer::scrub(&info, &[sig.expose(), i.secret.expose()]);
                self.error(
                    cmd,
                    ApiErrorKind::Code {
                        code,
                        info: info.into(),
                    },
                )
            }
            Problem::Malformed(why) => self.error(cmd, ApiErrorKind::Decode(why.into())),
        })
    }

    /// Reads the body, at most [`MAX_ANSWER_BYTES`]; a connection closed mid-answer is a
    /// network error (retried like one closed before it).
    async fn body(
        &self,
        cmd: &'static str,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, ApiError> {
        let too_large = || {
            self.error(
                cmd,
                ApiErrorKind::Decode(format!("answer larger than {MAX_ANSWER_BYTES} bytes").into()),
            )
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.error(cmd, network_kind(e)))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

fn accounts_req(accounts: &[String]) -> wire::Accounts {
    wire::Accounts {
        to_account: accounts.to_vec(),
    }
}

fn tags_req(users: &[wire::UserTags]) -> wire::UserTagsList {
    wire::UserTagsList {
        user_tags: users.to_vec(),
    }
}

/// Sorts a transport failure; the URL (with the sig in its query) is dropped first. A body
/// that stops mid-answer is a network failure like any other: the request may be resent.
fn network_kind(e: reqwest::Error) -> ApiErrorKind {
    if e.is_timeout() {
        return ApiErrorKind::Timeout;
    }
    let e = e.without_url();
    if let Some(why) = certificate_problem(&e) {
        return ApiErrorKind::Certificate(answer::scrub(&why, &[]).into());
    }
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        why.push_str(": ");
        why.push_str(&s.to_string());
        source = s.source();
    }
    ApiErrorKind::Connect(answer::scrub(&why, &[]).into())
}

/// The reason rustls refused the server's certificate, when that is what failed: retrying
/// cannot help, unlike a refused or reset connection. The connector boxes rustls' error
/// (inside an `io::Error`) without its type showing in the chain, so each link's text is
/// matched against the texts of rustls' certificate errors.
fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let certificate_errors = [
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        rustls::Error::NoCertificatesPresented,
        rustls::Error::UnsupportedNameType,
    ];
    // "invalid peer certificate: UnknownIssuer" → "invalid peer certificate".
    let prefixes: Vec<String> = certificate_errors
        .iter()
        .map(|t| {
            t.to_string()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let mut link = Some(e);
    while let Some(err) = link {
        let text = err.to_string();
        if let Some(at) = prefixes.iter().filter_map(|p| text.find(p.as_str())).min() {
            return Some(text[at..].to_owned());
        }
        link = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "super-secret-key-value";

    fn client() -> Client {
        Client::new(ClientConfig {
            base_url: "http://127.0.0.1:9/".into(),
            sdkappid: 1_400_000_000,
            identifier: "admin".into(),
            secret: Secret::new(KEY.into()),
            timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn debug_prints_never_show_key_or_sig() {
        let c = client();
        let sig = c.sig(None);
        let cfg = ClientConfig {
            base_url: "http://x".into(),
            sdkappid: 1,
            identifier: "admin".into(),
            secret: Secret::new(KEY.into()),
            timeout: Duration::from_secs(1),
        };
        for text in [format!("{c:?}"), format!("{cfg:?}"), format!("{cfg:#?}")] {
            assert!(!text.contains(KEY), "{text}");
            assert!(!text.contains(sig.expose()), "{text}");
            assert!(text.contains("(redacted)"), "{text}");
        }
        assert_eq!(c.inner.base_url, "http://127.0.0.1:9");
    }

    #[test]
    fn one_sig_is_reused_until_rejected() {
        let c = client();
        let a = c.sig(None);
        assert_eq!(c.sig(None), a);
        let d = usersig::verify(
            a.expose(),
            1_400_000_000,
            "admin",
            &Secret::new(KEY.into()),
            now_unix(),
        )
        .expect("own sig verifies");
        assert_eq!(d.expire, SIG_LIFETIME);
        // Nearly expired: renewed before use.
        c.use_sig_until("old".into(), now_unix() + 10);
        assert_ne!(c.sig(None).expose(), "old");
        // Rejected by the server: renewed even though the client thought it valid.
        c.use_sig_until("old".into(), now_unix() + SIG_LIFETIME);
        let old = c.sig(None);
        assert_eq!(old.expose(), "old");
        assert_ne!(c.sig(Some(&old)).expose(), "old");
    }

    #[tokio::test]
    async fn connection_errors_never_show_the_sig() {
        let c = client();
        let e = c.get_attr_name().await.expect_err("port 9 is closed");
        assert_eq!(e.class(), super::super::ErrorClass::Retry, "{e}");
        let text = format!("{e} {e:?}");
        assert!(!text.contains("usersig"), "{text}");
        assert!(!text.contains(c.sig(None).expose()), "{text}");
    }
}
