//! Issue 21: nothing leaks, nothing is skipped, nothing is misread. Users files outside the
//! project, file names that are not UTF-8, state locations, empty users files and YAML per
//! DESIGN.md §8, each through the real binary.

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
    assert!(err.contains("env.yaml") && err.contains("outside the project directory"), "{err}");
    assert!(!err.contains(SENTINEL) && !err.contains("LEAKY"), "{err}");

    std::fs::remove_file(p.path().join("users/env.yaml")).unwrap();
    for pattern in [
        r#"["users/*.yaml", "/proc/self/environ"]"#,
        r#"["users/*.yaml", "../../../../../../../../proc/self/env*"]"#,
        r#"["users/*.yaml", "users/../../*"]"#,
    ] {
        with_patterns(&p, pattern);
        let run = p.cmd(&["validate"]).env("LEAKY", SENTINEL).output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{pattern}: {err}");
        assert!(err.contains("outside the project directory"), "{pattern}: {err}");
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
    let odd = p.path().join("users").join(std::ffi::OsStr::from_bytes(b"caf\xe9.yaml"));
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

