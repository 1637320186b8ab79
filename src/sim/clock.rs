//! The simulator's clock: sim time = base + real time elapsed since the base × speed.
//!
//! Every part of the simulator (bars, order times, fills, the `/v2/clock` endpoint) reads time
//! from here, so `speed` applies to all of them consistently.
//!
//! Invariants:
//! - Sim time never goes backwards: changing the speed re-bases at the current sim time, and
//!   `advance` only adds.
//! - Sim time has microsecond resolution (what Alpaca's order timestamps carry in practice).
//! - The lock is held only for arithmetic, never across an `.await`; a std `Mutex` is enough.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};

use super::lock;

/// RFC 3339 in UTC with microseconds and a `Z`, as Alpaca stamps orders and trades.
pub fn rfc3339_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Maps real time to sim time.
pub struct SimClock {
    /// Re-based on every speed change, so the mapping stays continuous.
    inner: Mutex<Base>,
}

#[derive(Clone, Copy)]
struct Base {
    /// Sim time at `real`.
    sim: DateTime<Utc>,
    /// Real instant at which sim time was `sim`.
    real: Instant,
    /// Sim seconds per real second; 0 freezes time.
    speed: f64,
}

impl Base {
    fn now(&self) -> DateTime<Utc> {
        let real = self.real.elapsed().as_secs_f64() * self.speed;
        // Saturate far beyond any sensible run (about 292 000 years of micros).
        let micros = (real * 1e6).min(i64::MAX as f64 / 2.0) as i64;
        self.sim
            .checked_add_signed(TimeDelta::microseconds(micros))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl SimClock {
    /// A clock reading `start` now and running at `speed`.
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        Self {
            inner: Mutex::new(Base {
                sim: start,
                real: Instant::now(),
                speed,
            }),
        }
    }

    /// The wall clock floored to the minute: the default start.
    pub fn default_start() -> DateTime<Utc> {
        let now = Utc::now();
        now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now)
    }

    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.inner).now()
    }

    pub fn speed(&self) -> f64 {
        lock(&self.inner).speed
    }

    /// Changes the speed from now on; sim time continues from where it is.
    pub fn set_speed(&self, speed: f64) {
        let mut base = lock(&self.inner);
        let now = base.now();
        *base = Base {
            sim: now,
            real: Instant::now(),
            speed,
        };
    }

    /// Moves sim time forward by `by` at once (tests and drills use this instead of sleeping).
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut base = lock(&self.inner);
        let delta = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        base.sim = base
            .sim
            .checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        base.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_by_advance() {
        let start = DateTime::parse_from_rfc3339("2024-01-02T15:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let clock = SimClock::new(start, 0.0);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + TimeDelta::seconds(90));
    }

    #[test]
    fn speed_change_keeps_time_continuous() {
        let start = Utc::now();
        let clock = SimClock::new(start, 1000.0);
        let before = clock.now();
        clock.set_speed(0.0);
        let after = clock.now();
        assert!(after >= before);
        assert_eq!(clock.now(), after);
        assert_eq!(clock.speed(), 0.0);
    }

    #[test]
    fn default_start_is_floored_to_the_minute() {
        let t = SimClock::default_start();
        assert_eq!(t.timestamp() % 60, 0);
        assert_eq!(t.timestamp_subsec_nanos(), 0);
    }
}
