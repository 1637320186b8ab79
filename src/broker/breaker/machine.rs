//! The state machine of one operation's breaker (pure: time is passed in). See the module
//! above for its invariants.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::window::{Window, rate};
use super::*;

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
