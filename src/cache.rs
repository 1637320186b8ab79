//! The market-data cache and the CacheActor that owns its upkeep.
//!
//! Readers on the hot path (the BrokerActor's futures) use [`Cache`] directly: a `DashMap`
//! lookup needs no actor round trip. The CacheActor sweeps expired entries, answers stats and
//! clears the map.
//!
//! Invariants:
//! - An entry is never served after its expiry, swept or not.
//! - Bars expire at the next bar boundary of the venue's clock, not after an arbitrary TTL:
//!   a closed bar never changes, and a new one appears exactly at the boundary.
//! - Hit, miss and eviction counts only grow (`clear` empties the map, not the counters; the
//!   seed reset them, so its "counters" went backwards).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use serde::Serialize;
use tokio::time::Instant;

use crate::broker::alpaca::models::{Account, Clock, Position};
use crate::domain::{Bar, Symbol, Timeframe};
use crate::metrics::Metrics;
use crate::supervisor::{Drain, DrainAck, ExitNotifier, ExitReason};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    Bars {
        symbol: Symbol,
        timeframe: Timeframe,
    },
    Clock,
    Positions,
    Account,
}

#[derive(Debug, Clone)]
pub enum CacheValue {
    /// The newest closed bars, oldest first, and how many were asked for: a later request for
    /// more bars than that is a miss.
    Bars {
        bars: Arc<[Bar]>,
        depth: usize,
    },
    /// The venue clock and when (real time) it was read, so readers can extrapolate it.
    Clock(Clock, Instant),
    Positions(Arc<[Position]>),
    Account(Box<Account>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: CacheValue,
    expires_at: Instant,
}

/// Shared by the CacheActor and every reader; cloning shares the map.
#[derive(Clone)]
pub struct Cache {
    map: Arc<DashMap<CacheKey, Entry>>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

impl Cache {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            map: Arc::new(DashMap::new()),
            metrics,
        }
    }

    /// The live value for `key`, counting a hit or a miss.
    pub fn get(&self, key: &CacheKey) -> Option<CacheValue> {
        let now = Instant::now();
        let value = self
            .map
            .get(key)
            .filter(|e| e.expires_at > now)
            .map(|e| e.value.clone());
        self.metrics.cache_lookup(value.is_some());
        value
    }

    /// The cached bars for `symbol` if at least `depth` were fetched, counting a hit or miss.
    pub fn bars(&self, symbol: &Symbol, timeframe: Timeframe, depth: usize) -> Option<Arc<[Bar]>> {
        let key = CacheKey::Bars {
            symbol: symbol.clone(),
            timeframe,
        };
        let now = Instant::now();
        let hit = self.map.get(&key).and_then(|e| match &e.value {
            CacheValue::Bars { bars, depth: d } if *d >= depth && e.expires_at > now => {
                Some(Arc::clone(bars))
            }
            _ => None,
        });
        self.metrics.cache_lookup(hit.is_some());
        hit
    }

    pub fn put(&self, key: CacheKey, value: CacheValue, ttl: Duration) {
        let expires_at = Instant::now() + ttl;
        self.map.insert(key, Entry { value, expires_at });
    }

    pub fn invalidate(&self, key: &CacheKey) {
        self.map.remove(key);
    }

    /// Removes expired entries; returns how many.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let before = self.map.len();
        self.map.retain(|_, e| e.expires_at > now);
        let evicted = before.saturating_sub(self.map.len());
        self.metrics.cache_evictions(evicted as u64);
        evicted
    }

    /// Empties the map; returns how many entries were dropped.
    pub fn clear(&self) -> usize {
        let n = self.map.len();
        self.map.clear();
        n
    }

    pub fn stats(&self) -> CacheStats {
        let (hits, misses, evictions) = self.metrics.cache_totals();
        CacheStats {
            entries: self.map.len(),
            hits,
            misses,
            evictions,
        }
    }
}

/// How often expired entries are swept (lookups already ignore them; this frees memory).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub struct CacheActor {
    cache: Cache,
    /// Tells the Supervisor why this incarnation ended.
    exit: ExitNotifier,
}

impl CacheActor {
    pub fn new(cache: Cache, exit: ExitNotifier) -> Self {
        Self { cache, exit }
    }
}

impl Actor for CacheActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_EVERY, |act, _| {
            act.cache.sweep();
        });
    }
}

#[derive(Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

impl Handler<GetCacheStats> for CacheActor {
    type Result = MessageResult<GetCacheStats>;

    fn handle(&mut self, _: GetCacheStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.cache.stats())
    }
}

/// Empties the cache; answers how many entries were dropped.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ClearCache;

impl Handler<ClearCache> for CacheActor {
    type Result = usize;

    fn handle(&mut self, _: ClearCache, _: &mut Self::Context) -> usize {
        let n = self.cache.clear();
        tracing::info!(cleared = n, "cache cleared");
        n
    }
}

impl Handler<Drain> for CacheActor {
    type Result = DrainAck;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> DrainAck {
        self.exit.set(ExitReason::Drained);
        ctx.stop();
        DrainAck::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Cache {
        Cache::new(Metrics::new())
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_at_their_deadline_and_counters_survive_clear() {
        let c = cache();
        c.put(
            CacheKey::Positions,
            CacheValue::Positions(Arc::from(vec![])),
            Duration::from_secs(2),
        );
        assert!(c.get(&CacheKey::Positions).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(c.get(&CacheKey::Positions).is_none());
        assert_eq!(c.sweep(), 1);
        let before = c.stats();
        assert_eq!((before.hits, before.misses, before.evictions), (1, 1, 1));
        c.put(
            CacheKey::Positions,
            CacheValue::Positions(Arc::from(vec![])),
            Duration::from_secs(2),
        );
        assert_eq!(c.clear(), 1);
        let after = c.stats();
        assert_eq!((after.hits, after.misses, after.entries), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deeper_bars_request_than_cached_is_a_miss() {
        let c = cache();
        let spy = Symbol::parse("SPY").unwrap();
        let tf = Timeframe::Minutes(5);
        let key = CacheKey::Bars {
            symbol: spy.clone(),
            timeframe: tf,
        };
        c.put(
            key,
            CacheValue::Bars {
                bars: Arc::from(vec![]),
                depth: 20,
            },
            Duration::from_secs(60),
        );
        assert!(c.bars(&spy, tf, 20).is_some());
        assert!(c.bars(&spy, tf, 10).is_some());
        assert!(c.bars(&spy, tf, 21).is_none());
    }
}
