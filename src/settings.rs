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
    /// Name of the environment variable holding the SecretKey.
    pub secret_env: String,
    /// Declared attribute names, in file order.
    pub attributes: Vec<String>,
    /// Users glob patterns as written.
    pub users: Vec<String>,
    /// The sled directory, resolved against `project_dir`.
    pub state_dir: PathBuf,
    pub apply: ApplySettings,
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
