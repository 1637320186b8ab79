//! What an operator may ask of a supervised child: pause, resume, restart, tick now.
//!
//! The Supervisor owns an operator's intent (a paused instance stays paused across restarts,
//! because every incarnation is started with the flag) and relays it to the running
//! incarnation as a [`Control`] message: nothing reaches into an instance's state.
//!
//! Invariants:
//! - While herd drains, no child is restarted, paused, resumed or ticked.
//! - Only strategy instances take pause, resume and tick-now; any child can be restarted.
//! - Restarting a running child drains it first (the tick in flight and its orders finish),
//!   then starts a fresh incarnation; a restart by an operator also forgets the restart
//!   intensity's history, so a child left `failed` can be brought back.

use actix::prelude::*;
use serde::Serialize;

use super::Supervisor;
use crate::domain::{Control, ControlRefused, Drain, Lifecycle};

/// What an operator asks of one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChildAction {
    Pause,
    Resume,
    Restart,
    /// Tick now, outside the schedule.
    Execute,
}

impl ChildAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Restart => "restart",
            Self::Execute => "execute",
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<ControlDone, ControlError>")]
pub struct ControlChild {
    pub id: String,
    pub action: ChildAction,
    /// The id must name a strategy instance (the admin API's `/admin/strategies/…`), even for
    /// a restart, which otherwise applies to any child.
    pub strategy_only: bool,
}

/// The child after the action was taken (a restart has begun, not necessarily finished).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ControlDone {
    pub id: String,
    pub action: ChildAction,
    pub state: Lifecycle,
    pub incarnation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// Why an action was not taken; each variant is one answer an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no child named {0:?}")]
    Unknown(String),
    #[error("{0} is not a strategy instance: only those are paused, resumed or ticked")]
    NotAStrategy(String),
    #[error("{id} is {state:?}, not running: it cannot tick now")]
    NotRunning { id: String, state: Lifecycle },
    #[error("{id} did not tick: {why}")]
    Refused { id: String, why: ControlRefused },
    #[error("herd is draining: no child is restarted, paused, resumed or ticked")]
    Draining,
}

impl Supervisor {
    fn done(&self, i: usize, action: ChildAction) -> ControlDone {
        let c = &self.children[i];
        ControlDone {
            id: c.spec.id.to_string(),
            action,
            state: c.state,
            incarnation: c.incarnation,
            paused: c.spec.role.is_strategy().then_some(c.paused),
        }
    }

    /// Starts child `i` afresh: at once when no incarnation runs, after its drain otherwise.
    fn restart(&mut self, i: usize, ctx: &mut Context<Self>) {
        let child = &mut self.children[i];
        child.intensity.reset();
        if child.spec.role.is_essential() {
            tracing::warn!(child = %child.spec.id, "essential child restarted by an operator; trading stays as it is until resumed");
        }
        if let Some(drain) = child.drain.clone() {
            child.restart_on_exit = true;
            // The acknowledgement is not needed: the exit notice starts the next incarnation.
            drain.do_send(Drain);
            return;
        }
        if let Some(pending) = child.pending_restart.take() {
            ctx.cancel_future(pending);
        }
        self.start_child(i, ctx);
    }
}

type Answer = Result<ControlDone, ControlError>;

impl Handler<ControlChild> for Supervisor {
    type Result = ResponseActFuture<Self, Answer>;

    fn handle(&mut self, msg: ControlChild, ctx: &mut Self::Context) -> Self::Result {
        let ControlChild {
            id,
            action,
            strategy_only,
        } = msg;
        let Some(&i) = self.by_id.get(id.as_str()) else {
            return Box::pin(fut::ready(Err(ControlError::Unknown(id))));
        };
        let strategy = self.children[i].spec.role.is_strategy();
        if !strategy && (strategy_only || action != ChildAction::Restart) {
            return Box::pin(fut::ready(Err(ControlError::NotAStrategy(id))));
        }
        if self.draining {
            return Box::pin(fut::ready(Err(ControlError::Draining)));
        }
        if action == ChildAction::Restart {
            tracing::info!(child = %id, "restart asked by an operator");
            self.restart(i, ctx);
            return Box::pin(fut::ready(Ok(self.done(i, action))));
        }
        let control = self.children[i].control.clone();
        let order = match action {
            ChildAction::Pause | ChildAction::Resume => {
                let pause = action == ChildAction::Pause;
                self.children[i].paused = pause;
                self.journal_paused(i);
                if pause {
                    Control::Pause
                } else {
                    Control::Resume
                }
            }
            _ => Control::TickNow,
        };
        if order != Control::TickNow {
            // The flag above is what counts: an incarnation that misses this message (it is
            // ending) passes the flag on to the next one through its start.
            let tell = async move {
                if let Some(control) = control {
                    let _ = control.send(order).await;
                }
            };
            return Box::pin(
                tell.into_actor(self)
                    .map(move |(), act, _| Ok(act.done(i, action))),
            );
        }
        let Some(control) = control else {
            let state = self.children[i].state;
            return Box::pin(fut::ready(Err(ControlError::NotRunning { id, state })));
        };
        Box::pin(
            async move { control.send(Control::TickNow).await }
                .into_actor(self)
                .map(move |reply, act, _| match reply {
                    Ok(Ok(())) => Ok(act.done(i, action)),
                    Ok(Err(why)) => Err(ControlError::Refused { id, why }),
                    // The incarnation ended between the check and the message.
                    Err(_) => Err(ControlError::NotRunning {
                        id,
                        state: act.children[i].state,
                    }),
                }),
        )
    }
}
