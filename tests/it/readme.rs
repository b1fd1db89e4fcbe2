//! Runs every `timattr ...` and `cargo run ... -- ...` command shown in ```sh / ```bash fences of
//! README.md and the examples' READMEs, so the docs cannot rot.
//!
//! Each README runs in a fresh temporary copy of `examples/` and `schema/` (the tree never
//! changes), in the order the commands appear; `cd DIR` lines move along. A line may end in a
//! comment: `# exit N` expects exit code N; `# needs a real ...` and `# runs until stopped` skip it.
//! `VAR=value` prefixes set the environment, and `> FILE` writes stdout to FILE.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            // A developer's local state must not leak into the run.
            if name != "state" {
                copy_dir(&src, &dst);
            }
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Shell-like words: whitespace-separated, with '...' and "..." quoting.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

#[derive(Debug)]
struct Shown {
    line_no: usize,
    line: String,
}

/// Command lines inside ```sh and ```bash fences.
fn shown_commands(markdown: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut in_shell = false;
    let mut in_other = false;
    for (i, line) in markdown.lines().enumerate() {
        let t = line.trim();
        if let Some(lang) = t.strip_prefix("```") {
            if in_shell || in_other {
                in_shell = false;
                in_other = false;
            } else if lang == "sh" || lang == "bash" {
                in_shell = true;
            } else {
                in_other = true;
            }
            continue;
        }
        if in_shell && !t.is_empty() && !t.starts_with('#') {
            out.push(Shown {
                line_no: i + 1,
                line: t.to_owned(),
            });
        }
    }
    out
}

/// Removes the leading `NAME=value` words of a command.
fn take_env(w: &mut Vec<String>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    while w.first().is_some_and(|x| {
        x.contains('=') && x.chars().next().is_some_and(|c| c.is_ascii_uppercase())
    }) {
        let first = w.remove(0);
        let (k, v) = first.split_once('=').unwrap();
        env.push((k.to_owned(), v.to_owned()));
    }
    env
}

/// The arguments of a `timattr ...` or `cargo run -- ...` command; `None` for other commands.
fn timattr_args(w: &[String], rel: &str, line_no: usize) -> Option<Vec<String>> {
    match w.first().map(String::as_str) {
        Some("timattr") => Some(w[1..].to_vec()),
        Some("cargo") if w.get(1).map(String::as_str) == Some("run") => {
            let dashes = w
                .iter()
                .position(|x| x == "--")
                .unwrap_or_else(|| panic!("{rel}:{line_no}: cargo run without --"));
            Some(w[dashes + 1..].to_vec())
        }
        _ => None,
    }
}

/// Runs the commands of one markdown file; returns how many ran.
fn run_readme(rel: &str) -> usize {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("examples"), &tmp.path().join("examples"));
    copy_dir(&root().join("schema"), &tmp.path().join("schema"));
    let mut cwd = tmp.path().to_path_buf();
    let mut ran = 0;
    for shown in shown_commands(&text) {
        let (code, comment) = match shown.line.split_once(" #") {
            Some((c, m)) => (c.trim(), m.trim()),
            None => (shown.line.as_str(), ""),
        };
        if comment.starts_with("needs a real") || comment.starts_with("runs until stopped") {
            println!("skipped {rel}:{}: {}", shown.line_no, shown.line);
            continue;
        }
        let expected: i32 = comment
            .strip_prefix("exit ")
            .map(|n| n.trim().parse().expect("`# exit N` needs a number"))
            .unwrap_or(0);
        let mut w = words(code);
        if w.first().map(String::as_str) == Some("cd") {
            cwd = cwd.join(&w[1]);
            assert!(
                cwd.is_dir(),
                "{rel}:{}: no directory {}",
                shown.line_no,
                w[1]
            );
            continue;
        }
        let env = take_env(&mut w);
        let Some(args) = timattr_args(&w, rel, shown.line_no) else {
            continue; // not a timattr command (cargo test, export, ...)
        };
        let (args, stdout_file) = match args.iter().position(|a| a == ">") {
            Some(i) => (args[..i].to_vec(), Some(cwd.join(&args[i + 1]))),
            None => (args, None),
        };
        assert!(
            !args.iter().any(|a| a == "|" || a == "<" || a == "&&"),
            "{rel}:{}: pipes and redirections other than `> FILE` are not supported: {}",
            shown.line_no,
            shown.line
        );
        let out = Command::new(env!("CARGO_BIN_EXE_timattr"))
            .args(&args)
            .envs(env)
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("TIM_SECRET_KEY")
            .current_dir(&cwd)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let got = out.status.code().unwrap_or(-1);
        assert_eq!(
            got,
            expected,
            "{rel}:{}: `{}` exited {got}, expected {expected}\nstdout:\n{}\nstderr:\n{}",
            shown.line_no,
            shown.line,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(file) = stdout_file {
            std::fs::write(file, &out.stdout).unwrap();
        }
        ran += 1;
    }
    ran
}

#[test]
fn readme_commands_run() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        text.contains("cargo test"),
        "README must show the test command"
    );
    assert!(text.contains("endpoint: embedded"));
    let ran = run_readme("README.md");
    assert!(ran >= 10, "only {ran} commands ran from README.md");
}

#[test]
fn quickstart_is_two_commands() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = text
        .split("## Quickstart")
        .nth(1)
        .expect("README has a Quickstart section");
    let section = section.split("\n## ").next().unwrap();
    let fenced = shown_commands(section);
    let lines: Vec<&str> = fenced.iter().map(|s| s.line.as_str()).collect();
    assert_eq!(
        lines.len(),
        2,
        "quickstart shows exactly two commands: {lines:?}"
    );
    assert!(lines[0].contains("apply"), "{lines:?}");
    assert!(lines[1].starts_with("cargo test"), "{lines:?}");
}

#[test]
fn example_readmes_commands_run() {
    let mut readmes = Vec::new();
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = entry.unwrap().path().join("README.md");
        if p.is_file() {
            readmes.push(format!(
                "examples/{}/README.md",
                p.parent().unwrap().file_name().unwrap().to_string_lossy()
            ));
        }
    }
    readmes.sort();
    assert!(!readmes.is_empty());
    for rel in readmes {
        let ran = run_readme(&rel);
        println!("{rel}: {ran} commands");
    }
}

#[test]
fn shown_commands_are_parsed() {
    let md = "```sh\ntimattr plan --detailed-exitcode   # exit 2\n# comment\n```\n```yaml\ntimattr: no\n```\n";
    let c = shown_commands(md);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].line_no, 2);
    assert_eq!(
        words("A=1 timattr x 'a b' \"c\""),
        ["A=1", "timattr", "x", "a b", "c"]
    );
}
