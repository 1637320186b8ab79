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

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::alpaca::{AlpacaError, Operation};
use crate::settings::HumanDuration;

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

/// One line naming the key, the value and what is allowed (the settings module's format).
pub(super) fn invalid(key: &str, value: impl fmt::Display, allowed: &str) -> String {
    format!("{key} = {value}: {allowed}")
}

pub(super) fn positive(key: &str, value: HumanDuration) -> Result<(), String> {
    if value.get().is_zero() {
        return Err(invalid(
            key,
            format!("{:?}", value.to_string()),
            "must be longer than zero",
        ));
    }
    Ok(())
}

impl BreakerConfig {
    /// Refuses values that would make the breaker meaningless or never close.
    pub fn check(&self) -> Result<(), String> {
        let t = self.error_threshold;
        if !(t > 0.0 && t <= 1.0) {
            let allowed = "must be between 0 (exclusive) and 1";
            return Err(invalid("broker.breaker.error_threshold", t, allowed));
        }
        if self.volume_threshold == 0 {
            let v = self.volume_threshold;
            return Err(invalid(
                "broker.breaker.volume_threshold",
                v,
                "must be at least 1",
            ));
        }
        positive("broker.breaker.window", self.window)?;
        if self.buckets == 0 || self.buckets > 1000 {
            let allowed = "must be between 1 and 1000";
            return Err(invalid("broker.breaker.buckets", self.buckets, allowed));
        }
        if self.window.get() / self.buckets < Duration::from_millis(1) {
            let allowed = "must leave buckets of at least 1ms (window / buckets)";
            return Err(invalid("broker.breaker.buckets", self.buckets, allowed));
        }
        positive("broker.breaker.reset_timeout", self.reset_timeout)?;
        if self.half_open_trials == 0 {
            let v = self.half_open_trials;
            return Err(invalid(
                "broker.breaker.half_open_trials",
                v,
                "must be at least 1",
            ));
        }
        positive("broker.breaker.half_open_max", self.half_open_max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
    /// Set by an operator; every call is refused until a reset.
    ForcedOpen,
}

impl BreakerState {
    pub const ALL: &[BreakerState] = &[Self::Closed, Self::Open, Self::HalfOpen, Self::ForcedOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Calls of one time slice; `index` is the slice number since the window's origin.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: u64,
    successes: u32,
    failures: u32,
}

/// A ring of time buckets: a slot is reused (and zeroed) when its slice number changes.
#[derive(Debug)]
struct Window {
    origin: Instant,
    /// `window / buckets`, clamped above zero so that `slice` can divide by it.
    width: Duration,
    buckets: Vec<Bucket>,
}

impl Window {
    fn new(config: &BreakerConfig, origin: Instant) -> Self {
        let n = config.buckets.max(1);
        let width = (config.window.get() / n).max(Duration::from_nanos(1));
        Self {
            origin,
            width,
            buckets: vec![Bucket::default(); n as usize],
        }
    }

    fn slice(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.origin).as_nanos() / self.width.as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    fn record(&mut self, now: Instant, failed: bool) {
        let index = self.slice(now);
        let len = self.buckets.len() as u64;
        let slot = &mut self.buckets[(index % len) as usize];
        if slot.index != index {
            *slot = Bucket {
                index,
                ..Bucket::default()
            };
        }
        if failed {
            slot.failures = slot.failures.saturating_add(1);
        } else {
            slot.successes = slot.successes.saturating_add(1);
        }
    }

    /// (calls, failures) of the slices still inside the window.
    fn totals(&self, now: Instant) -> (u32, u32) {
        let current = self.slice(now);
        let len = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|b| b.index <= current && current - b.index < len)
            .fold((0u32, 0u32), |(calls, failures), b| {
                (
                    calls.saturating_add(b.successes).saturating_add(b.failures),
                    failures.saturating_add(b.failures),
                )
            })
    }

    fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
    }
}

fn rate(calls: u32, failures: u32) -> f64 {
    if calls == 0 {
        0.0
    } else {
        f64::from(failures) / f64::from(calls)
    }
}

/// What a permit carries: the epoch it was issued in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    epoch: u64,
}

/// The state machine of one operation's breaker. Not thread-safe; [`BreakerSet`] locks it.
#[derive(Debug)]
pub struct CircuitBreaker {
    op: Operation,
    error_threshold: f64,
    volume_threshold: u32,
    reset_timeout: Duration,
    half_open_trials: u32,
    half_open_max: Duration,
    state: BreakerState,
    /// Drives the reset and half-open timeouts (tokio time, so tests can pause it).
    entered_at: Instant,
    /// For display only.
    entered_wall: DateTime<Utc>,
    /// Bumped on every transition; outcomes of older permits are dropped.
    epoch: u64,
    window: Window,
    trials_in_flight: u32,
    trials_succeeded: u32,
}

impl CircuitBreaker {
    pub fn new(op: Operation, config: &BreakerConfig, now: Instant) -> Self {
        Self {
            op,
            error_threshold: config.error_threshold,
            volume_threshold: config.volume_threshold,
            reset_timeout: config.reset_timeout.get(),
            half_open_trials: config.half_open_trials.max(1),
            half_open_max: config.half_open_max.get(),
            state: BreakerState::Closed,
            entered_at: now,
            entered_wall: Utc::now(),
            epoch: 0,
            window: Window::new(config, now),
            trials_in_flight: 0,
            trials_succeeded: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Admits a call or refuses it; may first apply a due time-based transition.
    pub fn try_acquire(
        &mut self,
        now: Instant,
    ) -> (Result<Ticket, BreakerOpen>, Option<Transition>) {
        let expired = self.expire(now);
        let refuse = |state, retry_in| BreakerOpen {
            op: self.op,
            state,
            retry_in,
        };
        match self.state {
            BreakerState::Closed => (Ok(self.ticket()), expired),
            BreakerState::ForcedOpen => (Err(refuse(BreakerState::ForcedOpen, None)), expired),
            BreakerState::Open => {
                let ready_at = self.entered_at + self.reset_timeout;
                if now < ready_at {
                    return (
                        Err(refuse(BreakerState::Open, Some(ready_at - now))),
                        expired,
                    );
                }
                let t =
                    self.transition(BreakerState::HalfOpen, TransitionReason::ResetTimeout, now);
                self.trials_in_flight = 1;
                (Ok(self.ticket()), Some(t))
            }
            BreakerState::HalfOpen
                if self.trials_in_flight + self.trials_succeeded < self.half_open_trials =>
            {
                self.trials_in_flight += 1;
                (Ok(self.ticket()), expired)
            }
            BreakerState::HalfOpen => (Err(refuse(BreakerState::HalfOpen, None)), expired),
        }
    }

    /// Applies the outcome of an admitted call.
    pub fn record(&mut self, ticket: Ticket, outcome: Outcome, now: Instant) -> Option<Transition> {
        if let Some(t) = self.expire(now) {
            return Some(t);
        }
        if ticket.epoch != self.epoch {
            return None;
        }
        match (self.state, outcome) {
            (BreakerState::HalfOpen, Outcome::Ignored) => {
                // Frees the slot for another trial: the call proved nothing either way.
                self.trials_in_flight = self.trials_in_flight.saturating_sub(1);
                None
            }
            (BreakerState::Closed, Outcome::Success | Outcome::Failure) => {
                self.window.record(now, outcome == Outcome::Failure);
                let (calls, failures) = self.window.totals(now);
                let opens =
                    calls >= self.volume_threshold && rate(calls, failures) >= self.error_threshold;
                opens.then(|| {
                    self.transition(BreakerState::Open, TransitionReason::FailureRate, now)
                })
            }
            (BreakerState::HalfOpen, Outcome::Failure) => {
                // Reopen at once: the remaining trials cannot change the verdict.
                Some(self.transition(BreakerState::Open, TransitionReason::TrialFailed, now))
            }
            (BreakerState::HalfOpen, Outcome::Success) => {
                self.trials_in_flight = self.trials_in_flight.saturating_sub(1);
                self.trials_succeeded += 1;
                (self.trials_succeeded >= self.half_open_trials).then(|| {
                    self.transition(BreakerState::Closed, TransitionReason::TrialsSucceeded, now)
                })
            }
            (BreakerState::Closed, Outcome::Ignored) => None,
            // Open and ForcedOpen issue no tickets of their own epoch.
            (BreakerState::Open | BreakerState::ForcedOpen, _) => None,
        }
    }

    /// Back to Closed with an empty window, whatever the state (the admin "reset").
    pub fn reset(&mut self, now: Instant) -> Option<Transition> {
        if self.state == BreakerState::Closed {
            self.window.clear();
            return None;
        }
        Some(self.transition(BreakerState::Closed, TransitionReason::Reset, now))
    }

    /// Refuses every call until [`CircuitBreaker::reset`].
    pub fn force_open(&mut self, now: Instant) -> Option<Transition> {
        (self.state != BreakerState::ForcedOpen)
            .then(|| self.transition(BreakerState::ForcedOpen, TransitionReason::Forced, now))
    }

    /// Applies the half-open time bound; the only transition that may happen without a call.
    pub fn expire(&mut self, now: Instant) -> Option<Transition> {
        let overdue =
            self.state == BreakerState::HalfOpen && now >= self.entered_at + self.half_open_max;
        overdue.then(|| self.transition(BreakerState::Open, TransitionReason::HalfOpenTimeout, now))
    }

    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let (calls, failures) = self.window.totals(now);
        BreakerSnapshot {
            operation: self.op,
            state: self.state,
            failure_rate: rate(calls, failures),
            calls,
            failures,
            since: self.entered_wall,
            seconds_in_state: now.saturating_duration_since(self.entered_at).as_secs_f64(),
            trials_in_flight: self.trials_in_flight,
        }
    }

    fn ticket(&self) -> Ticket {
        Ticket { epoch: self.epoch }
    }

    fn transition(
        &mut self,
        to: BreakerState,
        reason: TransitionReason,
        now: Instant,
    ) -> Transition {
        let (calls, failures) = self.window.totals(now);
        let from = std::mem::replace(&mut self.state, to);
        self.entered_at = now;
        self.entered_wall = Utc::now();
        self.epoch += 1;
        self.trials_in_flight = 0;
        self.trials_succeeded = 0;
        if to == BreakerState::Closed {
            self.window.clear();
        }
        Transition {
            op: self.op,
            from,
            to,
            reason,
            failure_rate: rate(calls, failures),
            calls,
        }
    }
}

/// Every operation's breaker, shared by the BrokerActor's concurrent futures (clone is cheap).
///
/// Each breaker sits behind its own `std::sync::Mutex`: a critical section is a few integer
/// updates and never spans an `.await`, so an async mutex would only add cost, and separate
/// locks keep one busy operation from contending with another.
#[derive(Clone)]
pub struct BreakerSet {
    inner: Arc<SetInner>,
}

struct SetInner {
    /// Indexed by [`slot`]; built from [`Operation::ALL`].
    breakers: Vec<Mutex<CircuitBreaker>>,
    observer: Arc<dyn BreakerObserver>,
}

/// Position of an operation in [`Operation::ALL`]; an exhaustive match, so a new operation
/// fails to compile here until it has a place.
fn slot(op: Operation) -> usize {
    match op {
        Operation::Clock => 0,
        Operation::Account => 1,
        Operation::Positions => 2,
        Operation::Bars => 3,
        Operation::SubmitOrder => 4,
        Operation::GetOrder => 5,
        Operation::OrderByClientId => 6,
        Operation::ListOrders => 7,
        Operation::CancelOrder => 8,
    }
}

impl SetInner {
    /// Recovers a poisoned lock: no user code runs under it, and every field stays valid on
    /// its own after any partial update, so the worst a panic there leaves is a miscount.
    fn lock(&self, op: Operation) -> MutexGuard<'_, CircuitBreaker> {
        self.breakers[slot(op)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self, transition: Option<Transition>) {
        if let Some(t) = transition {
            self.observer.on_transition(&t);
        }
    }
}

impl BreakerSet {
    pub fn new(config: &BreakerConfig, observer: Arc<dyn BreakerObserver>) -> Self {
        let now = Instant::now();
        let mut ops = Operation::ALL.to_vec();
        ops.sort_by_key(|op| slot(*op));
        let breakers = ops
            .into_iter()
            .map(|op| Mutex::new(CircuitBreaker::new(op, config, now)))
            .collect();
        Self {
            inner: Arc::new(SetInner { breakers, observer }),
        }
    }

    /// Admits one call of `op`, or refuses it without making it.
    pub fn acquire(&self, op: Operation) -> Result<Permit, BreakerOpen> {
        let (result, transition) = self.inner.lock(op).try_acquire(Instant::now());
        self.inner.notify(transition);
        let ticket = result?;
        Ok(Permit {
            set: Arc::clone(&self.inner),
            op,
            ticket: Some(ticket),
        })
    }

    pub fn state(&self, op: Operation) -> BreakerState {
        self.inner.lock(op).state()
    }

    /// Admin: close `op`'s breaker with an empty window.
    pub fn reset(&self, op: Operation) {
        let transition = self.inner.lock(op).reset(Instant::now());
        self.inner.notify(transition);
    }

    /// Admin: refuse every call of `op` until [`BreakerSet::reset`].
    pub fn force_open(&self, op: Operation) {
        let transition = self.inner.lock(op).force_open(Instant::now());
        self.inner.notify(transition);
    }

    pub fn reset_all(&self) {
        Operation::ALL.iter().for_each(|op| self.reset(*op));
    }

    /// Every breaker, in [`Operation::ALL`] order; applies an overdue half-open bound first so
    /// that `/health` never shows a wedged half-open.
    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        let now = Instant::now();
        Operation::ALL
            .iter()
            .map(|op| {
                let mut breaker = self.inner.lock(*op);
                let transition = breaker.expire(now);
                let snapshot = breaker.snapshot(now);
                drop(breaker);
                self.inner.notify(transition);
                snapshot
            })
            .collect()
    }
}

/// Leave to make one call. Record its outcome with [`Permit::record`]; a permit dropped without
/// a record (its future was cancelled) counts as [`Outcome::Ignored`] and frees its trial slot.
#[must_use = "a permit that is dropped unrecorded counts as Ignored"]
pub struct Permit {
    set: Arc<SetInner>,
    op: Operation,
    /// `None` once recorded.
    ticket: Option<Ticket>,
}

impl Permit {
    pub fn op(&self) -> Operation {
        self.op
    }

    pub fn record(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    /// Records what the call returned, classified by [`Outcome::of`]; returns the outcome.
    pub fn record_result<T>(self, result: &Result<T, AlpacaError>) -> Outcome {
        let outcome = Outcome::of(result);
        self.record(outcome);
        outcome
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(ticket) = self.ticket.take() {
            let transition = self
                .set
                .lock(self.op)
                .record(ticket, outcome, Instant::now());
            self.set.notify(transition);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(Outcome::Ignored);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("op", &self.op)
            .field("ticket", &self.ticket)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    /// The defaults recommended for `config/default.toml`.
    fn config() -> BreakerConfig {
        BreakerConfig {
            error_threshold: 0.5,
            volume_threshold: 10,
            window: HumanDuration(Duration::from_secs(10)),
            buckets: 10,
            reset_timeout: HumanDuration(Duration::from_secs(30)),
            half_open_trials: 2,
            half_open_max: HumanDuration(Duration::from_secs(10)),
        }
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Transition>>);

    impl BreakerObserver for Recorder {
        fn on_transition(&self, t: &Transition) {
            self.0.lock().unwrap().push(t.clone());
        }
    }

    impl Recorder {
        fn steps(&self) -> Vec<(BreakerState, BreakerState, TransitionReason)> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|t| (t.from, t.to, t.reason))
                .collect()
        }
    }

    const OP: Operation = Operation::Bars;

    fn set_with(config: &BreakerConfig) -> (BreakerSet, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (BreakerSet::new(config, recorder.clone()), recorder)
    }

    fn calls(set: &BreakerSet, outcomes: &[Outcome]) {
        for outcome in outcomes {
            set.acquire(OP).expect("admitted").record(*outcome);
        }
    }

    fn snapshot(set: &BreakerSet) -> BreakerSnapshot {
        set.snapshot()
            .into_iter()
            .find(|s| s.operation == OP)
            .unwrap()
    }

    /// Opens the breaker with ten failures.
    fn trip(set: &BreakerSet) {
        calls(set, &[Outcome::Failure; 10]);
        assert_eq!(set.state(OP), BreakerState::Open);
    }

    use Outcome::{Failure, Ignored, Success};

    #[tokio::test(start_paused = true)]
    async fn breaker_stays_closed_until_volume_threshold_is_reached() {
        let (set, recorder) = set_with(&config());
        calls(&set, &[Failure; 9]);
        assert_eq!(
            set.state(OP),
            BreakerState::Closed,
            "9 calls < volume_threshold 10"
        );
        calls(&set, &[Failure]);
        assert_eq!(set.state(OP), BreakerState::Open);
        assert_eq!(
            recorder.steps(),
            [(
                BreakerState::Closed,
                BreakerState::Open,
                TransitionReason::FailureRate
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_when_error_rate_reaches_threshold() {
        let (set, _) = set_with(&config());
        calls(
            &set,
            &[
                Success, Failure, Success, Failure, Success, Failure, Success, Failure, Success,
            ],
        );
        assert_eq!(set.state(OP), BreakerState::Closed);
        // The tenth call makes it 5 of 10: exactly the threshold, which opens (≥).
        calls(&set, &[Failure]);
        assert_eq!(set.state(OP), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_stays_closed_below_error_threshold() {
        let (set, _) = set_with(&config());
        calls(&set, &[Success; 6]);
        calls(&set, &[Failure; 4]);
        assert_eq!(set.state(OP), BreakerState::Closed);
        assert_eq!((snapshot(&set).calls, snapshot(&set).failures), (10, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window_bucket_by_bucket() {
        let (set, _) = set_with(&config());
        calls(&set, &[Failure; 5]);
        advance(Duration::from_secs(5)).await;
        calls(&set, &[Success; 4]);
        advance(Duration::from_secs(5)).await;
        // The bucket of the first five failures has left the 10 s window.
        assert_eq!((snapshot(&set).calls, snapshot(&set).failures), (4, 0));
        calls(&set, &[Failure; 5]);
        assert_eq!(set.state(OP), BreakerState::Closed, "9 calls in the window");
        advance(Duration::from_secs(10)).await;
        assert_eq!(snapshot(&set).calls, 0);
        calls(&set, &[Failure; 9]);
        assert_eq!(set.state(OP), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn open_breaker_refuses_until_reset_timeout_then_admits_trials() {
        let (set, _) = set_with(&config());
        trip(&set);
        let refused = set.acquire(OP).unwrap_err();
        assert_eq!(refused.state, BreakerState::Open);
        assert_eq!(refused.retry_in, Some(Duration::from_secs(30)));
        advance(Duration::from_secs(29)).await;
        assert_eq!(
            set.acquire(OP).unwrap_err().retry_in,
            Some(Duration::from_secs(1))
        );
        advance(Duration::from_secs(1)).await;
        let first = set.acquire(OP).expect("first trial");
        assert_eq!(set.state(OP), BreakerState::HalfOpen);
        let second = set.acquire(OP).expect("second trial");
        let third = set.acquire(OP).unwrap_err();
        assert_eq!(
            (third.state, third.retry_in),
            (BreakerState::HalfOpen, None)
        );
        first.record(Success);
        second.record(Success);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_closes_with_a_fresh_window_when_all_trials_succeed() {
        let (set, recorder) = set_with(&config());
        trip(&set);
        advance(Duration::from_secs(30)).await;
        let (a, b) = (set.acquire(OP).unwrap(), set.acquire(OP).unwrap());
        a.record(Success);
        assert_eq!(set.state(OP), BreakerState::HalfOpen, "one trial still out");
        b.record(Success);
        assert_eq!(set.state(OP), BreakerState::Closed);
        assert_eq!(snapshot(&set).calls, 0);
        assert_eq!(
            recorder.steps()[1..],
            [
                (
                    BreakerState::Open,
                    BreakerState::HalfOpen,
                    TransitionReason::ResetTimeout
                ),
                (
                    BreakerState::HalfOpen,
                    BreakerState::Closed,
                    TransitionReason::TrialsSucceeded
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_reopens_with_a_fresh_reset_timer_on_a_failed_trial() {
        let (set, recorder) = set_with(&config());
        trip(&set);
        advance(Duration::from_secs(30)).await;
        let (a, b) = (set.acquire(OP).unwrap(), set.acquire(OP).unwrap());
        a.record(Success);
        b.record(Failure);
        assert_eq!(set.state(OP), BreakerState::Open);
        assert_eq!(
            set.acquire(OP).unwrap_err().retry_in,
            Some(Duration::from_secs(30))
        );
        let last = recorder.steps().pop().unwrap();
        assert_eq!(
            last,
            (
                BreakerState::HalfOpen,
                BreakerState::Open,
                TransitionReason::TrialFailed
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_reopens_when_a_trial_never_reports_within_half_open_max() {
        let (set, recorder) = set_with(&config());
        trip(&set);
        advance(Duration::from_secs(30)).await;
        let stuck = set.acquire(OP).unwrap();
        let _also_stuck = set.acquire(OP).unwrap();
        advance(Duration::from_secs(10)).await;
        assert_eq!(set.acquire(OP).unwrap_err().state, BreakerState::Open);
        let last = recorder.steps().pop().unwrap();
        assert_eq!(
            last,
            (
                BreakerState::HalfOpen,
                BreakerState::Open,
                TransitionReason::HalfOpenTimeout
            )
        );
        // The late answer belongs to the old half-open: it must not close the breaker.
        stuck.record(Success);
        assert_eq!(set.state(OP), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_reopens_a_half_open_past_its_bound() {
        let (set, _) = set_with(&config());
        trip(&set);
        advance(Duration::from_secs(30)).await;
        let _stuck = set.acquire(OP).unwrap();
        advance(Duration::from_secs(10)).await;
        assert_eq!(snapshot(&set).state, BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_permit_counts_as_ignored_and_frees_the_trial_slot() {
        let (set, _) = set_with(&config());
        drop(set.acquire(OP).unwrap());
        assert_eq!(snapshot(&set).calls, 0, "a cancelled call is not counted");
        trip(&set);
        advance(Duration::from_secs(30)).await;
        let (a, b) = (set.acquire(OP).unwrap(), set.acquire(OP).unwrap());
        assert!(set.acquire(OP).is_err(), "both trial slots taken");
        drop(a);
        assert_eq!(snapshot(&set).trials_in_flight, 1);
        let c = set
            .acquire(OP)
            .expect("the dropped trial's slot is free again");
        b.record(Success);
        c.record(Success);
        assert_eq!(set.state(OP), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn ignored_trial_neither_closes_nor_reopens() {
        let (set, _) = set_with(&config());
        trip(&set);
        advance(Duration::from_secs(30)).await;
        set.acquire(OP).unwrap().record(Ignored);
        set.acquire(OP).unwrap().record(Success);
        assert_eq!(
            set.state(OP),
            BreakerState::HalfOpen,
            "only one trial has succeeded"
        );
        set.acquire(OP).unwrap().record(Success);
        assert_eq!(set.state(OP), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn forced_open_refuses_until_reset_even_after_reset_timeout() {
        let (set, recorder) = set_with(&config());
        set.force_open(OP);
        advance(Duration::from_secs(300)).await;
        let refused = set.acquire(OP).unwrap_err();
        assert_eq!(
            (refused.state, refused.retry_in),
            (BreakerState::ForcedOpen, None)
        );
        set.reset(OP);
        set.acquire(OP).expect("closed after reset").record(Success);
        assert_eq!(
            recorder.steps(),
            [
                (
                    BreakerState::Closed,
                    BreakerState::ForcedOpen,
                    TransitionReason::Forced
                ),
                (
                    BreakerState::ForcedOpen,
                    BreakerState::Closed,
                    TransitionReason::Reset
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reset_all_closes_every_open_breaker() {
        let (set, _) = set_with(&config());
        trip(&set);
        set.force_open(Operation::SubmitOrder);
        set.reset_all();
        assert!(
            set.snapshot()
                .iter()
                .all(|s| s.state == BreakerState::Closed && s.calls == 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn outcome_of_a_permit_from_before_a_transition_is_dropped() {
        let (set, _) = set_with(&config());
        let slow = set.acquire(OP).unwrap();
        trip(&set);
        advance(Duration::from_secs(30)).await;
        let trial = set.acquire(OP).unwrap();
        slow.record(Failure);
        assert_eq!(
            set.state(OP),
            BreakerState::HalfOpen,
            "a closed-era failure is no trial"
        );
        trial.record(Success);
    }

    #[tokio::test(start_paused = true)]
    async fn business_errors_never_open_the_breaker() {
        let (set, _) = set_with(&config());
        let op = OP;
        let answers = [
            AlpacaError::NotFound {
                op,
                message: "position does not exist".into(),
            },
            AlpacaError::Rejected {
                op,
                status: 422,
                code: Some(40010001),
                message: "bad".into(),
            },
            AlpacaError::Rejected {
                op,
                status: 403,
                code: Some(40310000),
                message: "buying power".into(),
            },
            AlpacaError::RateLimited { op, reset_at: None },
            AlpacaError::Unauthorized {
                op,
                status: 401,
                message: "keys".into(),
            },
        ];
        for _ in 0..4 {
            for answer in &answers {
                let outcome = set
                    .acquire(OP)
                    .unwrap()
                    .record_result::<()>(&Err(answer.clone()));
                assert_eq!(outcome, Ignored, "{answer}");
            }
        }
        assert_eq!(
            (set.state(OP), snapshot(&set).calls),
            (BreakerState::Closed, 0)
        );
    }

    #[test]
    fn venue_faults_are_failures() {
        let op = OP;
        let faults = [
            AlpacaError::Timeout {
                op,
                after: Duration::from_secs(3),
            },
            AlpacaError::Connect {
                op,
                detail: "refused".into(),
            },
            AlpacaError::Server {
                op,
                status: 503,
                message: "down".into(),
            },
            AlpacaError::Malformed {
                op,
                detail: "html".into(),
            },
        ];
        assert!(faults.iter().all(|e| Outcome::of_error(e) == Failure));
        assert_eq!(Outcome::of::<u8>(&Ok(1)), Success);
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_serializes_for_health() {
        let (set, _) = set_with(&config());
        calls(&set, &[Success, Failure]);
        let json = serde_json::to_value(snapshot(&set)).unwrap();
        assert_eq!(json["operation"], "bars");
        assert_eq!(json["state"], "closed");
        assert_eq!(json["failure_rate"], 0.5);
        assert_eq!(json["calls"], 2);
    }

    #[test]
    fn every_operation_has_its_own_breaker_slot() {
        let mut slots: Vec<usize> = Operation::ALL.iter().map(|op| slot(*op)).collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..Operation::ALL.len()).collect::<Vec<_>>());
    }

    #[test]
    fn config_check_names_the_key_and_what_is_allowed() {
        assert_eq!(config().check(), Ok(()));
        let bad = BreakerConfig {
            error_threshold: 1.5,
            ..config()
        };
        assert_eq!(
            bad.check().unwrap_err(),
            "broker.breaker.error_threshold = 1.5: must be between 0 (exclusive) and 1"
        );
        let nan = BreakerConfig {
            error_threshold: f64::NAN,
            ..config()
        };
        assert!(
            nan.check()
                .unwrap_err()
                .starts_with("broker.breaker.error_threshold")
        );
        let zero = BreakerConfig {
            half_open_max: HumanDuration(Duration::ZERO),
            ..config()
        };
        assert_eq!(
            zero.check().unwrap_err(),
            "broker.breaker.half_open_max = \"0s\": must be longer than zero"
        );
        let fine = BreakerConfig {
            buckets: 20_000,
            ..config()
        };
        assert!(
            fine.check()
                .unwrap_err()
                .starts_with("broker.breaker.buckets = 20000")
        );
    }

    #[test]
    fn config_deserializes_from_toml_and_refuses_unknown_keys() {
        let text = r#"
            error_threshold = 0.5
            volume_threshold = 10
            window = "10s"
            buckets = 10
            reset_timeout = "30s"
            half_open_trials = 2
            half_open_max = "10s"
        "#;
        assert_eq!(toml::from_str::<BreakerConfig>(text).unwrap(), config());
        assert!(toml::from_str::<BreakerConfig>(&format!("{text}\ntimeout = \"3s\"")).is_err());
        assert!(
            toml::from_str::<BreakerConfig>("error_threshold = 0.5").is_err(),
            "no defaults"
        );
    }
}
