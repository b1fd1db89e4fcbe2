//! The JSON Schemas (`timattr schema project|users`, committed as `schema/*.schema.json`) against
//! the committed files, the examples and the loader.
//!
//! Schema verdicts come from the third-party `check-jsonschema` (on PATH or in `.ci/py/bin`, as
//! installed by `.ci/run`); without it, the loader is compared with the verdict written in the
//! table instead, which is what the schema is meant to say.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn timattr() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_timattr"));
    cmd.env_remove("GITHUB_STEP_SUMMARY").env("NO_COLOR", "1");
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("cannot run the command")
}

/// `check-jsonschema` from PATH, or from `.ci/py` with that directory on PYTHONPATH; looked
/// up once per test binary.
pub(crate) fn check_jsonschema() -> Option<Command> {
    static FOUND: OnceLock<Option<(PathBuf, Option<PathBuf>)>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let local = root().join(".ci/py");
        [
            (PathBuf::from("check-jsonschema"), None),
            (local.join("bin/check-jsonschema"), Some(local.clone())),
        ]
        .into_iter()
        .find(|(program, pythonpath)| {
            let mut cmd = Command::new(program);
            if let Some(p) = pythonpath {
                cmd.env("PYTHONPATH", p);
            }
            cmd.arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    });
    found.as_ref().map(|(program, pythonpath)| {
        let mut cmd = Command::new(program);
        if let Some(p) = pythonpath {
            cmd.env("PYTHONPATH", p);
        }
        cmd
    })
}

/// A missing checker may be skipped on a developer's machine, never under `CI=true`
/// (`.ci/run` installs it).
pub(crate) fn require_unless_local(tool: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{tool} is not installed; under CI=true it is required (.ci/run installs it into .ci/py)"
    );
}

/// The schema's verdict on one YAML file, with check-jsonschema's output for messages.
fn schema_verdict(mut checker: Command, schema: &Path, file: &Path) -> (bool, String) {
    let out = run({
        checker
            .arg("--no-cache")
            .arg("--schemafile")
            .arg(schema)
            .arg(file);
        checker
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn committed_schemas_equal_the_binary_output() {
    for kind in ["project", "users"] {
        let out = run({
            let mut c = timattr();
            c.args(["schema", kind]);
            c
        });
        assert!(out.status.success(), "timattr schema {kind} failed");
        let printed: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("schema output is JSON");
        let file = root().join(format!("schema/{kind}.schema.json"));
        let committed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
        )
        .expect("committed schema is JSON");
        assert_eq!(
            printed,
            committed,
            "{} is out of date: run `cargo run -- schema {kind} > schema/{kind}.schema.json`",
            file.display()
        );
    }
}

/// Every `.yaml`/`.yml` file under `examples/`, except the CI examples (tests/workflows.rs).
fn example_yaml_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "github-actions" && name != "gitlab-ci" && name != "state" {
                    walk(&p, out);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("examples"), &mut out);
    out
}

/// Whether an example is a project file: `timattr.yaml`, or a variant like
/// `timattr.timpush.yaml`.
fn is_project(file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy();
    name == "timattr.yaml" || (name.starts_with("timattr.") && name.ends_with(".yaml"))
}

/// The schema named by the file's first line, `# yaml-language-server: $schema=PATH`.
fn declared_schema(file: &Path) -> PathBuf {
    let text = std::fs::read_to_string(file).unwrap();
    let first = text.lines().next().unwrap_or("");
    let rel = first
        .strip_prefix("# yaml-language-server: $schema=")
        .unwrap_or_else(|| {
            panic!(
                "{} must start with `# yaml-language-server: $schema=...`",
                file.display()
            )
        });
    let path = file.parent().unwrap().join(rel.trim());
    let path = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: schema {}: {e}", file.display(), path.display()));
    let expected = if is_project(file) {
        "project.schema.json"
    } else {
        "users.schema.json"
    };
    assert_eq!(
        path,
        root().join("schema").join(expected).canonicalize().unwrap(),
        "{} points at the wrong schema",
        file.display()
    );
    path
}

#[test]
fn examples_declare_and_satisfy_their_schema() {
    let files = example_yaml_files();
    assert!(files.len() >= 5, "examples are missing: {files:?}");
    // The schema line is checked even without check-jsonschema.
    let schemas: Vec<_> = files.iter().map(|f| declared_schema(f)).collect();
    let Some(_) = check_jsonschema() else {
        require_unless_local("check-jsonschema");
        println!("skipped: check-jsonschema is not installed (run .ci/run to install it)");
        return;
    };
    for (file, schema) in files.iter().zip(&schemas) {
        let (ok, text) = schema_verdict(check_jsonschema().unwrap(), schema, file);
        assert!(
            ok,
            "{} does not satisfy {}:\n{text}",
            file.display(),
            schema.display()
        );
    }
}

#[test]
fn example_projects_validate() {
    for file in example_yaml_files() {
        if !is_project(&file) {
            continue;
        }
        let out = run({
            let mut c = timattr();
            c.arg("-c").arg(&file).arg("validate");
            c
        });
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

const USERS_OK: &str = "users: {u1: {city: x}}\n";
const PROJECT_OK: &str = "app: {sdkappid: 1400000000, admin: administrator, endpoint: embedded}\nattributes: [sex, city, tier]\nusers: [\"users/*.yaml\"]\n";

enum Doc {
    /// A project file (the users file is `USERS_OK`).
    Project(&'static str),
    /// A users file (the project file is `PROJECT_OK`).
    Users(String),
}

struct Case {
    name: &'static str,
    doc: Doc,
    valid: bool,
}

fn project(name: &'static str, doc: &'static str, valid: bool) -> Case {
    Case {
        name,
        doc: Doc::Project(doc),
        valid,
    }
}

fn users(name: &'static str, doc: impl Into<String>, valid: bool) -> Case {
    Case {
        name,
        doc: Doc::Users(doc.into()),
        valid,
    }
}

/// Small documents on which the schema and the loader must agree.
///
/// Rules JSON Schema cannot express are left out on purpose:
/// - lengths in UTF-8 *bytes* (schema `maxLength` counts characters), so only ASCII here;
/// - an attribute name used in a users file must be listed in the project's `attributes`;
/// - an account defined twice across files, and globs that match no file;
/// - `http://` endpoints only for loopback hosts (the schema checks the scheme only).
fn cases() -> Vec<Case> {
    let eleven_names = "attributes: [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]";
    let mut v = vec![
        // The API family and account types (DESIGN.md §12).
        project(
            "the timpush family with account types",
            "app: {sdkappid: 1, admin: a, endpoint: embedded, api: timpush}\nattributes:\n  - city\n  - {name: device_city, account_type: registration_id}\n  - {name: tier, values: [a, b], account_type: user_id}\nusers: [\"users/*.yaml\"]\n",
            true,
        ),
        project(
            "the all_member_push family named",
            "app: {sdkappid: 1, admin: a, endpoint: embedded, api: all_member_push}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            true,
        ),
        project(
            "an unknown API family",
            "app: {sdkappid: 1, admin: a, endpoint: embedded, api: timPush}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "account_type without api: timpush",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{name: device_city, account_type: registration_id}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "account_type with api: all_member_push",
            "app: {sdkappid: 1, admin: a, endpoint: embedded, api: all_member_push}\nattributes: [{name: c, account_type: user_id}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "an unknown account_type",
            "app: {sdkappid: 1, admin: a, endpoint: embedded, api: timpush}\nattributes: [{name: c, account_type: device}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        // Value policies (DESIGN.md §11).
        project(
            "attributes with policies and a tags policy",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes:\n  - sex\n  - {name: tier, values: [free, gold, vip]}\n  - {name: city, pattern: '^[a-z]+$'}\n  - {name: plain}\ntags: {allowed: [newsletter, vip]}\nusers: [\"users/*.yaml\"]\n",
            true,
        ),
        project(
            "a tags pattern",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\ntags: {pattern: '[a-z0-9-]+'}\nusers: [\"users/*.yaml\"]\n",
            true,
        ),
        project(
            "values and pattern on one attribute",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{name: tier, values: [a], pattern: b}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "an attribute entry without a name",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{values: [a]}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "an unknown key in an attribute entry",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{name: tier, value: [a]}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "an empty values list",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{name: tier, values: []}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "a number in values",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{name: tier, values: [gold, 3]}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "a value listed twice",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{name: tier, values: [gold, gold]}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "an invalid pattern",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [{name: city, pattern: '[a-'}]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "tags with both allowed and pattern",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\ntags: {allowed: [a], pattern: b}\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "tags with neither",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\ntags: {}\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "an empty tag allowed",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\ntags: {allowed: ['']}\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "tags as a list",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\ntags: [vip]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project("minimal project", PROJECT_OK, true),
        project(
            "region instead of endpoint",
            "app: {sdkappid: 1, admin: a, region: singapore}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            true,
        ),
        project(
            "every key",
            "app: {sdkappid: 1, admin: a, region: tokyo, endpoint: \"https://example.com:8443\", secret_env: MY_KEY}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstate: st\napply: {rate_limit: 50, concurrency: 4, max_removal_percent: 12.5}\n",
            true,
        ),
        project(
            "unknown top-level key",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstates: x\n",
            false,
        ),
        project(
            "unknown key in app",
            "app: {sdkappid: 1, admin: a, endpoint: embedded, secret: s3cr3t}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "sdkappid as a string",
            "app: {sdkappid: \"1400000000\", admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "sdkappid out of range",
            "app: {sdkappid: 4294967296, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "bad region",
            "app: {sdkappid: 1, admin: a, region: mars}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "neither region nor endpoint",
            "app: {sdkappid: 1, admin: a}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "endpoint without a scheme",
            "app: {sdkappid: 1, admin: a, endpoint: example.com}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "missing admin",
            "app: {sdkappid: 1, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "missing users",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\n",
            false,
        ),
        project(
            "empty users list",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: []\n",
            false,
        ),
        project(
            "missing attributes",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "attribute listed twice",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city, city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        project(
            "rate_limit above 100",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\napply: {rate_limit: 101}\n",
            false,
        ),
        project(
            "rate_limit 0",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\napply: {rate_limit: 0}\n",
            false,
        ),
        project(
            "max_removal_percent above 100",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\napply: {max_removal_percent: 150}\n",
            false,
        ),
        project(
            "unknown key in apply",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\napply: {parallelism: 4}\n",
            false,
        ),
        project(
            "empty state",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstate: \"\"\n",
            false,
        ),
        project(
            "postgres state, short form",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstate: postgres://t@127.0.0.1:5432/db\n",
            true,
        ),
        project(
            "postgres state with a name",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstate: {url: \"postgresql://t@db/x?sslmode=require\", name: prod}\n",
            true,
        ),
        project(
            "state map without url",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstate: {name: prod}\n",
            false,
        ),
        project(
            "state map with a sled path",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstate: {url: dir, name: prod}\n",
            false,
        ),
        project(
            "unknown key in state",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\nstate: {url: \"postgres://t@db/x\", schema: y}\n",
            false,
        ),
        users("minimal users file", USERS_OK, true),
        users(
            "defaults and overrides",
            "defaults: {tier: free}\nusers:\n  u1: {city: x}\n  u2: {city: y, tier: gold}\n",
            true,
        ),
        users("empty defaults", "defaults:\nusers: {u1: {city: x}}\n", true),
        users("user without attributes", "users: {u1: }\n", true),
        users("quoted number", "users: {u1: {tier: \"2\"}}\n", true),
        users("number value", "users: {u1: {tier: 2}}\n", false),
        users("boolean value", "users: {u1: {tier: true}}\n", false),
        users("null value", "users: {u1: {tier: ~}}\n", false),
        users("list value", "users: {u1: {tier: [a, b]}}\n", false),
        users("number in defaults", "defaults: {tier: 3}\nusers: {u1: {city: x}}\n", false),
        users("unknown top-level key", "user: {u1: {city: x}}\nusers: {}\n", false),
        users("missing users", "defaults: {tier: free}\n", false),
        users("users as a list", "users: [u1, u2]\n", false),
        users("empty account id", "users: {\"\": {city: x}}\n", false),
        users("account id of 33 bytes", format!("users: {{{}: {{city: x}}}}\n", "a".repeat(33)), false),
        users("account id of 32 bytes", format!("users: {{{}: {{city: x}}}}\n", "a".repeat(32)), true),
        users("value of 51 bytes", format!("users: {{u1: {{city: {}}}}}\n", "x".repeat(51)), false),
        users("value of 50 bytes", format!("users: {{u1: {{city: {}}}}}\n", "x".repeat(50)), true),
    ];
    // User tags (DESIGN.md §9).
    let hundred: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let ten: Vec<String> = ["city: x", "tier: y"]
        .into_iter()
        .map(str::to_owned)
        .chain((1..=8).map(|i| format!("a{i}: v")))
        .collect();
    v.extend([
        users("tags, flow and block", "defaults: {tags: [news]}\nusers:\n  u1: {city: x, tags: [vip, \"b c\"]}\n  u2:\n    tags:\n      - x\n  u3: {tags: []}\n", true),
        users("100 tags", format!("users: {{u1: {{tags: [{}]}}}}\n", hundred.join(", ")), true),
        users("101 tags", format!("users: {{u1: {{tags: [{}, t100]}}}}\n", hundred.join(", ")), false),
        users("tag listed twice", "users: {u1: {tags: [vip, vip]}}\n", false),
        users("number tag", "users: {u1: {tags: [vip, 42]}}\n", false),
        users("null tag", "users: {u1: {tags: [~]}}\n", false),
        users("empty tag", "users: {u1: {tags: [\"\"]}}\n", false),
        users("tag of 51 bytes", format!("users: {{u1: {{tags: [{}]}}}}\n", "t".repeat(51)), false),
        users("tag of 50 bytes", format!("users: {{u1: {{tags: [{}]}}}}\n", "t".repeat(50)), true),
        users("tags not a list", "users: {u1: {tags: vip}}\n", false),
        users("tags null", "users: {u1: {tags: }}\n", false),
        users("number tag in defaults", "defaults: {tags: [1]}\nusers: {u1: }\n", false),
        users("ten attributes and tags", format!("users: {{u1: {{{}, tags: [x]}}}}\n", ten.join(", ")), true),
        project(
            "tags as an attribute name",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city, tags]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
    ]);
    // Too many attributes: in the project file, and on one user (the schema caps a user at
    // 10 names; the loader at the declared names, which are at most 10).
    v.push(Case {
        name: "eleven attribute names",
        doc: Doc::Project(Box::leak(
            format!("app: {{sdkappid: 1, admin: a, endpoint: embedded}}\n{eleven_names}\nusers: [\"users/*.yaml\"]\n")
                .into_boxed_str(),
        )),
        valid: false,
    });
    let eleven: Vec<String> = (1..=11).map(|i| format!("a{i}: v")).collect();
    v.push(users(
        "user with eleven attributes",
        format!("users: {{u1: {{{}}}}}\n", eleven.join(", ")),
        false,
    ));
    v
}

/// Writes a case into `dir` and returns (file to check with the schema, schema, project file).
fn write_case(dir: &Path, case: &Case) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("users")).unwrap();
    let project_file = dir.join("timattr.yaml");
    let users_file = dir.join("users/a.yaml");
    match &case.doc {
        Doc::Project(doc) => {
            std::fs::write(&project_file, doc).unwrap();
            std::fs::write(&users_file, USERS_OK).unwrap();
            (
                project_file.clone(),
                root().join("schema/project.schema.json"),
                project_file,
            )
        }
        Doc::Users(doc) => {
            // Declares the ten names the "eleven attributes" case uses but one.
            let project_doc = PROJECT_OK.replace(
                "[sex, city, tier]",
                "[city, tier, a1, a2, a3, a4, a5, a6, a7, a8]",
            );
            std::fs::write(&project_file, project_doc).unwrap();
            std::fs::write(&users_file, doc).unwrap();
            (
                users_file,
                root().join("schema/users.schema.json"),
                project_file,
            )
        }
    }
}

fn check_cases(cases: Vec<Case>) {
    let checker_available = check_jsonschema().is_some();
    if !checker_available {
        require_unless_local("check-jsonschema");
        println!("note: check-jsonschema is not installed; comparing the loader with the table");
    }
    let tmp = tempfile::tempdir().unwrap();
    // Each case starts two processes (python is slow to start): run them on a few threads.
    let results: Vec<Option<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(4).max(1))
            .enumerate()
            .map(|(chunk, slice)| {
                let tmp = tmp.path();
                scope.spawn(move || {
                    slice
                        .iter()
                        .enumerate()
                        .map(|(i, case)| check_case(&tmp.join(format!("case{chunk}-{i}")), case))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "schema and loader disagree:\n{}",
        failures.join("\n")
    );
}

/// None when loader, schema and table agree, else a description.
fn check_case(dir: &Path, case: &Case) -> Option<String> {
    let (file, schema, project_file) = write_case(dir, case);
    let out = run({
        let mut c = timattr();
        c.arg("-c").arg(&project_file).arg("validate");
        c
    });
    let loader = out.status.success();
    let loader_text = String::from_utf8_lossy(&out.stderr).into_owned();
    let (schema_ok, schema_text) = match check_jsonschema() {
        Some(checker) => schema_verdict(checker, &schema, &file),
        None => (case.valid, "(table)".to_owned()),
    };
    (loader != schema_ok || loader != case.valid).then(|| {
        format!(
            "{}: expected {}, loader says {}, schema says {}\n  loader: {}\n  schema: {}",
            case.name,
            verdict(case.valid),
            verdict(loader),
            verdict(schema_ok),
            loader_text.trim(),
            schema_text.trim()
        )
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "valid"
    } else {
        "invalid"
    }
}

#[test]
fn schema_and_loader_agree() {
    check_cases(cases());
}

/// Edges where the schema once disagreed with the loader.
#[test]
fn schema_follows_the_loader_at_the_edges() {
    check_cases(vec![
        // The loader requires an environment-variable name; the schema accepts any string.
        project(
            "secret_env that is not a variable name",
            "app: {sdkappid: 1, admin: a, endpoint: embedded, secret_env: \"my key\"}\nattributes: [city]\nusers: [\"users/*.yaml\"]\n",
            false,
        ),
        // The loader caps concurrency at 1,000,000; the schema has no maximum.
        project(
            "huge concurrency",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\napply: {concurrency: 2000000}\n",
            false,
        ),
        // The loader accepts an empty `apply:` (null); the schema requires an object.
        project(
            "empty apply",
            "app: {sdkappid: 1, admin: a, endpoint: embedded}\nattributes: [city]\nusers: [\"users/*.yaml\"]\napply:\n",
            true,
        ),
        // `users:` with nothing declares no users: an error (DESIGN.md §8); `users: {}` is
        // the intentionally empty file. (A file of only comments is an error too, but schema
        // checkers have no document to check there.)
        users("users: null", "users:\n", false),
        users("users: {}", "users: {}\n", true),
    ]);
}
