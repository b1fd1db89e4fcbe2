//! The client against a hostile server on 127.0.0.1 (`hostile/`): wrong answers, wrong
//! statuses, cut, reset, hanging and dripping connections, huge bodies. Only a well-formed OK
//! is a success; every failure names the host and the attempts and is never recorded; retries
//! are shown at the default verbosity; no output ever holds the key or a usersig.

use crate::hostile;
use crate::support;

use std::time::{Duration, SystemTime};

use hostile::{first, only, Act, Hostile};
use support::{users, Emulator, Project, Run, ADMIN, KEY, SDKAPPID};
use timattr::api::wire::{command, UserAttrs};
use timattr::api::{ApiError, ApiErrorKind, Client, ClientConfig, ErrorClass, Secret};

const NAMES: &[&str] = &["sex", "city", "tier"];
const OK: &str = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#;

fn client(h: &Hostile, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        base_url: h.base_url(),
        sdkappid: SDKAPPID,
        identifier: ADMIN.into(),
        secret: Secret::new(KEY.into()),
        timeout,
    })
    .unwrap()
}

/// Neither the key nor any usersig the server saw (nor a long piece of one) in `text`.
fn assert_no_secrets(text: &[u8], h: &Hostile) {
    let text = String::from_utf8_lossy(text);
    assert!(!text.contains(KEY), "the key leaked:\n{text}");
    assert!(!text.contains("usersig="), "a URL query leaked:\n{text}");
    let sigs = h.sigs();
    assert!(!sigs.is_empty(), "the server saw no sig");
    for sig in sigs {
        for piece in [&sig[..], &sig[..24], &sig[sig.len() - 24..]] {
            assert!(!text.contains(piece), "a usersig leaked:\n{text}");
        }
    }
}

fn assert_error_names_host(e: &ApiError, h: &Hostile) {
    let text = e.to_string();
    assert!(text.contains(&h.host()), "{text}");
    assert!(text.contains("after 1 attempt"), "{text}");
    assert_no_secrets(format!("{e} {e:?}").as_bytes(), h);
}

async fn bare(act: Act) -> Hostile {
    Hostile::start(None, std::sync::Arc::new(move |_: &str, _| act.clone())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_refuses_an_answer_that_is_not_a_well_formed_ok() {
    let bodies = [
        "{}",
        "[]",
        r#"{"hello":1}"#,
        "null",
        r#"{"ActionStatus":"OK","ErrorCode":0"#,
        r#"{"ActionStatus":"OK"}"#,
        r#"{"ActionStatus":"OK","ErrorCode":"0"}"#,
        "<html><body>Sign in to the Wi-Fi</body></html>",
        "",
    ];
    for body in bodies {
        let h = bare(Act::ok(body)).await;
        let c = client(&h, Duration::from_secs(5));
        let u = vec![UserAttrs {
            to_account: "u1".into(),
            attrs: [("city".to_owned(), "x".to_owned())].into(),
        }];
        let accounts = vec!["u1".to_owned()];
        let results = [
            c.set_attr_name(&[(0, "sex".to_owned())].into()).await.err(),
            c.get_attr_name().await.err(),
            c.set_attr(&u).await.err(),
            c.get_attr(&accounts).await.err(),
            c.remove_attr(&[]).await.err(),
            c.get_tag(&accounts).await.err(),
            c.add_tag(&[]).await.err(),
            c.remove_tag(&[]).await.err(),
            c.remove_all_tags(&accounts).await.err(),
        ];
        for (cmd, r) in command::ALL.iter().zip(results) {
            let e = r.unwrap_or_else(|| panic!("{cmd} took {body:?} as a success"));
            assert_eq!(e.command, *cmd);
            assert!(
                matches!(*e.kind, ApiErrorKind::Decode(_)),
                "{cmd} {body:?}: {e:?}"
            );
            assert_eq!(e.class(), ErrorClass::RetryFew, "{e}");
            assert_error_names_host(&e, &h);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_their_payload_for_exactly_the_accounts_asked() {
    let env = r#""ActionStatus":"OK","ErrorCode":0"#;
    let accounts = vec!["u1".to_owned(), "u2".to_owned()];
    for body in [
        format!("{{{env}}}"),
        format!(r#"{{{env},"UserAttrs":{{}}}}"#),
        format!(r#"{{{env},"UserAttrs":[{{"To_Account":"u1","Attrs":{{}}}}]}}"#),
        format!(
            r#"{{{env},"UserAttrs":[{{"To_Account":"u1","Attrs":{{}}}},{{"To_Account":"u3","Attrs":{{}}}}]}}"#
        ),
        format!(
            r#"{{{env},"UserAttrs":[{{"To_Account":"u1","Attrs":{{}}}},{{"To_Account":"u2","Attrs":{{"city":7}}}}]}}"#
        ),
    ] {
        let h = bare(Act::ok(&body)).await;
        let e = client(&h, Duration::from_secs(5))
            .get_attr(&accounts)
            .await
            .expect_err(&body);
        assert!(matches!(*e.kind, ApiErrorKind::Decode(_)), "{body}: {e:?}");
    }
    let good = format!(
        r#"{{{env},"UserAttrs":[{{"To_Account":"u2","Attrs":{{}}}},{{"To_Account":"u1","Attrs":{{"city":"x"}}}}]}}"#
    );
    let h = bare(Act::ok(&good)).await;
    let got = client(&h, Duration::from_secs(5))
        .get_attr(&accounts)
        .await
        .unwrap();
    assert_eq!(got["u1"]["city"], "x");
    for body in [
        format!(r#"{{{env},"AttrNames":{{"10":"x"}}}}"#),
        format!(r#"{{{env},"AttrNames":{{"a":"x"}}}}"#),
        format!(r#"{{{env},"UserTags":[{{"To_Account":"u1","Tags":[1]}}]}}"#),
    ] {
        let h = bare(Act::ok(&body)).await;
        let c = client(&h, Duration::from_secs(5));
        assert!(c.get_attr_name().await.is_err(), "{body}");
        assert!(c.get_tag(&["u1".to_owned()]).await.is_err(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_zero_error_code_is_a_failure_even_with_status_ok() {
    let h = bare(Act::ok(
        r#"{"ActionStatus":"OK","ErrorCode":90033,"ErrorInfo":"bad \u001b[2J value"}"#,
    ))
    .await;
    let e = client(&h, Duration::from_secs(5))
        .set_attr(&[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(90033));
    assert_eq!(e.class(), ErrorClass::Fatal);
    let text = e.to_string();
    assert!(
        !text.contains('\u{1b}'),
        "control characters are escaped: {text:?}"
    );
    assert_error_names_host(&e, &h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_sorted_and_redirects_not_followed() {
    // The redirect target must never see the request (it would get the usersig).
    let target = bare(Act::ok(OK)).await;
    let location = format!("{}/v4/all_member_push/im_set_attr", target.base_url());
    for (act, status, class) in [
        (
            Act::with_header(302, "Location", &location),
            302,
            ErrorClass::Fatal,
        ),
        (
            Act::with_header(307, "Location", &location),
            307,
            ErrorClass::Fatal,
        ),
        (Act::status(404, "not here"), 404, ErrorClass::Fatal),
        (Act::status(401, "who"), 401, ErrorClass::Fatal),
        (Act::status(500, "oops"), 500, ErrorClass::Retry),
        (Act::status(502, "gw"), 502, ErrorClass::Retry),
        (Act::status(429, "slow"), 429, ErrorClass::SlowDown),
    ] {
        let h = bare(act).await;
        let e = client(&h, Duration::from_secs(5))
            .set_attr(&[])
            .await
            .unwrap_err();
        assert_eq!(*e.kind, ApiErrorKind::Http(status), "{e}");
        assert_eq!(e.class(), class, "{e}");
        assert_error_names_host(&e, &h);
    }
    assert!(target.commands().is_empty(), "a redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_read_from_429_and_503() {
    let h = bare(Act::with_header(429, "Retry-After", "7")).await;
    let e = client(&h, Duration::from_secs(5))
        .set_attr(&[])
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let date = httpdate(SystemTime::now() + Duration::from_secs(30));
    let h = bare(Act::with_header(503, "Retry-After", &date)).await;
    let e = client(&h, Duration::from_secs(5))
        .set_attr(&[])
        .await
        .unwrap_err();
    let wait = e.retry_after().expect("an HTTP-date is understood");
    assert!(
        wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    let h = bare(Act::with_header(503, "Retry-After", "999999")).await;
    let e = client(&h, Duration::from_secs(5))
        .set_attr(&[])
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)), "capped");
}

/// An IMF-fixdate, as servers send in `Retry-After`.
fn httpdate(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil from days (Howard Hinnant), 1970-01-01 was a Thursday.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{wd}, {d:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_are_retryable_and_bounded() {
    for act in [Act::Close, Act::Reset] {
        let h = bare(act.clone()).await;
        let e = client(&h, Duration::from_secs(5))
            .get_attr_name()
            .await
            .unwrap_err();
        assert!(
            matches!(*e.kind, ApiErrorKind::Connect(_)),
            "{act:?}: {e:?}"
        );
        assert_eq!(e.class(), ErrorClass::Retry);
        assert_error_names_host(&e, &h);
    }
    // Hanging, and dripping a byte at a time: the per-request timeout ends both.
    let drip = Act::Drip(OK.as_bytes().to_vec(), Duration::from_millis(100));
    for act in [Act::Hang, drip] {
        let h = bare(act.clone()).await;
        let e = client(&h, Duration::from_millis(700))
            .set_attr(&[])
            .await
            .unwrap_err();
        assert_eq!(*e.kind, ApiErrorKind::Timeout, "{act:?}");
        assert_eq!(e.class(), ErrorClass::Retry);
        assert_error_names_host(&e, &h);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_oddities_are_sorted() {
    let raw = |s: String| Act::Raw(s.into_bytes());
    // A body cut short of its Content-Length, a status line that is not HTTP.
    for act in [
        raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{}",
            &OK[..20]
        )),
        raw("HELLO THERE\r\n\r\n".to_owned()),
    ] {
        let h = bare(act.clone()).await;
        let e = client(&h, Duration::from_secs(5))
            .set_attr(&[])
            .await
            .unwrap_err();
        assert!(
            matches!(*e.kind, ApiErrorKind::Connect(_)),
            "{act:?}: {e:?}"
        );
        assert_eq!(e.class(), ErrorClass::Retry);
        assert_error_names_host(&e, &h);
    }
    // A chunked answer past the cap, with no length announced.
    let chunk = "a".repeat(64 * 1024);
    let mut chunked =
        String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for _ in 0..80 {
        chunked.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    chunked.push_str("0\r\n\r\n");
    let h = bare(raw(chunked)).await;
    let e = client(&h, Duration::from_secs(10))
        .set_attr(&[])
        .await
        .unwrap_err();
    assert!(
        matches!(&*e.kind, ApiErrorKind::Decode(why) if why.contains("larger than")),
        "{e:?}"
    );
    // A well-formed OK delimited by the connection's close is a success.
    let h = bare(raw(format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{OK}"
    )))
    .await;
    client(&h, Duration::from_secs(5))
        .set_attr(&[])
        .await
        .unwrap();
}

/// The log lines of the current thread, for checking what a user would see on stderr.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_hanging_server_is_announced_while_awaited() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = bare(Act::Hang).await;
    let e = client(&h, Duration::from_millis(900))
        .set_attr(&[])
        .await
        .unwrap_err();
    assert_eq!(*e.kind, ApiErrorKind::Timeout);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let want = format!("im_set_attr: no answer from {} after 0.3 s", h.host());
    assert!(text.contains(&want), "{text}");
    assert_no_secrets(text.as_bytes(), &h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_refused_without_reading_it_all() {
    let huge = format!(
        r#"{{"ActionStatus":"OK","ErrorCode":0,"X":"{}"}}"#,
        "a".repeat(5 * 1024 * 1024)
    );
    let h = bare(Act::ok(&huge)).await;
    let e = client(&h, Duration::from_secs(10))
        .set_attr(&[])
        .await
        .unwrap_err();
    match &*e.kind {
        ApiErrorKind::Decode(why) => assert!(why.contains("larger than"), "{why}"),
        other => panic!("{other:?}"),
    }
}

// ---- the binary, through the hostile server in front of an emulator ----

/// An emulator and a hostile server in front of it, served from a runtime of their own.
struct Rig {
    emu: Emulator,
    hostile: Hostile,
}

fn rig(script: hostile::Script) -> Rig {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let upstream = emu.base_url();
    let hostile = emu.runtime.block_on(Hostile::start(Some(upstream), script));
    Rig { emu, hostile }
}

fn project(r: &Rig, accounts: usize) -> Project {
    let p = Project::new(&r.hostile.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(accounts, ""));
    p
}

/// How many accounts the store claims, from `state export`.
fn claims(p: &Project) -> usize {
    use std::io::BufRead;
    let out = p.run(&["state", "export"]);
    if out.code() != 0 {
        // No state at all yet.
        return 0;
    }
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(&out.0.stdout[..])).lines();
    lines
        .skip(1)
        .filter(|l| l.as_ref().is_ok_and(|l| !l.is_empty()))
        .count()
}

fn retry_lines(run: &Run) -> Vec<String> {
    run.stderr()
        .lines()
        .filter(|l| l.contains("retrying in"))
        .map(str::to_owned)
        .collect()
}

fn all_output(run: &Run) -> Vec<u8> {
    [&run.0.stdout[..], &run.0.stderr[..]].concat()
}

#[test]
fn apply_never_records_a_garbled_ok() {
    for body in [
        "{}",
        "[]",
        r#"{"hello":1}"#,
        "null",
        r#"{"ActionStatus":"OK","ErrorCode":0"#,
    ] {
        let r = rig(only(command::SET_ATTR, Act::ok(body)));
        let p = project(&r, 10);
        let run = p.run(&["apply", "--auto-approve"]).expect(1);
        let err = run.stderr();
        let want = format!("from {} after 3 attempts", r.hostile.host());
        assert!(err.contains(&want), "{body}: {err}");
        assert!(err.contains("malformed answer"), "{err}");
        assert_eq!(retry_lines(&run).len(), 2, "{err}");
        assert_eq!(r.hostile.count(command::SET_ATTR), 3);
        assert_no_secrets(&all_output(&run), &r.hostile);
        assert!(r.emu.attrs().is_empty());
        assert_eq!(claims(&p), 0, "{body}: nothing may be recorded");
        let plan = p.run(&["plan"]).expect(0).stdout();
        assert!(plan.contains("10 to add"), "{plan}");
    }
}

#[test]
fn a_persistent_http_500_names_host_and_attempts_and_every_retry_shows() {
    let r = rig(only(command::SET_ATTR, Act::status(500, "Internal")));
    let p = project(&r, 10);
    let run = p.run(&["apply", "--auto-approve"]).expect(1);
    let err = run.stderr();
    let want = format!(
        "server error: HTTP 500 from {} after 8 attempts",
        r.hostile.host()
    );
    assert!(err.contains(&want), "{err}");
    assert!(!err.to_lowercase().contains("temporary"), "{err}");
    let retries = retry_lines(&run);
    assert_eq!(retries.len(), 7, "{err}");
    for (i, line) in retries.iter().enumerate() {
        assert!(line.contains("im_set_attr"), "{line}");
        assert!(line.contains("HTTP 500"), "{line}");
        assert!(line.contains(&format!("(attempt {}/8)", i + 1)), "{line}");
    }
    assert_eq!(claims(&p), 0);
    assert_no_secrets(&all_output(&run), &r.hostile);
}

#[test]
fn retry_after_is_honoured_and_shown() {
    let date = httpdate(SystemTime::now() + Duration::from_secs(6));
    let r = rig(first(
        command::SET_ATTR,
        vec![
            Act::with_header(429, "Retry-After", "1"),
            Act::with_header(503, "Retry-After", &date),
        ],
    ));
    let p = project(&r, 10);
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    let retries = retry_lines(&run);
    assert_eq!(retries.len(), 2, "{}", run.stderr());
    assert!(retries[0].contains("retrying in 1.00 s"), "{}", retries[0]);
    // The date was 6 s ahead when the test began; the wait is what was left of it, and more
    // than the backoff of a second attempt (at most 0.2 s) shows the date was honoured.
    let wait: f64 = retries[1]
        .rsplit("retrying in ")
        .next()
        .and_then(|w| w.trim_end_matches(" s").parse().ok())
        .expect("a wait in seconds");
    assert!(wait > 0.3, "{}", retries[1]);
    assert_eq!(claims(&p), 10);
    assert_eq!(r.emu.attrs().len(), 10);
    assert_no_secrets(&all_output(&run), &r.hostile);
}

#[test]
fn a_connection_cut_mid_answer_is_retried_like_one_cut_before() {
    // The first set is applied upstream but its answer is cut; then a close, then a reset.
    let r = rig(first(
        command::SET_ATTR,
        vec![Act::ForwardThenCut, Act::Close, Act::Reset],
    ));
    let p = project(&r, 10);
    let run = p.run(&["apply", "--auto-approve", "-vvv"]).expect(0);
    assert_eq!(retry_lines(&run).len(), 3, "{}", run.stderr());
    assert_eq!(r.hostile.count(command::SET_ATTR), 4);
    assert_eq!(claims(&p), 10);
    assert_eq!(r.emu.attrs(), users(10, ""));
    assert_no_secrets(&all_output(&run), &r.hostile);
}

#[test]
fn drift_refuses_an_answer_missing_the_accounts_asked() {
    let r = rig(only("none", Act::Forward));
    let p = project(&r, 10);
    p.run(&["apply", "--auto-approve"]).expect(0);
    let env = r#""ActionStatus":"OK","ErrorCode":0"#;
    for body in [
        format!(r#"{{{env},"UserAttrs":[]}}"#),
        format!(r#"{{{env}}}"#),
        "{}".to_owned(),
    ] {
        r.hostile
            .set_script(only(command::GET_ATTR, Act::ok(&body)));
        let run = p.run(&["drift"]).expect(1);
        let err = run.stderr();
        assert!(err.contains(&r.hostile.host()), "{err}");
        assert!(!run.stdout().contains("deleted"), "{}", run.stdout());
        assert_no_secrets(&all_output(&run), &r.hostile);
    }
    assert_eq!(claims(&p), 10, "a failed read changes nothing");
}

#[test]
fn a_wrong_key_and_a_fatal_code_leak_nothing_at_any_verbosity() {
    let r = rig(only("none", Act::Forward));
    let p = project(&r, 10);
    for v in ["-q", "-v", "-vv", "-vvv"] {
        let run = Run(p
            .cmd(&["apply", "--auto-approve", v])
            .env(support::SECRET_ENV, "a-wrong-key-that-must-not-show")
            .output()
            .unwrap())
        .expect(1);
        let out = all_output(&run);
        assert!(
            !String::from_utf8_lossy(&out).contains("a-wrong-key-that-must-not-show"),
            "{v}"
        );
        assert_no_secrets(&out, &r.hostile);
    }
    // Every crate's logs at trace, through retries and a cut answer, with the right key.
    r.hostile.set_script(first(
        command::SET_ATTR,
        vec![Act::status(500, "x"), Act::ForwardThenCut, Act::Reset],
    ));
    let run = Run(p
        .cmd(&["apply", "--auto-approve"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap())
    .expect(0);
    assert!(run.stderr().contains("TRACE"), "trace logs are on");
    assert_no_secrets(&all_output(&run), &r.hostile);
}

#[test]
fn ambiguous_answers_are_never_recorded() {
    // A failure with its keys repeated as success: serde_json alone keeps the last.
    let twice = r#"{"ActionStatus":"FAIL","ErrorCode":90033,"ErrorInfo":"bad","ActionStatus":"OK","ErrorCode":0}"#;
    let r = rig(only(command::SET_ATTR, Act::ok(twice)));
    let p = project(&r, 10);
    let run = p.run(&["apply", "--auto-approve"]).expect(1);
    assert!(run.stderr().contains("repeated"), "{}", run.stderr());
    assert_eq!(claims(&p), 0, "nothing may be recorded");
    assert_no_secrets(&all_output(&run), &r.hostile);

    // One attribute name in two slots: nothing is sent after it.
    let env = r#""ActionStatus":"OK","ErrorCode":0"#;
    let slots = format!(r#"{{{env},"AttrNames":{{"0":"sex","1":"city","2":"tier","5":"sex"}}}}"#);
    let fresh = rig(only(command::GET_ATTR_NAME, Act::ok(&slots)));
    let q = project(&fresh, 10);
    let run = q.run(&["apply", "--auto-approve"]).expect(1);
    assert!(run.stderr().contains("two slots"), "{}", run.stderr());
    assert_eq!(fresh.hostile.count(command::SET_ATTR), 0);
    assert_eq!(claims(&q), 0);

    // An account listed twice by im_get_attr: import records nothing of it.
    r.hostile.set_script(only("none", Act::Forward));
    p.run(&["apply", "--auto-approve"]).expect(0);
    std::fs::remove_dir_all(p.state_dir()).unwrap();
    let listed_twice = format!(
        r#"{{{env},"UserAttrs":[{{"To_Account":"user00000","Attrs":{{"sex":"a"}}}},{{"To_Account":"user00000","Attrs":{{"sex":"b"}}}}]}}"#
    );
    r.hostile
        .set_script(only(command::GET_ATTR, Act::ok(&listed_twice)));
    let run = p.run(&["import"]).expect(1);
    assert!(run.stderr().contains("listed twice"), "{}", run.stderr());
    assert_eq!(claims(&p), 0, "import recorded an ambiguous read");
}
