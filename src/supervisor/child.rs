//! What the Supervisor knows about a child: what it is and how to start it fresh.
//!
//! Invariant: a spec's start function builds FRESH state every time it is called, so a restart
//! never inherits what made the previous incarnation fail.

use actix::prelude::*;
use serde::Serialize;

use crate::domain::{ChildId, Control, Drain, ExitNotifier, StatusBoard, Submitting, Symbol};

/// What a child is; decides its drain phase and whether losing it halts trading.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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

    pub fn is_strategy(&self) -> bool {
        matches!(self, Self::Strategy { .. })
    }
}

/// Passed to a spec's start function for each incarnation.
pub struct ChildContext {
    pub id: ChildId,
    /// 1 for the first start, then +1 per restart.
    pub incarnation: u64,
    pub exit: ExitNotifier,
    /// An operator paused the instance: the incarnation starts paused.
    pub paused: bool,
}

/// Where the Supervisor reaches a running incarnation.
pub struct ChildHandle {
    pub drain: Recipient<Drain>,
    /// Strategy instances only: where an operator's [`Control`] goes.
    pub control: Option<Recipient<Control>>,
    /// A strategy instance that says when it has orders on their way: at the drain only then
    /// is it asked to drain; otherwise it stands down on the drain signal. Without it, the
    /// child is always asked.
    pub submitting: Option<Submitting>,
    /// A strategy instance's status, as it published it after its last tick.
    pub status: Option<StatusBoard>,
}

impl ChildHandle {
    /// A service actor: it drains, and takes no operator control.
    pub fn service<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<Drain>,
    {
        Self {
            drain: addr.clone().recipient(),
            control: None,
            submitting: None,
            status: None,
        }
    }

    /// A strategy instance: it drains and takes [`Control`].
    pub fn strategy<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<Drain> + Handler<Control>,
    {
        Self {
            drain: addr.clone().recipient(),
            control: Some(addr.clone().recipient()),
            submitting: None,
            status: None,
        }
    }

    /// The instance tells through `submitting` when it has orders on their way, and stands
    /// down on the process's drain signal otherwise (see [`Submitting`]).
    pub fn with_submitting(mut self, submitting: Submitting) -> Self {
        self.submitting = Some(submitting);
        self
    }

    /// The instance publishes its status on `board` after every tick (`/strategies`).
    pub fn with_status(mut self, board: StatusBoard) -> Self {
        self.status = Some(board);
        self
    }
}

/// Builds and starts one incarnation with FRESH state, returning where to reach it.
pub type StartFn = Box<dyn FnMut(ChildContext) -> ChildHandle>;

pub struct ChildSpec {
    pub id: ChildId,
    pub role: ChildRole,
    pub start: StartFn,
}
