//! Strategy cores and the actor that runs each configured instance.
//!
//! A core ([`Strategy`]) is pure decision logic: given a [`MarketView`] it returns
//! [`Decision`]s (both are `domain` vocabulary, shared with the broker). The [`StrategyActor`](actor::StrategyActor) does everything else: the
//! schedule, fetching the view through the BrokerActor, sending order intents, reporting.
//!
//! Invariants:
//! - Cores do no I/O, read no clock and draw no unseeded randomness: the time they see is
//!   `MarketView::now` (the venue's clock), so the same core runs live, against the simulator
//!   and in replay, and is unit-tested with known-answer vectors.
//! - A core sees only its own instance's positions and pending orders, never the account-wide
//!   aggregate, so two instances trading one symbol never act on each other's holdings.

pub mod actor;
pub mod book_risk;
#[cfg(feature = "chaos")]
pub mod chaos;
pub mod indicators;
pub mod mean_reversion;
pub mod momentum;
pub mod neural;
pub mod portfolio;
pub mod portfolio_optimizer;
mod registry;
pub mod risk_manager;
pub mod schedule;
#[cfg(test)]
mod testing;
pub mod workshop;

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::domain::{DataNeeds, Decision, InstanceId, MarketView, TradingState};
use crate::metrics::RiskAlert;

pub use neural::work::{Finished, Work};
pub use registry::{StrategyKind, StrategyParams, StrategySpec, build};

/// The decision logic of one strategy kind.
pub trait Strategy: Send + 'static {
    /// What the actor must fetch before each tick.
    fn needs(&self) -> DataNeeds;
    /// Decides on this tick's view; one [`Decision`] per symbol considered.
    fn decide(&mut self, view: &MarketView) -> Vec<Decision>;
    /// Whether `decide` is cheap enough to run on the actor's thread (microseconds, as
    /// `benches/decisions.rs` measures each core): it then skips the hand-off to the blocking
    /// pool and back, which at thousands of instances cost more than deciding. Off unless a
    /// core says so: a slow core on the actor's thread would stall every instance sharing it.
    fn decides_inline(&self) -> bool {
        false
    }
    /// The instances whose books this core watches (the view carries them in `guarded`).
    fn guards(&self) -> &[InstanceId] {
        &[]
    }
    /// What the last `decide` found beyond its decisions, for a core that monitors.
    fn report(&mut self) -> Option<CoreReport> {
        None
    }
    /// Heavy work the last `decide` asked for (training a model): the actor hands it to the
    /// shared [`Workshop`](workshop::Workshop), off every actor thread, and brings the result
    /// back through [`Strategy::finished`]. Deciding never waits for it.
    fn work(&mut self) -> Vec<Work> {
        Vec::new()
    }
    /// The result of work asked for earlier.
    fn finished(&mut self, _done: Finished) {}
}

/// `details` as a report's JSON: written to text once a tick instead of built as a tree of
/// values (a risk manager's alerts were a sixth of its tick that way), and shared, not copied,
/// by every status it is published in. `None` only if the value cannot be JSON (a map with
/// keys that are not strings), which no report has.
pub fn report_details(details: &impl Serialize) -> Option<Arc<RawValue>> {
    serde_json::value::to_raw_value(details).ok().map(Arc::from)
}

/// What a monitoring core reports after a tick, beyond its decisions.
#[derive(Debug, Clone)]
pub struct CoreReport {
    /// Shown in `/strategies` as the instance's `report`: JSON text written once (see
    /// [`report_details`]), so the status copies it by a reference count.
    pub details: Option<Arc<RawValue>>,
    /// Alerts raised this tick (not those still standing): each a log event and a count.
    pub raised: Vec<(RiskAlert, String)>,
    /// A trading state the core asks the risk gate for, and why.
    pub trading: Option<(TradingState, String)>,
    /// (one-period VaR in USD, current drawdown) for the risk gauges, when computed.
    pub gauges: Option<(f64, f64)>,
}
