//! Per-key request quotas, as Alpaca enforces them: a fixed one-minute window per API key,
//! trading and market data counted apart, reported on every response in `X-Ratelimit-Limit`,
//! `X-Ratelimit-Remaining` and `X-Ratelimit-Reset` (epoch seconds when the window ends).
//!
//! Invariants:
//! - The window is one *venue* minute (a minute of sim time; 0.6 s real at 100×), so an
//!   accelerated demo has the quota per venue minute that a real-time run would have; at speed 1
//!   it is Alpaca's real minute. A frozen clock (speed 0) never ends its window.
//! - Refused requests count too (so a client hammering through 429s stays throttled).
//! - Memory is bounded: expired windows are dropped once many keys are tracked.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which quota a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Trading,
    Data,
}

/// The outcome for one request, with the values for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds when the window resets.
    pub reset: u64,
}

const MINUTE: Duration = Duration::from_secs(60);
/// The longest window: a frozen or absurdly slow clock must not overflow `Instant` arithmetic.
const LONGEST_WINDOW: Duration = Duration::from_secs(86_400);

/// The real length of one venue minute at `speed` sim seconds per real second.
pub fn venue_minute(speed: f64) -> Duration {
    if !(speed.is_finite() && speed > 0.0) {
        return LONGEST_WINDOW;
    }
    Duration::try_from_secs_f64(MINUTE.as_secs_f64() / speed)
        .map_or(LONGEST_WINDOW, |d| d.min(LONGEST_WINDOW))
}
/// Past this many tracked windows, expired ones are swept.
const SWEEP_AT: usize = 4096;

struct Window {
    started: Instant,
    reset: u64,
    count: u32,
}

pub struct RateLimiter {
    /// Requests per window; 0 disables limiting.
    limit: u32,
    windows: HashMap<(String, Api), Window>,
}

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: HashMap::new(),
        }
    }

    /// Counts one request of `key` against `api` in windows of `window` (see [`venue_minute`]);
    /// None when limiting is off.
    pub fn check(
        &mut self,
        key: &str,
        api: Api,
        now: Instant,
        window: Duration,
    ) -> Option<Verdict> {
        if self.limit == 0 {
            return None;
        }
        if self.windows.len() >= SWEEP_AT {
            self.windows
                .retain(|_, w| now.duration_since(w.started) < window);
        }
        let epoch_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let w = self
            .windows
            .entry((key.to_string(), api))
            .or_insert(Window {
                started: now,
                reset: epoch_now + window.as_secs_f64().ceil() as u64,
                count: 0,
            });
        if now.duration_since(w.started) >= window {
            *w = Window {
                started: now,
                reset: epoch_now + window.as_secs_f64().ceil() as u64,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        Some(Verdict {
            allowed: w.count <= self.limit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(w.count),
            reset: w.reset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_per_key_and_api_with_remaining_counting_down() {
        let mut rl = RateLimiter::new(2);
        let t = Instant::now();
        let a = rl.check("k", Api::Trading, t, MINUTE).expect("on");
        assert!(a.allowed);
        assert_eq!(a.remaining, 1);
        assert!(rl.check("k", Api::Trading, t, MINUTE).expect("on").allowed);
        let c = rl.check("k", Api::Trading, t, MINUTE).expect("on");
        assert!(!c.allowed);
        assert_eq!(c.remaining, 0);
        // Other key and other API have their own quota.
        assert!(
            rl.check("other", Api::Trading, t, MINUTE)
                .expect("on")
                .allowed
        );
        assert!(rl.check("k", Api::Data, t, MINUTE).expect("on").allowed);
        // A new window starts after a minute.
        let later = t + Duration::from_secs(61);
        assert!(
            rl.check("k", Api::Trading, later, MINUTE)
                .expect("on")
                .allowed
        );
    }

    #[test]
    fn the_window_is_a_venue_minute() {
        assert_eq!(venue_minute(1.0), MINUTE);
        assert_eq!(venue_minute(100.0), Duration::from_millis(600));
        assert_eq!(venue_minute(0.0), LONGEST_WINDOW);
        assert_eq!(venue_minute(f64::NAN), LONGEST_WINDOW);
        let mut rl = RateLimiter::new(1);
        let t = Instant::now();
        let window = venue_minute(100.0);
        assert!(rl.check("k", Api::Data, t, window).expect("on").allowed);
        assert!(!rl.check("k", Api::Data, t, window).expect("on").allowed);
        // One venue minute later (0.6 s at 100×) the quota is back, as a minute later at 1×.
        let next = t + window;
        assert!(rl.check("k", Api::Data, next, window).expect("on").allowed);
    }

    #[test]
    fn zero_disables() {
        assert!(
            RateLimiter::new(0)
                .check("k", Api::Data, Instant::now(), MINUTE)
                .is_none()
        );
    }
}
