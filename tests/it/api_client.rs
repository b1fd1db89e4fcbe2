//! The API client against the in-process emulator on a loopback port: every command, and every
//! error code the emulator can produce, as the client reports and classifies it.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use timattr::api::wire::{UserAttrNames, UserAttrs, UserTags};
use timattr::api::{usersig, ApiError, ApiErrorKind, Client, ClientConfig, ErrorClass, Secret};
use timattr::emulator::{self, Config, Running};

const APP: u32 = 1_400_000_001;
const KEY: &str = "test-secret-key-for-the-client-tests";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key() -> Secret {
    Secret::new(KEY.into())
}

async fn emulator_with(f: impl FnOnce(&mut Config)) -> Running {
    let mut cfg = Config::local(APP, "admin", key());
    f(&mut cfg);
    emulator::start(cfg).await.expect("emulator starts")
}

fn client_for(em: &Running, f: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut cfg = ClientConfig {
        base_url: em.base_url(),
        sdkappid: APP,
        identifier: "admin".into(),
        secret: key(),
        timeout: Duration::from_secs(5),
    };
    f(&mut cfg);
    Client::new(cfg).expect("client builds")
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn user(account: &str, pairs: &[(&str, &str)]) -> UserAttrs {
    UserAttrs {
        to_account: account.into(),
        attrs: attrs(pairs),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn configure_names(c: &Client) {
    let slots = [(0u8, "sex".to_string()), (1, "city".to_string())].into();
    c.set_attr_name(&slots).await.expect("set_attr_name");
}

/// The error must name its code and never show the sig or the key.
fn assert_code(e: &ApiError, code: i64, class: ErrorClass) {
    assert_eq!(e.code(), Some(code), "{e}");
    assert_eq!(e.class(), class, "{e}");
    let text = format!("{e} | {e:?}");
    assert!(text.contains(&code.to_string()), "{text}");
    assert!(text.contains(timattr::api::meaning(code)), "{text}");
    assert!(e.host.starts_with("127.0.0.1:"), "{e:?}");
    assert!(
        text.contains(&format!("from {} after 1 attempt", e.host)),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
    assert!(!text.to_lowercase().contains("usersig="), "{text}");
    assert!(!text.contains("eJ"), "looks like a sig: {text}");
}

#[tokio::test]
async fn attribute_commands_round_trip() {
    let em = emulator_with(|_| {}).await;
    let c = client_for(&em, |_| {});
    assert!(c.get_attr_name().await.unwrap().is_empty());
    configure_names(&c).await;
    c.set_attr_name(&[(3u8, "tier".to_string())].into())
        .await
        .unwrap();
    let names = c.get_attr_name().await.unwrap();
    assert_eq!(
        names,
        [(0u8, "sex"), (1, "city"), (3, "tier")]
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect::<BTreeMap<_, _>>()
    );

    c.set_attr(&[
        user("u1", &[("sex", "m"), ("city", "x")]),
        user("u2", &[("tier", "gold")]),
    ])
    .await
    .unwrap();
    // Upsert: only the given names change.
    c.set_attr(&[user("u1", &[("city", "y")])]).await.unwrap();

    let got = c.get_attr(&strings(&["u1", "u2", "nobody"])).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got["u1"], attrs(&[("sex", "m"), ("city", "y")]));
    assert_eq!(got["u2"], attrs(&[("tier", "gold")]));
    assert!(got["nobody"].is_empty());

    c.remove_attr(&[UserAttrNames {
        to_account: "u1".into(),
        attrs: strings(&["sex", "tier"]),
    }])
    .await
    .unwrap();
    let got = c.get_attr(&strings(&["u1"])).await.unwrap();
    assert_eq!(got["u1"], attrs(&[("city", "y")]));
    assert_eq!(em.snapshot().users["u1"].attrs, attrs(&[("city", "y")]));
}

#[tokio::test]
async fn get_attr_results_are_keyed_by_account_whatever_the_order() {
    let em = emulator_with(|_| {}).await;
    let c = client_for(&em, |_| {});
    configure_names(&c).await;
    let accounts: Vec<String> = (0..100).map(|i| format!("user{i:03}")).collect();
    let users: Vec<UserAttrs> = accounts
        .iter()
        .map(|a| user(a, &[("city", &format!("city-of-{a}"))]))
        .collect();
    c.set_attr(&users).await.unwrap();
    let got = c.get_attr(&accounts).await.unwrap();
    assert_eq!(got.len(), 100);
    for a in &accounts {
        assert_eq!(got[a]["city"], format!("city-of-{a}"));
    }
}

#[tokio::test]
async fn tag_commands_round_trip() {
    let em = emulator_with(|_| {}).await;
    let c = client_for(&em, |_| {});
    let tags = |a: &str, t: &[&str]| UserTags {
        to_account: a.into(),
        tags: strings(t),
    };
    c.add_tag(&[tags("u1", &["a", "b", "c"]), tags("u2", &["z"])])
        .await
        .unwrap();
    c.remove_tag(&[tags("u1", &["b"])]).await.unwrap();
    let got = c.get_tag(&strings(&["u1", "u2", "u3"])).await.unwrap();
    assert_eq!(got["u1"], strings(&["a", "c"]));
    assert_eq!(got["u2"], strings(&["z"]));
    assert!(got["u3"].is_empty());
    c.remove_all_tags(&strings(&["u1"])).await.unwrap();
    let got = c.get_tag(&strings(&["u1", "u2"])).await.unwrap();
    assert!(got["u1"].is_empty());
    assert_eq!(got["u2"], strings(&["z"]));

    let e = c
        .add_tag(&[tags(
            "u1",
            &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"],
        )])
        .await
        .unwrap_err();
    assert_code(&e, 90032, ErrorClass::Fatal);
    let long = "t".repeat(51);
    let e = c.add_tag(&[tags("u1", &[&long])]).await.unwrap_err();
    assert_code(&e, 90020, ErrorClass::Fatal);
}

#[tokio::test]
async fn request_errors_are_fatal_with_their_codes() {
    let em = emulator_with(|_| {}).await;
    let c = client_for(&em, |_| {});
    configure_names(&c).await;

    let e = c
        .set_attr(&[user("u1", &[("color", "red")])])
        .await
        .unwrap_err();
    assert_code(&e, 90033, ErrorClass::Fatal);
    let e = c
        .set_attr(&[user("u1", &[("city", &"好".repeat(17))])])
        .await
        .unwrap_err();
    assert_code(&e, 90033, ErrorClass::Fatal);
    let e = c
        .remove_attr(&[UserAttrNames {
            to_account: "u1".into(),
            attrs: strings(&["color"]),
        }])
        .await
        .unwrap_err();
    assert_code(&e, 90033, ErrorClass::Fatal);

    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let e = c.get_attr(&many).await.unwrap_err();
    assert_code(&e, 90018, ErrorClass::Fatal);
    let e = c.remove_all_tags(&many).await.unwrap_err();
    assert_code(&e, 90018, ErrorClass::Fatal);
    assert!(em.snapshot().users.is_empty());

    let not_admin = client_for(&em, |cfg| cfg.identifier = "bob".into());
    let e = not_admin.get_attr_name().await.unwrap_err();
    assert_code(&e, 90009, ErrorClass::Fatal);
}

#[tokio::test]
async fn malformed_json_is_90001() {
    let em = emulator_with(|_| {}).await;
    let sig = usersig::generate(APP, &key(), "admin", 3600, now());
    let url = format!(
        "{}/v4/all_member_push/im_set_attr?sdkappid={APP}&identifier=admin&usersig={sig}&random=1&contenttype=json",
        em.base_url()
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for body in ["{not json", r#"{"UserAttrs":{"To_Account":"u1"}}"#, "[]"] {
        let resp: serde_json::Value = http
            .post(&url)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(resp["ErrorCode"], 90001, "{body}: {resp}");
        assert_eq!(resp["ActionStatus"], "FAIL");
    }
}

#[tokio::test]
async fn usersig_errors_have_their_codes() {
    let em = emulator_with(|_| {}).await;

    let wrong_key = client_for(&em, |cfg| cfg.secret = Secret::new("not the key".into()));
    let e = wrong_key.get_attr_name().await.unwrap_err();
    assert_code(&e, 70009, ErrorClass::Fatal);
    assert!(e.to_string().contains("SecretKey"), "{e}");

    let c = client_for(&em, |_| {});
    let far = now() + 30 * 86400;
    c.use_sig_until(usersig::generate(APP, &key(), "someone", 3600, now()), far);
    assert_code(
        &c.get_attr_name().await.unwrap_err(),
        70013,
        ErrorClass::Fatal,
    );
    c.use_sig_until(
        usersig::generate(APP + 1, &key(), "admin", 3600, now()),
        far,
    );
    assert_code(
        &c.get_attr_name().await.unwrap_err(),
        70014,
        ErrorClass::Fatal,
    );
    c.use_sig_until("definitely*not-a_sig".into(), far);
    assert_code(
        &c.get_attr_name().await.unwrap_err(),
        70003,
        ErrorClass::Fatal,
    );
    c.use_sig_until(String::new(), far);
    assert_code(
        &c.get_attr_name().await.unwrap_err(),
        70002,
        ErrorClass::Fatal,
    );

    let other_app = client_for(&em, |cfg| cfg.sdkappid = APP + 7);
    assert_code(
        &other_app.get_attr_name().await.unwrap_err(),
        70020,
        ErrorClass::Fatal,
    );
}

#[tokio::test]
async fn expired_sig_is_regenerated_once_inside_the_client() {
    let em = emulator_with(|_| {}).await;
    let c = client_for(&em, |_| {});
    // The client trusts this sig for a month; the server finds it expired an hour ago.
    let expired = usersig::generate(APP, &key(), "admin", 60, now() - 3600);
    c.use_sig_until(expired, now() + 30 * 86400);
    c.get_attr_name()
        .await
        .expect("70001 is cured by a fresh sig");
    assert_eq!(em.stats().requests["im_get_attr_name"], 2);
    // The fresh sig is kept: the next call is one request.
    c.get_attr_name().await.unwrap();
    assert_eq!(em.stats().requests["im_get_attr_name"], 3);
}

#[tokio::test]
async fn rate_limit_answers_60007_slow_down() {
    let em = emulator_with(|cfg| cfg.rate_limit = 5).await;
    let c = client_for(&em, |_| {});
    let mut throttled = None;
    for _ in 0..20 {
        if let Err(e) = c.get_attr_name().await {
            throttled = Some(e);
            break;
        }
    }
    let e = throttled.expect("a 60007 within 20 fast calls at 5/s");
    assert_code(&e, 60007, ErrorClass::SlowDown);
    assert!(em.stats().throttled >= 1);
    // Another command has its own window.
    c.get_tag(&strings(&["u1"])).await.unwrap();
}

#[tokio::test]
async fn injected_faults_are_retryable_and_apply_nothing() {
    let em = emulator_with(|cfg| cfg.fault_rate = 1.0).await;
    let c = client_for(&em, |_| {});
    let mut seen = HashSet::new();
    for _ in 0..300 {
        let e = c
            .set_attr(&[user("u1", &[("city", "x")])])
            .await
            .unwrap_err();
        match &*e.kind {
            ApiErrorKind::Code { code: 91000, .. } => assert_eq!(e.class(), ErrorClass::Retry),
            ApiErrorKind::Code { code: 60007, .. } => assert_eq!(e.class(), ErrorClass::SlowDown),
            ApiErrorKind::Http(502) => assert_eq!(e.class(), ErrorClass::Retry),
            other => panic!("unexpected fault {other:?}"),
        }
        seen.insert(e.to_string().split(':').nth(1).unwrap_or("").to_owned());
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "all three kinds of fault: {seen:?}");
    assert!(em.snapshot().users.is_empty());
    em.set_fault_rate(0.0);
    c.get_attr_name().await.unwrap();
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable() {
    let em = emulator_with(|cfg| cfg.latency = Duration::from_millis(400)).await;
    let c = client_for(&em, |cfg| cfg.timeout = Duration::from_millis(100));
    let e = c.get_attr_name().await.unwrap_err();
    assert_eq!(*e.kind, ApiErrorKind::Timeout, "{e}");
    assert_eq!(e.class(), ErrorClass::Retry);

    let addr = em.addr();
    em.stop().await.unwrap();
    let c = Client::new(ClientConfig {
        base_url: format!("http://{addr}"),
        sdkappid: APP,
        identifier: "admin".into(),
        secret: key(),
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let e = c.get_attr_name().await.unwrap_err();
    assert!(matches!(*e.kind, ApiErrorKind::Connect(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Retry);
    assert!(!e.to_string().contains("usersig"), "{e}");
}

#[tokio::test]
async fn concurrent_calls_share_one_client() {
    let em = emulator_with(|_| {}).await;
    let c = client_for(&em, |_| {});
    configure_names(&c).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(
                async move { c.set_attr(&[user(&format!("u{i}"), &[("sex", "f")])]).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(em.snapshot().users.len(), 20);
}
