//! Fixtures for the cores' unit tests: bar series with known closes on a fixed calendar.
//!
//! Every bar is flat (open = high = low = close): the cores read closes, and a test's closes
//! are its known answers.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::{Bar, Symbol};

/// A symbol from a literal the test knows is valid.
pub fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

/// Start of the first bar of every fixture: a Monday, in regular trading hours.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap()
}

/// Start of bar `i` of a five-minute series.
pub fn minute_bar(i: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(5 * i)
}

/// Start of bar `i` of a daily series.
pub fn day(i: i64) -> DateTime<Utc> {
    t0() + Duration::days(i)
}

/// Five-minute bars with these closes, the first at [`t0`].
pub fn minute_bars(closes: &[f64]) -> Arc<[Bar]> {
    series(closes, minute_bar)
}

/// Daily bars with these closes, the first at [`t0`].
pub fn daily_bars(closes: &[f64]) -> Arc<[Bar]> {
    series(closes, day)
}

fn series(closes: &[f64], time: fn(i64) -> DateTime<Utc>) -> Arc<[Bar]> {
    closes
        .iter()
        .zip(0..)
        .map(|(&c, i)| Bar::flat(time(i), c))
        .collect()
}
