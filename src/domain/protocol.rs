//! The protocol every supervised child speaks, and what the Supervisor reports about it.
//!
//! A child incarnation holds an [`ExitNotifier`] and answers [`Drain`]; strategy instances also
//! answer [`Control`] and publish their status on a [`StatusBoard`] after every tick. Holders
//! of a child's address go through its [`Slot`]. These types live here, not in the supervisor,
//! because the children, the HTTP layer and the metrics speak them without depending on the
//! Supervisor.
//!
//! Invariants:
//! - A child's incarnation always holds an [`ExitNotifier`]; the notifier reports when the actor
//!   value is dropped, so an uncaught panic (which drops the actor) is reported too, as
//!   [`ExitReason::Crashed`].
//! - Nobody keeps an `Addr` that could point at a dead incarnation: the Supervisor updates the
//!   [`Slot`] on every restart.

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::oneshot;

use super::{Decision, Holding, Symbol};

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

/// The text of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Asks a child to finish the work in hand, acknowledge, and stop. Mailboxes are FIFO, so the
/// reply is a barrier: everything queued before it has been handled.
#[derive(Message)]
#[rtype(result = "DrainAck")]
pub struct Drain;

/// Whether a strategy incarnation has orders on their way (set by the instance, read by the
/// Supervisor at the drain). Only such an instance is asked to drain and awaited: the others
/// stand down on the process's drain signal alone (they tick no more and send nothing), so the
/// drain does not cost a message round trip and a stop per instance.
#[derive(Debug, Clone, Default)]
pub struct Submitting(Arc<std::sync::atomic::AtomicBool>);

impl Submitting {
    pub fn set(&self, on: bool) {
        self.0.store(on, std::sync::atomic::Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// An operator's instruction to a running strategy instance, relayed by the Supervisor (which
/// also remembers `Pause`, so that a restarted incarnation starts paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "Result<(), ControlRefused>")]
pub enum Control {
    /// Skip scheduled ticks until `Resume`.
    Pause,
    Resume,
    /// Tick now, outside the schedule; a paused instance ticks too (the operator asked).
    TickNow,
}

/// Why an instance did not do what a [`Control`] asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    #[error("a tick is already running")]
    Busy,
    #[error("the instance is draining")]
    Draining,
}

#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct DrainAck {
    /// Orders that reached a known state during the drain (the BrokerActor's count).
    pub orders_completed: u64,
}

/// What a strategy instance publishes after each tick (see [`StatusBoard`]).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct InstanceStatus {
    /// Ticks of the current incarnation (a restart starts again from 0).
    pub ticks: u64,
    pub last_tick_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Orders this incarnation handed to the broker.
    pub orders: u64,
    /// Orders herd refused to send (risk gate, halt, quota, breaker) in this incarnation.
    pub refused: u64,
    /// Why the latest one was refused, as the gate said it.
    pub last_refusal: Option<String>,
    /// The last tick's decision for each symbol: action, signal and reason. Shared: the status
    /// is copied into a report after every tick.
    #[schema(value_type = Vec<Decision>)]
    pub last_decisions: Arc<[Decision]>,
    /// This instance's holdings as of the last tick, marked at the venue's current price (the
    /// newest close it saw where the account holds none of the symbol).
    pub positions: Vec<InstancePosition>,
    /// What a monitoring core (a risk manager) found on its last tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub report: Option<Arc<serde_json::value::RawValue>>,
}

/// One holding of an instance, with its P&L at a price.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InstancePosition {
    pub symbol: Symbol,
    #[serde(flatten)]
    pub holding: Holding,
    /// The price it is marked at, if known: the venue's current price where the account holds
    /// the symbol, else the newest close the instance saw.
    pub last_price: Option<Decimal>,
    pub unrealized_pnl: Option<Decimal>,
}

impl InstancePosition {
    pub fn marked(symbol: Symbol, holding: Holding, last_price: Option<Decimal>) -> Self {
        Self {
            symbol,
            holding,
            last_price,
            unrealized_pnl: last_price.map(|p| holding.unrealized_pnl(p)),
        }
    }
}

/// Where a strategy instance publishes its status at the end of every tick, and the Supervisor
/// reads it for `/strategies`. One board per incarnation: a replaced incarnation's late
/// publishing lands on a board nobody reads any more.
///
/// Shared state, not a message: a report per instance-tick was a message through the
/// Supervisor's mailbox and a copy of the status, on one thread, thousands of times a cycle;
/// publishing reuses the board's allocations and is read only when someone asks.
#[derive(Clone, Default)]
pub struct StatusBoard(Arc<std::sync::Mutex<InstanceStatus>>);

impl StatusBoard {
    /// Replaces what the board shows with `status`, as of now.
    pub fn publish(&self, status: &InstanceStatus) {
        self.lock().clone_from(status);
    }

    /// What the instance published last (the default before its first tick).
    pub fn read(&self) -> InstanceStatus {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InstanceStatus> {
        // Poisoned only by a panic while copying (an allocation failure): what is there is
        // still worth showing.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a supervised child stands. Transitions: `Lifecycle::on` in `supervisor::lifecycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Starting,
    Running,
    Draining,
    Stopped,
    Restarting,
    Failed,
}

impl Lifecycle {
    pub const ALL: &[Lifecycle] = &[
        Lifecycle::Starting,
        Lifecycle::Running,
        Lifecycle::Draining,
        Lifecycle::Stopped,
        Lifecycle::Restarting,
        Lifecycle::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Starting => "starting",
            Lifecycle::Running => "running",
            Lifecycle::Draining => "draining",
            Lifecycle::Stopped => "stopped",
            Lifecycle::Restarting => "restarting",
            Lifecycle::Failed => "failed",
        }
    }
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
