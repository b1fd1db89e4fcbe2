//! The scheduler under every run of requests: starts jobs in order, at most `concurrency` at
//! once, and hands the answered ones over in groups.
//!
//! The jobs are a queue that the hand-over may grow: a refused batch can come back as smaller
//! batches (narrowing, see [`super`]), which are started like any other job.
//!
//! A job takes an in-flight slot of the [`Limiter`] before it is sent and gives it back only
//! once whoever its answer was handed to is done with it (for batches: recorded durably, which
//! a distant database may answer after the hand-over returned). So answered-but-not-done-with
//! jobs never number more than `concurrency`, however slow the recording is, and a hand-over
//! gets every answer that is waiting at that moment (group commit).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use crate::limiter::Limiter;

/// How a [`run`] ended.
pub struct Ended<S> {
    /// Jobs never started (those queued by the hand-over included).
    pub not_started: usize,
    /// What `interrupt` completed with, if it did.
    pub interrupted: Option<S>,
    /// Most jobs answered and not yet done with at any moment (≤ `concurrency`): waiting for
    /// their hand-over, or handed over with their [`Slot`] still held.
    pub max_waiting: usize,
}

/// An answer and the in-flight slot it holds until it is done with.
struct Answered<T> {
    result: T,
    slot: Slot,
}

/// The in-flight slot of an answered job. Until it is dropped — by whoever the answer was
/// handed to, once done with it (for batches: once the store answered their record) — the job
/// counts as waiting and no further job can take the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    waiting: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Before the permit (a field) is released: the count never passes `concurrency`.
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts `jobs` in order, each as its own task built by `send`; hands the answers to `done`
/// in completion order, all that are waiting at once, with their in-flight slots (a slot
/// dropped frees it for the next job), the queue of jobs still to start, to which `done` may
/// add, and whether nothing else is under way or queued (the last group, unless `done` queues
/// more). Stops starting jobs when `done` returns `false` or `interrupt` completes, and
/// returns once every started job has been handed over: nothing that was sent goes unreported.
pub async fn run<J, T, Fut, S>(
    limiter: &Limiter,
    jobs: impl IntoIterator<Item = J>,
    send: impl Fn(J) -> Fut,
    mut done: impl FnMut(Vec<T>, Vec<Slot>, &mut VecDeque<J>, bool) -> bool,
    mut interrupt: Pin<&mut impl Future<Output = S>>,
) -> Ended<S>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut queue: VecDeque<J> = jobs.into_iter().collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Answered<T>>();
    // Answered, their slot not dropped yet.
    let waiting = Arc::new(AtomicUsize::new(0));
    let max_waiting = Arc::new(AtomicUsize::new(0));
    let mut in_flight = 0usize;
    let mut stop = false;
    let mut interrupted = None;
    while in_flight > 0 || (!stop && !queue.is_empty()) {
        tokio::select! {
            biased;
            Some(first) = rx.recv() => {
                let mut group = vec![first];
                while let Ok(more) = rx.try_recv() {
                    group.push(more);
                }
                in_flight -= group.len();
                let (results, slots): (Vec<T>, Vec<Slot>) =
                    group.into_iter().map(|a| (a.result, a.slot)).unzip();
                let last = in_flight == 0 && (stop || queue.is_empty());
                // `done` gets the slots too, and drops them once done with the answers.
                if !done(results, slots, &mut queue, last) {
                    stop = true;
                }
            }
            s = &mut interrupt, if interrupted.is_none() => {
                interrupted = Some(s);
                stop = true;
            }
            slot = limiter.in_flight(), if !stop && !queue.is_empty() => {
                let Some(job) = queue.pop_front() else { continue };
                in_flight += 1;
                let task = send(job);
                let tx = tx.clone();
                let (waiting, max_waiting) = (waiting.clone(), max_waiting.clone());
                tokio::spawn(async move {
                    let result = task.await;
                    let now = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                    max_waiting.fetch_max(now, Ordering::SeqCst);
                    let slot = Slot { _permit: slot, waiting };
                    let _ = tx.send(Answered { result, slot });
                });
            }
        }
    }
    Ended {
        not_started: queue.len(),
        interrupted,
        max_waiting: max_waiting.load(Ordering::SeqCst),
    }
}
