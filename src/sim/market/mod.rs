//! The simulated market: prices and bars of any symbol at any sim time.
//!
//! Layers: a cheap daily path per symbol (`daily`), a minute path per (symbol, day) generated on
//! demand as a bridge between that day's open and close (`synth`), and bars of any timeframe
//! aggregated from minutes (`bar`, `query`). `path` turns minute bars into a continuous price
//! path for quotes and order matching. Symbols with a CSV file replay it instead (`replay`).
//!
//! Invariants:
//! - Same seed and start day, same prices: every random draw is keyed by (seed, symbol, date),
//!   so neither request order nor request time changes a price.
//! - A closed bar never changes: minute paths are pure functions of their key, and daily values
//!   are fixed once computed.
//! - Memory stays bounded: minute paths live in an LRU cache of `CACHE_DAYS` (symbol, day)
//!   entries; per symbol only the daily anchors and daily bars (a few dozen bytes a day) are kept.

mod bar;
mod cache;
mod daily;
mod params;
mod path;
mod query;
mod replay;
mod rng;
mod synth;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

pub use bar::{Bar, BarJson, Timeframe};
pub use params::{Params, SymbolParams, is_valid_symbol};
pub use path::PathPoint;
pub use query::{BarsRequest, PageToken};
use replay::ReplayDay;
pub use replay::{Replay, ReplayError};
pub use rng::{KeyedRng, Stream};
pub use synth::{ceil_tick, floor_tick, round_tick, tick};

use self::cache::DayCache;
use self::daily::DailyPath;
use self::synth::GenCtx;
use super::calendar::{MarketHours, ny_date, ny_midnight};

/// (symbol, day) minute paths kept in memory, about 90 KB each around the clock (up to 180 MB):
/// two days of a thousand symbols, what 1,000 instances on 5-minute bars read each cycle.
const CACHE_DAYS: usize = 2048;

/// State kept per symbol once it has been asked for.
struct SymbolState {
    ctx: GenCtx,
    daily: DailyPath,
    /// Complete daily bars computed so far (summaries of minute paths), never changed.
    day_bars: BTreeMap<NaiveDate, Bar>,
}

/// The `[sim]` keys that shape prices (the config module assembles it).
#[derive(Debug, Clone, Copy)]
pub struct MarketConfig<'a> {
    pub seed: u64,
    pub hours: MarketHours,
    pub regimes: bool,
    /// An intraday bar is served this long after its interval ends.
    pub bar_delay: std::time::Duration,
    /// ... and with provisional values for this long after that.
    pub bar_revision: std::time::Duration,
    /// Days of history before the start day that bars exist for.
    pub history_days: u32,
    pub defaults: &'a SymbolParams,
    /// Per-symbol overrides, keyed by ticker in any case.
    pub symbols: &'a BTreeMap<String, SymbolParams>,
}

/// The market of one simulator run.
pub struct Market {
    seed: u64,
    hours: MarketHours,
    regimes: bool,
    /// Seconds after an intraday bar ends before it is served.
    bar_delay: i64,
    /// Seconds after that during which it is served provisional.
    bar_revision: i64,
    /// Trading day whose first session opens at each symbol's start price.
    anchor: NaiveDate,
    /// First day bars are served for (`history_days` before the start day).
    first_day: NaiveDate,
    defaults: SymbolParams,
    overrides: BTreeMap<String, SymbolParams>,
    symbols: HashMap<String, SymbolState>,
    minutes: DayCache,
    /// Symbols replayed from CSV files.
    replay: Replay,
}

impl Market {
    /// The market of a run starting at `start`, replaying `replay` (possibly empty).
    pub fn new(cfg: MarketConfig<'_>, start: DateTime<Utc>, replay: Replay) -> Self {
        let hours = cfg.hours;
        let start_day = ny_date(start);
        Self {
            seed: cfg.seed,
            hours,
            regimes: cfg.regimes,
            bar_delay: cfg.bar_delay.as_secs() as i64,
            bar_revision: cfg.bar_revision.as_secs() as i64,
            anchor: hours.trading_day_on_or_before(start_day),
            first_day: start_day - Duration::days(i64::from(cfg.history_days)),
            defaults: cfg.defaults.clone(),
            overrides: cfg
                .symbols
                .iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                .collect(),
            symbols: HashMap::new(),
            minutes: DayCache::new(CACHE_DAYS),
            replay,
        }
    }

    pub fn hours(&self) -> MarketHours {
        self.hours
    }

    /// Earliest time with data (CSV data may start later).
    pub fn first_time(&self) -> DateTime<Utc> {
        ny_midnight(self.first_day)
    }

    /// Symbols generated or replayed so far.
    pub fn known_symbols(&self) -> Vec<String> {
        let mut out: Vec<String> = self.symbols.keys().cloned().collect();
        out.sort();
        out
    }

    /// Resolved parameters of `symbol`.
    pub fn params(&mut self, symbol: &str) -> Params {
        self.state(symbol).ctx.params.clone()
    }

    fn state(&mut self, symbol: &str) -> &mut SymbolState {
        let (seed, hours, regimes, anchor) = (self.seed, self.hours, self.regimes, self.anchor);
        let defaults = &self.defaults;
        let overrides = &self.overrides;
        let replay = &self.replay;
        self.symbols.entry(symbol.to_string()).or_insert_with(|| {
            let mut params = params::resolve(symbol, seed, defaults, overrides.get(symbol));
            // A replayed symbol continues synthetically after its data, from its last close.
            let (anchor, price) = match replay.continuation(symbol) {
                Some((day, close)) => (hours.next_trading_day(day), close),
                None => (anchor, params.start_price),
            };
            params.start_price = price;
            let ctx = GenCtx {
                seed,
                symbol: symbol.to_string(),
                params,
                regimes,
                gaps: hours == MarketHours::Regular,
            };
            let daily = DailyPath::new(&ctx, hours, anchor, price);
            SymbolState {
                ctx,
                daily,
                day_bars: BTreeMap::new(),
            }
        })
    }

    /// Minute bars of `date` (empty when it does not trade), from the cache or generated.
    pub fn minutes_of(&mut self, symbol: &str, date: NaiveDate) -> Arc<[Bar]> {
        if let Some(bars) = self.minutes.get(symbol, date) {
            return bars;
        }
        let bars: Arc<[Bar]> = match self.replay.day(symbol, date) {
            Some(ReplayDay::Minutes(bars)) => bars.into(),
            Some(ReplayDay::Closed) => Arc::from(Vec::new()),
            Some(ReplayDay::Daily(day)) => self.expand_daily(symbol, date, &day).into(),
            None => self.synthetic_minutes(symbol, date).into(),
        };
        self.minutes.put(symbol, date, bars.clone());
        bars
    }

    fn synthetic_minutes(&mut self, symbol: &str, date: NaiveDate) -> Vec<Bar> {
        let hours = self.hours;
        let Some(session) = hours.session(date) else {
            return Vec::new();
        };
        let state = self.state(symbol);
        let day = state.daily.day(&state.ctx, hours, date);
        let plan = daily::plan(&state.ctx, hours, date);
        state.ctx.minute_bars(
            date,
            session.open.timestamp(),
            &plan,
            day.open,
            day.close,
            day.reversion,
        )
    }

    /// A replayed daily row as minutes: a synthetic path through the row's open, high, low
    /// and close over the session (09:30–16:00 New York unless the market never closes).
    fn expand_daily(&mut self, symbol: &str, date: NaiveDate, day: &Bar) -> Vec<Bar> {
        let hours = self.hours;
        let (open, close) = match hours {
            MarketHours::Always => (ny_midnight(date), ny_midnight(date + Duration::days(1))),
            MarketHours::Regular => match hours.session(date) {
                Some(s) => (s.open, s.close),
                // A weekend row (e.g. crypto data): the same hours, counted from midnight.
                None => {
                    let midnight = ny_midnight(date);
                    (
                        midnight + Duration::minutes(9 * 60 + 30),
                        midnight + Duration::hours(16),
                    )
                }
            },
        };
        let minutes = (close - open).num_minutes().max(1) as usize;
        let ctx = self.state(symbol).ctx.clone();
        let plan = ctx.plan(date, minutes);
        let mut bars = ctx.minute_bars(date, open.timestamp(), &plan, day.o, day.c, 0.0);
        replay::fit_to_day(&mut bars, day);
        bars
    }

    /// The complete daily bar of `date`, stamped at New York midnight (None if no trading).
    pub fn day_bar(&mut self, symbol: &str, date: NaiveDate) -> Option<Bar> {
        if let Some(ReplayDay::Daily(bar)) = self.replay.day(symbol, date) {
            return Some(bar);
        }
        if let Some(bar) = self.state(symbol).day_bars.get(&date) {
            return Some(*bar);
        }
        let minutes = self.minutes_of(symbol, date);
        let bar = bar::aggregate(ny_midnight(date).timestamp(), &minutes)?;
        self.state(symbol).day_bars.insert(date, bar);
        Some(bar)
    }

    /// Whether the day's last minute has ended by `now`: its session close for synthetic days
    /// (no minutes needed), its last bar for replayed ones (which may trade after 16:00).
    pub fn day_closed(&mut self, symbol: &str, date: NaiveDate, now: DateTime<Utc>) -> bool {
        if self.replay.day(symbol, date).is_none() {
            return self.hours.session(date).is_some_and(|s| s.close <= now);
        }
        self.minutes_of(symbol, date)
            .last()
            .is_some_and(|m| m.t + 60 <= now.timestamp())
    }

    /// The daily bar of the session containing or last before `now`, from minutes closed by
    /// `now` (a snapshot's `dailyBar`, still forming while the market is open).
    pub fn current_day_bar(&mut self, symbol: &str, now: DateTime<Utc>) -> Option<Bar> {
        let date = self.last_bar_day(symbol, now)?;
        let minutes = self.minutes_of(symbol, date);
        let closed = minutes.partition_point(|m| m.t + 60 <= now.timestamp());
        bar::aggregate(ny_midnight(date).timestamp(), &minutes[..closed])
    }

    /// The daily bar before the current one (a snapshot's `prevDailyBar`).
    pub fn previous_day_bar(&mut self, symbol: &str, now: DateTime<Utc>) -> Option<Bar> {
        let date = self.last_bar_day(symbol, now)?;
        let mut prev = self.hours.prev_trading_day(date);
        for _ in 0..10 {
            if prev < self.first_day {
                return None;
            }
            if let Some(bar) = self.day_bar(symbol, prev) {
                return Some(bar);
            }
            prev = self.hours.prev_trading_day(prev);
        }
        None
    }

    /// Latest minute bar closed by `now`.
    pub fn latest_minute_bar(&mut self, symbol: &str, now: DateTime<Utc>) -> Option<Bar> {
        let date = self.last_bar_day(symbol, now)?;
        let minutes = self.minutes_of(symbol, date);
        let closed = minutes.partition_point(|m| m.t + 60 <= now.timestamp());
        closed.checked_sub(1).map(|i| minutes[i])
    }

    /// The latest day (at most a week back) with a minute bar closed by `now`.
    fn last_bar_day(&mut self, symbol: &str, now: DateTime<Utc>) -> Option<NaiveDate> {
        let mut date = ny_date(now);
        for _ in 0..8 {
            if date < self.first_day {
                return None;
            }
            let minutes = self.minutes_of(symbol, date);
            if minutes.first().is_some_and(|m| m.t + 60 <= now.timestamp()) {
                return Some(date);
            }
            date -= Duration::days(1);
        }
        None
    }

    /// Traded price of `symbol` at `t`: on the intraday path while a bar covers `t`, else the
    /// last close before `t`.
    pub fn price(&mut self, symbol: &str, t: DateTime<Utc>) -> f64 {
        let date = ny_date(t);
        let minutes = self.minutes_of(symbol, date);
        let ts = t.timestamp_micros();
        let i = minutes.partition_point(|m| m.t * 1_000_000 <= ts);
        if i > 0 {
            let m = minutes[i - 1];
            if ts < (m.t + 60) * 1_000_000 {
                return path::price_in_minute(&m, ts);
            }
            return m.c;
        }
        self.close_before(symbol, date)
    }

    /// Close of the last trading day before `date` that has bars.
    fn close_before(&mut self, symbol: &str, date: NaiveDate) -> f64 {
        let mut d = date;
        for _ in 0..30 {
            d = self.hours.prev_trading_day(d);
            if let Some(last) = self.minutes_of(symbol, d).last() {
                return last.c;
            }
        }
        let state = self.state(symbol);
        round_tick(state.ctx.params.start_price)
    }

    /// Close of the last trading day before the New York date of `t` (a position's
    /// `lastday_price`).
    pub fn last_day_close(&mut self, symbol: &str, t: DateTime<Utc>) -> f64 {
        self.close_before(symbol, ny_date(t))
    }

    /// Price path from `from` to `to` for order matching (see `path`): the price at `from`,
    /// every intra-minute vertex in between, and the price at `to`.
    pub fn path(&mut self, symbol: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<PathPoint> {
        let mut out = Vec::new();
        if to <= from {
            return out;
        }
        let (a, b) = (from.timestamp_micros(), to.timestamp_micros());
        let start_minutes = self.minutes_of(symbol, ny_date(from));
        out.push(PathPoint {
            t: a,
            price: self.price(symbol, from),
            minute: path::minute_of(a),
            volume: path::volume_at(&start_minutes, a),
            jump: false,
        });
        let mut date = ny_date(from);
        while date <= ny_date(to) {
            let minutes = self.minutes_of(symbol, date);
            path::append_day(&mut out, &minutes, a, b);
            date += Duration::days(1);
        }
        if out.last().is_some_and(|p| p.t < b) {
            let end_minutes = self.minutes_of(symbol, ny_date(to));
            out.push(PathPoint {
                t: b,
                price: self.price(symbol, to),
                minute: path::minute_of(b),
                volume: path::volume_at(&end_minutes, b),
                jump: false,
            });
        }
        out
    }

    /// Volume of the minute bar covering `t` (0 outside trading).
    pub fn minute_volume(&mut self, symbol: &str, t: DateTime<Utc>) -> u64 {
        let minutes = self.minutes_of(symbol, ny_date(t));
        path::volume_at(&minutes, t.timestamp_micros())
    }
}

#[cfg(test)]
mod tests;
