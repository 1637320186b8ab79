//! Assembling a [`MarketView`] for one strategy instance: the venue clock, the newest closed
//! bars, positions and (if asked) the account, each from the cache when it is still valid.
//!
//! Invariants:
//! - Bars for every symbol missing from the cache go out as ONE multi-symbol request per
//!   timeframe, never one request per symbol (the seed's "batching").
//! - Cached bars expire at the next bar boundary of the venue clock, converted to real time
//!   with the venue's speed.
//! - An instance sees its own positions (from the order book), never capped above what the
//!   account actually holds, so it cannot try to sell shares the account does not have.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;

use super::alpaca::models::{Account, Clock, Position};
use super::alpaca::{AlpacaClient, AlpacaError, BarsQuery, SortOrder};
use crate::cache::{Cache, CacheKey, CacheValue};
use crate::domain::{Bar, Symbol, Timeframe};
use crate::strategy::{AccountSnapshot, DataNeeds, MarketView};

/// How long (real time) the clock, positions and account stay cached: short, because herd's
/// own orders and fills change them (and invalidate them explicitly too).
const SNAPSHOT_TTL: Duration = Duration::from_millis(500);
/// Added to a bar's expiry so the venue has closed the next bar when herd asks for it.
const BOUNDARY_SLACK: Duration = Duration::from_millis(20);

/// Converts venue time to real time.
#[derive(Debug, Clone, Copy)]
pub struct VenueSpeed(pub f64);

impl VenueSpeed {
    pub fn to_real(self, venue: Duration) -> Duration {
        venue.div_f64(self.0.max(f64::MIN_POSITIVE))
    }
}

/// What an instance asked for.
pub struct ViewRequest {
    pub symbols: Vec<Symbol>,
    pub needs: DataNeeds,
    /// From the order book, taken when the request arrived.
    pub own_positions: HashMap<Symbol, Decimal>,
    pub pending: HashMap<Symbol, Decimal>,
}

pub async fn assemble(
    client: &AlpacaClient,
    cache: &Cache,
    speed: VenueSpeed,
    req: ViewRequest,
) -> Result<MarketView, AlpacaError> {
    let clock = clock(client, cache).await?;
    let mut view = MarketView {
        now: clock.timestamp,
        market_open: clock.is_open,
        pending: req.pending,
        ..MarketView::default()
    };
    if !clock.is_open && req.needs.only_when_open {
        return Ok(view);
    }
    view.bars = bars(
        client,
        cache,
        speed,
        &req.symbols,
        &req.needs,
        clock.timestamp,
    )
    .await?;
    let held = positions(client, cache).await?;
    view.positions = cap_to_account(req.own_positions, &held);
    if req.needs.account {
        let a = account(client, cache).await?;
        view.account = Some(AccountSnapshot {
            equity: a.equity,
            cash: a.cash,
            buying_power: a.buying_power,
        });
    }
    Ok(view)
}

async fn clock(client: &AlpacaClient, cache: &Cache) -> Result<Clock, AlpacaError> {
    if let Some(CacheValue::Clock(c)) = cache.get(&CacheKey::Clock) {
        return Ok(c);
    }
    let c = client.clock().await?;
    cache.put(CacheKey::Clock, CacheValue::Clock(c.clone()), SNAPSHOT_TTL);
    Ok(c)
}

pub async fn positions(
    client: &AlpacaClient,
    cache: &Cache,
) -> Result<Arc<[Position]>, AlpacaError> {
    if let Some(CacheValue::Positions(p)) = cache.get(&CacheKey::Positions) {
        return Ok(p);
    }
    let p: Arc<[Position]> = client.positions().await?.into();
    cache.put(
        CacheKey::Positions,
        CacheValue::Positions(Arc::clone(&p)),
        SNAPSHOT_TTL,
    );
    Ok(p)
}

async fn account(client: &AlpacaClient, cache: &Cache) -> Result<Account, AlpacaError> {
    if let Some(CacheValue::Account(a)) = cache.get(&CacheKey::Account) {
        return Ok(*a);
    }
    let a = client.account().await?;
    cache.put(
        CacheKey::Account,
        CacheValue::Account(Box::new(a.clone())),
        SNAPSHOT_TTL,
    );
    Ok(a)
}

/// An instance's own position, limited to what the account holds on the same side.
fn cap_to_account(own: HashMap<Symbol, Decimal>, held: &[Position]) -> HashMap<Symbol, Decimal> {
    own.into_iter()
        .map(|(symbol, qty)| {
            let account = held
                .iter()
                .find(|p| p.symbol == symbol.as_str())
                .map_or(Decimal::ZERO, |p| p.qty);
            let capped = if qty > Decimal::ZERO {
                qty.min(account.max(Decimal::ZERO))
            } else {
                qty.max(account.min(Decimal::ZERO))
            };
            if capped != qty {
                tracing::warn!(
                    symbol = %symbol, own = %qty, account = %account,
                    "instance position exceeds the account's; using the account's"
                );
            }
            (symbol, capped)
        })
        .collect()
}

async fn bars(
    client: &AlpacaClient,
    cache: &Cache,
    speed: VenueSpeed,
    symbols: &[Symbol],
    needs: &DataNeeds,
    now: DateTime<Utc>,
) -> Result<HashMap<Symbol, Arc<[Bar]>>, AlpacaError> {
    let mut out = HashMap::with_capacity(symbols.len());
    let mut missing = Vec::new();
    for s in symbols {
        match cache.bars(s, needs.timeframe, needs.bars) {
            Some(b) => {
                out.insert(s.clone(), b);
            }
            None => missing.push(s.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let ttl = speed.to_real(until_next_boundary(now, needs.timeframe)) + BOUNDARY_SLACK;
    // First a window that holds `bars` bars of continuous trading; symbols still short of
    // bars (nights, weekends, holidays in the window) get one wider request.
    let mut fetched = fetch(client, &missing, needs, now, 3).await?;
    let short: Vec<Symbol> = missing
        .iter()
        .filter(|s| fetched.get(*s).map_or(0, Vec::len) < needs.bars)
        .cloned()
        .collect();
    if !short.is_empty() {
        fetched.extend(fetch(client, &short, needs, now, 40).await?);
    }
    for s in missing {
        let mut series = fetched.remove(&s).unwrap_or_default();
        series.sort_by_key(|b| b.time);
        series.dedup_by_key(|b| b.time);
        let newest: Arc<[Bar]> = series[series.len().saturating_sub(needs.bars)..].into();
        let value = CacheValue::Bars {
            bars: Arc::clone(&newest),
            depth: needs.bars,
        };
        cache.put(
            CacheKey::Bars {
                symbol: s.clone(),
                timeframe: needs.timeframe,
            },
            value,
            ttl,
        );
        out.insert(s, newest);
    }
    Ok(out)
}

async fn fetch(
    client: &AlpacaClient,
    symbols: &[Symbol],
    needs: &DataNeeds,
    now: DateTime<Utc>,
    widen: u32,
) -> Result<HashMap<Symbol, Vec<Bar>>, AlpacaError> {
    let span = needs
        .timeframe
        .duration()
        .saturating_mul(needs.bars as u32)
        .saturating_mul(widen);
    let span = TimeDelta::from_std(span).unwrap_or(TimeDelta::days(365));
    let query = BarsQuery {
        symbols: symbols.to_vec(),
        timeframe: needs.timeframe,
        start: now - span,
        end: Some(now),
        sort: SortOrder::Asc,
    };
    client.bars(&query).await
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
    fn own_position_is_capped_by_the_account() {
        let spy = Symbol::parse("SPY").unwrap();
        let held: Vec<Position> = serde_json::from_value(serde_json::json!([
            {"symbol":"SPY","qty":"4","avg_entry_price":"100"}
        ]))
        .unwrap();
        let own = HashMap::from([(spy.clone(), Decimal::from(10))]);
        assert_eq!(cap_to_account(own, &held)[&spy], Decimal::from(4));
        let own = HashMap::from([(spy.clone(), Decimal::from(3))]);
        assert_eq!(cap_to_account(own, &held)[&spy], Decimal::from(3));
        let own = HashMap::from([(spy.clone(), Decimal::from(3))]);
        assert_eq!(cap_to_account(own, &[])[&spy], Decimal::ZERO);
    }
}
