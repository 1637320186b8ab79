//! Market data for strategy views: which bars are cached, how a batch of missing ones is
//! fetched, and how long they stay valid.
//!
//! Invariants:
//! - Only final bars are used: a bar is final once its interval ended at least `settle` ago
//!   (venue time). Alpaca publishes a bar a few seconds after it ends and revises it for about
//!   10 s more; a newer bar is neither asked for (the query's `end`) nor kept if the venue sends
//!   it anyway, so no decision is made on a bar still forming or still to be revised.
//! - Cached bars serve only while no newer bar is final at the view's venue time (each entry
//!   keeps the newest final bar it was cut at), and expire when the next bar becomes final
//!   (its end plus `settle`, converted to real time with the venue's speed). The expiry alone
//!   raced the schedule: ticks fall due as a bar becomes final, and one that read the cache
//!   just before the expiry fired decided on the previous bar.
//! - A symbol with a window kept from earlier the same day (`windows.rs`) is asked only for the
//!   bars since; for the others a fetch asks for a window that holds `depth` bars of continuous
//!   trading first, and only symbols still short of bars (nights, weekends, holidays) get one
//!   wider request.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::alpaca::{BarsQuery, SortOrder};
use super::batch::BarsBySymbol;
use super::cached::{CacheKey, CacheValue, MarketCache};
use super::gateway::Gateway;
use super::retry::RetryError;
use super::sessions::Sessions;
use super::shared_bars::SharedBars;
use super::windows;
use crate::domain::{Bar, Session, Symbol, SymbolMap, Timeframe};

/// Added to a bar's expiry so the venue has closed the next bar when herd asks for it.
const BOUNDARY_SLACK: Duration = Duration::from_millis(20);
/// The first window holds `depth` bars of continuous trading times this.
const FIRST_WINDOW: u32 = 3;
/// The second, for symbols still short of bars, times this.
const WIDE_WINDOW: u32 = 40;

/// Converts venue time to real time.
#[derive(Debug, Clone, Copy)]
pub struct VenueSpeed(pub f64);

/// The longest real time a venue duration converts to: a frozen venue clock (speed 0) must
/// give long waits, not an overflow.
const MAX_REAL: Duration = Duration::from_secs(86_400);

impl VenueSpeed {
    pub fn to_real(self, venue: Duration) -> Duration {
        if self.0 <= 0.0 || !self.0.is_finite() {
            return MAX_REAL;
        }
        Duration::try_from_secs_f64(venue.as_secs_f64() / self.0)
            .map_or(MAX_REAL, |d| d.min(MAX_REAL))
    }
}

/// The cached series among `symbols` (hits) and the symbols to fetch (misses), at venue time
/// `now`: a cached window is a hit only while no bar newer than its newest is final. Its
/// expiry says the same, but it is a timer: a tick that falls due as the next bar becomes
/// final can read the cache just before the expiry fires, and would decide on the previous bar.
pub fn cached_bars(
    cache: &MarketCache,
    symbols: &[Symbol],
    series: Series,
    depth: usize,
    now: DateTime<Utc>,
    settle: Duration,
) -> (BarsBySymbol, Vec<Symbol>) {
    let Series { timeframe, session } = series;
    let newest = newest_final_start(now, timeframe, settle);
    let mut hits = SymbolMap::with_capacity_and_hasher(symbols.len(), Default::default());
    let mut misses = Vec::new();
    for s in symbols {
        let key = CacheKey::Bars {
            symbol: s.clone(),
            timeframe,
            session,
        };
        let current = |v: &CacheValue| {
            matches!(v, CacheValue::Bars { depth: d, cutoff, .. }
                if *d >= depth && covers(*cutoff, newest, timeframe))
        };
        match cache.get_if(&key, current) {
            Some(CacheValue::Bars { bars, .. }) => {
                hits.insert(s.clone(), bars);
            }
            _ => misses.push(s.clone()),
        }
    }
    (hits, misses)
}

/// Whether a window cut at `cutoff` holds every bar final at `newest`: no bar of `timeframe`
/// starts after `cutoff` up to `newest` (intraday bars start on multiples of their length;
/// daily bars at New York midnight). A window cut later than `newest` (another reading of the
/// clock, a few milliseconds ahead) holds them too.
fn covers(cutoff: DateTime<Utc>, newest: DateTime<Utc>, timeframe: Timeframe) -> bool {
    match timeframe {
        Timeframe::Day => {
            let date =
                |t: DateTime<Utc>| t.with_timezone(&chrono_tz::America::New_York).date_naive();
            date(cutoff) >= date(newest)
        }
        _ => bar_set_stamp(cutoff, timeframe) >= bar_set_stamp(newest, timeframe),
    }
}

/// The newest `depth` final bars of each symbol (see the module's invariants): from the cache
/// other replicas share when it has them, else from the venue (a top-up for the symbols with a
/// window of the day, a whole window for the rest: see `from_venue`), cached here and there
/// until the next bar becomes final.
pub async fn fetch_bars(
    market: &MarketData,
    symbols: &[Symbol],
    series: Series,
    depth: usize,
    now: DateTime<Utc>,
) -> Result<BarsBySymbol, RetryError> {
    let newest = newest_final_start(now, series.timeframe, market.settle);
    let ttl = market
        .speed
        .to_real(until_next_final(now, series.timeframe, market.settle))
        + BOUNDARY_SLACK;
    let stamp = bar_set_stamp(newest, series.timeframe);
    let shared = &market.shared;
    let (mut out, missing) = shared.get(symbols, series, depth, stamp).await;
    if missing.is_empty() {
        remember(&market.cache, &out, series, depth, newest, ttl);
        return Ok(out);
    }
    let (mut mine, theirs) = shared.claim(missing, series, stamp).await;
    if !theirs.is_empty() {
        let (arrived, late) = shared.wait_for(theirs, series, depth, stamp).await;
        out.extend(arrived);
        mine.extend(late);
    }
    remember(&market.cache, &out, series, depth, newest, ttl);
    let fetched = from_venue(market, &mine, series, depth, newest, now).await?;
    remember(&market.cache, &fetched, series, depth, newest, ttl);
    shared.put(&fetched, series, depth, stamp, ttl).await;
    out.extend(fetched);
    Ok(out)
}

/// What names a bar set in the shared cache: the start of the bar interval holding `newest`,
/// the same for every replica between two bars becoming final (`newest` itself moves with the
/// clock).
fn bar_set_stamp(newest: DateTime<Utc>, timeframe: Timeframe) -> DateTime<Utc> {
    let len = (timeframe.duration().as_millis() as i64).max(1);
    let ms = newest.timestamp_millis();
    DateTime::from_timestamp_millis(ms.div_euclid(len) * len).unwrap_or(newest)
}

/// Puts bar sets cut at `cutoff` in this process's cache until the next bar is final.
fn remember(
    cache: &MarketCache,
    bars: &BarsBySymbol,
    series: Series,
    depth: usize,
    cutoff: DateTime<Utc>,
    ttl: Duration,
) {
    for (symbol, bars) in bars {
        let key = CacheKey::Bars {
            symbol: symbol.clone(),
            timeframe: series.timeframe,
            session: series.session,
        };
        let value = CacheValue::Bars {
            bars: Arc::clone(bars),
            depth,
            cutoff,
        };
        cache.put(key, value, ttl);
    }
}

/// The newest `depth` bars of each symbol up to `newest`, from the venue: the bars since its
/// kept window for a symbol that has one of the same day (`windows.rs`), the whole window for
/// the rest. Every window is kept for the next fetch.
async fn from_venue(
    market: &MarketData,
    symbols: &[Symbol],
    series: Series,
    depth: usize,
    newest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<BarsBySymbol, RetryError> {
    if symbols.is_empty() {
        return Ok(SymbolMap::default());
    }
    let MarketData {
        gateway, sessions, ..
    } = market;
    let Series { timeframe, session } = series;
    // Intraday bars of the regular session only, when asked: by the venue's calendar, over
    // the widest window a fetch below may reach.
    let regular_only = session == Session::Regular && timeframe != Timeframe::Day;
    if regular_only {
        let widest = newest - window_span(timeframe, depth, WIDE_WINDOW);
        let date = |t: DateTime<Utc>| t.with_timezone(&chrono_tz::America::New_York).date_naive();
        sessions.ensure(gateway, date(widest), date(now)).await?;
    }
    let in_session = |bars: &mut Vec<Bar>| {
        if regular_only {
            bars.retain(|b| sessions.is_regular(b.time));
        }
    };
    let (kept, whole) = windows::split(&market.cache, symbols, series, depth, newest);
    let mut out = SymbolMap::with_capacity_and_hasher(symbols.len(), Default::default());
    let mut depths = SymbolMap::with_capacity_and_hasher(symbols.len(), Default::default());
    if !kept.is_empty() {
        let since = kept.iter().map(|(_, k)| k.cutoff).min().unwrap_or(newest);
        let query = BarsQuery {
            symbols: kept.iter().map(|(s, _)| s.clone()).collect(),
            timeframe,
            start: since,
            end: Some(newest),
            sort: SortOrder::Asc,
        };
        let mut fresh = gateway.bars(&query).await?;
        fresh.values_mut().for_each(in_session);
        for (s, k) in kept {
            let window = k.topped_up(fresh.remove(&s).unwrap_or_default(), newest);
            depths.insert(s.clone(), k.depth);
            out.insert(s, window);
        }
    }
    if !whole.is_empty() {
        out.extend(whole_windows(gateway, &whole, timeframe, depth, newest, in_session).await?);
    }
    windows::keep(
        &market.cache,
        out.iter()
            .map(|(s, w)| (s, Arc::clone(w), depths.get(s).copied().unwrap_or(depth))),
        series,
        newest,
        now,
        market.speed,
    );
    Ok(out)
}

/// The newest `depth` bars of each symbol up to `newest`: a window of continuous trading first,
/// then a wider one for the symbols still short of bars.
async fn whole_windows(
    gateway: &Gateway,
    symbols: &[Symbol],
    timeframe: Timeframe,
    depth: usize,
    newest: DateTime<Utc>,
    in_session: impl Fn(&mut Vec<Bar>),
) -> Result<BarsBySymbol, RetryError> {
    let mut fetched =
        fetch_window(gateway, symbols, timeframe, depth, newest, FIRST_WINDOW).await?;
    fetched.values_mut().for_each(&in_session);
    let short: Vec<Symbol> = symbols
        .iter()
        .filter(|s| fetched.get(*s).map_or(0, Vec::len) < depth)
        .cloned()
        .collect();
    if !short.is_empty() {
        let mut wider =
            fetch_window(gateway, &short, timeframe, depth, newest, WIDE_WINDOW).await?;
        wider.values_mut().for_each(&in_session);
        fetched.extend(wider);
    }
    let mut out = SymbolMap::with_capacity_and_hasher(symbols.len(), Default::default());
    for s in symbols {
        let mut series = fetched.remove(s).unwrap_or_default();
        // Whatever the venue sent: nothing newer than the newest final bar.
        series.retain(|b| b.time <= newest);
        series.sort_by_key(|b| b.time);
        series.dedup_by_key(|b| b.time);
        let newest: Arc<[Bar]> = series[series.len().saturating_sub(depth)..].into();
        out.insert(s.clone(), newest);
    }
    Ok(out)
}

/// Bars whose start is at most `newest`, over a window `widen` times `depth` bars long.
async fn fetch_window(
    gateway: &Gateway,
    symbols: &[Symbol],
    timeframe: Timeframe,
    depth: usize,
    newest: DateTime<Utc>,
    widen: u32,
) -> Result<SymbolMap<Vec<Bar>>, RetryError> {
    let query = BarsQuery {
        symbols: symbols.to_vec(),
        timeframe,
        start: newest - window_span(timeframe, depth, widen),
        // Explicit, so the venue never serves a bar still forming (nor, on a feed without a
        // subscription, silently delayed data in place of the newest).
        end: Some(newest),
        sort: SortOrder::Asc,
    };
    gateway.bars(&query).await
}

/// How far back a window of `depth` bars reaches, `widen` times over.
fn window_span(timeframe: Timeframe, depth: usize, widen: u32) -> TimeDelta {
    let span = timeframe
        .duration()
        .saturating_mul(depth as u32)
        .saturating_mul(widen);
    TimeDelta::from_std(span).unwrap_or(TimeDelta::days(365))
}

/// One series of bars a view can ask for: a bar length, and the session its bars lie in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Series {
    pub timeframe: Timeframe,
    pub session: Session,
}

/// What fetching bars uses: the way to the venue, the caches (this process's and the one
/// replicas share), the calendar, the venue's speed and the settle time.
#[derive(Clone)]
pub struct MarketData {
    pub gateway: Gateway,
    pub cache: MarketCache,
    pub shared: SharedBars,
    pub sessions: Sessions,
    pub speed: VenueSpeed,
    pub settle: Duration,
}

/// The start of the newest bar of `timeframe` that is final at `now`: its interval ended at
/// least `settle` ago. A bar's start `t` qualifies when `t + length <= now - settle`.
fn newest_final_start(now: DateTime<Utc>, timeframe: Timeframe, settle: Duration) -> DateTime<Utc> {
    let back = settle.saturating_add(timeframe.duration());
    now - TimeDelta::from_std(back).unwrap_or(TimeDelta::days(1))
}

/// Venue time until the next bar of `timeframe` becomes final: until the current bar's
/// boundary has passed `settle` ago.
fn until_next_final(now: DateTime<Utc>, timeframe: Timeframe, settle: Duration) -> Duration {
    let cutoff = now - TimeDelta::from_std(settle).unwrap_or(TimeDelta::zero());
    until_next_boundary(cutoff, timeframe)
}

/// Venue time until the current bar of `timeframe` closes (bars align to the epoch for
/// intraday timeframes; daily bars are refreshed at least hourly).
fn until_next_boundary(now: DateTime<Utc>, timeframe: Timeframe) -> Duration {
    let len = timeframe
        .duration()
        .min(Duration::from_secs(3600))
        .as_millis() as i64;
    let ms = now.timestamp_millis();
    let next = (ms.div_euclid(len) + 1) * len;
    Duration::from_millis((next - ms) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bars_expire_at_the_next_boundary() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 15, 2, 30).unwrap();
        assert_eq!(
            until_next_boundary(now, Timeframe::Minutes(5)),
            Duration::from_secs(150)
        );
        assert_eq!(
            until_next_boundary(now, Timeframe::Minutes(1)),
            Duration::from_secs(30)
        );
        let on_boundary = Utc.with_ymd_and_hms(2026, 3, 2, 15, 5, 0).unwrap();
        assert_eq!(
            until_next_boundary(on_boundary, Timeframe::Minutes(5)),
            Duration::from_secs(300)
        );
        assert_eq!(
            VenueSpeed(100.0).to_real(Duration::from_secs(300)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn a_bar_is_final_settle_after_its_end_and_cached_until_the_next_one_is() {
        let settle = Duration::from_secs(15);
        let tf = Timeframe::Minutes(5);
        // 15:05:10: the 15:00 bar ended 10 s ago, within the settle time; 14:55 is the newest
        // final bar.
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 15, 5, 10).unwrap();
        let newest = newest_final_start(now, tf, settle);
        let start = |h, m| Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap();
        assert!(start(14, 55) <= newest && newest < start(15, 0), "{newest}");
        // The 15:00 bar becomes final at 15:05:15.
        assert_eq!(until_next_final(now, tf, settle), Duration::from_secs(5));
        // 15:05:20: now it is.
        let later = Utc.with_ymd_and_hms(2026, 3, 2, 15, 5, 20).unwrap();
        assert!(start(15, 0) <= newest_final_start(later, tf, settle));
        assert_eq!(
            until_next_final(later, tf, settle),
            Duration::from_secs(295)
        );
        // A daily bar is final once its day is over and settled.
        let day = newest_final_start(later, Timeframe::Day, settle);
        assert!(day < later - TimeDelta::days(1), "{day}");
    }

    #[tokio::test(start_paused = true)]
    async fn cached_bars_fewer_than_asked_for_or_older_than_the_newest_final_are_a_miss() {
        let cache = MarketCache::new(crate::metrics::Metrics::new());
        let spy = Symbol::parse("SPY").unwrap();
        let tf = Series {
            timeframe: Timeframe::Minutes(5),
            session: Session::Regular,
        };
        let settle = Duration::from_secs(15);
        let key = CacheKey::Bars {
            symbol: spy.clone(),
            timeframe: tf.timeframe,
            session: tf.session,
        };
        // Cut at 15:05:20, when the 15:00 bar was the newest final one.
        let fetched = Utc.with_ymd_and_hms(2026, 3, 2, 15, 5, 20).unwrap();
        let bars = CacheValue::Bars {
            bars: Arc::from(vec![]),
            depth: 20,
            cutoff: newest_final_start(fetched, tf.timeframe, settle),
        };
        // Cached for an hour: only what the bars are decides below, not the expiry.
        cache.put(key, bars, Duration::from_secs(3600));
        let spy = std::slice::from_ref(&spy);
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 3, 2, h, m, s).unwrap();
        let lookup = |series, depth, now| cached_bars(&cache, spy, series, depth, now, settle).1;
        let later = at(15, 10, 10);
        assert_eq!(lookup(tf, 20, later), [], "as deep: a hit");
        assert_eq!(lookup(tf, 10, later), [], "shallower: a hit");
        assert_eq!(lookup(tf, 21, later), spy, "deeper: a miss");
        // 15:10:15: the 15:05 bar is final; the cached window lacks it.
        assert_eq!(
            lookup(tf, 20, at(15, 10, 15)),
            spy,
            "a newer bar is final: a miss"
        );
        let minutes = Series {
            timeframe: Timeframe::Minutes(1),
            ..tf
        };
        assert_eq!(lookup(minutes, 20, later), spy, "another timeframe: a miss");
        let extended = Series {
            session: Session::Extended,
            ..tf
        };
        assert_eq!(lookup(extended, 20, later), spy, "another session: a miss");
    }

    #[test]
    fn a_window_covers_the_bars_final_up_to_the_next_bar_or_new_york_date() {
        let day = Timeframe::Day;
        let five = Timeframe::Minutes(5);
        let at = |d, h| Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap();
        // 04:00Z on the 3rd is still the 2nd in New York (EST, UTC-5); 05:00Z is the 3rd.
        assert!(covers(at(2, 15), at(3, 4), day));
        assert!(!covers(at(2, 15), at(3, 5), day));
        assert!(covers(at(2, 15), at(2, 15) + TimeDelta::minutes(4), five));
        assert!(!covers(at(2, 15), at(2, 15) + TimeDelta::minutes(5), five));
        assert!(
            covers(at(2, 15) + TimeDelta::minutes(5), at(2, 15), five),
            "cut later"
        );
    }
}
