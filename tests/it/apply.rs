//! `timattr apply` against the emulator on 127.0.0.1: convergence under faults, a killed
//! apply resumed, concurrent applies, saved plans, safety rails, confirmation.

use crate::support;

#[cfg(unix)]
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{users, Emulator, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn project(emu: &Emulator, extra: &str) -> Project {
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_project(NAMES, extra);
    p
}

/// Waits (bounded) until the server has answered `n` set batches, so a test interrupts an
/// apply that is really under way however loaded the machine is.
fn wait_for_set_batches(emu: &Emulator, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while emu
        .running()
        .stats()
        .requests
        .get("im_set_attr")
        .copied()
        .unwrap_or(0)
        < n
    {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn converges_exactly_under_thirty_percent_faults() {
    let emu = Emulator::start(Duration::ZERO, 0.3);
    let p = project(&emu, "");
    let want = users(1_000, "");
    p.write_users_map("a.yaml", &want);
    // A name the tool does not manage survives.
    emu.running().set_user_attr("user00001", "lang", "fr");
    let run = p.run(&["apply", "--auto-approve"]).expect(0);
    assert!(run.stderr().contains("Apply complete"), "{}", run.stderr());
    emu.running().set_fault_rate(0.0);
    let mut live = emu.attrs();
    assert_eq!(
        live.get_mut("user00001").unwrap().remove("lang").as_deref(),
        Some("fr")
    );
    assert_eq!(live, want);
    assert_eq!(support::store_claims(&p), want);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn batches_follow_the_designed_order_and_sizes() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu, "");
    p.write_users_map("a.yaml", &users(250, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let stats = emu.running().stats();
    let count = |c: &str| stats.requests.get(c).copied().unwrap_or(0);
    assert_eq!(count("im_get_attr_name"), 1);
    assert_eq!(count("im_set_attr_name"), 1);
    assert_eq!(count("im_set_attr"), 3);
    // Drop one name from 10 users, remove 5 users: set nothing new, remove in one batch.
    let mut next = users(245, "");
    for (_, attrs) in next.iter_mut().take(10) {
        attrs.remove("tier");
    }
    p.write_users_map("a.yaml", &next);
    p.run(&["apply", "--auto-approve"]).expect(0);
    let stats = emu.running().stats();
    let count = |c: &str| stats.requests.get(c).copied().unwrap_or(0);
    assert_eq!(count("im_set_attr"), 3);
    assert_eq!(count("im_remove_attr"), 1);
    assert_eq!(
        count("im_get_attr_name"),
        1,
        "slots are known after the first apply"
    );
    assert_eq!(emu.attrs(), next);
}

#[test]
fn killed_apply_leaves_only_confirmed_claims_and_resumes() {
    let emu = Emulator::start(Duration::from_millis(20), 0.0);
    // 5 requests per second: 40 batches take about 8 s, time enough to kill mid-way.
    let p = project(&emu, "apply:\n  rate_limit: 5\n  concurrency: 4\n");
    let want = users(4_000, "");
    p.write_users_map("a.yaml", &want);
    let mut child = p.spawn(&["apply", "--auto-approve"]);
    wait_for_set_batches(&emu, 5);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sent_before = emu
        .running()
        .stats()
        .requests
        .get("im_set_attr")
        .copied()
        .unwrap_or(0);
    assert!(
        sent_before > 0 && sent_before < 40,
        "{sent_before} set batches before the kill"
    );
    support::assert_claims_confirmed(&p, &emu);
    let claimed = support::store_claims(&p).len() as u64;
    assert!(claimed <= sent_before * 100);

    // The next run sends only what is left, plus at most the batches that were in flight.
    p.write_project(NAMES, "apply:\n  rate_limit: 100\n");
    p.run(&["apply", "--auto-approve"]).expect(0);
    let sent_after = emu
        .running()
        .stats()
        .requests
        .get("im_set_attr")
        .copied()
        .unwrap();
    let resent = sent_after - sent_before;
    let left = 40 - claimed.div_ceil(100);
    assert!(
        resent <= left + 4,
        "resent {resent} batches, {left} were left"
    );
    assert_eq!(emu.attrs(), want);
    assert_eq!(support::store_claims(&p), want);
}

#[test]
fn a_second_apply_is_refused_at_once_while_the_first_runs() {
    let emu = Emulator::start(Duration::from_millis(20), 0.0);
    let p = project(&emu, "apply:\n  rate_limit: 2\n  concurrency: 1\n");
    p.write_users_map("a.yaml", &users(2_000, ""));
    let mut first = p.spawn(&["apply", "--auto-approve"]);
    // Wait until the first one holds the store (it has sent something).
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.running().stats().total_requests() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let second = p.run(&["apply", "--auto-approve"]).expect(1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once"
    );
    assert!(
        second
            .stderr()
            .contains("is locked by `timattr apply` on host "),
        "{}",
        second.stderr()
    );
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn saved_plan_applies_exactly_and_goes_stale() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu, "");
    let v1 = users(50, "");
    p.write_users_map("a.yaml", &v1);
    p.run(&["plan", "--out", "v1.plan"]).expect(0);
    // The files change after review: the plan is no longer what they give (DESIGN.md §4), so
    // it is refused with nothing sent; with the files as reviewed, it applies.
    p.write_users_map("a.yaml", &users(50, "-later"));
    let err = p.run(&["apply", "v1.plan"]).expect(1).stderr();
    assert!(
        err.contains(r#"user00000: after.city is "city0", the files say "city0-later""#),
        "{err}"
    );
    assert_eq!(emu.running().stats().total_requests(), 0);
    p.write_users_map("a.yaml", &v1);
    p.run(&["apply", "v1.plan"]).expect(0);
    assert_eq!(emu.attrs(), v1);
    // Applying the same plan again: the state moved on.
    let stale = p.run(&["apply", "v1.plan"]).expect(1);
    let err = stale.stderr();
    assert!(err.contains("saved plan is stale"), "{err}");
    assert!(
        err.contains("serial 0") && err.contains("serial 1"),
        "{err}"
    );

    // A plan made now, then another apply happens first: stale again.
    p.write_users_map("a.yaml", &users(50, "-later"));
    p.run(&["plan", "--out", "v2.plan"]).expect(0);
    p.run(&["apply", "--auto-approve"]).expect(0);
    let err = p.run(&["apply", "v2.plan"]).expect(1).stderr();
    assert!(
        err.contains("saved plan is stale") && err.contains("serial 2"),
        "{err}"
    );
}

#[test]
fn mass_removal_needs_the_flag() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu, "");
    p.write_users_map("a.yaml", &users(40, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    // An emptied users file would wipe every managed user.
    p.write_users("a.yaml", "users: {}\n");
    // Reviewers see it in the plan already.
    let warned = p.run(&["plan"]).expect(0).stderr();
    assert!(
        warned.contains("warning") && warned.contains("--allow-mass-removal"),
        "{warned}"
    );
    let before = emu.running().stats().total_requests();
    let err = p.run(&["apply", "--auto-approve"]).expect(1).stderr();
    assert!(err.contains("--allow-mass-removal"), "{err}");
    assert_eq!(
        emu.running().stats().total_requests(),
        before,
        "nothing sent"
    );
    assert_eq!(emu.attrs().len(), 40);
    // 4 of 40 is exactly 10%: allowed.
    p.write_users_map("a.yaml", &users(36, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    p.write_users("a.yaml", "users: {}\n");
    p.run(&["apply", "--auto-approve", "--allow-mass-removal"])
        .expect(0);
    assert!(emu.attrs().is_empty());
    assert!(support::store_claims(&p).is_empty());
}

#[test]
fn refuses_without_a_terminal_or_approval_and_dry_run_sends_nothing() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu, "");
    p.write_users_map("a.yaml", &users(150, ""));
    let err = p.run(&["apply"]).expect(1).stderr();
    assert!(err.contains("--auto-approve"), "{err}");
    let dry = p.run(&["apply", "--dry-run"]).expect(0);
    let out = dry.stdout();
    assert!(out.contains("im_set_attr"), "{out}");
    assert!(
        out.contains("100 accounts") && out.contains(" 50 accounts"),
        "{out}"
    );
    assert_eq!(emu.running().stats().total_requests(), 0);
    assert!(!p.state_dir().exists(), "a dry run writes nothing");
}

#[test]
fn fatal_errors_name_the_code_and_record_nothing_unconfirmed() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    // Not the app's admin: 90009 from the first request.
    std::fs::write(
        p.path().join("timattr.yaml"),
        std::fs::read_to_string(p.path().join("timattr.yaml"))
            .unwrap()
            .replace("admin: administrator", "admin: someone"),
    )
    .unwrap();
    p.write_users_map("a.yaml", &users(10, ""));
    let err = p.run(&["apply", "--auto-approve"]).expect(1).stderr();
    assert!(err.contains("90009"), "{err}");
    assert!(!err.contains(support::KEY), "the key never shows");
    assert!(!err.contains("usersig="), "no URL query in errors: {err}");
    // A wrong key: 70009, config problem.
    let p = project(&emu, "");
    p.write_users_map("a.yaml", &users(10, ""));
    let out = p
        .cmd(&["apply", "--auto-approve", "-vvv"])
        .env(support::SECRET_ENV, "not-the-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("70009"), "{err}");
    assert!(!err.contains("not-the-key"), "the key never shows: {err}");
    assert!(support::store_claims(&p).is_empty());
}

#[test]
#[cfg(unix)] // sends a signal with kill(1)
fn ctrl_c_finishes_in_flight_records_and_exits_130() {
    let emu = Emulator::start(Duration::from_millis(20), 0.0);
    let p = project(&emu, "apply:\n  rate_limit: 5\n  concurrency: 2\n");
    let want = users(3_000, "");
    p.write_users_map("a.yaml", &want);
    let child = p
        .cmd(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_set_batches(&emu, 3);
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Everything confirmed was recorded: claims equal what the server got.
    let claims = support::store_claims(&p);
    assert!(!claims.is_empty() && claims.len() < want.len());
    assert_eq!(claims, emu.attrs());
    let history = p.run(&["state", "history"]).expect(0).stdout();
    assert!(history.contains("interrupted"), "{history}");
}

#[test]
fn a_store_of_another_app_or_host_is_refused() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu, "");
    p.write_users_map("a.yaml", &users(5, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let project_file = p.path().join("timattr.yaml");
    let text = std::fs::read_to_string(&project_file).unwrap();
    std::fs::write(&project_file, text.replace("1400000000", "1400000001")).unwrap();
    let before = emu.running().stats().total_requests();
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let err = p.run(args).expect(1).stderr();
        assert!(
            err.contains("belongs to sdkappid 1400000000") && err.contains("1400000001"),
            "{err}"
        );
    }
    assert_eq!(
        emu.running().stats().total_requests(),
        before,
        "nothing sent"
    );
}

#[test]
fn a_missing_secret_is_named_before_anything_happens() {
    let emu = Emulator::start(Duration::ZERO, 0.0);
    let p = project(&emu, "");
    p.write_users_map("a.yaml", &users(5, ""));
    let out = p
        .cmd(&["apply", "--auto-approve"])
        .env_remove(support::SECRET_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(support::SECRET_ENV), "{err}");
    assert!(!p.state_dir().exists());
    assert_eq!(emu.running().stats().total_requests(), 0);
}

#[test]
fn embedded_endpoint_survives_kill_9_with_claims_confirmed() {
    let p = Project::new("embedded", NAMES);
    p.write_project(NAMES, "apply:\n  rate_limit: 5\n");
    let want = users(2_000, "");
    p.write_users_map("a.yaml", &want);
    let mut child = p.spawn(&["apply", "--auto-approve"]);
    // Wait until the server has answered about half of the 20 batches (its journal grows by
    // ~5 KB a batch, 5 batches a second): on a loaded machine the first few answers can come
    // before the first record is flushed, and the test needs some claims to check.
    let journal = p.state_dir().join("embedded-emulator.json.journal");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !journal.metadata().is_ok_and(|m| m.len() > 50_000) {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let claims = support::store_claims(&p);
    assert!(
        !claims.is_empty() && claims.len() < want.len(),
        "{} claims",
        claims.len()
    );
    // The embedded server replays its journal: every claim is confirmed, so no drift.
    p.run(&["drift"]).expect(0);
    p.write_project(NAMES, "");
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(support::store_claims(&p), want);
    p.run(&["drift"]).expect(0);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

/// A proxy in front of the emulator that logs, per request, `sent COMMAND` when it arrives and
/// `answered COMMAND` just before the answer goes back: a request log in the order the tool
/// saw things. Only the command is logged (never the query, which carries the usersig).
struct RequestLog {
    /// Serves the proxy until the test ends.
    _runtime: tokio::runtime::Runtime,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RequestLog {
    fn start(upstream: String) -> RequestLog {
        use axum::extract::{Path, RawQuery, State};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let state = (upstream, reqwest::Client::new(), log.clone());
        type Shared = (
            String,
            reqwest::Client,
            std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        );
        async fn forward(
            State((upstream, client, log)): State<Shared>,
            Path(path): Path<String>,
            RawQuery(query): RawQuery,
            body: axum::body::Bytes,
        ) -> (axum::http::StatusCode, axum::body::Bytes) {
            let command = path.rsplit('/').next().unwrap_or("").to_owned();
            log.lock().unwrap().push(format!("sent {command}"));
            let url = format!("{upstream}/{path}?{}", query.unwrap_or_default());
            let answer = client.post(url).body(body).send().await.unwrap();
            let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let bytes = answer.bytes().await.unwrap();
            log.lock().unwrap().push(format!("answered {command}"));
            (status, bytes)
        }
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(forward))
            .with_state(state);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await });
        RequestLog {
            _runtime: runtime,
            url,
            log,
        }
    }

    fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[test]
fn every_set_batch_is_answered_before_the_first_remove_is_sent() {
    // Slow answers and room for all batches at once: only the phase order keeps removes back.
    let emu = Emulator::start(Duration::from_millis(100), 0.0);
    let proxy = RequestLog::start(emu.base_url());
    let p = Project::new(&proxy.url, NAMES);
    p.write_project(NAMES, "apply:\n  concurrency: 16\n");
    let mut want = users(1_000, "");
    p.write_users_map("a.yaml", &want);
    p.run(&["apply", "--auto-approve"]).expect(0);
    // 500 users get a new city (5 set batches), 500 others lose `tier` (5 remove batches).
    for (i, attrs) in want.values_mut().enumerate() {
        if i < 500 {
            attrs.insert("city".into(), "elsewhere".into());
        } else {
            attrs.remove("tier");
        }
    }
    p.write_users_map("a.yaml", &want);
    let first = proxy.entries().len();
    let run = p
        .run(&["apply", "--auto-approve", "--allow-mass-removal"])
        .expect(0);
    assert_eq!(emu.attrs(), want, "{}", run.stderr());
    let log = proxy.entries()[first..].to_vec();
    let count = |e: &str| log.iter().filter(|l| *l == e).count();
    assert_eq!(count("sent im_set_attr"), 5, "{log:?}");
    assert_eq!(count("sent im_remove_attr"), 5, "{log:?}");
    let last_set_answer = log
        .iter()
        .rposition(|l| l == "answered im_set_attr")
        .unwrap();
    let first_remove = log.iter().position(|l| l == "sent im_remove_attr").unwrap();
    assert!(
        last_set_answer < first_remove,
        "a remove batch was sent before every set batch was answered: {log:?}"
    );
}

/// The number in "at most N confirmed batches awaiting their record" of apply's final line.
fn max_unrecorded(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("Apply "))
        .unwrap_or_else(|| panic!("no final apply line: {stderr}"));
    let (_, after) = line.split_once("at most ").expect(line);
    after.split(' ').next().unwrap().parse().expect(line)
}

#[test]
fn confirmed_but_unrecorded_batches_stay_within_concurrency() {
    let emu = Emulator::start(Duration::from_millis(5), 0.0);
    let p = project(&emu, "apply:\n  concurrency: 4\n");
    p.write_users_map("a.yaml", &users(3_000, ""));
    let run = p.run(&["apply", "--auto-approve", "-v"]).expect(0);
    let most = max_unrecorded(&run.stderr());
    assert!((1..=4).contains(&most), "{}", run.stderr());
    assert_eq!(emu.attrs(), users(3_000, ""));
}

#[test]
#[cfg(unix)] // sends a signal with kill(1)
fn sigterm_finishes_in_flight_records_and_exits_143() {
    stopped_by_signal("-TERM", 143);
}

/// A closed terminal or SSH session: like SIGTERM, exit 129 (DESIGN.md §8).
#[test]
fn sighup_finishes_in_flight_records_and_exits_129() {
    stopped_by_signal("-HUP", 129);
}

fn stopped_by_signal(signal: &str, code: i32) {
    let emu = Emulator::start(Duration::from_millis(20), 0.0);
    let p = project(&emu, "apply:\n  rate_limit: 5\n  concurrency: 2\n");
    let want = users(3_000, "");
    p.write_users_map("a.yaml", &want);
    let child = p
        .cmd(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_set_batches(&emu, 3);
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(
        err.contains("Apply interrupted"),
        "the summary is written: {err}"
    );
    // Everything confirmed was recorded: claims equal what the server got.
    let claims = support::store_claims(&p);
    assert!(!claims.is_empty() && claims.len() < want.len());
    assert_eq!(claims, emu.attrs());
    let history = p.run(&["state", "history"]).expect(0).stdout();
    assert!(history.contains("interrupted"), "{history}");
    // The next apply finishes the job.
    p.write_project(NAMES, "");
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert_eq!(emu.attrs(), want);
}
