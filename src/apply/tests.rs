//! The engine's order and recording rules, with a scripted server (no network): what is sent,
//! answered and recorded is logged and checked against DESIGN.md §3.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::api::codes::code;
use crate::api::ApiErrorKind;
use crate::model::{Attrs, Desired, Managed, Names, Tags};

/// 700 accounts to add (7 set batches) and 500 leaving (5 remove batches).
fn plan() -> Plan {
    let names = Names::new(&["a".into(), "b".into()]);
    let attrs = |n: u8, v: &str| -> Attrs { [(n, v.into())].into_iter().collect() };
    let desired = Desired {
        names: names.clone(),
        accounts: (0..700)
            .map(|i| (format!("u{i:03}").into(), attrs(0, "x").into()))
            .collect(),
    };
    let last = (0..500)
        .map(|i| (format!("r{i:03}").into(), attrs(1, "y").into()))
        .collect();
    let slots = [(0, "a".into()), (1, "b".into())].into();
    crate::plan::diff(desired, last, names, &slots).unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Sent(BatchKind),
    Answered(BatchKind),
    Recorded(Vec<BatchKind>),
}

type Log = Arc<Mutex<Vec<Event>>>;

/// Logs every group it records; optionally slow, like a disk flush.
struct LogSink {
    log: Log,
    answered: Arc<AtomicUsize>,
    recorded: Arc<AtomicUsize>,
    most_waiting: usize,
    slow: Option<Duration>,
}

impl Sink for LogSink {
    fn record(&mut self, _plan: &Plan, confirmed: &[&Batch], _ends: Ends) -> crate::Result<()> {
        // Counted independently of the engine: answered by the server, not yet recorded.
        let waiting = self.answered.load(Ordering::SeqCst) - self.recorded.load(Ordering::SeqCst);
        self.most_waiting = self.most_waiting.max(waiting);
        if let Some(d) = self.slow {
            std::thread::sleep(d);
        }
        self.recorded.fetch_add(confirmed.len(), Ordering::SeqCst);
        let kinds = confirmed.iter().map(|b| b.kind).collect();
        self.log.lock().unwrap().push(Event::Recorded(kinds));
        Ok(())
    }
}

fn sink(log: &Log, counts: &Counts, slow: Option<Duration>) -> LogSink {
    LogSink {
        log: log.clone(),
        answered: counts.answered.clone(),
        recorded: counts.recorded.clone(),
        most_waiting: 0,
        slow,
    }
}

/// Batches answered and recorded so far, and the most sent-but-unrecorded seen at a send.
#[derive(Default, Clone)]
struct Counts {
    answered: Arc<AtomicUsize>,
    recorded: Arc<AtomicUsize>,
    most_outstanding: Arc<AtomicUsize>,
}

/// A scripted server: answers each batch after a delay that varies from batch to batch;
/// `fail` answers the n-th batch with a fatal error.
fn server(
    log: &Log,
    counts: &Counts,
    fail: Option<usize>,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send>> {
    let (log, counts) = (log.clone(), counts.clone());
    let sent = Arc::new(AtomicUsize::new(0));
    move |request: Request| {
        let kind = match request {
            Request::Set(_) => BatchKind::SetAttr,
            Request::Remove(_) => BatchKind::RemoveAttr,
            Request::AddTag(_) => BatchKind::AddTag,
            Request::RemoveTag(_) => BatchKind::RemoveTag,
        };
        let n = sent.fetch_add(1, Ordering::SeqCst);
        // In flight or answered, but not recorded: what a kill -9 now would make resend.
        let outstanding = n + 1 - counts.recorded.load(Ordering::SeqCst);
        counts
            .most_outstanding
            .fetch_max(outstanding, Ordering::SeqCst);
        log.lock().unwrap().push(Event::Sent(kind));
        let (log, answered) = (log.clone(), counts.answered.clone());
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1 + (n as u64 * 7) % 5)).await;
            log.lock().unwrap().push(Event::Answered(kind));
            answered.fetch_add(1, Ordering::SeqCst);
            if fail == Some(n) {
                return Err(ApiError::new(kind.command(), ApiErrorKind::Http(400)));
            }
            Ok(())
        })
    }
}

fn recorded_kinds(log: &[Event]) -> Vec<BatchKind> {
    log.iter()
        .filter_map(|e| match e {
            Event::Recorded(k) => Some(k.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test(start_paused = true)]
async fn every_set_batch_is_answered_and_recorded_before_the_first_remove_is_sent() {
    let (log, counts) = (Log::default(), Counts::default());
    let plan = Arc::new(plan());
    let batches = Arc::new(plan.batches());
    let limiter = Limiter::new(100, 4);
    let mut sink = sink(&log, &counts, None);
    let never = std::future::pending::<Signal>();
    let report = run_with(
        &limiter,
        plan,
        batches,
        &mut sink,
        never,
        server(&log, &counts, None),
    )
    .await;
    assert_eq!((report.batches_ok, report.batches_not_sent), (12, 0));
    let log = log.lock().unwrap();
    let first_remove = log
        .iter()
        .position(|e| *e == Event::Sent(BatchKind::RemoveAttr))
        .expect("removes are sent");
    let sets_recorded = recorded_kinds(&log[..first_remove])
        .iter()
        .filter(|k| **k == BatchKind::SetAttr)
        .count();
    assert_eq!(sets_recorded, 7, "{log:?}");
    assert_eq!(recorded_kinds(&log).len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_batches_awaiting_their_record_never_exceed_concurrency() {
    let (log, counts) = (Log::default(), Counts::default());
    let plan = Arc::new(plan());
    let batches = Arc::new(plan.batches());
    let concurrency = 3;
    let limiter = Limiter::new(100, concurrency);
    // Recording is much slower than answering: answers pile up unless sends wait for records.
    let mut sink = sink(&log, &counts, Some(Duration::from_millis(15)));
    let never = std::future::pending::<Signal>();
    let report = run_with(
        &limiter,
        plan,
        batches,
        &mut sink,
        never,
        server(&log, &counts, None),
    )
    .await;
    assert_eq!(report.batches_ok, 12);
    assert!(
        sink.most_waiting <= concurrency,
        "{} batches answered but unrecorded",
        sink.most_waiting
    );
    assert!(report.max_unrecorded >= 1 && report.max_unrecorded <= concurrency);
    // Stronger: sent but unrecorded (in flight or awaiting the record) never exceeds it either.
    let outstanding = counts.most_outstanding.load(Ordering::SeqCst);
    assert!(
        outstanding <= concurrency,
        "{outstanding} sent but unrecorded"
    );
    let log = log.lock().unwrap();
    // Group commit: with slow records, several confirmed batches are recorded together.
    assert!(
        log.iter()
            .any(|e| matches!(e, Event::Recorded(k) if k.len() > 1)),
        "{log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_set_batch_stops_the_run_before_any_remove() {
    let (log, counts) = (Log::default(), Counts::default());
    let plan = Arc::new(plan());
    let batches = Arc::new(plan.batches());
    let limiter = Limiter::new(100, 2);
    let mut sink = sink(&log, &counts, None);
    let never = std::future::pending::<Signal>();
    let report = run_with(
        &limiter,
        plan,
        batches,
        &mut sink,
        never,
        server(&log, &counts, Some(2)),
    )
    .await;
    assert!(report.fatal.is_some());
    assert_eq!(report.batches_failed, 1);
    let log = log.lock().unwrap();
    assert!(
        !log.contains(&Event::Sent(BatchKind::RemoveAttr)),
        "{log:?}"
    );
    // Everything else that was answered OK is recorded; the rest is counted as not sent.
    let sent = log.iter().filter(|e| matches!(e, Event::Sent(_))).count();
    assert_eq!(recorded_kinds(&log).len(), sent - 1);
    assert_eq!(report.batches_not_sent, 12 - sent);
}

#[tokio::test(start_paused = true)]
async fn a_signal_stops_sending_and_what_was_in_flight_is_recorded() {
    let (log, counts) = (Log::default(), Counts::default());
    let plan = Arc::new(plan());
    let batches = Arc::new(plan.batches());
    let limiter = Limiter::new(100, 2);
    let mut sink = sink(&log, &counts, None);
    let term = async {
        tokio::time::sleep(Duration::from_millis(6)).await;
        Signal::Terminate
    };
    let report = run_with(
        &limiter,
        plan,
        batches,
        &mut sink,
        term,
        server(&log, &counts, None),
    )
    .await;
    assert_eq!(report.interrupted, Some(Signal::Terminate));
    let log = log.lock().unwrap();
    let sent = log.iter().filter(|e| matches!(e, Event::Sent(_))).count();
    assert!(sent > 0 && sent < 12, "{sent} sent");
    assert_eq!(recorded_kinds(&log).len(), sent, "{log:?}");
    assert_eq!(report.batches_not_sent, 12 - sent);
}

// Narrowing: a tag request refused whole for one account's tags.

/// Desired tags per account (`u000`..): `n` accounts with 3 tags each, `big` of them with 25;
/// last-applied holds `leaving` accounts with two tags each, which the plan removes.
fn tag_plan(n: usize, big: &[usize], leaving: usize) -> Plan {
    let names = Names::new(&["a".into()]);
    let tags = |count: usize| -> Tags { (0..count).map(|t| format!("t{t:02}")).collect() };
    let desired = Desired {
        names: names.clone(),
        accounts: (0..n)
            .map(|i| {
                let count = if big.contains(&i) { 25 } else { 3 };
                (
                    format!("u{i:03}").into(),
                    Managed::new(Attrs::default(), tags(count)),
                )
            })
            .collect(),
    };
    let last = (0..leaving)
        .map(|i| {
            (
                format!("r{i:03}").into(),
                Managed::new(Attrs::default(), tags(2)),
            )
        })
        .collect();
    crate::plan::diff(desired, last, names, &[(0, "a".into())].into()).unwrap()
}

/// Every entry the sink recorded: (kind, account, tags).
type Entries = Arc<Mutex<Vec<(BatchKind, String, Vec<String>)>>>;

struct EntrySink(Entries);

impl Sink for EntrySink {
    fn record(&mut self, plan: &Plan, confirmed: &[&Batch], _ends: Ends) -> crate::Result<()> {
        let mut entries = self.0.lock().unwrap();
        for batch in confirmed {
            for (k, &i) in batch.changes.iter().enumerate() {
                let tags = batch.tags(plan, k).iter().map(|t| t.to_string()).collect();
                entries.push((batch.kind, plan.changes[i].account.to_string(), tags));
            }
        }
        Ok(())
    }
}

/// The requests a scripted tag server received: (kind, accounts).
type Requests = Arc<Mutex<Vec<(BatchKind, Vec<String>)>>>;

/// A server that refuses, with `code`, any tag request holding an entry for one of `refuse`,
/// like the API does for an account that would pass 100 tags; anything else is OK.
fn refusing_server(
    requests: &Requests,
    refuse: &'static [&'static str],
    code: i64,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send>> {
    let requests = requests.clone();
    move |request: Request| {
        let (kind, users) = match &request {
            Request::AddTag(u) => (BatchKind::AddTag, u),
            Request::RemoveTag(u) => (BatchKind::RemoveTag, u),
            other => panic!("no attribute request expected: {other:?}"),
        };
        let accounts: Vec<String> = users.iter().map(|u| u.to_account.clone()).collect();
        assert!(users.iter().all(|u| u.tags.len() <= 10), "{users:?}");
        let refused = accounts.iter().any(|a| refuse.contains(&a.as_str()));
        requests.lock().unwrap().push((kind, accounts));
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if refused {
                return Err(ApiError::new(
                    kind.command(),
                    ApiErrorKind::Code {
                        code,
                        info: "too many tags".into(),
                    },
                ));
            }
            Ok(())
        })
    }
}

async fn run_tags(
    plan: Plan,
    concurrency: usize,
    refuse: &'static [&'static str],
    code: i64,
) -> (Report, Vec<(BatchKind, String, Vec<String>)>, Requests) {
    let plan = Arc::new(plan);
    let batches = Arc::new(plan.batches());
    let limiter = Limiter::new(1000, concurrency);
    let (entries, requests) = (Entries::default(), Requests::default());
    let mut sink = EntrySink(entries.clone());
    let never = std::future::pending::<Signal>();
    let server = refusing_server(&requests, refuse, code);
    let report = run_with(&limiter, plan, batches, &mut sink, never, server).await;
    let entries = entries.lock().unwrap().clone();
    (report, entries, requests)
}

fn refused_accounts(report: &Report) -> Vec<&str> {
    report.refused.iter().map(|r| &*r.account).collect()
}

#[tokio::test(start_paused = true)]
async fn a_refused_tag_batch_is_narrowed_to_the_account_and_the_rest_is_recorded() {
    // 100 accounts: one add batch; u042 is refused (90032).
    let (report, entries, requests) =
        run_tags(tag_plan(100, &[], 3), 4, &["u042"], code::TOO_MANY_TAGS).await;
    assert_eq!(refused_accounts(&report), ["u042"]);
    assert_eq!(
        report.refused[0].tags,
        ["t00".into(), "t01".into(), "t02".into()]
    );
    assert_eq!(report.refused[0].error.code(), Some(code::TOO_MANY_TAGS));
    assert!(report.fatal.is_none() && report.interrupted.is_none());
    assert_eq!((report.batches_failed, report.batches_not_sent), (1, 0));
    // The 99 others are recorded exactly once each, with their tags; u042 never.
    let added: Vec<&str> = entries
        .iter()
        .filter(|e| e.0 == BatchKind::AddTag)
        .map(|e| e.1.as_str())
        .collect();
    let mut unique = added.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!((added.len(), unique.len()), (99, 99));
    assert!(!added.contains(&"u042"));
    // Halving 100 down to one account: log2(100) rounds of two requests, and the refused
    // request each time; the tag removes (the next phase) still run.
    let requests = requests.lock().unwrap();
    let adds = requests.iter().filter(|r| r.0 == BatchKind::AddTag).count();
    assert!((8..=15).contains(&adds), "{adds} add requests");
    // 100 → 50 → 25 → 13 → 6 → 3 → 2 → u042 alone.
    assert_eq!(report.batches_narrowed, 7);
    // OK: the add requests neither narrowed nor refused, and the one remove batch.
    assert_eq!(report.batches_ok, (adds - 7 - 1) + 1);
    let removes: Vec<_> = entries
        .iter()
        .filter(|e| e.0 == BatchKind::RemoveTag)
        .collect();
    assert_eq!(removes.len(), 3, "{entries:?}");
    // Narrowed down to u042 alone.
    assert!(requests.iter().any(|r| r.1 == ["u042"]));
}

#[tokio::test(start_paused = true)]
async fn two_refused_accounts_in_one_batch_are_both_named() {
    let (report, entries, _) = run_tags(
        tag_plan(100, &[], 0),
        2,
        &["u003", "u097"],
        code::TAG_TOO_LONG,
    )
    .await;
    let mut refused = refused_accounts(&report);
    refused.sort_unstable();
    assert_eq!(refused, ["u003", "u097"]);
    assert_eq!(entries.len(), 98);
    assert!(report.fatal.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_account_in_consecutive_batches_is_refused_in_each_and_others_go_on() {
    // u005 has 25 tags: entries in 3 consecutive add batches, each refused for it.
    let (report, entries, _) =
        run_tags(tag_plan(150, &[5], 0), 3, &["u005"], code::TOO_MANY_TAGS).await;
    assert_eq!(refused_accounts(&report), ["u005", "u005", "u005"]);
    let parts: Vec<usize> = report.refused.iter().map(|r| r.tags.len()).collect();
    let mut sorted = parts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [5, 10, 10]);
    assert_eq!(entries.len(), 149);
}

#[tokio::test(start_paused = true)]
async fn other_codes_on_a_tag_batch_stay_fatal() {
    let (report, entries, requests) =
        run_tags(tag_plan(100, &[], 3), 2, &["u042"], code::JSON_PARSE).await;
    assert!(report.refused.is_empty());
    assert_eq!(
        report.fatal.as_ref().and_then(ApiError::code),
        Some(code::JSON_PARSE)
    );
    assert!(entries.is_empty(), "{entries:?}");
    // Stopped: the tag removes were never sent.
    assert_eq!(requests.lock().unwrap().len(), 1);
    assert_eq!(report.batches_not_sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowed_halves_keep_confirmed_unrecorded_within_concurrency() {
    let (log, counts) = (Log::default(), Counts::default());
    let plan = Arc::new(tag_plan(700, &[], 0));
    let batches = Arc::new(plan.batches());
    let concurrency = 3;
    let limiter = Limiter::new(1000, concurrency);
    let mut sink = sink(&log, &counts, Some(Duration::from_millis(5)));
    let requests = Requests::default();
    let refusing = refusing_server(&requests, &["u150", "u420"], code::TOO_MANY_TAGS);
    // Confirmed answers, counted independently of the engine (the sink compares them with
    // what it has recorded).
    let answered = counts.answered.clone();
    let send = move |request: Request| {
        let (answer, answered) = (refusing(request), answered.clone());
        async move {
            let a = answer.await;
            if a.is_ok() {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            a
        }
    };
    let never = std::future::pending::<Signal>();
    let report = run_with(&limiter, plan, batches, &mut sink, never, send).await;
    assert_eq!(report.refused.len(), 2);
    assert!(sink.most_waiting <= concurrency, "{}", sink.most_waiting);
    assert!(report.max_unrecorded <= concurrency);
    // Group commit still happens, and the halves' records are there.
    let log = log.lock().unwrap();
    assert_eq!(recorded_kinds(&log).len(), report.batches_ok);
    // u150 is the 51st of its batch (6 halvings), u420 the 21st of its own (7).
    assert_eq!(report.batches_narrowed, 13);
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_narrowing_leaves_the_queued_halves_unsent() {
    let plan = Arc::new(tag_plan(100, &[], 3));
    let batches = Arc::new(plan.batches());
    let limiter = Limiter::new(1000, 4);
    let (entries, requests) = (Entries::default(), Requests::default());
    let mut sink = EntrySink(entries.clone());
    // Each answer takes 2 ms: the refusal of 100 at 2 ms, of [0, 50) at 4 ms.
    let term = async {
        tokio::time::sleep(Duration::from_millis(3)).await;
        Signal::Terminate
    };
    let server = refusing_server(&requests, &["u042"], code::TOO_MANY_TAGS);
    let report = run_with(&limiter, plan, batches, &mut sink, term, server).await;
    assert_eq!(report.interrupted, Some(Signal::Terminate));
    assert!(report.refused.is_empty());
    // The halves in flight finished: [50, 100) recorded, [0, 50) refused and its halves queued
    // but never sent, like the tag removes.
    assert_eq!(entries.lock().unwrap().len(), 50);
    assert_eq!(report.batches_narrowed, 2);
    assert_eq!(report.batches_not_sent, 2 + 1);
    assert_eq!(requests.lock().unwrap().len(), 3);
}

/// Records each group later, like a distant database: a thread of its own makes it durable
/// after `after`, then drops the group's slots; the run's last group is kept until the end.
struct DistantSink {
    recorded: Arc<AtomicUsize>,
    after: Duration,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Sink for DistantSink {
    fn record(&mut self, _plan: &Plan, _confirmed: &[&Batch], _ends: Ends) -> crate::Result<()> {
        unreachable!("the engine hands the slots over")
    }

    fn record_holding(
        &mut self,
        _plan: &Plan,
        confirmed: &[&Batch],
        _ends: Ends,
        slots: Vec<Slot>,
    ) -> crate::Result<()> {
        let (recorded, after, n) = (self.recorded.clone(), self.after, confirmed.len());
        self.threads.push(std::thread::spawn(move || {
            std::thread::sleep(after);
            recorded.fetch_add(n, Ordering::SeqCst);
            drop(slots);
        }));
        Ok(())
    }
}

/// DESIGN.md §3 with a sink that records after it returned: a batch's slot is held until its
/// record is durable, so confirmed-but-unrecorded batches (answers not yet handed over
/// included) never number more than `concurrency`, and the report says so truthfully.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_recording_later_keeps_confirmed_but_unrecorded_within_concurrency() {
    let (log, counts) = (Log::default(), Counts::default());
    let plan = Arc::new(plan());
    let batches = Arc::new(plan.batches());
    let concurrency = 3;
    let limiter = Limiter::new(1000, concurrency);
    let mut sink = DistantSink {
        recorded: counts.recorded.clone(),
        after: Duration::from_millis(10),
        threads: Vec::new(),
    };
    let never = std::future::pending::<Signal>();
    let report = run_with(
        &limiter,
        plan,
        batches,
        &mut sink,
        never,
        server(&log, &counts, None),
    )
    .await;
    assert_eq!(report.batches_ok, 12);
    // Counted independently of the engine, at every send: sent (so in flight, answered, or
    // handed over) and not durable yet.
    let outstanding = counts.most_outstanding.load(Ordering::SeqCst);
    assert!(
        outstanding <= concurrency,
        "{outstanding} sent but unrecorded"
    );
    assert!(
        report.max_unrecorded >= 1 && report.max_unrecorded <= concurrency,
        "{}",
        report.max_unrecorded
    );
    for t in sink.threads {
        t.join().unwrap();
    }
    assert_eq!(counts.recorded.load(Ordering::SeqCst), 12);
}
