//! The CI files as a security reviewer reads them, and their logic run for real.
//!
//! Rules over every GitHub workflow (the examples and `.github/workflows`) and `action.yml`:
//! actions pinned to a commit, `timeout-minutes` on every job, no write permission at the
//! workflow level, no credentials kept by checkout, no `${{ }}` inside a `run:` script, and in the
//! examples the secrets only in the `env` of steps that run timattr. Then the examples' shell
//! steps run under bash with fake `gh`/`timattr` programs, and their `github-script` steps under
//! node with a fake GitHub API: no reviewed plan → apply refuses; a failed plan → the comment
//! says so; no drift → the drift issue is closed. Finally the third-party checkers (actionlint,
//! zizmor, hadolint, shellcheck), each shown able to fail. A missing tool skips with a message,
//! and fails under `CI=true`.
// The workflow rules and steps are checked on Linux (the checkers and bash live there).
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value;

use crate::workflow_steps;

use workflow_steps::{gitlab_script, node_script, step, StepRun};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A checker from PATH or from `.ci/py` (where `.ci/run` installs them); `None` when missing,
/// which fails the test under `CI=true`.
fn tool(name: &str) -> Option<Command> {
    let local = root().join(".ci/py");
    let candidates = [
        (PathBuf::from(name), None),
        (local.join("bin").join(name), Some(local.clone())),
    ];
    for (program, pythonpath) in candidates {
        let mut cmd = Command::new(&program);
        if let Some(p) = &pythonpath {
            cmd.env("PYTHONPATH", p);
            // actionlint runs shellcheck on `run:` scripts when it finds it on PATH.
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![local.join("bin")];
            dirs.extend(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        }
        let mut probe = Command::new(&program);
        probe.envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
        if probe
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            cmd.current_dir(root());
            return Some(cmd);
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} is not installed (CI=true: the checks must run)"
    );
    println!("skipped: {name} is not installed (run .ci/run to install it)");
    None
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

fn examples() -> Vec<PathBuf> {
    yaml_files("examples/github-actions")
}

/// Every GitHub workflow: the examples and the project's own.
fn all_workflows() -> Vec<PathBuf> {
    let mut files = examples();
    files.extend(yaml_files(".github/workflows"));
    files
}

fn load(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jobs(workflow: &Value) -> Vec<(String, &Value)> {
    let map = workflow["jobs"].as_mapping().expect("jobs");
    map.iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
        .collect()
}

fn steps(job: &Value) -> Vec<&Value> {
    job["steps"]
        .as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_three_workflows_exist_and_keep_the_state_in_postgresql() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["apply.yml", "drift.yml", "plan.yml"]);
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("TIMATTR_STATE: ${{ secrets.TIMATTR_STATE }}"),
            "{} must take the state URL from the environment's secret",
            file.display()
        );
        if !file.ends_with("plan.yml") {
            assert!(
                text.contains("TIM_SECRET_KEY: ${{ secrets.TIM_SECRET_KEY }}"),
                "{} must take the SecretKey from the environment's secret",
                file.display()
            );
        }
        assert!(!text.contains("cargo install"), "{}", file.display());
        assert!(
            text.contains("uses: your-org/timattr@"),
            "{} uses the action",
            file.display()
        );
    }
}

/// Where `secrets.` may appear: only in the `env` of a step whose `run` calls timattr.
#[test]
fn secrets_reach_only_the_steps_that_run_timattr() {
    for file in examples() {
        let wf = load(&file);
        let top = format!("{}{}", text(&wf["env"]), text(&wf["on"]));
        assert!(
            !top.contains("secrets."),
            "{}: workflow-level secret",
            file.display()
        );
        for (name, job) in jobs(&wf) {
            let job_env = text(&job["env"]);
            assert!(
                !job_env.contains("secrets."),
                "{}: job {name} env",
                file.display()
            );
            for s in steps(job) {
                let env = text(&s["env"]);
                let with = text(&s["with"]);
                assert!(!with.contains("secrets."), "{}: {with}", file.display());
                if env.contains("secrets.") {
                    let run = s["run"].as_str().unwrap_or_default();
                    assert!(
                        run.contains("timattr -c"),
                        "{}: step {:?} gets a secret but does not run timattr",
                        file.display(),
                        s["name"]
                    );
                }
            }
        }
    }
}

#[test]
fn every_job_has_a_timeout_and_its_own_least_permissions() {
    for file in all_workflows() {
        let wf = load(&file);
        let top = text(&wf["permissions"]);
        assert!(
            !top.contains("write"),
            "{}: write permission at the top",
            file.display()
        );
        for (name, job) in jobs(&wf) {
            assert!(
                job["timeout-minutes"]
                    .as_u64()
                    .is_some_and(|m| m > 0 && m <= 90),
                "{}: job {name} has no timeout-minutes",
                file.display()
            );
            if file.starts_with(root().join("examples")) || top.trim() == "{}" {
                assert!(
                    job["permissions"].is_mapping(),
                    "{}: job {name} must say its permissions",
                    file.display()
                );
            }
        }
    }
}

/// Every `uses:` of another repository names a full commit SHA and says which release it is.
#[test]
fn every_action_is_pinned_to_a_commit() {
    let mut files = all_workflows();
    files.push(root().join("action.yml"));
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let Some(rest) = line.trim().trim_start_matches("- ").strip_prefix("uses: ") else {
                continue;
            };
            seen += 1;
            let (target, comment) = rest.split_once(" # ").unwrap_or((rest, ""));
            let (_, sha) = target.split_once('@').expect("uses: owner/repo@ref");
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{}: {line} is not pinned to a commit",
                file.display()
            );
            assert!(
                comment.starts_with('v'),
                "{}: {line} must say the release",
                file.display()
            );
        }
    }
    assert!(seen >= 15, "only {seen} uses: lines");
}

#[test]
fn checkout_keeps_no_credentials_and_run_scripts_expand_no_expressions() {
    let mut files = all_workflows();
    files.push(root().join("action.yml"));
    for file in files {
        let wf = load(&file);
        let all_steps: Vec<&Value> = if wf["runs"].is_mapping() {
            steps(&wf["runs"])
        } else {
            jobs(&wf).into_iter().flat_map(|(_, j)| steps(j)).collect()
        };
        for s in all_steps {
            let uses = s["uses"].as_str().unwrap_or_default();
            if uses.starts_with("actions/checkout@") {
                assert_eq!(
                    s["with"]["persist-credentials"],
                    Value::Bool(false),
                    "{}",
                    file.display()
                );
            }
            // Values reach scripts through `env`, never pasted into the script's text.
            let run = s["run"].as_str().unwrap_or_default();
            assert!(!run.contains("${{"), "{}: {run}", file.display());
        }
    }
}

#[test]
fn example_projects_validate() {
    for name in ["staging", "production"] {
        let file = root().join(format!("examples/github-actions/timattr/{name}.yaml"));
        let out = Command::new(env!("CARGO_BIN_EXE_timattr"))
            .arg("-c")
            .arg(&file)
            .arg("validate")
            .env_remove("TIMATTR_STATE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let version =
        std::fs::read_to_string(root().join("examples/github-actions/timattr/.timattr-version"))
            .unwrap();
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn apply_refuses_without_a_reviewed_plan_of_the_merged_head() {
    let apply = root().join("examples/github-actions/apply.yml");
    let find = step(&apply, "Find the reviewed plan of the merged pull request");
    // A direct push: no merged pull request for the commit.
    let out = StepRun::new(&find).env("FAKE_HEAD", "").run();
    assert_eq!(out.code, 1, "{}", out.log);
    assert!(
        out.log.contains("No reviewed plan")
            && out.log.contains("did not come from a merged pull request")
    );
    assert!(!out.outputs.contains("file="));
    // A pull request whose head has no successful plan run.
    let out = StepRun::new(&find)
        .env("FAKE_HEAD", "h3ad")
        .env("FAKE_RUN", "")
        .run();
    assert_eq!(out.code, 1, "{}", out.log);
    assert!(
        out.log.contains("No successful plan of h3ad"),
        "{}",
        out.log
    );
    // A plan run without this environment's plan.
    let out = StepRun::new(&find)
        .env("FAKE_HEAD", "h3ad")
        .env("FAKE_RUN", "77")
        .env("FAKE_ARTIFACT", "timattr-plan-staging-h3ad")
        .run();
    assert_eq!(out.code, 1, "{}", out.log);
    assert!(
        out.log.contains("no production plan for h3ad"),
        "{}",
        out.log
    );
    // The reviewed plan is found: only successful pull-request runs of that head count.
    let out = StepRun::new(&find)
        .env("FAKE_HEAD", "h3ad")
        .env("FAKE_RUN", "77")
        .env("FAKE_ARTIFACT", "timattr-plan-production-h3ad")
        .run();
    assert_eq!(out.code, 0, "{}", out.log);
    assert!(out
        .outputs
        .contains("file=reviewed/plan.gz\nhead=h3ad\nrun=77\n"));
    for arg in [
        "--event pull_request",
        "--commit h3ad",
        "--status success",
        "--name timattr-plan-production-h3ad",
    ] {
        assert!(
            out.gh_calls.contains(arg),
            "{arg} missing in {}",
            out.gh_calls
        );
    }
    // Only a run started by hand with `fresh` skips all this.
    let wf = load(&apply);
    let (_, job) = jobs(&wf).remove(0);
    let fresh = steps(job)
        .into_iter()
        .find(|s| s["name"].as_str() == Some("Apply a fresh plan (started by hand)"))
        .unwrap();
    assert_eq!(fresh["if"].as_str(), Some("env.FRESH == 'true'"));
    assert_eq!(
        job["env"]["FRESH"].as_str(),
        Some("${{ github.event_name == 'workflow_dispatch' && inputs.fresh }}")
    );
}

#[test]
fn apply_relies_on_timattr_to_check_the_reviewed_plan() {
    let apply = root().join("examples/github-actions/apply.yml");
    let check = step(
        &apply,
        "Check the reviewed plan against the merged commit and the state",
    );
    // No comparison of its own: the tool's checks decide (DESIGN.md §4 "Saved plan").
    assert!(
        !check.text.contains("jq") && !check.text.contains("diff"),
        "the step compares plans itself again: {}",
        check.text
    );
    let run = |fails: &str| {
        StepRun::new(&check)
            .env("PLAN_FILE", "reviewed/plan.gz")
            .env("FAKE_SHOW_FAILS", fails)
            .run()
    };
    let same = run("");
    assert_eq!(same.code, 0, "{}", same.log);
    assert!(same.log.contains("✓ content"), "{}", same.log);
    assert!(same.file(".step_summary").is_empty());
    assert!(
        same.file("timattr-calls")
            .contains("-c timattr/production.yaml show reviewed/plan.gz"),
        "{}",
        same.file("timattr-calls")
    );
    let stale = "✗ fresh: the saved plan is stale: it was made at serial 3 (commit id a1), but the state is now at serial 3 (commit id b2).";
    let out = run(stale);
    assert_eq!(out.code, 1, "{}", out.log);
    assert!(
        out.log.contains("Reviewed plan does not apply") && out.log.contains("commit id b2"),
        "{}",
        out.log
    );
    // The run's summary says why and shows a fresh plan, for whoever decides on a fresh apply.
    let summary = out.file(".step_summary");
    assert!(
        summary.contains("the reviewed plan does not apply") && summary.contains("commit id b2"),
        "{summary}"
    );
    assert!(out
        .file("timattr-calls")
        .contains("-c timattr/production.yaml plan"));
    let out = StepRun::new(&check).env("TIMATTR_STATE", "").run();
    assert_eq!(out.code, 1, "{}", out.log);
    assert!(out.log.contains("no TIMATTR_STATE secret"), "{}", out.log);
}

#[test]
fn a_failed_plan_is_recorded_and_the_comment_says_so() {
    let plan = root().join("examples/github-actions/plan.yml");
    let run = step(&plan, "Plan");
    let out = StepRun::new(&run)
        .env(
            "FAKE_PLAN_FAILS",
            "users/team.yaml:3:5: value must be a string",
        )
        .run();
    assert_eq!(out.code, 1, "{}", out.log);
    assert!(out.outputs.contains("status=1"));
    let err = out.file("out/plan.err");
    assert!(err.contains("users/team.yaml:3:5"), "{err}");
    let out = StepRun::new(&run).env("TIMATTR_STATE", "").run();
    assert_eq!(out.code, 1);
    assert!(out
        .file("out/plan.err")
        .contains("production-plan has no TIMATTR_STATE"));
    let ok = StepRun::new(&run).run();
    assert_eq!(ok.code, 0, "{}", ok.log);
    assert!(ok.outputs.contains("status=0"));
    for f in ["out/plan.md", "out/plan.txt", "out/plan.json"] {
        assert!(!ok.file(f).is_empty(), "{f} was not written");
    }

    let Some(comment) = node_script(&plan, "Post the plan as a pull-request comment") else {
        return;
    };
    let mine =
        r#"{"id": 5, "user": {"type": "Bot"}, "body": "<!-- timattr-plan:production -->\nold"}"#;
    let theirs =
        r#"{"id": 6, "user": {"type": "Bot"}, "body": "<!-- timattr-plan:staging -->\nold"}"#;
    let calls = comment
        .file(
            "out/plan.err",
            "error: users/team.yaml:3:5: value must be a string",
        )
        .env("PLAN_STATUS", "1")
        .existing("comments", &format!("[{mine}, {theirs}]"))
        .run();
    assert!(calls.contains("\"updateComment\""), "{calls}");
    assert!(calls.contains("\"comment_id\":5"), "{calls}");
    assert!(
        calls.contains(":x: failed") && calls.contains("users/team.yaml:3:5"),
        "{calls}"
    );
    assert!(!calls.contains("createComment"), "{calls}");
    // First plan of an environment: a new comment, carrying the plan.
    let calls = comment
        .file("out/plan.md", "### timattr plan\n| to add |")
        .env("PLAN_STATUS", "0")
        .existing("comments", &format!("[{theirs}]"))
        .run();
    assert!(calls.contains("\"createComment\""), "{calls}");
    assert!(
        calls.contains("<!-- timattr-plan:production -->") && calls.contains("| to add |"),
        "{calls}"
    );
}

#[test]
fn drift_exit_codes_map_to_outputs() {
    let drift = root().join("examples/github-actions/drift.yml");
    let check = step(&drift, "Check for drift");
    for (code, want) in [
        ("0", Some("drifted=false")),
        ("2", Some("drifted=true")),
        ("1", None),
    ] {
        let out = StepRun::new(&check).env("FAKE_DRIFT_EXIT", code).run();
        match want {
            Some(line) => {
                assert_eq!(out.code, 0, "{}", out.log);
                assert!(out.outputs.contains(line), "{}", out.outputs);
            }
            None => {
                assert_eq!(out.code, 1, "{}", out.log);
                assert!(!out.outputs.contains("drifted="));
            }
        }
    }
}

#[test]
fn the_drift_issue_opens_updates_and_closes_itself() {
    let drift = root().join("examples/github-actions/drift.yml");
    let Some(script) = node_script(&drift, "Open, update or close the drift issue") else {
        return;
    };
    let open = r#"{"number": 9, "body": "<!-- timattr-drift:production -->\nold"}"#;
    let other = r#"{"number": 8, "body": "<!-- timattr-drift:staging -->\nold"}"#;
    // Drift gone: the open issue of this environment is closed, with a comment.
    let calls = script
        .env("DRIFTED", "false")
        .env("FIXED", "false")
        .existing("issues", &format!("[{other}, {open}]"))
        .run();
    assert!(
        calls.contains("\"state\":\"closed\"") && calls.contains("\"issue_number\":9"),
        "{calls}"
    );
    assert!(!calls.contains("\"issue_number\":8"), "{calls}");
    // Drift: a new issue, or the open one updated.
    let report = "| account | attribute | last applied | live |";
    let calls = script
        .file("drift.md", report)
        .env("DRIFTED", "true")
        .env("FIXED", "false")
        .existing("issues", &format!("[{other}]"))
        .run();
    assert!(
        calls.contains("\"create\"") && calls.contains("production drifted"),
        "{calls}"
    );
    assert!(calls.contains(report), "{calls}");
    let calls = script
        .file("drift.md", report)
        .env("DRIFTED", "true")
        .env("FIXED", "false")
        .existing("issues", &format!("[{open}]"))
        .run();
    assert!(
        calls.contains("\"update\"") && !calls.contains("closed"),
        "{calls}"
    );
    // Fixed by `drift --fix`: closed.
    let calls = script
        .env("DRIFTED", "true")
        .env("FIXED", "true")
        .existing("issues", &format!("[{open}]"))
        .run();
    assert!(calls.contains("\"state\":\"closed\""), "{calls}");
}

/// `name FLAGS FILES` passes, and `name FLAGS BAD` fails (the check is not a no-op).
fn assert_checker(name: &str, flags: &[&str], files: &[String], bad: (&str, &str)) {
    let Some(mut cmd) = tool(name) else {
        return;
    };
    let out = cmd.args(flags).args(files).output().unwrap();
    assert!(out.status.success(), "{name}:\n{}", output_text(&out));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(bad.0);
    std::fs::write(&file, bad.1).unwrap();
    let out = tool(name).unwrap().args(flags).arg(&file).output().unwrap();
    assert!(!out.status.success(), "{name} accepted {}", bad.1);
}

fn paths(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn actionlint_passes_and_can_fail() {
    let bad = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n";
    assert_checker(
        "actionlint",
        &[],
        &paths(&all_workflows()),
        ("bad.yml", bad),
    );
}

#[test]
fn zizmor_finds_nothing_and_can_fail() {
    let mut files = paths(&all_workflows());
    files.push(root().join("action.yml").display().to_string());
    // A template injection from a pull_request_target, an unpinned action, write-all.
    let bad = "on: pull_request_target\npermissions: write-all\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo \"${{ github.event.pull_request.title }}\"\n";
    assert_checker(
        "zizmor",
        &["--offline", "--no-progress"],
        &files,
        ("bad.yml", bad),
    );
}

#[test]
fn hadolint_passes_and_can_fail() {
    let bad = "FROM alpine\nRUN apk add curl\n";
    assert_checker(
        "hadolint",
        &[],
        &["Dockerfile".to_owned()],
        ("Dockerfile", bad),
    );
}

#[test]
fn shellcheck_passes_on_the_scripts_and_the_gitlab_jobs() {
    let gitlab = load(&root().join("examples/gitlab-ci/.gitlab-ci.yml"));
    // One file per job script: GitLab runs each `script` (and `after_script`) in its own shell.
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, job) in gitlab.as_mapping().unwrap() {
        for key in ["script", "after_script"] {
            let Some(lines) = job[key].as_sequence() else {
                continue;
            };
            let text: Vec<&str> = lines.iter().map(|l| l.as_str().unwrap()).collect();
            let file = tmp.path().join(format!(
                "{}-{key}.sh",
                name.as_str().unwrap().replace(['.', ':'], "_")
            ));
            std::fs::write(&file, format!("#!/bin/sh\n{}\n", text.join("\n"))).unwrap();
            files.push(file.display().to_string());
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    let scripts = [
        "scripts/install-timattr.sh".to_owned(),
        ".ci/run".to_owned(),
    ];
    let bad = ("bad.sh", "#!/bin/sh\nrm -rf $DIR/\n");
    assert_checker("shellcheck", &[], &scripts, bad);
    assert_checker("shellcheck", &["-s", "sh"], &files, bad);
}

/// The image is built from Cargo.toml, Cargo.lock and src/ alone (.dockerignore lets nothing
/// else in): the crate must not need another file to build.
#[test]
fn the_docker_context_is_enough_to_build() {
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let allowed: Vec<&str> = ignore.lines().filter_map(|l| l.strip_prefix('!')).collect();
    assert_eq!(
        allowed,
        ["Cargo.toml", "Cargo.lock", "build.rs", "src/", "schema/"]
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("COPY Cargo.toml Cargo.lock build.rs ./")
            && dockerfile.contains("COPY src ./src")
            && dockerfile.contains("COPY schema ./schema")
    );
    // The build script (version information) reads nothing but git and cargo's variables.
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let build = std::fs::read_to_string(root().join("build.rs")).unwrap();
    assert!(!build.contains("include_") && !manifest.contains("build ="));
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("include_") {
                    let rest = &text[i..];
                    let Some(arg) = rest
                        .strip_prefix("include_str!(\"")
                        .or_else(|| rest.strip_prefix("include_bytes!(\""))
                    else {
                        continue;
                    };
                    let rel = arg.split('"').next().unwrap();
                    let target = path.parent().unwrap().join(rel).canonicalize().unwrap();
                    // The JSON Schemas of the outputs are compiled in from schema/.
                    let inside =
                        |dir: &str| target.starts_with(root().join(dir).canonicalize().unwrap());
                    assert!(
                        inside("src") || inside("schema"),
                        "{} reads {} from outside src/ and schema/",
                        path.display(),
                        target.display()
                    );
                }
            }
        }
    }
}

#[test]
fn gitlab_jobs_report_drift_and_failed_plans_by_their_exit_code() {
    let gitlab = root().join("examples/gitlab-ci/.gitlab-ci.yml");
    let drift = gitlab_script(&gitlab, ".drift");
    for code in [0, 1, 2] {
        let out = StepRun::new(&drift)
            .env("FAKE_DRIFT_EXIT", &code.to_string())
            .run();
        // 2 is `allow_failure: exit_codes: [2]`: a warning, not a failed pipeline.
        assert_eq!(out.code, code, "{}", out.log);
        assert!(out.log.contains("drift report"), "{}", out.log);
    }
    let plan = gitlab_script(&gitlab, ".plan");
    let out = StepRun::new(&plan)
        .env(
            "FAKE_PLAN_FAILS",
            "users/team.yaml:3:5: value must be a string",
        )
        .run();
    assert_eq!(out.code, 1, "{}", out.log);
    assert!(out.file("out/plan.err").contains("users/team.yaml:3:5"));
    let out = StepRun::new(&plan).env("TIMATTR_STATE", "").run();
    assert_eq!(out.code, 1);
    assert!(out.file("out/plan.err").contains("no TIMATTR_STATE"));
    let out = StepRun::new(&plan).run();
    assert_eq!(out.code, 0, "{}", out.log);
    assert!(!out.file("out/plan.txt").is_empty() && !out.file("out/plan.md").is_empty());
    let apply = gitlab_script(&gitlab, ".apply");
    let out = StepRun::new(&apply).env("TIMATTR_STATE", "").run();
    assert_eq!(out.code, 1, "{}", out.log);
}

/// The release publishes nothing unless every platform built with the `dist` profile and its
/// binary ran `--version` on its own kind of runner; the archives, SHA256SUMS and the image get
/// provenance and SBOM attestations.
#[test]
fn the_release_publishes_only_what_every_platform_built_and_ran() {
    let wf = load(&root().join(".github/workflows/release.yml"));
    let build = &wf["jobs"]["build"];
    assert_eq!(build["strategy"]["fail-fast"].as_bool(), Some(false));
    let matrix = build["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap();
    let targets: Vec<(&str, &str)> = matrix
        .iter()
        .map(|m| (m["target"].as_str().unwrap(), m["os"].as_str().unwrap()))
        .collect();
    assert_eq!(targets.len(), 5, "{targets:?}");
    for (target, os) in &targets {
        let native = match *target {
            "x86_64-unknown-linux-musl" => os.starts_with("ubuntu") && !os.ends_with("-arm"),
            "aarch64-unknown-linux-musl" => os.starts_with("ubuntu") && os.ends_with("-arm"),
            "aarch64-apple-darwin" => os.starts_with("macos") && !os.contains("intel"),
            "x86_64-apple-darwin" => *os == "macos-13" || os.ends_with("-intel"),
            "x86_64-pc-windows-msvc" => os.starts_with("windows"),
            other => panic!("unexpected target {other}"),
        };
        assert!(
            native,
            "{target} is not built on its own kind of runner ({os})"
        );
    }
    let build_steps = steps(build);
    let run_of = |name: &str| {
        let s = build_steps
            .iter()
            .find(|s| s["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no step {name}"));
        assert!(s["if"].is_null(), "{name} must run on every target");
        text(&s["run"])
    };
    assert!(run_of("Build").contains("--profile dist"));
    assert!(run_of("Check the version it reports").contains("--version"));
    let publish = &wf["jobs"]["publish"];
    let needs: Vec<&str> = publish["needs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        needs.contains(&"build") && needs.contains(&"sbom"),
        "{needs:?}"
    );
    assert!(
        publish["if"].is_null(),
        "publish must not run after a failed build"
    );
    let attests = |job: &Value| -> Vec<Value> {
        steps(job)
            .into_iter()
            .filter(|s| text(&s["uses"]).starts_with("actions/attest@"))
            .map(|s| s["with"].clone())
            .collect()
    };
    let published = attests(publish);
    assert!(published
        .iter()
        .any(|w| text(&w["subject-path"]).contains("dist/SHA256SUMS") && w["sbom-path"].is_null()));
    assert!(published.iter().any(|w| !w["sbom-path"].is_null()));
    let sbom = steps(&wf["jobs"]["sbom"]);
    assert!(sbom
        .iter()
        .any(|s| text(&s["uses"]).starts_with("anchore/sbom-action@")
            && s["with"]["format"].as_str() == Some("cyclonedx-json")));
    for job in ["image", "manifest"] {
        let image = attests(&wf["jobs"][job]);
        assert!(
            !image.is_empty()
                && image
                    .iter()
                    .all(|w| w["push-to-registry"].as_bool() == Some(true)),
            "{job}: {image:?}"
        );
    }
}

/// Every base image is pinned by digest, and the `minimal` image (FROM scratch) gets a
/// world-writable, sticky /tmp for the sled readers' private copies.
#[test]
fn base_images_are_pinned_by_digest_and_minimal_has_a_temp_dir() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let mut stages = vec!["scratch".to_owned()];
    let mut bases = 0;
    for line in dockerfile.lines() {
        let Some(rest) = line.strip_prefix("FROM ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let image = words.next().unwrap();
        if let Some(name) = words.skip_while(|w| !w.eq_ignore_ascii_case("AS")).nth(1) {
            stages.push(name.to_owned());
        }
        if stages.iter().any(|s| s == image) {
            continue;
        }
        bases += 1;
        let digest = image.split_once("@sha256:").map(|(_, d)| d).unwrap_or("");
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{line}: not pinned by digest"
        );
    }
    assert_eq!(bases, 2);
    assert!(dockerfile.contains("mkdir -m 1777 /scratch-tmp"));
    let minimal = dockerfile.split("AS minimal").nth(1).unwrap();
    let minimal = minimal.split("\nFROM ").next().unwrap();
    assert!(
        minimal.contains("COPY --from=build /scratch-tmp /tmp"),
        "{minimal}"
    );
    assert!(dockerfile.contains("--profile dist"));
}
