//! The venue's trading calendar, for keeping only the regular session's bars.
//!
//! Alpaca's intraday bars run from 04:00 to 20:00 New York time; an instance with
//! `session = "regular"` decides on the bars that start within its day's regular session, as
//! the venue's own calendar gives it (`GET /v2/calendar`: holidays absent, early closes at
//! 13:00). Asking the venue rather than assuming 09:30–16:00 also lets a venue that trades
//! around the clock (the embedded simulator's default) say so.
//!
//! Invariants: the calendar is read once per date range and kept (it does not change); a date
//! the venue does not list has no regular session, so none of its intraday bars pass.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::America::New_York;

use super::alpaca::models::CalendarDay;
use super::gateway::Gateway;
use super::retry::RetryError;

/// A day's regular session, as instants.
type Hours = (DateTime<Utc>, DateTime<Utc>);

/// The calendar read so far. Cheap to clone: shared by every broker incarnation.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<Known>>);

#[derive(Default)]
struct Known {
    /// Every date in `covered`: its regular session, or `None` when it does not trade.
    days: BTreeMap<NaiveDate, Option<Hours>>,
    covered: Option<(NaiveDate, NaiveDate)>,
}

impl Sessions {
    /// Reads the calendar from `from` to `to` unless it is already known.
    pub async fn ensure(
        &self,
        gateway: &Gateway,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(), RetryError> {
        let known = self
            .lock()
            .covered
            .is_some_and(|(a, b)| a <= from && to <= b);
        if known {
            return Ok(());
        }
        let days = gateway.calendar(from, to).await?;
        self.learn(from, to, &days);
        Ok(())
    }

    fn learn(&self, from: NaiveDate, to: NaiveDate, listed: &[CalendarDay]) {
        let mut known = self.lock();
        for day in from.iter_days().take_while(|d| *d <= to) {
            known.days.insert(day, None);
        }
        for d in listed {
            known.days.insert(d.date, hours(d));
        }
        known.covered = Some(match known.covered {
            Some((a, b)) => (a.min(from), b.max(to)),
            None => (from, to),
        });
    }

    /// Whether a bar starting at `start` lies in its day's regular session.
    pub fn is_regular(&self, start: DateTime<Utc>) -> bool {
        let date = start.with_timezone(&New_York).date_naive();
        matches!(self.lock().days.get(&date), Some(Some((open, close))) if *open <= start && start < *close)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A calendar day's session as instants; `None` when its times do not read as `HH:MM`, New York
/// local time (alpaca-py 0.44.0 reads them the same way: `Calendar.__init__` in
/// `alpaca/trading/models.py`, `"%Y-%m-%d %H:%M"` on the date and the time).
fn hours(day: &CalendarDay) -> Option<Hours> {
    let at = |text: &str| {
        let time = NaiveTime::parse_from_str(text, "%H:%M").ok()?;
        let local = New_York
            .from_local_datetime(&day.date.and_time(time))
            .earliest()?;
        Some(local.with_timezone(&Utc))
    };
    Some((at(&day.open)?, at(&day.close)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(date: &str, open: &str, close: &str) -> CalendarDay {
        CalendarDay {
            date: date.parse().unwrap(),
            open: open.into(),
            close: close.into(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn only_bars_starting_in_the_days_regular_session_pass() {
        let s = Sessions::default();
        // Friday 2026-11-27 closes early; Thursday the 26th is Thanksgiving (not listed).
        s.learn(
            "2026-11-25".parse().unwrap(),
            "2026-11-30".parse().unwrap(),
            &[
                day("2026-11-25", "09:30", "16:00"),
                day("2026-11-27", "09:30", "13:00"),
                day("2026-11-30", "09:30", "16:00"),
            ],
        );
        // New York is UTC-5 in November: 09:30 is 14:30Z.
        assert!(!s.is_regular(at("2026-11-25T14:25:00Z")), "pre-market");
        assert!(s.is_regular(at("2026-11-25T14:30:00Z")), "the open");
        assert!(s.is_regular(at("2026-11-25T20:55:00Z")), "the last bar");
        assert!(!s.is_regular(at("2026-11-25T21:00:00Z")), "post-market");
        assert!(!s.is_regular(at("2026-11-26T15:00:00Z")), "a holiday");
        assert!(
            !s.is_regular(at("2026-11-27T18:30:00Z")),
            "after an early close"
        );
        assert!(s.is_regular(at("2026-11-27T17:55:00Z")));
        assert!(!s.is_regular(at("2026-12-01T15:00:00Z")), "a date not read");
        assert!(s.is_regular(at("2026-11-30T15:00:00Z")));
    }

    #[test]
    fn a_venue_open_around_the_clock_passes_nearly_every_bar() {
        let s = Sessions::default();
        let d = "2026-03-02".parse().unwrap();
        s.learn(d, d, &[day("2026-03-02", "00:00", "23:59")]);
        assert!(s.is_regular(at("2026-03-02T05:00:00Z")));
        assert!(s.is_regular(at("2026-03-03T04:58:00Z")));
    }
}
