//! The engine's order and recording rules, with a scripted server (no network): what is sent,
//! answered and recorded is logged and checked against DESIGN.md §3.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::api::ApiErrorKind;
use crate::model::{Attrs, Desired, Names};

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
    fn record(&mut self, _plan: &Plan, confirmed: &[&Batch]) -> crate::Result<()> {
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
