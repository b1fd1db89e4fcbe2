//! CLI conventions and messages (issue 26), run as a user meets them: a `--target` typo, the
//! first plan without a state, a dry run of a refused plan, counts and plurals, the kinds of
//! files `show` and `state restore` are given, colours, CI annotations.

use crate::support;

use std::time::Duration;

use support::{users, Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn applied(n: usize) -> (Emulator, Project) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(n, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    (emu, p)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_target_matching_no_account_is_an_error_not_no_changes() {
    let (emu, p) = applied(3);
    // Matches the files (and the state): fine, even when nothing changed.
    p.run(&["plan", "--target", "user0000[12]"]).expect(0);
    for args in [
        &["plan", "--target", "nomatch-*"][..],
        &["plan", "--target", "user00001", "--target", "usr*"],
        &["apply", "--auto-approve", "--target", "nomatch-*"],
        &["apply", "--dry-run", "--target", "nomatch-*"],
    ] {
        let run = p.run(args).expect(1);
        assert!(
            run.stderr()
                .contains("no account of the users files or the state"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    let run = p
        .run(&[
            "plan",
            "--target",
            "user00001",
            "--target",
            "usr*",
            "--target",
            "x?",
        ])
        .expect(1);
    assert!(
        run.stderr()
            .contains(r#"patterns "usr*", "x?" match no account"#),
        "{}",
        run.stderr()
    );
    // An account only the state knows (it leaves the files) still matches.
    p.write_users_map("a.yaml", &users(2, ""));
    let run = p
        .run(&["plan", "--target", "user00002", "--format", "json"])
        .expect(0);
    assert_eq!(json(&run.stdout())["summary"]["remove"], 1);
    drop(emu);
}

#[test]
fn with_no_state_the_markdown_and_json_plans_say_so_at_the_top() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(
        md.starts_with("### timattr plan\n\n> [!NOTE]\n> **No state yet:**"),
        "{md}"
    );
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["state"]["exists"], false, "{v}");
    assert_eq!(v["state"]["lineage"], serde_json::Value::Null, "{v}");
    p.run(&["apply", "--auto-approve"]).expect(0);
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(!md.contains("No state yet"), "{md}");
    let v = json(&p.run(&["plan", "--format", "json"]).expect(0).stdout());
    assert_eq!(v["state"]["exists"], true, "{v}");
    // A saved plan made without a state says it too when shown.
    let q = Project::new("embedded", NAMES);
    q.write_users_map("a.yaml", &users(2, ""));
    q.run(&["plan", "--out", "p.gz"]).expect(0);
    let md = q
        .run(&["show", "p.gz", "--format", "markdown"])
        .expect(0)
        .stdout();
    assert!(md.contains("**No state yet:**"), "{md}");
}

#[test]
fn a_dry_run_of_a_plan_apply_would_refuse_exits_1_and_says_so() {
    let (emu, p) = applied(20);
    p.write_users_map("a.yaml", &users(10, ""));
    let run = p.run(&["apply", "--dry-run"]).expect(1);
    assert!(
        run.stderr().contains("error: apply would refuse this plan"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("Dry run: nothing was sent"),
        "{}",
        run.stderr()
    );
    p.run(&["apply", "--dry-run", "--allow-mass-removal"])
        .expect(0);
    assert_eq!(emu.attrs().len(), 20, "a dry run sends nothing");
}

#[test]
fn the_piped_progress_line_names_the_phase_and_counts_its_users() {
    // Three slow set batches, one at a time: the apply outlasts the 5 s between log lines.
    let emu = Emulator::start(Duration::from_millis(2_500), 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(NAMES, "apply:\n  concurrency: 1\n");
    p.write_users_map("a.yaml", &users(250, ""));
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    let err = run.stderr();
    let line = err
        .lines()
        .find(|l| l.starts_with("set attributes: "))
        .unwrap_or_else(|| panic!("no progress line: {err}"));
    let counts = line["set attributes: ".len()..].split(' ').next().unwrap();
    let (done, total) = counts.split_once('/').unwrap();
    assert_eq!(total, "250", "{line}");
    assert!(done.parse::<u64>().unwrap() <= 250, "{line}");
    assert!(line.contains("250 users  "), "{line}");
    assert!(!err.contains("applied "), "{err}");
}

#[test]
fn counts_say_what_they_count_and_agree_in_number() {
    // u1 has attributes and tags, u2 only tags, u3 no tags.
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users(
        "a.yaml",
        "users:\n  u1: {city: x, tags: [vip]}\n  u2: {tags: [news]}\n  u3: {city: y}\n  u4: {city: z}\n",
    );
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    assert!(
        run.stderr().contains("Apply complete: 4 users changed (3 with values set, 2 with tags added), 3 attribute names configured; "),
        "{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains("ms per batch"),
        "internals only at -v: {}",
        run.stderr()
    );
    // One drifted value: "1 user, 1 attribute value differs".
    emu.running().set_user_attr("u3", "city", "elsewhere");
    let text = p.run(&["drift"]).expect(2).stdout();
    assert!(
        text.contains("Drift: 1 user, 1 attribute value differs from the last-applied state (4 users checked)."),
        "{text}"
    );
    // Three value repairs and a tag-only one: the fix repaired 4 users.
    let r = emu.running();
    r.set_user_attr("u1", "city", "elsewhere");
    r.set_user_attr("u4", "city", "elsewhere");
    r.remove_user_tags("u2", &["news"]);
    let run = p.run(&["drift", "--fix", "--auto-approve", "-v"]).expect(0);
    assert!(
        run.stderr()
            .contains("Fix complete: 4 users changed (3 with values set, 1 with tags added); "),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("ms per batch; at most "),
        "{}",
        run.stderr()
    );
    // `state rm u3 u3` forgets one account, as the history records.
    let run = p.run(&["state", "rm", "u3", "u3"]).expect(0);
    assert!(
        run.stderr()
            .starts_with("Forgot 1 account (1 name repeated, counted once) (serial "),
        "{}",
        run.stderr()
    );
    let history = p.run(&["state", "history"]).expect(0).stdout();
    let last = history.lines().last().unwrap();
    assert!(last.contains("state-rm"), "{history}");
    assert_eq!(last.split_whitespace().nth(5), Some("1"), "{history}");
}

#[test]
fn the_markdown_table_and_the_removal_box_label_what_they_count() {
    // 12 applied; 2 leave the files and 1 loses a value: 3 lose values, 2 of them leave.
    let (_emu, p) = applied(12);
    let mut next = users(12, "");
    next.remove("user00003");
    next.remove("user00007");
    next.get_mut("user00001").unwrap().remove("tier");
    p.write_users_map("a.yaml", &next);
    let md = p.run(&["plan", "--format", "markdown"]).expect(0).stdout();
    assert!(
        md.contains("| users to add | users to change | users leaving the store | users unchanged | attribute values | requests |\n|---:|---:|---:|---:|---:|---:|\n| 0 | 1 | 2 | 9 |"),
        "{md}"
    );
    assert!(
        md.contains(
            "**Removals:** 3 of 12 managed users lose attribute values; 2 of them leave the store."
        ),
        "{md}"
    );
}

#[test]
fn the_emulator_on_a_wildcard_address_prints_the_address_it_listens_on() {
    use std::io::BufRead;
    let p = Project::new("embedded", NAMES);
    let mut child = p
        .cmd(&["emulator", "--listen", "0.0.0.0:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .find(|l| l.as_ref().map_or(true, |l| l.starts_with("listening on")))
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let port = line
        .strip_prefix("listening on http://0.0.0.0:")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"));
    assert_ne!(port, "0", "{line}");
    assert!(
        line.ends_with(&format!(
            "(every interface; from this machine: http://127.0.0.1:{port})"
        )),
        "{line}"
    );
}

#[test]
fn a_state_export_and_a_saved_plan_given_for_each_other_are_named() {
    let (_emu, p) = applied(3);
    p.write_users_map("a.yaml", &users(4, ""));
    p.run(&["plan", "--out", "plan.gz"]).expect(0);
    p.run(&["state", "export", "--out", "backup.jsonl.gz"])
        .expect(0);
    let json = p.run(&["plan", "--format", "json"]).expect(0).stdout();
    std::fs::write(p.path().join("plan.json"), json).unwrap();
    for args in [
        &["show", "backup.jsonl.gz"][..],
        &["apply", "backup.jsonl.gz"],
    ] {
        let err = p.run(args).expect(1).stderr();
        assert!(
            err.contains("backup.jsonl.gz is not a saved plan: this is a state export (from `timattr state export`): load it with `timattr state restore FILE`"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("missing field"), "{err}");
    }
    let err = p.run(&["show", "plan.json"]).expect(1).stderr();
    assert!(
        err.contains("plan.json is not a saved plan: this is a JSON plan as `timattr plan --format json` prints it"),
        "{err}"
    );
    for file in ["plan.gz", "plan.json"] {
        let err = p.run(&["state", "restore", file]).expect(1).stderr();
        assert!(
            err.contains(&format!("{file} is not a state export: this is a")),
            "{err}"
        );
        assert!(!err.contains("missing field"), "{err}");
    }
    // What both really are still works.
    p.run(&["show", "plan.gz"]).expect(0);
    p.run(&["state", "restore", "backup.jsonl.gz"]).expect(0);
}

/// A TLS server on 127.0.0.1 with a self-signed certificate (made for this test only, for
/// 127.0.0.1 and localhost): counts the connections it is offered.
fn self_signed_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert =
        CertificateDer::from_pem_slice(include_bytes!("support/selfsigned_cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("support/selfsigned_key.pem")).unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            // The client refuses the certificate: the handshake ends with its alert.
            let _ = conn.complete_io(&mut stream);
        }
    });
    (port, connections)
}

#[test]
fn a_self_signed_endpoint_certificate_fails_at_once_with_the_reason() {
    let (port, connections) = self_signed_server();
    let p = Project::new(&format!("https://127.0.0.1:{port}"), NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    let started = std::time::Instant::now();
    let err = p.run(&["apply", "--auto-approve"]).expect(1).stderr();
    assert!(err.contains("TLS certificate not accepted ("), "{err}");
    assert!(err.contains("after 1 attempt"), "{err}");
    assert!(err.contains("not trusted (self-signed"), "{err}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
}

#[test]
#[cfg(unix)] // A non-UTF-8 environment value is made with Unix's OsStrExt.
fn a_secret_key_with_whitespace_or_not_utf8_is_named_before_anything_is_sent() {
    use std::os::unix::ffi::OsStrExt;
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    let key = "0123456789abcdef0123456789abcdef";
    for value in [format!("{key}\n"), format!(" {key}")] {
        let run = support::Run(
            p.cmd(&["apply", "--auto-approve"])
                .env(support::SECRET_ENV, &value)
                .output()
                .unwrap(),
        )
        .expect(1);
        let err = run.stderr();
        assert!(err.contains("has leading or trailing whitespace"), "{err}");
        assert!(!err.contains(key), "the key is never shown: {err}");
    }
    let run = support::Run(
        p.cmd(&["apply", "--auto-approve"])
            .env(support::SECRET_ENV, std::ffi::OsStr::from_bytes(b"key\xff"))
            .output()
            .unwrap(),
    )
    .expect(1);
    assert!(
        run.stderr().contains("is set but is not valid UTF-8"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("not set:"), "{}", run.stderr());
    assert_eq!(emu.running().stats().requests.values().sum::<u64>(), 0);
}

#[test]
fn yaml_and_number_mistakes_get_a_help_line_with_the_fix() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(1, ""));
    let project = std::fs::read_to_string(p.path().join("timattr.yaml")).unwrap();
    let quoted = project.replace("sdkappid: 1400000000", "sdkappid: \"1400000000\"");
    assert_ne!(quoted, project);
    std::fs::write(
        p.path().join("timattr.yaml"),
        format!("{quoted}apply:\n  rate_limit: 1e2\n"),
    )
    .unwrap();
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(
        err.contains("help: remove the quotes: `sdkappid: 1400000000`"),
        "{err}"
    );
    assert!(
        err.contains("`rate_limit` must be an integer from 1 to 100, not the float 100.0"),
        "{err}"
    );
    assert!(
        err.contains(
            "help: write it as a whole number without exponent or decimal point: `rate_limit: 100`"
        ),
        "{err}"
    );
    std::fs::write(p.path().join("timattr.yaml"), &project).unwrap();
    for (yaml, help) in [
        (
            "users:\n\tu1: {sex: m}\n",
            "help: YAML indents with spaces only: replace the tab with spaces",
        ),
        (
            "users:\n  u1: {sex: m}\n u2: {sex: f}\n",
            "help: check the indentation: the keys of one mapping start in the same column",
        ),
        (
            "users:\n  u1:\n    sex: m\n      city: x\n",
            "help: check the indentation (this line is deeper",
        ),
    ] {
        p.write_users("a.yaml", yaml);
        let err = p.run(&["validate"]).expect(1).stderr();
        assert!(err.contains(help), "{yaml:?}: {err}");
    }
}

/// `timattr ARGS` in `p` with a terminal for its output (`script`), `env` set; `None` when
/// there is no `script` (outside CI).
fn in_terminal(p: &Project, args: &str, env: &[(&str, &str)]) -> Option<String> {
    let bin = env!("CARGO_BIN_EXE_timattr");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .current_dir(p.path())
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(_) if std::env::var_os("CI").is_some_and(|v| v == "true") => {
            panic!("`script` (util-linux) is needed under CI")
        }
        Err(_) => {
            eprintln!("skipped: no `script` to give the command a terminal");
            None
        }
    }
}

#[test]
fn colours_follow_color_no_color_clicolor_force_and_term_dumb() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(2, ""));
    let piped = |args: &[&str], env: &[(&str, &str)], remove: &[&str]| {
        let mut cmd = p.cmd(args);
        for k in remove {
            cmd.env_remove(k);
        }
        cmd.env_remove("CLICOLOR_FORCE").env_remove("CLICOLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        support::Run(cmd.output().unwrap()).expect(0).stdout()
    };
    let coloured = |text: &str| text.contains("\x1b[");
    assert!(
        !coloured(&piped(&["plan"], &[], &["NO_COLOR"])),
        "a pipe: no colours"
    );
    assert!(coloured(&piped(
        &["plan"],
        &[("CLICOLOR_FORCE", "1")],
        &["NO_COLOR"]
    )));
    assert!(
        !coloured(&piped(&["plan"], &[("CLICOLOR_FORCE", "1")], &[])),
        "NO_COLOR wins"
    );
    assert!(
        coloured(&piped(&["plan", "--color", "always"], &[], &[])),
        "the flag wins"
    );
    assert!(!coloured(&piped(
        &["plan", "--color", "never"],
        &[("CLICOLOR_FORCE", "1")],
        &["NO_COLOR"]
    )));
    // On a terminal: colours, unless TERM=dumb, NO_COLOR or --color never.
    let Some(text) = in_terminal(&p, "plan", &[]) else {
        return;
    };
    assert!(coloured(&text), "{text}");
    for (args, env) in [
        ("plan", &[("TERM", "dumb")][..]),
        ("plan", &[("NO_COLOR", "1")]),
        ("plan --color never", &[]),
    ] {
        let text = in_terminal(&p, args, env).unwrap();
        assert!(!coloured(&text), "{args} {env:?}: {text:?}");
    }
}

#[test]
fn the_mass_removal_warning_prints_once_on_a_terminal() {
    let (_emu, p) = applied(20);
    p.write_users_map("a.yaml", &users(10, ""));
    let Some(text) = in_terminal(&p, "plan", &[("NO_COLOR", "1")]) else {
        return;
    };
    assert_eq!(
        text.to_lowercase().matches("apply would refuse").count(),
        1,
        "{text}"
    );
    // Piped, stderr says it too (stdout may go to a file).
    let run = p.run(&["plan"]).expect(0);
    assert!(
        run.stdout().contains("Apply would refuse this plan"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stderr().contains("warning: apply would refuse"),
        "{}",
        run.stderr()
    );
}

#[test]
fn file_errors_are_github_annotations_in_actions_and_a_gitlab_report_on_request() {
    let p = Project::new("embedded", NAMES);
    p.write_users("a.yaml", "users:\n  u1: {city: 42}\n  u2: {citty: x}\n");
    for args in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        let run =
            support::Run(p.cmd(args).env("GITHUB_ACTIONS", "true").output().unwrap()).expect(1);
        let err = run.stderr();
        let annotations: Vec<&str> = err.lines().filter(|l| l.starts_with("::error ")).collect();
        assert_eq!(annotations.len(), 2, "{args:?}: {err}");
        assert!(
            annotations[0].starts_with("::error file=users/a.yaml,line=2,col=14,title=timattr::"),
            "{err}"
        );
        assert!(annotations[1].contains("line=3,col=8"), "{err}");
        assert!(annotations[1].contains("%0Ahelp: did you mean"), "{err}");
    }
    // Outside Actions: none.
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(!err.contains("::error"), "{err}");
    let run = p.run(&["validate", "--format", "codeclimate"]).expect(1);
    let report = json(&run.stdout());
    let issues = report.as_array().unwrap();
    assert_eq!(issues.len(), 2, "{report}");
    assert_eq!(issues[0]["location"]["path"], "users/a.yaml");
    assert_eq!(issues[0]["location"]["lines"]["begin"], 2);
    assert_eq!(issues[0]["check_name"], "timattr");
    assert!(issues[0]["fingerprint"]
        .as_str()
        .is_some_and(|f| f.len() == 64));
    // Valid files: an empty report, exit 0.
    p.write_users("a.yaml", "users:\n  u1: {city: x}\n");
    let run = p.run(&["validate", "--format", "codeclimate"]).expect(0);
    assert_eq!(run.stdout(), "[]\n");
}

#[test]
fn state_paths_print_without_dot_steps() {
    let p = Project::new("embedded", NAMES);
    p.write_project(NAMES, "state: ./state2\n");
    p.write_users_map("a.yaml", &users(1, ""));
    let err = p.run(&["-c", "./timattr.yaml", "plan"]).expect(0).stderr();
    assert!(err.contains("there is no state at state2 yet"), "{err}");
    assert!(!err.contains("./"), "{err}");
}

#[test]
fn version_and_help_say_what_a_user_needs() {
    let p = Project::new("embedded", NAMES);
    for args in [&["--version"][..], &["version"]] {
        let out = p.run(args).expect(0).stdout();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("timattr {}", env!("CARGO_PKG_VERSION")),
            "{out}"
        );
        assert!(
            lines[1].starts_with("commit: ") && lines[1].len() > "commit: ".len(),
            "{out}"
        );
        assert!(
            lines[2].starts_with("target: ") && lines[2].contains('-'),
            "{out}"
        );
        assert!(
            lines[3] == "profile: debug" || lines[3] == "profile: release",
            "{out}"
        );
    }
    // The short form stays one line, for scripts comparing versions.
    assert_eq!(
        p.run(&["-V"]).expect(0).stdout(),
        format!("timattr {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = p.run(&["plan", "--help"]).expect(0).stdout();
    let (own, global) = help.split_once("Global options:").expect(&help);
    assert!(
        own.contains("--target <PATTERN>") && !own.contains("--config"),
        "{help}"
    );
    assert!(
        global.contains("--config") && global.contains("--lock-timeout"),
        "{help}"
    );
    // Commands that read no project and no state do not offer -c and --lock-timeout.
    for cmd in ["completions", "schema", "emulator"] {
        let help = p.run(&[cmd, "--help"]).expect(0).stdout();
        assert!(
            !help.contains("--config") && !help.contains("--lock-timeout"),
            "{cmd}: {help}"
        );
        assert!(
            help.contains("Global options:") && help.contains("--color"),
            "{cmd}: {help}"
        );
    }
    // ... though a -c before them (a shell alias) is still accepted.
    p.run(&["-c", "other.yaml", "schema", "users"]).expect(0);
    for (args, described) in [
        (&["state", "show", "--help"][..], "The account id"),
        (
            &["state", "restore", "--help"],
            "A backup written by `timattr state export`",
        ),
        (&["state", "rm", "--help"], "The account ids to forget"),
    ] {
        let help = p.run(args).expect(0).stdout();
        assert!(help.contains(described), "{args:?}: {help}");
    }
}

#[test]
fn the_committed_man_page_is_the_one_the_cli_generates() {
    let p = Project::new("embedded", NAMES);
    let page = p.run(&["man"]).expect(0).stdout();
    assert!(page.contains(".TH timattr 1"), "{page}");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/timattr.1")).unwrap();
    assert!(
        page == committed,
        "timattr.1 is out of date: run `cargo run -- man > timattr.1` and commit it"
    );
}

#[test]
fn every_json_output_is_one_compact_document_with_rfc3339_times() {
    let (emu, p) = applied(3);
    p.write_users_map("a.yaml", &users(4, ""));
    emu.running()
        .set_user_attr("user00001", "city", "elsewhere");
    for args in [
        &["plan", "--format", "json"][..],
        &["drift", "--format", "json"],
        &["state", "list", "--format", "json"],
        &["state", "show", "user00001", "--format", "json"],
        &["state", "history", "--format", "json"],
    ] {
        let run = p.run(args);
        assert!(
            run.code() == 0 || run.code() == 2,
            "{args:?}: {}",
            run.stderr()
        );
        let out = run.stdout();
        assert_eq!(out.lines().count(), 1, "{args:?}: one line: {out}");
        json(&out);
    }
    let history = json(
        &p.run(&["state", "history", "--format", "json"])
            .expect(0)
            .stdout(),
    );
    let time = history[0]["time"]
        .as_str()
        .unwrap_or_else(|| panic!("{history}"));
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
}

/// `timattr state X --help` for every `state` subcommand: every argument and flag of its own is
/// listed with a description, every value of a `--format` says what it gives, and the long
/// help has an example.
#[test]
fn every_state_subcommand_help_describes_its_arguments_and_flags() {
    use clap::CommandFactory;
    let cli = timattr::cli::Cli::command();
    let state = cli.find_subcommand("state").expect("a state command");
    let mut checked = 0;
    for sub in state.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_timattr"))
            .args(["state", name, "--help"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "state {name} --help");
        // One line per word run: the help wraps at the terminal width.
        let help = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            help.contains("Example: timattr state"),
            "state {name}: no example:\n{help}"
        );
        let own = sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !["help", "version"].contains(&a.get_id().as_str()));
        for arg in own {
            let id = arg.get_id();
            let about = arg
                .get_long_help()
                .or(arg.get_help())
                .unwrap_or_else(|| panic!("state {name}: {id} has no description"))
                .to_string();
            let first = about
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                help.contains(&first),
                "state {name}: {id} ({first}) not shown:\n{help}"
            );
            let shown = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => format!("<{}>", arg.get_value_names().unwrap()[0]),
            };
            assert!(
                help.contains(&shown),
                "state {name}: {shown} not shown:\n{help}"
            );
            let values = match arg.get_action().takes_values() {
                true => arg.get_possible_values(),
                false => Vec::new(), // a flag's implied true/false
            };
            for value in values {
                let what = value.get_help().unwrap_or_else(|| {
                    panic!("state {name} {shown} {}: no description", value.get_name())
                });
                assert!(
                    help.contains(&format!("{}: {what}", value.get_name())),
                    "state {name}:\n{help}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} arguments checked");
}
