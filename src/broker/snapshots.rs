//! The venue's clock, positions and account as every instance shares them: from the cache
//! while fresh, else from one upstream call shared by everyone asking at the same moment.
//!
//! Invariants:
//! - However many instances tick together, each of these is fetched at most once per cache
//!   lifetime (`SNAPSHOT_TTL`), and herd's own accepted orders and fills invalidate positions and
//!   account ([`Snapshots::invalidate_holdings`]).
//! - A reading taken before an invalidation never serves after it: each snapshot has a
//!   generation, bumped by invalidation; a fetch caches its answer only if the generation did
//!   not move while it ran, and requests after an invalidation never join a fetch from before.
//!   (Otherwise the risk gate could judge an order by positions from before the last fill.)
//! - The clock is never stale: a cached reading is advanced by the real time since it was taken
//!   times the venue's speed (an accelerated simulator moves minutes in 500 ms), and it is
//!   read afresh once that would cross the next open or close.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::alpaca::models::{Account, Clock, Position};
use super::cached::{CacheKey, CacheValue, MarketCache};
use super::dedup::Inflight;
use super::gateway::Gateway;
use super::market::VenueSpeed;
use super::retry::RetryError;
use crate::domain::{AccountId, Operation};
use crate::metrics::Metrics;

/// How long (real time) the clock, positions and account stay cached: short, because herd's
/// own orders and fills change them (and invalidate them explicitly too).
pub const SNAPSHOT_TTL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Snapshots {
    /// Whose positions and account these are (the clock is everyone's).
    account: AccountId,
    gateway: Gateway,
    cache: MarketCache,
    /// Calls in flight, keyed by what they fetch and the generation they fetch for.
    inflight: Inflight<(CacheKey, u64), Result<CacheValue, RetryError>>,
    /// One generation per [`Snapshot`], bumped by every invalidation.
    generations: Arc<[AtomicU64; 3]>,
    metrics: Arc<Metrics>,
    speed: VenueSpeed,
}

impl Snapshots {
    pub fn new(
        account: AccountId,
        gateway: Gateway,
        cache: MarketCache,
        metrics: Arc<Metrics>,
        speed: VenueSpeed,
    ) -> Self {
        Self {
            account,
            gateway,
            cache,
            inflight: Inflight::default(),
            generations: Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]),
            metrics,
            speed,
        }
    }

    /// The venue clock now: a cached reading advanced to the present, or a fresh one.
    pub async fn clock(&self) -> Result<Clock, RetryError> {
        if let Some(CacheValue::Clock(c, read_at)) = self.cache.get(&CacheKey::Clock)
            && let Some(now) = advance(&c, read_at.elapsed(), self.speed)
        {
            return Ok(now);
        }
        self.cache.invalidate(&CacheKey::Clock);
        match self.get(Snapshot::Clock).await? {
            CacheValue::Clock(c, _) => Ok(c),
            other => unreachable_value(other),
        }
    }

    pub async fn positions(&self) -> Result<Arc<[Position]>, RetryError> {
        match self.get(Snapshot::Positions).await? {
            CacheValue::Positions(p) => Ok(p),
            other => unreachable_value(other),
        }
    }

    pub async fn account(&self) -> Result<Account, RetryError> {
        match self.get(Snapshot::Account).await? {
            CacheValue::Account(a) => Ok(*a),
            other => unreachable_value(other),
        }
    }

    /// Drops the cached positions and account: herd's own order changed them at the venue.
    pub fn invalidate_holdings(&self) {
        for which in [Snapshot::Positions, Snapshot::Account] {
            self.generations[which.slot()].fetch_add(1, Ordering::AcqRel);
            self.cache
                .invalidate(&which.key_and_operation(&self.account).0);
        }
    }

    async fn get(&self, which: Snapshot) -> Result<CacheValue, RetryError> {
        let (key, op) = which.key_and_operation(&self.account);
        if let Some(v) = self.cache.get(&key) {
            return Ok(v);
        }
        let generation = self.generations[which.slot()].load(Ordering::Acquire);
        let current = Arc::clone(&self.generations);
        let (gateway, cache, k) = (self.gateway.clone(), self.cache.clone(), key.clone());
        let (call, joined) = self.inflight.run((key, generation), move || async move {
            let value = match which {
                Snapshot::Clock => gateway
                    .clock()
                    .await
                    .map(|c| CacheValue::Clock(c, tokio::time::Instant::now())),
                Snapshot::Positions => gateway
                    .positions()
                    .await
                    .map(|p| CacheValue::Positions(p.into())),
                Snapshot::Account => gateway
                    .account()
                    .await
                    .map(|a| CacheValue::Account(Box::new(a))),
            }?;
            // Invalidated while this ran: the answer may predate the change; serve it to the
            // callers who asked before, but do not keep it.
            if current[which.slot()].load(Ordering::Acquire) == generation {
                cache.put(k, value.clone(), SNAPSHOT_TTL);
            }
            Ok(value)
        });
        if joined {
            self.metrics.shared_read(op);
        }
        call.await
    }
}

/// What [`Snapshots`] fetches.
#[derive(Debug, Clone, Copy)]
enum Snapshot {
    Clock,
    Positions,
    Account,
}

impl Snapshot {
    fn slot(self) -> usize {
        match self {
            Snapshot::Clock => 0,
            Snapshot::Positions => 1,
            Snapshot::Account => 2,
        }
    }

    fn key_and_operation(self, account: &AccountId) -> (CacheKey, Operation) {
        match self {
            Snapshot::Clock => (CacheKey::Clock, Operation::Clock),
            Snapshot::Positions => (CacheKey::Positions(account.clone()), Operation::Positions),
            Snapshot::Account => (CacheKey::Account(account.clone()), Operation::Account),
        }
    }
}

/// `clock` as it reads `real` later at `speed`, or `None` once that crosses the next open or
/// close (the session state may have changed: read it again).
fn advance(clock: &Clock, real: Duration, speed: VenueSpeed) -> Option<Clock> {
    let venue = chrono::TimeDelta::from_std(real.mul_f64(speed.0.max(0.0))).ok()?;
    let now = clock.timestamp + venue;
    (now < clock.next_open.min(clock.next_close)).then(|| Clock {
        timestamp: now,
        ..clock.clone()
    })
}

/// Each key is only ever stored with its own kind of value.
fn unreachable_value<T>(value: CacheValue) -> Result<T, RetryError> {
    Err(RetryError::GaveUp {
        error: super::alpaca::AlpacaError::Malformed {
            op: Operation::Clock,
            detail: format!("cache held the wrong kind of value: {value:?}"),
        },
        reason: super::retry::GiveUp::NotRetryable,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn a_cached_clock_moves_with_the_venue_until_the_session_changes() {
        let t = |h, m| Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap();
        let open = Clock {
            timestamp: t(15, 0),
            is_open: true,
            next_open: t(23, 0) + chrono::TimeDelta::hours(10),
            next_close: t(21, 0),
        };
        let later = advance(&open, Duration::from_secs(3), VenueSpeed(100.0)).unwrap();
        assert_eq!(
            later.timestamp,
            t(15, 5),
            "3 real seconds at 100x are 5 venue minutes"
        );
        assert!(later.is_open);
        assert!(
            advance(&open, Duration::from_secs(216), VenueSpeed(100.0)).is_none(),
            "past the close: read again"
        );
    }
}
