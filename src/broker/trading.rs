//! `TightenTrading`: a core asks the risk gate for a tighter trading state (a risk manager whose
//! limits were breached).
//!
//! Invariant: this only ever tightens (active → reducing → halted); loosening is an operator's
//! decision, never a core's.

use actix::prelude::*;

use super::BrokerActor;
use crate::domain::{InstanceId, Trading, TradingState};

/// Asks for `state` (if tighter than the current one), with the reason `/health` shows.
#[derive(Message)]
#[rtype(result = "Trading")]
pub struct TightenTrading {
    pub state: TradingState,
    pub reason: String,
    /// The instance asking.
    pub by: InstanceId,
}

impl Handler<TightenTrading> for BrokerActor {
    type Result = MessageResult<TightenTrading>;

    fn handle(&mut self, msg: TightenTrading, _: &mut Self::Context) -> Self::Result {
        let before = self.deps.process.trading().state;
        let reason = format!("{}: {}", msg.by, msg.reason);
        let now = self.deps.process.tighten_trading(msg.state, reason);
        if now.state != before {
            self.deps.metrics.trading_state(now.state);
            self.journal_trading();
            tracing::warn!(
                event = "trading_state", from = before.as_str(), to = now.state.as_str(),
                by = %msg.by, reason = now.reason.as_deref(), "trading state tightened"
            );
        }
        MessageResult((*now).clone())
    }
}
