//! `timattr validate` and `timattr plan` as a user runs them: no network, no secret, exact
//! views, broken inputs rejected with locations and nothing touched.

use crate::support;

use std::collections::BTreeMap;

use support::{users, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

/// A project whose endpoint does not exist: plan must not need it.
fn offline() -> Project {
    Project::new("https://adminapisgp.im.qcloud.com", NAMES)
}

#[test]
fn plan_needs_no_network_and_no_secret() {
    let p = offline();
    p.write_users_map("a.yaml", &users(3, ""));
    let run = p
        .cmd(&["plan"])
        .env_remove(support::SECRET_ENV)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("Plan: 3 to add, 0 to change, 0 to remove (3 users, 9 attribute values); 3 requests, about 0.03 s at 100 req/s."),
        "{out}"
    );
    assert!(!p.state_dir().exists(), "plan writes nothing");
}

#[test]
fn json_plan_over_many_users_matches_the_design_field_by_field() {
    let p = offline();
    let want = users(1_234, "");
    let (a, b): (BTreeMap<_, _>, BTreeMap<_, _>) = want
        .clone()
        .into_iter()
        .partition(|(k, _)| k.ends_with('7'));
    p.write_users_map("a.yaml", &a);
    p.write_users_map("b.yaml", &b);
    let out = p
        .run(&["plan", "--format", "json", "--detailed-exitcode"])
        .expect(2)
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(
        v["summary"],
        serde_json::json!({"add": 1234, "change": 0, "remove": 0, "unchanged": 0, "requests": 15})
    );
    assert_eq!(
        v["attribute_names"]["set"],
        serde_json::json!({"0": "sex", "1": "city", "2": "tier"})
    );
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), want.len());
    for (c, (account, attrs)) in changes.iter().zip(&want) {
        assert_eq!(c["account"], account.as_str());
        assert_eq!(c["action"], "add");
        assert_eq!(c["set"], serde_json::to_value(attrs).unwrap());
        assert_eq!(c["remove"], serde_json::json!([]));
        assert_eq!(c["before"], serde_json::json!({}));
        assert_eq!(c["after"], serde_json::to_value(attrs).unwrap());
    }
}

#[test]
fn markdown_stays_under_the_cap() {
    let p = offline();
    p.write_users_map("a.yaml", &users(5_000, "-a-rather-long-city-name"));
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(md.chars().count() < 60_000, "{}", md.len());
    assert!(md.contains("users were left out"), "{md}");
    assert!(md.contains("| 5000 |"));
}

#[test]
fn saved_plan_is_gzip_json_with_lineage_and_serial() {
    use std::io::Read;
    let p = offline();
    p.write_users_map("a.yaml", &users(3, ""));
    p.run(&["plan", "--out", "p.gz"]).expect(0);
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p.path().join("p.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["state"]["serial"], 0);
    assert!(v["state"]["lineage"].is_null());
    assert_eq!(v["changes"].as_array().unwrap().len(), 3);
}

#[test]
fn broken_inputs_exit_1_with_locations_and_touch_nothing() {
    let p = offline();
    p.write_users(
        "a.yaml",
        "users:\n  u1: {sex: 1}\n  u2:\n    colour: red\n  u3: {city: [a]}\n",
    );
    p.write_users("b.yaml", "users:\n  u1: {sex: m}\n  bad: {city: \"x\n");
    for args in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        let run = p.run(args).expect(1);
        let err = run.stderr();
        assert!(err.contains("a.yaml:2:"), "{args:?}: {err}");
        assert!(err.contains("quote"), "{err}");
        assert!(err.contains("a.yaml:4:5"), "{err}");
        assert!(err.contains("a.yaml:5:"), "{err}");
        assert!(err.contains("b.yaml:"), "{err}");
        assert!(
            run.stdout().is_empty(),
            "nothing on stdout: {}",
            run.stdout()
        );
        assert!(!p.state_dir().exists(), "nothing written");
    }
    assert!(!p.path().join("users/../state").exists());
}

#[test]
fn a_glob_matching_nothing_is_an_error_at_its_line() {
    let p = offline();
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains("timattr.yaml:7:9"), "{err}");
}

#[test]
fn unknown_keys_and_http_endpoints_are_rejected() {
    let p = Project::new("http://example.com", NAMES);
    p.write_users_map("a.yaml", &users(1, ""));
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains("timattr.yaml:4:"), "{err}");
    let p = offline();
    p.write_project(NAMES, "aply:\n  rate_limit: 5\n");
    p.write_users_map("a.yaml", &users(1, ""));
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains("aply"), "{err}");
}

#[test]
fn alias_bomb_ends_in_a_clear_error() {
    let p = offline();
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='i' {
        bomb.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = c;
    }
    bomb.push_str("users:\n  u1: *i\n");
    p.write_users("a.yaml", &bomb);
    let started = std::time::Instant::now();
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains("a.yaml"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn detailed_exitcode_is_zero_without_changes() {
    let p = offline();
    p.write_users("a.yaml", "users: {}\n");
    // No users and no store: nothing to do except the attribute names.
    let run = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.code(), 2, "attribute names still need configuring");
    p.write_project(&[], "");
    let out = p.run(&["plan", "--detailed-exitcode"]).expect(0).stdout();
    assert_eq!(
        out.trim(),
        "No changes. Desired attributes match the last-applied state."
    );
}
