//! The JSON Schemas of the JSON outputs (`timattr schema plan|drift|state-list|state-show|
//! history|doctor|codeclimate`, committed as `schema/*.schema.json`): real outputs of each command, run
//! against the emulator on 127.0.0.1, satisfy their schema, and a schema refuses a document
//! with a renamed field, an unknown action or a missing member.
//!
//! Verdicts come from the third-party `check-jsonschema`, as in `schema.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::schema::{check_jsonschema, require_unless_local};
use crate::support::{self, Emulator, Project};

const KINDS: [&str; 7] = [
    "plan",
    "drift",
    "state-list",
    "state-show",
    "history",
    "doctor",
    "codeclimate",
];

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `timattr schema KIND`, written to `dir/KIND.schema.json`; it must equal the committed file.
fn schema_file(p: &Project, dir: &Path, kind: &str) -> PathBuf {
    let printed = p.run(&["schema", kind]).expect(0).stdout();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join(format!("schema/{kind}.schema.json")))
        .unwrap_or_else(|e| panic!("schema/{kind}.schema.json: {e}"));
    assert_eq!(json(&printed), json(&committed), "timattr schema {kind}");
    let file = dir.join(format!("{kind}.schema.json"));
    std::fs::write(&file, printed).unwrap();
    file
}

/// check-jsonschema's verdict on `doc` against `schema`, with its output.
fn verdict(schema: &Path, doc: &str, dir: &Path, name: &str) -> Option<(bool, String)> {
    let Some(mut checker) = check_jsonschema() else {
        require_unless_local("check-jsonschema");
        return None;
    };
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, doc).unwrap();
    let out = checker
        .arg("--no-cache")
        .arg("--schemafile")
        .arg(schema)
        .arg(&file)
        .output()
        .expect("cannot run check-jsonschema");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

/// A project applied once, then changed: one user removed, one changed, one added (so the plan
/// and drift's pending list hold every action), and one value drifted on the server.
fn changed_project() -> (Emulator, Project) {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), &["sex", "city", "tier"]);
    let mut users = support::users(30, "");
    p.write_users_map("a.yaml", &users);
    p.run(&["apply", "--auto-approve"]).expect(0);
    emu.running()
        .set_user_attr("user00003", "city", "elsewhere");
    emu.running().remove_user_attr("user00004", "tier");
    users.remove("user00001");
    users
        .get_mut("user00002")
        .unwrap()
        .insert("city".into(), "moved".into());
    users.insert(
        "newcomer".into(),
        [("tier".to_owned(), "gold".to_owned())].into(),
    );
    p.write_users_map("a.yaml", &users);
    (emu, p)
}

/// Each command's real JSON output, by the schema it must satisfy.
fn real_outputs(p: &Project) -> Vec<(&'static str, &'static str, String)> {
    let out = |args: &[&str]| p.run(args).stdout();
    p.run(&["plan", "--out", "saved.plan"]).expect(0);
    vec![
        ("plan", "plan", out(&["plan", "--format", "json"])),
        (
            "plan",
            "show",
            out(&["show", "saved.plan", "--format", "json"]),
        ),
        ("drift", "drift", out(&["drift", "--format", "json"])),
        (
            "state-list",
            "state-list",
            out(&["state", "list", "--format", "json"]),
        ),
        (
            "state-show",
            "state-show",
            out(&["state", "show", "user00002", "--format", "json"]),
        ),
        (
            "history",
            "history",
            out(&["state", "history", "--format", "json"]),
        ),
        ("doctor", "doctor", out(&["doctor", "--format", "json"])),
        ("codeclimate", "codeclimate", {
            // Last: the mistakes make the other commands refuse the files.
            p.write_users("z.yaml", "users:\n  bad: {nosuch: 1}\n");
            let report = p.run(&["validate", "--format", "codeclimate"]).expect(1);
            std::fs::remove_file(p.path().join("users/z.yaml")).unwrap();
            report.stdout()
        }),
    ]
}

#[test]
fn real_outputs_satisfy_their_schema() {
    let (_emu, p) = changed_project();
    let dir = tempfile::tempdir().unwrap();
    let schemas: Vec<(&str, PathBuf)> = KINDS
        .iter()
        .map(|k| (*k, schema_file(&p, dir.path(), k)))
        .collect();
    let outputs = real_outputs(&p);
    // The outputs are the rich ones the schemas must describe, not empty shells.
    let plan = json(&outputs[0].2);
    let actions: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert!(
        ["add", "change", "remove"]
            .iter()
            .all(|a| actions.contains(a)),
        "{actions:?}"
    );
    assert_eq!(json(&outputs[2].2)["summary"]["drifted_users"], 2);
    for (kind, name, doc) in &outputs {
        json(doc);
        let schema = &schemas.iter().find(|(k, _)| k == kind).unwrap().1;
        let Some((ok, text)) = verdict(schema, doc, dir.path(), name) else {
            return;
        };
        assert!(
            ok,
            "{name} does not satisfy schema/{kind}.schema.json:\n{text}\n{doc}"
        );
    }
}

/// Edits of a real document that its schema must refuse.
fn wrong_documents(
    outputs: &[(&'static str, &'static str, String)],
) -> Vec<(&'static str, String)> {
    let of = |name: &str| json(&outputs.iter().find(|o| o.1 == name).unwrap().2);
    let mut drift = of("drift");
    let summary = drift["summary"].as_object_mut().unwrap();
    let n = summary.remove("drifted_users").unwrap();
    summary.insert("drifted_user".into(), n);
    let mut plan = of("plan");
    plan["changes"][0]["action"] = "upsert".into();
    let mut missing = of("plan");
    missing.as_object_mut().unwrap().remove("changes");
    let mut doctor = of("doctor");
    doctor["checks"][0]["advice"] = "extra".into();
    let mut history = of("history");
    history[0]["serial"] = "1".into();
    let mut status = of("history");
    status[0]["status"] = "done".into();
    let mut codeclimate = of("codeclimate");
    codeclimate[0]["location"]["lines"]["begin"] = 0.into();
    let mut show = of("state-show");
    show.as_object_mut().unwrap().remove("attrs");
    vec![
        ("drift", drift.to_string()),
        ("plan", plan.to_string()),
        ("plan", missing.to_string()),
        ("doctor", doctor.to_string()),
        ("history", history.to_string()),
        ("state-show", show.to_string()),
        ("history", status.to_string()),
        ("codeclimate", codeclimate.to_string()),
        ("state-list", r#"["a","a"]"#.to_owned()),
    ]
}

#[test]
fn schemas_refuse_renamed_missing_and_mistyped_fields() {
    let (_emu, p) = changed_project();
    let dir = tempfile::tempdir().unwrap();
    let outputs = real_outputs(&p);
    for (i, (kind, doc)) in wrong_documents(&outputs).into_iter().enumerate() {
        let schema = schema_file(&p, dir.path(), kind);
        let Some((ok, text)) = verdict(&schema, &doc, dir.path(), &format!("wrong{i}")) else {
            return;
        };
        assert!(
            !ok,
            "schema/{kind}.schema.json accepted a wrong document:\n{doc}\n{text}"
        );
    }
}
