//! The outbound request limiter: keeps herd under the account's request quota so that the venue
//! never has to answer 429, and keeps a share of that quota for orders that reads cannot touch.
//!
//! Two governor (GCRA) direct limiters: `all`, which every request takes, runs at
//! `requests_per_minute × headroom` with the rest of the quota as its burst, so that a full burst
//! plus a minute of refill is the quota (a burst as large as the quota would allow twice the quota
//! within one minute); `reads`, which reads take first, runs at `read_share` of that, burst
//! included. Orders take only `all`.
//!
//! Invariants:
//! - Reads can use at most `read_share` of the sustained rate (and of the burst): the rest is
//!   always left for orders, which therefore find a token within about one replenish interval
//!   of `all` even while reads saturate their share.
//! - A caller never queues past its class's max wait: when governor says the next token is
//!   further away than that, the caller gets [`Saturated`] at once instead of sleeping first.
//! - Time is tokio time (see [`TokioClock`]): waits are `tokio::time::sleep`, so paused-time tests
//!   are exact and a cancelled acquire holds nothing.
//! - The quota counts per *venue* minute, whose real length the caller passes: one minute against
//!   Alpaca, 0.6 s against a simulator at 100× (which counts its own quota the same way), so a
//!   demo's requests per venue minute are what they would be in real time.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::domain::{HumanDuration, InvalidSetting, RequestClass, positive};

/// `[broker.limiter]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimiterConfig {
    /// The account's quota (Alpaca: 200 per minute, paper and live alike).
    pub requests_per_minute: u32,
    /// Fraction of the quota herd plans to use steadily; the rest absorbs bursts.
    pub headroom: f64,
    /// Fraction of herd's rate reads may take; the remainder is reserved for orders (1 for an
    /// API that takes no orders, such as market data).
    pub read_share: f64,
    /// A read that would queue longer fails instead: stale data is worse than a skipped tick.
    pub read_max_wait: HumanDuration,
    /// An order queues up to this long: it is worth waiting for, but not forever.
    pub order_max_wait: HumanDuration,
}

impl LimiterConfig {
    /// `key` is where the section sits in the configuration (`broker.limiter`, `broker.data_limiter`).
    pub fn check(&self, key: &str) -> Result<(), InvalidSetting> {
        let rpm = self.requests_per_minute;
        if !(2..=100_000).contains(&rpm) {
            let allowed = "must be between 2 and 100000";
            return Err(InvalidSetting::new(
                format!("{key}.requests_per_minute"),
                rpm,
                allowed,
            ));
        }
        let h = self.headroom;
        if !(h > 0.0 && h < 1.0) {
            let allowed =
                "must be between 0 and 1 (both exclusive): the rest of the quota absorbs bursts";
            return Err(InvalidSetting::new(format!("{key}.headroom"), h, allowed));
        }
        let s = self.read_share;
        // 1 reserves nothing for orders: right for the market-data API, which takes none.
        if !(s > 0.0 && s <= 1.0) {
            let allowed = "must be greater than 0 and at most 1: the rest is reserved for orders";
            return Err(InvalidSetting::new(format!("{key}.read_share"), s, allowed));
        }
        positive(&format!("{key}.read_max_wait"), self.read_max_wait)?;
        positive(&format!("{key}.order_max_wait"), self.order_max_wait)?;
        if self.order_max_wait < self.read_max_wait {
            let value = format!("{:?}", self.order_max_wait.to_string());
            let allowed = format!(
                "must be at least {key}.read_max_wait ({}): orders have priority",
                self.read_max_wait
            );
            return Err(InvalidSetting::new(
                format!("{key}.order_max_wait"),
                value,
                &allowed,
            ));
        }
        Ok(())
    }
}

/// The quota is used up for longer than this class may wait; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "outbound request quota saturated: this {class} would wait {would_wait:?} (max {max_wait:?})"
)]
pub struct Saturated {
    pub class: RequestClass,
    /// From the start of the acquire until the next token governor can promise.
    pub would_wait: Duration,
    pub max_wait: Duration,
}

/// governor's clock, read from tokio time. governor's own clocks (quanta, `Instant`) run on real
/// time and its `until_ready` sleeps on `futures-timer`'s thread, which tokio's paused time cannot
/// move; reading tokio's clock and sleeping with tokio keeps the limiter and its tests on one
/// timeline. At a few requests per second the cost of `Instant::now()` over quanta is nothing.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Instant::now().saturating_duration_since(self.origin))
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// The rates derived from a [`LimiterConfig`], for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LimiterRates {
    pub all_per_minute: u32,
    pub all_burst: u32,
    pub reads_per_minute: u32,
    pub reads_burst: u32,
}

impl LimiterRates {
    pub fn from_config(config: &LimiterConfig) -> Self {
        let rpm = config.requests_per_minute.max(2);
        // Floors keep herd under the quota; the max(1)s keep a tiny quota usable.
        let all_per_minute = ((f64::from(rpm) * config.headroom) as u32).clamp(1, rpm - 1);
        let all_burst = rpm - all_per_minute;
        let reads_per_minute = ((f64::from(all_per_minute) * config.read_share) as u32).max(1);
        let reads_burst = ((f64::from(all_burst) * config.read_share) as u32).max(1);
        Self {
            all_per_minute,
            all_burst,
            reads_per_minute,
            reads_burst,
        }
    }
}

/// `per_minute` tokens per `minute` (real time), with `burst` of them available at once.
fn quota(per_minute: u32, burst: u32, minute: Duration) -> Quota {
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    // A replenish interval of zero (a venue minute shorter than `per_minute` nanoseconds) would
    // be refused by governor: one nanosecond is as close to "no limit" as it allows.
    let period = (minute / per_minute.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

/// A minute of real time: the quota's window against a real venue.
pub const MINUTE: Duration = Duration::from_secs(60);

/// Shared by every request of one quota (the trading API and the data API count separately at
/// Alpaca: give each its own limiter).
#[derive(Debug)]
pub struct OutboundLimiter {
    /// Every request takes a token here.
    all: Direct,
    /// Reads take a token here first, so they can never exceed their share of `all`.
    reads: Direct,
    clock: TokioClock,
    rates: LimiterRates,
    read_max_wait: Duration,
    order_max_wait: Duration,
}

impl OutboundLimiter {
    /// A limiter for `config`'s quota, counted per `minute` of real time: [`MINUTE`] against a
    /// real venue, a venue minute's real length against an accelerated simulator.
    pub fn new(config: &LimiterConfig, minute: Duration) -> Self {
        let rates = LimiterRates::from_config(config);
        let clock = TokioClock::new();
        Self {
            all: RateLimiter::direct_with_clock(
                quota(rates.all_per_minute, rates.all_burst, minute),
                clock,
            ),
            reads: RateLimiter::direct_with_clock(
                quota(rates.reads_per_minute, rates.reads_burst, minute),
                clock,
            ),
            clock,
            rates,
            read_max_wait: config.read_max_wait.get(),
            order_max_wait: config.order_max_wait.get(),
        }
    }

    pub fn rates(&self) -> LimiterRates {
        self.rates
    }

    /// Waits for a token of `class`; returns how long it waited (for a histogram).
    pub async fn acquire(&self, class: RequestClass) -> Result<Duration, Saturated> {
        let start = Instant::now();
        let max_wait = match class {
            RequestClass::Read => self.read_max_wait,
            RequestClass::Order => self.order_max_wait,
        };
        // Reads first take their own share: taking `all` first would spend a token that an
        // order could have used while the read waits on its share.
        if class == RequestClass::Read {
            self.wait_for(&self.reads, class, start, max_wait).await?;
        }
        self.wait_for(&self.all, class, start, max_wait).await?;
        Ok(start.elapsed())
    }

    /// Takes a token of `class` only if one is free now; `Err` holds the wait until the next.
    /// A read refused by the shared limiter has still spent its read-share token: erring on the
    /// side of fewer requests. Tests drain a limiter with it.
    #[cfg(test)]
    pub fn try_acquire(&self, class: RequestClass) -> Result<(), Duration> {
        if class == RequestClass::Read {
            self.reads
                .check()
                .map_err(|n| n.wait_time_from(self.clock.now()))?;
        }
        self.all
            .check()
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    async fn wait_for(
        &self,
        limiter: &Direct,
        class: RequestClass,
        start: Instant,
        max_wait: Duration,
    ) -> Result<(), Saturated> {
        loop {
            let Err(not_until) = limiter.check() else {
                return Ok(());
            };
            // At least 1 ms: a rounding to zero must not spin.
            let wait = not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_millis(1));
            let would_wait = start.elapsed() + wait;
            if would_wait > max_wait {
                return Err(Saturated {
                    class,
                    would_wait,
                    max_wait,
                });
            }
            // Another waiter may take the token first; then governor names the next one.
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// The defaults recommended for `config/default.toml`.
    fn config() -> LimiterConfig {
        LimiterConfig {
            requests_per_minute: 200,
            headroom: 0.9,
            read_share: 0.8,
            read_max_wait: HumanDuration(Duration::from_secs(2)),
            order_max_wait: HumanDuration(Duration::from_secs(10)),
        }
    }

    fn drain(limiter: &OutboundLimiter, class: RequestClass) -> u32 {
        let mut taken = 0;
        while limiter.try_acquire(class).is_ok() {
            taken += 1;
        }
        taken
    }

    #[test]
    fn rates_keep_any_minute_within_the_account_quota() {
        let rates = LimiterRates::from_config(&config());
        let expected = LimiterRates {
            all_per_minute: 180,
            all_burst: 20,
            reads_per_minute: 144,
            reads_burst: 16,
        };
        assert_eq!(rates, expected);
        // A full burst plus a minute of replenishment is exactly the quota.
        assert_eq!(rates.all_per_minute + rates.all_burst, 200);
        let tiny = LimiterConfig {
            requests_per_minute: 2,
            ..config()
        };
        let rates = LimiterRates::from_config(&tiny);
        assert_eq!((rates.all_per_minute, rates.all_burst), (1, 1));
        assert!(rates.reads_per_minute >= 1 && rates.reads_burst >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_quota_counts_per_venue_minute() {
        // A simulator at 100×: a venue minute is 0.6 s of real time.
        let minute = Duration::from_millis(600);
        let limiter = OutboundLimiter::new(&config(), minute);
        assert_eq!(drain(&limiter, RequestClass::Order), 20, "the burst");
        // The sustained rate (180 a minute) takes one venue minute of (paused, exact) tokio time,
        // as it takes a real minute against Alpaca.
        let start = Instant::now();
        for _ in 0..180 {
            limiter
                .acquire(RequestClass::Order)
                .await
                .expect("within order_max_wait");
        }
        let took = start.elapsed();
        assert!(took <= minute, "{took:?}");
        assert!(took >= minute.mul_f64(0.99), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reads_cannot_take_the_share_reserved_for_orders() {
        let limiter = OutboundLimiter::new(&config(), MINUTE);
        assert_eq!(drain(&limiter, RequestClass::Read), 16, "the reads' burst");
        // Reads are out of tokens; the orders' part of the burst is untouched.
        assert_eq!(drain(&limiter, RequestClass::Order), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn read_fails_at_once_when_the_wait_would_exceed_read_max_wait() {
        let config = LimiterConfig {
            read_max_wait: HumanDuration(Duration::from_millis(100)),
            ..config()
        };
        let limiter = OutboundLimiter::new(&config, MINUTE);
        drain(&limiter, RequestClass::Read);
        let start = Instant::now();
        let saturated = limiter.acquire(RequestClass::Read).await.unwrap_err();
        assert_eq!(saturated.class, RequestClass::Read);
        assert!(saturated.would_wait > saturated.max_wait);
        assert_eq!(start.elapsed(), Duration::ZERO, "gave up without sleeping");
    }

    #[tokio::test(start_paused = true)]
    async fn order_waits_for_the_next_token_within_order_max_wait() {
        let limiter = OutboundLimiter::new(&config(), MINUTE);
        drain(&limiter, RequestClass::Order);
        let waited = limiter
            .acquire(RequestClass::Order)
            .await
            .expect("an order waits");
        assert!(waited > Duration::ZERO && waited <= config().order_max_wait.get());
    }

    #[tokio::test(start_paused = true)]
    async fn orders_get_through_while_reads_saturate_their_share() {
        let config = LimiterConfig {
            order_max_wait: HumanDuration(Duration::from_secs(1)),
            ..config()
        };
        let limiter = Arc::new(OutboundLimiter::new(&config, MINUTE));
        let reads_sent = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let minutes = 2;
        let until = start + Duration::from_secs(60 * minutes);
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, reads_sent) = (Arc::clone(&limiter), Arc::clone(&reads_sent));
                tokio::spawn(async move {
                    while Instant::now() < until {
                        match limiter.acquire(RequestClass::Read).await {
                            Ok(_) => reads_sent.fetch_add(1, Ordering::Relaxed),
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        let mut orders = 0;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(3)).await;
            limiter
                .acquire(RequestClass::Order)
                .await
                .expect("orders always find a token within order_max_wait");
            orders += 1;
        }
        for reader in readers {
            reader.await.unwrap();
        }
        let rates = limiter.rates();
        let reads = reads_sent.load(Ordering::Relaxed);
        assert!(orders >= 40);
        // Reads got their full share and never more.
        let share = rates.reads_burst + rates.reads_per_minute * minutes as u32;
        assert!(reads <= share + 1, "{reads} reads > share {share}");
        assert!(
            reads >= share - rates.reads_per_minute / 10,
            "{reads} reads"
        );
    }

    #[test]
    fn config_check_names_the_key_and_what_is_allowed() {
        assert_eq!(config().check("broker.limiter"), Ok(()));
        let no_headroom = LimiterConfig {
            headroom: 1.0,
            ..config()
        };
        assert!(
            no_headroom
                .check("broker.limiter")
                .unwrap_err()
                .to_string()
                .starts_with("broker.limiter.headroom = 1: must be between 0 and 1")
        );
        let all_reads = LimiterConfig {
            read_share: 1.0,
            ..config()
        };
        assert_eq!(
            all_reads.check("broker.data_limiter"),
            Ok(()),
            "an API without orders"
        );
        let no_reads = LimiterConfig {
            read_share: 0.0,
            ..config()
        };
        assert!(
            no_reads
                .check("broker.data_limiter")
                .unwrap_err()
                .to_string()
                .starts_with("broker.data_limiter.read_share = 0")
        );
        let impatient = LimiterConfig {
            order_max_wait: HumanDuration(Duration::from_secs(1)),
            ..config()
        };
        assert_eq!(
            impatient.check("broker.limiter").unwrap_err().to_string(),
            "broker.limiter.order_max_wait = \"1s\": must be at least broker.limiter.read_max_wait (2s): orders have priority"
        );
    }

    #[test]
    fn config_deserializes_from_toml_without_defaults() {
        let text = r#"
            requests_per_minute = 200
            headroom = 0.9
            read_share = 0.8
            read_max_wait = "2s"
            order_max_wait = "10s"
        "#;
        assert_eq!(toml::from_str::<LimiterConfig>(text).unwrap(), config());
        assert!(toml::from_str::<LimiterConfig>("requests_per_minute = 200").is_err());
    }
}
