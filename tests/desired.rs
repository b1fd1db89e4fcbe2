//! Loading real project and users files from temporary directories: the happy path, and
//! every kind of broken input with the exact `file:line:column` of its error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use timattr::desired::{load_project, load_users};
use timattr::diag::Diagnostics;
use timattr::model::Desired;
use timattr::settings::{Endpoint, Settings};

const PROJECT: &str = "\
app:
  sdkappid: 1400000000
  admin: administrator
  region: singapore
attributes: [sex, city, tier]
users: [\"users/*.yaml\"]
";

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Each diagnostic as `relative/path:line:col: message`.
fn lines(dir: &Path, diags: &Diagnostics) -> Vec<String> {
    diags
        .0
        .iter()
        .map(|d| {
            let rel = d.file.strip_prefix(dir).unwrap_or(&d.file).display().to_string();
            let mut d = d.clone();
            d.file = PathBuf::from(rel);
            let dir = format!("{}", dir.display());
            format!("{}: {}", d.location(), d.message.replace(&format!("{dir}/"), "").replace(&dir, "DIR"))
        })
        .collect()
}

fn project_errors(project: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users/a.yaml", "users: {}\n");
    let path = write(dir.path(), "timattr.yaml", project);
    let err = load_project(&path).expect_err("project should be rejected");
    lines(dir.path(), &err)
}

fn settings(project: &str) -> (tempfile::TempDir, Settings) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users/a.yaml", "users: {}\n");
    let path = write(dir.path(), "timattr.yaml", project);
    let s = load_project(&path).unwrap_or_else(|e| panic!("{e}"));
    (dir, s)
}

/// Loads the standard project with the given users files.
fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Desired, Diagnostics>) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        write(dir.path(), rel, text);
    }
    let path = write(dir.path(), "timattr.yaml", PROJECT);
    let s = load_project(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = load_users(&s);
    (dir, r)
}

fn users_errors(files: &[(&str, &str)]) -> Vec<String> {
    let (dir, r) = load(files);
    let err = r.expect_err("users should be rejected");
    lines(dir.path(), &err)
}

fn view(d: &Desired) -> Vec<String> {
    d.accounts
        .iter()
        .map(|(a, attrs)| format!("{a} {}", attrs.display(&d.names)))
        .collect()
}

// ---------------------------------------------------------------- project file

#[test]
fn project_happy_path_with_defaults() {
    let (dir, s) = settings(PROJECT);
    assert_eq!(s.sdkappid, 1_400_000_000);
    assert_eq!(s.admin, "administrator");
    assert_eq!(
        s.endpoint,
        Endpoint::Url {
            base: "https://adminapisgp.im.qcloud.com".into(),
            host: "adminapisgp.im.qcloud.com".into()
        }
    );
    assert_eq!(s.secret_env, "TIM_SECRET_KEY");
    assert_eq!(s.attributes, ["sex", "city", "tier"]);
    assert_eq!(s.users, ["users/*.yaml"]);
    assert_eq!(s.state_dir, dir.path().join("state"));
    assert_eq!(s.project_dir, dir.path());
    assert_eq!(s.apply.rate_limit, 100);
    assert_eq!(s.apply.concurrency, 16);
    assert_eq!(s.apply.max_removal_percent, 10.0);
}

#[test]
fn project_full_file() {
    let (dir, s) = settings(
        "app:\n  sdkappid: 7\n  admin: root\n  region: china\n  endpoint: http://127.0.0.1:8080\n  secret_env: MY_KEY\n\
         attributes: []\nusers: [\"users/*.yaml\", \"users/a.yaml\"]\nstate: var/st\n\
         apply: {rate_limit: 50, concurrency: 4, max_removal_percent: 2.5}\n",
    );
    assert_eq!(
        s.endpoint,
        Endpoint::Url {
            base: "http://127.0.0.1:8080".into(),
            host: "127.0.0.1".into()
        }
    );
    assert_eq!(s.secret_env, "MY_KEY");
    assert_eq!(s.state_dir, dir.path().join("var/st"));
    assert_eq!(s.apply.rate_limit, 50);
    assert_eq!(s.apply.concurrency, 4);
    assert_eq!(s.apply.max_removal_percent, 2.5);
    // A file matched by two patterns is read once.
    assert_eq!(load_users(&s).unwrap().accounts.len(), 0);
}

#[test]
fn project_endpoint_embedded_and_regions() {
    let (_d, s) = settings(&PROJECT.replace("region: singapore", "endpoint: embedded"));
    assert_eq!(s.endpoint, Endpoint::Embedded);
    let (_d, s) = settings(&PROJECT.replace("singapore", "silicon-valley"));
    assert_eq!(s.endpoint.host(), "adminapiusa.im.qcloud.com");
    let (_d, s) = settings(&PROJECT.replace(
        "region: singapore",
        "region: tokyo\n  endpoint: https://example.com:8443/",
    ));
    assert_eq!(
        s.endpoint,
        Endpoint::Url {
            base: "https://example.com:8443".into(),
            host: "example.com".into()
        }
    );
}

#[test]
fn project_unknown_keys_at_every_level() {
    let errs = project_errors(
        "app:\n  sdkappid: 1\n  admin: a\n  region: china\n  secret: x\n\
         attributes: [a]\nusers: [\"users/*.yaml\"]\napply:\n  rate: 5\nstat: s\n",
    );
    assert_eq!(
        errs,
        [
            "timattr.yaml:5:3: unknown key `secret` in `app`",
            "timattr.yaml:9:3: unknown key `rate` in `apply`",
            "timattr.yaml:10:1: unknown key `stat` in the project file",
        ]
    );
}

#[test]
fn project_bad_values_all_reported() {
    let errs = project_errors(
        "app:\n  sdkappid: 99999999999\n  admin: \"\"\n  region: mars\n  secret_env: \"A B\"\n\
         attributes: [sex, sex, \"\", x123456789012345678901234567890123456789012345678901]\n\
         users: [\"users/*.yaml\", \"none/*.yaml\"]\n\
         apply: {rate_limit: 0, concurrency: 0, max_removal_percent: 101}\n",
    );
    assert_eq!(
        errs,
        [
            "timattr.yaml:2:13: `sdkappid` must be an integer from 0 to 4294967295, not 99999999999",
            "timattr.yaml:3:10: `admin` must be an account id of 1 to 32 bytes, not 0 bytes",
            "timattr.yaml:4:11: unknown region \"mars\"",
            "timattr.yaml:5:15: `secret_env` must name an environment variable, not \"A B\"",
            "timattr.yaml:6:19: attribute \"sex\" is listed twice (first at timattr.yaml:6:14)",
            "timattr.yaml:6:24: attribute name \"\" is 0 bytes long; names are 1 to 50 bytes (UTF-8)",
            "timattr.yaml:6:28: attribute name \"x123456789012345678901234567890123456789012345678901\" is 52 bytes long; names are 1 to 50 bytes (UTF-8)",
            "timattr.yaml:7:25: users pattern \"none/*.yaml\" matches no file (relative to DIR)",
            "timattr.yaml:8:21: `rate_limit` must be an integer from 1 to 100, not 0",
            "timattr.yaml:8:37: `concurrency` must be an integer from 1 to 1000000, not 0",
            "timattr.yaml:8:61: `max_removal_percent` must be a number from 0 to 100, not 101",
        ]
    );
}

#[test]
fn project_endpoint_rules() {
    for (endpoint, ok) in [
        ("http://127.0.0.1:9000", true),
        ("http://127.1.2.3", true),
        ("http://localhost:80", true),
        ("http://[::1]:8080", true),
        ("https://adminapisgp.im.qcloud.com", true),
        ("http://example.com", false),
        ("http://10.0.0.1:80", false),
        ("ftp://example.com", false),
        ("https://example.com/v4", false),
        ("https://", false),
        ("https://host:99999", false),
    ] {
        let text = PROJECT.replace("region: singapore", &format!("endpoint: \"{endpoint}\""));
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "users/a.yaml", "users: {}\n");
        let path = write(dir.path(), "timattr.yaml", &text);
        match load_project(&path) {
            Ok(_) => assert!(ok, "{endpoint} should be rejected"),
            Err(e) => {
                assert!(!ok, "{endpoint} should be accepted: {e}");
                assert_eq!(e.0[0].line, 4, "{e}");
                assert_eq!(e.0[0].column, 13, "{e}");
            }
        }
    }
}

#[test]
fn project_missing_pieces() {
    assert_eq!(
        project_errors("app:\n  sdkappid: 1\n  admin: a\n"),
        [
            "timattr.yaml:1:1: missing `attributes`",
            "timattr.yaml:1:1: missing `users`",
            "timattr.yaml:2:3: `app` needs `region` (or `endpoint`)",
        ]
    );
    assert_eq!(project_errors(""), ["timattr.yaml:1:1: the project file is empty"]);
    assert_eq!(
        project_errors(&PROJECT.replace("[\"users/*.yaml\"]", "[]")),
        ["timattr.yaml:6:8: `users` is an empty list"]
    );
    let too_many = PROJECT.replace("[sex, city, tier]", "[a, b, c, d, e, f, g, h, i, j, k]");
    assert_eq!(
        project_errors(&too_many),
        ["timattr.yaml:5:13: `attributes` lists 11 names; an app has at most 10"]
    );
}

#[test]
fn project_syntax_error_is_located() {
    let errs = project_errors("app:\n  sdkappid: 1\n admin: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("timattr.yaml:3:"), "{errs:?}");
}

#[test]
fn project_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_project(&dir.path().join("timattr.yaml")).unwrap_err();
    assert!(err.0[0].message.starts_with("cannot read the project file"));
}
