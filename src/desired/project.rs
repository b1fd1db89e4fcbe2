//! The project file (`timattr.yaml`): read into a small tree of positioned nodes, then
//! checked key by key into [`Settings`], every problem reported at its node. That includes the
//! value policies (DESIGN.md §11): `attributes` entries `{name, values|pattern}` and the
//! top-level `tags`, compiled here once into [`Policies`].
//!
//! The file is small, so a generic tree is simplest here; the users files, which can hold
//! millions of accounts, are walked straight into the model instead (see `users.rs`).

use std::path::{Path, PathBuf};

use super::events::{Ev, Hard, Pos, Stream, Style};
use super::problems::{hard_diagnostic, source_lines, Problem, Problems};
use super::scalar::{self, Plain};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{limits, AccountType};
use crate::policy::{Pattern, Policies, Policy};
use crate::settings::{ApplySettings, Endpoint, Settings, StateLocation, REGIONS};

const DEFAULT_SECRET_ENV: &str = "TIM_SECRET_KEY";
const DEFAULT_STATE: &str = "state";

/// A node of the project file: where it is and what it holds.
#[derive(Debug)]
pub(crate) struct Node {
    pub pos: Pos,
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
    /// Entries in file order: key position, key, value.
    Map(Vec<(Pos, String, Node)>),
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

/// Reads a document into a tree (an empty document is a null node at 1:1).
pub(crate) fn tree(text: &str) -> Result<Node, Hard> {
    tree_and_tags(text).map(|(root, _)| root)
}

/// [`tree`], and the tags it refused (each a problem of the file; the node is read as text).
fn tree_and_tags(text: &str) -> Result<(Node, Vec<Hard>), Hard> {
    let mut s = Stream::new(text, 0);
    let (ev, pos) = s.next()?;
    if matches!(ev, Ev::End) {
        let root = Node {
            pos: Pos { line: 1, col: 1 },
            kind: Kind::Null,
        };
        return Ok((root, s.take_tag_errors()));
    }
    let root = node(&mut s, ev, pos)?;
    s.finish()?;
    Ok((root, s.take_tag_errors()))
}

/// The node starting with `ev`. Recursion is bounded by the stream's depth cap.
fn node(s: &mut Stream, ev: Ev, pos: Pos) -> Result<Node, Hard> {
    let kind = match ev {
        Ev::Scalar(text, Style::Text) => Kind::Str(text.into_owned()),
        Ev::Scalar(text, Style::Plain) => match scalar::resolve(&text) {
            Plain::Null => Kind::Null,
            Plain::Bool(b) => Kind::Bool(b),
            Plain::Int(i) => Kind::Int(i),
            Plain::Float(f) => Kind::Float(f),
            Plain::Text => Kind::Str(text.into_owned()),
        },
        Ev::SeqStart => {
            let mut items = Vec::new();
            loop {
                match s.next()? {
                    (Ev::SeqEnd | Ev::End, _) => break,
                    (ev, pos) => items.push(node(s, ev, pos)?),
                }
            }
            Kind::Seq(items)
        }
        Ev::MapStart => {
            let mut entries = Vec::new();
            let mut merges = Vec::new();
            loop {
                let (key, at, style) = match s.next()? {
                    (Ev::MapEnd | Ev::End, _) => break,
                    (Ev::Scalar(key, style), at) => (key.into_owned(), at, style),
                    (_, at) => return Err(Hard::new(at, "a key must be plain text")),
                };
                let (ev, pos) = s.next()?;
                let value = node(s, ev, pos)?;
                if key == "<<" && style == Style::Plain {
                    merges.push(value);
                } else {
                    entries.push((at, key, value));
                }
            }
            merge_into(&mut entries, merges)?;
            Kind::Map(entries)
        }
        Ev::SeqEnd | Ev::MapEnd | Ev::End => Kind::Null,
    };
    Ok(Node { pos, kind })
}

/// Adds what the merge keys of a map give (`<<: *base`, `<<: [*a, *b]`): keys the map does
/// not have itself, the earlier merge winning (YAML's merge key type).
fn merge_into(entries: &mut Vec<(Pos, String, Node)>, merges: Vec<Node>) -> Result<(), Hard> {
    for merge in merges {
        let sources = match merge.kind {
            Kind::Map(m) => vec![m],
            Kind::Seq(items) => {
                let mut maps = Vec::with_capacity(items.len());
                for item in items {
                    match item.kind {
                        Kind::Map(m) => maps.push(m),
                        other => return Err(not_mergeable(item.pos, &other)),
                    }
                }
                maps
            }
            other => return Err(not_mergeable(merge.pos, &other)),
        };
        for source in sources {
            for (at, key, value) in source {
                if !entries.iter().any(|(_, k, _)| *k == key) {
                    entries.push((at, key, value));
                }
            }
        }
    }
    Ok(())
}

fn not_mergeable(pos: Pos, kind: &Kind) -> Hard {
    Hard::new(
        pos,
        format!(
            "a merge key `<<` takes a map or a list of maps, not {}",
            kind.describe()
        ),
    )
}

/// Loads and checks the project file. It does not look at the users files (their globs are
/// expanded by [`super::load_users`]), so commands that do not need them do not fail on them.
pub(crate) fn load(path: &Path) -> Result<Settings, Diagnostics> {
    let text = super::read_input(path).map_err(|e| {
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
    let (root, refused) =
        tree_and_tags(&text).map_err(|h| Diagnostics(vec![hard_diagnostic(path, &text, h)]))?;
    let mut problems = Problems::default();
    for h in refused {
        problems.push(h.into());
    }
    let mut settings = check(&root, path, &mut problems);
    if !problems.is_empty() {
        return Err(Diagnostics(problems.into_diagnostics(path, &text)));
    }
    let env = crate::settings::STATE_ENV;
    settings.state = settings
        .state
        .with_env_override(std::env::var_os(env).as_deref(), &settings.project_dir)
        .map_err(|m| Diagnostics(vec![Diagnostic::new(Path::new(env), 0, 0, m)]))?;
    if let StateLocation::Sled(dir) = &settings.state {
        settings.state_dir = dir.clone();
    }
    Ok(settings)
}

/// Where the `index`-th pattern of `users` is in the project file (for "matches no file").
pub(crate) fn users_pattern_location(path: &Path, index: usize) -> Option<(Pos, String)> {
    let text = super::read_input(path).ok()?;
    let root = tree(&text).ok()?;
    let Kind::Map(top) = &root.kind else {
        return None;
    };
    let (_, _, users) = top.iter().find(|(_, k, _)| k == "users")?;
    let pos = match &users.kind {
        Kind::Seq(items) => items.get(index).map_or(users.pos, |n| n.pos),
        _ => users.pos,
    };
    let line = source_lines(&text, std::iter::once(pos.line)).pop()?.1;
    Some((pos, line))
}

/// The keys of a map node, after reporting unknown and repeated ones.
struct Fields<'n> {
    pos: Pos,
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

/// Checks the tree, recording problems; the returned settings are only meaningful
/// when no problem was recorded.
fn check(root: &Node, path: &Path, problems: &mut Problems) -> Settings {
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
        api: crate::api::Family::default(),
        account_types: Default::default(),
        secret_env: DEFAULT_SECRET_ENV.to_owned(),
        attributes: Vec::new(),
        policies: Policies::default(),
        users: Vec::new(),
        state_dir: project_dir.join(DEFAULT_STATE),
        state: StateLocation::Sled(project_dir.join(DEFAULT_STATE)),
        lock_timeout: None,
        apply: ApplySettings::default(),
    };
    if matches!(root.kind, Kind::Null) {
        problems.push(
            Problem::new(root.pos, "the project file is empty")
                .help("it needs at least `app`, `attributes` and `users`"),
        );
        return s;
    }
    let Some(top) = fields(
        root,
        "the project file",
        &["app", "attributes", "tags", "users", "state", "apply"],
        problems,
    ) else {
        return s;
    };

    match top.get("app") {
        Some(app) => check_app(app, &mut s, problems),
        None => problems.push(Problem::new(
            top.pos,
            "missing `app` (sdkappid, admin, region)",
        )),
    }
    match top.get("attributes") {
        Some(n) => {
            let specs = check_attributes(n, problems);
            let mut policies = Vec::with_capacity(specs.len());
            for spec in specs {
                if let (Some((name, _)), Some((ty, at))) = (&spec.name, spec.account_type) {
                    check_account_type(name, ty, at, &mut s, problems);
                }
                s.attributes.extend(spec.name.map(|(n, _)| n));
                policies.push(spec.policy.map(|(p, _)| p));
            }
            s.policies = Policies::new(policies, None);
        }
        None => problems.push(
            Problem::new(top.pos, "missing `attributes`")
                .help("list the app's attribute names, e.g. attributes: [sex, city, tier]"),
        ),
    }
    if let Some(tags) = top.get("tags").and_then(|n| check_tags(n, problems)) {
        s.policies = std::mem::take(&mut s.policies).with_tags(tags);
    }
    match top.get("users") {
        Some(n) => s.users = check_users(n, problems),
        None => problems.push(
            Problem::new(top.pos, "missing `users`")
                .help("list the users files as globs, e.g. users: [\"users/*.yaml\"]"),
        ),
    }
    if let Some(n) = top.get("state") {
        check_state(n, &mut s, problems);
    }
    if let Some(n) = top.get("apply") {
        if !matches!(n.kind, Kind::Null) {
            check_apply(n, &mut s.apply, problems);
        }
    }
    s
}

/// The entries of a map node; reports a non-map, unknown keys and repeated keys.
/// `state`: a sled directory, a PostgreSQL URL, or `{url, name}` (DESIGN.md §7); a URL with a
/// password is refused (`StateLocation::from_project` says where the password goes instead).
fn check_state(node: &Node, s: &mut Settings, problems: &mut Problems) {
    let (value, name) = if matches!(node.kind, Kind::Map(_)) {
        let Some(f) = fields(node, "`state`", &["url", "name"], problems) else {
            return;
        };
        let Some(url) = f.get("url") else {
            problems.push(Problem::new(
                node.pos,
                "`state` needs a `url` (postgres://...)",
            ));
            return;
        };
        let name = match f.get("name") {
            Some(x) => match string(x, "`state.name`", problems) {
                Some(n) => Some(n.to_owned()),
                None => return,
            },
            None => None,
        };
        let Some(url) = string(url, "`state.url`", problems) else {
            return;
        };
        (url, name)
    } else {
        let Some(value) = string(node, "`state`", problems) else {
            return;
        };
        (value, None)
    };
    if value.is_empty() || name.as_deref() == Some("") {
        problems.push(Problem::new(node.pos, "`state` is empty"));
        return;
    }
    match StateLocation::from_project(value, name, &s.project_dir) {
        Ok(state) => s.state = state,
        Err(m) => problems.push(Problem::new(node.pos, m)),
    }
}

fn fields<'n>(
    node: &'n Node,
    what: &str,
    allowed: &[&str],
    problems: &mut Problems,
) -> Option<Fields<'n>> {
    let Kind::Map(entries) = &node.kind else {
        problems.push(Problem::new(
            node.pos,
            format!("{what} must be a map, not {}", node.kind.describe()),
        ));
        return None;
    };
    let mut out = Fields {
        pos: node.pos,
        entries: Vec::with_capacity(entries.len()),
    };
    let mut seen: Vec<(&str, Pos)> = Vec::new();
    for (key_pos, key, value) in entries {
        if !allowed.contains(&key.as_str()) {
            let p = Problem::new(*key_pos, format!("unknown key `{key}` in {what}"));
            problems.push(
                match crate::suggest::did_you_mean(key, allowed.iter().copied()) {
                    Some(near) => p.help(format!("did you mean `{near}`?")),
                    None => p.help(format!("expected one of: {}", allowed.join(", "))),
                },
            );
        } else if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            problems.push(
                Problem::new(*key_pos, format!("`{key}` appears twice in {what}")).first_at(*first),
            );
        } else {
            seen.push((key, *key_pos));
            out.entries.push((key, value));
        }
    }
    Some(out)
}

fn string<'n>(node: &'n Node, what: &str, problems: &mut Problems) -> Option<&'n str> {
    match &node.kind {
        Kind::Str(s) => Some(s),
        other => {
            problems.push(Problem::new(
                node.pos,
                format!("{what} must be a string, not {}", other.describe()),
            ));
            None
        }
    }
}

/// An integer in `range`, or a problem saying what is allowed.
fn integer(node: &Node, what: &str, min: i128, max: i128, problems: &mut Problems) -> Option<i128> {
    match node.kind {
        Kind::Int(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            let problem = Problem::new(
                node.pos,
                format!(
                    "{what} must be an integer from {min} to {max}, not {}",
                    describe_value(node)
                ),
            );
            problems.push(match integer_help(node, what, min, max) {
                Some(help) => problem.help(help),
                None => problem,
            });
            None
        }
    }
}

/// The fix when the value is the right number in the wrong YAML type: a quoted number, or a
/// float (`1e2`, `100.0`) where only an integer will do.
fn integer_help(node: &Node, what: &str, min: i128, max: i128) -> Option<String> {
    let key = what.trim_matches('`');
    match &node.kind {
        Kind::Str(s) => {
            let v: i128 = s.trim().parse().ok()?;
            (min..=max)
                .contains(&v)
                .then(|| format!("remove the quotes: `{key}: {v}` (a quoted value is a string)"))
        }
        Kind::Float(v) if v.fract() == 0.0 && (min as f64..=max as f64).contains(v) => Some(format!(
            "write it as a whole number without exponent or decimal point: `{key}: {}` (YAML reads `1e2` and `100.0` as floats)",
            *v as i128
        )),
        Kind::Float(_) => Some("write it as a whole number, without exponent or decimal point".into()),
        _ => None,
    }
}

fn describe_value(node: &Node) -> String {
    match &node.kind {
        Kind::Int(v) => v.to_string(),
        // `1e2` is 100 to Rust's Display: say it is a float ("100.0"), not "not 100".
        Kind::Float(v) => format!("the float {v:?}"),
        Kind::Str(s) => format!("the string {s:?}"),
        Kind::Bool(b) => b.to_string(),
        other => other.describe().to_owned(),
    }
}

fn check_app(app: &Node, s: &mut Settings, problems: &mut Problems) {
    let Some(f) = fields(
        app,
        "`app`",
        &[
            "sdkappid",
            "admin",
            "region",
            "endpoint",
            "secret_env",
            "api",
        ],
        problems,
    ) else {
        return;
    };
    match f.get("sdkappid") {
        Some(n) => {
            if let Some(v) = integer(n, "`sdkappid`", 0, u32::MAX.into(), problems) {
                s.sdkappid = u32::try_from(v).unwrap_or_default();
            }
        }
        None => problems.push(Problem::new(f.pos, "missing `sdkappid` in `app`")),
    }
    match f.get("admin") {
        Some(n) => check_admin(n, s, problems),
        None => problems.push(Problem::new(f.pos, "missing `admin` in `app`")),
    }
    check_endpoint(&f, s, problems);
    if let Some(n) = f.get("secret_env") {
        check_secret_env(n, s, problems);
    }
    if let Some(n) = f.get("api") {
        check_api(n, s, problems);
    }
}

/// `api`: the API family (DESIGN.md §12), `all_member_push` (the default) or `timpush`.
fn check_api(n: &Node, s: &mut Settings, problems: &mut Problems) {
    use crate::api::Family;
    let Some(api) = string(n, "`api`", problems) else {
        return;
    };
    match Family::parse(api) {
        Some(family) => s.api = family,
        None => {
            let names = Family::ALL.map(Family::as_str);
            let help = match crate::suggest::did_you_mean(api, names) {
                Some(near) => format!("did you mean `{near}`? families: {}", names.join(", ")),
                None => format!("families: {}", names.join(", ")),
            };
            problems.push(Problem::new(n.pos, format!("unknown API family {api:?}")).help(help));
        }
    }
}

fn check_admin(n: &Node, s: &mut Settings, problems: &mut Problems) {
    let Some(admin) = string(n, "`admin`", problems) else {
        return;
    };
    if admin.is_empty() || admin.len() > limits::MAX_ACCOUNT_BYTES {
        problems.push(Problem::new(
            n.pos,
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

/// `region` and `endpoint`; `endpoint` overrides `region`.
fn check_endpoint(f: &Fields, s: &mut Settings, problems: &mut Problems) {
    let region_names = || REGIONS.map(|(n, _)| n).join(", ");
    let region = f.get("region").and_then(|n| {
        let r = string(n, "`region`", problems)?;
        match Endpoint::of_region(r) {
            Some(endpoint) => Some(endpoint),
            None => {
                let help = match crate::suggest::did_you_mean(r, REGIONS.map(|(n, _)| n)) {
                    Some(near) => format!("did you mean `{near}`? regions: {}", region_names()),
                    None => format!("regions: {}", region_names()),
                };
                problems.push(Problem::new(n.pos, format!("unknown region {r:?}")).help(help));
                None
            }
        }
    });
    let endpoint = f.get("endpoint").and_then(|n| {
        let e = string(n, "`endpoint`", problems)?;
        match Endpoint::parse(e) {
            Ok(ep) => Some(ep),
            Err(msg) => {
                problems.push(Problem::new(n.pos, msg).help(
                    "write https://HOST[:PORT], http://127.0.0.1:PORT (loopback only) or embedded",
                ));
                None
            }
        }
    });
    match (endpoint, region) {
        (Some(e), _) | (None, Some(e)) => s.endpoint = e,
        (None, None) => {
            if f.get("region").is_none() && f.get("endpoint").is_none() {
                problems.push(
                    Problem::new(f.pos, "`app` needs `region` (or `endpoint`)")
                        .help(format!("regions: {}", region_names())),
                );
            }
        }
    }
}

fn check_secret_env(n: &Node, s: &mut Settings, problems: &mut Problems) {
    let Some(name) = string(n, "`secret_env`", problems) else {
        return;
    };
    if is_env_name(name) {
        s.secret_env = name.to_owned();
    } else {
        problems.push(
            Problem::new(
                n.pos,
                format!("`secret_env` must name an environment variable, not {name:?}"),
            )
            .help("the secret itself never goes in a file; e.g. secret_env: TIM_SECRET_KEY"),
        );
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A declared `account_type`: only the timpush family has account types (DESIGN.md §12).
fn check_account_type(
    name: &str,
    ty: AccountType,
    at: Pos,
    s: &mut Settings,
    problems: &mut Problems,
) {
    if s.api != crate::api::Family::Timpush {
        problems.push(
            Problem::new(
                at,
                format!("`account_type` of attribute {name:?} needs `app.api: timpush`"),
            )
            .help("the all_member_push family has no account types: set `api: timpush` under `app`, or drop `account_type`"),
        );
    } else if ty != AccountType::UserId {
        s.account_types.insert(name.to_owned(), ty);
    }
}

/// An entry of `attributes` once checked: a plain name, or the keys of its map.
#[derive(Default)]
struct AttributeSpec {
    name: Option<(String, Pos)>,
    /// `values` or `pattern`, with the key that gave it.
    policy: Option<(Policy, &'static str)>,
    /// `account_type` (timpush only, DESIGN.md §12), with where it was given.
    account_type: Option<(AccountType, Pos)>,
}

type KeyCheck = fn(&Node, &str, &mut AttributeSpec, &mut Problems);

/// The keys of an attribute's map, in the order they are checked, and the check of each: a
/// new key is one line here (and its field in [`AttributeSpec`]).
const ATTRIBUTE_KEYS: &[(&str, KeyCheck)] = &[
    ("name", attribute_name),
    ("values", attribute_values),
    ("pattern", attribute_pattern),
    ("account_type", attribute_account_type),
];

/// `attributes`: plain names and `{name, values|pattern}` maps, mixed freely (DESIGN.md §11).
fn check_attributes(node: &Node, problems: &mut Problems) -> Vec<AttributeSpec> {
    let Kind::Seq(items) = &node.kind else {
        problems.push(
            Problem::new(
                node.pos,
                format!(
                    "`attributes` must be a list of names, not {}",
                    node.kind.describe()
                ),
            )
            .help("e.g. attributes: [sex, city, tier], or an entry {name: tier, values: [free, gold]}"),
        );
        return Vec::new();
    };
    if items.len() > limits::MAX_ATTRIBUTE_NAMES {
        problems.push(Problem::new(
            node.pos,
            format!(
                "`attributes` lists {} names; an app has at most {}",
                items.len(),
                limits::MAX_ATTRIBUTE_NAMES
            ),
        ));
    }
    let mut specs: Vec<AttributeSpec> = Vec::with_capacity(items.len());
    for item in items {
        let spec = match &item.kind {
            Kind::Map(_) => attribute_map(item, problems),
            _ => AttributeSpec {
                name: string(item, "an attribute name", problems).map(|n| (n.to_owned(), item.pos)),
                ..AttributeSpec::default()
            },
        };
        let Some((name, pos)) = &spec.name else {
            continue;
        };
        if name.is_empty() || name.len() > limits::MAX_ATTR_BYTES {
            problems.push(Problem::new(
                *pos,
                format!(
                    "attribute name {name:?} is {} bytes long; names are 1 to {} bytes (UTF-8)",
                    name.len(),
                    limits::MAX_ATTR_BYTES
                ),
            ));
        } else if name == super::users::TAGS_KEY {
            problems.push(
                Problem::new(*pos, "`tags` cannot be an attribute name")
                    .help("in a users file, `tags` is the user's list of tags (e.g. tags: [vip]); name the attribute otherwise"),
            );
        } else if let Some(first) = specs
            .iter()
            .filter_map(|s| s.name.as_ref())
            .find(|(n, _)| n == name)
        {
            problems.push(
                Problem::new(*pos, format!("attribute {name:?} is listed twice")).first_at(first.1),
            );
        } else {
            specs.push(spec);
        }
    }
    specs
}

/// `{name: tier, values: [...]}` or `{name: city, pattern: '...'}`.
fn attribute_map(item: &Node, problems: &mut Problems) -> AttributeSpec {
    let mut spec = AttributeSpec::default();
    let keys: Vec<&str> = ATTRIBUTE_KEYS.iter().map(|(k, _)| *k).collect();
    let Some(f) = fields(item, "an attribute entry", &keys, problems) else {
        return spec;
    };
    match f.get("name") {
        Some(n) => attribute_name(n, "name", &mut spec, problems),
        None => problems.push(
            Problem::new(item.pos, "an attribute entry needs a `name`")
                .help("e.g. {name: tier, values: [free, gold, vip]}"),
        ),
    }
    // The other keys are checked even without a usable name: every problem in one run.
    let name = spec
        .name
        .as_ref()
        .map_or("?".to_owned(), |(n, _)| n.clone());
    for (key, check) in ATTRIBUTE_KEYS.iter().filter(|(k, _)| *k != "name") {
        if let Some(n) = f.get(key) {
            check(n, &name, &mut spec, problems);
        }
    }
    spec
}

/// `account_type: user_id | registration_id`: which accounts the attribute's slot is for.
fn attribute_account_type(n: &Node, name: &str, spec: &mut AttributeSpec, problems: &mut Problems) {
    let what = format!("`account_type` of attribute {name:?}");
    let Some(text) = string(n, &what, problems) else {
        return;
    };
    match AccountType::parse(text) {
        Some(t) => spec.account_type = Some((t, n.pos)),
        None => {
            let kinds = [
                AccountType::UserId.as_str(),
                AccountType::RegistrationId.as_str(),
            ];
            let help = match crate::suggest::did_you_mean(text, kinds) {
                Some(near) => {
                    format!("did you mean `{near}`? account types: user_id, registration_id")
                }
                None => "account types: user_id (the default), registration_id".to_owned(),
            };
            problems.push(Problem::new(n.pos, format!("unknown {what} {text:?}")).help(help));
        }
    }
}

fn attribute_name(n: &Node, _: &str, spec: &mut AttributeSpec, problems: &mut Problems) {
    spec.name = string(n, "an attribute name", problems).map(|s| (s.to_owned(), n.pos));
}

fn attribute_values(n: &Node, name: &str, spec: &mut AttributeSpec, problems: &mut Problems) {
    let what = format!("`values` of attribute {name:?}");
    if let Some(p) = value_list(n, &what, 0, problems) {
        set_policy(n, name, (p, "values"), spec, problems);
    }
}

fn attribute_pattern(n: &Node, name: &str, spec: &mut AttributeSpec, problems: &mut Problems) {
    let what = format!("`pattern` of attribute {name:?}");
    if let Some(p) = pattern(n, &what, problems) {
        set_policy(n, name, (p, "pattern"), spec, problems);
    }
}

/// One policy per attribute: `values` and `pattern` together are an error (which would win
/// is not obvious to a reader of the file).
fn set_policy(
    n: &Node,
    name: &str,
    policy: (Policy, &'static str),
    spec: &mut AttributeSpec,
    problems: &mut Problems,
) {
    match &spec.policy {
        Some((_, first)) => problems.push(
            Problem::new(
                n.pos,
                format!(
                    "attribute {name:?} has both `{first}` and `{}`; give one",
                    policy.1
                ),
            )
            .help("`values` lists the allowed values; `pattern` is a regular expression the whole value must match"),
        ),
        None => spec.policy = Some(policy),
    }
}

/// A non-empty list of distinct strings of `min_bytes..=50` bytes, as a `values` policy.
fn value_list(
    node: &Node,
    what: &str,
    min_bytes: usize,
    problems: &mut Problems,
) -> Option<Policy> {
    let items = match &node.kind {
        Kind::Seq(items) if !items.is_empty() => items,
        Kind::Seq(_) => {
            problems.push(
                Problem::new(node.pos, format!("{what} is an empty list"))
                    .help("list the allowed values, or remove the key to allow any"),
            );
            return None;
        }
        other => {
            problems.push(
                Problem::new(
                    node.pos,
                    format!("{what} must be a list of strings, not {}", other.describe()),
                )
                .help("e.g. values: [free, gold, vip]"),
            );
            return None;
        }
    };
    let mut seen: Vec<(&str, Pos)> = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let Kind::Str(v) = &item.kind else {
            let fix = match &item.kind {
                Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => {
                    format!("quote it: \"{}\"", describe_value(item))
                }
                Kind::Null => "quote it (\"\") or remove it".to_owned(),
                _ => "write a string".to_owned(),
            };
            problems.push(
                Problem::new(
                    item.pos,
                    format!("an item of {what} is {}; {fix}", item.kind.describe()),
                )
                .help("values are strings"),
            );
            ok = false;
            continue;
        };
        if v.len() < min_bytes || v.len() > limits::MAX_ATTR_BYTES {
            problems.push(Problem::new(
                item.pos,
                format!(
                    "{v:?} in {what} is {} bytes long; the API takes {min_bytes} to {} bytes (UTF-8)",
                    v.len(),
                    limits::MAX_ATTR_BYTES
                ),
            ));
            ok = false;
        } else if let Some((_, first)) = seen.iter().find(|(s, _)| s == v) {
            problems.push(
                Problem::new(item.pos, format!("{v:?} is listed twice in {what}")).first_at(*first),
            );
        } else {
            seen.push((v, item.pos));
        }
    }
    ok.then(|| Policy::values(seen.into_iter().map(|(v, _)| v)))
}

/// A regular expression that the whole value must match; an invalid one is reported here,
/// at its place in the project file.
fn pattern(node: &Node, what: &str, problems: &mut Problems) -> Option<Policy> {
    let source = string(node, what, problems)?;
    if source.is_empty() {
        problems.push(
            Problem::new(node.pos, format!("{what} is empty"))
                .help("write a regular expression, e.g. '^[a-z0-9-]+$', or remove the key"),
        );
        return None;
    }
    match Pattern::new(source) {
        Ok(p) => Some(Policy::Pattern(p)),
        Err(why) => {
            problems.push(
                Problem::new(node.pos, format!("{what} is not a valid regular expression: {why}"))
                    .help("the syntax is the regex crate's (https://docs.rs/regex/#syntax); quote the pattern with '...' so YAML keeps backslashes"),
            );
            None
        }
    }
}

/// The top-level `tags`: `{allowed: [...]}` or `{pattern: '...'}`.
fn check_tags(node: &Node, problems: &mut Problems) -> Option<Policy> {
    if matches!(node.kind, Kind::Null) {
        return None;
    }
    let f = fields(node, "`tags`", &["allowed", "pattern"], problems)?;
    match (f.get("allowed"), f.get("pattern")) {
        (Some(_), Some(p)) => {
            problems.push(
                Problem::new(p.pos, "`tags` has both `allowed` and `pattern`; give one")
                    .help("`allowed` lists the tags that exist; `pattern` is a regular expression every tag must match"),
            );
            None
        }
        (Some(a), None) => value_list(a, "`tags.allowed`", 1, problems),
        (None, Some(p)) => pattern(p, "`tags.pattern`", problems),
        (None, None) => {
            problems.push(
                Problem::new(node.pos, "`tags` needs `allowed` or `pattern`")
                    .help("e.g. tags: {allowed: [newsletter, vip, beta]}"),
            );
            None
        }
    }
}

fn check_users(node: &Node, problems: &mut Problems) -> Vec<String> {
    let help = "e.g. users: [\"users/*.yaml\"] (globs relative to the project file)";
    let items = match &node.kind {
        Kind::Seq(items) if !items.is_empty() => items,
        Kind::Seq(_) => {
            problems.push(Problem::new(node.pos, "`users` is an empty list").help(help));
            return Vec::new();
        }
        other => {
            problems.push(
                Problem::new(
                    node.pos,
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
    // The globs are expanded when the users files are loaded, not here: commands that do
    // not need the users files must not fail on them.
    items
        .iter()
        .filter_map(|item| string(item, "a users pattern", problems).map(str::to_owned))
        .collect()
}

fn check_apply(node: &Node, apply: &mut ApplySettings, problems: &mut Problems) {
    let Some(f) = fields(
        node,
        "`apply`",
        &["rate_limit", "concurrency", "max_removal_percent"],
        problems,
    ) else {
        return;
    };
    if let Some(n) = f.get("rate_limit") {
        if let Some(v) = integer(n, "`rate_limit`", 1, 100, problems) {
            apply.rate_limit = u32::try_from(v).unwrap_or(100);
        }
    }
    if let Some(n) = f.get("concurrency") {
        if let Some(v) = integer(n, "`concurrency`", 1, 1_000_000, problems) {
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
            _ => problems.push(Problem::new(
                n.pos,
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
    fn env_names() {
        assert!(is_env_name("TIM_SECRET_KEY"));
        assert!(is_env_name("_k2"));
        assert!(!is_env_name("2K"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("A-B"));
    }

    #[test]
    fn merge_keys_merge_maps_and_explicit_keys_win() {
        let text = "a: &a {k: 1, j: 2}\nb: &b {j: 3, m: 4}\nc: {<<: *a, k: 9}\nd: {<<: [*a, *b], m: 5}\ne: {\"<<\": x}\n";
        let root = tree(text).unwrap();
        let Kind::Map(top) = root.kind else {
            panic!("not a map")
        };
        let shown = |i: usize| -> Vec<(String, String)> {
            let Kind::Map(m) = &top[i].2.kind else {
                panic!("not a map")
            };
            let mut v: Vec<(String, String)> = m
                .iter()
                .map(|(_, k, n)| (k.clone(), format!("{:?}", n.kind)))
                .collect();
            v.sort();
            v
        };
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(shown(2), [kv("j", "Int(2)"), kv("k", "Int(9)")]);
        assert_eq!(
            shown(3),
            [kv("j", "Int(2)"), kv("k", "Int(1)"), kv("m", "Int(5)")]
        );
        // A quoted "<<" is an ordinary key.
        assert_eq!(shown(4), [kv("<<", "Str(\"x\")")]);
        assert!(tree("a: {<<: 1}\n")
            .unwrap_err()
            .message
            .contains("merge key"));
        assert!(tree("a: {<<: [x]}\n")
            .unwrap_err()
            .message
            .contains("merge key"));
    }

    #[test]
    fn tree_nodes_carry_their_positions() {
        let root = tree("a: [x, 1]\nb: ~\n").unwrap();
        let Kind::Map(entries) = root.kind else {
            panic!("not a map")
        };
        let at: Vec<(Pos, Pos)> = entries.iter().map(|(k, _, v)| (*k, v.pos)).collect();
        let p = |line, col| Pos { line, col };
        assert_eq!(root.pos, p(1, 1));
        assert_eq!(at, [(p(1, 1), p(1, 4)), (p(2, 1), p(2, 4))]);
        assert!(matches!(entries[1].2.kind, Kind::Null));
    }

    /// The settings and the problems (`line:col message`) of a project file's text.
    fn checked(text: &str) -> (Settings, Vec<String>) {
        let root = tree(text).unwrap();
        let mut problems = Problems::default();
        let s = check(&root, Path::new("timattr.yaml"), &mut problems);
        let shown = problems
            .list
            .into_iter()
            .map(|p| format!("{}:{} {}", p.pos.line, p.pos.col, p.message))
            .collect();
        (s, shown)
    }

    const HEAD: &str = "app: {sdkappid: 1, admin: a, endpoint: embedded}\nusers: [u.yaml]\n";

    #[test]
    fn attributes_mix_plain_names_and_policies() {
        let (s, problems) = checked(&format!(
            "{HEAD}attributes:\n  - sex\n  - name: tier\n    values: [free, gold, vip]\n  - {{name: city, pattern: '[A-Z][a-z]+'}}\n  - {{name: x}}\ntags: {{allowed: [vip, beta]}}\n"
        ));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.attributes, ["sex", "tier", "city", "x"]);
        let p = &s.policies;
        assert_eq!(p.attr(0), None);
        assert_eq!(p.attr(1).unwrap().describe(), "one of: free, gold, vip");
        assert!(p.attr(2).unwrap().allows("Paris") && !p.attr(2).unwrap().allows("paris"));
        assert_eq!(p.attr(3), None);
        assert_eq!(p.tags().unwrap().describe(), "one of: beta, vip");
        let (s, _) = checked(&format!("{HEAD}attributes: [sex, city]\n"));
        assert!(s.policies.is_empty());
        let (s, problems) = checked(&format!(
            "{HEAD}attributes: [a]\ntags: {{pattern: '[a-z]+'}}\n"
        ));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(s.policies.tags().unwrap().allows("vip"));
    }

    #[test]
    fn policy_mistakes_are_errors_at_their_place() {
        let (_, problems) = checked(&format!(
            "{HEAD}attributes:\n  - {{name: tier, values: [free, gold, free, 3, ~]}}\n  - {{name: city, pattern: '[a-'}}\n  - {{name: c2, values: [a], pattern: b}}\n  - {{nme: z, values: []}}\n  - {{name: z, valeus: [a]}}\n  - {{name: e, values: []}}\n  - {{name: f, pattern: 'a)|(b'}}\ntags: {{allowed: [''], pattern: x}}\n"
        ));
        assert_eq!(
            problems,
            [
                "4:39 \"free\" is listed twice in `values` of attribute \"tier\"",
                "4:45 an item of `values` of attribute \"tier\" is a number; quote it: \"3\"",
                "4:48 an item of `values` of attribute \"tier\" is null; quote it (\"\") or remove it",
                "5:27 `pattern` of attribute \"city\" is not a valid regular expression: unclosed character class (at `[`)",
                "6:38 attribute \"c2\" has both `values` and `pattern`; give one",
                "7:6 unknown key `nme` in an attribute entry",
                "7:5 an attribute entry needs a `name`",
                "7:22 `values` of attribute \"?\" is an empty list",
                "8:15 unknown key `valeus` in an attribute entry",
                "9:23 `values` of attribute \"e\" is an empty list",
                "10:24 `pattern` of attribute \"f\" is not a valid regular expression: unopened group (at `)`)",
                "11:32 `tags` has both `allowed` and `pattern`; give one",
            ]
        );
    }
}
