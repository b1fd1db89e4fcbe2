//! The progress of an apply on stderr: a bar on a terminal, a line every few seconds
//! otherwise (CI logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::Stats;

/// A running progress display; [`Progress::finish`] removes it.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Shows `done` of `total` users and the request rate of `stats` until finished. Must be
    /// called inside a tokio runtime.
    pub fn start(quiet: bool, total: u64, done: Arc<AtomicU64>, stats: Arc<Stats>) -> Progress {
        if quiet || total == 0 {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} users  {msg}  ETA {eta}",
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
        let ticker = tokio::spawn(tick(bar.clone(), period, total, done, stats));
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
    total: u64,
    done: Arc<AtomicU64>,
    stats: Arc<Stats>,
) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let n = done.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let rate = stats.requests() as f64 / secs.max(1e-9);
        let msg = format!("{rate:.0} req/s  {} retries", stats.retries());
        match &bar {
            Some(bar) => {
                bar.set_position(n);
                bar.set_message(msg);
            }
            None => crate::redact::eprintln(&format!("applied {n}/{total} users  {msg}")),
        }
    }
}
