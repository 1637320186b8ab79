//! What the Supervisor and operators ask of a running instance: `Control` (pause, resume,
//! tick now) and `Drain`. See the module above for the invariants they keep: never a second
//! tick in flight, and a drain that waits only for orders already handed to the broker.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::StrategyActor;
use crate::domain::{Control, ControlRefused, Drain, DrainAck, ExitReason};

impl Handler<Control> for StrategyActor {
    type Result = Result<(), ControlRefused>;

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) -> Self::Result {
        if self.draining {
            return Err(ControlRefused::Draining);
        }
        match msg {
            Control::Pause | Control::Resume => {
                self.paused = msg == Control::Pause;
                tracing::info!(instance = %self.id, paused = self.paused, "paused state set by an operator");
            }
            Control::TickNow if self.in_flight => return Err(ControlRefused::Busy),
            Control::TickNow => {
                tracing::info!(instance = %self.id, "tick asked by an operator");
                self.tick(ctx);
            }
        }
        Ok(())
    }
}

impl Handler<Drain> for StrategyActor {
    type Result = ActorResponse<Self, DrainAck>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        if self.in_flight && self.submitting.get() {
            let (tx, rx) = oneshot::channel();
            self.drain_waiter = Some(tx);
            return ActorResponse::r#async(async move { rx.await.ok() }.into_actor(self).map(
                |_, act, ctx| {
                    act.exit.set(ExitReason::Drained);
                    ctx.stop();
                    DrainAck::default()
                },
            ));
        }
        if self.in_flight {
            // Still reading or deciding: no order exists yet, so there is nothing to wait for;
            // stopping drops the pending read and the decision's result.
            tracing::debug!(instance = %self.id, "drain: tick in flight abandoned before any order");
        }
        // Answered at once, with no future of its own: at the drain every instance gets here,
        // and the drain's cost is per instance.
        self.exit.set(ExitReason::Drained);
        ctx.stop();
        ActorResponse::reply(DrainAck::default())
    }
}
