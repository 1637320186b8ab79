//! The thread-safe set of breakers, one per operation, and the permits it hands out.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use super::*;

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
pub(super) fn slot(op: Operation) -> usize {
    match op {
        Operation::Clock => 0,
        Operation::Account => 1,
        Operation::Positions => 2,
        Operation::Bars => 3,
        Operation::SubmitOrder => 4,
        Operation::GetOrder => 5,
        Operation::OrderByClientId => 6,
        Operation::ListOrders => 7,
        Operation::Calendar => 8,
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

    #[cfg(test)]
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
