//! The in-process cache and the CacheActor that owns its upkeep.
//!
//! The cache knows nothing of what it holds: the broker decides the keys and values (market
//! bars, the venue clock, positions, the account) and how long each lives. Readers on the hot
//! path (the BrokerActor's futures) use [`Cache`] directly: a `DashMap` lookup needs no actor
//! round trip. The CacheActor sweeps expired entries and answers [`GetCacheStats`] and
//! [`ClearCache`].
//!
//! Invariants:
//! - An entry is never served after its expiry, swept or not.
//! - Hit, miss and eviction counts only grow (`clear` empties the map, not the counters; the
//!   seed reset them, so its "counters" went backwards).

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use serde::Serialize;
use tokio::time::Instant;

use crate::domain::{Drain, DrainAck, ExitNotifier, ExitReason};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    expires_at: Instant,
}

/// Shared by the CacheActor and every reader; cloning shares the map.
pub struct Cache<K, V> {
    /// Hashed with foldhash, as [`crate::domain::SymbolMap`] is: the keys are the broker's own
    /// and every view looks a symbol's bars up here.
    map: Arc<DashMap<K, Entry<V>, foldhash::fast::RandomState>>,
    metrics: Arc<Metrics>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            map: Arc::clone(&self.map),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, MessageResponse, utoipa::ToSchema)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            map: Arc::new(DashMap::default()),
            metrics,
        }
    }

    /// The live value for `key`, counting a hit or a miss.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_if(key, |_| true)
    }

    /// The live value for `key` if `usable` accepts it (e.g. enough bars), counting a hit or a
    /// miss: a value the caller cannot use is a miss.
    pub fn get_if(&self, key: &K, usable: impl FnOnce(&V) -> bool) -> Option<V> {
        let now = Instant::now();
        let value = self
            .map
            .get(key)
            .filter(|e| e.expires_at > now && usable(&e.value))
            .map(|e| e.value.clone());
        self.metrics.cache_lookup(value.is_some());
        value
    }

    pub fn put(&self, key: K, value: V, ttl: Duration) {
        let expires_at = Instant::now() + ttl;
        self.map.insert(key, Entry { value, expires_at });
    }

    pub fn invalidate(&self, key: &K) {
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

/// What a key of a cache the CacheActor owns must be: hashable and owned by the actor's task.
pub trait Key: Eq + Hash + Unpin + 'static {}
impl<T: Eq + Hash + Unpin + 'static> Key for T {}

/// What a value of a cache the CacheActor owns must be: cloned out to readers.
pub trait Value: Clone + Unpin + 'static {}
impl<T: Clone + Unpin + 'static> Value for T {}

/// How often expired entries are swept (lookups already ignore them; this frees memory).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub struct CacheActor<K, V> {
    cache: Cache<K, V>,
    /// Tells the Supervisor why this incarnation ended.
    exit: ExitNotifier,
}

impl<K, V> CacheActor<K, V> {
    pub fn new(cache: Cache<K, V>, exit: ExitNotifier) -> Self {
        Self { cache, exit }
    }
}

impl<K: Key, V: Value> Actor for CacheActor<K, V> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_EVERY, |act, _| {
            act.cache.sweep();
        });
    }
}

/// The cache's size and its lifetime hit, miss and eviction counts.
#[derive(Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

impl<K: Key, V: Value> Handler<GetCacheStats> for CacheActor<K, V> {
    type Result = CacheStats;

    fn handle(&mut self, _: GetCacheStats, _: &mut Self::Context) -> CacheStats {
        self.cache.stats()
    }
}

/// Empties the cache; answers how many entries were dropped.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ClearCache;

impl<K: Key, V: Value> Handler<ClearCache> for CacheActor<K, V> {
    type Result = usize;

    fn handle(&mut self, _: ClearCache, _: &mut Self::Context) -> usize {
        let n = self.cache.clear();
        tracing::info!(cleared = n, "cache cleared");
        n
    }
}

impl<K: Key, V: Value> Handler<Drain> for CacheActor<K, V> {
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

    fn cache() -> Cache<&'static str, u32> {
        Cache::new(Metrics::new())
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_at_their_deadline_and_counters_survive_clear() {
        let c = cache();
        c.put("positions", 1, Duration::from_secs(2));
        assert_eq!(c.get(&"positions"), Some(1));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(c.get(&"positions"), None);
        assert_eq!(c.sweep(), 1);
        let before = c.stats();
        assert_eq!((before.hits, before.misses, before.evictions), (1, 1, 1));
        c.put("positions", 2, Duration::from_secs(2));
        assert_eq!(c.clear(), 1);
        let after = c.stats();
        assert_eq!((after.hits, after.misses, after.entries), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_the_reader_cannot_use_is_a_miss() {
        let c = cache();
        c.put("bars", 20, Duration::from_secs(60));
        assert_eq!(c.get_if(&"bars", |depth| *depth >= 20), Some(20));
        assert_eq!(c.get_if(&"bars", |depth| *depth >= 21), None);
        let stats = c.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
    }

    #[actix_web::test]
    async fn the_actor_answers_stats_and_clear_by_message() {
        let c = cache();
        c.put("clock", 1, Duration::from_secs(60));
        c.put("account", 2, Duration::from_secs(60));
        let (exit, _exited) = ExitNotifier::new();
        let actor = CacheActor::new(c.clone(), exit).start();
        assert_eq!(actor.send(GetCacheStats).await.unwrap().entries, 2);
        assert_eq!(actor.send(ClearCache).await.unwrap(), 2);
        assert_eq!(actor.send(GetCacheStats).await.unwrap().entries, 0);
        assert_eq!(c.get(&"clock"), None, "readers share the cleared map");
    }
}
