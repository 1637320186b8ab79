//! Process-wide state that must be readable at once from any thread: the phase (starting,
//! running, draining), the trading state (active, reducing, halted) and whether the venue has
//! been reached.
//!
//! Shared mutable state, because `/readyz` must turn 503 the instant SIGTERM arrives, even while
//! every actor is busy draining: readiness cannot depend on an actor answering a message.
//!
//! Invariant: the phase only moves forward (Starting → Running → Draining).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::domain::{Trading, TradingState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting = 0,
    Running = 1,
    Draining = 2,
}

/// How often the Supervisor's event loop records that it turns.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A heartbeat older than this means the event loop is stuck: the process is not alive.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(5);

pub struct ProcessState {
    phase: AtomicU8,
    /// Set once the broker has had any successful answer from the venue.
    venue_reached: AtomicBool,
    /// What orders may leave the process, and why it is not `Active`.
    trading: ArcSwap<Trading>,
    /// An essential child failed for good: the process cannot do its job.
    essential_failed: AtomicBool,
    /// When the Supervisor's event loop last turned, in ms since `started_at`: liveness reads
    /// it without a message, so a probe costs one atomic load however many actors run.
    heartbeat_ms: AtomicU64,
    /// Cancelled when the drain begins: work that has no effect yet (an order waiting for the
    /// quota, a tick still reading) stops at once instead of being waited for.
    drain: CancellationToken,
    pub started_at: Instant,
}

impl ProcessState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: AtomicU8::new(Phase::Starting as u8),
            venue_reached: AtomicBool::new(false),
            trading: ArcSwap::from_pointee(Trading {
                state: TradingState::Active,
                reason: None,
            }),
            essential_failed: AtomicBool::new(false),
            heartbeat_ms: AtomicU64::new(0),
            drain: CancellationToken::new(),
            started_at: Instant::now(),
        })
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Running,
            _ => Phase::Draining,
        }
    }

    /// Moves the phase forward; never back.
    pub fn advance(&self, to: Phase) {
        self.phase.fetch_max(to as u8, Ordering::AcqRel);
        if to == Phase::Draining {
            self.drain.cancel();
        }
    }

    /// Cancelled once the drain has begun (see the field).
    pub fn drain_signal(&self) -> CancellationToken {
        self.drain.clone()
    }

    pub fn mark_venue_reached(&self) {
        self.venue_reached.store(true, Ordering::Release);
    }

    pub fn venue_reached(&self) -> bool {
        self.venue_reached.load(Ordering::Acquire)
    }

    /// Stops every order from leaving the process.
    pub fn halt(&self, reason: impl Into<String>) {
        self.set_trading(TradingState::Halted, Some(reason.into()));
    }

    pub fn set_trading(&self, state: TradingState, reason: Option<String>) {
        self.trading.store(Arc::new(Trading { state, reason }));
    }

    /// Moves the trading state to `state` if that is tighter than the current one (a halt is
    /// never loosened to reducing this way); returns the state in force afterwards.
    pub fn tighten_trading(&self, state: TradingState, reason: String) -> Arc<Trading> {
        let tighter = Arc::new(Trading {
            state,
            reason: Some(reason),
        });
        self.trading.rcu(|current| {
            if state > current.state {
                Arc::clone(&tighter)
            } else {
                Arc::clone(current)
            }
        });
        self.trading()
    }

    pub fn trading(&self) -> Arc<Trading> {
        self.trading.load_full()
    }

    /// Why trading is halted, if it is.
    pub fn halted(&self) -> Option<String> {
        let t = self.trading.load();
        (t.state == TradingState::Halted).then(|| t.reason.clone().unwrap_or_default())
    }

    pub fn mark_essential_failed(&self) {
        self.essential_failed.store(true, Ordering::Release);
    }

    pub fn essential_failed(&self) -> bool {
        self.essential_failed.load(Ordering::Acquire)
    }

    /// Ready to take traffic and trade: running, the venue reached, nothing essential lost.
    /// The Supervisor's event loop turned now.
    pub fn beat(&self) {
        let now = self.started_at.elapsed().as_millis() as u64;
        self.heartbeat_ms.store(now, Ordering::Release);
    }

    /// How long ago the Supervisor's event loop last turned.
    pub fn since_heartbeat(&self) -> Duration {
        let now = self.started_at.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.heartbeat_ms.load(Ordering::Acquire),
        ))
    }

    pub fn is_ready(&self) -> bool {
        self.phase() == Phase::Running && self.venue_reached() && !self.essential_failed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_beat_makes_the_heartbeat_fresh() {
        let p = ProcessState::new();
        p.beat();
        assert!(p.since_heartbeat() < HEARTBEAT_STALE);
        // A heartbeat recorded long ago (the loop stuck since) reads as stale.
        p.heartbeat_ms.store(0, Ordering::Release);
        let p = ProcessState {
            started_at: Instant::now() - 2 * HEARTBEAT_STALE,
            ..Arc::into_inner(p).unwrap()
        };
        assert!(p.since_heartbeat() > HEARTBEAT_STALE);
        p.beat();
        assert!(p.since_heartbeat() < HEARTBEAT_STALE);
    }

    #[test]
    fn trading_is_only_ever_tightened_this_way() {
        let p = ProcessState::new();
        let t = p.tighten_trading(TradingState::Reducing, "drawdown".into());
        assert_eq!(t.state, TradingState::Reducing);
        p.halt("broker failed");
        let t = p.tighten_trading(TradingState::Reducing, "drawdown again".into());
        assert_eq!(
            (t.state, t.reason.as_deref()),
            (TradingState::Halted, Some("broker failed"))
        );
    }

    #[test]
    fn phase_never_moves_back_and_draining_is_not_ready() {
        let p = ProcessState::new();
        p.mark_venue_reached();
        assert!(!p.is_ready());
        p.advance(Phase::Running);
        assert!(p.is_ready());
        p.advance(Phase::Draining);
        p.advance(Phase::Running);
        assert_eq!(p.phase(), Phase::Draining);
        assert!(!p.is_ready());
    }
}
