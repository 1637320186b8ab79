//! Market sessions: which New York dates trade, and when each session opens and closes.
//!
//! Two modes: `Always` (every calendar day is one session from New York midnight to the next
//! midnight, so the market never closes) and `Regular` (09:30–16:00 America/New_York, Monday to
//! Friday; exchange holidays are not modelled).
//!
//! Invariants:
//! - A "day" is a New York calendar date. Daily bars are stamped at New York midnight, as
//!   Alpaca stamps them (`T04:00:00Z` in summer, `T05:00:00Z` in winter).
//! - Sessions never overlap and are ordered by date; `close > open`.
//! - All conversions go through `chrono-tz`, so DST changes are handled by the tz database.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use serde::{Deserialize, Serialize};

/// When the simulated market trades. Parsed from text so that a wrong value is answered with the
/// allowed ones (the config crate's enum error names neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum MarketHours {
    /// Open around the clock, every day.
    Always,
    /// 09:30–16:00 New York time, weekdays.
    Regular,
}

impl std::str::FromStr for MarketHours {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "always" => Ok(Self::Always),
            "regular" => Ok(Self::Regular),
            _ => Err(format!(
                "{text:?} is not a market_hours; allowed: always, regular"
            )),
        }
    }
}

impl TryFrom<String> for MarketHours {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// One trading session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// New York date of the session.
    pub date: NaiveDate,
    pub open: DateTime<Utc>,
    pub close: DateTime<Utc>,
}

/// New York local time to UTC. Midnight, 09:30 and 16:00 exist on every date (DST switches at
/// 02:00), so `earliest()` always finds a time; the fallback only guards the impossible.
fn ny(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    match New_York.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => Utc.from_utc_datetime(&local),
    }
}

/// New York midnight starting `date`, in UTC.
pub fn ny_midnight(date: NaiveDate) -> DateTime<Utc> {
    ny(date, NaiveTime::MIN)
}

/// The New York date of an instant.
pub fn ny_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&New_York).date_naive()
}

/// Formats an instant in New York time with its offset, as Alpaca's clock does
/// (`2024-03-04T09:30:00-05:00`).
pub fn ny_rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&New_York)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

impl MarketHours {
    pub fn is_trading_day(self, date: NaiveDate) -> bool {
        match self {
            MarketHours::Always => true,
            MarketHours::Regular => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        }
    }

    /// The session of `date`, if that date trades.
    pub fn session(self, date: NaiveDate) -> Option<Session> {
        if !self.is_trading_day(date) {
            return None;
        }
        let (open, close) = match self {
            MarketHours::Always => (ny_midnight(date), ny_midnight(date.succ_opt()?)),
            MarketHours::Regular => (
                ny(date, NaiveTime::from_hms_opt(9, 30, 0)?),
                ny(date, NaiveTime::from_hms_opt(16, 0, 0)?),
            ),
        };
        Some(Session { date, open, close })
    }

    /// First trading day strictly after `date`.
    pub fn next_trading_day(self, date: NaiveDate) -> NaiveDate {
        let mut d = date + Duration::days(1);
        while !self.is_trading_day(d) {
            d += Duration::days(1);
        }
        d
    }

    /// Last trading day strictly before `date`.
    pub fn prev_trading_day(self, date: NaiveDate) -> NaiveDate {
        let mut d = date - Duration::days(1);
        while !self.is_trading_day(d) {
            d -= Duration::days(1);
        }
        d
    }

    /// Last trading day on or before `date`.
    pub fn trading_day_on_or_before(self, date: NaiveDate) -> NaiveDate {
        if self.is_trading_day(date) {
            date
        } else {
            self.prev_trading_day(date)
        }
    }

    /// The session containing `t` (open ≤ t < close), if the market is open at `t`.
    pub fn session_at(self, t: DateTime<Utc>) -> Option<Session> {
        self.session(ny_date(t))
            .filter(|s| s.open <= t && t < s.close)
    }

    pub fn is_open(self, t: DateTime<Utc>) -> bool {
        self.session_at(t).is_some()
    }

    /// First session whose close is after `t`: the current one when open, else the next.
    pub fn current_or_next_session(self, t: DateTime<Utc>) -> Session {
        let mut date = ny_date(t);
        loop {
            if let Some(s) = self.session(date)
                && s.close > t
            {
                return s;
            }
            date = self.next_trading_day(date);
        }
    }

    /// Next market open strictly after `t` (when open, the next session's open, as Alpaca).
    pub fn next_open(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let mut date = ny_date(t);
        loop {
            if let Some(s) = self.session(date)
                && s.open > t
            {
                return s.open;
            }
            date = self.next_trading_day(date);
        }
    }

    /// Next market close strictly after `t`.
    pub fn next_close(self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.current_or_next_session(t).close
    }

    /// Last session that closed at or before `t`.
    pub fn last_closed_session(self, t: DateTime<Utc>) -> Session {
        let mut date = ny_date(t);
        loop {
            if let Some(s) = self.session(date)
                && s.close <= t
            {
                return s;
            }
            date = self.prev_trading_day(date);
        }
    }

    /// Minutes in the session of `date` (0 when it does not trade). Always-mode days have 1380
    /// or 1500 minutes on DST switch days.
    pub fn session_minutes(self, date: NaiveDate) -> i64 {
        self.session(date)
            .map(|s| (s.close - s.open).num_minutes())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    #[test]
    fn regular_session_is_0930_to_1600_new_york_across_dst() {
        // Winter: UTC-5.
        let s = MarketHours::Regular
            .session(d(2024, 1, 2))
            .expect("Tuesday trades");
        assert_eq!(s.open, utc("2024-01-02T14:30:00Z"));
        assert_eq!(s.close, utc("2024-01-02T21:00:00Z"));
        // Summer: UTC-4.
        let s = MarketHours::Regular
            .session(d(2024, 7, 2))
            .expect("Tuesday trades");
        assert_eq!(s.open, utc("2024-07-02T13:30:00Z"));
        assert_eq!(s.close, utc("2024-07-02T20:00:00Z"));
        // The Monday after the spring switch (2024-03-10) is already on UTC-4.
        let s = MarketHours::Regular
            .session(d(2024, 3, 11))
            .expect("Monday trades");
        assert_eq!(s.open, utc("2024-03-11T13:30:00Z"));
        // The Friday before it is still UTC-5.
        let s = MarketHours::Regular
            .session(d(2024, 3, 8))
            .expect("Friday trades");
        assert_eq!(s.open, utc("2024-03-08T14:30:00Z"));
    }

    #[test]
    fn weekends_are_closed_in_regular_mode() {
        assert!(MarketHours::Regular.session(d(2024, 1, 6)).is_none());
        assert!(MarketHours::Regular.session(d(2024, 1, 7)).is_none());
        assert!(MarketHours::Always.session(d(2024, 1, 6)).is_some());
        // Saturday noon: closed; next open is Monday 09:30 ET.
        let sat = utc("2024-01-06T17:00:00Z");
        assert!(!MarketHours::Regular.is_open(sat));
        assert_eq!(
            MarketHours::Regular.next_open(sat),
            utc("2024-01-08T14:30:00Z")
        );
        assert_eq!(
            MarketHours::Regular.next_close(sat),
            utc("2024-01-08T21:00:00Z")
        );
    }

    #[test]
    fn open_and_close_boundaries() {
        let h = MarketHours::Regular;
        assert!(!h.is_open(utc("2024-01-02T14:29:59Z")));
        assert!(h.is_open(utc("2024-01-02T14:30:00Z")));
        assert!(h.is_open(utc("2024-01-02T20:59:59Z")));
        assert!(!h.is_open(utc("2024-01-02T21:00:00Z")));
        // While open, next_open is the next day's open and next_close today's close.
        let t = utc("2024-01-02T15:00:00Z");
        assert_eq!(h.next_open(t), utc("2024-01-03T14:30:00Z"));
        assert_eq!(h.next_close(t), utc("2024-01-02T21:00:00Z"));
        // Friday after close: next open Monday.
        assert_eq!(
            h.next_open(utc("2024-01-05T22:00:00Z")),
            utc("2024-01-08T14:30:00Z")
        );
        assert_eq!(
            h.last_closed_session(utc("2024-01-08T12:00:00Z")).date,
            d(2024, 1, 5)
        );
    }

    #[test]
    fn always_mode_days_follow_new_york_midnight_and_dst() {
        let h = MarketHours::Always;
        assert!(h.is_open(utc("2024-01-06T03:00:00Z")));
        let s = h.session(d(2024, 1, 6)).expect("every day trades");
        assert_eq!(s.open, utc("2024-01-06T05:00:00Z"));
        assert_eq!(h.session_minutes(d(2024, 3, 10)), 23 * 60);
        assert_eq!(h.session_minutes(d(2024, 11, 3)), 25 * 60);
        assert_eq!(h.session_minutes(d(2024, 6, 3)), 24 * 60);
    }

    #[test]
    fn clock_strings_carry_the_new_york_offset() {
        assert_eq!(
            ny_rfc3339(utc("2024-01-02T14:30:00Z")),
            "2024-01-02T09:30:00-05:00"
        );
        assert_eq!(
            ny_rfc3339(utc("2024-07-02T13:30:00.5Z")),
            "2024-07-02T09:30:00.500-04:00"
        );
    }
}
