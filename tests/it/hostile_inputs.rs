//! Issue 21: nothing leaks, nothing is skipped, nothing is misread. Users files outside the
//! project, file names that are not UTF-8, state locations, empty users files and YAML per
//! DESIGN.md §8, each through the real binary. Unix-only: symlinks and non-UTF-8 names are built
//! with Unix APIs.
#![cfg(unix)]

use crate::support;

use std::os::unix::ffi::OsStrExt as _;

use support::Project;

const NAMES: &[&str] = &["sex", "city", "tier"];
/// A secret the process holds that no output may show.
const SENTINEL: &str = "s3ntinel-Hunter2-ZZQ";

fn project() -> Project {
    Project::new("embedded", NAMES)
}

/// The project file with `users` replaced by `patterns`.
fn with_patterns(p: &Project, patterns: &str) {
    let path = p.path().join("timattr.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("users: [\"users/*.yaml\"]", &format!("users: {patterns}"));
    std::fs::write(path, text).unwrap();
}

#[test]
fn users_files_outside_the_project_are_never_read() {
    let p = project();
    p.write_users("a.yaml", "users:\n  u1: {sex: m}\n");
    std::os::unix::fs::symlink("/proc/self/environ", p.path().join("users/env.yaml")).unwrap();
    let run = p.cmd(&["plan"]).env("LEAKY", SENTINEL).output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("env.yaml") && err.contains("outside the project directory"),
        "{err}"
    );
    assert!(!err.contains(SENTINEL) && !err.contains("LEAKY"), "{err}");

    std::fs::remove_file(p.path().join("users/env.yaml")).unwrap();
    for pattern in [
        r#"["users/*.yaml", "/proc/self/environ"]"#,
        r#"["users/*.yaml", "../../../../../../../../proc/self/env*"]"#,
        r#"["users/*.yaml", "users/../../*"]"#,
    ] {
        with_patterns(&p, pattern);
        let run = p
            .cmd(&["validate"])
            .env("LEAKY", SENTINEL)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{pattern}: {err}");
        assert!(
            err.contains("outside the project directory"),
            "{pattern}: {err}"
        );
        assert!(!err.contains(SENTINEL), "{pattern}: {err}");
    }
}

#[test]
fn a_symlink_inside_the_project_is_read() {
    let p = project();
    std::fs::create_dir_all(p.path().join("shared")).unwrap();
    std::fs::write(p.path().join("shared/b.yaml"), "users:\n  u2: {sex: f}\n").unwrap();
    p.write_users("a.yaml", "users:\n  u1: {sex: m}\n");
    std::os::unix::fs::symlink("../shared/b.yaml", p.path().join("users/b.yaml")).unwrap();
    let err = p.run(&["validate"]).expect(0).stderr();
    assert!(err.contains("2 users"), "{err}");
}

#[test]
fn file_names_that_are_not_utf8_are_read_and_shown_escaped() {
    let p = project();
    p.write_users("a.yaml", "users:\n  u1: {sex: m}\n");
    let odd = p
        .path()
        .join("users")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.yaml"));
    std::fs::write(&odd, "users:\n  u2: {sex: f}\n").unwrap();
    let err = p.run(&["validate"]).expect(0).stderr();
    assert!(err.contains("2 users"), "{err}");

    std::fs::write(&odd, "users:\n  u2: {sex: 42}\n").unwrap();
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains(r"caf\xe9.yaml:2:"), "{err}");

    std::fs::remove_file(p.path().join("users/a.yaml")).unwrap();
    std::fs::write(&odd, "users:\n  u2: {sex: f}\n").unwrap();
    let err = p.run(&["validate"]).expect(0).stderr();
    assert!(err.contains("1 user"), "{err}");
}

/// A run of `p` with `envs` set, as (code, stdout, stderr).
fn run_env(p: &Project, args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> (i32, String, String) {
    let mut cmd = p.cmd(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn state_locations_follow_the_rules() {
    let p = project();
    p.write_users("a.yaml", "users:\n  u1: {sex: m}\n");
    for (value, says) in [
        (
            "postgress://root@127.0.0.1:5432/x",
            "did you mean `postgres://`?",
        ),
        (
            "mysql://root@127.0.0.1/x",
            "unknown state scheme `mysql://`",
        ),
        ("postgres://root@127.0.0.1:5432", "names no database"),
        ("postgresql://root@127.0.0.1:5432/", "names no database"),
    ] {
        let (code, _, err) = run_env(&p, &["plan"], &[("TIMATTR_STATE", os(value))]);
        assert_eq!(code, 1, "{value}: {err}");
        assert!(
            err.contains("TIMATTR_STATE") && err.contains(says),
            "{value}: {err}"
        );
        let entries: Vec<_> = std::fs::read_dir(p.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            !entries.iter().any(|n| n.to_string_lossy().contains(':')),
            "{value}: a directory named after the URL: {entries:?}"
        );
    }
    // Any case of the scheme selects PostgreSQL (here one that cannot be reached).
    let (code, _, err) = run_env(
        &p,
        &["plan"],
        &[(
            "TIMATTR_STATE",
            os("POSTGRES://root@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"),
        )],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    assert!(!p.path().join("POSTGRES:").exists());

    let bad = std::ffi::OsStr::from_bytes(b"state-\xff");
    let (code, _, err) = run_env(&p, &["plan"], &[("TIMATTR_STATE", bad)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("TIMATTR_STATE is not valid UTF-8"), "{err}");
}

#[test]
fn a_password_with_reserved_characters_is_refused_without_a_fragment() {
    let p = project();
    p.write_users("a.yaml", "users:\n  u1: {sex: m}\n");
    for url in [
        "postgres://root:p@ssLEAK@127.0.0.1:5432/x",
        "postgres://root:p/ssLEAK@127.0.0.1:5432/x",
        "postgres://root:p:ssLEAK@127.0.0.1:5432/x",
        "postgres://root:p?ssLEAK@127.0.0.1:5432/x",
        "postgres://root:p#ssLEAK@127.0.0.1:5432/x",
    ] {
        for args in [&["plan"][..], &["-vvv", "state", "list"][..]] {
            let (code, out, err) = run_env(&p, args, &[("TIMATTR_STATE", os(url))]);
            assert_eq!(code, 1, "{url}: {err}");
            assert!(err.contains("percent-encode"), "{url}: {err}");
            assert!(
                !err.contains("LEAK") && !out.contains("LEAK"),
                "{url}: {err}"
            );
        }
    }
}

#[test]
fn a_password_in_the_project_file_is_not_shown_in_the_excerpt() {
    let p = project();
    p.write_users("a.yaml", "users:\n  u1: {sex: m}\n");
    p.write_project(
        NAMES,
        "state: postgres://root:hunter2xyz@127.0.0.1:5432/timattr\n",
    );
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(
        err.contains("PGPASSWORD") && err.contains("timattr.yaml:"),
        "{err}"
    );
    assert!(!err.contains("hunter2xyz"), "{err}");
    assert!(
        err.contains("***"),
        "the excerpt is still shown, masked: {err}"
    );
}

#[test]
fn secrets_never_reach_any_output_at_any_verbosity() {
    let p = project();
    let password = "pgPw-Qx7-secret";
    // A value that happens to hold the password, and a broken line that quotes it.
    p.write_users(
        "a.yaml",
        &format!("users:\n  u1: {{sex: \"{password}\"}}\n"),
    );
    let envs = [("PGPASSWORD", os(password))];
    for args in [
        &["-vvv", "plan"][..],
        &["-vvv", "plan", "--format", "json"][..],
        &["-vvv", "apply", "--auto-approve"][..],
        &["-vvv", "drift"][..],
    ] {
        let (_, out, err) = run_env(&p, args, &envs);
        assert!(
            !out.contains(password) && !err.contains(password),
            "{args:?}: {out}{err}"
        );
    }
    let (_, out, _) = run_env(&p, &["plan", "--format", "json"], &envs);
    assert!(!out.contains(password), "{out}");
    p.write_users(
        "a.yaml",
        &format!("users:\n  u1: {{sex: [\"{password}\"]}}\n"),
    );
    let (code, out, err) = run_env(&p, &["-vvv", "validate"], &envs);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a.yaml:2:") && err.contains("***"), "{err}");
    assert!(!out.contains(password) && !err.contains(password), "{err}");
    let summary = p.path().join("summary.md");
    p.write_users(
        "a.yaml",
        &format!("users:\n  u1: {{sex: m}}\n  u2: {{sex: \"{password}\"}}\n"),
    );
    let (_, _, err) = run_env(
        &p,
        &["apply", "--auto-approve"],
        &[
            ("PGPASSWORD", os(password)),
            ("GITHUB_STEP_SUMMARY", summary.as_os_str()),
        ],
    );
    let written = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(!written.is_empty(), "{err}");
    assert!(!written.contains(password), "{written}");
    // Files: a saved plan and an export hold the text masked (inside their gzip).
    p.write_users(
        "a.yaml",
        &format!("users:\n  u3: {{sex: \"{password}\"}}\n"),
    );
    for args in [
        &["plan", "--out", "p.plan"][..],
        &["state", "export", "--out", "b.gz"][..],
    ] {
        let (code, _, err) = run_env(&p, args, &envs);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    for file in ["p.plan", "b.gz"] {
        let bytes = std::fs::read(p.path().join(file)).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .unwrap();
        assert!(
            text.contains("***") && !text.contains(password),
            "{file}: {text}"
        );
    }
}

#[test]
fn a_users_file_that_declares_no_users_is_an_error() {
    let p = project();
    p.write_users("a.yaml", "users:\n  u1: {sex: m}\n");
    for (text, says) in [
        ("", "declares no users"),
        ("# only a comment\n\n# and another\n", "declares no users"),
        ("---\n", "declares no users"),
        ("---\n...\n", "declares no users"),
        ("users:\n", "`users` is empty"),
        ("users: ~\n", "`users` is empty"),
        ("users: null\n", "`users` is empty"),
        ("defaults: {sex: m}\nusers:\n", "`users` is empty"),
    ] {
        p.write_users("b.yaml", text);
        let err = p.run(&["validate"]).expect(1).stderr();
        assert!(
            err.contains("b.yaml") && err.contains(says),
            "{text:?}: {err}"
        );
        assert!(
            err.contains("users: {}"),
            "{text:?}: the hint names the way: {err}"
        );
    }
    p.write_users("b.yaml", "# intentionally empty\nusers: {}\n");
    let err = p.run(&["validate"]).expect(0).stderr();
    assert!(err.contains("1 user"), "{err}");
}

/// The desired state as the JSON plan shows it: account → `after`.
fn planned(p: &Project) -> serde_json::Value {
    let out = p.run(&["plan", "--format", "json"]).expect(0).stdout();
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut after = serde_json::Map::new();
    for c in plan["changes"].as_array().unwrap() {
        after.insert(
            c["account"].as_str().unwrap().to_owned(),
            c["after"].clone(),
        );
    }
    serde_json::Value::Object(after)
}

#[test]
fn merge_keys_merge_and_explicit_keys_win() {
    let p = project();
    p.write_users(
        "a.yaml",
        "defaults:\n  <<: {tier: free}\nusers:\n  u1: &base {sex: m, city: x}\n  u2: {<<: *base, city: y}\n  u3:\n    <<: [*base, {tier: gold, city: z}]\n    sex: f\n  u4: {\"<<\": x}\n",
    );
    let err = p.run(&["validate"]).expect(1).stderr();
    // The quoted "<<" is an attribute name like any other (undeclared here).
    assert!(
        err.contains("a.yaml:9:8") && err.contains("\"<<\""),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    p.write_users(
        "a.yaml",
        "defaults:\n  <<: {tier: free}\nusers:\n  u1: &base {sex: m, city: x}\n  u2: {<<: *base, city: y}\n  u3:\n    <<: [*base, {tier: gold, city: z}]\n    sex: f\n",
    );
    let after = planned(&p);
    assert_eq!(
        after,
        serde_json::json!({
            "u1": {"sex": "m", "city": "x", "tier": "free"},
            "u2": {"sex": "m", "city": "y", "tier": "free"},
            "u3": {"sex": "f", "city": "x", "tier": "gold"},
        })
    );
    p.write_users("a.yaml", "users:\n  u1: {<<: 1}\n  u2: {<<: [x]}\n");
    let err = p.run(&["validate"]).expect(1).stderr();
    assert_eq!(err.matches("merge key `<<`").count(), 2, "{err}");
}

#[test]
fn tags_other_than_str_are_errors_naming_the_tag_and_hide_nothing() {
    let p = project();
    p.write_users(
        "a.yaml",
        "users:\n  u1: {sex: !!bool \"yes\"}\n  u2: {sex: !!binary aGk=}\n  u3: {city: !!timestamp 2001-12-14}\n  u4: {city: !custom x}\n  u5: {tier: 42}\n  u6: !!map {sex: m}\n  u7: {sex: !!str 1}\n",
    );
    let err = p.run(&["validate"]).expect(1).stderr();
    for (at, tag) in [
        ("a.yaml:2:13", "`!!bool`"),
        ("a.yaml:3:13", "`!!binary`"),
        ("a.yaml:4:14", "`!!timestamp`"),
        ("a.yaml:5:14", "`!custom`"),
        ("a.yaml:7:7", "`!!map`"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(at) && l.contains(tag)),
            "{at} {tag}: {err}"
        );
    }
    // The number after the tags is still found; `!!str 1` is the string "1".
    assert!(err.contains("a.yaml:6:14"), "{err}");
    assert!(err.contains("6 errors found"), "{err}");
}

#[test]
fn a_yaml_1_1_directive_changes_nothing() {
    let p = project();
    let body = "users:\n  u1: {sex: yes, city: on, tier: \"0o17\"}\n";
    p.write_users("a.yaml", body);
    let plain = planned(&p);
    p.write_users("a.yaml", &format!("%YAML 1.1\n---\n{body}"));
    assert_eq!(planned(&p), plain);
    p.write_users("a.yaml", "%YAML 1.1\n---\nusers:\n  u1: {sex: 0x1F}\n");
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(
        err.contains("a.yaml:4:13") && err.contains("quote it"),
        "{err}"
    );
}

#[test]
fn a_50_mb_line_is_cut_in_the_excerpt() {
    let p = project();
    let long = "x".repeat(50 << 20);
    p.write_users(
        "a.yaml",
        &format!("users:\n  u1: {{sex: \"{long}\", city: 1}}\n"),
    );
    let run = p.run(&["validate"]).expect(1);
    let err = run.stderr();
    assert!(err.len() < 4_000, "{} bytes of stderr", err.len());
    assert!(err.contains("bytes long") && err.contains('…'), "{err}");
    for line in err.lines() {
        assert!(line.chars().count() <= 220, "{line}");
    }
}

#[test]
fn nfc_and_nfd_spellings_of_one_id_are_told_apart() {
    let p = project();
    let nfc = "caf\u{e9}";
    let nfd = "cafe\u{301}";
    p.write_users("a.yaml", &format!("users:\n  {nfc}: {{sex: m}}\n"));
    p.write_users("b.yaml", &format!("users:\n  {nfd}: {{sex: f}}\n"));
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(
        err.contains("differs only in Unicode normalisation"),
        "{err}"
    );
    assert!(
        err.contains(r"cafe\u{301}") && err.contains(r"caf\u{e9}"),
        "{err}"
    );
    assert!(
        err.contains("b.yaml:2:3") && err.contains("a.yaml:2:3"),
        "{err}"
    );
    // The same inside one file, where the general parser reads a big plain file too.
    let mut big = String::from("users:\n");
    for i in 0..2000 {
        big.push_str(&format!("  user{i:05}: {{sex: m}}\n"));
    }
    big.push_str(&format!("  {nfc}: {{sex: m}}\n  {nfd}: {{sex: m}}\n"));
    std::fs::remove_file(p.path().join("users/b.yaml")).unwrap();
    p.write_users("a.yaml", &big);
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(
        err.contains("differs only in Unicode normalisation"),
        "{err}"
    );
}

/// Random passwords, given raw (`PGPASSWORD`) and percent-encoded (`TIMATTR_STATE`), never
/// show in any output under `-vvv`, in any spelling.
#[test]
fn random_passwords_never_reach_any_output() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let p = project();
    for _ in 0..3 {
        let core: String = (0..12)
            .map(|_| char::from(ALPHABET[usize::from(rand::random::<u8>()) % ALPHABET.len()]))
            .collect();
        let password = format!("{core}@:/?#%é");
        let encoded: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        p.write_users("a.yaml", &format!("users:\n  u1: {{sex: \"{core}\"}}\n"));
        let url =
            format!("postgres://root:{encoded}@127.0.0.1:1/x?sslmode=disable&connect_timeout=1");
        for args in [
            &["-vvv", "plan"][..],
            &["-vvv", "state", "list"][..],
            &["-vvv", "validate"][..],
        ] {
            let (_, out, err) = run_env(
                &p,
                args,
                &[("PGPASSWORD", os(&password)), ("TIMATTR_STATE", os(&url))],
            );
            for spelling in [&password, &encoded, &core] {
                assert!(
                    !out.contains(spelling.as_str()),
                    "{args:?} {spelling}: {out}"
                );
                assert!(
                    !err.contains(spelling.as_str()),
                    "{args:?} {spelling}: {err}"
                );
            }
        }
    }
}
