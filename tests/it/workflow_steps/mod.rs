//! Runs single steps of the example workflows outside GitHub: a `run:` script under bash with
//! fake `gh` and `timattr` programs first on PATH, or a `github-script` step under node with a
//! fake `github` client that records its calls. The fakes answer from `FAKE_*` variables.
// Steps run under bash with fake programs; the Unix runners test them.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

/// The text of one step: its `run` script, or its `with.script` for github-script.
pub struct Step {
    pub text: String,
}

/// The step called `name` in any job of the workflow at `path`.
pub fn step(path: &Path, name: &str) -> Step {
    let wf: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (_, job) in wf["jobs"].as_mapping().unwrap() {
        for s in job["steps"].as_sequence().into_iter().flatten() {
            if s["name"].as_str() == Some(name) {
                let text = s["run"].as_str().or(s["with"]["script"].as_str());
                let text = text.unwrap_or_else(|| panic!("step {name:?} has no script"));
                return Step {
                    text: text.to_owned(),
                };
            }
        }
    }
    panic!("{}: no step {name:?}", path.display());
}

const FAKE_GH: &str = r#"#!/bin/bash
echo "$*" >> "$FAKE_DIR/gh-calls"
case "$1 $2" in
"api "*) echo "${FAKE_HEAD-}" ;;
"run list") echo "${FAKE_RUN-}" ;;
"run download")
    name="" dir=""
    while [ $# -gt 0 ]; do
        case "$1" in --name) name=$2; shift ;; --dir) dir=$2; shift ;; esac
        shift
    done
    if [ "$name" != "${FAKE_ARTIFACT-}" ]; then echo "no artifact $name" >&2; exit 1; fi
    mkdir -p "$dir" && echo saved > "$dir/plan.gz" ;;
*) echo "unexpected: gh $*" >&2; exit 1 ;;
esac
"#;

const FAKE_TIMATTR: &str = r####"#!/bin/bash
echo "$*" >> "$FAKE_DIR/timattr-calls"
if [ "$1" = -c ]; then shift 2; fi
command=$1
shift
out="" format=text
while [ $# -gt 0 ]; do
    case "$1" in --out) out=$2; shift ;; --format) format=$2; shift ;; esac
    shift
done
empty='{}'
case "$command" in
plan)
    if [ -n "${FAKE_PLAN_FAILS-}" ]; then echo "error: $FAKE_PLAN_FAILS" >&2; exit 1; fi
    if [ -n "$out" ]; then echo gz > "$out"; fi
    if [ "$format" = json ]; then echo "${FAKE_PLAN:-$empty}"; else echo "### timattr plan"; fi ;;
show)
    if [ "$format" = json ]; then echo "${FAKE_SHOW:-$empty}"; else echo "Plan: 1 to add"; fi
    if [ -n "${FAKE_SHOW_FAILS-}" ]; then echo "$FAKE_SHOW_FAILS" >&2; exit 1; fi
    echo "✓ content: each of its 1 change is what the current files and state give" >&2 ;;
drift)
    echo "drift report"
    exit "${FAKE_DRIFT_EXIT:-0}" ;;
*) exit 0 ;;
esac
"####;

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One run of a `run:` step, with the variables GitHub and the job would set.
pub struct StepRun {
    script: String,
    env: Vec<(String, String)>,
}

/// What a step run left: exit code, log, its outputs, the fakes' calls, and its directory.
pub struct StepOut {
    pub code: i32,
    pub log: String,
    pub outputs: String,
    pub gh_calls: String,
    dir: tempfile::TempDir,
}

impl StepOut {
    pub fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_default()
    }
}

impl StepRun {
    pub fn new(step: &Step) -> Self {
        let defaults = [
            ("ENVIRONMENT", "production"),
            ("TIMATTR_CONFIG", "timattr/production.yaml"),
            ("HEAD_SHA", "h3ad"),
            ("GITHUB_SHA", "m3rge"),
            ("GITHUB_REPOSITORY", "acme/users"),
            ("GITHUB_ACTOR", "someone"),
            ("GH_TOKEN", "token"),
            ("TIMATTR_STATE", "postgres://reader@db.example.com/timattr"),
            ("TIM_SECRET_KEY", "key"),
        ];
        StepRun {
            script: step.text.clone(),
            env: defaults
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs the script as GitHub runs a `run:` step on Linux: `bash -e`.
    pub fn run(self) -> StepOut {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join(".fake-bin");
        std::fs::create_dir_all(&bin).unwrap();
        write_executable(&bin.join("gh"), FAKE_GH);
        write_executable(&bin.join("timattr"), FAKE_TIMATTR);
        let script = dir.path().join(".step.sh");
        std::fs::write(&script, &self.script).unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin];
        dirs.extend(std::env::split_paths(&path));
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-e"])
            .arg(&script)
            .current_dir(dir.path())
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("FAKE_DIR", dir.path())
            .env("GITHUB_OUTPUT", dir.path().join(".github_output"))
            .env("GITHUB_STEP_SUMMARY", dir.path().join(".step_summary"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        StepOut {
            code: out.status.code().unwrap_or(-1),
            log: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            outputs: read(".github_output"),
            gh_calls: read("gh-calls"),
            dir,
        }
    }
}

const NODE_HARNESS: &str = r#"
const calls = [];
const existing = JSON.parse(process.env.FAKE_EXISTING || '{}');
const record = (name) => async (args) => { calls.push([name, args]); return { data: {} }; };
const github = {
  paginate: async (fn, args) => (await fn(args)).data,
  rest: { issues: {
    listComments: async () => ({ data: existing.comments || [] }),
    listForRepo: async () => ({ data: existing.issues || [] }),
    createComment: record('createComment'),
    updateComment: record('updateComment'),
    create: record('create'),
    update: record('update'),
  } },
};
const context = {
  serverUrl: 'https://github.com', repo: { owner: 'acme', repo: 'users' }, runId: 42,
  issue: { number: 7 }, payload: {},
};
(async () => {
SCRIPT
})().then(() => process.stdout.write(JSON.stringify(calls)), (e) => { console.error(e); process.exit(1); });
"#;

/// A github-script step, run by node against a fake GitHub API.
#[derive(Clone)]
pub struct NodeScript {
    script: String,
    env: Vec<(String, String)>,
    files: Vec<(String, String)>,
    existing: Vec<(String, String)>,
}

/// The github-script step `name` of `path`; `None` (after saying so) when node is missing,
/// which fails under `CI=true`.
pub fn node_script(path: &Path, name: &str) -> Option<NodeScript> {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "node is missing"
        );
        println!("skipped: node is not installed");
        return None;
    }
    Some(NodeScript {
        script: step(path, name).text,
        env: vec![
            ("ENVIRONMENT".into(), "production".into()),
            ("HEAD_SHA".into(), "h3ad".into()),
        ],
        files: Vec::new(),
        existing: Vec::new(),
    })
}

impl NodeScript {
    pub fn env(&self, key: &str, value: &str) -> Self {
        let mut next = self.clone();
        next.env.push((key.into(), value.into()));
        next
    }

    pub fn file(&self, rel: &str, content: &str) -> Self {
        let mut next = self.clone();
        next.files.push((rel.into(), content.into()));
        next
    }

    /// What the fake API lists: `comments` or `issues`, as a JSON array.
    pub fn existing(&self, kind: &str, json: &str) -> Self {
        let mut next = self.clone();
        next.existing.push((kind.into(), json.into()));
        next
    }

    /// Runs the script; returns the API calls it made, as JSON `[[method, args], ...]`.
    pub fn run(&self) -> String {
        let dir = tempfile::tempdir().unwrap();
        for (rel, content) in &self.files {
            let file: PathBuf = dir.path().join(rel);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        let harness = dir.path().join("harness.js");
        std::fs::write(&harness, NODE_HARNESS.replace("SCRIPT", &self.script)).unwrap();
        let existing: Vec<String> = self
            .existing
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        let out = Command::new("node")
            .arg(&harness)
            .current_dir(dir.path())
            .env("FAKE_EXISTING", format!("{{{}}}", existing.join(", ")))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "node failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The `script:` of a GitLab job (a template such as `.drift` included), one line after another.
pub fn gitlab_script(path: &Path, job: &str) -> Step {
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let lines = doc[job]["script"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{}: job {job} has no script", path.display()));
    let text: Vec<&str> = lines.iter().map(|l| l.as_str().unwrap()).collect();
    Step {
        text: text.join("\n"),
    }
}
