//! The market-data cache shared by replicas: final bars in Redis, the L2 behind each process's
//! in-memory cache, so that replicas trading the same symbols fetch each bar set once.
//!
//! A key names everything that makes two bar sets the same: the feed, the adjustment, the
//! timeframe, the session filter, the symbol, and the newest final bar's start (so an entry is
//! never read for a later bar, and it expires when the next bar becomes final). Before fetching
//! what Redis lacks, a replica claims each symbol with a short lock (`SET NX PX`); symbols
//! another replica has claimed are waited for, then fetched anyway if they have not appeared by
//! the lock's end — a slow or dead replica costs a delay, never data.
//!
//! Invariants:
//! - Redis is an optimisation: every error or timeout falls back to the venue, is counted
//!   (`herd_shared_cache_requests_total{outcome="error"}`), logged when it starts and once a
//!   minute after, and shows as `degraded` on `/health`; readiness never depends on it.
//! - Every Redis call is bounded by `redis.timeout`, and a lost connection is retried at most
//!   once per `RECONNECT_EVERY`, so a Redis that hangs cannot stall a tick.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::market::Series;
use crate::domain::{
    Bar, HumanDuration, InvalidSetting, REPEAT_SUMMARY, Repeats, Say, Secret, Symbol, SymbolMap,
};
use crate::metrics::{Metrics, SharedCacheOutcome};

/// A connection lost or never made is tried again at most this often.
const RECONNECT_EVERY: Duration = Duration::from_secs(5);
/// How often symbols another replica is fetching are looked for.
const POLL: Duration = Duration::from_millis(20);

/// `[redis]`: where the shared parts live (empty `url`: nothing is shared).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`; empty turns sharing off. May hold a password: never printed.
    #[serde(default)]
    pub url: Secret,
    /// Prepended to every key, so that deployments can share one Redis.
    pub prefix: String,
    /// The longest any one Redis call may take.
    pub timeout: HumanDuration,
    /// How long a replica's claim on fetching a symbol's bars holds off the others.
    pub fetch_lock: HumanDuration,
}

impl RedisSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.url.is_set() && redis::Client::open(self.url.expose()).is_err() {
            return Err(InvalidSetting::new(
                "redis.url",
                "(redacted)",
                "must be a Redis URL: redis://[user:password@]host[:port][/db], or empty to share nothing",
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(InvalidSetting::new(
                "redis.prefix",
                format!("{:?}", self.prefix),
                "must be a non-empty key prefix without spaces",
            ));
        }
        for (key, value, max) in [
            ("redis.timeout", self.timeout, Duration::from_secs(10)),
            ("redis.fetch_lock", self.fetch_lock, Duration::from_secs(60)),
        ] {
            if value.get().is_zero() || value.get() > max {
                return Err(InvalidSetting::new(
                    key,
                    value,
                    format!("must be more than 0 and at most {}", HumanDuration(max)),
                ));
            }
        }
        Ok(())
    }
}

/// What herd's shared cache is doing, for `/health`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SharedCacheHealth {
    /// `off` (no `redis.url`), `ok`, or `degraded` (Redis unreachable: each replica fetches
    /// for itself).
    pub state: &'static str,
    pub last_error: Option<String>,
}

/// Bar sets found (each cut to the depth asked for), and the symbols still without one.
pub type Found = (SymbolMap<Arc<[Bar]>>, Vec<Symbol>);

/// Bars as stored: how many were asked for, and the newest of them, oldest first.
#[derive(Serialize, Deserialize)]
struct Stored {
    depth: usize,
    bars: Vec<Bar>,
}

/// The shared cache (cloning shares it); `off` when no Redis is configured.
#[derive(Clone)]
pub struct SharedBars {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: redis::Client,
    connection: tokio::sync::Mutex<Connection>,
    prefix: String,
    timeout: Duration,
    fetch_lock: Duration,
    /// The venue's feed and adjustment: part of every key.
    flavour: String,
    failures: Repeats,
    last_error: Mutex<Option<String>>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Connection {
    manager: Option<ConnectionManager>,
    /// No reconnection before this.
    retry_at: Option<Instant>,
}

impl SharedBars {
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// The shared cache for `settings`; `feed` and `adjustment` are the venue endpoint's. A bad
    /// URL is a configuration error; an unreachable Redis is not (herd runs degraded and keeps
    /// trying).
    pub fn new(
        settings: &RedisSettings,
        feed: &str,
        adjustment: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, redis::RedisError> {
        let url = settings.url.expose();
        if url.is_empty() {
            return Ok(Self::off());
        }
        let client = redis::Client::open(url)?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                client,
                connection: tokio::sync::Mutex::new(Connection::default()),
                prefix: settings.prefix.clone(),
                timeout: settings.timeout.get(),
                fetch_lock: settings.fetch_lock.get(),
                flavour: format!("{feed}:{adjustment}"),
                failures: Repeats::new(REPEAT_SUMMARY),
                last_error: Mutex::new(None),
                metrics,
            })),
        })
    }

    pub fn health(&self) -> SharedCacheHealth {
        let Some(inner) = &self.inner else {
            return SharedCacheHealth {
                state: "off",
                last_error: None,
            };
        };
        let last_error = inner
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        SharedCacheHealth {
            state: if last_error.is_some() {
                "degraded"
            } else {
                "ok"
            },
            last_error,
        }
    }

    /// The symbols' bars other replicas stored for the bar set ending at `newest`, each cut to
    /// `depth`; the symbols Redis lacks (all of them when it is off or failing).
    pub async fn get(
        &self,
        symbols: &[Symbol],
        series: Series,
        depth: usize,
        newest: DateTime<Utc>,
    ) -> Found {
        let (hits, misses) = self.look_up(symbols, series, depth, newest).await;
        if let Some(inner) = &self.inner {
            inner.count(SharedCacheOutcome::Hit, hits.len());
            inner.count(SharedCacheOutcome::Miss, misses.len());
        }
        (hits, misses)
    }

    /// [`SharedBars::get`] without counting (a wait looks the same symbols up many times).
    async fn look_up(
        &self,
        symbols: &[Symbol],
        series: Series,
        depth: usize,
        newest: DateTime<Utc>,
    ) -> Found {
        let Some(inner) = &self.inner else {
            return (SymbolMap::default(), symbols.to_vec());
        };
        if symbols.is_empty() {
            return (SymbolMap::default(), Vec::new());
        }
        let keys: Vec<String> = symbols
            .iter()
            .map(|s| inner.key("bars", series, newest, s))
            .collect();
        let values: Vec<Option<String>> = match inner
            .run(|mut c| async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await })
            .await
        {
            Some(v) => v,
            None => return (SymbolMap::default(), symbols.to_vec()),
        };
        let mut hits = SymbolMap::default();
        let mut misses = Vec::new();
        for (symbol, value) in symbols.iter().zip(values) {
            let stored = value.and_then(|v| serde_json::from_str::<Stored>(&v).ok());
            match stored {
                Some(s) if s.depth >= depth => {
                    let from = s.bars.len().saturating_sub(depth);
                    hits.insert(symbol.clone(), Arc::from(&s.bars[from..]));
                }
                _ => misses.push(symbol.clone()),
            }
        }
        (hits, misses)
    }

    /// Claims the fetching of each symbol's bar set; returns (claimed, claimed by another
    /// replica). Off or failing, every symbol is this replica's to fetch.
    pub async fn claim(
        &self,
        symbols: Vec<Symbol>,
        series: Series,
        newest: DateTime<Utc>,
    ) -> (Vec<Symbol>, Vec<Symbol>) {
        let Some(inner) = &self.inner else {
            return (symbols, Vec::new());
        };
        if symbols.is_empty() {
            return (symbols, Vec::new());
        }
        let lock_ms = inner.fetch_lock.as_millis() as u64;
        let mut pipe = redis::pipe();
        for s in &symbols {
            pipe.cmd("SET")
                .arg(inner.key("fetching", series, newest, s))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(lock_ms);
        }
        let claimed: Vec<Option<String>> = match inner
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await
        {
            Some(v) => v,
            None => return (symbols, Vec::new()),
        };
        let (mine, theirs): (Vec<_>, Vec<_>) = symbols
            .into_iter()
            .zip(claimed)
            .partition(|(_, ok)| ok.is_some());
        (
            mine.into_iter().map(|(s, _)| s).collect(),
            theirs.into_iter().map(|(s, _)| s).collect(),
        )
    }

    /// Waits for bar sets other replicas claimed, until their claims run out; returns those
    /// that arrived and those still missing (to be fetched here).
    pub async fn wait_for(
        &self,
        mut symbols: Vec<Symbol>,
        series: Series,
        depth: usize,
        newest: DateTime<Utc>,
    ) -> Found {
        let mut arrived = SymbolMap::default();
        let Some(inner) = &self.inner else {
            return (arrived, symbols);
        };
        let until = Instant::now() + inner.fetch_lock;
        while !symbols.is_empty() && Instant::now() < until {
            tokio::time::sleep(POLL).await;
            let (hits, misses) = self.look_up(&symbols, series, depth, newest).await;
            arrived.extend(hits);
            symbols = misses;
            if inner.is_failing() {
                break;
            }
        }
        // Each symbol once: a hit if another replica's fetch came in time, else a miss.
        inner.count(SharedCacheOutcome::Hit, arrived.len());
        inner.count(SharedCacheOutcome::Miss, symbols.len());
        (arrived, symbols)
    }

    /// Stores freshly fetched bar sets until the next bar is final (`ttl`, real time).
    pub async fn put(
        &self,
        fetched: &SymbolMap<Arc<[Bar]>>,
        series: Series,
        depth: usize,
        newest: DateTime<Utc>,
        ttl: Duration,
    ) {
        let Some(inner) = &self.inner else { return };
        if fetched.is_empty() {
            return;
        }
        let ttl_ms = (ttl.as_millis() as u64).max(1);
        let mut pipe = redis::pipe();
        for (symbol, bars) in fetched {
            let stored = Stored {
                depth,
                bars: bars.to_vec(),
            };
            let Ok(text) = serde_json::to_string(&stored) else {
                continue;
            };
            pipe.cmd("SET")
                .arg(inner.key("bars", series, newest, symbol))
                .arg(text)
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        let _: Option<()> = inner
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await;
    }
}

impl Inner {
    fn key(&self, what: &str, series: Series, newest: DateTime<Utc>, symbol: &Symbol) -> String {
        format!(
            "{}:{what}:{}:{}:{}:{}:{}",
            self.prefix,
            self.flavour,
            series.timeframe,
            series.session.as_str(),
            newest.timestamp_millis(),
            symbol.as_str()
        )
    }

    fn count(&self, outcome: SharedCacheOutcome, n: usize) {
        if n > 0 {
            self.metrics.shared_cache.count(outcome, n as u64);
        }
    }

    fn is_failing(&self) -> bool {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Runs one call on the connection (made first if need be) within the timeout; `None` on
    /// any failure, which is counted and logged.
    async fn run<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let manager = self.connection().await?;
        match tokio::time::timeout(self.timeout, call(manager)).await {
            Ok(Ok(value)) => {
                self.recovered();
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed(e.to_string());
                None
            }
            Err(_) => {
                self.failed(format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut c = self.connection.lock().await;
        if let Some(m) = &c.manager {
            return Some(m.clone());
        }
        if c.retry_at.is_some_and(|at| Instant::now() < at) {
            self.count(SharedCacheOutcome::Error, 1);
            return None;
        }
        let made =
            tokio::time::timeout(self.timeout, ConnectionManager::new(self.client.clone())).await;
        match made {
            Ok(Ok(m)) => {
                c.manager = Some(m.clone());
                c.retry_at = None;
                Some(m)
            }
            Ok(Err(e)) => {
                c.retry_at = Some(Instant::now() + RECONNECT_EVERY);
                drop(c);
                self.failed(e.to_string());
                None
            }
            Err(_) => {
                c.retry_at = Some(Instant::now() + RECONNECT_EVERY);
                drop(c);
                self.failed(format!("no connection within {:?}", self.timeout));
                None
            }
        }
    }

    fn failed(&self, error: String) {
        self.count(SharedCacheOutcome::Error, 1);
        self.metrics.shared_cache.up(false);
        match self.failures.note() {
            Say::Started { earlier } => tracing::warn!(
                event = "shared_cache_degraded", error = %error, earlier_unreported = earlier,
                "Redis unreachable; fetching market data from the venue (further errors are summarized once a minute)"
            ),
            Say::Summary { count, over } => tracing::warn!(
                event = "shared_cache_degraded", errors = count, seconds = over.as_secs(),
                latest_error = %error, "Redis still unreachable"
            ),
            Say::Quiet => {}
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
    }

    fn recovered(&self) {
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.take().is_some() {
            self.metrics.shared_cache.up(true);
            tracing::info!(event = "shared_cache_recovered", "Redis reachable again");
        }
    }
}

#[cfg(test)]
mod tests;
