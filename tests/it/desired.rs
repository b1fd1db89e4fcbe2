//! Loading real project and users files from temporary directories: the happy path, and
//! every kind of broken input with the exact `file:line:column` of its error.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::files::{write, PROJECT};
use timattr::desired::{load_project, load_users};
use timattr::diag::Diagnostics;
use timattr::model::Desired;
use timattr::settings::{Endpoint, Settings};

/// Each diagnostic as `relative/path:line:col: message`.
fn lines(dir: &Path, diags: &Diagnostics) -> Vec<String> {
    diags
        .0
        .iter()
        .map(|d| {
            let rel = d
                .file
                .strip_prefix(dir)
                .unwrap_or(&d.file)
                .display()
                .to_string();
            let mut d = d.clone();
            d.file = PathBuf::from(rel);
            let dir = format!("{}", dir.display());
            format!(
                "{}: {}",
                d.location(),
                d.message
                    .replace(&format!("{dir}/"), "")
                    .replace(&dir, "DIR")
            )
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
        .map(|(a, attrs)| format!("{a} {}", attrs.attrs.display(&d.names)))
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
    assert_eq!(
        project_errors(""),
        ["timattr.yaml:1:1: the project file is empty"]
    );
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

// ---------------------------------------------------------------- users files

#[test]
fn users_happy_path_multi_file_with_defaults() {
    let (_dir, r) = load(&[
        (
            "users/a.yaml",
            "defaults:\n  tier: free\nusers:\n  xiaojun013:\n    city: attr3\n    tier: gold\n  xiaojun012: {sex: attr1, city: attr2}\n  xiaojun014:\n",
        ),
        // `defaults` after `users` applies all the same; `{}` and null are managed accounts.
        (
            "users/b.yaml",
            "users:\n  b1: {}\n  b2:\n  a0: {city: 'Zürich'}\ndefaults: {sex: m}\n",
        ),
        ("users/empty.yaml", "users: {}\n"),
        ("users/no-users.yaml", "# intentionally empty\nusers: {}\n"),
    ]);
    let d = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        view(&d),
        [
            "a0 {sex: \"m\", city: \"Zürich\"}",
            "b1 {sex: \"m\"}",
            "b2 {sex: \"m\"}",
            "xiaojun012 {sex: \"attr1\", city: \"attr2\", tier: \"free\"}",
            "xiaojun013 {city: \"attr3\", tier: \"gold\"}",
            "xiaojun014 {tier: \"free\"}",
        ]
    );
    assert_eq!(
        d.names,
        timattr::model::Names::new(&["sex".into(), "city".into(), "tier".into()])
    );
}

#[test]
fn users_numeric_looking_account_ids_are_text() {
    let (_dir, r) = load(&[(
        "users/a.yaml",
        "users:\n  123: {city: a}\n  0123: {city: b}\n  1e3: {city: c}\n  true: {city: d}\n  \"u 1\": {city: e}\n",
    )]);
    let d = r.unwrap_or_else(|e| panic!("{e}"));
    let accounts: Vec<&str> = d.accounts.iter().map(|(a, _)| &**a).collect();
    assert_eq!(accounts, ["0123", "123", "1e3", "true", "u 1"]);
}

#[test]
fn users_values_must_be_strings() {
    let errs = users_errors(&[(
        "users/a.yaml",
        "users:\n  u1:\n    city: 42\n    sex: true\n    tier: ~\n  u2: {city: [a, b], sex: {x: y}, tier: 1.5}\n",
    )]);
    assert_eq!(
        errs,
        [
            "users/a.yaml:3:11: value of \"city\" for account \"u1\" is a number; quote it: city: \"42\"",
            "users/a.yaml:4:10: value of \"sex\" for account \"u1\" is a boolean; quote it: sex: \"true\"",
            "users/a.yaml:5:11: value of \"tier\" for account \"u1\" is null; quote it (tier: \"\") or remove the line",
            "users/a.yaml:6:14: value of \"city\" for account \"u2\" is a list; quote it, e.g. city: \"...\"",
            "users/a.yaml:6:27: value of \"sex\" for account \"u2\" is a map; quote it, e.g. sex: \"...\"",
            "users/a.yaml:6:41: value of \"tier\" for account \"u2\" is a number; quote it: tier: \"1.5\"",
        ]
    );
}

#[test]
fn users_names_must_be_declared_and_sizes_bounded() {
    let cjk16 = "界".repeat(16); // 48 bytes: fits
    let cjk17 = "界".repeat(17); // 51 bytes: one too many
    let long_account = "a".repeat(33);
    let long_name = "n".repeat(51);
    let text = format!(
        "defaults: {{tier: 7}}\nusers:\n  u1: {{cty: x}}\n  u2: {{city: {cjk16}}}\n  u3: {{city: {cjk17}}}\n  {long_account}: {{}}\n  \"\": {{}}\n  u4: {{{long_name}: x}}\n  {}: {{}}\n",
        "b".repeat(32)
    );
    let errs = users_errors(&[("users/a.yaml", &text)]);
    assert_eq!(
        errs,
        [
            "users/a.yaml:1:18: value of \"tier\" in `defaults` is a number; quote it: tier: \"7\"".to_string(),
            "users/a.yaml:3:8: attribute \"cty\" for account \"u1\" is not declared in the project file's `attributes`".into(),
            "users/a.yaml:5:14: value of \"city\" for account \"u3\" is 51 bytes long; at most 50 bytes (UTF-8) are allowed".into(),
            format!("users/a.yaml:6:3: account id \"{long_account}\" is 33 bytes long; at most 32 bytes are allowed"),
            "users/a.yaml:7:3: account id is empty".into(),
            format!("users/a.yaml:8:8: attribute name \"{long_name}\" for account \"u4\" is 51 bytes long; at most 50 bytes are allowed"),
        ]
    );
}

#[test]
fn users_unknown_top_level_key_and_bad_shapes() {
    let errs = users_errors(&[
        ("users/a.yaml", "user:\n  u1: {city: x}\n"),
        ("users/b.yaml", "users:\n  u1: paris\n  u2: [a]\n"),
        ("users/c.yaml", "- u1\n"),
        ("users/d.yaml", "users: [u1]\ndefaults: x\n"),
    ]);
    assert_eq!(
        errs,
        [
            "users/a.yaml:1:1: unknown key `user` in a users file",
            "users/a.yaml:1:1: this users file has no `users` key",
            "users/b.yaml:2:7: the attributes of account \"u1\" must be a map of name: value, not a string",
            "users/b.yaml:3:7: the attributes of account \"u2\" must be a map of name: value, not a list",
            "users/c.yaml:1:1: a users file must be a map with `users` (and optionally `defaults`), not a list",
            "users/d.yaml:1:8: `users` must be a map of account: {name: value}, not a list",
            "users/d.yaml:2:11: `defaults` must be a map of name: value, not a string",
        ]
    );
}

#[test]
fn users_duplicate_account_in_one_file_names_both_places() {
    let errs = users_errors(&[(
        "users/a.yaml",
        "users:\n  u1: {city: x}\n  u2: {city: y}\n  u1: {city: z}\n",
    )]);
    assert_eq!(
        errs,
        ["users/a.yaml:4:3: account \"u1\" is defined twice (first at users/a.yaml:2:3)"]
    );
}

#[test]
fn users_duplicate_account_across_files_names_both_places() {
    let errs = users_errors(&[
        ("users/a.yaml", "users:\n  u1: {city: x}\n  u7: {}\n"),
        ("users/b.yaml", "users:\n  u0: {}\n\n  \"u7\": {city: y}\n"),
        ("users/c.yaml", "users:\n  u1: {}\n"),
    ]);
    assert_eq!(
        errs,
        [
            "users/b.yaml:4:3: account \"u7\" is defined twice (first at users/a.yaml:3:3)",
            "users/c.yaml:2:3: account \"u1\" is defined twice (first at users/a.yaml:2:3)",
        ]
    );
}

#[test]
fn users_duplicate_name_in_one_account() {
    let errs = users_errors(&[("users/a.yaml", "users:\n  u1:\n    city: x\n    city: y\n")]);
    assert_eq!(
        errs,
        ["users/a.yaml:4:5: attribute \"city\" is set twice for account \"u1\" (first at users/a.yaml:3:5)"]
    );
}

#[test]
fn users_syntax_error_is_located_and_other_files_still_reported() {
    let errs = users_errors(&[
        (
            "users/a.yaml",
            "users:\n  u1: {city: 5}\n  u2: {city: \"x\"\n",
        ),
        ("users/b.yaml", "users:\n  u3: {tier: 1}\n"),
    ]);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert_eq!(
        errs[0],
        "users/a.yaml:2:14: value of \"city\" for account \"u1\" is a number; quote it: city: \"5\""
    );
    assert!(
        errs[1].starts_with("users/a.yaml:4:1: did not find expected"),
        "{errs:?}"
    );
    assert_eq!(
        errs[2],
        "users/b.yaml:2:14: value of \"tier\" for account \"u3\" is a number; quote it: tier: \"1\""
    );
}

#[test]
fn users_errors_are_capped_per_file() {
    let mut text = String::from("users:\n");
    for i in 0..150 {
        text.push_str(&format!("  u{i}: {{city: {i}}}\n"));
    }
    let errs = users_errors(&[
        ("users/a.yaml", &text),
        ("users/b.yaml", "users: {x: {sex: 1}}\n"),
    ]);
    assert_eq!(errs.len(), 102);
    assert_eq!(
        errs[0],
        "users/a.yaml:2:14: value of \"city\" for account \"u0\" is a number; quote it: city: \"0\""
    );
    assert_eq!(errs[100], "users/a.yaml: and 50 more problems in this file");
    assert!(
        errs[101].starts_with("users/b.yaml:1:18: value of \"sex\""),
        "{}",
        errs[101]
    );
}

#[test]
fn users_tags_are_rejected() {
    let errs = users_errors(&[("users/a.yaml", "users:\n  u1: {city: !custom x}\n")]);
    assert_eq!(
        errs,
        ["users/a.yaml:2:14: users.u1.city: the YAML tag `!custom` is not supported (only `!!str` is); remove it, and quote the value if it is text"]
    );
}

#[test]
fn users_pattern_matching_nothing_at_load_time() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users/a.yaml", "users: {}\n");
    let path = write(dir.path(), "timattr.yaml", PROJECT);
    let s = load_project(&path).unwrap();
    std::fs::remove_file(dir.path().join("users/a.yaml")).unwrap();
    let errs = lines(dir.path(), &load_users(&s).unwrap_err());
    assert_eq!(
        errs,
        ["timattr.yaml:6:9: users pattern \"users/*.yaml\" matches no file (relative to DIR)"]
    );
}

/// The classic "billion laughs": nine levels of nine aliases.
fn billion_laughs(under: &str) -> String {
    let mut s = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let levels = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut prev = "a";
    for l in levels {
        s.push_str(&format!(
            "{l}: &{l} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
        prev = l;
    }
    s.push_str(&format!("users:\n  u1: {under}\n"));
    s
}

#[test]
fn users_alias_bombs_end_in_a_clear_error() {
    let start = Instant::now();
    // Nested lists under unknown keys and as an account's attributes.
    let errs = users_errors(&[("users/a.yaml", &billion_laughs("*i"))]);
    assert!(
        errs.iter().any(|e| e.contains("unknown key `a`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("must be a map of name: value, not a list")),
        "{errs:?}"
    );

    // The same bomb built from maps, whose expansion the loader does walk into.
    let mut maps = String::from("a: &a {city: x, sex: y, tier: z}\n");
    let mut prev = "a";
    for l in ["b", "c", "d", "e", "f", "g", "h", "i"] {
        let entries: Vec<String> = (0..9).map(|k| format!("k{k}: *{prev}")).collect();
        maps.push_str(&format!("{l}: &{l} {{{}}}\n", entries.join(", ")));
        prev = l;
    }
    maps.push_str("users: *i\n");
    let errs = users_errors(&[("users/b.yaml", &maps)]);
    assert!(!errs.is_empty());

    // An alias to a big map used many times: quadratic, and walked into.
    let mut big = String::from("x: &big {");
    for k in 0..2000 {
        big.push_str(&format!("city: v{k}, "));
    }
    big.push_str("}\nusers:\n");
    for u in 0..2000 {
        big.push_str(&format!("  u{u}: *big\n"));
    }
    let errs = users_errors(&[("users/c.yaml", &big)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("expands to more than") && e.contains("alias bomb")),
        "{errs:?}"
    );
    assert!(errs.len() <= 104, "errors are capped: {}", errs.len());
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn users_deep_nesting_and_junk_do_not_panic() {
    let deep = format!(
        "users:\n  u1: {{city: {}x{}}}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let errs = users_errors(&[
        ("users/a.yaml", &deep),
        ("users/b.yaml", "users: {u1: {city: *nope}}\n"),
        ("users/c.yaml", "users: {}\n---\nusers: {}\n"),
        ("users/d.yaml", "\u{feff}users:\n\t- x\n"),
    ]);
    assert_eq!(
        errs,
        [
            // Nesting is capped (DESIGN §8): 5,000 levels are refused where the cap is passed.
            "users/a.yaml:2:268: lists and maps are nested more than 64 levels deep; timattr's files need 4",
            "users/b.yaml:1:20: unknown anchor",
            "users/c.yaml:2:1: deserializing from YAML containing more than one document is not supported",
            "users/d.yaml:2:1: found character that cannot start any token, while scanning for the next token",
        ]
    );
}
