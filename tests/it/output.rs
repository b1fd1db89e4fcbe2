//! What scripts and CI see on stdout: JSON that parses even with `-v`, no colour codes unless
//! asked for, the markdown plan in `GITHUB_STEP_SUMMARY`, and an example in every `--help`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the quickstart project in a temporary directory, with an empty state.
fn quickstart() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = root().join("examples/quickstart");
    std::fs::create_dir_all(tmp.path().join("users")).unwrap();
    std::fs::copy(from.join("timattr.yaml"), tmp.path().join("timattr.yaml")).unwrap();
    for e in std::fs::read_dir(from.join("users")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join("users").join(p.file_name().unwrap())).unwrap();
    }
    tmp
}

fn timattr(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_timattr"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    cmd
}

fn ok(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const ESC: u8 = 0x1b;

#[test]
fn plan_json_parses_even_with_verbose() {
    let dir = quickstart();
    for args in [
        &["plan", "--format", "json"][..],
        &["-v", "plan", "--format", "json"],
        &["-vvv", "plan", "--format", "json"],
    ] {
        let out = ok(timattr(dir.path(), args));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["summary"]["add"], 5, "{v}");
        assert_eq!(v["changes"][0]["action"], "add");
    }
}

#[test]
fn drift_json_parses() {
    let dir = quickstart();
    ok(timattr(dir.path(), &["apply", "--auto-approve"]));
    let out = timattr(dir.path(), &["-v", "drift", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "drift failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "drift stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
}

#[test]
fn no_colour_codes_unless_asked() {
    let dir = quickstart();
    // stdout is a pipe here, so `auto` must not colour; NO_COLOR and --color never neither.
    let cases: [(&[&str], bool); 4] = [
        (&["plan"], false),
        (&["plan", "--color", "auto"], false),
        (&["plan", "--color", "never"], false),
        (&["plan", "--color", "never"], true),
    ];
    for (args, no_color_env) in cases {
        let mut cmd = timattr(dir.path(), args);
        if no_color_env {
            cmd.env("NO_COLOR", "1");
        }
        let out = ok(cmd);
        for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !stream.contains(&ESC),
                "{args:?} (NO_COLOR={no_color_env}): ANSI codes on {name}:\n{}",
                String::from_utf8_lossy(stream)
            );
        }
    }
    // Also with -v (logs on stderr) and on an error.
    let out = timattr(dir.path(), &["-vv", "--color", "never", "plan"])
        .output()
        .unwrap();
    assert!(!out.stderr.contains(&ESC) && !out.stdout.contains(&ESC));
    let out = timattr(dir.path(), &["-c", "missing.yaml", "validate"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.contains(&ESC));
}

#[test]
fn step_summary_gets_the_markdown_plan() {
    let dir = quickstart();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "before\n").unwrap();
    let out = ok({
        let mut c = timattr(dir.path(), &["plan"]);
        c.env("GITHUB_STEP_SUMMARY", &summary);
        c
    });
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("before\n"),
        "the summary must be appended to"
    );
    assert!(text.contains("timattr plan"), "{text}");
    assert!(text.contains("xiaojun012"), "{text}");
    // Not on stdout: the text plan stays text.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("### "));
}

#[test]
fn every_help_has_an_example() {
    let dir = quickstart();
    let subcommands: &[&[&str]] = &[
        &[],
        &["validate"],
        &["plan"],
        &["apply"],
        &["drift"],
        &["import"],
        &["state"],
        &["state", "list"],
        &["state", "show"],
        &["state", "export"],
        &["state", "restore"],
        &["state", "history"],
        &["usersig"],
        &["emulator"],
        &["schema"],
        &["completions"],
    ];
    let mut missing = Vec::new();
    for sub in subcommands {
        if sub.is_empty() {
            continue; // the top-level help lists commands; each has its own example
        }
        let mut args = sub.to_vec();
        args.push("--help");
        let out = ok(timattr(dir.path(), &args));
        if !String::from_utf8_lossy(&out.stdout).contains("Example") {
            missing.push(sub.join(" "));
        }
    }
    assert!(missing.is_empty(), "--help without an Example: {missing:?}");
}
