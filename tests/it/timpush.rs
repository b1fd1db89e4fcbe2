//! The Push service family (`v4/timpush`, DESIGN.md §12): conformance of the client and the
//! emulator per command and family — account types, missing accounts and every `ErrorList`
//! case — and whole runs of the binary: a partial apply (exit 1, history `partial`, the next
//! plan shows exactly the failed accounts, the store does not claim them), declared account
//! types checked against the app and the state before anything is sent, drift and import on
//! accounts that do not exist, and the legacy family untouched.

use crate::hostile::{self, Act, Hostile};
use crate::support::{Emulator, Project, Run, ADMIN, KEY, SDKAPPID};

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use timattr::api::wire::{UserAttrNames, UserAttrs, UserTags};
use timattr::api::{AttrSlots, Client, ClientConfig, Family, Secret};
use timattr::emulator::{self, Setup};
use timattr::model::AccountType;

const REG: &str = "regid-0001";
const GHOST: &str = "ghost";

fn setup() -> Setup {
    Setup {
        slots: BTreeMap::new(),
        registration_ids: vec![REG.to_owned()],
        missing: vec![GHOST.to_owned()],
    }
}

async fn start(setup: Setup) -> emulator::Running {
    let mut cfg = emulator::Config::local(SDKAPPID, ADMIN, Secret::new(KEY.to_owned()));
    cfg.setup = setup;
    emulator::start(cfg).await.unwrap()
}

fn client(base_url: String, family: Family) -> Client {
    Client::for_family(
        ClientConfig {
            base_url,
            sdkappid: SDKAPPID,
            identifier: ADMIN.into(),
            secret: Secret::new(KEY.into()),
            timeout: Duration::from_secs(10),
        },
        family,
    )
    .unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn user(a: &str, kv: &[(&str, &str)]) -> UserAttrs {
    UserAttrs {
        to_account: a.into(),
        attrs: kv
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn tags(a: &str, t: &[&str]) -> UserTags {
    UserTags {
        to_account: a.into(),
        tags: strings(t),
    }
}

/// `(account, code)` of each failed account.
fn failed(f: &timattr::api::Failures) -> Vec<(String, i64)> {
    f.failed
        .iter()
        .map(|e| (e.account.clone(), e.code))
        .collect()
}

/// Slots 0 `city` (UserID) and 1 `device_city` (RegistrationID), set through timpush.
async fn typed_slots(c: &Client) {
    c.set_attr_slots(&AttrSlots {
        names: [(0, "city".to_owned()), (1, "device_city".to_owned())].into(),
        types: [(1, AccountType::RegistrationId)].into(),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_families_serve_one_data_set_and_the_path_decides() {
    let em = start(Setup::default()).await;
    let legacy = client(em.base_url(), Family::AllMemberPush);
    let push = client(em.base_url(), Family::Timpush);
    legacy
        .set_attr_name(&[(0, "city".to_owned())].into())
        .await
        .unwrap();
    push.set_attr(&[user("u1", &[("city", "Rome")])])
        .await
        .unwrap();
    let live = legacy.get_attr(&strings(&["u1"])).await.unwrap();
    assert_eq!(live["u1"]["city"], "Rome");
    legacy.add_tag(&[tags("u1", &["vip"])]).await.unwrap();
    assert_eq!(
        push.get_tag(&strings(&["u1"])).await.unwrap()["u1"],
        ["vip"]
    );
    // Each family's requests are counted under its own command names.
    let stats = em.stats();
    assert_eq!(stats.requests.get("set_attr"), Some(&1), "{stats:?}");
    assert_eq!(stats.requests.get("im_set_attr_name"), Some(&1));
    assert_eq!(stats.requests.get("im_set_attr"), None);
    // A legacy name under the timpush path is an unknown command, and the reverse.
    let http = reqwest::Client::new();
    for path in ["v4/timpush/im_set_attr", "v4/all_member_push/set_attr"] {
        let body: Value = http
            .post(format!("{}/{path}", em.base_url()))
            .body("{}")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["ErrorCode"], 60009, "{path}: {body}");
    }
    em.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_types_round_trip_and_never_change() {
    let em = start(Setup::default()).await;
    let push = client(em.base_url(), Family::Timpush);
    let legacy = client(em.base_url(), Family::AllMemberPush);
    typed_slots(&push).await;
    let slots = push.get_attr_slots().await.unwrap();
    assert_eq!(slots.type_of(0), AccountType::UserId);
    assert_eq!(slots.type_of(1), AccountType::RegistrationId);
    // The legacy family reads the names only; it cannot set a RegistrationID slot.
    assert_eq!(legacy.get_attr_name().await.unwrap().len(), 2);
    let legacy_slots = legacy.get_attr_slots().await.unwrap();
    assert!(legacy_slots.types.is_empty(), "{legacy_slots:?}");
    let typed = AttrSlots {
        names: [(2, "x".to_owned())].into(),
        types: [(2, AccountType::RegistrationId)].into(),
    };
    let e = legacy.set_attr_slots(&typed).await.unwrap_err();
    assert!(e.to_string().contains("no account types"), "{e}");
    // Changing a slot's type, or giving a name a second slot: 90033.
    let change = AttrSlots {
        names: [(1, "device_city".to_owned())].into(),
        types: [(1, AccountType::UserId)].into(),
    };
    assert_eq!(
        push.set_attr_slots(&change).await.unwrap_err().code(),
        Some(90033)
    );
    let twice = AttrSlots {
        names: [(5, "city".to_owned())].into(),
        types: BTreeMap::new(),
    };
    assert_eq!(
        push.set_attr_slots(&twice).await.unwrap_err().code(),
        Some(90033)
    );
    // The answer carries every slot's type, as the spec's sample does.
    let raw: Value = reqwest::Client::new()
        .post(format!(
            "{}/v4/timpush/get_attr_name?{}",
            em.base_url(),
            query()
        ))
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["AttrTypes"], json!({"0": 0, "1": 1}), "{raw}");
    assert!(raw.get("ErrorList").is_none(), "{raw}");
    em.stop().await.unwrap();
}

/// The query of a request signed like the client's.
fn query() -> String {
    let sig = timattr::api::usersig::generate(
        SDKAPPID,
        &Secret::new(KEY.into()),
        ADMIN,
        86_400,
        timattr::api::now_unix(),
    );
    format!("sdkappid={SDKAPPID}&identifier={ADMIN}&usersig={sig}&random=1&contenttype=json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_attr_lists_the_wrong_type_and_the_missing_and_applies_the_rest() {
    let em = start(setup()).await;
    let c = client(em.base_url(), Family::Timpush);
    typed_slots(&c).await;
    let f = c
        .set_attr(&[
            user("u1", &[("city", "Rome")]),
            user(REG, &[("device_city", "Oslo")]),
            // A UserID with a RegistrationID attribute, and a RegistrationID with a UserID one.
            user("u2", &[("device_city", "Oslo")]),
            user(REG, &[("city", "Rome")]),
            user(GHOST, &[("city", "Rome")]),
        ])
        .await
        .unwrap();
    assert_eq!(
        failed(&f),
        [
            (GHOST.to_owned(), 70107),
            ("u2".to_owned(), 90035),
            (REG.to_owned(), 90035)
        ]
    );
    assert_eq!(f.command, "set_attr");
    let data = em.snapshot();
    assert_eq!(data.users["u1"].attrs["city"], "Rome");
    assert!(!data.users.contains_key("u2") && !data.users.contains_key(GHOST));
    // The RegistrationID's entry that failed was not applied; its earlier one was.
    assert_eq!(
        data.users[REG].attrs,
        [("device_city".to_owned(), "Oslo".to_owned())].into()
    );
    // A full success has no ErrorList.
    assert!(c
        .set_attr(&[user("u1", &[("city", "Pisa")])])
        .await
        .unwrap()
        .is_empty());
    em.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_and_clears_list_the_missing_accounts() {
    let em = start(setup()).await;
    let c = client(em.base_url(), Family::Timpush);
    typed_slots(&c).await;
    c.set_attr(&[user("u1", &[("city", "Rome")])])
        .await
        .unwrap();
    c.add_tag(&[tags("u1", &["a", "b"])]).await.unwrap();
    let removed = c
        .remove_attr(&[
            UserAttrNames {
                to_account: "u1".into(),
                attrs: strings(&["city"]),
            },
            UserAttrNames {
                to_account: GHOST.into(),
                attrs: strings(&["city"]),
            },
        ])
        .await
        .unwrap();
    assert_eq!(failed(&removed), [(GHOST.to_owned(), 70107)]);
    let untagged = c
        .remove_tag(&[tags("u1", &["a"]), tags(GHOST, &["a"])])
        .await
        .unwrap();
    assert_eq!(failed(&untagged), [(GHOST.to_owned(), 70107)]);
    let cleared = c.remove_all_tags(&strings(&[GHOST, "u1"])).await.unwrap();
    assert_eq!(failed(&cleared), [(GHOST.to_owned(), 70107)]);
    assert!(!em.snapshot().users.contains_key("u1"));
    em.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_tag_types_a_tag_by_its_first_use_and_honours_replace() {
    let em = start(setup()).await;
    let c = client(em.base_url(), Family::Timpush);
    c.add_tag(&[tags("u1", &["vip"]), tags(REG, &["device"])])
        .await
        .unwrap();
    let f = c
        .add_tag(&[
            tags(REG, &["vip"]),
            tags("u2", &["device"]),
            tags("u3", &["vip"]),
            tags(GHOST, &["vip"]),
        ])
        .await
        .unwrap();
    assert_eq!(
        failed(&f),
        [
            (GHOST.to_owned(), 70107),
            (REG.to_owned(), 90035),
            ("u2".to_owned(), 90035)
        ]
    );
    let live = c.get_tag(&strings(&["u3", REG])).await.unwrap();
    assert_eq!(
        (live["u3"].clone(), live[REG].clone()),
        (strings(&["vip"]), strings(&["device"]))
    );
    // `Replace: 1` overwrites every tag of the user (the tool never sends it; counted here).
    let raw: Value = reqwest::Client::new()
        .post(format!("{}/v4/timpush/add_tag?{}", em.base_url(), query()))
        .json(&json!({"Replace": 1, "UserTags": [{"To_Account": "u1", "Tags": ["only"]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["ErrorCode"], 0, "{raw}");
    assert_eq!(em.snapshot().users["u1"].tags, ["only"]);
    assert_eq!(em.stats().replace_requests, 1);
    em.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_list_missing_accounts_only_in_the_error_list() {
    let em = start(setup()).await;
    let c = client(em.base_url(), Family::Timpush);
    typed_slots(&c).await;
    c.set_attr(&[user("u1", &[("city", "Rome")])])
        .await
        .unwrap();
    let asked = strings(&["u1", GHOST, "nobody-yet"]);
    let live = c.get_attr(&asked).await.unwrap();
    assert_eq!(live["u1"]["city"], "Rome");
    assert!(live["nobody-yet"].is_empty());
    assert!(live.is_missing(GHOST) && live.get(GHOST).is_none());
    let live = c.get_tag(&asked).await.unwrap();
    assert!(live.is_missing(GHOST) && live.get("u1").is_some());
    // The spec's shape: the missing account in ErrorList, not in UserAttrs.
    let raw: Value = reqwest::Client::new()
        .post(format!("{}/v4/timpush/get_attr?{}", em.base_url(), query()))
        .json(&json!({"To_Account": ["u1", GHOST]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        raw["ErrorList"],
        json!([{"ErrorCode": 70107, "To_Account": GHOST}])
    );
    assert_eq!(raw["UserAttrs"].as_array().unwrap().len(), 1, "{raw}");
    // The legacy family has no missing accounts: it answers them as users without values.
    let legacy = client(em.base_url(), Family::AllMemberPush);
    assert!(legacy.get_attr(&asked).await.unwrap()[GHOST].is_empty());
    em.stop().await.unwrap();
}

async fn scripted(body: &'static str) -> Hostile {
    Hostile::start(None, std::sync::Arc::new(move |_: &str, _| Act::ok(body))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_list_that_is_not_about_the_request_is_not_ok() {
    // A stranger listed, an account listed twice, a read failing an account otherwise, an
    // ErrorList on set_attr_name: never OK, for either family.
    for family in Family::ALL {
        let stranger = scripted(
            r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorList":[{"ErrorCode":70107,"To_Account":"stranger"}]}"#,
        )
        .await;
        let c = client(stranger.base_url(), family);
        let e = c
            .set_attr(&[user("u1", &[("city", "x")])])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not in the request"), "{e}");
        assert!(c.get_attr(&strings(&["u1"])).await.is_err());
        assert!(c.set_attr_name(&[(0, "c".into())].into()).await.is_err());
        let twice = scripted(
            r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorList":[{"ErrorCode":70107,"To_Account":"u1"},{"ErrorCode":90035,"To_Account":"u1"}]}"#,
        )
        .await;
        let c = client(twice.base_url(), family);
        assert!(c.remove_tag(&[tags("u1", &["a"])]).await.is_err());
        let other = scripted(
            r#"{"ActionStatus":"OK","ErrorCode":0,"UserTags":[],"ErrorList":[{"ErrorCode":90035,"To_Account":"u1"}]}"#,
        )
        .await;
        let c = client(other.base_url(), family);
        assert_eq!(
            c.get_tag(&strings(&["u1"])).await.unwrap_err().code(),
            Some(90035)
        );
        // The same answer for a write names the account, with its code.
        let f = c.add_tag(&[tags("u1", &["a"])]).await.unwrap();
        assert_eq!(failed(&f), [("u1".to_owned(), 90035)]);
        assert_eq!(f.command, family.name(timattr::api::Command::AddTag));
    }
}

// ---- the binary ----

/// A timpush project against `emu`, with `attributes` as YAML list items.
fn project(emu: &Emulator, attributes: &str) -> Project {
    let p = Project::new(&emu.base_url(), &[]);
    write_project(&p, attributes);
    p
}

fn write_project(p: &Project, attributes: &str) {
    let text = format!(
        "app:\n  sdkappid: {SDKAPPID}\n  admin: {ADMIN}\n  endpoint: {}\n  secret_env: {}\n  api: timpush\nattributes:\n{attributes}users: [\"users/*.yaml\"]\n",
        p.endpoint,
        crate::support::SECRET_ENV
    );
    std::fs::write(p.path().join("timattr.yaml"), text).unwrap();
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()))
}

/// The accounts of a JSON plan's changes.
fn planned(p: &Project) -> Vec<String> {
    let plan = json_of(&p.run(&["plan", "--format", "json"]).expect(0));
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["account"].as_str().unwrap().to_owned())
        .collect()
}

fn history(p: &Project) -> Vec<Value> {
    json_of(&p.run(&["state", "history", "--format", "json"]).expect(0))
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("history is not a list"))
}

#[test]
fn a_partial_apply_records_all_but_the_failed_and_the_next_plan_shows_exactly_them() {
    let emu = Emulator::start_setup(setup());
    let p = project(
        &emu,
        "  - city\n  - {name: device_city, account_type: registration_id}\n",
    );
    p.write_users(
        "a.yaml",
        &format!(
            "users:\n  u1: {{city: Rome, tags: [vip]}}\n  u2: {{device_city: Oslo}}\n  {REG}: {{device_city: Oslo, tags: [device]}}\n  {GHOST}: {{city: Rome, tags: [vip]}}\n  u3: {{city: Pisa, tags: [vip]}}\n"
        ),
    );
    let run = p.run(&["apply", "--auto-approve"]).expect(1);
    let err = run.stderr();
    for line in [
        "set_attr refused user ghost: error 70107 (the account does not exist)",
        "set_attr refused user u2: error 90035 (the account is of the other type",
        "add_tag refused user ghost: error 70107",
    ] {
        assert!(err.contains(line), "{line}\n{err}");
    }
    assert!(err.contains("(ghost, u2)"), "{err}");
    // Applied and recorded: everyone else.
    let live = emu.attrs();
    assert_eq!(live["u1"]["city"], "Rome");
    assert_eq!(live[REG]["device_city"], "Oslo");
    assert!(!live.contains_key("u2") && !live.contains_key(GHOST));
    let h = history(&p);
    assert_eq!(h.last().unwrap()["status"], "partial", "{h:?}");
    // The store does not claim them: the next plan shows exactly the failed accounts.
    assert_eq!(planned(&p), [GHOST, "u2"]);
    let shown = p.run(&["state", "show", "u2"]);
    assert_ne!(shown.code(), 0, "{}", shown.stdout());
    // Once fixed in the files, the rest is a no-op.
    p.write_users(
        "a.yaml",
        &format!(
            "users:\n  u1: {{city: Rome, tags: [vip]}}\n  {REG}: {{device_city: Oslo, tags: [device]}}\n  u3: {{city: Pisa, tags: [vip]}}\n"
        ),
    );
    assert!(planned(&p).is_empty());
    // The tool never overwrites or clears other systems' tags.
    let stats = emu.running().stats();
    assert_eq!(stats.replace_requests, 0);
    assert_eq!(stats.requests.get("clear_all_tags"), None);
    assert!(
        stats.requests.keys().all(|c| !c.starts_with("im_")),
        "{stats:?}"
    );
}

#[test]
fn the_legacy_family_takes_an_error_list_the_same_way() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let upstream = emu.base_url();
    let h = rt.block_on(Hostile::start(
        Some(upstream),
        hostile::only(
            "im_set_attr",
            Act::ok(r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ErrorList":[{"ErrorCode":70107,"To_Account":"u2"}]}"#),
        ),
    ));
    let p = Project::new(&h.base_url(), &["city"]);
    p.write_users("a.yaml", "users:\n  u1: {city: x}\n  u2: {city: y}\n");
    let err = p.run(&["apply", "--auto-approve"]).expect(1).stderr();
    assert!(
        err.contains("im_set_attr refused user u2: error 70107"),
        "{err}"
    );
    assert_eq!(history(&p).last().unwrap()["status"], "partial");
    assert_eq!(planned(&p), ["u2"]);
    // A stranger in the list: the answer is not OK, nothing of the batch is recorded.
    h.set_script(hostile::only(
        "im_set_attr",
        Act::ok(r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorList":[{"ErrorCode":70107,"To_Account":"zz"}]}"#),
    ));
    let err = p.run(&["apply", "--auto-approve"]).expect(1).stderr();
    assert!(err.contains("not in the request"), "{err}");
    assert_eq!(planned(&p), ["u2"]);
}

#[test]
fn a_declared_type_that_differs_from_the_app_is_refused_before_anything_is_written() {
    let mut s = setup();
    s.slots.insert(0, ("device_city".to_owned(), 1));
    let emu = Emulator::start_setup(s);
    let p = project(&emu, "  - city\n  - device_city\n");
    p.write_users("a.yaml", "users:\n  u1: {city: Rome}\n");
    let err = p.run(&["apply", "--auto-approve"]).expect(1).stderr();
    assert!(
        err.contains("attribute \"device_city\" is declared `account_type: user_id`, but its slot 0 is configured for registration_id accounts in the app"),
        "{err}"
    );
    let stats = emu.running().stats();
    assert_eq!(stats.requests.get("get_attr_name"), Some(&1), "{stats:?}");
    assert_eq!(stats.requests.len(), 1, "only the read was sent: {stats:?}");
    assert!(!p.state_dir().join("db").exists() || history(&p).is_empty());
    // Import checks the same before recording anything.
    let err = p.run(&["import", "--auto-approve"]).expect(1).stderr();
    assert!(
        err.contains("slot 0 is configured for registration_id"),
        "{err}"
    );
}

#[test]
fn a_declared_type_that_differs_from_the_state_is_refused_without_the_network() {
    let emu = Emulator::start_setup(setup());
    let p = project(
        &emu,
        "  - {name: device_city, account_type: registration_id}\n",
    );
    p.write_users(
        "a.yaml",
        &format!("users:\n  {REG}: {{device_city: Oslo}}\n"),
    );
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(
        emu.running().snapshot().attr_types,
        [(0u8, 1u8)].into(),
        "the slot was configured with AttrTypes 1"
    );
    write_project(&p, "  - device_city\n");
    let before = emu.running().stats().total_requests();
    let err = p.run(&["plan"]).expect(1).stderr();
    assert!(
        err.contains("attribute \"device_city\" is declared `account_type: user_id`, but its slot 0 is configured for registration_id accounts in the state"),
        "{err}"
    );
    p.run(&["apply", "--auto-approve"]).expect(1);
    assert_eq!(emu.running().stats().total_requests(), before);
    // The recorded type survives an export and a restore.
    let export = p.path().join("state.jsonl.gz");
    p.run(&["state", "export", "--out", export.to_str().unwrap()])
        .expect(0);
    p.run(&["state", "restore", export.to_str().unwrap(), "--force"])
        .expect(0);
    p.run(&["plan"]).expect(1);
}

#[test]
fn account_type_needs_the_timpush_family() {
    let p = Project::new("embedded", &[]);
    std::fs::write(
        p.path().join("timattr.yaml"),
        "app:\n  sdkappid: 1\n  admin: a\n  endpoint: embedded\nattributes:\n  - {name: device_city, account_type: registration_id}\nusers: [\"users/*.yaml\"]\n",
    )
    .unwrap();
    p.write_users("a.yaml", "users: {}\n");
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains("timattr.yaml:6:39"), "{err}");
    assert!(
        err.contains("`account_type` of attribute \"device_city\" needs `app.api: timpush`"),
        "{err}"
    );
    std::fs::write(
        p.path().join("timattr.yaml"),
        "app:\n  sdkappid: 1\n  admin: a\n  endpoint: embedded\n  api: timPush\nattributes:\n  - {name: c, account_type: regid}\nusers: [\"users/*.yaml\"]\n",
    )
    .unwrap();
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(err.contains("unknown API family \"timPush\""), "{err}");
    assert!(err.contains("did you mean `timpush`?"), "{err}");
}

#[test]
fn the_app_wide_tag_cap_is_checked_on_the_projects_own_tags() {
    let p = Project::new("embedded", &["city"]);
    let mut yaml = String::from("users:\n");
    for i in 0..101 {
        let t: Vec<String> = (0..10).map(|k| format!("t{}", i * 10 + k)).collect();
        yaml.push_str(&format!("  u{i}: {{tags: [{}]}}\n", t.join(", ")));
    }
    p.write_users("a.yaml", &yaml);
    // The legacy family documents no such cap.
    p.run(&["validate"]).expect(0);
    let text = std::fs::read_to_string(p.path().join("timattr.yaml")).unwrap();
    let text = text.replace("  secret_env:", "  api: timpush\n  secret_env:");
    std::fs::write(p.path().join("timattr.yaml"), text).unwrap();
    let err = p.run(&["validate"]).expect(1).stderr();
    assert!(
        err.contains("the users files give 1010 distinct tags; an app of the timpush family holds at most 1000"),
        "{err}"
    );
}

#[test]
fn drift_reports_accounts_that_no_longer_exist_and_import_skips_them() {
    let emu = Emulator::start_setup(Setup::default());
    let p = project(&emu, "  - city\n");
    p.write_users(
        "a.yaml",
        "users:\n  u1: {city: Rome}\n  u2: {city: Pisa, tags: [vip]}\n",
    );
    p.run(&["apply", "--auto-approve"]).expect(0);
    emu.running().mark_missing("u2");
    let run = p.run(&["drift"]).expect(2);
    let out = run.stdout();
    assert!(
        out.contains("u2 (the account does not exist in the app: 70107)"),
        "{out}"
    );
    assert!(!out.contains("deleted remotely"), "{out}");
    let doc = json_of(&p.run(&["drift", "--format", "json"]).expect(2));
    assert_eq!(doc["gone"], json!(["u2"]), "{doc}");
    assert_eq!(doc["summary"]["gone_users"], 1);
    assert!(doc["drift"].as_array().unwrap().is_empty(), "{doc}");
    let err = p
        .run(&["drift", "--fix", "--auto-approve"])
        .expect(1)
        .stderr();
    assert!(
        err.contains("1 account managed by the state does not exist in the app (70107): u2"),
        "{err}"
    );
    // Import names and skips it, recording the others.
    let err = p.run(&["import", "--auto-approve"]).expect(0).stderr();
    assert!(
        err.contains("Skipped 1 account that the app does not have (70107"),
        "{err}"
    );
    assert!(err.contains(": u2."), "{err}");
}

#[test]
fn the_embedded_endpoint_serves_timpush_set_up_from_the_environment() {
    let p = Project::new("embedded", &[]);
    write_project(
        &p,
        "  - {name: device_city, account_type: registration_id}\n",
    );
    p.write_users(
        "a.yaml",
        &format!("users:\n  {REG}: {{device_city: Oslo}}\n  u1: {{device_city: Rome}}\n"),
    );
    let run = Run(p
        .cmd(&["apply", "--auto-approve"])
        .env(emulator::env::REGISTRATION_IDS, REG)
        .output()
        .unwrap());
    let err = run.expect(1).stderr();
    assert!(
        err.contains("set_attr refused user u1: error 90035"),
        "{err}"
    );
    assert_eq!(planned(&p), ["u1"]);
}

#[test]
fn doctor_reports_the_family_and_each_slots_account_type() {
    let p = Project::new("embedded", &[]);
    write_project(&p, "  - city\n  - device_city\n");
    p.write_users("a.yaml", "users:\n  u1: {city: Rome}\n");
    let run = Run(p
        .cmd(&["doctor", "--format", "json"])
        .env(emulator::env::SLOTS, "0=city,3=device_city:registration_id")
        .output()
        .unwrap());
    let doc = json_of(&run.expect(1));
    let check = |name: &str| {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {doc}"))
            .clone()
    };
    let family = check("family")["finding"].as_str().unwrap().to_owned();
    assert!(
        family.contains("timpush (v4/timpush); slot account types: 0 city: user_id, 3 device_city: registration_id"),
        "{family}"
    );
    let names = check("attribute_names");
    assert_eq!(names["status"], "fail", "{names}");
    assert!(
        names["finding"]
            .as_str()
            .unwrap()
            .contains("attribute \"device_city\" is declared `account_type: user_id`, but its slot 3 is configured for registration_id accounts"),
        "{names}"
    );
    assert!(check("api")["finding"]
        .as_str()
        .unwrap()
        .starts_with("get_attr_name answered OK"));
}

#[test]
fn postgresql_records_slot_types_too() {
    let Some(db) = crate::pg::TestDb::create() else {
        return;
    };
    let emu = Emulator::start_setup(setup());
    let p = project(
        &emu,
        "  - city\n  - {name: device_city, account_type: registration_id}\n",
    );
    p.write_users(
        "a.yaml",
        &format!("users:\n  u1: {{city: Rome}}\n  {REG}: {{device_city: Oslo}}\n"),
    );
    let run = |args: &[&str]| Run(p.cmd(args).env("TIMATTR_STATE", db.url()).output().unwrap());
    run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(
        db.count("SELECT count(*) FROM timattr_projects WHERE slot_types = '{\"1\": 1}'::jsonb"),
        1
    );
    write_project(&p, "  - city\n  - device_city\n");
    let err = run(&["plan"]).expect(1).stderr();
    assert!(
        err.contains("its slot 1 is configured for registration_id accounts in the state"),
        "{err}"
    );
    // An export to sled keeps the types.
    let export = p.path().join("pg.jsonl.gz");
    run(&["state", "export", "--out", export.to_str().unwrap()]).expect(0);
    p.run(&["state", "restore", export.to_str().unwrap()])
        .expect(0);
    let err = p.run(&["plan"]).expect(1).stderr();
    assert!(
        err.contains("configured for registration_id accounts in the state"),
        "{err}"
    );
}
