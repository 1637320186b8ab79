//! The shared vocabulary of herd: identifiers and values, what strategies and the broker
//! exchange, the protocol every supervised child speaks, and configuration value types.
//!
//! Invariants:
//! - This module imports nothing else from the crate: every other module may use it, and it can
//!   be read and tested alone (`tests/layers.rs` checks it).
//! - A value that parsed is safe everywhere it goes (labels, ids, upstream queries).

mod data;
mod duration;
mod holding;
mod ids;
mod invalid;
mod market;
mod order;
mod protocol;
mod repeats;
mod secret;
mod trading;
mod venue;

pub use data::DataSettings;
pub use duration::HumanDuration;
pub use holding::Holding;
pub use ids::{AccountId, ChildId, ClientOrderId, InstanceId, Symbol, SymbolMap};
pub use invalid::{InvalidSetting, positive};
pub use market::{Bar, Session, Side, Timeframe};
pub use order::{OrderRecord, OrderState, OrderStatus};
pub use protocol::{
    Control, ControlRefused, Drain, DrainAck, ExitNotifier, ExitReason, InstancePosition,
    InstanceStatus, Lifecycle, Slot, StatusBoard, Submitting, panic_message,
};
pub use repeats::{REPEAT_SUMMARY, Repeats, Say};
pub use secret::Secret;
pub use trading::{
    AccountSnapshot, Action, DataNeeds, Decision, GuardedBook, MarketView, OrderIntent, Trading,
    TradingState,
};
pub use venue::{BreakerState, Operation, RequestClass, Venue};
