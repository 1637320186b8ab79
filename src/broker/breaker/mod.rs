//! Circuit breakers, one per upstream [`Operation`], so that a failing venue endpoint is left
//! alone for a while instead of being hammered, and callers fail fast instead of waiting on it.
//!
//! [`CircuitBreaker`] is the pure state machine (time is passed in); [`BreakerSet`] holds one per
//! operation for the many concurrent futures of the BrokerActor and hands out [`Permit`]s.
//!
//! Invariants:
//! - Closed opens only when the rolling window holds at least `volume_threshold` calls AND their
//!   failure rate is at least `error_threshold` (resilience4j's `≥`; opossum uses `>`).
//! - Half-open admits at most `half_open_trials` calls in flight; it never outlasts
//!   `half_open_max` (a trial that never reports cannot wedge it: resilience4j #903, opossum #276),
//!   and the volume threshold does not apply there (opossum #57).
//! - The acquire that moves Open → HalfOpen takes the first trial slot under the same lock, so
//!   no burst slips through at the edge (resilience4j #1432).
//! - An outcome counts only in the state epoch its permit was issued in: a late answer from
//!   before a transition never moves the new state.
//! - ForcedOpen is entered only by [`BreakerSet::force_open`] and left only by a reset.
//! - No timers: time-based transitions happen lazily when the breaker is next used.
//! - Every transition reaches the [`BreakerObserver`], called outside the lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alpaca::AlpacaError;
use crate::domain::{BreakerState, HumanDuration, InvalidSetting, Operation, positive};

mod machine;
mod set;
mod window;

pub use machine::{CircuitBreaker, Ticket};
pub use set::{BreakerSet, Permit};

/// `[broker.breaker]`: one set of thresholds shared by every operation's breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failure rate in (0, 1] at or above which a closed breaker opens.
    pub error_threshold: f64,
    /// Calls the window must hold before a rate means anything: one failure out of one call
    /// must not open it (the seed's breaker opened on a single 404).
    pub volume_threshold: u32,
    /// How far back the failure rate looks.
    pub window: HumanDuration,
    /// Slices of `window`; old calls leave the window one slice at a time.
    pub buckets: u32,
    /// Time spent open before trial calls are let through.
    pub reset_timeout: HumanDuration,
    /// Trial calls admitted at once while half-open; all must succeed to close.
    pub half_open_trials: u32,
    /// Longest stay in half-open before reopening; keep it above `broker.call_timeout`.
    pub half_open_max: HumanDuration,
}

impl BreakerConfig {
    /// Refuses values that would make the breaker meaningless or never close.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let t = self.error_threshold;
        if !(t > 0.0 && t <= 1.0) {
            let allowed = "must be between 0 (exclusive) and 1";
            return Err(InvalidSetting::new(
                "broker.breaker.error_threshold",
                t,
                allowed,
            ));
        }
        if self.volume_threshold == 0 {
            let v = self.volume_threshold;
            return Err(InvalidSetting::new(
                "broker.breaker.volume_threshold",
                v,
                "must be at least 1",
            ));
        }
        positive("broker.breaker.window", self.window)?;
        if self.buckets == 0 || self.buckets > 1000 {
            let allowed = "must be between 1 and 1000";
            return Err(InvalidSetting::new(
                "broker.breaker.buckets",
                self.buckets,
                allowed,
            ));
        }
        if self.window.get() / self.buckets < Duration::from_millis(1) {
            let allowed = "must leave buckets of at least 1ms (window / buckets)";
            return Err(InvalidSetting::new(
                "broker.breaker.buckets",
                self.buckets,
                allowed,
            ));
        }
        positive("broker.breaker.reset_timeout", self.reset_timeout)?;
        if self.half_open_trials == 0 {
            let v = self.half_open_trials;
            return Err(InvalidSetting::new(
                "broker.breaker.half_open_trials",
                v,
                "must be at least 1",
            ));
        }
        positive("broker.breaker.half_open_max", self.half_open_max)
    }
}

/// What a call tells the breaker about the venue's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Counted neither way: a business answer, or a call that was cancelled.
    Ignored,
}

impl Outcome {
    /// 5xx, timeouts, connection errors and unreadable answers say the venue is unwell. Every
    /// 4xx is the venue working as designed: 404 flat position, 422 and coded 403 refusals, 401.
    /// A 429 is the venue protecting its quota, not failing: counting it would turn herd's own
    /// over-use into a 30 s outage of every call of that operation, while the limiter and the
    /// retry's wait for `X-Ratelimit-Reset` are what actually fix it.
    pub fn of_error(error: &AlpacaError) -> Outcome {
        match error {
            AlpacaError::Timeout { .. }
            | AlpacaError::Connect { .. }
            | AlpacaError::Server { .. }
            | AlpacaError::Malformed { .. } => Outcome::Failure,
            AlpacaError::RateLimited { .. }
            | AlpacaError::Rejected { .. }
            | AlpacaError::NotFound { .. }
            | AlpacaError::Unauthorized { .. } => Outcome::Ignored,
        }
    }

    pub fn of<T>(result: &Result<T, AlpacaError>) -> Outcome {
        result
            .as_ref()
            .map_or_else(Outcome::of_error, |_| Outcome::Success)
    }
}

/// Why a breaker changed state; `as_str` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionReason {
    FailureRate,
    ResetTimeout,
    TrialsSucceeded,
    TrialFailed,
    HalfOpenTimeout,
    Forced,
    Reset,
}

impl TransitionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailureRate => "failure_rate",
            Self::ResetTimeout => "reset_timeout",
            Self::TrialsSucceeded => "trials_succeeded",
            Self::TrialFailed => "trial_failed",
            Self::HalfOpenTimeout => "half_open_timeout",
            Self::Forced => "forced",
            Self::Reset => "reset",
        }
    }
}

/// One state change, for a log line and `herd_breaker_transitions_total{operation,from,to}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub op: Operation,
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: TransitionReason,
    /// The window's failure rate at the change (0 when it held no calls).
    pub failure_rate: f64,
    pub calls: u32,
}

/// Told of every transition. An observer rather than return values because transitions happen
/// in acquires, records, dropped permits and admin calls alike; one hook means no call site can
/// forget to log or count one. Called outside the breaker's lock: it may take its own locks.
pub trait BreakerObserver: Send + Sync {
    fn on_transition(&self, transition: &Transition);
}

/// Logs each transition as one structured event: opening is a warning, the rest are info.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogTransitions;

impl BreakerObserver for LogTransitions {
    fn on_transition(&self, t: &Transition) {
        let (op, from, to, reason) = (
            t.op.as_str(),
            t.from.as_str(),
            t.to.as_str(),
            t.reason.as_str(),
        );
        if matches!(t.to, BreakerState::Open | BreakerState::ForcedOpen) {
            tracing::warn!(
                event = "breaker_transition",
                operation = op,
                from,
                to,
                reason,
                failure_rate = t.failure_rate,
                calls = t.calls,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                event = "breaker_transition",
                operation = op,
                from,
                to,
                reason,
                failure_rate = t.failure_rate,
                calls = t.calls,
                "circuit breaker state changed"
            );
        }
    }
}

/// A call refused without being made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker for {op} is {state}{}", retry_hint(*.retry_in))]
pub struct BreakerOpen {
    pub op: Operation,
    pub state: BreakerState,
    /// When trial calls will next be admitted, if the breaker knows.
    pub retry_in: Option<Duration>,
}

fn retry_hint(retry_in: Option<Duration>) -> String {
    retry_in.map_or_else(String::new, |d| format!("; trial calls in {d:.1?}"))
}

/// A breaker's state for `/health` and the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BreakerSnapshot {
    pub operation: Operation,
    pub state: BreakerState,
    /// Failures / calls in the window (0 when empty): what the threshold is compared with.
    pub failure_rate: f64,
    pub calls: u32,
    pub failures: u32,
    /// Wall-clock time of the last transition (or of creation).
    pub since: DateTime<Utc>,
    pub seconds_in_state: f64,
    pub trials_in_flight: u32,
}

#[cfg(test)]
pub(crate) mod tests;
