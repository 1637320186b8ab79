//! Retries of idempotent reads: capped exponential backoff with full jitter, the venue's
//! `X-Ratelimit-Reset` honoured, and a retry budget so that retries cannot multiply the load on
//! a venue that is already failing.
//!
//! Order submission is deliberately out of reach: [`retry_read`] takes a [`ReadOp`], which has
//! no submit or cancel variant. A submit whose outcome is unknown is looked up by its
//! `client_order_id` before anything is resent (see `submit.rs`); retrying it here would be the
//! seed's duplicate-order bug.
//!
//! Invariants:
//! - At most `max_attempts` calls per read (the first included), at one layer only: the client
//!   below never retries, and callers above must not wrap this in another retry loop.
//! - Only errors with [`AlpacaError::is_retryable`] are retried; every other answer is returned.
//! - The first attempt is never throttled by the budget; retries run only while it has more
//!   than half its tokens (gRPC retry throttling).
//! - Each attempt takes a limiter token, then a breaker permit, and records its outcome in both
//!   the breaker and the budget before any sleep, so no permit is held across a backoff.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::alpaca::{AlpacaError, Operation};
use super::breaker::{BreakerOpen, BreakerSet, invalid, positive};
use super::limiter::{OutboundLimiter, RequestClass, Saturated};
use crate::settings::HumanDuration;

/// `[broker.retry]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Ceiling of the first backoff; it doubles per retry.
    pub base: HumanDuration,
    /// The backoff ceiling never grows past this.
    pub cap: HumanDuration,
    /// Calls per read, the first included (the seeds' `MAX_RETRIES` meant the same).
    pub max_attempts: u32,
    /// Longest wait for a rate-limit reset; a reset further away ends the read instead.
    pub max_rate_limit_wait: HumanDuration,
    /// Size of the retry budget (gRPC `maxTokens`).
    pub budget_max_tokens: u32,
    /// Tokens a success puts back (gRPC `tokenRatio`): about the share of calls that may be retries.
    pub budget_token_ratio: f64,
}

impl RetryConfig {
    pub fn check(&self) -> Result<(), String> {
        positive("broker.retry.base", self.base)?;
        if self.cap < self.base {
            let value = format!("{:?}", self.cap.to_string());
            let allowed = format!("must be at least broker.retry.base ({})", self.base);
            return Err(invalid("broker.retry.cap", value, &allowed));
        }
        if self.cap.get() > Duration::from_secs(600) {
            let value = format!("{:?}", self.cap.to_string());
            return Err(invalid("broker.retry.cap", value, "must be at most 10m"));
        }
        if !(1..=10).contains(&self.max_attempts) {
            let allowed = "must be between 1 (no retries) and 10";
            return Err(invalid(
                "broker.retry.max_attempts",
                self.max_attempts,
                allowed,
            ));
        }
        positive("broker.retry.max_rate_limit_wait", self.max_rate_limit_wait)?;
        if !(1..=1000).contains(&self.budget_max_tokens) {
            let allowed = "must be between 1 and 1000";
            return Err(invalid(
                "broker.retry.budget_max_tokens",
                self.budget_max_tokens,
                allowed,
            ));
        }
        let r = self.budget_token_ratio;
        if !(0.001..=1.0).contains(&r) {
            let allowed = "must be between 0.001 and 1";
            return Err(invalid("broker.retry.budget_token_ratio", r, allowed));
        }
        Ok(())
    }
}

/// `min(cap, base·2^retry)`: the ceiling of the backoff before retry number `retry` (0-based).
pub fn backoff_ceiling(base: Duration, cap: Duration, retry: u32) -> Duration {
    2u32.checked_pow(retry)
        .and_then(|factor| base.checked_mul(factor))
        .map_or(cap, |d| d.min(cap))
}

/// Full jitter: uniform over `[0, ceiling]`, which spreads synchronized clients best (Brooker).
pub fn full_jitter<R: Rng + ?Sized>(ceiling: Duration, rng: &mut R) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

/// How long until the venue's rate-limit window resets, if it said and the time is ahead.
pub fn until_reset(reset_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Duration> {
    reset_at
        .and_then(|at| (at - now).to_std().ok())
        .filter(|d| !d.is_zero())
}

/// The backoff schedule. Holds its RNG so that tests can seed it.
#[derive(Debug)]
pub struct RetryPolicy {
    base: Duration,
    cap: Duration,
    max_attempts: u32,
    max_rate_limit_wait: Duration,
    /// Locked for one draw; never across an `.await`.
    rng: Mutex<SmallRng>,
}

impl RetryPolicy {
    /// Seeded from the OS: replicas restarted together must not retry in lockstep.
    pub fn new(config: &RetryConfig) -> Self {
        Self::with_rng(config, rand::make_rng())
    }

    /// A reproducible schedule, for tests.
    pub fn seeded(config: &RetryConfig, seed: u64) -> Self {
        Self::with_rng(config, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(config: &RetryConfig, rng: SmallRng) -> Self {
        Self {
            base: config.base.get(),
            cap: config.cap.get(),
            max_attempts: config.max_attempts.max(1),
            max_rate_limit_wait: config.max_rate_limit_wait.get(),
            rng: Mutex::new(rng),
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// A jittered backoff before retry number `retry` (0-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = backoff_ceiling(self.base, self.cap, retry);
        // A poisoned RNG is still a valid RNG: a panic cannot leave its state half-written.
        full_jitter(
            ceiling,
            &mut *self.rng.lock().unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The wait before retrying after `error`: the backoff, or until the venue's quota resets
    /// if that is later. A reset beyond `max_rate_limit_wait` ends the read: retrying earlier
    /// would only earn another 429 and spend the quota and the budget.
    pub fn delay(
        &self,
        error: &AlpacaError,
        retry: u32,
        now: DateTime<Utc>,
    ) -> Result<Duration, GiveUp> {
        let backoff = self.backoff(retry);
        let AlpacaError::RateLimited { reset_at, .. } = error else {
            return Ok(backoff);
        };
        match until_reset(*reset_at, now) {
            Some(reset) if reset > self.max_rate_limit_wait => Err(GiveUp::RateLimitTooLong),
            Some(reset) => Ok(backoff.max(reset)),
            // No header, or a reset already past (clock skew): the backoff alone.
            None => Ok(backoff),
        }
    }
}

/// gRPC-style retry throttling, shared by every read of one venue. A failure is any retryable
/// error (429 included: retrying into a spent quota is load too); business answers count
/// neither way. Tokens are kept in thousandths in one atomic, so concurrent futures update it
/// without a lock.
#[derive(Debug)]
pub struct RetryBudget {
    milli_tokens: AtomicU64,
    max_milli: u64,
    ratio_milli: u64,
}

impl RetryBudget {
    /// Starts full: a fresh process may retry.
    pub fn new(max_tokens: u32, token_ratio: f64) -> Self {
        let max_milli = u64::from(max_tokens.max(1)) * 1000;
        let ratio_milli = ((token_ratio * 1000.0).round() as u64).max(1);
        Self {
            milli_tokens: AtomicU64::new(max_milli),
            max_milli,
            ratio_milli,
        }
    }

    pub fn from_config(config: &RetryConfig) -> Self {
        Self::new(config.budget_max_tokens, config.budget_token_ratio)
    }

    pub fn on_success(&self) {
        let (add, max) = (self.ratio_milli, self.max_milli);
        self.update(|t| (t + add).min(max));
    }

    pub fn on_failure(&self) {
        self.update(|t| t.saturating_sub(1000));
    }

    /// Retries are allowed while more than half the tokens remain.
    pub fn allows_retry(&self) -> bool {
        self.milli_tokens.load(Ordering::Relaxed) * 2 > self.max_milli
    }

    /// For `/health` and a gauge.
    pub fn tokens(&self) -> f64 {
        self.milli_tokens.load(Ordering::Relaxed) as f64 / 1000.0
    }

    fn update(&self, f: impl Fn(u64) -> u64) {
        // The closure never returns None, so fetch_update cannot fail.
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(f(t)));
    }
}

/// An operation that only reads, so repeating it is harmless. Submits and cancels have no
/// variant here: that is what keeps [`retry_read`] away from orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadOp {
    Clock,
    Account,
    Positions,
    Bars,
    GetOrder,
    OrderByClientId,
    ListOrders,
}

impl From<ReadOp> for Operation {
    fn from(op: ReadOp) -> Operation {
        match op {
            ReadOp::Clock => Operation::Clock,
            ReadOp::Account => Operation::Account,
            ReadOp::Positions => Operation::Positions,
            ReadOp::Bars => Operation::Bars,
            ReadOp::GetOrder => Operation::GetOrder,
            ReadOp::OrderByClientId => Operation::OrderByClientId,
            ReadOp::ListOrders => Operation::ListOrders,
        }
    }
}

/// Why a read stopped retrying; `as_str` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    NotRetryable,
    AttemptsExhausted,
    BudgetExhausted,
    RateLimitTooLong,
}

impl GiveUp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRetryable => "not_retryable",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::BudgetExhausted => "budget_exhausted",
            Self::RateLimitTooLong => "rate_limit_too_long",
        }
    }

    fn suffix(self) -> String {
        match self {
            Self::NotRetryable => String::new(),
            other => format!(" (not retried: {})", other.as_str().replace('_', " ")),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RetryError {
    /// The breaker refused the attempt; `last` is the failure before it, if any.
    #[error("{open}")]
    BreakerOpen {
        open: BreakerOpen,
        last: Option<AlpacaError>,
    },
    /// The outbound quota had no token within the read's max wait; nothing was sent.
    #[error("{saturated}")]
    Saturated {
        saturated: Saturated,
        last: Option<AlpacaError>,
    },
    /// The venue's last answer, and why it was not retried (again).
    #[error("{error}{}", .reason.suffix())]
    GaveUp { error: AlpacaError, reason: GiveUp },
}

impl RetryError {
    /// A bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BreakerOpen { .. } => "breaker_open",
            Self::Saturated { .. } => "saturated",
            Self::GaveUp { reason, .. } => reason.as_str(),
        }
    }

    /// The venue's last answer, if a call was made.
    pub fn upstream(&self) -> Option<&AlpacaError> {
        match self {
            Self::BreakerOpen { last, .. } | Self::Saturated { last, .. } => last.as_ref(),
            Self::GaveUp { error, .. } => Some(error),
        }
    }
}

/// What a read returned, and how many retries it took (for `herd_broker_retries_total`).
#[derive(Debug)]
#[must_use]
pub struct Retried<T> {
    pub result: Result<T, RetryError>,
    /// Calls made after the first.
    pub retries: u32,
}

/// What every read shares: the schedule, the budget, the breakers, and the limiter of the API
/// the read goes to (`None` only where there is no quota, e.g. tests).
#[derive(Clone, Copy)]
pub struct ReadGuards<'a> {
    pub policy: &'a RetryPolicy,
    pub budget: &'a RetryBudget,
    pub breakers: &'a BreakerSet,
    pub limiter: Option<&'a OutboundLimiter>,
}

/// Runs an idempotent read with retries. `call` makes ONE attempt; it must be a GET: never
/// pass a closure that submits or cancels an order, whatever `op` says.
pub async fn retry_read<T, F, Fut>(guards: ReadGuards<'_>, op: ReadOp, mut call: F) -> Retried<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AlpacaError>>,
{
    let operation = Operation::from(op);
    let mut retries = 0;
    let mut last: Option<AlpacaError> = None;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        if let Some(limiter) = guards.limiter
            && let Err(saturated) = limiter.acquire(RequestClass::Read).await
        {
            return Retried {
                result: Err(RetryError::Saturated { saturated, last }),
                retries,
            };
        }
        let permit = match guards.breakers.acquire(operation) {
            Ok(permit) => permit,
            Err(open) => {
                return Retried {
                    result: Err(RetryError::BreakerOpen { open, last }),
                    retries,
                };
            }
        };
        if attempt > 1 {
            retries += 1;
        }
        let result = call().await;
        permit.record_result(&result);
        let error = match result {
            Ok(value) => {
                guards.budget.on_success();
                return Retried {
                    result: Ok(value),
                    retries,
                };
            }
            Err(e) => e,
        };
        let stop = if !error.is_retryable() {
            Some(GiveUp::NotRetryable)
        } else {
            guards.budget.on_failure();
            if attempt >= guards.policy.max_attempts() {
                Some(GiveUp::AttemptsExhausted)
            } else if !guards.budget.allows_retry() {
                Some(GiveUp::BudgetExhausted)
            } else {
                match guards.policy.delay(&error, retries, Utc::now()) {
                    Ok(wait) => {
                        tracing::debug!(operation = %operation, attempt, error = %error, wait = ?wait, "retrying read");
                        tokio::time::sleep(wait).await;
                        None
                    }
                    Err(reason) => Some(reason),
                }
            }
        };
        if let Some(reason) = stop {
            return Retried {
                result: Err(RetryError::GaveUp { error, reason }),
                retries,
            };
        }
        last = Some(error);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;
    use crate::broker::breaker::{BreakerConfig, BreakerState, LogTransitions};
    use crate::broker::limiter::LimiterConfig;

    const OP: Operation = Operation::Bars;

    /// The defaults recommended for `config/default.toml`.
    fn config() -> RetryConfig {
        RetryConfig {
            base: HumanDuration(Duration::from_millis(200)),
            cap: HumanDuration(Duration::from_secs(2)),
            max_attempts: 3,
            max_rate_limit_wait: HumanDuration(Duration::from_secs(5)),
            budget_max_tokens: 10,
            budget_token_ratio: 0.1,
        }
    }

    fn breakers() -> BreakerSet {
        let config = BreakerConfig {
            error_threshold: 0.5,
            volume_threshold: 10,
            window: HumanDuration(Duration::from_secs(10)),
            buckets: 10,
            reset_timeout: HumanDuration(Duration::from_secs(30)),
            half_open_trials: 2,
            half_open_max: HumanDuration(Duration::from_secs(10)),
        };
        BreakerSet::new(&config, Arc::new(LogTransitions))
    }

    fn server_error() -> AlpacaError {
        AlpacaError::Server {
            op: OP,
            status: 503,
            message: "unavailable".into(),
        }
    }

    /// Runs a read whose attempts answer `script` in order; returns it and the calls made.
    async fn run(
        policy: &RetryPolicy,
        budget: &RetryBudget,
        breakers: &BreakerSet,
        limiter: Option<&OutboundLimiter>,
        script: Vec<Result<u32, AlpacaError>>,
    ) -> (Retried<u32>, usize) {
        let mut script = VecDeque::from(script);
        let planned = script.len();
        let guards = ReadGuards {
            policy,
            budget,
            breakers,
            limiter,
        };
        let retried = retry_read(guards, ReadOp::Bars, || {
            std::future::ready(script.pop_front().expect("no more answers scripted"))
        })
        .await;
        (retried, planned - script.len())
    }

    #[test]
    fn backoff_ceiling_doubles_from_base_up_to_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
        let ceilings: Vec<_> = [0, 1, 2, 4, 5, 40]
            .map(|n| backoff_ceiling(base, cap, n))
            .into();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            ceilings,
            [ms(100), ms(200), ms(400), ms(1600), ms(2000), ms(2000)]
        );
    }

    #[test]
    fn full_jitter_draws_within_zero_and_the_ceiling() {
        let mut rng = SmallRng::seed_from_u64(42);
        let ceiling = Duration::from_millis(800);
        let draws: Vec<_> = (0..10_000)
            .map(|_| full_jitter(ceiling, &mut rng))
            .collect();
        assert!(draws.iter().all(|d| *d <= ceiling));
        // Full jitter spreads over the whole range, not a band near the ceiling.
        assert!(draws.iter().any(|d| *d < ceiling / 10));
        assert!(draws.iter().any(|d| *d > ceiling * 9 / 10));
        assert_eq!(full_jitter(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    #[test]
    fn a_seeded_policy_repeats_its_schedule() {
        let (a, b) = (
            RetryPolicy::seeded(&config(), 7),
            RetryPolicy::seeded(&config(), 7),
        );
        let schedule = |p: &RetryPolicy| (0..5).map(|n| p.backoff(n)).collect::<Vec<_>>();
        let first = schedule(&a);
        assert_eq!(first, schedule(&b));
        for (n, d) in first.iter().enumerate() {
            assert!(*d <= backoff_ceiling(config().base.get(), config().cap.get(), n as u32));
        }
    }

    #[test]
    fn delay_waits_at_least_until_the_rate_limit_resets() {
        let policy = RetryPolicy::seeded(&config(), 1);
        let now = Utc::now();
        let limited = |secs| AlpacaError::RateLimited {
            op: OP,
            reset_at: Some(now + chrono::Duration::seconds(secs)),
        };
        assert_eq!(
            policy.delay(&limited(3), 0, now),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(
            policy.delay(&limited(60), 0, now),
            Err(GiveUp::RateLimitTooLong)
        );
        // A reset already past (clock skew) or absent: the jittered backoff alone.
        assert!(policy.delay(&limited(-5), 0, now).unwrap() <= config().base.get());
        let no_header = AlpacaError::RateLimited {
            op: OP,
            reset_at: None,
        };
        assert!(policy.delay(&no_header, 0, now).unwrap() <= config().base.get());
    }

    #[test]
    fn budget_stops_retries_at_half_its_tokens_and_refills_on_success() {
        let budget = RetryBudget::new(10, 0.1);
        assert!(budget.allows_retry());
        (0..4).for_each(|_| budget.on_failure());
        assert!(budget.allows_retry(), "6 tokens > 5");
        budget.on_failure();
        assert!(!budget.allows_retry(), "5 tokens is not more than half");
        (0..10).for_each(|_| budget.on_success());
        assert!(budget.allows_retry());
        assert!((budget.tokens() - 6.0).abs() < 1e-9);
        (0..100).for_each(|_| budget.on_success());
        assert!((budget.tokens() - 10.0).abs() < 1e-9, "never above max");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_retries_venue_faults_until_success() {
        let (policy, budget, breakers) = (
            RetryPolicy::seeded(&config(), 3),
            RetryBudget::from_config(&config()),
            breakers(),
        );
        let start = Instant::now();
        let timeout = AlpacaError::Timeout {
            op: OP,
            after: Duration::from_secs(3),
        };
        let (out, calls) = run(
            &policy,
            &budget,
            &breakers,
            None,
            vec![Err(server_error()), Err(timeout), Ok(7)],
        )
        .await;
        assert_eq!((out.result.unwrap(), out.retries, calls), (7, 2, 3));
        let longest = backoff_ceiling(config().base.get(), config().cap.get(), 0)
            + backoff_ceiling(config().base.get(), config().cap.get(), 1);
        assert!(
            start.elapsed() <= longest,
            "slept only the jittered backoffs"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_returns_business_answers_without_retrying() {
        let (policy, budget, breakers) = (
            RetryPolicy::seeded(&config(), 3),
            RetryBudget::from_config(&config()),
            breakers(),
        );
        let not_found = AlpacaError::NotFound {
            op: OP,
            message: "position does not exist".into(),
        };
        let (out, calls) = run(&policy, &budget, &breakers, None, vec![Err(not_found)]).await;
        let err = out.result.unwrap_err();
        assert_eq!((err.label(), out.retries, calls), ("not_retryable", 0, 1));
        assert!(matches!(err.upstream(), Some(AlpacaError::NotFound { .. })));
        assert_eq!(budget.tokens(), 10.0, "a business answer costs no budget");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_stops_after_max_attempts() {
        let (policy, budget, breakers) = (
            RetryPolicy::seeded(&config(), 3),
            RetryBudget::from_config(&config()),
            breakers(),
        );
        let script = vec![
            Err(server_error()),
            Err(server_error()),
            Err(server_error()),
            Ok(1),
        ];
        let (out, calls) = run(&policy, &budget, &breakers, None, script).await;
        assert_eq!(
            (out.result.unwrap_err().label(), out.retries, calls),
            ("attempts_exhausted", 2, 3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_stops_when_the_breaker_opens() {
        let (policy, budget) = (
            RetryPolicy::seeded(&config(), 3),
            RetryBudget::from_config(&config()),
        );
        let breakers = breakers();
        for _ in 0..9 {
            breakers
                .acquire(OP)
                .unwrap()
                .record(crate::broker::breaker::Outcome::Failure);
        }
        // This read's first failure is the tenth: the breaker opens and refuses the retry.
        let (out, calls) = run(
            &policy,
            &budget,
            &breakers,
            None,
            vec![Err(server_error()), Ok(1)],
        )
        .await;
        let err = out.result.unwrap_err();
        assert_eq!((err.label(), out.retries, calls), ("breaker_open", 0, 1));
        assert!(matches!(err.upstream(), Some(AlpacaError::Server { .. })));
        assert_eq!(breakers.state(OP), BreakerState::Open);
        // While open, a read makes no call at all.
        let (out, calls) = run(&policy, &budget, &breakers, None, vec![Ok(1)]).await;
        assert_eq!(
            (out.result.unwrap_err().label(), calls),
            ("breaker_open", 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_stops_when_the_budget_is_spent_but_always_makes_the_first_call() {
        let (policy, breakers) = (RetryPolicy::seeded(&config(), 3), breakers());
        let budget = RetryBudget::new(10, 0.1);
        (0..10).for_each(|_| budget.on_failure());
        let (out, calls) = run(
            &policy,
            &budget,
            &breakers,
            None,
            vec![Err(server_error()), Ok(1)],
        )
        .await;
        assert_eq!(
            (out.result.unwrap_err().label(), out.retries, calls),
            ("budget_exhausted", 0, 1)
        );
        let (out, _) = run(&policy, &budget, &breakers, None, vec![Ok(5)]).await;
        assert_eq!(
            out.result.unwrap(),
            5,
            "the first attempt is never throttled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_waits_for_the_rate_limit_reset_before_retrying() {
        let (policy, budget, breakers) = (
            RetryPolicy::seeded(&config(), 3),
            RetryBudget::from_config(&config()),
            breakers(),
        );
        let limited = AlpacaError::RateLimited {
            op: OP,
            reset_at: Some(Utc::now() + chrono::Duration::seconds(4)),
        };
        let start = Instant::now();
        let (out, calls) = run(&policy, &budget, &breakers, None, vec![Err(limited), Ok(9)]).await;
        assert_eq!((out.result.unwrap(), out.retries, calls), (9, 1, 2));
        // The backoff alone is at most 200 ms; the wait was the reset's (less the real
        // microseconds between building the error and reading the clock).
        assert!(
            start.elapsed() > Duration::from_secs(3) && start.elapsed() <= Duration::from_secs(4)
        );
        assert_eq!(
            breakers
                .snapshot()
                .iter()
                .find(|s| s.operation == OP)
                .unwrap()
                .failures,
            0,
            "429 is not a venue fault"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_gives_up_at_once_when_the_reset_is_beyond_max_wait() {
        let (policy, budget, breakers) = (
            RetryPolicy::seeded(&config(), 3),
            RetryBudget::from_config(&config()),
            breakers(),
        );
        let limited = AlpacaError::RateLimited {
            op: OP,
            reset_at: Some(Utc::now() + chrono::Duration::seconds(50)),
        };
        let start = Instant::now();
        let (out, calls) = run(&policy, &budget, &breakers, None, vec![Err(limited), Ok(9)]).await;
        assert_eq!(
            (out.result.unwrap_err().label(), calls),
            ("rate_limit_too_long", 1)
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_read_fails_without_a_call_when_the_quota_is_saturated() {
        let (policy, budget, breakers) = (
            RetryPolicy::seeded(&config(), 3),
            RetryBudget::from_config(&config()),
            breakers(),
        );
        let limiter = OutboundLimiter::new(&LimiterConfig {
            requests_per_minute: 200,
            headroom: 0.9,
            read_share: 0.8,
            read_max_wait: HumanDuration(Duration::from_millis(10)),
            order_max_wait: HumanDuration(Duration::from_secs(10)),
        });
        while limiter.try_acquire(RequestClass::Read).is_ok() {}
        let (out, calls) = run(&policy, &budget, &breakers, Some(&limiter), vec![Ok(1)]).await;
        assert_eq!((out.result.unwrap_err().label(), calls), ("saturated", 0));
    }

    #[test]
    fn read_ops_never_name_an_order_write() {
        let reads = [
            ReadOp::Clock,
            ReadOp::Account,
            ReadOp::Positions,
            ReadOp::Bars,
            ReadOp::GetOrder,
            ReadOp::OrderByClientId,
            ReadOp::ListOrders,
        ];
        assert!(reads.iter().all(|r| !matches!(
            Operation::from(*r),
            Operation::SubmitOrder | Operation::CancelOrder
        )));
    }

    #[test]
    fn config_check_names_the_key_and_what_is_allowed() {
        assert_eq!(config().check(), Ok(()));
        let inverted = RetryConfig {
            cap: HumanDuration(Duration::from_millis(100)),
            ..config()
        };
        assert_eq!(
            inverted.check().unwrap_err(),
            "broker.retry.cap = \"100ms\": must be at least broker.retry.base (200ms)"
        );
        let none = RetryConfig {
            max_attempts: 0,
            ..config()
        };
        assert!(
            none.check()
                .unwrap_err()
                .starts_with("broker.retry.max_attempts = 0")
        );
        let free = RetryConfig {
            budget_token_ratio: 0.0,
            ..config()
        };
        assert!(
            free.check()
                .unwrap_err()
                .starts_with("broker.retry.budget_token_ratio = 0")
        );
        let text = r#"
            base = "200ms"
            cap = "2s"
            max_attempts = 3
            max_rate_limit_wait = "5s"
            budget_max_tokens = 10
            budget_token_ratio = 0.1
        "#;
        assert_eq!(toml::from_str::<RetryConfig>(text).unwrap(), config());
        assert!(
            toml::from_str::<RetryConfig>("base = \"1s\"").is_err(),
            "no defaults"
        );
    }
}
