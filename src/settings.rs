//! The project's settings as one typed [`Settings`], and the rules of its values that need no
//! YAML: the regions and their API hosts, and what an `endpoint` may be.
//!
//! The project file is read by [`crate::desired::load_project`] (the only module that touches
//! the YAML crate), which builds these types. This module imports nothing of the loader.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Region names of the project file and the API host of each (tim-api.md §1).
pub const REGIONS: [(&str, &str); 7] = [
    ("china", "console.tim.qq.com"),
    ("singapore", "adminapisgp.im.qcloud.com"),
    ("seoul", "adminapikr.im.qcloud.com"),
    ("frankfurt", "adminapiger.im.qcloud.com"),
    ("silicon-valley", "adminapiusa.im.qcloud.com"),
    ("jakarta", "adminapiidn.im.qcloud.com"),
    ("tokyo", "adminapijpn.im.qcloud.com"),
];

/// The API host of a region name.
pub fn region_host(region: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(name, _)| *name == region)
        .map(|(_, host)| *host)
}

/// Where the API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A real or emulated server: `base` is `scheme://host[:port]` without a trailing slash.
    Url { base: String, host: String },
    /// The built-in emulator, started in-process on a loopback port (demo key, no secret).
    Embedded,
}

impl Endpoint {
    /// The host the store is bound to (`embedded` for the built-in emulator).
    pub fn host(&self) -> &str {
        match self {
            Endpoint::Url { host, .. } => host,
            Endpoint::Embedded => "embedded",
        }
    }

    /// The endpoint of a region.
    pub fn of_region(region: &str) -> Option<Endpoint> {
        region_host(region).map(|host| Endpoint::Url {
            base: format!("https://{host}"),
            host: host.to_owned(),
        })
    }

    /// `embedded`, `https://host[:port]`, or `http://` for loopback hosts only.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        if s == "embedded" {
            return Ok(Endpoint::Embedded);
        }
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = s.strip_prefix("http://") {
            ("http", r)
        } else {
            return Err(format!(
                "endpoint {s:?} must start with https:// (or be `embedded`)"
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace())
        {
            return Err(format!(
                "endpoint {s:?} must be scheme://host[:port], without path, query or user"
            ));
        }
        let (host, port) =
            split_authority(authority).map_err(|why| format!("endpoint {s:?} {why}"))?;
        if host.is_empty() {
            return Err(format!("endpoint {s:?} has no host"));
        }
        if let Some(p) = port {
            if p.parse::<u16>().is_err() {
                return Err(format!("endpoint {s:?} has an invalid port {p:?}"));
            }
        }
        // Plain http is only safe where it cannot be sniffed on the way.
        if scheme == "http" && !is_loopback(host) {
            return Err(format!(
                "endpoint {s:?} uses http:// with a non-loopback host; use https://"
            ));
        }
        Ok(Endpoint::Url {
            base: format!("{scheme}://{authority}"),
            host: host.to_owned(),
        })
    }
}

/// `host[:port]` or `[v6][:port]`, split.
fn split_authority(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    let Some(v6) = authority.strip_prefix('[') else {
        return Ok(match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        });
    };
    let Some((h, after)) = v6.split_once(']') else {
        return Err("has an unclosed `[`");
    };
    match after {
        "" => Ok((h, None)),
        _ => match after.strip_prefix(':') {
            Some(p) => Ok((h, Some(p))),
            None => Err("has junk after `]`"),
        },
    }
}

/// 127.0.0.0/8, ::1 and localhost.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
}

/// The `apply` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplySettings {
    /// Requests per second, 1..=100.
    pub rate_limit: u32,
    /// Requests in flight, at least 1.
    pub concurrency: usize,
    /// Percentage of managed accounts that may lose values in one apply without
    /// `--allow-mass-removal`.
    pub max_removal_percent: f64,
}

impl Default for ApplySettings {
    fn default() -> Self {
        ApplySettings {
            rate_limit: 100,
            concurrency: 16,
            max_removal_percent: 10.0,
        }
    }
}

/// A loaded and validated project file.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The project file as given (relative paths stay relative for messages).
    pub project_file: PathBuf,
    /// The directory holding the project file; users globs and `state` are relative to it.
    pub project_dir: PathBuf,
    pub sdkappid: u32,
    pub admin: String,
    pub endpoint: Endpoint,
    /// `app.api`: the API family the project speaks (default `all_member_push`).
    pub api: crate::api::Family,
    /// Name of the environment variable holding the SecretKey.
    pub secret_env: String,
    /// Declared attribute names, in file order.
    pub attributes: Vec<String>,
    /// The declared `account_type` of attributes that are not `user_id` (timpush only).
    pub account_types: std::collections::BTreeMap<String, crate::model::AccountType>,
    /// What each declared attribute may hold and which tags exist (DESIGN.md §11); empty for
    /// a plain list of names.
    pub policies: crate::policy::Policies,
    /// Users glob patterns as written.
    pub users: Vec<String>,
    /// The sled directory, resolved against `project_dir` (also where `endpoint: embedded`
    /// keeps the emulator's data when the state is in PostgreSQL).
    pub state_dir: PathBuf,
    /// Where the state lives: `state`, overridden by `TIMATTR_STATE`.
    pub state: StateLocation,
    /// `--lock-timeout`: how long to wait for another process's lock on the state.
    pub lock_timeout: Option<std::time::Duration>,
    pub apply: ApplySettings,
}

impl Settings {
    /// The declared account type of attribute `name` (UserID unless declared otherwise).
    pub fn account_type(&self, name: &str) -> crate::model::AccountType {
        self.account_types.get(name).copied().unwrap_or_default()
    }

    /// Each declared attribute with its account type, in declared order.
    pub fn declared_types(&self) -> Vec<(String, crate::model::AccountType)> {
        self.attributes
            .iter()
            .map(|n| (n.clone(), self.account_type(n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::parse("embedded"), Ok(Endpoint::Embedded));
        assert_eq!(
            Endpoint::parse("https://adminapisgp.im.qcloud.com/"),
            Ok(Endpoint::Url {
                base: "https://adminapisgp.im.qcloud.com".into(),
                host: "adminapisgp.im.qcloud.com".into()
            })
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:8080"),
            Ok(Endpoint::Url {
                base: "http://[::1]:8080".into(),
                host: "::1".into()
            })
        );
        assert_eq!(
            Endpoint::parse("http://localhost:9"),
            Ok(Endpoint::Url {
                base: "http://localhost:9".into(),
                host: "localhost".into()
            })
        );
        for bad in [
            "http://example.com",
            "http://192.168.1.1:80",
            "http://[::2]:80",
            "https://h/path",
            "https://h?q",
            "https://u@h",
            "https://h:x",
            "https://[::1",
            "https://[::1]x",
            "https://:80",
            "ws://h",
            "",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["128.0.0.1", "localhost.example.com", "::2", "0.0.0.0"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn every_region_has_a_host() {
        assert_eq!(REGIONS.len(), 7);
        assert_eq!(region_host("china"), Some("console.tim.qq.com"));
        assert_eq!(
            Endpoint::of_region("tokyo").map(|e| e.host().to_owned()),
            Some("adminapijpn.im.qcloud.com".into())
        );
        assert_eq!(region_host("mars"), None);
    }
}

/// Where the last-applied state lives (DESIGN.md §6, §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A sled directory, resolved against the project directory.
    Sled(PathBuf),
    /// A PostgreSQL database; `name` keys this project among others in the same database
    /// (default `app-<sdkappid>`).
    Postgres {
        url: DatabaseUrl,
        name: Option<String>,
    },
}

/// The environment variable that overrides the project file's `state` (a path or a URL).
pub const STATE_ENV: &str = "TIMATTR_STATE";

/// A `postgres://` URL as given. It may carry a password (from `TIMATTR_STATE`), so it is only
/// ever shown through [`DatabaseUrl::redacted`]; `Debug` redacts too.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// The pieces of a PostgreSQL URL. [`UrlParts::split`] is the one place a URL is cut into
/// them: the checks, the redaction and the connection all see the same user, password and
/// hosts (an unencoded `@` read one way here and another way there printed part of a
/// password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub scheme: &'a str,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// `host:port`, or several separated by commas.
    pub hosts: &'a str,
    /// The database name (still percent-encoded), `""` when the URL has none.
    pub dbname: &'a str,
    pub query: Option<&'a str>,
}

/// The one message for a URL that cannot be split unambiguously; it quotes none of it.
const RESERVED_IN_PASSWORD: &str = "the state URL cannot be split unambiguously: its user name or password holds an unencoded reserved character (`@`, `/`, `:`, `?` or `#`); percent-encode it (`@` → %40, `/` → %2F, `:` → %3A, `?` → %3F, `#` → %23)";

impl<'a> UrlParts<'a> {
    /// Splits `url` (`scheme://[user[:password]@]hosts[/dbname][?query]`), refusing any URL
    /// whose user info could be read in two ways.
    pub fn split(url: &'a str) -> Result<UrlParts<'a>, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("not a URL (no `://`)".into());
        };
        let (before_query, query) = match rest.find(['?', '#']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        // An `@` after the authority is the end of a user info cut short by an unencoded
        // `/`, `?` or `#` in the password.
        let late_at = path.contains('@') || query.is_some_and(|q| q.contains('@'));
        let ats = authority.matches('@').count();
        if ats > 1 || late_at {
            return Err(RESERVED_IN_PASSWORD.into());
        }
        let (userinfo, hosts) = match authority.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) if u.matches(':').count() > 1 => return Err(RESERVED_IN_PASSWORD.into()),
            Some(u) => match u.split_once(':') {
                Some((user, password)) => (Some(user), Some(password)),
                None => (Some(u), None),
            },
            None => (None, None),
        };
        Ok(UrlParts {
            scheme,
            user: user.filter(|u| !u.is_empty()),
            password,
            hosts,
            dbname: path,
            query: query.filter(|q| !q.is_empty()),
        })
    }

    /// The `password=` parameters of the query.
    fn query_password(&self) -> bool {
        self.query.is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.to_ascii_lowercase().starts_with("password="))
        })
    }
}

impl DatabaseUrl {
    /// A URL taken as it is (tests, and values already checked by [`DatabaseUrl::parse`]).
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// A `state` value or `TIMATTR_STATE` naming PostgreSQL, checked (DESIGN.md §7): the
    /// scheme in any case (written lower-case), one reading of the user info, a database name.
    /// Its password is registered with the redaction step before anything is checked.
    pub fn parse(value: &str) -> Result<DatabaseUrl, String> {
        crate::redact::register_url_password(value);
        let parts = UrlParts::split(value)?;
        let scheme = parts.scheme.to_ascii_lowercase();
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(format!("`{}://` is not a PostgreSQL URL", parts.scheme));
        }
        let in_query = parts.query.is_some_and(|q| {
            q.split('&').any(|kv| {
                kv.split_once('=')
                    .is_some_and(|(k, v)| k == "dbname" && !v.is_empty())
            })
        });
        if parts.dbname.is_empty() && !in_query {
            return Err(format!(
                "the state URL names no database ({}): add it after the host, e.g. postgres://user@host:5432/timattr",
                DatabaseUrl::new(value).redacted()
            ));
        }
        let rest = &value[parts.scheme.len()..];
        Ok(DatabaseUrl(format!("{scheme}{rest}")))
    }

    /// The URL with everything the user typed, password included: only for the database client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The pieces of the URL (see [`UrlParts::split`]).
    pub fn parts(&self) -> Result<UrlParts<'_>, String> {
        UrlParts::split(&self.0)
    }

    /// The URL without its password (`postgres://user@host/db?...`), safe to print.
    pub fn redacted(&self) -> String {
        let Ok(p) = self.parts() else {
            return "(a URL that cannot be split unambiguously)".into();
        };
        let authority = match p.user {
            Some(user) => format!("{user}@{}", p.hosts),
            None if p.password.is_some() => format!("@{}", p.hosts),
            None => p.hosts.to_owned(),
        };
        // A password can also ride in the query (`?password=`).
        let query = p.query.map(|q| {
            q.split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect::<Vec<_>>()
                .join("&")
        });
        let path = if p.dbname.is_empty() {
            String::new()
        } else {
            format!("/{}", p.dbname)
        };
        match query.filter(|q| !q.is_empty()) {
            Some(q) => format!("{}://{authority}{path}?{q}", p.scheme),
            None => format!("{}://{authority}{path}", p.scheme),
        }
    }

    /// Whether the URL itself carries a password (in the user info or the query). A URL that
    /// cannot be split counts as carrying one.
    pub fn has_password(&self) -> bool {
        match self.parts() {
            Ok(p) => p.password.is_some() || p.query_password(),
            Err(_) => true,
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// The schemes that select PostgreSQL.
const DATABASE_SCHEMES: [&str; 2] = ["postgres", "postgresql"];

/// Whether a `state` value names PostgreSQL rather than a sled directory (the scheme in any
/// case).
pub fn is_database_url(value: &str) -> bool {
    value.split_once("://").is_some_and(|(scheme, _)| {
        DATABASE_SCHEMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
    })
}

/// What a `state` value names: a sled directory (no `://`), PostgreSQL, or an error for any
/// other scheme, never a directory named after a typo.
fn location(value: &str, project_dir: &std::path::Path) -> Result<Option<PathBuf>, String> {
    let Some((scheme, _)) = value.split_once("://") else {
        return Ok(Some(crate::files::normal(&project_dir.join(value))));
    };
    if is_database_url(value) {
        return Ok(None);
    }
    let shown = crate::escape::escape(scheme);
    let lower = scheme.to_ascii_lowercase();
    let hint = match crate::suggest::did_you_mean(&lower, DATABASE_SCHEMES.iter().copied()) {
        Some(near) => format!("; did you mean `{near}://`?"),
        None => String::new(),
    };
    Err(format!(
        "unknown state scheme `{shown}://`: the state is a sled directory (a path without `://`) or a PostgreSQL URL (postgres://user@host:5432/db){hint}"
    ))
}

impl StateLocation {
    /// The project file's `state` (a string, or the `url`/`name` map). A URL with a password is
    /// refused: the project file is committed, the password is not.
    pub fn from_project(
        value: &str,
        name: Option<String>,
        project_dir: &std::path::Path,
    ) -> Result<StateLocation, String> {
        if let Some(dir) = location(value, project_dir)? {
            if name.is_some() {
                return Err("`state.name` applies only to a PostgreSQL `url`".into());
            }
            return Ok(StateLocation::Sled(dir));
        }
        let url = DatabaseUrl::parse(value)?;
        if url.has_password() {
            return Err(format!(
                "the state URL carries a password ({}): no password belongs in the project file; set PGPASSWORD, or give the whole URL in the environment variable {STATE_ENV} (e.g. from a CI secret)",
                url.redacted()
            ));
        }
        Ok(StateLocation::Postgres { url, name })
    }

    /// `TIMATTR_STATE` over the project file's choice: a URL (it may carry a password) keeps a
    /// `name` the project file gave; a path is relative to the project directory. A value that
    /// is not UTF-8 is an error, never ignored.
    pub fn with_env_override(
        self,
        env: Option<&std::ffi::OsStr>,
        project_dir: &std::path::Path,
    ) -> Result<StateLocation, String> {
        let Some(value) = env.filter(|v| !v.is_empty()) else {
            return Ok(self);
        };
        let Some(value) = value.to_str() else {
            // The lossy spelling could still hold a password: it is registered, never shown.
            crate::redact::register_url_password(&value.to_string_lossy());
            return Err(format!(
                "{STATE_ENV} is not valid UTF-8: set it to a sled directory or a postgres:// URL (percent-encode other bytes)"
            ));
        };
        if let Some(dir) = location(value, project_dir)? {
            return Ok(StateLocation::Sled(dir));
        }
        let name = match self {
            StateLocation::Postgres { name, .. } => name,
            StateLocation::Sled(_) => None,
        };
        Ok(StateLocation::Postgres {
            url: DatabaseUrl::parse(value)?,
            name,
        })
    }

    /// How the state is named in messages (never with a password).
    pub fn describe(&self) -> String {
        match self {
            StateLocation::Sled(dir) => format!("state at {}", dir.display()),
            StateLocation::Postgres { url, name } => match name {
                Some(n) => format!("state {n:?} in {}", url.redacted()),
                None => format!("state in {}", url.redacted()),
            },
        }
    }
}

#[cfg(test)]
mod state_location_tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_passwords_found() {
        let u = DatabaseUrl::new(
            "postgres://bob:s3cr%2Ft@db.example.com:5432/timattr?sslmode=require&password=x2",
        );
        assert!(u.has_password());
        let shown = u.redacted();
        assert_eq!(
            shown,
            "postgres://bob@db.example.com:5432/timattr?sslmode=require"
        );
        assert!(!format!("{u:?}").contains("s3cr"));
        assert!(!DatabaseUrl::new("postgresql://bob@h/db").has_password());
        assert!(DatabaseUrl::new("postgres://h/db?password=p").has_password());
    }

    #[test]
    fn project_state_forms() {
        let dir = std::path::Path::new("/p");
        assert_eq!(
            StateLocation::from_project("st", None, dir).unwrap(),
            StateLocation::Sled("/p/st".into())
        );
        let err = StateLocation::from_project("postgres://u:pw@h/db", None, dir).unwrap_err();
        assert!(
            err.contains("PGPASSWORD") && err.contains(STATE_ENV),
            "{err}"
        );
        assert!(!err.contains("pw@"), "{err}");
        assert!(StateLocation::from_project("st", Some("x".into()), dir).is_err());
        let pg =
            StateLocation::from_project("postgres://u@h/db", Some("prod".into()), dir).unwrap();
        // The environment's URL keeps the project's name; a path replaces it.
        let env = |v: &str| Some(std::ffi::OsStr::new(v).to_owned());
        match pg
            .clone()
            .with_env_override(env("postgres://u:pw@other/db").as_deref(), dir)
            .unwrap()
        {
            StateLocation::Postgres { url, name } => {
                assert_eq!(url.expose(), "postgres://u:pw@other/db");
                assert_eq!(name.as_deref(), Some("prod"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pg.with_env_override(env("elsewhere").as_deref(), dir),
            Ok(StateLocation::Sled("/p/elsewhere".into()))
        );
    }
}
