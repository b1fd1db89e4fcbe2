//! Pacing and retrying, with no domain types.
//!
//! [`Limiter`] keeps one run under the API's limit, which the API counts per command ("100
//! calls/second per API"): at most `rate` sends of one command in any window of [`WINDOW`]
//! (one second plus a margin, because requests that leave exactly in time can arrive closer
//! together), and at most `concurrency` requests in flight in all. When the server says
//! "too frequent" the allowed rate drops by a quarter, then it recovers by half a request per
//! second for every success: a limit hit by arrival jitter at the edge of a window should cost
//! a few requests, not seconds.
//!
//! [`RetryPolicy`] gives exponential backoff with jitter, bounded in attempts and time, and
//! [`Limiter::call`] drives one request through pacing and retries. The error says how it may
//! be retried through the [`Failure`] trait, so this module knows no API types. Every retry is
//! logged at `warn` (shown at the default verbosity): a slow or failing server is never a
//! silent wait.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// The window the rate is counted over: one second plus a margin for arrival jitter.
pub const WINDOW: Duration = Duration::from_millis(1020);

/// Shared by every request of a run.
#[derive(Debug)]
pub struct Limiter {
    max_rate: u32,
    in_flight: Arc<Semaphore>,
    /// One window per command: a handful of commands per run, so a list beats a map.
    windows: Mutex<Vec<(&'static str, Window)>>,
}

#[derive(Debug)]
struct Window {
    sends: VecDeque<Instant>,
    /// The rate currently allowed (≤ `max_rate`), lowered by slow-down answers.
    rate: f64,
    last_slow_down: Option<Instant>,
}

impl Limiter {
    pub fn new(rate: u32, concurrency: usize) -> Arc<Limiter> {
        let rate = rate.max(1);
        Arc::new(Limiter {
            max_rate: rate,
            in_flight: Arc::new(Semaphore::new(concurrency.max(1))),
            windows: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on the window of `command`, made on its first use.
    async fn with_window<T>(&self, command: &'static str, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut windows = self.windows.lock().await;
        let i = match windows.iter().position(|(c, _)| *c == command) {
            Some(i) => i,
            None => {
                let window = Window {
                    sends: VecDeque::with_capacity(self.max_rate as usize + 1),
                    rate: f64::from(self.max_rate),
                    last_slow_down: None,
                };
                windows.push((command, window));
                windows.len() - 1
            }
        };
        f(&mut windows[i].1)
    }

    /// Waits for a free in-flight slot. Held for a request's whole life, retries included.
    pub async fn in_flight(&self) -> OwnedSemaphorePermit {
        self.in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Waits until one more send of `command` fits in its window, and counts it. Call right
    /// before each attempt (retries too).
    pub async fn send_slot(&self, command: &'static str) {
        loop {
            let wait = self.with_window(command, |w| {
                let now = Instant::now();
                while w
                    .sends
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    w.sends.pop_front();
                }
                let allowed = w.rate.floor().max(1.0) as usize;
                if w.sends.len() < allowed {
                    w.sends.push_back(now);
                    return None;
                }
                // The oldest send of the last `allowed` leaves the window first.
                let oldest = w.sends[w.sends.len() - allowed];
                Some(WINDOW.saturating_sub(now.duration_since(oldest)))
            });
            let Some(wait) = wait.await else { return };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// The server said "too frequent" to `command`: lower its allowed rate by a quarter (once
    /// per window at most).
    pub async fn slow_down(&self, command: &'static str) {
        self.with_window(command, |w| {
            let now = Instant::now();
            if w.last_slow_down
                .is_some_and(|t| now.duration_since(t) < WINDOW)
            {
                return;
            }
            w.last_slow_down = Some(now);
            w.rate = (w.rate * 0.75).max(1.0);
            tracing::info!(command, rate = w.rate, "server asked to slow down");
        })
        .await;
    }

    /// A request of `command` succeeded: recover towards the full rate.
    pub async fn success(&self, command: &'static str) {
        let max = f64::from(self.max_rate);
        self.with_window(command, |w| w.rate = (w.rate + 0.5).min(max))
            .await;
    }

    /// The rate currently allowed for `command`.
    pub async fn current_rate(&self, command: &'static str) -> f64 {
        self.with_window(command, |w| w.rate).await
    }
}

/// How a failed attempt may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retrying cannot help.
    Never,
    /// Transient: back off and send again, up to the policy's attempts.
    Backoff,
    /// Rate limited: lower the pace, back off and send again.
    SlowDown,
    /// Suspect (e.g. a garbled answer): only up to [`RetryPolicy::few_attempts`] in all.
    Few,
    /// Wait this long, then send once more (only once per call).
    OnceAfter(Duration),
}

/// A failed attempt, as the retry loop sees it.
pub trait Failure: fmt::Display {
    fn retry(&self) -> Retry;
    /// A wait the server asked for (e.g. `Retry-After`): the next attempt waits at least this.
    fn retry_after(&self) -> Option<Duration>;
    /// What was being done (the command), for the retry line.
    fn label(&self) -> &str;
    /// Why the attempt failed, in a few words, for the retry line.
    fn reason(&self) -> String;
    /// Records how many attempts were made, so the final error can say it.
    fn set_attempts(&mut self, attempts: u32);
}

/// Exponential backoff with full jitter, bounded in attempts and in total time.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// Attempts in all for a [`Retry::Few`] failure.
    pub few_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(120),
            few_attempts: 3,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_delay);
        // Full jitter keeps many retrying batches from arriving together again.
        let jitter = rand::random::<f64>();
        exp.mul_f64(0.5 + jitter / 2.0)
    }

    /// Whether another attempt may start after `attempts` attempts, `started` ago.
    pub fn may_retry(&self, attempts: u32, started: Instant) -> bool {
        attempts < self.max_attempts && started.elapsed() < self.max_elapsed
    }

    /// The wait before the next attempt after `attempts` attempts failed with `retry`, or
    /// `None` when the call should give up. A server-asked wait (`after`) is a lower bound.
    /// `waited_once` says whether a [`Retry::OnceAfter`] wait was already spent.
    pub fn next_wait(
        &self,
        retry: Retry,
        after: Option<Duration>,
        attempts: u32,
        started: Instant,
        waited_once: bool,
    ) -> Option<Duration> {
        let backoff = match retry {
            Retry::Never => return None,
            Retry::OnceAfter(wait) if !waited_once => return Some(wait),
            Retry::OnceAfter(_) => return None,
            Retry::Few if attempts >= self.few_attempts.min(self.max_attempts) => return None,
            Retry::Backoff | Retry::SlowDown | Retry::Few => self.backoff(attempts),
        };
        if !self.may_retry(attempts, started) {
            return None;
        }
        Some(after.map_or(backoff, |a| a.max(backoff)))
    }

    /// The attempts a call may make in all with `retry` (for the "attempt n/N" line).
    pub fn attempts_for(&self, retry: Retry) -> u32 {
        match retry {
            Retry::Never => 1,
            Retry::Few => self.few_attempts.min(self.max_attempts),
            Retry::OnceAfter(_) => 2,
            Retry::Backoff | Retry::SlowDown => self.max_attempts,
        }
    }
}

impl Limiter {
    /// Sends one request through the limiter (a send slot before every attempt), retrying
    /// what the error allows under `policy`. `requests` and `retries` count attempts and
    /// retries for the run's summary. The error returned knows how many attempts were made.
    pub async fn call<T, E, F, Fut>(
        &self,
        command: &'static str,
        policy: &RetryPolicy,
        requests: &AtomicU64,
        retries: &AtomicU64,
        mut send: F,
    ) -> Result<T, E>
    where
        E: Failure,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut waited_once = false;
        loop {
            self.send_slot(command).await;
            attempts += 1;
            requests.fetch_add(1, Ordering::Relaxed);
            let mut err = match send().await {
                Ok(v) => {
                    self.success(command).await;
                    return Ok(v);
                }
                Err(e) => e,
            };
            err.set_attempts(attempts);
            let retry = err.retry();
            let Some(wait) =
                policy.next_wait(retry, err.retry_after(), attempts, started, waited_once)
            else {
                return Err(err);
            };
            waited_once |= matches!(retry, Retry::OnceAfter(_));
            if retry == Retry::SlowDown {
                self.slow_down(command).await;
            }
            tracing::warn!(
                "{}: {} (attempt {attempts}/{}); retrying in {}",
                err.label(),
                err.reason(),
                policy.attempts_for(retry),
                seconds(wait)
            );
            retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }
}

/// `0.35 s`, `12 s`: a wait as a person reads it.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{} s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for retry in 1..20 {
            let d = p.backoff(retry);
            assert!(d <= p.max_delay, "{d:?}");
            assert!(d >= p.base / 2);
        }
        assert!(p.backoff(6) > p.backoff(1));
        assert!(!p.may_retry(8, Instant::now()));
    }

    #[test]
    fn next_wait_follows_the_class_and_the_server() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        assert_eq!(p.next_wait(Retry::Never, None, 1, now, false), None);
        let w = p.next_wait(Retry::Backoff, None, 1, now, false).unwrap();
        assert!(w <= p.base, "{w:?}");
        // Retry-After is a lower bound on the backoff.
        let asked = Duration::from_secs(7);
        assert_eq!(
            p.next_wait(Retry::SlowDown, Some(asked), 1, now, false),
            Some(asked)
        );
        assert_eq!(
            p.next_wait(Retry::Backoff, None, p.max_attempts, now, false),
            None
        );
        // Few: three attempts in all.
        assert!(p.next_wait(Retry::Few, None, 2, now, false).is_some());
        assert_eq!(p.next_wait(Retry::Few, None, 3, now, false), None);
        assert_eq!(p.attempts_for(Retry::Few), 3);
        let minute = Retry::OnceAfter(Duration::from_secs(60));
        assert_eq!(
            p.next_wait(minute, None, 1, now, false),
            Some(Duration::from_secs(60))
        );
        assert_eq!(p.next_wait(minute, None, 2, now, true), None);
        assert_eq!(seconds(Duration::from_millis(350)), "0.35 s");
        assert_eq!(seconds(Duration::from_secs(60)), "60 s");
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_rate_in_a_window() {
        let limiter = Limiter::new(10, 4);
        let start = tokio::time::Instant::now();
        let mut sends = Vec::new();
        for _ in 0..35 {
            limiter.send_slot("im_set_attr").await;
            sends.push(start.elapsed());
        }
        for (i, t) in sends.iter().enumerate() {
            let in_window = sends[i..].iter().filter(|u| **u - *t < WINDOW).count();
            assert!(
                in_window <= 10,
                "{in_window} sends within a window at {t:?}"
            );
        }
        // 35 sends at 10 per window need at least three full windows.
        assert!(*sends.last().unwrap() >= WINDOW * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn each_command_has_its_own_window_and_its_own_slow_down() {
        let limiter = Limiter::new(10, 4);
        let start = tokio::time::Instant::now();
        // The API counts per command: 10 of each fit in one window together.
        for _ in 0..10 {
            limiter.send_slot("im_get_attr_name").await;
            limiter.send_slot("im_set_attr").await;
        }
        assert!(start.elapsed() < Duration::from_millis(1));
        // The 11th of one command waits for its window; the other command's rate is its own.
        limiter.send_slot("im_set_attr").await;
        assert!(start.elapsed() >= WINDOW);
        limiter.slow_down("im_set_attr").await;
        assert_eq!(limiter.current_rate("im_set_attr").await, 7.5);
        assert_eq!(limiter.current_rate("im_get_attr_name").await, 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn slows_down_then_recovers() {
        let limiter = Limiter::new(100, 4);
        limiter.slow_down("c").await;
        assert_eq!(limiter.current_rate("c").await, 75.0);
        // A second answer within the same window does not lower it again.
        limiter.slow_down("c").await;
        assert_eq!(limiter.current_rate("c").await, 75.0);
        tokio::time::advance(WINDOW).await;
        limiter.slow_down("c").await;
        assert!(limiter.current_rate("c").await < 60.0);
        for _ in 0..200 {
            limiter.success("c").await;
        }
        assert_eq!(limiter.current_rate("c").await, 100.0);
    }
}
