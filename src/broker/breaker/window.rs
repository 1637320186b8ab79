//! The rolling window of a breaker: failure and call counts over the last `window`, in time
//! buckets, so that old outcomes fall out slice by slice instead of all at once.

use std::time::Duration;

use tokio::time::Instant;

use super::BreakerConfig;

/// Calls of one time slice; `index` is the slice number since the window's origin.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: u64,
    successes: u32,
    failures: u32,
}

/// A ring of time buckets: a slot is reused (and zeroed) when its slice number changes.
#[derive(Debug)]
pub(super) struct Window {
    origin: Instant,
    /// `window / buckets`, clamped above zero so that `slice` can divide by it.
    width: Duration,
    buckets: Vec<Bucket>,
}

impl Window {
    pub(super) fn new(config: &BreakerConfig, origin: Instant) -> Self {
        let n = config.buckets.max(1);
        let width = (config.window.get() / n).max(Duration::from_nanos(1));
        Self {
            origin,
            width,
            buckets: vec![Bucket::default(); n as usize],
        }
    }

    pub(super) fn slice(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.origin).as_nanos() / self.width.as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    pub(super) fn record(&mut self, now: Instant, failed: bool) {
        let index = self.slice(now);
        let len = self.buckets.len() as u64;
        let slot = &mut self.buckets[(index % len) as usize];
        if slot.index != index {
            *slot = Bucket {
                index,
                ..Bucket::default()
            };
        }
        if failed {
            slot.failures = slot.failures.saturating_add(1);
        } else {
            slot.successes = slot.successes.saturating_add(1);
        }
    }

    /// (calls, failures) of the slices still inside the window.
    pub(super) fn totals(&self, now: Instant) -> (u32, u32) {
        let current = self.slice(now);
        let len = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|b| b.index <= current && current - b.index < len)
            .fold((0u32, 0u32), |(calls, failures), b| {
                (
                    calls.saturating_add(b.successes).saturating_add(b.failures),
                    failures.saturating_add(b.failures),
                )
            })
    }

    pub(super) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
    }
}

pub(super) fn rate(calls: u32, failures: u32) -> f64 {
    if calls == 0 {
        0.0
    } else {
        f64::from(failures) / f64::from(calls)
    }
}
