//! The HTTP client: one POST per call, one usersig reused until close to its expiry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::answer::{self, Answered, Problem};
use super::codes::code;
use super::family::{Command, Family};
use super::received::{Observer, Received};
use super::wire::{self, ErrorEntry};
use super::{now_unix, usersig, wire_timpush, ApiError, ApiErrorKind, Failed, Failures, Secret};
use crate::model::AccountType;

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
    family: Family,
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

/// The app's attribute-name slots: slot `0..=9` → name, and the account type of each (a slot
/// absent from `types` is a UserID slot: the documented default, and all the legacy family has).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrSlots {
    pub names: BTreeMap<u8, String>,
    pub types: BTreeMap<u8, AccountType>,
}

impl AttrSlots {
    /// The account type of `slot` (UserID unless recorded otherwise).
    pub fn type_of(&self, slot: u8) -> AccountType {
        self.types.get(&slot).copied().unwrap_or_default()
    }
}

/// What a read answered: the accounts found, and those the API says do not exist (70107 in
/// its `ErrorList`). Together they are exactly the accounts asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live<T> {
    pub found: HashMap<String, T>,
    pub missing: HashSet<String>,
}

impl<T> Default for Live<T> {
    fn default() -> Self {
        Live {
            found: HashMap::new(),
            missing: HashSet::new(),
        }
    }
}

impl<T> Live<T> {
    pub fn get(&self, account: &str) -> Option<&T> {
        self.found.get(account)
    }

    /// Whether the API said `account` does not exist.
    pub fn is_missing(&self, account: &str) -> bool {
        self.missing.contains(account)
    }

    /// Accounts found.
    pub fn len(&self) -> usize {
        self.found.len()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }
}

impl<T, Q> std::ops::Index<&Q> for Live<T>
where
    String: std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    type Output = T;
    fn index(&self, account: &Q) -> &T {
        &self.found[account]
    }
}

impl Client {
    /// A client of the legacy family (`v4/all_member_push`).
    pub fn new(cfg: ClientConfig) -> Result<Client, ApiError> {
        Client::for_family(cfg, Family::AllMemberPush)
    }

    /// A client of `family`.
    pub fn for_family(cfg: ClientConfig, family: Family) -> Result<Client, ApiError> {
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
                family,
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

    /// The family this client speaks.
    pub fn family(&self) -> Family {
        self.inner.family
    }

    /// What `command` is called in this client's family (for the limiter and messages).
    pub fn command(&self, command: Command) -> &'static str {
        self.inner.family.name(command)
    }

    /// Shows `observer` every answer received from now on, secrets replaced (see
    /// [`Received`]). A client has at most one observer; a second is ignored.
    pub fn observe(&self, observer: Observer) {
        let _ = self.inner.observer.set(observer);
    }

    /// Hands an answer to the observer, with every registered secret (the key, each usersig)
    /// replaced in every spelling.
    fn notify(
        &self,
        command: &'static str,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: &[u8],
    ) {
        let Some(observer) = self.inner.observer.get() else {
            return;
        };
        // The key and the sig are registered secrets (`Secret::new`): the one redaction step
        // masks them in every spelling an echo could hold.
        observer(&Received {
            command,
            status,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name, crate::redact::bytes(&value).into_owned()))
                .collect(),
            body: crate::redact::bytes(body).into_owned(),
        });
    }

    /// Sets attribute-name slots (`0..=9` → name) as UserID slots; other slots keep their names.
    pub async fn set_attr_name(&self, slots: &BTreeMap<u8, String>) -> Result<(), ApiError> {
        self.set_attr_slots(&AttrSlots {
            names: slots.clone(),
            types: BTreeMap::new(),
        })
        .await
    }

    /// Sets attribute-name slots with their account types. The timpush family sends every
    /// slot's type explicitly (`AttrTypes`); the legacy family has no types, so a RegistrationID
    /// slot cannot be sent there (the project file refuses `account_type` with it).
    pub async fn set_attr_slots(&self, slots: &AttrSlots) -> Result<(), ApiError> {
        let cmd = self.command(Command::SetAttrName);
        let names: BTreeMap<String, String> = slots
            .names
            .iter()
            .map(|(slot, name)| (slot.to_string(), name.clone()))
            .collect();
        match self.inner.family {
            Family::AllMemberPush => {
                if slots.types.values().any(|t| *t != AccountType::UserId) {
                    return Err(self.error(
                        cmd,
                        ApiErrorKind::Decode(
                            "request could not be encoded: all_member_push has no account types"
                                .into(),
                        ),
                    ));
                }
                self.write_all(cmd, &wire::AttrNames { attr_names: names })
                    .await
            }
            Family::Timpush => {
                let req = wire_timpush::AttrNames {
                    attr_names: names,
                    attr_types: slots
                        .names
                        .keys()
                        .map(|slot| (slot.to_string(), i64::from(slots.type_of(*slot).code())))
                        .collect(),
                };
                self.write_all(cmd, &req).await
            }
        }
    }

    /// The app's attribute-name slots; unset slots are absent.
    pub async fn get_attr_name(&self) -> Result<BTreeMap<u8, String>, ApiError> {
        Ok(self.get_attr_slots().await?.names)
    }

    /// The app's attribute-name slots with their account types (timpush `AttrTypes`; a missing
    /// `AttrTypes`, or a slot missing from it, is type 0 — the documented default).
    pub async fn get_attr_slots(&self) -> Result<AttrSlots, ApiError> {
        let cmd = self.command(Command::GetAttrName);
        let resp: wire_timpush::AttrNames = self
            .call(cmd, &wire::Empty {}, "AttrNames object")
            .await
            .and_then(|a| self.no_errors(cmd, a))?;
        let slot = |key: &str| match key.parse::<u8>() {
            Ok(n) if key.len() == 1 => Ok(n),
            _ => Err(self.error(
                cmd,
                ApiErrorKind::Decode("an attribute slot that is not \"0\"..\"9\"".into()),
            )),
        };
        let mut out = AttrSlots::default();
        for (key, name) in resp.attr_names {
            out.names.insert(slot(&key)?, name);
        }
        for (key, code) in resp.attr_types {
            let n = slot(&key)?;
            let ty = AccountType::from_code(code).filter(|_| out.names.contains_key(&n));
            let Some(ty) = ty else {
                return Err(self.error(
                    cmd,
                    ApiErrorKind::Decode(
                        "an AttrTypes entry that is not 0 or 1, or for a slot without a name"
                            .into(),
                    ),
                ));
            };
            if ty != AccountType::UserId {
                out.types.insert(n, ty);
            }
        }
        Ok(out)
    }

    /// Upserts the given attribute values of each user; returns the accounts that failed.
    pub async fn set_attr(&self, users: &[wire::UserAttrs]) -> Result<Failures, ApiError> {
        let req = wire::UserAttrsList {
            user_attrs: users.to_vec(),
        };
        let asked = users.iter().map(|u| u.to_account.as_str());
        self.write(self.command(Command::SetAttr), &req, asked)
            .await
    }

    /// The attributes of each account, keyed by account (the server may answer in any order,
    /// but must answer for exactly the accounts asked about: found, or missing with 70107).
    pub async fn get_attr(
        &self,
        accounts: &[String],
    ) -> Result<Live<BTreeMap<String, String>>, ApiError> {
        let cmd = self.command(Command::GetAttr);
        let resp: Answered<wire::UserAttrsList> = self
            .call(cmd, &accounts_req(accounts), "UserAttrs list")
            .await?;
        let found = resp
            .body
            .user_attrs
            .into_iter()
            .map(|u| (u.to_account, u.attrs));
        self.covers(cmd, accounts, found, resp.failed)
    }

    /// Removes the named attributes of each user; returns the accounts that failed.
    pub async fn remove_attr(&self, users: &[wire::UserAttrNames]) -> Result<Failures, ApiError> {
        let req = wire::UserAttrNamesList {
            user_attrs: users.to_vec(),
        };
        let asked = users.iter().map(|u| u.to_account.as_str());
        self.write(self.command(Command::RemoveAttr), &req, asked)
            .await
    }

    /// The tags of each account, keyed by account (see [`Client::get_attr`]).
    pub async fn get_tag(&self, accounts: &[String]) -> Result<Live<Vec<String>>, ApiError> {
        let cmd = self.command(Command::GetTag);
        let resp: Answered<wire::UserTagsList> = self
            .call(cmd, &accounts_req(accounts), "UserTags list")
            .await?;
        let found = resp
            .body
            .user_tags
            .into_iter()
            .map(|u| (u.to_account, u.tags));
        self.covers(cmd, accounts, found, resp.failed)
    }

    /// Adds tags (never `Replace: 1`: the request type has no such field); returns the
    /// accounts that failed.
    pub async fn add_tag(&self, users: &[wire::UserTags]) -> Result<Failures, ApiError> {
        let asked = users.iter().map(|u| u.to_account.as_str());
        self.write(self.command(Command::AddTag), &tags_req(users), asked)
            .await
    }

    pub async fn remove_tag(&self, users: &[wire::UserTags]) -> Result<Failures, ApiError> {
        let asked = users.iter().map(|u| u.to_account.as_str());
        self.write(self.command(Command::RemoveTag), &tags_req(users), asked)
            .await
    }

    /// `im_remove_all_tags` / `clear_all_tags`. No command of timattr sends it (it would remove
    /// the tags other systems set); it is here for the emulator's conformance tests.
    pub async fn remove_all_tags(&self, accounts: &[String]) -> Result<Failures, ApiError> {
        let cmd = self.command(Command::RemoveAllTags);
        let asked = accounts.iter().map(String::as_str);
        self.write(cmd, &accounts_req(accounts), asked).await
    }

    /// A read's answer must hold exactly the accounts asked about, each once: found, or in
    /// its `ErrorList` with 70107 (does not exist). A missing one would read as "no values",
    /// an extra one is not ours, and any other failure of an account is no answer for it.
    fn covers<V>(
        &self,
        cmd: &'static str,
        asked: &[String],
        found: impl Iterator<Item = (String, V)>,
        failed: Vec<ErrorEntry>,
    ) -> Result<Live<V>, ApiError> {
        let mut live = Live {
            found: HashMap::with_capacity(asked.len()),
            missing: HashSet::new(),
        };
        let mut twice = 0;
        for (account, v) in found {
            twice += usize::from(live.found.insert(account, v).is_some());
        }
        if let Some(e) = failed
            .iter()
            .find(|e| e.error_code != code::ACCOUNT_NOT_FOUND)
        {
            let account = crate::escape::escape(&e.to_account);
            let info = format!("for account {account}");
            return Err(self.error(
                cmd,
                ApiErrorKind::Code {
                    code: e.error_code,
                    info: answer::scrub(&info, &[]).into(),
                },
            ));
        }
        for e in failed {
            twice += usize::from(live.found.contains_key(&e.to_account));
            live.missing.insert(e.to_account);
        }
        let missing = asked
            .iter()
            .filter(|a| !live.found.contains_key(*a) && !live.missing.contains(*a))
            .count();
        let asked_set: HashSet<&String> = asked.iter().collect();
        let extra = live
            .found
            .keys()
            .chain(live.missing.iter())
            .filter(|a| !asked_set.contains(a))
            .count();
        if missing + extra + twice == 0 {
            return Ok(live);
        }
        Err(self.error(
            cmd,
            ApiErrorKind::Decode(
                format!(
                    "answer for {} accounts: {missing} asked about missing, {extra} not asked about, {twice} answered twice",
                    live.found.len() + live.missing.len()
                )
                .into(),
            ),
        ))
    }

    /// A write: the OK envelope, and its `ErrorList` as the accounts that failed. An entry
    /// naming an account that was not in the request makes the whole answer not OK (it could
    /// stand for one that was, misspelt).
    async fn write<'a, Req: Serialize>(
        &self,
        cmd: &'static str,
        req: &Req,
        asked: impl Iterator<Item = &'a str>,
    ) -> Result<Failures, ApiError> {
        let answered: Answered<wire::Empty> = self.call(cmd, req, "answer").await?;
        if answered.failed.is_empty() {
            return Ok(Failures::default());
        }
        let asked: HashSet<&str> = asked.collect();
        if answered
            .failed
            .iter()
            .any(|e| !asked.contains(e.to_account.as_str()))
        {
            return Err(self.error(
                cmd,
                ApiErrorKind::Decode(
                    "OK with an ErrorList naming an account that was not in the request".into(),
                ),
            ));
        }
        let secrets = [self.inner.secret.expose()];
        Ok(Failures {
            command: cmd,
            failed: answered
                .failed
                .into_iter()
                .map(|e| Failed {
                    info: answer::scrub(&e.error_info, &secrets).into(),
                    account: e.to_account,
                    code: e.error_code,
                })
                .collect(),
        })
    }

    /// A write without accounts (`set_attr_name`): success is the bare OK; an `ErrorList`
    /// there has no account it could name, so it is not OK.
    async fn write_all<Req: Serialize>(
        &self,
        cmd: &'static str,
        req: &Req,
    ) -> Result<(), ApiError> {
        let answered: Answered<wire::Empty> = self.call(cmd, req, "answer").await?;
        self.no_errors(cmd, answered).map(drop)
    }

    /// The payload of an answer that must not carry an `ErrorList`.
    fn no_errors<T>(&self, cmd: &'static str, answered: Answered<T>) -> Result<T, ApiError> {
        if answered.failed.is_empty() {
            return Ok(answered.body);
        }
        Err(self.error(
            cmd,
            ApiErrorKind::Decode("OK with an ErrorList for a command without accounts".into()),
        ))
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
    ) -> Result<Answered<Resp>, ApiError> {
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
    ) -> Result<Answered<Resp>, ApiError> {
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
    ) -> Result<Answered<Resp>, ApiError> {
        let i = &self.inner;
        // Logged instead of the real URL, whose query carries the usersig.
        let endpoint = format!("{}/v4/{}/{cmd}", i.base_url, i.family.as_str());
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
                self.notify(cmd, status.as_u16(), headers, &body);
            }
            return Err(e);
        }
        let bytes = self.body(cmd, resp).await?;
        if let Some(headers) = observed {
            self.notify(cmd, status.as_u16(), headers, &bytes);
        }
        answer::read_partial(&bytes, payload).map_err(|p| match p {
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
