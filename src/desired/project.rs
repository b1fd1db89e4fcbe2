//! The project file (`timattr.yaml`): read into a small tree of numbered nodes, then checked
//! key by key into [`Settings`], every problem reported at its node.
//!
//! The file is small, so a generic tree is simplest here; the users files, which can hold
//! millions of accounts, are walked straight into the model instead (see `users.rs`).

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::walk::{hard_error, locate_node, located, KeySeed, Problem, Walk};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::limits;
use crate::settings::{ApplySettings, Endpoint, Settings};

/// Region names of the project file and the API host of each (tim-api.md §1).
pub(crate) const REGIONS: [(&str, &str); 7] = [
    ("china", "console.tim.qq.com"),
    ("singapore", "adminapisgp.im.qcloud.com"),
    ("seoul", "adminapikr.im.qcloud.com"),
    ("frankfurt", "adminapiger.im.qcloud.com"),
    ("silicon-valley", "adminapiusa.im.qcloud.com"),
    ("jakarta", "adminapiidn.im.qcloud.com"),
    ("tokyo", "adminapijpn.im.qcloud.com"),
];

const DEFAULT_SECRET_ENV: &str = "TIM_SECRET_KEY";
const DEFAULT_STATE: &str = "state";

/// A node of the project file: its ordinal (for locating it) and what it holds.
#[derive(Debug)]
pub(crate) struct Node {
    pub ord: u32,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order: key ordinal, key, value.
    Map(Vec<(u32, String, Node)>),
}

impl Kind {
    fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
        }
    }
}

/// Reads a document into a tree of numbered nodes.
pub(crate) fn tree(text: &str, walk: &mut Walk) -> Result<Node, serde_yaml::Error> {
    TreeSeed { walk }.deserialize(serde_yaml::Deserializer::from_str(text))
}

struct TreeSeed<'w> {
    walk: &'w mut Walk,
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl TreeSeed<'_> {
    fn leaf<E: de::Error>(self, kind: Kind) -> Result<Node, E> {
        Ok(Node {
            ord: self.walk.node()?,
            kind,
        })
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        self.leaf(Kind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        self.leaf(Kind::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        self.leaf(Kind::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        self.leaf(Kind::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        self.leaf(Kind::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        self.leaf(Kind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.leaf(Kind::Str(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.leaf(Kind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.leaf(Kind::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let ord = self.walk.node()?;
        let mut items = Vec::new();
        while let Some(n) = seq.next_element_seed(TreeSeed {
            walk: &mut *self.walk,
        })? {
            items.push(n);
        }
        Ok(Node {
            ord,
            kind: Kind::Seq(items),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let ord = self.walk.node()?;
        let mut entries = Vec::new();
        while let Some((key, name)) = map.next_key_seed(KeySeed {
            walk: &mut *self.walk,
        })? {
            let value = map.next_value_seed(TreeSeed {
                walk: &mut *self.walk,
            })?;
            entries.push((key, Cow::into_owned(name), value));
        }
        Ok(Node {
            ord,
            kind: Kind::Map(entries),
        })
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Node, A::Error> {
        self.walk.node::<A::Error>()?;
        Err(de::Error::custom(
            "YAML tags (`!name value`) are not supported; remove the tag",
        ))
    }
}

/// Loads and checks the project file.
pub(crate) fn load(path: &Path) -> Result<Settings, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(
            path,
            0,
            0,
            format!("cannot read the project file: {e}"),
        )
        .with_help(
            "run timattr in the directory holding timattr.yaml, or pass -c FILE",
        )])
    })?;
    let mut walk = Walk::new(text.len());
    let root =
        tree(&text, &mut walk).map_err(|e| Diagnostics(vec![hard_error(path, &text, &e)]))?;
    let settings = check(&root, path, &mut walk);
    if walk.has_problems() {
        let problems = std::mem::take(&mut walk.problems);
        let reparse = |w: &mut Walk| tree(&text, w).map(|_| ());
        return Err(Diagnostics(located(
            path,
            text.len(),
            problems,
            walk.more,
            &reparse,
        )));
    }
    Ok(settings)
}

/// Where the `index`-th pattern of `users` is in the project file (for "matches no file").
pub(crate) fn users_pattern_location(path: &Path, index: usize) -> (usize, usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (0, 0);
    };
    let Ok(root) = tree(&text, &mut Walk::new(text.len())) else {
        return (0, 0);
    };
    let Kind::Map(top) = &root.kind else {
        return (0, 0);
    };
    let Some((_, _, users)) = top.iter().find(|(_, k, _)| k == "users") else {
        return (0, 0);
    };
    let ord = match &users.kind {
        Kind::Seq(items) => items.get(index).map_or(users.ord, |n| n.ord),
        _ => users.ord,
    };
    locate_node(text.len(), ord, &|w: &mut Walk| tree(&text, w).map(|_| ()))
}

/// The keys of a map node, after reporting unknown and repeated ones.
struct Fields<'n> {
    ord: u32,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, n)| *n)
    }
}

/// Checks the tree, recording problems in `walk`; the returned settings are only meaningful
/// when no problem was recorded.
fn check(root: &Node, path: &Path, walk: &mut Walk) -> Settings {
    let project_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut s = Settings {
        project_file: path.to_path_buf(),
        project_dir: project_dir.clone(),
        sdkappid: 0,
        admin: String::new(),
        endpoint: Endpoint::Embedded,
        secret_env: DEFAULT_SECRET_ENV.to_owned(),
        attributes: Vec::new(),
        users: Vec::new(),
        state_dir: project_dir.join(DEFAULT_STATE),
        apply: ApplySettings::default(),
    };
    if matches!(root.kind, Kind::Null) {
        walk.problem(
            Problem::new(root.ord, "the project file is empty")
                .help("it needs at least `app`, `attributes` and `users`"),
        );
        return s;
    }
    let Some(top) = fields(
        root,
        "the project file",
        &["app", "attributes", "users", "state", "apply"],
        walk,
    ) else {
        return s;
    };

    match top.get("app") {
        Some(app) => check_app(app, &mut s, walk),
        None => walk.problem(Problem::new(
            top.ord,
            "missing `app` (sdkappid, admin, region)",
        )),
    }
    match top.get("attributes") {
        Some(n) => s.attributes = check_attributes(n, walk),
        None => walk.problem(
            Problem::new(top.ord, "missing `attributes`")
                .help("list the app's attribute names, e.g. attributes: [sex, city, tier]"),
        ),
    }
    match top.get("users") {
        Some(n) => s.users = check_users(n, &project_dir, walk),
        None => walk.problem(
            Problem::new(top.ord, "missing `users`")
                .help("list the users files as globs, e.g. users: [\"users/*.yaml\"]"),
        ),
    }
    if let Some(n) = top.get("state") {
        if let Some(dir) = string(n, "`state`", walk) {
            if dir.is_empty() {
                walk.problem(Problem::new(n.ord, "`state` is empty"));
            } else {
                s.state_dir = project_dir.join(dir);
            }
        }
    }
    if let Some(n) = top.get("apply") {
        if !matches!(n.kind, Kind::Null) {
            check_apply(n, &mut s.apply, walk);
        }
    }
    s
}

/// The entries of a map node; reports a non-map, unknown keys and repeated keys.
fn fields<'n>(node: &'n Node, what: &str, allowed: &[&str], walk: &mut Walk) -> Option<Fields<'n>> {
    let Kind::Map(entries) = &node.kind else {
        walk.problem(Problem::new(
            node.ord,
            format!("{what} must be a map, not {}", node.kind.describe()),
        ));
        return None;
    };
    let mut out = Fields {
        ord: node.ord,
        entries: Vec::with_capacity(entries.len()),
    };
    let mut seen: Vec<(&str, u32)> = Vec::new();
    for (key_ord, key, value) in entries {
        if !allowed.contains(&key.as_str()) {
            walk.problem(
                Problem::new(*key_ord, format!("unknown key `{key}` in {what}"))
                    .help(format!("expected one of: {}", allowed.join(", "))),
            );
        } else if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            walk.problem(
                Problem::new(*key_ord, format!("`{key}` appears twice in {what}")).first_at(*first),
            );
        } else {
            seen.push((key, *key_ord));
            out.entries.push((key, value));
        }
    }
    Some(out)
}

fn string<'n>(node: &'n Node, what: &str, walk: &mut Walk) -> Option<&'n str> {
    match &node.kind {
        Kind::Str(s) => Some(s),
        other => {
            walk.problem(Problem::new(
                node.ord,
                format!("{what} must be a string, not {}", other.describe()),
            ));
            None
        }
    }
}

/// An integer in `range`, or a problem saying what is allowed.
fn integer(node: &Node, what: &str, min: i128, max: i128, walk: &mut Walk) -> Option<i128> {
    match node.kind {
        Kind::Int(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            walk.problem(Problem::new(
                node.ord,
                format!(
                    "{what} must be an integer from {min} to {max}, not {}",
                    describe_value(node)
                ),
            ));
            None
        }
    }
}

fn describe_value(node: &Node) -> String {
    match &node.kind {
        Kind::Int(v) => v.to_string(),
        Kind::Float(v) => v.to_string(),
        Kind::Str(s) => format!("{s:?}"),
        Kind::Bool(b) => b.to_string(),
        other => other.describe().to_owned(),
    }
}

#[allow(clippy::too_many_lines)] // split by the desired rework
fn check_app(app: &Node, s: &mut Settings, walk: &mut Walk) {
    let Some(f) = fields(
        app,
        "`app`",
        &["sdkappid", "admin", "region", "endpoint", "secret_env"],
        walk,
    ) else {
        return;
    };
    match f.get("sdkappid") {
        Some(n) => {
            if let Some(v) = integer(n, "`sdkappid`", 0, u32::MAX.into(), walk) {
                s.sdkappid = u32::try_from(v).unwrap_or_default();
            }
        }
        None => walk.problem(Problem::new(f.ord, "missing `sdkappid` in `app`")),
    }
    match f.get("admin") {
        Some(n) => {
            if let Some(admin) = string(n, "`admin`", walk) {
                if admin.is_empty() || admin.len() > limits::MAX_ACCOUNT_BYTES {
                    walk.problem(Problem::new(
                        n.ord,
                        format!(
                            "`admin` must be an account id of 1 to {} bytes, not {} bytes",
                            limits::MAX_ACCOUNT_BYTES,
                            admin.len()
                        ),
                    ));
                } else {
                    s.admin = admin.to_owned();
                }
            }
        }
        None => walk.problem(Problem::new(f.ord, "missing `admin` in `app`")),
    }
    let region = f.get("region").and_then(|n| {
        let r = string(n, "`region`", walk)?;
        match REGIONS.iter().find(|(name, _)| *name == r) {
            Some((_, host)) => Some(Endpoint::Url {
                base: format!("https://{host}"),
                host: (*host).to_owned(),
            }),
            None => {
                let names: Vec<&str> = REGIONS.iter().map(|(n, _)| *n).collect();
                walk.problem(
                    Problem::new(n.ord, format!("unknown region {r:?}"))
                        .help(format!("regions: {}", names.join(", "))),
                );
                None
            }
        }
    });
    let endpoint = f.get("endpoint").and_then(|n| {
        let e = string(n, "`endpoint`", walk)?;
        match parse_endpoint(e) {
            Ok(ep) => Some(ep),
            Err(msg) => {
                walk.problem(Problem::new(n.ord, msg).help(
                    "write https://HOST[:PORT], http://127.0.0.1:PORT (loopback only) or embedded",
                ));
                None
            }
        }
    });
    // `endpoint` overrides `region`.
    match (endpoint, region) {
        (Some(e), _) | (None, Some(e)) => s.endpoint = e,
        (None, None) => {
            if f.get("region").is_none() && f.get("endpoint").is_none() {
                walk.problem(
                    Problem::new(f.ord, "`app` needs `region` (or `endpoint`)")
                        .help(format!("regions: {}", REGIONS.map(|(n, _)| n).join(", "))),
                );
            }
        }
    }
    if let Some(n) = f.get("secret_env") {
        if let Some(name) = string(n, "`secret_env`", walk) {
            if is_env_name(name) {
                s.secret_env = name.to_owned();
            } else {
                walk.problem(
                    Problem::new(
                        n.ord,
                        format!("`secret_env` must name an environment variable, not {name:?}"),
                    )
                    .help(
                        "the secret itself never goes in a file; e.g. secret_env: TIM_SECRET_KEY",
                    ),
                );
            }
        }
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `embedded`, `https://host[:port]`, or `http://` for loopback hosts only.
pub(crate) fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
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
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err(format!("endpoint {s:?} has an unclosed `[`"));
        };
        match after {
            "" => (h, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(format!("endpoint {s:?} has junk after `]`")),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("endpoint {s:?} has no host"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err(format!("endpoint {s:?} has an invalid port {p:?}"));
        }
    }
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

/// 127.0.0.0/8, ::1 and localhost: where plain http cannot be sniffed on the way.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
}

fn check_attributes(node: &Node, walk: &mut Walk) -> Vec<String> {
    let Kind::Seq(items) = &node.kind else {
        walk.problem(
            Problem::new(
                node.ord,
                format!(
                    "`attributes` must be a list of names, not {}",
                    node.kind.describe()
                ),
            )
            .help("e.g. attributes: [sex, city, tier]"),
        );
        return Vec::new();
    };
    if items.len() > limits::MAX_ATTRIBUTE_NAMES {
        walk.problem(Problem::new(
            node.ord,
            format!(
                "`attributes` lists {} names; an app has at most {}",
                items.len(),
                limits::MAX_ATTRIBUTE_NAMES
            ),
        ));
    }
    let mut names: Vec<(String, u32)> = Vec::with_capacity(items.len());
    for item in items {
        let Some(name) = string(item, "an attribute name", walk) else {
            continue;
        };
        if name.is_empty() || name.len() > limits::MAX_ATTR_BYTES {
            walk.problem(Problem::new(
                item.ord,
                format!(
                    "attribute name {name:?} is {} bytes long; names are 1 to {} bytes (UTF-8)",
                    name.len(),
                    limits::MAX_ATTR_BYTES
                ),
            ));
        } else if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
            walk.problem(
                Problem::new(item.ord, format!("attribute {name:?} is listed twice"))
                    .first_at(*first),
            );
        } else {
            names.push((name.to_owned(), item.ord));
        }
    }
    names.into_iter().map(|(n, _)| n).collect()
}

fn check_users(node: &Node, project_dir: &Path, walk: &mut Walk) -> Vec<String> {
    let help = "e.g. users: [\"users/*.yaml\"] (globs relative to the project file)";
    let items = match &node.kind {
        Kind::Seq(items) if !items.is_empty() => items,
        Kind::Seq(_) => {
            walk.problem(Problem::new(node.ord, "`users` is an empty list").help(help));
            return Vec::new();
        }
        other => {
            walk.problem(
                Problem::new(
                    node.ord,
                    format!(
                        "`users` must be a list of glob patterns, not {}",
                        other.describe()
                    ),
                )
                .help(help),
            );
            return Vec::new();
        }
    };
    let mut patterns = Vec::with_capacity(items.len());
    for item in items {
        let Some(p) = string(item, "a users pattern", walk) else {
            continue;
        };
        match super::expand(project_dir, p) {
            Ok(files) if files.is_empty() => walk.problem(Problem::new(
                item.ord,
                format!(
                    "users pattern {p:?} matches no file (relative to {})",
                    project_dir.display()
                ),
            )),
            Ok(_) => {}
            Err(msg) => walk.problem(Problem::new(item.ord, msg)),
        }
        patterns.push(p.to_owned());
    }
    patterns
}

fn check_apply(node: &Node, apply: &mut ApplySettings, walk: &mut Walk) {
    let Some(f) = fields(
        node,
        "`apply`",
        &["rate_limit", "concurrency", "max_removal_percent"],
        walk,
    ) else {
        return;
    };
    if let Some(n) = f.get("rate_limit") {
        if let Some(v) = integer(n, "`rate_limit`", 1, 100, walk) {
            apply.rate_limit = u32::try_from(v).unwrap_or(100);
        }
    }
    if let Some(n) = f.get("concurrency") {
        if let Some(v) = integer(n, "`concurrency`", 1, 1_000_000, walk) {
            apply.concurrency = usize::try_from(v).unwrap_or(16);
        }
    }
    if let Some(n) = f.get("max_removal_percent") {
        let v = match n.kind {
            Kind::Int(v) => Some(v as f64),
            Kind::Float(v) => Some(v),
            _ => None,
        };
        match v {
            Some(v) if (0.0..=100.0).contains(&v) => apply.max_removal_percent = v,
            _ => walk.problem(Problem::new(
                n.ord,
                format!(
                    "`max_removal_percent` must be a number from 0 to 100, not {}",
                    describe_value(n)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("embedded"), Ok(Endpoint::Embedded));
        assert_eq!(
            parse_endpoint("https://adminapisgp.im.qcloud.com/"),
            Ok(Endpoint::Url {
                base: "https://adminapisgp.im.qcloud.com".into(),
                host: "adminapisgp.im.qcloud.com".into()
            })
        );
        assert_eq!(
            parse_endpoint("http://[::1]:8080"),
            Ok(Endpoint::Url {
                base: "http://[::1]:8080".into(),
                host: "::1".into()
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
            "https://:80",
            "ws://h",
            "",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
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
    fn env_names() {
        assert!(is_env_name("TIM_SECRET_KEY"));
        assert!(is_env_name("_k2"));
        assert!(!is_env_name("2K"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("A-B"));
    }

    #[test]
    fn every_region_has_a_host() {
        assert_eq!(REGIONS.len(), 7);
        assert!(REGIONS.contains(&("china", "console.tim.qq.com")));
    }

    #[test]
    fn tree_numbers_nodes_in_document_order() {
        let root = tree("a: [x, 1]\nb: ~\n", &mut Walk::new(100)).unwrap();
        let Kind::Map(entries) = root.kind else {
            panic!("not a map")
        };
        let ords: Vec<u32> = entries.iter().map(|(k, _, v)| k * 100 + v.ord).collect();
        assert_eq!(root.ord, 0);
        assert_eq!(ords, [100 + 2, 500 + 6]);
    }
}
