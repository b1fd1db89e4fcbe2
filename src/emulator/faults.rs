//! Latency and injected faults, adjustable while the emulator runs: before each answer it
//! waits the latency, and with probability `fault_rate` answers 91000, 60007 or HTTP 502
//! instead of handling the request (applying nothing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fault {
    /// FAIL 91000, internal error.
    Internal,
    /// FAIL 60007, frequency limit.
    Throttle,
    /// HTTP 502 from a "gateway".
    BadGateway,
}

/// The knobs, shared by every request (atomics: tests turn them while requests run).
pub(crate) struct Faults {
    latency_us: AtomicU64,
    rate_bits: AtomicU64,
}

impl Faults {
    pub(crate) fn new(latency: Duration, rate: f64) -> Faults {
        Faults {
            latency_us: AtomicU64::new(micros(latency)),
            rate_bits: AtomicU64::new(rate.to_bits()),
        }
    }

    pub(crate) fn set_latency(&self, d: Duration) {
        self.latency_us.store(micros(d), Ordering::Relaxed);
    }

    pub(crate) fn set_rate(&self, p: f64) {
        self.rate_bits.store(p.to_bits(), Ordering::Relaxed);
    }

    /// Waits the configured latency.
    pub(crate) async fn delay(&self) {
        let us = self.latency_us.load(Ordering::Relaxed);
        if us > 0 {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
    }

    /// Draws whether this request fails, and how.
    pub(crate) fn draw(&self) -> Option<Fault> {
        let p = f64::from_bits(self.rate_bits.load(Ordering::Relaxed));
        if p <= 0.0 || rand::random::<f64>() >= p {
            return None;
        }
        Some(match rand::random::<u8>() % 3 {
            0 => Fault::Internal,
            1 => Fault::Throttle,
            _ => Fault::BadGateway,
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_zero_never_and_one_always_faults() {
        let f = Faults::new(Duration::ZERO, 0.0);
        assert!((0..1000).all(|_| f.draw().is_none()));
        f.set_rate(1.0);
        let drawn: std::collections::HashSet<_> = (0..1000).filter_map(|_| f.draw()).collect();
        assert_eq!(drawn.len(), 3);
    }
}
