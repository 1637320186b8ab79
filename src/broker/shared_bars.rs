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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::market::Series;
use crate::domain::{
    Bar, HumanDuration, InvalidSetting, REPEAT_SUMMARY, Repeats, Say, Secret, Symbol,
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
    ) -> (HashMap<Symbol, Arc<[Bar]>>, Vec<Symbol>) {
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
    ) -> (HashMap<Symbol, Arc<[Bar]>>, Vec<Symbol>) {
        let Some(inner) = &self.inner else {
            return (HashMap::new(), symbols.to_vec());
        };
        if symbols.is_empty() {
            return (HashMap::new(), Vec::new());
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
            None => return (HashMap::new(), symbols.to_vec()),
        };
        let mut hits = HashMap::new();
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
    ) -> (HashMap<Symbol, Arc<[Bar]>>, Vec<Symbol>) {
        let mut arrived = HashMap::new();
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
        fetched: &HashMap<Symbol, Arc<[Bar]>>,
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
mod tests {
    //! Against a real redis-server (`HERD_TEST_REDIS`, which `scripts/test` starts).

    use chrono::TimeZone;

    use super::*;
    use crate::domain::{Session, Timeframe};

    fn settings(prefix: &str, fetch_lock: Duration) -> RedisSettings {
        RedisSettings {
            url: Secret::new(
                &std::env::var("HERD_TEST_REDIS")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            ),
            prefix: prefix.into(),
            timeout: HumanDuration(Duration::from_secs(2)),
            fetch_lock: HumanDuration(fetch_lock),
        }
    }

    /// Two replicas' views of one Redis, under a prefix of this test's own.
    fn replicas(test: &str, fetch_lock: Duration) -> (SharedBars, SharedBars) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("herd-unit-{test}-{}-{nanos}", std::process::id());
        let one = || {
            SharedBars::new(&settings(&prefix, fetch_lock), "iex", "all", Metrics::new()).unwrap()
        };
        (one(), one())
    }

    fn symbols(names: &[&str]) -> Vec<Symbol> {
        names.iter().map(|n| Symbol::parse(n).unwrap()).collect()
    }

    const SERIES: Series = Series {
        timeframe: Timeframe::Minutes(5),
        session: Session::Regular,
    };

    fn newest() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 17, 25, 0).unwrap()
    }

    fn bars(n: usize) -> Arc<[Bar]> {
        (0..n)
            .map(|i| Bar {
                time: newest() - chrono::TimeDelta::minutes(5 * i as i64),
                open: 100.0,
                high: 101.0,
                low: 99.0,
                close: 100.0 + i as f64,
                volume: 1000.0,
                trades: Some(10.0),
                vwap: None,
            })
            .rev()
            .collect()
    }

    /// A Redis that answers, or the test fails: it never passes for want of a server.
    async fn assert_up(shared: &SharedBars) {
        let (_, missing) = shared.get(&symbols(&["SPY"]), SERIES, 1, newest()).await;
        assert_eq!(missing.len(), 1);
        assert_eq!(
            shared.health().state,
            "ok",
            "{:?}",
            shared.health().last_error
        );
    }

    #[tokio::test]
    async fn one_replica_fetches_a_claimed_bar_set_and_the_other_reads_it() {
        let (a, b) = replicas("claim", Duration::from_secs(5));
        assert_up(&a).await;
        let (mine, theirs) = a.claim(symbols(&["SPY", "QQQ"]), SERIES, newest()).await;
        assert_eq!((mine.len(), theirs.len()), (2, 0));
        let (mine, theirs) = b
            .claim(symbols(&["SPY", "QQQ", "IWM"]), SERIES, newest())
            .await;
        assert_eq!(
            mine,
            symbols(&["IWM"]),
            "only the unclaimed symbol is b's to fetch"
        );
        assert_eq!(theirs, symbols(&["SPY", "QQQ"]));

        let fetched: HashMap<Symbol, Arc<[Bar]>> = symbols(&["SPY", "QQQ"])
            .into_iter()
            .map(|s| (s, bars(20)))
            .collect();
        let writer = a.clone();
        let put = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            writer
                .put(&fetched, SERIES, 20, newest(), Duration::from_secs(30))
                .await;
        });
        let (arrived, missing) = b.wait_for(theirs, SERIES, 20, newest()).await;
        put.await.unwrap();
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(arrived.len(), 2);
        assert_eq!(&*arrived[&symbols(&["SPY"])[0]], &*bars(20));
        // Fewer bars than stored are cut to the newest; more than stored are a miss.
        let (hits, _) = b.get(&symbols(&["SPY"]), SERIES, 5, newest()).await;
        assert_eq!(&*hits[&symbols(&["SPY"])[0]], &bars(20)[15..]);
        let (hits, missing) = b.get(&symbols(&["SPY"]), SERIES, 21, newest()).await;
        assert!(hits.is_empty());
        assert_eq!(missing.len(), 1);
        // Another bar set (the next bar final) shares nothing with this one.
        let later = newest() + chrono::TimeDelta::minutes(5);
        let (hits, _) = b.get(&symbols(&["SPY"]), SERIES, 20, later).await;
        assert!(hits.is_empty());
    }

    #[tokio::test]
    async fn a_claim_never_fulfilled_is_fetched_after_it_runs_out() {
        let (a, b) = replicas("stale", Duration::from_millis(150));
        assert_up(&a).await;
        a.claim(symbols(&["SPY"]), SERIES, newest()).await;
        let (_, theirs) = b.claim(symbols(&["SPY"]), SERIES, newest()).await;
        assert_eq!(theirs.len(), 1);
        // a died before storing: b waits out the claim, then fetches itself.
        let (arrived, missing) = b.wait_for(theirs, SERIES, 20, newest()).await;
        assert!(arrived.is_empty());
        assert_eq!(missing, symbols(&["SPY"]));
    }

    #[tokio::test]
    async fn no_redis_shares_nothing_and_fetches_everything() {
        let off = SharedBars::off();
        assert_eq!(off.health().state, "off");
        let (hits, missing) = off.get(&symbols(&["SPY"]), SERIES, 20, newest()).await;
        assert!(hits.is_empty());
        assert_eq!(missing.len(), 1);
        let (mine, theirs) = off.claim(symbols(&["SPY"]), SERIES, newest()).await;
        assert_eq!((mine.len(), theirs.len()), (1, 0));
    }

    #[test]
    fn settings_name_the_key_and_what_is_allowed() {
        let mut s = settings("herd", Duration::from_secs(2));
        assert!(s.check().is_ok());
        s.prefix = "two words".into();
        assert!(s.check().unwrap_err().to_string().contains("redis.prefix"));
        let mut s = settings("herd", Duration::ZERO);
        assert!(
            s.check()
                .unwrap_err()
                .to_string()
                .contains("redis.fetch_lock")
        );
        s = settings("herd", Duration::from_secs(2));
        s.url = Secret::new("http://not-redis");
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("redis.url") && !e.contains("not-redis"), "{e}");
    }
}
