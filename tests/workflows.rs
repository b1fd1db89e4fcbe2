//! actionlint on the example GitHub Actions workflows (from PATH, or `.ci/py/bin` as installed
//! by `.ci/run`); skipped with a message when it is not installed.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn actionlint() -> Option<Command> {
    let local = root().join(".ci/py");
    [
        (PathBuf::from("actionlint"), None),
        (local.join("bin/actionlint"), Some(local.clone())),
    ]
    .into_iter()
    .map(|(program, pythonpath)| {
        let mut cmd = Command::new(program);
        if let Some(p) = pythonpath {
            cmd.env("PYTHONPATH", p);
        }
        cmd
    })
    .find_map(|mut cmd| {
        let works = Command::new(cmd.get_program())
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        works.then(|| {
            cmd.current_dir(root());
            cmd
        })
    })
}

fn workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples/github-actions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_three_workflows_exist() {
    let names: Vec<String> = workflows()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["apply.yml", "drift.yml", "plan.yml"]);
    for file in workflows() {
        let text = std::fs::read_to_string(&file).unwrap();
        if !file.ends_with("plan.yml") {
            assert!(
                text.contains("TIM_SECRET_KEY: ${{ secrets.TIM_SECRET_KEY }}"),
                "{} must take the secret from the repository secret",
                file.display()
            );
        }
        assert!(
            text.contains("timattr-state-"),
            "{} keeps the state",
            file.display()
        );
    }
}

#[test]
fn actionlint_passes() {
    let Some(mut cmd) = actionlint() else {
        println!("skipped: actionlint is not installed (run .ci/run to install it)");
        return;
    };
    let out = cmd.args(workflows()).output().unwrap();
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn actionlint_can_fail() {
    let Some(mut cmd) = actionlint() else {
        println!("skipped: actionlint is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n",
    )
    .unwrap();
    let out = cmd.arg(&bad).output().unwrap();
    assert!(
        !out.status.success(),
        "actionlint accepted a broken workflow"
    );
}
