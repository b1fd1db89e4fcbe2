//! `timattr apply` with user tags against the emulator on 127.0.0.1 (DESIGN.md §9): the exact
//! requests (read back from the emulator's write journal, in the order it applied them), tags
//! other systems set, an account over the API's 100-tag limit, and kills and interrupts during
//! the tag phases.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

type TagMap = BTreeMap<String, BTreeSet<String>>;

/// A user of the files: account, attributes, and its `tags` key (`None`: no key).
type User = (String, Vec<(&'static str, String)>, Option<Vec<String>>);

/// An emulator that journals its writes to a file in `dir`.
struct Server {
    emu: Emulator,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(latency: Duration) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("emulator.json");
        let emu = Emulator::start_with(latency, 0.0, Some(data.clone()));
        Server {
            emu,
            data,
            _dir: dir,
        }
    }

    /// Every write the emulator applied, in order: (command, users or accounts).
    fn writes(&self) -> Vec<(String, Value)> {
        let path = timattr::emulator::journal_path(&self.data);
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let (op, body) = v.as_object().unwrap().iter().next().unwrap();
                (op.clone(), body.clone())
            })
            .collect()
    }

    /// account → tags, as the server holds them (accounts without tags left out).
    fn tags(&self) -> TagMap {
        self.emu
            .running()
            .snapshot()
            .users
            .into_iter()
            .filter(|(_, u)| !u.tags.is_empty())
            .map(|(a, u)| (a, u.tags.into_iter().collect()))
            .collect()
    }

    fn requests(&self, command: &str) -> u64 {
        let stats = self.emu.running().stats();
        stats.requests.get(command).copied().unwrap_or(0)
    }
}

fn project(server: &Server, extra: &str) -> Project {
    let p = Project::new(&server.emu.base_url(), NAMES);
    p.write_project(NAMES, extra);
    p
}

/// `users/a.yaml` from (account, attributes, tags); `None` leaves the `tags` key out.
fn write_users(p: &Project, users: &[User]) {
    let mut yaml = String::from("users:\n");
    for (account, attrs, tags) in users {
        let mut fields: Vec<String> = attrs.iter().map(|(n, v)| format!("{n}: {v:?}")).collect();
        if let Some(tags) = tags {
            let list: Vec<String> = tags.iter().map(|t| format!("{t:?}")).collect();
            fields.push(format!("tags: [{}]", list.join(", ")));
        }
        yaml.push_str(&format!("  {account:?}: {{{}}}\n", fields.join(", ")));
    }
    p.write_users("a.yaml", &yaml);
}

fn tag_list(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|t| format!("{prefix}{t:02}")).collect()
}

/// `n` users with one attribute and `tags(i)` each.
fn tagged_users(n: usize, tags: impl Fn(usize) -> Option<Vec<String>>) -> Vec<User> {
    (0..n)
        .map(|i| {
            let attrs = vec![("tier", format!("t{}", i % 3))];
            (format!("user{i:05}"), attrs, tags(i))
        })
        .collect()
}

/// The tags the store claims, from `state export`.
fn store_tags(p: &Project) -> TagMap {
    use std::io::BufRead;
    let out = p.run(&["state", "export"]).expect(0);
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(&out.0.stdout[..])).lines();
    lines
        .skip(1)
        .filter_map(|l| {
            let v: Value = serde_json::from_str(&l.unwrap()).unwrap();
            let tags: BTreeSet<String> = v["tags"]
                .as_array()?
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            Some((v["account"].as_str().unwrap().to_owned(), tags))
        })
        .collect()
}

/// Every tag the store claims is on the server (recorded ⊆ live), account by account.
fn assert_tag_claims_confirmed(p: &Project, server: &Server) {
    let live = server.tags();
    let claims = store_tags(p);
    for (account, tags) in &claims {
        let on_server = live.get(account).cloned().unwrap_or_default();
        let missing: Vec<_> = tags.difference(&on_server).collect();
        assert!(
            missing.is_empty(),
            "the store claims tags {missing:?} of {account} that the server does not have"
        );
    }
}

/// The entries of a tag write: (account, tags).
fn entries(body: &Value) -> Vec<(String, Vec<String>)> {
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let tags = u["Tags"].as_array().unwrap();
            (
                u["To_Account"].as_str().unwrap().to_owned(),
                tags.iter()
                    .map(|t| t.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

const PHASES: [&str; 5] = [
    "set_attr_name",
    "set_attr",
    "add_tag",
    "remove_attr",
    "remove_tag",
];

/// Asserts the writes come phase by phase and each request keeps the API's limits.
fn assert_phases_and_limits(writes: &[(String, Value)]) {
    let phase = |op: &str| PHASES.iter().position(|p| *p == op).expect(op);
    let order: Vec<usize> = writes.iter().map(|(op, _)| phase(op)).collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "writes out of phase order: {:?}",
        writes.iter().map(|w| &w.0).collect::<Vec<_>>()
    );
    for (op, body) in writes {
        let users = body["users"].as_array();
        let n = users.map_or(0, Vec::len);
        assert!(n <= 100, "{op} with {n} accounts");
        if op.ends_with("_tag") {
            let e = entries(body);
            let accounts: BTreeSet<&String> = e.iter().map(|(a, _)| a).collect();
            assert_eq!(accounts.len(), e.len(), "an account twice in one {op}");
            assert!(
                e.iter().all(|(_, t)| !t.is_empty() && t.len() <= 10),
                "{op}"
            );
        }
    }
}

#[test]
fn requests_follow_the_phase_order_and_the_api_limits() {
    let server = Server::start(Duration::ZERO);
    let p = project(&server, "");
    // 250 users with 3 tags each; user00007 has 25.
    let tags = |i: usize| Some(tag_list("k", if i == 7 { 25 } else { 3 }));
    write_users(&p, &tagged_users(250, tags));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let first = server.writes();
    assert_phases_and_limits(&first);
    assert_eq!(first[0].0, "set_attr_name");
    // user00007's 25 tags: 10, 10 and 5 in three consecutive im_add_tag requests.
    let adds: Vec<Vec<(String, Vec<String>)>> = first
        .iter()
        .filter(|(op, _)| op == "add_tag")
        .map(|(_, b)| entries(b))
        .collect();
    let holding: Vec<usize> = (0..adds.len())
        .filter(|&k| adds[k].iter().any(|(a, _)| a == "user00007"))
        .collect();
    assert_eq!(holding.len(), 3, "{holding:?}");
    assert!(holding.windows(2).all(|w| w[1] == w[0] + 1), "{holding:?}");
    let sent: BTreeSet<String> = holding
        .iter()
        .flat_map(|&k| adds[k].iter().filter(|(a, _)| a == "user00007"))
        .flat_map(|(_, t)| t.clone())
        .collect();
    assert_eq!(sent.len(), 25);
    let want: TagMap = (0..250)
        .map(|i| {
            let t = tags(i).unwrap().into_iter().collect();
            (format!("user{i:05}"), t)
        })
        .collect();
    assert_eq!(server.tags(), want);
    assert_eq!(store_tags(&p), want);

    // All four value phases in one apply: new values, new tags, dropped names, dropped tags.
    let next = tagged_users(250, |i| {
        Some(match i % 4 {
            0 => tag_list("k", 3).into_iter().chain(["new".into()]).collect(),
            1 => tag_list("k", 1),
            _ => tags(i).unwrap(),
        })
    });
    let next: Vec<_> = next
        .into_iter()
        .enumerate()
        .map(|(i, (a, attrs, t))| match i % 5 {
            0 => (a, vec![("tier", "changed".to_owned())], t),
            1 => (a, vec![], t),
            _ => (a, attrs, t),
        })
        .collect();
    write_users(&p, &next);
    p.run(&["apply", "--auto-approve", "--allow-mass-removal"])
        .expect(0);
    let second = &server.writes()[first.len()..];
    assert_phases_and_limits(second);
    let ops: BTreeSet<&str> = second.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(
        ops,
        BTreeSet::from(["set_attr", "add_tag", "remove_attr", "remove_tag"])
    );
    assert_eq!(server.requests("im_remove_all_tags"), 0);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn tags_other_systems_set_survive_and_a_leaving_account_loses_only_its_own() {
    let server = Server::start(Duration::ZERO);
    let p = project(&server, "");
    let running = server.emu.running();
    running.add_user_tags("user00001", &["crm-gold"]);
    running.add_user_tags("user00002", &["crm-gold", "shared"]);
    running.add_user_tags("stranger", &["crm-gold"]);
    let tags = |t: &[&str]| Some(t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    let users = vec![
        ("user00001".to_owned(), vec![], tags(&["vip", "beta"])),
        ("user00002".to_owned(), vec![], tags(&["vip", "shared"])),
        ("user00003".to_owned(), vec![("sex", "m".to_owned())], None),
    ];
    write_users(&p, &users);
    p.run(&["apply", "--auto-approve"]).expect(0);
    // user00001 drops its tags; user00002 leaves the files altogether.
    write_users(
        &p,
        &[
            ("user00001".to_owned(), vec![], tags(&[])),
            users[2].clone(),
        ],
    );
    p.run(&["apply", "--auto-approve", "--allow-mass-removal"])
        .expect(0);
    let set = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let want: TagMap = [
        ("stranger".to_owned(), set(&["crm-gold"])),
        ("user00001".to_owned(), set(&["crm-gold"])),
        // `shared` goes too: the files declared it, so the tool recorded it as its own.
        ("user00002".to_owned(), set(&["crm-gold"])),
    ]
    .into();
    assert_eq!(server.tags(), want);
    assert!(store_tags(&p).is_empty(), "{:?}", store_tags(&p));
    assert_eq!(server.requests("im_remove_all_tags"), 0);
    let removed: Vec<(String, Vec<String>)> = server
        .writes()
        .iter()
        .filter(|(op, _)| op == "remove_tag")
        .flat_map(|(_, b)| entries(b))
        .collect();
    let mut removed: Vec<_> = removed
        .into_iter()
        .map(|(a, mut t)| {
            t.sort();
            (a, t)
        })
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            (
                "user00001".to_owned(),
                vec!["beta".to_owned(), "vip".to_owned()]
            ),
            (
                "user00002".to_owned(),
                vec!["shared".to_owned(), "vip".to_owned()]
            ),
        ]
    );
}

#[test]
fn a_project_without_tags_sends_no_tag_request() {
    let server = Server::start(Duration::ZERO);
    let p = project(&server, "");
    write_users(&p, &tagged_users(250, |_| None));
    p.run(&["apply", "--auto-approve"]).expect(0);
    write_users(&p, &tagged_users(120, |_| None));
    p.run(&["apply", "--auto-approve", "--allow-mass-removal"])
        .expect(0);
    let ops: Vec<String> = server.writes().into_iter().map(|(op, _)| op).collect();
    assert_eq!(
        ops,
        [
            "set_attr_name",
            "set_attr",
            "set_attr",
            "set_attr",
            "remove_attr",
            "remove_attr"
        ]
    );
    for c in [
        "im_add_tag",
        "im_remove_tag",
        "im_get_tag",
        "im_remove_all_tags",
    ] {
        assert_eq!(server.requests(c), 0, "{c}");
    }
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    assert!(!run.stderr().contains("Tags:"), "{}", run.stderr());
}

#[test]
fn an_account_over_the_tag_limit_is_named_and_everything_else_is_applied() {
    let server = Server::start(Duration::ZERO);
    let p = project(&server, "");
    // 95 tags another system set on user00042; the files want 10 more on each of 100 users.
    let foreign = tag_list("crm", 95);
    let foreign: Vec<&str> = foreign.iter().map(String::as_str).collect();
    server.emu.running().add_user_tags("user00042", &foreign);
    write_users(&p, &tagged_users(100, |_| Some(tag_list("k", 10))));
    let run = p.run(&["apply", "--auto-approve"]).expect(1);
    let err = run.stderr();
    // 100 → 50 → 25 → 13 → 6 → 3 → 2 → user00042 alone: 7 narrowed requests, 14 halves.
    assert_eq!(server.requests("im_add_tag"), 15);
    assert!(
        err.contains("im_add_tag refused user user00042: error 90032"),
        "{err}"
    );
    assert!(
        err.contains(
            "user user00042 would hold more than 100 tags together with tags set by other systems"
        ),
        "{err}"
    );
    assert!(
        err.contains("the API refused the tags of 1 account (user00042)"),
        "{err}"
    );
    assert!(err.contains("Apply partial"), "{err}");
    // The 99 others are applied and recorded; user00042 keeps only its foreign tags.
    let live = server.tags();
    let claims = store_tags(&p);
    assert_eq!(claims.len(), 99);
    assert!(!claims.contains_key("user00042"));
    for (account, tags) in &claims {
        assert_eq!(live.get(account), Some(tags), "{account}");
    }
    assert_eq!(live["user00042"].len(), 95);
    // The attributes of all 100 (user00042's included) went in their own phase.
    assert_eq!(store_attrs_accounts(&p), 100);
    let history = p.run(&["state", "history", "--format", "json"]).expect(0);
    let history: Value = serde_json::from_str(&history.stdout()).unwrap();
    assert_eq!(
        history.as_array().unwrap().last().unwrap()["status"],
        "partial"
    );
    // The next plan holds only user00042's tags.
    let plan = p.run(&["plan", "--format", "json"]).expect(0);
    let plan: Value = serde_json::from_str(&plan.stdout()).unwrap();
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan}");
    assert_eq!(changes[0]["account"], "user00042");
    let want: Vec<String> = tag_list("k", 10);
    assert_eq!(changes[0]["tags"]["add"], serde_json::json!(want), "{plan}");
    assert_eq!(plan["summary"]["tags_added"], 10, "{plan}");
}

fn store_attrs_accounts(p: &Project) -> usize {
    use std::io::BufRead;
    let out = p.run(&["state", "export"]).expect(0);
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(&out.0.stdout[..])).lines();
    lines
        .skip(1)
        .filter(|l| {
            let v: Value = serde_json::from_str(l.as_ref().unwrap()).unwrap();
            !v["attrs"].as_object().unwrap().is_empty()
        })
        .count()
}

#[test]
fn dry_run_lists_the_tag_requests_the_apply_sends() {
    let server = Server::start(Duration::ZERO);
    let p = project(&server, "");
    let tags = |i: usize| Some(tag_list("k", if i.is_multiple_of(50) { 25 } else { 4 }));
    write_users(&p, &tagged_users(230, tags));
    let dry = p.run(&["apply", "--dry-run"]).expect(0);
    let listed = |c: &str| {
        dry.stdout()
            .lines()
            .filter(|l| l.trim_start().starts_with(c))
            .count()
    };
    assert_eq!(server.writes().len(), 0);
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(listed("im_add_tag") as u64, server.requests("im_add_tag"));
    assert_eq!(
        listed("im_set_attr ") as u64,
        server.requests("im_set_attr")
    );
    assert!(server.requests("im_add_tag") >= 3);
}

/// Waits (bounded) until the server has answered `n` requests of `command`.
fn wait_for(server: &Server, command: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests(command) < n {
        assert!(
            Instant::now() < deadline,
            "the apply never got to {command}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 3 000 users with only tags, 25 each: 90 add requests; removing them takes 90 more.
fn slow_tag_project(server: &Server) -> Project {
    let p = project(server, "apply:\n  rate_limit: 5\n  concurrency: 4\n");
    write_users(&p, &tags_only(3_000, 25));
    p
}

fn tags_only(n: usize, tags: usize) -> Vec<User> {
    (0..n)
        .map(|i| (format!("user{i:05}"), vec![], Some(tag_list("k", tags))))
        .collect()
}

#[test]
fn killed_during_tag_adds_the_store_claims_only_tags_the_server_has() {
    let server = Server::start(Duration::from_millis(20));
    let p = slow_tag_project(&server);
    let mut child = p.spawn(&["apply", "--auto-approve"]);
    wait_for(&server, "im_add_tag", 6);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sent = server.requests("im_add_tag");
    assert!(sent < 90, "{sent} add requests before the kill");
    assert_tag_claims_confirmed(&p, &server);
    assert!(!store_tags(&p).is_empty(), "nothing was recorded");
    // The next apply converges.
    p.write_project(NAMES, "apply:\n  rate_limit: 100\n");
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(store_tags(&p), server.tags());
    assert_eq!(server.tags().len(), 3_000);
}

#[test]
#[cfg(unix)] // sends a signal with kill(1)
fn interrupted_during_tag_removes_the_store_claims_only_tags_the_server_has() {
    let server = Server::start(Duration::from_millis(20));
    let p = slow_tag_project(&server);
    p.write_project(NAMES, "apply:\n  rate_limit: 100\n");
    p.run(&["apply", "--auto-approve"]).expect(0);
    // Every tag goes: 90 remove requests at 5 per second.
    p.write_project(NAMES, "apply:\n  rate_limit: 5\n  concurrency: 4\n");
    write_users(&p, &tags_only(3_000, 0));
    let child = p
        .cmd(&["apply", "--auto-approve", "--allow-mass-removal"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&server, "im_remove_tag", 6);
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let removed = server.requests("im_remove_tag");
    assert!(removed < 90, "{removed} remove requests");
    // A removed tag the store still claims would be a lie: claims ⊆ server.
    assert_tag_claims_confirmed(&p, &server);
    let claims = store_tags(&p);
    assert!(
        claims.len() < 3_000 && !claims.is_empty(),
        "{}",
        claims.len()
    );
}
