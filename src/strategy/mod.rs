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
#[cfg(feature = "chaos")]
pub mod chaos;
pub mod indicators;
pub mod mean_reversion;
pub mod momentum;
pub mod portfolio;
pub mod portfolio_optimizer;
mod registry;

use crate::domain::{DataNeeds, Decision, MarketView};

pub use registry::{StrategyKind, StrategyParams, StrategySpec, build};

/// The decision logic of one strategy kind.
pub trait Strategy: Send + 'static {
    /// What the actor must fetch before each tick.
    fn needs(&self) -> DataNeeds;
    /// Decides on this tick's view; one [`Decision`] per symbol considered.
    fn decide(&mut self, view: &MarketView) -> Vec<Decision>;
}
