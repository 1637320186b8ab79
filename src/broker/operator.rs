//! What an operator may tell the broker: the risk gate's trading state, and the circuit
//! breakers. The admin API sends these messages; nothing else changes either by hand.
//!
//! Invariants:
//! - An operator's trading state replaces the one in force, looser or tighter (only an operator
//!   may loosen it; a core can only tighten it, see `trading.rs`).
//! - Every change is logged once as an event naming who asked and why.

use actix::prelude::*;

use super::{BreakerSnapshot, BrokerActor};
use crate::domain::{Operation, Trading, TradingState};
use crate::journal::{Entry, keys};

/// Sets the trading state, with the reason `/health` shows.
#[derive(Message)]
#[rtype(result = "Trading")]
pub struct SetTrading {
    pub state: TradingState,
    pub reason: String,
    /// Who asked (for the admin API: the request id).
    pub by: String,
}

impl Handler<SetTrading> for BrokerActor {
    type Result = MessageResult<SetTrading>;

    fn handle(&mut self, msg: SetTrading, _: &mut Self::Context) -> Self::Result {
        let before = self.deps.process.trading().state;
        self.deps
            .process
            .set_trading(msg.state, Some(format!("operator: {}", msg.reason)));
        self.deps.metrics.trading_state(msg.state);
        self.journal_trading();
        tracing::warn!(
            event = "trading_state", from = before.as_str(), to = msg.state.as_str(),
            by = %msg.by, reason = %msg.reason, "trading state set by an operator"
        );
        MessageResult((*self.deps.process.trading()).clone())
    }
}

impl BrokerActor {
    /// Records the trading state in force, so a restarted herd starts in it (a halted herd
    /// restarts halted).
    pub(super) fn journal_trading(&self) {
        if let Some(journal) = self.deps.book.journal() {
            let trading = self.deps.process.trading();
            journal.record(Entry::State {
                key: keys::TRADING.to_owned(),
                value: serde_json::to_string(&*trading).ok(),
            });
        }
    }
}

/// What to do to the circuit breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerCommand {
    /// Close one breaker with an empty window.
    Reset(Operation),
    /// Refuse every call of one operation until it is reset.
    Open(Operation),
    ResetAll,
}

/// Applies a [`BreakerCommand`]; answers every breaker afterwards.
#[derive(Message)]
#[rtype(result = "Vec<BreakerSnapshot>")]
pub struct CommandBreakers {
    pub command: BreakerCommand,
    pub by: String,
}

impl Handler<CommandBreakers> for BrokerActor {
    type Result = MessageResult<CommandBreakers>;

    fn handle(&mut self, msg: CommandBreakers, _: &mut Self::Context) -> Self::Result {
        let breakers = self.deps.gateway.breakers();
        let (action, operation) = match msg.command {
            BreakerCommand::Reset(op) => {
                breakers.reset(op);
                ("reset", op.as_str())
            }
            BreakerCommand::Open(op) => {
                breakers.force_open(op);
                ("open", op.as_str())
            }
            BreakerCommand::ResetAll => {
                breakers.reset_all();
                ("reset", "all")
            }
        };
        tracing::warn!(event = "breaker_command", action, operation, by = %msg.by, "circuit breaker set by an operator");
        MessageResult(breakers.snapshot())
    }
}
