//! The progress of an apply on stderr: a bar on a terminal, a line every few seconds
//! otherwise (CI logs), nothing with `--quiet`. Both name the phase being sent (set
//! attributes, add tags, remove attributes, remove tags) and count that phase's users, so
//! the numbers never mix an account's attribute and tag requests.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::Stats;
use crate::plan::{Batch, BatchKind};

/// Users to do and done per phase of an apply, in [`BatchKind::PHASES`] order.
#[derive(Debug, Default)]
pub struct Phases {
    totals: [u64; 4],
    done: [AtomicU64; 4],
}

impl Phases {
    /// The users each phase of `batches` sends to.
    pub fn of(batches: &[Batch]) -> Phases {
        let mut phases = Phases::default();
        for b in batches {
            phases.totals[index(b.kind)] += users(b);
        }
        phases
    }

    /// The users of `confirmed` batches, per phase, for [`Phases::add`] once recorded.
    pub fn count(confirmed: &[&Batch]) -> [u64; 4] {
        let mut n = [0; 4];
        for b in confirmed {
            n[index(b.kind)] += users(b);
        }
        n
    }

    /// Counts `users` (per phase, from [`Phases::count`]) as done.
    pub fn add(&self, users: &[u64; 4]) {
        for (done, n) in self.done.iter().zip(users) {
            done.fetch_add(*n, Ordering::Relaxed);
        }
    }

    fn total(&self) -> u64 {
        self.totals.iter().sum()
    }

    /// The phase under way: the first one not finished, else the last one that had work.
    fn current(&self) -> Option<Phase> {
        let busy: Vec<usize> = (0..4).filter(|&i| self.totals[i] > 0).collect();
        let at = busy
            .iter()
            .position(|&i| self.done[i].load(Ordering::Relaxed) < self.totals[i])
            .unwrap_or(busy.len().checked_sub(1)?);
        let i = busy[at];
        Some(Phase {
            label: label(BatchKind::PHASES[i]),
            number: at + 1,
            of: busy.len(),
            done: self.done[i].load(Ordering::Relaxed).min(self.totals[i]),
            total: self.totals[i],
        })
    }
}

fn index(kind: BatchKind) -> usize {
    BatchKind::PHASES
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is a phase")
}

/// The users a batch sends to: an account whose tags take several entries (runs of 10)
/// counts once, at its first run.
fn users(b: &Batch) -> u64 {
    if b.kind.is_tags() {
        b.parts.iter().filter(|p| **p == 0).count() as u64
    } else {
        b.changes.len() as u64
    }
}

fn label(kind: BatchKind) -> &'static str {
    match kind {
        BatchKind::SetAttr => "set attributes",
        BatchKind::AddTag => "add tags",
        BatchKind::RemoveAttr => "remove attributes",
        BatchKind::RemoveTag => "remove tags",
    }
}

/// One phase's progress, as displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Phase {
    label: &'static str,
    /// 1-based among the phases this apply has.
    number: usize,
    of: usize,
    done: u64,
    total: u64,
}

impl Phase {
    /// `set attributes` or, when the apply has several phases, `set attributes (1 of 2)`.
    fn name(&self) -> String {
        if self.of > 1 {
            format!("{} ({} of {})", self.label, self.number, self.of)
        } else {
            self.label.to_owned()
        }
    }

    /// The line written to a log every few seconds.
    fn line(&self, rates: &str) -> String {
        format!(
            "{}: {}/{} {}  {rates}",
            self.name(),
            self.done,
            self.total,
            if self.total == 1 { "user" } else { "users" }
        )
    }
}

/// A running progress display; [`Progress::finish`] removes it.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Shows the phase under way, its users done of its total, and the request rate of
    /// `stats` until finished. Must be called inside a tokio runtime.
    pub fn start(quiet: bool, phases: Arc<Phases>, stats: Arc<Stats>) -> Progress {
        if quiet || phases.total() == 0 {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {bar:30} {pos}/{len} users  {msg}  ETA {eta}",
                )
                .expect("template is valid"),
            );
            bar
        });
        let period = if terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let ticker = tokio::spawn(tick(bar.clone(), period, phases, stats));
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn tick(
    bar: Option<indicatif::ProgressBar>,
    period: Duration,
    phases: Arc<Phases>,
    stats: Arc<Stats>,
) {
    let started = Instant::now();
    let mut shown: Option<&'static str> = None;
    loop {
        tokio::time::sleep(period).await;
        let Some(phase) = phases.current() else {
            continue;
        };
        let secs = started.elapsed().as_secs_f64();
        let rate = stats.requests() as f64 / secs.max(1e-9);
        let msg = format!("{rate:.0} req/s  {} retries", stats.retries());
        match &bar {
            Some(bar) => {
                if shown != Some(phase.label) {
                    // A new phase: its own length, and an ETA not skewed by the last one.
                    shown = Some(phase.label);
                    bar.reset();
                    bar.set_length(phase.total);
                    bar.set_prefix(phase.name());
                }
                bar.set_position(phase.done);
                bar.set_message(msg);
            }
            None => crate::redact::eprintln(&phase.line(&msg)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(kind: BatchKind, n: usize, parts: &[u8]) -> Batch {
        let mut b = Batch::new(kind, (0..n).collect());
        if !parts.is_empty() {
            b.parts = parts.to_vec();
        }
        b
    }

    #[test]
    fn phases_count_their_own_users_and_name_themselves() {
        let batches = vec![
            batch(BatchKind::SetAttr, 100, &[]),
            batch(BatchKind::SetAttr, 20, &[]),
            // One account with 25 tags: three entries, one user.
            batch(BatchKind::AddTag, 3, &[0, 1, 2]),
        ];
        let phases = Phases::of(&batches);
        let p = phases.current().unwrap();
        assert_eq!(
            p.line("1 req/s"),
            "set attributes (1 of 2): 0/120 users  1 req/s"
        );
        phases.add(&Phases::count(&[&batches[0]]));
        assert_eq!(phases.current().unwrap().done, 100);
        phases.add(&Phases::count(&[&batches[1]]));
        let p = phases.current().unwrap();
        assert_eq!(p.line("x"), "add tags (2 of 2): 0/1 user  x");
        phases.add(&Phases::count(&[&batches[2]]));
        assert_eq!(
            phases.current().unwrap().line("x"),
            "add tags (2 of 2): 1/1 user  x"
        );
    }

    #[test]
    fn a_single_phase_is_named_without_a_number() {
        let batches = vec![batch(BatchKind::RemoveAttr, 3, &[])];
        let phases = Phases::of(&batches);
        assert_eq!(
            phases.current().unwrap().line("r"),
            "remove attributes: 0/3 users  r"
        );
        assert!(Phases::of(&[]).current().is_none());
    }
}
