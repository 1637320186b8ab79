//! What the Supervisor knows about a child: how to start it fresh, how it tells the
//! Supervisor that it ended, and the `Drain` message every child answers.
//!
//! Invariants:
//! - A child's incarnation always holds an [`ExitNotifier`]; the notifier reports when the actor
//!   value is dropped, so an uncaught panic (which drops the actor) is reported too, as
//!   [`ExitReason::Crashed`].
//! - Holders of a child's address go through its [`Slot`], which the Supervisor updates on every
//!   restart; nobody keeps an `Addr` that could point at a dead incarnation.

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::domain::Symbol;
use crate::strategy::StrategyKind;

/// The name of a supervised child: `broker`, `cache`, `metrics`, or a strategy instance id.
pub type ChildId = Arc<str>;

/// Why an incarnation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum ExitReason {
    /// Finished its work after a `Drain`.
    Drained,
    /// A panic was caught at the actor boundary.
    Panicked(String),
    /// The actor was dropped without saying why: a panic outside any `catch_unwind`.
    Crashed,
}

impl ExitReason {
    /// Abnormal exits are restarted; normal ones are not.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Self::Panicked(_) | Self::Crashed)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Drained => f.write_str("drained"),
            Self::Panicked(m) => write!(f, "panicked: {m}"),
            Self::Crashed => f.write_str("crashed (dropped without a reason)"),
        }
    }
}

/// Held by every child incarnation; reports its exit reason when dropped.
pub struct ExitNotifier {
    tx: Option<oneshot::Sender<ExitReason>>,
    reason: Option<ExitReason>,
}

impl ExitNotifier {
    pub fn new() -> (Self, oneshot::Receiver<ExitReason>) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                tx: Some(tx),
                reason: None,
            },
            rx,
        )
    }

    /// A notifier nobody listens to (for actors started outside a Supervisor, e.g. in tests).
    pub fn detached() -> Self {
        Self {
            tx: None,
            reason: None,
        }
    }

    /// Records why the incarnation is ending. The first reason wins: a panic followed by the
    /// stop it causes is still a panic.
    pub fn set(&mut self, reason: ExitReason) {
        self.reason.get_or_insert(reason);
    }
}

impl Drop for ExitNotifier {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(self.reason.take().unwrap_or(ExitReason::Crashed));
        }
    }
}

/// Asks a child to finish the work in hand, acknowledge, and stop. Mailboxes are FIFO, so the
/// reply is a barrier: everything queued before it has been handled.
#[derive(Message)]
#[rtype(result = "DrainAck")]
pub struct Drain;

#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct DrainAck {
    /// Orders that reached a known state during the drain (the BrokerActor's count).
    pub orders_completed: u64,
}

/// What a child is; decides its drain phase and whether losing it halts trading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChildRole {
    Metrics,
    Cache,
    /// Essential: if it fails for good, herd halts trading and reports unready.
    Broker,
    Strategy {
        kind: StrategyKind,
        symbols: Vec<Symbol>,
    },
}

impl ChildRole {
    pub fn is_essential(&self) -> bool {
        matches!(self, Self::Broker)
    }
}

/// Passed to a spec's start function for each incarnation.
pub struct ChildContext {
    pub id: ChildId,
    /// 1 for the first start, then +1 per restart.
    pub incarnation: u64,
    pub exit: ExitNotifier,
}

/// Builds and starts one incarnation with FRESH state, returning where to send `Drain`.
pub type StartFn = Box<dyn FnMut(ChildContext) -> Recipient<Drain>>;

pub struct ChildSpec {
    pub id: ChildId,
    pub role: ChildRole,
    pub start: StartFn,
}

/// The current address of a supervised actor, swapped by the Supervisor on restart.
pub struct Slot<A: Actor>(Arc<ArcSwapOption<Addr<A>>>);

impl<A: Actor> Clone for Slot<A> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<A: Actor> Default for Slot<A> {
    fn default() -> Self {
        Self(Arc::new(ArcSwapOption::empty()))
    }
}

impl<A: Actor> Slot<A> {
    pub fn set(&self, addr: Addr<A>) {
        self.0.store(Some(Arc::new(addr)));
    }

    /// The live address, or `None` while the actor is down or restarting.
    pub fn get(&self) -> Option<Addr<A>> {
        self.0
            .load_full()
            .map(|a| (*a).clone())
            .filter(Addr::connected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_notifier_without_a_reason_reports_a_crash() {
        let (n, mut rx) = ExitNotifier::new();
        drop(n);
        assert_eq!(rx.try_recv().unwrap(), ExitReason::Crashed);
    }

    #[test]
    fn the_first_reason_wins() {
        let (mut n, mut rx) = ExitNotifier::new();
        n.set(ExitReason::Panicked("boom".into()));
        n.set(ExitReason::Drained);
        drop(n);
        assert_eq!(rx.try_recv().unwrap(), ExitReason::Panicked("boom".into()));
    }
}
