//! A condition that repeats (ticks skipped, orders refused, a position the account no longer
//! holds): logged when it starts, then summarized at most once per period instead of once per
//! occurrence. Callers count every occurrence in a metric; the log says what happened.
//!
//! Invariant: every occurrence is in exactly one report — the start of its episode, or the
//! count of a summary — except the last ones of an episode that ends, which are reported with
//! the start of the next episode (`earlier`) rather than lost.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often herd summarizes a repeating condition in its log.
pub const REPEAT_SUMMARY: Duration = Duration::from_secs(60);

/// What the caller logs for one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// The first occurrence after a quiet period: log it in full. `earlier` occurrences of the
    /// previous episode were not reported yet.
    Started { earlier: u64 },
    /// The period has passed: log one line for `count` occurrences (this one included) over
    /// `over`.
    Summary { count: u64, over: Duration },
    /// Counted, not logged.
    Quiet,
}

#[derive(Debug, Default)]
struct State {
    /// Start of the current reporting window; `None` before the first occurrence.
    window: Option<Instant>,
    /// Occurrences in the window not reported yet.
    unreported: u64,
    last: Option<Instant>,
}

#[derive(Debug)]
pub struct Repeats {
    period: Duration,
    state: Mutex<State>,
}

impl Repeats {
    /// `period`: the most often a summary is logged, and the quiet time that ends an episode.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            state: Mutex::default(),
        }
    }

    /// Records one occurrence now.
    pub fn note(&self) -> Say {
        self.note_at(Instant::now())
    }

    fn note_at(&self, now: Instant) -> Say {
        // A panic cannot leave the counters half-updated (plain assignments): keep using them.
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let quiet = s
            .last
            .is_none_or(|last| now.duration_since(last) >= self.period);
        s.last = Some(now);
        match s.window {
            Some(start) if !quiet && now.duration_since(start) >= self.period => {
                let count = s.unreported + 1;
                s.window = Some(now);
                s.unreported = 0;
                Say::Summary {
                    count,
                    over: now.duration_since(start),
                }
            }
            Some(_) if !quiet => {
                s.unreported += 1;
                Say::Quiet
            }
            _ => {
                let earlier = std::mem::take(&mut s.unreported);
                s.window = Some(now);
                Say::Started { earlier }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_is_two_lines_a_period_and_every_occurrence_is_reported_once() {
        let r = Repeats::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(r.note_at(t0), Say::Started { earlier: 0 });
        // 1,000 occurrences within the first minute: silent.
        for i in 1..=1000 {
            assert_eq!(r.note_at(t0 + Duration::from_millis(50 * i)), Say::Quiet);
        }
        // The first one past the minute reports all of them and itself.
        assert_eq!(
            r.note_at(t0 + Duration::from_millis(60_010)),
            Say::Summary {
                count: 1001,
                over: Duration::from_millis(60_010)
            }
        );
        assert_eq!(r.note_at(t0 + Duration::from_millis(60_020)), Say::Quiet);
        // Quiet for a period: a new episode, which reports the one left over.
        assert_eq!(
            r.note_at(t0 + Duration::from_secs(200)),
            Say::Started { earlier: 1 }
        );
    }
}
