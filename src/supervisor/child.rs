//! What the Supervisor knows about a child: what it is and how to start it fresh.
//!
//! Invariant: a spec's start function builds FRESH state every time it is called, so a restart
//! never inherits what made the previous incarnation fail.

use actix::prelude::*;
use serde::Serialize;

use crate::domain::{ChildId, Drain, ExitNotifier, Symbol};

/// What a child is; decides its drain phase and whether losing it halts trading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChildRole {
    Metrics,
    Cache,
    /// Essential: if it fails for good, herd halts trading and reports unready.
    Broker,
    Strategy {
        /// The strategy kind's name (`StrategyKind::as_str`).
        kind: &'static str,
        /// The instance's validated parameters, every default spelled out.
        params: serde_json::Value,
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
