//! Runs every `timattr ...` and `cargo run ... -- ...` command shown in ```sh / ```bash fences of
//! README.md and the examples' READMEs, so the docs cannot rot.
//!
//! Each README runs in a fresh temporary copy of `examples/` and `schema/` (the tree never
//! changes), in the order the commands appear; `cd DIR` lines move along. A line may end in a
//! comment: `# exit N` expects exit code N; `# needs a real ...` and `# runs until stopped` skip it.
//! `VAR=value` prefixes set the environment, and `> FILE` writes stdout to FILE.
//!
//! The CI examples' READMEs also show commands that cannot run here (a real app or database) and
//! commands inline in prose and tables: every one of them must parse (`timattr ARGS --help`), and
//! every file they link or name must exist.

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

/// The READMEs of the CI examples, which describe workflows that cannot run here.
const CI_READMES: [&str; 2] = [
    "examples/github-actions/README.md",
    "examples/gitlab-ci/README.md",
];

/// The commands shown without `timattr` in front when they have flags.
const SUBCOMMANDS: [&str; 8] = [
    "validate", "plan", "apply", "drift", "import", "state", "show", "doctor",
];

/// Every `timattr ...` command a markdown file shows, fenced or inline (`` `timattr plan` ``),
/// or a subcommand with flags in a table (`` `drift --fix` ``), as (line number, words without the leading `NAME=value`s and `timattr`). A word with
/// alternatives (`--format text|json`) gives one command per alternative.
fn every_timattr_command(markdown: &str) -> Vec<(usize, Vec<String>)> {
    let mut lines: Vec<(usize, String)> = shown_commands(markdown)
        .into_iter()
        .map(|s| (s.line_no, s.line))
        .collect();
    for (i, line) in markdown.lines().enumerate() {
        for (n, span) in line.split('`').enumerate() {
            if n % 2 == 1 && span.starts_with("timattr ") {
                lines.push((i + 1, span.to_owned()));
            }
            // `plan --format markdown --out plan.gz` in a table: a command without its name
            // (in prose, `plan --out` names a flag rather than a command).
            let first = span.split(' ').next().unwrap_or("");
            let table = line.starts_with('|');
            if n % 2 == 1 && table && SUBCOMMANDS.contains(&first) && span.contains(" --") {
                lines.push((i + 1, format!("timattr {span}")));
            }
        }
    }
    let mut out = Vec::new();
    for (line_no, line) in lines {
        let code = line.split(" #").next().unwrap();
        let mut w = words(code);
        take_env(&mut w);
        if w.first().map(String::as_str) != Some("timattr") {
            continue;
        }
        let args = w[1..].to_vec();
        match args.iter().position(|a| a.contains('|')) {
            Some(i) => {
                for alt in args[i].split('|') {
                    let mut one = args.clone();
                    one[i] = alt.to_owned();
                    out.push((line_no, one));
                }
            }
            None => out.push((line_no, args)),
        }
    }
    out
}

/// Clap parses the whole command line before it honours a trailing `--help`: an unknown
/// command or flag, a bad value or a missing argument fails, whatever the files hold.
fn parses(args: &[String]) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_timattr"))
        .args(args)
        .arg("--help")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn ci_example_readmes_show_commands_that_parse() {
    for rel in CI_READMES {
        let text = std::fs::read_to_string(root().join(rel)).unwrap();
        let commands = every_timattr_command(&text);
        assert!(commands.len() >= 4, "{rel}: only {commands:?}");
        for (line_no, args) in commands {
            if let Err(e) = parses(&args) {
                panic!(
                    "{rel}:{line_no}: `timattr {}` does not parse:\n{e}",
                    args.join(" ")
                );
            }
        }
    }
    // The check can fail: a renamed flag, an unknown command, a bad value.
    for wrong in ["plan --formats json", "shw plan.gz", "drift --format yaml"] {
        let args: Vec<String> = wrong.split(' ').map(str::to_owned).collect();
        assert!(parses(&args).is_err(), "`timattr {wrong}` parsed");
    }
}

/// Whether `anchor` is the GitHub anchor of a heading of `markdown`.
fn has_anchor(markdown: &str, anchor: &str) -> bool {
    markdown.lines().any(|l| {
        let Some(title) = l.trim_start_matches('#').strip_prefix(' ') else {
            return false;
        };
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        l.starts_with('#') && slug == anchor
    })
}

/// A link target (`[x](path#anchor)`) that must exist: the file, and the heading if named.
fn check_link(dir: &Path, target: &str) -> Result<(), String> {
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        return Ok(()); // an anchor of the same file: checked by the renderer, not here
    } else {
        dir.join(path)
    };
    if !file.exists() {
        return Err(format!("links to {target}, which does not exist"));
    }
    if !anchor.is_empty() {
        let text = std::fs::read_to_string(&file).unwrap();
        if !has_anchor(&text, anchor) {
            return Err(format!("links to {target}: no such heading"));
        }
    }
    Ok(())
}

/// Backticked file names (`plan.yml`, `timattr/`, `.timattr-version`, `../github-actions/timattr`)
/// that are files of this repository: by the README, in the example project `timattr/`, in the
/// GitHub example (whose project the GitLab one reuses) or at the root. Names in the user's
/// repository (`.github/workflows/...`, the `timattr-plan.yml` they are copied to) and globs are
/// not.
fn file_spans(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        for (n, span) in line.split('`').enumerate() {
            let is_name = span
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            let looks_like_file = span.ends_with(".yml")
                || span.ends_with(".yaml")
                || span.ends_with('/')
                || span.starts_with('.');
            let elsewhere = span.starts_with(".github/") || span == "timattr-plan.yml";
            if n % 2 == 1 && is_name && looks_like_file && !elsewhere && span.len() > 1 {
                out.push((i + 1, span.to_owned()));
            }
        }
    }
    out
}

#[test]
fn ci_example_readmes_reference_files_that_exist() {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    for rel in CI_READMES {
        let dir = root().join(rel).parent().unwrap().to_path_buf();
        let text = std::fs::read_to_string(root().join(rel)).unwrap();
        let mut checked = 0;
        for (i, line) in text.lines().enumerate() {
            for m in link.captures_iter(line) {
                let target = &m[1];
                if target.starts_with("http") {
                    continue;
                }
                if let Err(e) = check_link(&dir, target) {
                    panic!("{rel}:{}: {e}", i + 1);
                }
                checked += 1;
            }
        }
        let github = root().join("examples/github-actions");
        let places = [
            dir.clone(),
            dir.join("timattr"),
            github.clone(),
            github.join("timattr"),
            root(),
        ];
        for (line_no, name) in file_spans(&text) {
            assert!(
                places.iter().any(|p| p.join(&name).exists()),
                "{rel}:{line_no}: `{name}` names a file that does not exist"
            );
            checked += 1;
        }
        assert!(checked >= 5, "{rel}: only {checked} references checked");
    }
    assert!(check_link(&root(), "README.md#no-such-heading").is_err());
    assert!(check_link(&root(), "examples/no-such-file").is_err());
}
