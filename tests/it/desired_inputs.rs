//! Loading hostile, odd and big inputs (DESIGN §1, §8; issues 11–14): byte order marks,
//! matches that are not readable files, control characters in ids, deep nesting, typos,
//! and one big file parsed in pieces giving exactly what small files give.

use crate::support;

use support::files::{load_in, shown, write, PROJECT};
use timattr::desired::{load_project, load_users};
use timattr::model::Desired;

fn view(d: &Desired) -> Vec<String> {
    d.accounts
        .iter()
        .map(|(a, attrs)| format!("{a} {}", attrs.attrs.display(&d.names)))
        .collect()
}

#[test]
fn a_byte_order_mark_is_accepted_in_every_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "users/a.yaml",
        "\u{feff}users:\n  u1: {city: x}\n",
    );
    let d = load_in(dir.path(), &format!("\u{feff}{PROJECT}")).unwrap();
    assert_eq!(view(&d), ["u1 {city: \"x\"}"]);
    // Positions after a BOM are those an editor shows.
    write(
        dir.path(),
        "users/a.yaml",
        "\u{feff}users:\n  u1: {city: 1}\n",
    );
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    assert_eq!(
        shown(dir.path(), &err),
        ["users/a.yaml:2:14: value of \"city\" for account \"u1\" is a number; quote it: city: \"1\""]
    );
}

#[test]
#[cfg(unix)]
fn matches_that_are_not_readable_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "users/a.yaml", "users:\n  u1: {city: x}\n");
    std::os::unix::fs::symlink(d.join("gone.yaml"), d.join("users/dangling.yaml")).unwrap();
    std::fs::create_dir(d.join("users/dir.yaml")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(d.join("users/pipe.yaml"))
        .status()
        .is_ok_and(|s| s.success());
    // Opening a FIFO would block: the loader must refuse it without opening it.
    let err = load_in(d, PROJECT).unwrap_err();
    let lines = shown(d, &err);
    assert!(
        lines.contains(&"users/dangling.yaml: cannot read users file: it is a symbolic link to a file that does not exist".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"users/dir.yaml: cannot read users file: it is a directory".to_owned()),
        "{lines:?}"
    );
    if fifo {
        assert!(
            lines.contains(
                &"users/pipe.yaml: cannot read users file: it is a FIFO (named pipe), not a regular file"
                    .to_owned()
            ),
            "{lines:?}"
        );
    }
    assert_eq!(lines.len(), 2 + usize::from(fifo), "{lines:?}");
}

#[test]
#[cfg(unix)]
fn an_unreadable_users_file_is_an_error() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "users/a.yaml", "users:\n  u1: {city: x}\n");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::read(&f).is_ok(); // root reads it anyway
    let r = load_in(dir.path(), PROJECT);
    if readable {
        assert!(r.is_ok());
    } else {
        let lines = shown(dir.path(), &r.unwrap_err());
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("users/a.yaml: cannot read users file: Permission denied"),
            "{lines:?}"
        );
    }
}

#[test]
fn account_ids_with_control_or_bidi_characters_are_refused_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "users/a.yaml",
        "users:\n  ok: {city: \"tab\\there \\e[2J\"}\n  \"evil\\e[2J\": {city: x}\n  \"rtl\\u202Etxt\": {}\n  \"nl\\r\": {}\n",
    );
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    assert_eq!(
        shown(dir.path(), &err),
        [
            "users/a.yaml:3:3: account id \"evil\\x1b[2J\" contains the control character U+001B",
            "users/a.yaml:4:3: account id \"rtl\\u{202e}txt\" contains the bidirectional formatting character U+202E",
            "users/a.yaml:5:3: account id \"nl\\x0d\" contains the control character U+000D",
        ]
    );
    let text = err.to_string();
    assert!(
        !text
            .chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
        "{text:?}"
    );
    // Values keep them: the output layer escapes values.
    write(
        dir.path(),
        "users/a.yaml",
        "users:\n  ok: {city: \"a\\e[2Jb\"}\n",
    );
    let d = load_in(dir.path(), PROJECT).unwrap();
    assert_eq!(
        d.accounts[0].1.attrs.iter().next().unwrap().1,
        "a\u{1b}[2Jb"
    );
}

#[test]
fn deep_nesting_is_refused_in_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("{}{}", "[".repeat(60_000), "]".repeat(60_000));
    write(dir.path(), "users/a.yaml", &format!("users: {deep}\n"));
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    assert!(
        err.0[0].message.contains("nested more than 64 levels"),
        "{err}"
    );
    let block = (0..70)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect::<String>();
    write(dir.path(), "users/a.yaml", &block);
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|d| d.message.contains("nested more than 64 levels")),
        "{err}"
    );
    let project = write(
        dir.path(),
        "timattr.yaml",
        &format!("{PROJECT}apply: {deep}\n"),
    );
    let err = load_project(&project).unwrap_err();
    assert!(
        err.0[0].message.contains("nested more than 64 levels"),
        "{err}"
    );
}

#[test]
fn typos_get_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "users/a.yaml",
        "users:\n  u1: {cty: x}\nuser: {}\n",
    );
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    let helps: Vec<_> = err
        .0
        .iter()
        .map(|d| d.help.clone().unwrap_or_default())
        .collect();
    assert_eq!(helps, ["did you mean `city`?", "did you mean `users`?"]);
    // Far from every declared name: the list instead.
    write(dir.path(), "users/a.yaml", "users:\n  u1: {zzz: x}\n");
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    assert_eq!(
        err.0[0].help.as_deref(),
        Some("declared attributes: sex, city, tier")
    );

    let project = write(
        dir.path(),
        "timattr.yaml",
        &PROJECT
            .replace("attributes:", "atributes:")
            .replace("region: singapore", "region: singapor"),
    );
    let err = load_project(&project).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("timattr.yaml:4:11: error: unknown region \"singapor\""),
        "{text}"
    );
    assert!(text.contains("help: did you mean `singapore`?"), "{text}");
    assert!(
        text.contains("timattr.yaml:5:1: error: unknown key `atributes` in the project file"),
        "{text}"
    );
    assert!(text.contains("help: did you mean `attributes`?"), "{text}");
}

#[test]
fn a_users_glob_matching_nothing_is_reported_by_load_users_with_a_near_match() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users/a.yaml", "users: {}\n");
    write(dir.path(), "users/b.yaml", "users: {}\n");
    let path = write(
        dir.path(),
        "timattr.yaml",
        &PROJECT.replace("*.yaml", "*.yml"),
    );
    // The project file alone loads: it does not look at the users files.
    let s = load_project(&path).unwrap();
    let err = load_users(&s).unwrap_err();
    assert_eq!(err.0.len(), 1);
    let d = &err.0[0];
    assert_eq!((d.line, d.column), (6, 9));
    assert!(d
        .message
        .starts_with("users pattern \"users/*.yml\" matches no file"));
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean \"users/*.yaml\"? it matches 2 files")
    );
}

#[test]
fn quote_hints_show_the_text_as_written_and_yaml_1_2_words_stay_text() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "users/a.yaml",
        "users:\n  u1: {city: 1.10, sex: 0x1F, tier: True}\n  u2: {city: 1e3, sex: .inf, tier: -0o17}\n  ok: {city: yes, sex: no, tier: 0123}\n",
    );
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    let hints: Vec<String> = err
        .0
        .iter()
        .map(|d| d.message.split("; ").nth(1).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        hints,
        [
            "quote it: city: \"1.10\"",
            "quote it: sex: \"0x1F\"",
            "quote it: tier: \"True\"",
            "quote it: city: \"1e3\"",
            "quote it: sex: \".inf\"",
            "quote it: tier: \"-0o17\"",
        ]
    );
    write(
        dir.path(),
        "users/a.yaml",
        "users:\n  ok: {city: yes, sex: no, tier: 0123}\n",
    );
    let d = load_in(dir.path(), PROJECT).unwrap();
    assert_eq!(
        view(&d),
        ["ok {sex: \"no\", city: \"yes\", tier: \"0123\"}"]
    );
}

#[test]
fn diagnostics_show_the_source_line_with_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users/a.yaml", "users:\n  u1:\n    city: 42\n");
    let err = load_in(dir.path(), PROJECT).unwrap_err();
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(
        "users/a.yaml:3:11: error: value of \"city\" for account \"u1\" is a number; quote it: city: \"42\""
    ));
    assert_eq!(lines[1..4], ["  |", "3 |     city: 42", "  |           ^^"]);
    assert_eq!(lines[4], "  help: attribute values are strings");
}

/// A users file of `n` accounts `u{i:06}`, block and flow style mixed, with a value per
/// account that depends on `i`.
fn accounts(range: std::ops::Range<usize>) -> String {
    let mut s = String::new();
    for i in range {
        if i % 3 == 0 {
            s.push_str(&format!("  u{i:06}:\n    city: c{}\n    sex: m\n", i % 97));
        } else {
            s.push_str(&format!(
                "  u{i:06}: {{city: \"c {}\", tier: gold}}\n",
                i % 89
            ));
        }
    }
    s
}

#[test]
fn one_big_file_loads_exactly_like_small_files() {
    const N: usize = 100_000; // ~3.3 MB: cut into pieces on a machine with 2 cores or more
    let big = tempfile::tempdir().unwrap();
    write(
        big.path(),
        "users/all.yaml",
        &format!("defaults: {{tier: free}}\nusers:\n{}", accounts(0..N)),
    );
    let one = load_in(big.path(), PROJECT).unwrap();
    let small = tempfile::tempdir().unwrap();
    for (k, part) in [(0, 0..N / 3), (1, N / 3..N / 2), (2, N / 2..N)] {
        let text = format!("users:\n{}defaults: {{tier: free}}\n", accounts(part));
        write(small.path(), &format!("users/p{k}.yaml"), &text);
    }
    let many = load_in(small.path(), PROJECT).unwrap();
    assert_eq!(one.accounts.len(), N);
    assert!(one.accounts == many.accounts, "the two loads differ");

    // Problems in a big file are those of a whole-file parse, at their exact places.
    let mut text = format!("users:\n{}", accounts(0..N));
    let line = accounts(50_001..50_002);
    assert!(text.contains(&line));
    text = text.replace(&line, "  u050001: {city: 7, tier: gold}\n");
    text.push_str("  u000004: {}\n");
    write(big.path(), "users/all.yaml", &text);
    let err = load_in(big.path(), PROJECT).unwrap_err();
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    assert_eq!(
        shown(big.path(), &err),
        [
            format!(
                "users/all.yaml:{}:19: value of \"city\" for account \"u050001\" is a number; quote it: city: \"7\"",
                line_of("  u050001")
            ),
            format!(
                "users/all.yaml:{}:3: account \"u000004\" is defined twice (first at users/all.yaml:{}:3)",
                text.lines().count(),
                line_of("  u000004")
            ),
        ]
    );
    // A duplicate alone, in two pieces of a clean big file: the same report.
    let mut text = format!("users:\n{}", accounts(0..N));
    text.push_str("  u000004: {}\n");
    write(big.path(), "users/all.yaml", &text);
    let err = load_in(big.path(), PROJECT).unwrap_err();
    assert_eq!(
        shown(big.path(), &err),
        [format!(
            "users/all.yaml:{}:3: account \"u000004\" is defined twice (first at users/all.yaml:{}:3)",
            text.lines().count(),
            line_of("  u000004")
        )]
    );
}
