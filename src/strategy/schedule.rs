//! When an instance ticks: on the multiples of its `every` in venue time, `broker.bar_settle`
//! after each one, so a schedule as long as its bars decides as soon as each bar is final
//! instead of up to a whole period later at whatever phase the process happened to start.
//!
//! Invariants:
//! - Boundaries are multiples of `every` since the Unix epoch in venue time: for every bar
//!   length Alpaca serves up to an hour those are the bars' own boundaries (New York's offset
//!   from UTC is whole hours).
//! - A tick falls `settle` plus a slack after its boundary, never before: herd's own rule for a
//!   final bar (`end + settle <= now`) must already hold when the instance asks for its view, or
//!   it would decide on the previous bar for a whole period.
//! - Venue time is extrapolated from one reading of the venue's clock and its speed (1 against
//!   Alpaca; the accelerated simulator's own), so the schedule follows an accelerated clock too.
//!   Alpaca stamps its clock to the nanosecond (`2022-04-28T14:07:04.451420928-04:00` in its API
//!   reference), so what limits the reading is the network: see [`NETWORK_SLACK`].

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use crate::broker::VenueSpeed;

/// Real time added after a bar becomes final against a simulator on this machine: the
/// broker's venue clock and the schedule's are two extrapolations of the same clock, read over
/// loopback, and differ by a few milliseconds at most.
pub const LOCAL_SLACK: Duration = Duration::from_millis(20);

/// The same against a venue across a network: each clock reading is stamped somewhere within
/// its request's round trip, so two readings can disagree by about one round trip (tens of
/// milliseconds to Alpaca, more on a bad day). Ticking 250 ms late costs nothing: the bar has
/// been final for `bar_settle` (15 s) already.
pub const NETWORK_SLACK: Duration = Duration::from_millis(250);

/// The venue's clock as read once: `venue` at the real instant `real`.
#[derive(Debug, Clone, Copy)]
pub struct VenueAnchor {
    pub venue: DateTime<Utc>,
    pub real: Instant,
}

/// An instance's schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Venue time between ticks (the configured `every`).
    pub every: Duration,
    /// Venue time after a boundary until the bar that ends there is final.
    pub settle: Duration,
    pub speed: VenueSpeed,
    pub anchor: VenueAnchor,
    /// Real time added after each due instant ([`LOCAL_SLACK`] or [`NETWORK_SLACK`]).
    pub slack: Duration,
}

impl Schedule {
    /// Real time between ticks.
    pub fn period(&self) -> Duration {
        self.speed.to_real(self.every)
    }

    /// Real time from `now` until the next tick is due.
    pub fn until_next(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.anchor.real);
        let venue_elapsed = elapsed.mul_f64(self.speed.0.max(0.0));
        let venue_now = TimeDelta::from_std(venue_elapsed)
            .ok()
            .and_then(|d| self.anchor.venue.checked_add_signed(d))
            .unwrap_or(self.anchor.venue);
        self.speed
            .to_real(venue_until_next(venue_now, self.every, self.settle))
            + self.slack
    }
}

/// Venue time from `now` until the next instant that lies `settle` after a multiple of `every`
/// (strictly after `now`: a tick never falls due twice for one boundary).
pub fn venue_until_next(now: DateTime<Utc>, every: Duration, settle: Duration) -> Duration {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(0);
    let since = now.timestamp_millis() - settle_ms;
    let next = (since.div_euclid(every_ms) + 1) * every_ms;
    Duration::from_millis(u64::try_from(next - since).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, s).unwrap()
    }

    #[test]
    fn ticks_fall_settle_after_each_multiple_of_every() {
        let (five, settle) = (Duration::from_secs(300), Duration::from_secs(15));
        // 15:02:30: the 15:00 bar is final at 15:05:15.
        assert_eq!(
            venue_until_next(at(15, 2, 30), five, settle),
            Duration::from_secs(165)
        );
        // 15:00:10: the 14:55 bar becomes final in 5 s.
        assert_eq!(
            venue_until_next(at(15, 0, 10), five, settle),
            Duration::from_secs(5)
        );
        // Exactly at 15:00:15 the next is a whole period away, never zero.
        assert_eq!(venue_until_next(at(15, 0, 15), five, settle), five);
        // An hour's schedule follows the hours.
        assert_eq!(
            venue_until_next(at(15, 40, 0), Duration::from_secs(3600), settle),
            Duration::from_secs(20 * 60 + 15)
        );
        // A settle longer than the schedule still lands on settle after a boundary.
        let one = Duration::from_secs(1);
        assert_eq!(venue_until_next(at(15, 0, 0), one, settle), one);
    }

    #[test]
    fn an_accelerated_clock_is_followed_in_real_time() {
        let real = Instant::now();
        let schedule = Schedule {
            every: Duration::from_secs(300),
            settle: Duration::from_secs(15),
            speed: VenueSpeed(300.0),
            anchor: VenueAnchor {
                venue: at(15, 2, 30),
                real,
            },
            slack: LOCAL_SLACK,
        };
        assert_eq!(schedule.period(), Duration::from_secs(1));
        // 165 venue seconds to 15:05:15 are 0.55 s at 300×.
        assert_eq!(
            schedule.until_next(real),
            Duration::from_millis(550) + LOCAL_SLACK
        );
        // Half a real second later the venue reads 15:05:00: 15 venue seconds, 50 ms, are left.
        assert_eq!(
            schedule.until_next(real + Duration::from_millis(500)),
            Duration::from_millis(50) + LOCAL_SLACK
        );
    }
}
