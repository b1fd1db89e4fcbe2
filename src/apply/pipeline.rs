//! The scheduler under every run of requests: starts jobs in order, at most `concurrency` at
//! once, and hands the answered ones over in groups.
//!
//! A job takes an in-flight slot of the [`Limiter`] before it is sent and gives it back only
//! after its answer was handed over (for batches: recorded). So answered-but-not-handed-over
//! jobs never number more than `concurrency`, however slow the hand-over is, and a hand-over
//! gets every answer that is waiting at that moment (group commit).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use crate::limiter::Limiter;

/// How a [`run`] ended.
pub struct Ended<S> {
    /// Jobs never started.
    pub not_started: usize,
    /// What `interrupt` completed with, if it did.
    pub interrupted: Option<S>,
    /// Most jobs answered but not yet handed over at any moment (≤ `concurrency`).
    pub max_waiting: usize,
}

/// An answer and the in-flight slot it holds until it is handed over.
struct Answered<T> {
    result: T,
    slot: OwnedSemaphorePermit,
}

/// Starts `jobs` in order, each as its own task built by `send`; hands the answers to `done`
/// in completion order, all that are waiting at once. Stops starting jobs when `done` returns
/// `false` or `interrupt` completes, and returns once every started job has been handed over:
/// nothing that was sent goes unreported.
pub async fn run<J, T, Fut, S>(
    limiter: &Limiter,
    jobs: Vec<J>,
    send: impl Fn(J) -> Fut,
    mut done: impl FnMut(Vec<T>) -> bool,
    mut interrupt: Pin<&mut impl Future<Output = S>>,
) -> Ended<S>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let total = jobs.len();
    let mut jobs = jobs.into_iter();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Answered<T>>();
    let waiting = Arc::new(AtomicUsize::new(0));
    let max_waiting = Arc::new(AtomicUsize::new(0));
    let (mut started, mut in_flight) = (0, 0usize);
    let mut stop = false;
    let mut interrupted = None;
    while in_flight > 0 || (!stop && started < total) {
        tokio::select! {
            biased;
            Some(first) = rx.recv() => {
                let mut group = vec![first];
                while let Ok(more) = rx.try_recv() {
                    group.push(more);
                }
                in_flight -= group.len();
                let n = group.len();
                let (results, slots): (Vec<T>, Vec<OwnedSemaphorePermit>) =
                    group.into_iter().map(|a| (a.result, a.slot)).unzip();
                if !done(results) {
                    stop = true;
                }
                waiting.fetch_sub(n, Ordering::SeqCst);
                // Only now may further jobs take these slots.
                drop(slots);
            }
            s = &mut interrupt, if interrupted.is_none() => {
                interrupted = Some(s);
                stop = true;
            }
            slot = limiter.in_flight(), if !stop && started < total => {
                let job = jobs.next().expect("fewer jobs started than there are");
                started += 1;
                in_flight += 1;
                let task = send(job);
                let tx = tx.clone();
                let (waiting, max_waiting) = (waiting.clone(), max_waiting.clone());
                tokio::spawn(async move {
                    let result = task.await;
                    let now = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                    max_waiting.fetch_max(now, Ordering::SeqCst);
                    let _ = tx.send(Answered { result, slot });
                });
            }
        }
    }
    Ended {
        not_started: total - started,
        interrupted,
        max_waiting: max_waiting.load(Ordering::SeqCst),
    }
}
