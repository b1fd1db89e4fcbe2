//! The emulator's rate windows: arrivals per command in a sliding second, the service's
//! limit of 100 admitted requests per command per second (60007 beyond it), and the traffic
//! statistics tests read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Stats;

/// Arrivals of one command in the last second.
#[derive(Default)]
struct Window {
    requests: u64,
    /// Every arrival (for the max-per-second statistic).
    arrivals: VecDeque<Instant>,
    /// Arrivals that were let through (what the limit counts).
    admitted: VecDeque<Instant>,
    max: u32,
}

fn expire(q: &mut VecDeque<Instant>, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        q.pop_front();
    }
}

/// Traffic seen so far, per command.
#[derive(Default)]
pub(crate) struct Traffic {
    windows: HashMap<&'static str, Window>,
    throttled: u64,
    faults: u64,
    replaced: u64,
}

impl Traffic {
    /// Counts an arrival and keeps the busiest-second statistic.
    pub(crate) fn arrive(&mut self, cmd: &'static str) {
        let now = Instant::now();
        let w = self.windows.entry(cmd).or_default();
        w.requests += 1;
        expire(&mut w.arrivals, now);
        w.arrivals.push_back(now);
        w.max = w
            .max
            .max(u32::try_from(w.arrivals.len()).unwrap_or(u32::MAX));
    }

    /// The rate limit: at most `limit` admitted requests per command in any sliding second.
    /// Refused requests do not count, so a client that slows down gets through again.
    pub(crate) fn admit(&mut self, cmd: &'static str, limit: u32) -> bool {
        let now = Instant::now();
        let w = self.windows.entry(cmd).or_default();
        expire(&mut w.admitted, now);
        if w.admitted.len() >= limit as usize {
            self.throttled += 1;
            return false;
        }
        w.admitted.push_back(now);
        true
    }

    /// Counts an injected fault (`throttle`: it was a 60007).
    pub(crate) fn fault(&mut self, throttle: bool) {
        self.faults += 1;
        if throttle {
            self.throttled += 1;
        }
    }

    /// Counts a timpush `add_tag` applied with `Replace: 1`.
    pub(crate) fn replaced(&mut self) {
        self.replaced += 1;
    }

    pub(crate) fn stats(&self) -> Stats {
        let requests: BTreeMap<String, u64> = self
            .windows
            .iter()
            .map(|(c, w)| (c.to_string(), w.requests))
            .collect();
        let max_per_second: BTreeMap<String, u32> = self
            .windows
            .iter()
            .map(|(c, w)| (c.to_string(), w.max))
            .collect();
        Stats {
            requests,
            throttled: self.throttled,
            faults: self.faults,
            max_per_second,
            replace_requests: self.replaced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_requests_do_not_count_against_the_limit() {
        let mut t = Traffic::default();
        for _ in 0..3 {
            t.arrive("im_set_attr");
            assert!(t.admit("im_set_attr", 3));
        }
        t.arrive("im_set_attr");
        assert!(!t.admit("im_set_attr", 3));
        // Another command has its own window.
        assert!(t.admit("im_get_attr", 3));
        let s = t.stats();
        assert_eq!(s.requests["im_set_attr"], 4);
        assert_eq!(s.max_per_second["im_set_attr"], 4);
        assert_eq!(s.throttled, 1);
    }
}
