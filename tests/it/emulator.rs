//! The emulator's rules over raw HTTP (so shapes the client never sends are covered too),
//! persistence across stop/start and crashes, the rate limit, and a throughput smoke check.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use timattr::api::{usersig, Secret};
use timattr::emulator::{self, journal_path, Config, Data, Running};

const APP: u32 = 1_400_000_002;
const KEY: &str = "emulator-test-key";

fn key() -> Secret {
    Secret::new(KEY.into())
}

/// Posts raw JSON bodies with a valid admin sig.
struct Raw {
    http: reqwest::Client,
    base: String,
    sig: String,
}

impl Raw {
    fn new(em: &Running) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Raw {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: em.base_url(),
            sig: usersig::generate(APP, &key(), "admin", 86400, now),
        }
    }

    async fn post_text(&self, cmd: &str, body: &str) -> (u16, Value) {
        let url = format!(
            "{}/v4/all_member_push/{cmd}?sdkappid={APP}&identifier=admin&usersig={}&random=7&contenttype=json",
            self.base, self.sig
        );
        let resp = self
            .http
            .post(url)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, cmd: &str, body: Value) -> Value {
        let (status, v) = self.post_text(cmd, &body.to_string()).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Posts and returns the error code (0 for OK).
    async fn code(&self, cmd: &str, body: Value) -> i64 {
        let v = self.post(cmd, body).await;
        let code = v["ErrorCode"].as_i64().unwrap();
        assert_eq!(
            v["ActionStatus"],
            if code == 0 { "OK" } else { "FAIL" },
            "{v}"
        );
        code
    }
}

async fn start(f: impl FnOnce(&mut Config)) -> Running {
    let mut cfg = Config::local(APP, "admin", key());
    f(&mut cfg);
    emulator::start(cfg).await.unwrap()
}

async fn with_names(raw: &Raw) {
    let names = json!({"AttrNames": {"0": "sex", "1": "city", "2": "tier"}});
    assert_eq!(raw.code("im_set_attr_name", names).await, 0);
}

#[tokio::test]
async fn attr_names_are_upserted_into_slots_zero_to_nine() {
    let em = start(|_| {}).await;
    let raw = Raw::new(&em);
    with_names(&raw).await;
    assert_eq!(
        raw.code(
            "im_set_attr_name",
            json!({"AttrNames": {"9": "last", "1": "town"}})
        )
        .await,
        0
    );
    let v = raw.post("im_get_attr_name", json!({})).await;
    assert_eq!(
        v["AttrNames"],
        json!({"0": "sex", "1": "town", "2": "tier", "9": "last"})
    );
    for bad in [
        json!({"AttrNames": {"10": "x"}}),
        json!({"AttrNames": {"a": "x"}}),
        json!({"AttrNames": {"01": "x"}}),
        json!({"AttrNames": {"3": 5}}),
        json!({"AttrNames": {"3": ""}}),
        json!({"AttrNames": {"3": "n".repeat(51)}}),
        json!({"AttrNames": {"3": "sex"}}),
        json!({"AttrNames": ["sex"]}),
        json!({}),
    ] {
        assert_eq!(
            raw.code("im_set_attr_name", bad.clone()).await,
            90001,
            "{bad}"
        );
    }
    assert_eq!(em.snapshot().attr_names.len(), 4);
}

#[tokio::test]
async fn set_attr_validates_the_whole_request_first() {
    let em = start(|_| {}).await;
    let raw = Raw::new(&em);
    with_names(&raw).await;
    let good = json!({"To_Account": "u1", "Attrs": {"sex": "m"}});
    for (bad, code) in [
        (
            json!({"To_Account": "u2", "Attrs": {"color": "red"}}),
            90033,
        ),
        (json!({"To_Account": "u2", "Attrs": {"city": 5}}), 90033),
        (json!({"To_Account": "u2", "Attrs": {"city": null}}), 90033),
        // 17 three-byte characters: 17 chars but 51 bytes.
        (
            json!({"To_Account": "u2", "Attrs": {"city": "好".repeat(17)}}),
            90033,
        ),
        (json!({"To_Account": "u2", "Attrs": ["city"]}), 90001),
        (json!({"To_Account": "", "Attrs": {}}), 90001),
        (json!({"To_Account": 12, "Attrs": {}}), 90001),
        (json!({"Attrs": {"city": "x"}}), 90001),
    ] {
        let body = json!({"UserAttrs": [good.clone(), bad.clone()]});
        assert_eq!(raw.code("im_set_attr", body).await, code, "{bad}");
    }
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"To_Account": format!("u{i}"), "Attrs": {"sex": "f"}}))
        .collect();
    assert_eq!(
        raw.code("im_set_attr", json!({"UserAttrs": too_many}))
            .await,
        90018
    );
    // The unwrapped shapes some clients send.
    assert_eq!(raw.code("im_set_attr", json!([good.clone()])).await, 90001);
    assert_eq!(raw.code("im_set_attr", good.clone()).await, 90001);
    let (_, v) = raw.post_text("im_set_attr", "{\"UserAttrs\": [").await;
    assert_eq!(v["ErrorCode"], 90001);
    assert_eq!(
        em.snapshot().users.len(),
        0,
        "nothing applied by any failure"
    );

    // Exactly 50 bytes is fine: 16 three-byte characters and two ASCII.
    let fifty = format!("{}ab", "好".repeat(16));
    let body = json!({"UserAttrs": [good, {"To_Account": "u2", "Attrs": {"city": fifty}}]});
    assert_eq!(raw.code("im_set_attr", body).await, 0);
    assert_eq!(em.snapshot().users["u2"].attrs["city"], fifty);
}

#[tokio::test]
async fn set_attr_upserts_and_remove_attr_removes_names() {
    let em = start(|_| {}).await;
    let raw = Raw::new(&em);
    with_names(&raw).await;
    let set = |a: &str, attrs: Value| json!({"UserAttrs": [{"To_Account": a, "Attrs": attrs}]});
    assert_eq!(
        raw.code("im_set_attr", set("u1", json!({"sex": "m", "city": "x"})))
            .await,
        0
    );
    assert_eq!(
        raw.code("im_set_attr", set("u1", json!({"city": "y", "tier": ""})))
            .await,
        0
    );
    let v = raw
        .post("im_get_attr", json!({"To_Account": ["u1", "u9"]}))
        .await;
    assert_eq!(
        v["UserAttrs"],
        // Reversed, and a user without attributes answered with an empty object.
        json!([{"To_Account": "u9", "Attrs": {}},
               {"To_Account": "u1", "Attrs": {"sex": "m", "city": "y", "tier": ""}}])
    );
    // Duplicates in one request apply in order.
    let dup = json!({"UserAttrs": [{"To_Account": "u1", "Attrs": {"city": "a"}},
                                   {"To_Account": "u1", "Attrs": {"city": "b"}}]});
    assert_eq!(raw.code("im_set_attr", dup).await, 0);
    assert_eq!(em.snapshot().users["u1"].attrs["city"], "b");

    let rm = |a: &str, names: Value| json!({"UserAttrs": [{"To_Account": a, "Attrs": names}]});
    assert_eq!(
        raw.code("im_remove_attr", rm("u1", json!(["sex", "tier"])))
            .await,
        0
    );
    // Removing a name the user lacks, or from an unknown user, is OK.
    assert_eq!(
        raw.code("im_remove_attr", rm("u1", json!(["sex"]))).await,
        0
    );
    assert_eq!(
        raw.code("im_remove_attr", rm("nobody", json!(["sex"])))
            .await,
        0
    );
    assert_eq!(
        raw.code("im_remove_attr", rm("u1", json!(["color"]))).await,
        90033
    );
    assert_eq!(
        raw.code("im_remove_attr", rm("u1", json!({"city": "b"})))
            .await,
        90001
    );
    let data = em.snapshot();
    assert_eq!(data.users.len(), 1);
    assert_eq!(data.users["u1"].attrs.len(), 1);
    assert_eq!(data.users["u1"].attrs["city"], "b");
}

#[tokio::test]
async fn get_requests_are_limited_and_shaped() {
    let em = start(|_| {}).await;
    let raw = Raw::new(&em);
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    for cmd in ["im_get_attr", "im_get_tag", "im_remove_all_tags"] {
        assert_eq!(
            raw.code(cmd, json!({"To_Account": many})).await,
            90018,
            "{cmd}"
        );
        assert_eq!(
            raw.code(cmd, json!({"To_Account": "u1"})).await,
            90001,
            "{cmd}"
        );
        assert_eq!(
            raw.code(cmd, json!({"To_Account": [1]})).await,
            90001,
            "{cmd}"
        );
        assert_eq!(
            raw.code(cmd, json!({"To_Account": many[..100]})).await,
            0,
            "{cmd}"
        );
    }
    // {} is the whole body of im_get_attr_name.
    let v = raw.post("im_get_attr_name", json!({})).await;
    assert_eq!(v["AttrNames"], json!({}));
}

#[tokio::test]
async fn tag_rules() {
    let em = start(|_| {}).await;
    let raw = Raw::new(&em);
    let tags = |a: &str, t: Vec<String>| json!({"UserTags": [{"To_Account": a, "Tags": t}]});
    let numbered = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        raw.code("im_add_tag", tags("u1", numbered(0, 11))).await,
        90032
    );
    assert_eq!(
        raw.code("im_add_tag", tags("u1", vec!["x".repeat(51)]))
            .await,
        90020
    );
    assert_eq!(
        raw.code("im_add_tag", json!({"UserTags": {"To_Account": "u1"}}))
            .await,
        90001
    );
    assert!(em.snapshot().users.is_empty());
    for i in 0..10 {
        assert_eq!(
            raw.code("im_add_tag", tags("u1", numbered(i * 10, 10)))
                .await,
            0
        );
    }
    // Re-adding held tags is fine; the 101st tag is not.
    assert_eq!(raw.code("im_add_tag", tags("u1", numbered(0, 10))).await, 0);
    assert_eq!(
        raw.code("im_add_tag", tags("u1", numbered(100, 1))).await,
        90032
    );
    assert_eq!(em.snapshot().users["u1"].tags.len(), 100);

    assert_eq!(
        raw.code("im_remove_tag", tags("u1", numbered(0, 98))).await,
        0
    );
    let v = raw
        .post("im_get_tag", json!({"To_Account": ["u1", "u2"]}))
        .await;
    assert_eq!(
        v["UserTags"],
        json!([{"To_Account": "u2", "Tags": []}, {"To_Account": "u1", "Tags": ["t98", "t99"]}])
    );
    assert_eq!(
        raw.code("im_remove_all_tags", json!({"To_Account": ["u1"]}))
            .await,
        0
    );
    assert!(em.snapshot().users.is_empty());
}

/// Posts `{}` to `im_get_attr_name` with query `q` and returns the ErrorCode.
async fn code_for_query(raw: &Raw, em: &Running, q: String) -> i64 {
    let url = format!("{}/v4/all_member_push/im_get_attr_name?{q}", em.base_url());
    let v: Value = raw
        .http
        .post(url)
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["ErrorCode"].as_i64().unwrap()
}

#[tokio::test]
async fn url_and_command_errors() {
    let em = start(|_| {}).await;
    let raw = Raw::new(&em);
    assert_eq!(raw.code("im_no_such_command", json!({})).await, 60009);
    let base = em.base_url();
    let get = raw
        .http
        .get(format!(
            "{base}/v4/all_member_push/im_get_attr_name?sdkappid={APP}"
        ))
        .send()
        .await
        .unwrap();
    let v: Value = get.json().await.unwrap();
    assert_eq!(v["ErrorCode"], 60002);
    let post = |q: String| code_for_query(&raw, &em, q);
    let sig = &raw.sig;
    assert_eq!(post(format!("identifier=admin&usersig={sig}")).await, 60012);
    assert_eq!(
        post(format!("sdkappid=x{APP}&identifier=admin&usersig={sig}")).await,
        60002
    );
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=admin")).await,
        70002
    );
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=admin&usersig=%%%")).await,
        70003
    );
    // Percent-encoded sigs are decoded first.
    let encoded = sig
        .replace('*', "%2A")
        .replace('-', "%2D")
        .replace('_', "%5F");
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=admin&usersig={encoded}")).await,
        0
    );
    assert_eq!(
        post(format!(
            "sdkappid={}&identifier=admin&usersig={sig}",
            APP + 1
        ))
        .await,
        70020
    );
}

#[tokio::test]
async fn usersig_and_admin_errors() {
    let em = start(|_| {}).await;
    let raw = Raw::new(&em);
    let post = |q: String| code_for_query(&raw, &em, q);
    let sig = &raw.sig;
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=root&usersig={sig}")).await,
        70013
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let root = usersig::generate(APP, &key(), "root", 600, now);
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=root&usersig={root}")).await,
        90009
    );
    let old = usersig::generate(APP, &key(), "admin", 600, now - 3600);
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=admin&usersig={old}")).await,
        70001
    );
    let forged = usersig::generate(APP, &Secret::new("x".into()), "admin", 600, now);
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=admin&usersig={forged}")).await,
        70009
    );
    let other = usersig::generate(APP + 1, &key(), "admin", 600, now);
    assert_eq!(
        post(format!("sdkappid={APP}&identifier=admin&usersig={other}")).await,
        70014
    );
}

#[tokio::test]
async fn rate_limit_counts_a_sliding_second_per_command() {
    let em = start(|cfg| cfg.rate_limit = 10).await;
    let raw = Arc::new(Raw::new(&em));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let raw = raw.clone();
            tokio::spawn(async move { raw.code("im_get_tag", json!({"To_Account": ["u"]})).await })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let ok = codes.iter().filter(|c| **c == 0).count();
    let limited = codes.iter().filter(|c| **c == 60007).count();
    assert_eq!(ok + limited, 30, "{codes:?}");
    let elapsed = started.elapsed();
    assert!(ok >= 1, "{codes:?}");
    // On a very loaded machine the burst may spread over more than a second.
    if elapsed < Duration::from_millis(900) {
        assert!(ok <= 10, "{codes:?}");
    }
    // Other commands have their own window.
    assert_eq!(
        raw.code("im_get_attr", json!({"To_Account": ["u"]})).await,
        0
    );
    let stats = em.stats();
    assert_eq!(stats.throttled as usize, limited);
    assert_eq!(stats.requests["im_get_tag"], 30);
    if elapsed < Duration::from_millis(900) {
        assert_eq!(stats.max_per_second["im_get_tag"], 30);
    }
    // A second later the window has room again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        raw.code("im_get_tag", json!({"To_Account": ["u"]})).await,
        0
    );
}

#[tokio::test]
async fn faults_and_latency_are_adjustable_while_running() {
    let em = start(|cfg| cfg.fault_rate = 1.0).await;
    let raw = Raw::new(&em);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let (status, v) = raw
            .post_text("im_set_attr_name", r#"{"AttrNames":{"0":"sex"}}"#)
            .await;
        seen.insert(if status == 200 {
            v["ErrorCode"].as_i64().unwrap()
        } else {
            i64::from(status)
        });
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![502, 60007, 91000]
    );
    assert!(
        em.snapshot().attr_names.is_empty(),
        "a fault applies nothing"
    );
    assert!(em.stats().faults >= 3);
    em.set_fault_rate(0.0);
    em.set_latency(Duration::from_millis(150));
    let t = std::time::Instant::now();
    assert_eq!(raw.code("im_get_attr_name", json!({})).await, 0);
    assert!(t.elapsed() >= Duration::from_millis(150));
}

async fn sample(raw: &Raw) {
    with_names(raw).await;
    for i in 0..5 {
        let body = json!({"UserAttrs": [{"To_Account": format!("u{i}"), "Attrs": {"city": format!("c{i}")}}]});
        assert_eq!(raw.code("im_set_attr", body).await, 0);
    }
    let rm = json!({"UserAttrs": [{"To_Account": "u0", "Attrs": ["city"]}]});
    assert_eq!(raw.code("im_remove_attr", rm).await, 0);
    let tags = json!({"UserTags": [{"To_Account": "u1", "Tags": ["vip"]}]});
    assert_eq!(raw.code("im_add_tag", tags).await, 0);
}

#[tokio::test]
async fn data_survives_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub/emulator.json");
    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    let raw = Raw::new(&em);
    sample(&raw).await;
    em.set_user_attr("u7", "tier", "gold");
    em.remove_user_attr("u4", "city");
    let before = em.snapshot();
    assert_eq!(before.users.len(), 4);
    em.stop().await.unwrap();
    assert_eq!(
        std::fs::metadata(journal_path(&file)).unwrap().len(),
        0,
        "stop compacts"
    );
    let on_disk: Data = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(on_disk, before);

    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    assert_eq!(em.snapshot(), before);
    em.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_snapshot_write_leaves_the_previous_file_and_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emulator.json");
    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    let raw = Raw::new(&em);
    sample(&raw).await;
    em.stop().await.unwrap();
    let previous = std::fs::read(&file).unwrap();

    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    em.set_user_attr("u9", "tier", "gold");
    let after = em.snapshot();
    // The temporary file cannot be created: the snapshot write fails.
    let tmp = dir.path().join("emulator.json.tmp");
    std::fs::create_dir(&tmp).unwrap();
    assert!(em.stop().await.is_err(), "the failed write is reported");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        previous,
        "previous file intact"
    );
    assert!(std::fs::metadata(journal_path(&file)).unwrap().len() > 0);

    // Nothing answered OK is lost: the journal replays onto the previous snapshot.
    std::fs::remove_dir(&tmp).unwrap();
    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    assert_eq!(em.snapshot(), after);
    em.stop().await.unwrap();
}

#[tokio::test]
async fn writes_answered_ok_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emulator.json");
    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    let raw = Raw::new(&em);
    sample(&raw).await;
    let before = em.snapshot();
    // Dropping without stop is a crash: no final snapshot, only the journal.
    drop(em);
    let journal = std::fs::read_to_string(journal_path(&file)).unwrap();
    assert_eq!(journal.lines().count(), 8, "{journal}");
    let snapshot: Data = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_ne!(snapshot, before, "the snapshot alone is behind");

    // A write cut off mid-line (never answered OK) is dropped on replay.
    let mut torn = journal.clone();
    torn.push_str(r#"{"set_attr":{"users":[{"To_Acc"#);
    std::fs::write(journal_path(&file), torn).unwrap();
    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    assert_eq!(em.snapshot(), before);
    drop(em);
}

#[tokio::test]
async fn a_hand_written_journal_is_replayed_and_a_corrupt_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emulator.json");
    let lines = [
        json!({"set_attr_name": {"slots": {"0": "city"}}}),
        json!({"set_attr": {"users": [{"To_Account": "a", "Attrs": {"city": "x"}}]}}),
        json!({"add_tag": {"users": [{"To_Account": "a", "Tags": ["t"]}]}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(journal_path(&file), &text).unwrap();
    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    let data = em.snapshot();
    assert_eq!(data.attr_names[&0], "city");
    assert_eq!(data.users["a"].attrs["city"], "x");
    assert_eq!(data.users["a"].tags, vec!["t".to_string()]);
    em.stop().await.unwrap();

    // Replaying a journal the snapshot already holds (crash between rename and truncate) is harmless.
    std::fs::write(journal_path(&file), &text).unwrap();
    let em = start(|cfg| cfg.data = Some(file.clone())).await;
    assert_eq!(em.snapshot(), data);
    em.stop().await.unwrap();

    std::fs::write(journal_path(&file), "not json\n").unwrap();
    let mut cfg = Config::local(APP, "admin", key());
    cfg.data = Some(file.clone());
    let err = emulator::start(cfg)
        .await
        .err()
        .expect("corrupt journal refused");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[tokio::test]
async fn throughput_smoke_2000_requests() {
    let em = start(|cfg| cfg.rate_limit = 1_000_000).await;
    let raw = Arc::new(Raw::new(&em));
    with_names(&raw).await;
    let t = std::time::Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|w| {
            let raw = raw.clone();
            tokio::spawn(async move {
                for i in 0..63 {
                    let body = json!({"UserAttrs": [{"To_Account": format!("w{w}-{i}"), "Attrs": {"city": "x"}}]});
                    assert_eq!(raw.code("im_set_attr", body).await, 0);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("2016 requests in {:?}", t.elapsed());
    assert_eq!(em.snapshot().users.len(), 32 * 63);
    assert_eq!(em.stats().requests["im_set_attr"], 32 * 63);
}

/// Prints the emulator's throughput; run by hand:
/// `cargo test --release --test emulator -- --ignored --nocapture throughput_report`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn throughput_report() {
    let em = start(|cfg| cfg.rate_limit = 1_000_000).await;
    let raw = Arc::new(Raw::new(&em));
    with_names(&raw).await;
    let (workers, per_worker) = (32, 625);
    let t = std::time::Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let raw = raw.clone();
            tokio::spawn(async move {
                for i in 0..per_worker {
                    let users: Vec<Value> = (0..100)
                        .map(|u| json!({"To_Account": format!("w{w}-{u}"), "Attrs": {"city": format!("c{i}")}}))
                        .collect();
                    assert_eq!(raw.code("im_set_attr", json!({"UserAttrs": users})).await, 0);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = workers * per_worker;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "throughput: {n} im_set_attr requests of 100 users each in {secs:.2} s = {:.0} req/s (client and server in one process, 2 worker threads)",
        n as f64 / secs
    );
}
