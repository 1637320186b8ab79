//! Historical bar queries with Alpaca's paging.
//!
//! A page lists symbols in ascending order and each symbol's bars in the requested time order;
//! `limit` counts bars across all symbols. The page token names the next bar to return
//! (symbol and time), so a page resumes mid-symbol exactly where the previous one stopped.
//!
//! Invariants:
//! - Only closed bars are returned: an intraday bar once its interval has ended (and
//!   `bar_delay` has passed), a daily bar once the day's last minute has ended (its session
//!   close), by the sim time `now`. For `bar_revision` after that an intraday bar is
//!   provisional: its close and volume are not yet the final ones.
//! - No bar before the first history day is returned.
//! - The last page has no token; a non-last page always has one.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::Market;
use super::bar::{Bar, Timeframe, bucket_day};
use crate::sim::calendar::{ny_date, ny_midnight};

/// One bars request, already validated.
#[derive(Debug, Clone)]
pub struct BarsRequest {
    /// Sorted, without duplicates.
    pub symbols: Vec<String>,
    pub timeframe: Timeframe,
    /// Inclusive bounds on bar start times.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Bars on this page at most (already capped by the page size).
    pub limit: usize,
    pub desc: bool,
    pub token: Option<PageToken>,
    /// Whether prices before a split are divided by its ratio (`adjustment` = `split` or
    /// `all`); Alpaca's default, `raw`, serves them as they traded.
    pub split_adjusted: bool,
    /// Share of minutes that have no bar (no trade on the requested feed).
    pub empty_minutes: f64,
}

/// Position of the next bar to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub symbol: String,
    /// Start (epoch seconds) of the next bar.
    pub t: i64,
}

impl PageToken {
    /// Opaque text form: hex of `SYMBOL|t`, so it is URL-safe without escaping.
    pub fn encode(&self) -> String {
        format!("{}|{}", self.symbol, self.t)
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn decode(text: &str) -> Option<Self> {
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect();
        let plain = String::from_utf8(bytes?).ok()?;
        let (symbol, t) = plain.split_once('|')?;
        Some(PageToken {
            symbol: symbol.to_string(),
            t: t.parse().ok()?,
        })
    }
}

/// One page of bars.
#[derive(Debug, Default)]
pub struct BarsPage {
    /// Symbols with at least one bar on this page, in order.
    pub bars: Vec<(String, Vec<Bar>)>,
    pub next: Option<PageToken>,
}

impl Market {
    /// The page of bars answering `req` at sim time `now`.
    pub fn bars_page(&mut self, req: &BarsRequest, now: DateTime<Utc>) -> BarsPage {
        let mut page = BarsPage::default();
        let mut taken = 0;
        for symbol in &req.symbols {
            let resume = match &req.token {
                Some(tok) if *symbol < tok.symbol => continue,
                Some(tok) if *symbol == tok.symbol => Some(tok.t),
                _ => None,
            };
            let want = req.limit - taken + 1;
            let mut bars = self.symbol_bars(symbol, req, now, resume, want);
            if taken + bars.len() > req.limit {
                let keep = req.limit - taken;
                page.next = Some(PageToken {
                    symbol: symbol.clone(),
                    t: bars[keep].t,
                });
                bars.truncate(keep);
                if !bars.is_empty() {
                    page.bars.push((symbol.clone(), bars));
                }
                return page;
            }
            taken += bars.len();
            if !bars.is_empty() {
                page.bars.push((symbol.clone(), bars));
            }
        }
        page
    }

    /// Up to `max` closed bars of one symbol in request order, resuming at `resume`.
    fn symbol_bars(
        &mut self,
        symbol: &str,
        req: &BarsRequest,
        now: DateTime<Utc>,
        resume: Option<i64>,
        max: usize,
    ) -> Vec<Bar> {
        let lo = req.start.max(self.first_time());
        let hi = req.end.min(now);
        if hi < lo || max == 0 {
            return Vec::new();
        }
        let (lo_t, hi_t) = (lo.timestamp(), hi.timestamp());
        let in_range = |t: i64| {
            t >= lo_t
                && t <= hi_t
                && match resume {
                    Some(r) if req.desc => t <= r,
                    Some(r) => t >= r,
                    None => true,
                }
        };
        // Days to visit, in request order. A bucket may start before the day of `lo` only
        // by being cut at midnight, so New York dates bound the walk.
        let (mut first, mut last) = (ny_date(lo), ny_date(hi));
        if let Some(r) = resume.and_then(|r| DateTime::<Utc>::from_timestamp(r, 0)) {
            if req.desc {
                last = last.min(ny_date(r));
            } else {
                first = first.max(ny_date(r));
            }
        }
        let mut out = Vec::new();
        let mut date = if req.desc { last } else { first };
        while first <= date && date <= last && out.len() < max {
            let mut day = self.day_bars_closed(symbol, date, req.timeframe, now, req.empty_minutes);
            if req.desc {
                day.reverse();
            }
            out.extend(
                day.into_iter()
                    .filter(|b| in_range(b.t))
                    .take(max - out.len()),
            );
            date = if req.desc {
                date - Duration::days(1)
            } else {
                date + Duration::days(1)
            };
        }
        if !req.split_adjusted
            && let Some((at, ratio)) = self.params(symbol).split
        {
            for bar in out.iter_mut().filter(|b| b.t < at) {
                *bar = pre_split(*bar, ratio);
            }
        }
        out
    }

    /// Closed bars of one New York day at `timeframe`, oldest first.
    fn day_bars_closed(
        &mut self,
        symbol: &str,
        date: NaiveDate,
        timeframe: Timeframe,
        now: DateTime<Utc>,
        empty_minutes: f64,
    ) -> Vec<Bar> {
        let now_t = now.timestamp();
        let seed = self.seed;
        let traded =
            |m: &Bar| empty_minutes <= 0.0 || minute_roll(seed, symbol, m.t) >= empty_minutes;
        match timeframe.seconds() {
            None => {
                let closed = self.day_closed(symbol, date, now);
                match (closed, self.day_bar(symbol, date)) {
                    (true, Some(bar)) => vec![bar],
                    _ => Vec::new(),
                }
            }
            Some(60) => {
                let minutes = self.minutes_of(symbol, date);
                minutes
                    .iter()
                    .filter(|m| traded(m))
                    .filter_map(|m| self.as_published(*m, m.t + 60, now_t))
                    .collect()
            }
            Some(len) => {
                let minutes: Vec<Bar> = self
                    .minutes_of(symbol, date)
                    .iter()
                    .filter(|m| traded(m))
                    .copied()
                    .collect();
                bucket_day(&minutes, ny_midnight(date).timestamp(), len)
                    .into_iter()
                    .filter_map(|(bar, end)| self.as_published(bar, end, now_t))
                    .collect()
            }
        }
    }

    /// An intraday bar ending at `end` as served at `now`: not at all before `bar_delay` has
    /// passed, then provisional for `bar_revision` (its close moved by a few basis points and
    /// its volume short, as when late trades are still to be reported), then final.
    fn as_published(&self, bar: Bar, end: i64, now: i64) -> Option<Bar> {
        let published = end + self.bar_delay;
        if now < published {
            return None;
        }
        if now >= published + self.bar_revision {
            return Some(bar);
        }
        // A fixed, seeded nudge per bar: the same request gets the same provisional bar.
        let nudge = ((self.seed ^ bar.t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as f64;
        let close = bar.c * (1.0 + (nudge - 7.5) * 0.0004);
        Some(Bar {
            c: close,
            h: bar.h.max(close),
            l: bar.l.min(close),
            v: bar.v - bar.v / 10,
            ..bar
        })
    }
}

/// A fixed number in [0, 1) per symbol and minute: whether that minute traded on a thin feed
/// is decided by it, so every request sees the same gaps.
fn minute_roll(seed: u64, symbol: &str, t: i64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in symbol.bytes().chain(t.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A bar from before a split as it traded: prices times the ratio, volume divided by it.
fn pre_split(bar: Bar, ratio: f64) -> Bar {
    Bar {
        o: bar.o * ratio,
        h: bar.h * ratio,
        l: bar.l * ratio,
        c: bar.c * ratio,
        vw: bar.vw * ratio,
        v: (bar.v as f64 / ratio).round() as u64,
        ..bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let tok = PageToken {
            symbol: "BRK.B".into(),
            t: 1_704_205_800,
        };
        assert_eq!(PageToken::decode(&tok.encode()), Some(tok));
        assert_eq!(PageToken::decode("zz"), None);
        assert_eq!(PageToken::decode("abc"), None);
        assert_eq!(PageToken::decode("null"), None);
    }
}
