//! The bar windows this process fetched, kept so the next fetch of the same day asks the venue
//! only for the bars that became final since: one bar per symbol a cycle, not the whole window.
//!
//! A `Bars` entry of the cache expires when the next bar becomes final; the window it held stays
//! (under its own key) until the venue's next New York midnight, with the time it was cut at.
//! The next fetch of its series tops it up: one multi-symbol request from the oldest cutoff
//! among the symbols to the newest final bar, the new bars appended, the oldest dropped.
//!
//! Invariants:
//! - A top-up gives the same bars a whole fetch would: a bar is final (`settle` after its end)
//!   before any fetch includes it, and a final bar does not change, so the bars up to the
//!   previous cutoff are the ones already kept and only those after it are new.
//! - A window is topped up only within the New York date it was cut on: the first fetch of each
//!   date is whole, so a split or dividend adjustment (the venue applies them from the ex-date,
//!   before that day's bars) is never mixed into a window of bars adjusted the old way.
//! - A window is topped up only to a depth it holds; a deeper request fetches the whole window.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;

use super::cached::{CacheKey, CacheValue, MarketCache};
use super::market::{Series, VenueSpeed};
use crate::domain::{Bar, Symbol};

/// A window kept from an earlier fetch: the newest `depth` bars up to `cutoff` (the newest
/// final bar's start when it was fetched), oldest first.
#[derive(Debug, Clone)]
pub struct Kept {
    pub bars: Arc<[Bar]>,
    pub depth: usize,
    pub cutoff: DateTime<Utc>,
}

impl Kept {
    /// The window once `fresh` (bars the venue sent for `(self.cutoff, newest]`, in any order,
    /// possibly repeating kept ones) is appended: the newest `self.depth` bars up to `newest`.
    pub fn topped_up(&self, fresh: Vec<Bar>, newest: DateTime<Utc>) -> Arc<[Bar]> {
        let mut added: Vec<Bar> = fresh
            .into_iter()
            .filter(|b| b.time > self.cutoff && b.time <= newest)
            .collect();
        if added.is_empty() {
            return Arc::clone(&self.bars);
        }
        added.sort_by_key(|b| b.time);
        added.dedup_by_key(|b| b.time);
        // Built in place of the `Arc`, from only the bars it keeps: one allocation and one
        // copy a window (through a `Vec` it was two of each, 1 % of herd's CPU at 1,000
        // instances). Both halves know their length, so the `collect` sizes it up front.
        let surplus = (self.bars.len() + added.len()).saturating_sub(self.depth);
        let from_kept = surplus.min(self.bars.len());
        added.drain(..surplus - from_kept);
        self.bars[from_kept..]
            .iter()
            .copied()
            .chain(added)
            .collect()
    }
}

fn key(symbol: &Symbol, series: Series) -> CacheKey {
    CacheKey::Window {
        symbol: symbol.clone(),
        timeframe: series.timeframe,
        session: series.session,
    }
}

/// The New York date of `t`: the day a window belongs to.
fn venue_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&New_York).date_naive()
}

/// Of `symbols`, those whose window can be topped up to `newest` at `depth` (with that window),
/// and those to fetch whole.
pub fn split(
    cache: &MarketCache,
    symbols: &[Symbol],
    series: Series,
    depth: usize,
    newest: DateTime<Utc>,
) -> (Vec<(Symbol, Kept)>, Vec<Symbol>) {
    let day = venue_date(newest);
    let mut topped = Vec::new();
    let mut whole = Vec::new();
    for s in symbols {
        let usable = |v: &CacheValue| {
            matches!(v, CacheValue::Window(k)
                if k.depth >= depth && k.cutoff <= newest && venue_date(k.cutoff) == day)
        };
        match cache.get_if(&key(s, series), usable) {
            Some(CacheValue::Window(kept)) => topped.push((s.clone(), kept)),
            _ => whole.push(s.clone()),
        }
    }
    (topped, whole)
}

/// Keeps each symbol's window (the bars, and the depth they were fetched at), cut at `newest`,
/// until the venue's next New York midnight.
pub fn keep<'a>(
    cache: &MarketCache,
    windows: impl IntoIterator<Item = (&'a Symbol, Arc<[Bar]>, usize)>,
    series: Series,
    newest: DateTime<Utc>,
    now: DateTime<Utc>,
    speed: VenueSpeed,
) {
    let ttl = speed.to_real(until_next_midnight(now));
    for (symbol, bars, depth) in windows {
        let kept = Kept {
            bars,
            depth,
            cutoff: newest,
        };
        cache.put(key(symbol, series), CacheValue::Window(kept), ttl);
    }
}

/// Venue time from `now` to the next New York midnight (at least a second).
fn until_next_midnight(now: DateTime<Utc>) -> Duration {
    let next = venue_date(now)
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|m| New_York.from_local_datetime(&m).earliest());
    next.and_then(|m| (m.with_timezone(&Utc) - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Session, Timeframe};
    use chrono::TimeDelta;

    fn bar(t: DateTime<Utc>, close: f64) -> Bar {
        Bar::flat(t, close)
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
    }

    fn kept(depth: usize, cutoff: DateTime<Utc>) -> Kept {
        let bars: Vec<Bar> = (0..3)
            .map(|i| bar(at(15, 0) + TimeDelta::minutes(5 * i), i as f64))
            .collect();
        Kept {
            bars: bars.into(),
            depth,
            cutoff,
        }
    }

    fn times(bars: &[Bar]) -> Vec<DateTime<Utc>> {
        bars.iter().map(|b| b.time).collect()
    }

    #[test]
    fn new_final_bars_are_appended_and_the_oldest_dropped() {
        // Kept 15:00, 15:05, 15:10, cut at 15:10:05; two bars since, sent out of order, one
        // kept bar sent again, and one not yet final.
        let k = kept(3, at(15, 10) + TimeDelta::seconds(5));
        let newest = at(15, 20) + TimeDelta::seconds(5);
        let fresh = vec![
            bar(at(15, 20), 20.0),
            bar(at(15, 10), 99.0),
            bar(at(15, 15), 15.0),
            bar(at(15, 25), 25.0),
        ];
        let w = k.topped_up(fresh, newest);
        assert_eq!(times(&w), [at(15, 10), at(15, 15), at(15, 20)]);
        assert_eq!(w[0].close, 2.0, "a kept bar is not replaced");
        assert_eq!(w[2].close, 20.0);
    }

    #[test]
    fn more_new_bars_than_the_depth_leave_only_the_newest_of_them() {
        let k = kept(3, at(15, 10) + TimeDelta::seconds(5));
        let fresh = (3..7).map(|i| bar(at(15, 5 * i), f64::from(i))).collect();
        let w = k.topped_up(fresh, at(15, 30) + TimeDelta::seconds(5));
        assert_eq!(times(&w), [at(15, 20), at(15, 25), at(15, 30)]);
        assert_eq!(w[0].close, 4.0);
    }

    #[test]
    fn no_new_bar_keeps_the_window_and_a_short_one_grows_to_its_depth() {
        let k = kept(5, at(15, 10));
        let same = k.topped_up(Vec::new(), at(15, 15));
        assert!(Arc::ptr_eq(&same, &k.bars), "shared, not copied");
        let w = k.topped_up(vec![bar(at(15, 15), 1.0)], at(15, 15));
        assert_eq!(w.len(), 4, "fewer bars than the depth exist: all are kept");
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_window_of_the_same_day_at_least_as_deep_is_topped_up() {
        let cache = MarketCache::new(crate::metrics::Metrics::new());
        let series = Series {
            timeframe: Timeframe::Minutes(5),
            session: Session::Regular,
        };
        let spy = Symbol::parse("SPY").unwrap();
        let qqq = Symbol::parse("QQQ").unwrap();
        let cut = at(15, 10);
        let bars = kept(20, cut).bars;
        keep(
            &cache,
            [(&spy, bars, 20)],
            series,
            cut,
            cut,
            VenueSpeed(1.0),
        );
        let both = [spy.clone(), qqq.clone()];
        let (topped, whole) = split(&cache, &both, series, 20, at(15, 15));
        assert_eq!(topped.len(), 1);
        assert_eq!(topped[0].0, spy);
        assert_eq!(whole, [qqq], "nothing kept: whole");
        let (topped, _) = split(&cache, &both, series, 21, at(15, 15));
        assert!(topped.is_empty(), "deeper than kept: whole");
        // 2026-03-02 is a Monday; 05:00Z on the 3rd is midnight in New York (EST).
        let next_day = Utc.with_ymd_and_hms(2026, 3, 3, 14, 35, 0).unwrap();
        let (topped, _) = split(&cache, &both, series, 20, next_day);
        assert!(topped.is_empty(), "another New York date: whole");
        let minutes = Series {
            timeframe: Timeframe::Minutes(1),
            ..series
        };
        assert!(split(&cache, &both, minutes, 20, at(15, 15)).0.is_empty());
        assert_eq!(
            until_next_midnight(at(15, 10)),
            Duration::from_secs(13 * 3600 + 50 * 60),
            "15:10Z is 10:10 in New York"
        );
    }
}
