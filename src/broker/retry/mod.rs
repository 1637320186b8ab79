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
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::alpaca::AlpacaError;
use super::breaker::{BreakerOpen, BreakerSet};
use super::limiter::{OutboundLimiter, Saturated};
use crate::domain::{HumanDuration, InvalidSetting, Operation, RequestClass, positive};
use crate::metrics::ReadFailure;

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
    pub fn check(&self) -> Result<(), InvalidSetting> {
        positive("broker.retry.base", self.base)?;
        if self.cap < self.base {
            let value = format!("{:?}", self.cap.to_string());
            let allowed = format!("must be at least broker.retry.base ({})", self.base);
            return Err(InvalidSetting::new("broker.retry.cap", value, &allowed));
        }
        if self.cap.get() > Duration::from_secs(600) {
            let value = format!("{:?}", self.cap.to_string());
            return Err(InvalidSetting::new(
                "broker.retry.cap",
                value,
                "must be at most 10m",
            ));
        }
        if !(1..=10).contains(&self.max_attempts) {
            let allowed = "must be between 1 (no retries) and 10";
            return Err(InvalidSetting::new(
                "broker.retry.max_attempts",
                self.max_attempts,
                allowed,
            ));
        }
        positive("broker.retry.max_rate_limit_wait", self.max_rate_limit_wait)?;
        if !(1..=1000).contains(&self.budget_max_tokens) {
            let allowed = "must be between 1 and 1000";
            return Err(InvalidSetting::new(
                "broker.retry.budget_max_tokens",
                self.budget_max_tokens,
                allowed,
            ));
        }
        let r = self.budget_token_ratio;
        if !(0.001..=1.0).contains(&r) {
            let allowed = "must be between 0.001 and 1";
            return Err(InvalidSetting::new(
                "broker.retry.budget_token_ratio",
                r,
                allowed,
            ));
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
    #[cfg(test)]
    pub fn seeded(config: &RetryConfig, seed: u64) -> Self {
        Self::with_rng(config, <SmallRng as rand::SeedableRng>::seed_from_u64(seed))
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
        let AlpacaError::RateLimited {
            reset_at,
            quota_left,
            ..
        } = error
        else {
            return Ok(backoff);
        };
        // Quota left means a transient throttle (a burst, another client): the reset is not
        // what the next request has to wait for.
        if quota_left.is_some_and(|n| n > 0) {
            return Ok(backoff);
        }
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

    /// What is left, for `/health`.
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
    Calendar,
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
            ReadOp::Calendar => Operation::Calendar,
        }
    }
}

/// Why a read stopped retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    NotRetryable,
    AttemptsExhausted,
    BudgetExhausted,
    RateLimitTooLong,
}

impl GiveUp {
    pub fn failure(self) -> ReadFailure {
        match self {
            Self::NotRetryable => ReadFailure::NotRetryable,
            Self::AttemptsExhausted => ReadFailure::AttemptsExhausted,
            Self::BudgetExhausted => ReadFailure::BudgetExhausted,
            Self::RateLimitTooLong => ReadFailure::RateLimitTooLong,
        }
    }

    fn suffix(self) -> String {
        match self {
            Self::NotRetryable => String::new(),
            other => format!(
                " (not retried: {})",
                other.failure().as_str().replace('_', " ")
            ),
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
    /// The bounded label of `herd_broker_read_failures_total{reason}`.
    pub fn failure(&self) -> ReadFailure {
        match self {
            Self::BreakerOpen { .. } => ReadFailure::BreakerOpen,
            Self::Saturated { .. } => ReadFailure::Saturated,
            Self::GaveUp { reason, .. } => reason.failure(),
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
    /// Time spent waiting for the rate limiter, over all attempts.
    pub limiter_wait: Duration,
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
    let mut limiter_wait = Duration::ZERO;
    loop {
        attempt += 1;
        if let Some(limiter) = guards.limiter {
            match limiter.acquire(RequestClass::Read).await {
                Ok(waited) => limiter_wait += waited,
                Err(saturated) => {
                    return Retried {
                        result: Err(RetryError::Saturated { saturated, last }),
                        retries,
                        limiter_wait,
                    };
                }
            }
        }
        let permit = match guards.breakers.acquire(operation) {
            Ok(permit) => permit,
            Err(open) => {
                return Retried {
                    result: Err(RetryError::BreakerOpen { open, last }),
                    retries,
                    limiter_wait,
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
                    limiter_wait,
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
                limiter_wait,
            };
        }
        last = Some(error);
    }
}

#[cfg(test)]
mod tests;
