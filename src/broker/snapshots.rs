//! The venue's clock, positions and account as every instance shares them: from the cache
//! while fresh, else from one upstream call shared by everyone asking at the same moment.
//!
//! Invariant: however many instances tick together, each of these is fetched at most once per
//! cache lifetime (`SNAPSHOT_TTL`), and herd's own fills invalidate positions and account.

use std::sync::Arc;
use std::time::Duration;

use super::alpaca::Operation;
use super::alpaca::models::{Account, Clock, Position};
use super::dedup::Inflight;
use super::gateway::Gateway;
use super::retry::RetryError;
use crate::cache::{Cache, CacheKey, CacheValue};
use crate::metrics::Metrics;

/// How long (real time) the clock, positions and account stay cached: short, because herd's
/// own orders and fills change them (and invalidate them explicitly too).
pub const SNAPSHOT_TTL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Snapshots {
    gateway: Gateway,
    cache: Cache,
    inflight: Inflight<CacheKey, Result<CacheValue, RetryError>>,
    metrics: Arc<Metrics>,
}

impl Snapshots {
    pub fn new(gateway: Gateway, cache: Cache, metrics: Arc<Metrics>) -> Self {
        Self {
            gateway,
            cache,
            inflight: Inflight::default(),
            metrics,
        }
    }

    pub async fn clock(&self) -> Result<Clock, RetryError> {
        match self.get(CacheKey::Clock, Operation::Clock).await? {
            CacheValue::Clock(c) => Ok(c),
            other => unreachable_value(other),
        }
    }

    pub async fn positions(&self) -> Result<Arc<[Position]>, RetryError> {
        match self.get(CacheKey::Positions, Operation::Positions).await? {
            CacheValue::Positions(p) => Ok(p),
            other => unreachable_value(other),
        }
    }

    pub async fn account(&self) -> Result<Account, RetryError> {
        match self.get(CacheKey::Account, Operation::Account).await? {
            CacheValue::Account(a) => Ok(*a),
            other => unreachable_value(other),
        }
    }

    async fn get(&self, key: CacheKey, op: Operation) -> Result<CacheValue, RetryError> {
        if let Some(v) = self.cache.get(&key) {
            return Ok(v);
        }
        let (gateway, cache, k) = (self.gateway.clone(), self.cache.clone(), key.clone());
        let (call, joined) = self.inflight.run(key, move || async move {
            let value = match k {
                CacheKey::Clock => gateway.clock().await.map(CacheValue::Clock),
                CacheKey::Positions => gateway
                    .positions()
                    .await
                    .map(|p| CacheValue::Positions(p.into())),
                _ => gateway
                    .account()
                    .await
                    .map(|a| CacheValue::Account(Box::new(a))),
            }?;
            cache.put(k, value.clone(), SNAPSHOT_TTL);
            Ok(value)
        });
        if joined {
            self.metrics.shared_read(op);
        }
        call.await
    }
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
