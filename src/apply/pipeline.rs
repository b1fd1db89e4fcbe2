//! The scheduler under every run of requests: starts jobs in order, at most `concurrency` at
//! once, and hands the answered ones over in groups.
//!
//! The jobs are a queue that the hand-over may grow: a refused batch can come back as smaller
//! batches (narrowing, see [`super`]), which are started like any other job.
//!
//! A job takes an in-flight slot of the [`Limiter`] before it is sent and gives it back once
//! its answer has been handed over: answered-but-not-handed-over jobs never number more than
//! `concurrency`, and a hand-over gets every answer that is waiting at that moment (group
//! commit). What the hand-over keeps afterwards (for batches: records the store has not
//! confirmed yet) it bounds itself, and says how much it keeps, so that the most answers not
//! yet done with is measured whole.

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
    /// Most answers not yet done with at any moment: waiting for their hand-over, or handed
    /// over and still kept (see [`Taken::kept`]).
    pub max_waiting: usize,
}

/// What a hand-over did with a group of answers.
pub struct Taken {
    /// `false` stops the starting of new jobs.
    pub go_on: bool,
    /// Answers handed over so far that the taker is not done with yet (for batches: those
    /// whose record the store has not confirmed). Only ever lower until the next hand-over.
    pub kept: usize,
}

/// Starts `jobs` in order, each as its own task built by `send`; hands the answers to `done`
/// in completion order, all that are waiting at once, with the queue of jobs still to start,
/// to which `done` may add, and whether nothing else is under way or queued (the last group,
/// unless `done` queues more). The answers' in-flight slots are freed once `done` returns.
/// Stops starting jobs when `done` says so or `interrupt` completes, and returns once every
/// started job has been handed over: nothing that was sent goes unreported. `kept`: answers
/// of an earlier run that the taker still keeps.
pub async fn run<J, T, Fut, S>(
    limiter: &Limiter,
    jobs: impl IntoIterator<Item = J>,
    kept: usize,
    send: impl Fn(J) -> Fut,
    mut done: impl FnMut(Vec<T>, &mut VecDeque<J>, bool) -> Taken,
    mut interrupt: Pin<&mut impl Future<Output = S>>,
) -> Ended<S>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut queue: VecDeque<J> = jobs.into_iter().collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(T, OwnedSemaphorePermit)>();
    // Answered and not handed over; handed over and kept (as of the last hand-over).
    let waiting = Arc::new(AtomicUsize::new(0));
    let kept = Arc::new(AtomicUsize::new(kept));
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
                let n = group.len();
                let (results, slots): (Vec<T>, Vec<OwnedSemaphorePermit>) =
                    group.into_iter().unzip();
                let last = in_flight == 0 && (stop || queue.is_empty());
                // Counted as waiting until `done` returns, then as kept if it keeps them.
                let taken = done(results, &mut queue, last);
                drop(slots);
                kept.store(taken.kept, Ordering::SeqCst);
                let now = waiting.fetch_sub(n, Ordering::SeqCst) - n + taken.kept;
                max_waiting.fetch_max(now, Ordering::SeqCst);
                if !taken.go_on {
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
                let (waiting, kept, max_waiting) =
                    (waiting.clone(), kept.clone(), max_waiting.clone());
                tokio::spawn(async move {
                    let result = task.await;
                    // `kept` only falls between hand-overs: this is an upper bound.
                    let now = waiting.fetch_add(1, Ordering::SeqCst) + 1 + kept.load(Ordering::SeqCst);
                    max_waiting.fetch_max(now, Ordering::SeqCst);
                    let _ = tx.send((result, slot));
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
