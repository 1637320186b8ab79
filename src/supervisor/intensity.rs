//! Restart intensity (Erlang/OTP's MaxR within MaxT) and restart backoff.
//!
//! Invariant: at most `max_restarts` restarts happen within any `window`; the next crash in the
//! window leaves the child failed.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct RestartIntensity {
    max_restarts: u32,
    window: Duration,
    /// When the restarts still inside the window happened, oldest first.
    recent: VecDeque<Instant>,
}

impl RestartIntensity {
    pub fn new(max_restarts: u32, window: Duration) -> Self {
        Self {
            max_restarts,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a crash at `now`. `Some(n)`: restart, this is the n-th restart in the window.
    /// `None`: over the intensity, give up.
    pub fn on_crash(&mut self, now: Instant) -> Option<u32> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let n = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        (n <= self.max_restarts).then_some(n)
    }

    /// Forgets past crashes (an operator restarted the child).
    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

/// Delay before the n-th restart (n ≥ 1): `base · 2^(n−1)`, capped.
pub fn backoff(n: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1));
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_max_restarts_within_the_window() {
        let mut i = RestartIntensity::new(2, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(i.on_crash(t), Some(1));
        assert_eq!(i.on_crash(t + Duration::from_secs(1)), Some(2));
        assert_eq!(i.on_crash(t + Duration::from_secs(2)), None);
    }

    #[test]
    fn crashes_older_than_the_window_are_forgotten() {
        let mut i = RestartIntensity::new(1, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(i.on_crash(t), Some(1));
        assert_eq!(i.on_crash(t + Duration::from_secs(10)), Some(1));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(backoff(1, base, cap), Duration::from_millis(100));
        assert_eq!(backoff(2, base, cap), Duration::from_millis(200));
        assert_eq!(backoff(3, base, cap), Duration::from_millis(350));
        assert_eq!(backoff(60, base, cap), Duration::from_millis(350));
    }
}
