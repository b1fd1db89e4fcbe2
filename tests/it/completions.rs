//! `timattr completions SHELL` prints a plausible completion script for each shell.

use std::process::Command;

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef timattr"),
        ("fish", "complete -c timattr"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_timattr"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "completions {shell} failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(marker), "{shell}: no {marker:?} in\n{text}");
        for sub in ["validate", "plan", "apply", "drift", "state"] {
            assert!(text.contains(sub), "{shell}: does not complete {sub}");
        }
        assert!(text.contains("auto-approve"), "{shell}: no apply flags");
    }
}

#[test]
fn unknown_shell_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_timattr"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
