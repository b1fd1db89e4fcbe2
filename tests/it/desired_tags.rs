//! User tags in users files (DESIGN.md §9, issue 16): the `tags` list of a user and of
//! `defaults`, every tag problem at its `file:line:column`, the fast path and the cut parse
//! of big files reading tags exactly as the general parser does, and projects without tags
//! loading exactly as before.

use crate::support;

use std::path::Path;

use support::files::{self, shown, write, PROJECT};
use support::Project;
use timattr::desired::load_project;
use timattr::diag::Diagnostics;
use timattr::model::Desired;

fn load_in(dir: &Path) -> Result<Desired, Diagnostics> {
    files::load_in(dir, PROJECT)
}

fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Desired, Diagnostics>) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        write(dir.path(), rel, text);
    }
    let r = load_in(dir.path());
    (dir, r)
}

fn errors(text: &str) -> Vec<String> {
    let (dir, r) = load(&[("users/a.yaml", text)]);
    shown(dir.path(), &r.expect_err("the file should be refused"))
}

/// `account {attrs} [tags]` of each account.
fn view(d: &Desired) -> Vec<String> {
    d.accounts
        .iter()
        .map(|(a, m)| format!("{a} {} {:?}", m.attrs.display(&d.names), m.tags))
        .collect()
}

#[test]
fn defaults_give_tags_a_users_own_list_replaces_them() {
    let (_dir, r) = load(&[
        (
            "users/a.yaml",
            "defaults:\n  tier: free\n  tags: [newsletter]\nusers:\n  xiaojun012: {sex: attr1, tags: [vip, beta]}\n  xiaojun013: {city: attr3}\n  xiaojun014: {tags: []}\n  xiaojun015:\n",
        ),
        // Block lists, quoted tags, defaults after the users, and no defaults at all.
        (
            "users/b.yaml",
            "users:\n  b1:\n    tags:\n      - \"x y\"\n      - 'z'\n      - yes\n  b2: {}\ndefaults:\n  tags:\n  - late\n",
        ),
        ("users/c.yaml", "users:\n  c1: {city: x}\n"),
    ]);
    let d = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        view(&d),
        [
            "b1 {} [\"x y\", \"yes\", \"z\"]",
            "b2 {} [\"late\"]",
            "c1 {city: \"x\"} []",
            "xiaojun012 {sex: \"attr1\", tier: \"free\"} [\"beta\", \"vip\"]",
            "xiaojun013 {city: \"attr3\", tier: \"free\"} [\"newsletter\"]",
            "xiaojun014 {tier: \"free\"} []",
            "xiaojun015 {tier: \"free\"} [\"newsletter\"]",
        ]
    );
}

#[test]
fn every_tag_problem_is_at_its_place_all_reported_together() {
    let long = "t".repeat(51);
    let cjk = "界".repeat(17); // 51 bytes in 17 characters
    let hundred_and_one: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let text = format!(
        "defaults: {{tags: vip}}\nusers:\n  a: {{tags: [1.5, true, ~, [x], {{k: v}}, ok]}}\n  b:\n    tags:\n      - \"\"\n      - {long}\n      - {cjk}\n      -\n  c: {{tags: [v, w, v], city: x, tags: []}}\n  d: {{tags: [{}]}}\n  e: {{tags: }}\n",
        hundred_and_one.join(", ")
    );
    assert_eq!(
        errors(&text),
        [
            "users/a.yaml:1:18: `tags` in `defaults` must be a list of strings, not a string",
            "users/a.yaml:3:14: a tag for account \"a\" is a number; quote it: \"1.5\"",
            "users/a.yaml:3:19: a tag for account \"a\" is a boolean; quote it: \"true\"",
            "users/a.yaml:3:25: a tag for account \"a\" is null; quote it: \"~\"",
            "users/a.yaml:3:28: a tag for account \"a\" is a list; quote it, e.g. \"vip\"",
            "users/a.yaml:3:33: a tag for account \"a\" is a map; quote it, e.g. \"vip\"",
            "users/a.yaml:6:9: a tag for account \"b\" is empty",
            &format!("users/a.yaml:7:9: tag \"{long}\" for account \"b\" is 51 bytes long; at most 50 bytes (UTF-8) are allowed"),
            &format!("users/a.yaml:8:9: tag \"{cjk}\" for account \"b\" is 51 bytes long; at most 50 bytes (UTF-8) are allowed"),
            "users/a.yaml:9:8: a tag for account \"b\" is null; remove the empty item",
            "users/a.yaml:10:20: tag \"v\" is listed twice for account \"c\" (first at users/a.yaml:10:14)",
            "users/a.yaml:10:33: `tags` is set twice for account \"c\" (first at users/a.yaml:10:7)",
            "users/a.yaml:11:13: `tags` for account \"d\" lists 101 tags; a user holds at most 100",
            "users/a.yaml:12:11: `tags` for account \"e\" must be a list of strings, not null",
        ]
    );
}

#[test]
fn a_tag_error_shows_the_line_with_a_caret_and_help() {
    let (dir, r) = load(&[("users/a.yaml", "users:\n  u1: {tags: [vip, 42]}\n")]);
    let text = r.unwrap_err().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let at = format!("{}/users/a.yaml:2:20: error: ", dir.path().display());
    assert_eq!(
        lines[0],
        format!("{at}a tag for account \"u1\" is a number; quote it: \"42\"")
    );
    assert_eq!(
        lines[2..4],
        ["2 |   u1: {tags: [vip, 42]}", "  |                    ^^"]
    );
    assert_eq!(lines[4], "  help: tags are strings");
}

#[test]
fn tags_with_control_or_bidi_characters_are_data_like_values() {
    let (_dir, r) = load(&[(
        "users/a.yaml",
        "users:\n  u1: {city: \"a\\eb\", tags: [\"x\\e[2Jy\", \"\\u202Eevil\"]}\n",
    )]);
    let d = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        view(&d),
        ["u1 {city: \"a\\u{1b}b\"} [\"x\\u{1b}[2Jy\", \"\\u{202e}evil\"]"]
    );
}

#[test]
fn tags_cannot_be_an_attribute_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users/a.yaml", "users: {}\n");
    let path = write(
        dir.path(),
        "timattr.yaml",
        &PROJECT.replace("[sex, city, tier]", "[sex, tags, tier, \"tags\"]"),
    );
    let err = load_project(&path).expect_err("`tags` is not a name");
    assert_eq!(
        shown(dir.path(), &err),
        [
            "timattr.yaml:5:19: `tags` cannot be an attribute name",
            "timattr.yaml:5:31: `tags` cannot be an attribute name",
        ]
    );
    assert!(err.0[0].help.as_deref().unwrap().contains("list of tags"));
}

/// Users files in the fast path's subset, and the same files read by the general parser
/// (a comment first line takes them out of the subset): the same desired state.
#[test]
fn the_fast_path_reads_tags_as_the_general_parser_does() {
    let mut text = String::from("defaults:\n  tier: free\n  tags: [news, 'd q']\nusers:\n");
    for i in 0..300 {
        let tags: Vec<String> = (0..i % 13)
            .map(|k| format!("t{}", (i * 7 + k) % 50))
            .collect();
        match i % 4 {
            0 => text.push_str(&format!(
                "  u{i:03}: {{city: c{i}, tags: [{}]}}\n",
                tags.join(", ")
            )),
            1 => text.push_str(&format!(
                "  u{i:03}:\n    tags: [{}]\n    sex: m\n",
                tags.join(", ")
            )),
            2 => text.push_str(&format!(
                "  u{i:03}: {{tags: [\"{}\"]}}\n",
                tags.join("\", \"")
            )),
            _ => text.push_str(&format!("  u{i:03}: {{sex: f}}\n")),
        }
    }
    let text = text.replace("[\"\"]", "[]");
    let (_fast_dir, fast) = load(&[("users/a.yaml", &text)]);
    let (_slow_dir, slow) = load(&[("users/a.yaml", &format!("# general parser\n{text}"))]);
    let (fast, slow) = (fast.unwrap(), slow.unwrap());
    assert_eq!(fast, slow);
    assert_eq!(fast.accounts.len(), 300);
    assert!(fast.accounts.iter().any(|(_, m)| m.tags.len() == 11));
    assert_eq!(
        fast.accounts[3].1.tags.iter().collect::<Vec<_>>(),
        ["d q", "news"]
    );
}

/// A users file of accounts `u{i:06}` with 0..=10 tags each, flow and block style mixed.
fn tagged(range: std::ops::Range<usize>) -> String {
    let mut s = String::new();
    for i in range {
        let tags: Vec<String> = (0..i % 11).map(|k| format!("t{}", (i + k) % 50)).collect();
        match i % 3 {
            0 => s.push_str(&format!(
                "  u{i:06}:\n    city: c{}\n    tags: [{}]\n",
                i % 97,
                tags.join(", ")
            )),
            1 => s.push_str(&format!(
                "  u{i:06}: {{tier: gold, tags: [{}]}}\n",
                tags.join(", ")
            )),
            _ => s.push_str(&format!("  u{i:06}: {{sex: m}}\n")),
        }
    }
    s
}

#[test]
fn one_big_file_with_tags_loads_exactly_like_small_files() {
    const N: usize = 60_000; // > 2 MB: cut into pieces on a machine with 2 cores or more
    let big = tempfile::tempdir().unwrap();
    let text = format!("defaults: {{tags: [d]}}\nusers:\n{}", tagged(0..N));
    assert!(text.len() > 2 << 20, "{} bytes", text.len());
    write(big.path(), "users/all.yaml", &text);
    let one = load_in(big.path()).unwrap();
    let small = tempfile::tempdir().unwrap();
    for (k, part) in [(0, 0..N / 3), (1, N / 3..N / 2), (2, N / 2..N)] {
        let text = format!("users:\n{}defaults: {{tags: [d]}}\n", tagged(part));
        write(small.path(), &format!("users/p{k}.yaml"), &text);
    }
    let many = load_in(small.path()).unwrap();
    assert_eq!(one.accounts.len(), N);
    assert!(one.accounts == many.accounts, "the two loads differ");
    assert_eq!(view(&one)[2], "u000002 {sex: \"m\"} [\"d\"]");

    // A tag problem deep in a big file: reported at its place, as a whole-file parse does.
    let line = "  u050003: {sex: m}\n";
    assert!(text.contains(line));
    let bad = text.replace(line, "  u050003: {sex: m, tags: [ok, ok]}\n");
    write(big.path(), "users/all.yaml", &bad);
    let err = load_in(big.path()).unwrap_err();
    let n = bad
        .lines()
        .position(|l| l.starts_with("  u050003"))
        .unwrap()
        + 1;
    assert_eq!(
        shown(big.path(), &err),
        [format!(
            "users/all.yaml:{n}:32: tag \"ok\" is listed twice for account \"u050003\" (first at users/all.yaml:{n}:28)"
        )]
    );
}

#[test]
fn a_project_without_tags_loads_as_before_and_validates_with_the_same_words() {
    let (_dir, r) = load(&[(
        "users/a.yaml",
        "defaults: {tier: free}\nusers:\n  a: {city: x}\n  b:\n    sex: m\n",
    )]);
    let d = r.unwrap();
    assert_eq!(
        view(&d),
        [
            "a {city: \"x\", tier: \"free\"} []",
            "b {sex: \"m\", tier: \"free\"} []"
        ]
    );
    assert!(d.accounts.iter().all(|(_, m)| m.tags.is_empty()));

    let p = Project::new("embedded", &["sex", "city", "tier"]);
    p.write_users(
        "a.yaml",
        "defaults: {tier: free}\nusers:\n  a: {city: x}\n  b:\n    sex: m\n",
    );
    let out = p.run(&["validate"]).expect(0).stderr();
    assert!(
        out.ends_with("timattr.yaml: valid (2 users, 4 attribute values, 3 attribute names).\n"),
        "{out}"
    );
    p.write_users(
        "a.yaml",
        "defaults: {tags: [n]}\nusers:\n  a: {city: x, tags: [v, w]}\n  b:\n",
    );
    let out = p.run(&["validate"]).expect(0).stderr();
    assert!(
        out.ends_with(
            "timattr.yaml: valid (2 users, 1 attribute value, 3 tags, 3 attribute names).\n"
        ),
        "{out}"
    );
}
