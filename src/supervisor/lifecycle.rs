//! The lifecycle of a supervised child, changed only through [`Lifecycle::on`].
//!
//! ```text
//! Starting ──started──▶ Running ──drain──▶ Draining ──exited──▶ Stopped
//!    │                     │                                      ▲
//!    └──────crashed────────┴──▶ Restarting ──start──▶ Starting    │ exited cleanly
//!                          └──▶ Failed (over its restart intensity; admin `start` revives it)
//! ```
//! The states themselves are [`Lifecycle`], shared vocabulary in `domain`; the transitions are
//! here, with the Supervisor that drives them.
//!
//! Invariant: an event that is not allowed in the current state is an error, and the state
//! stays as it was.

use crate::domain::Lifecycle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The incarnation is up.
    Started,
    /// The Supervisor asked it to drain.
    Drain,
    /// It ended normally (drained or stopped on its own).
    Exited,
    /// It ended abnormally; `give_up` when over its restart intensity.
    Crashed { give_up: bool },
    /// A (re)start begins: after backoff, or on an operator's request.
    Start,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("lifecycle event {event:?} is not allowed in state {from:?}")]
pub struct InvalidTransition {
    pub from: Lifecycle,
    pub event: LifecycleEvent,
}

impl Lifecycle {
    pub fn on(self, event: LifecycleEvent) -> Result<Lifecycle, InvalidTransition> {
        use Lifecycle::*;
        use LifecycleEvent as E;
        let next = match (self, event) {
            (Starting, E::Started) => Running,
            (Starting | Running, E::Drain) => Draining,
            // A child that is not running has nothing in flight: draining it is stopping it.
            (Restarting, E::Drain) => Stopped,
            (Failed | Stopped, E::Drain) => self,
            (Starting | Running | Draining, E::Exited) => Stopped,
            (Draining, E::Crashed { .. }) => Stopped,
            (Starting | Running, E::Crashed { give_up: false }) => Restarting,
            (Starting | Running, E::Crashed { give_up: true }) => Failed,
            (Restarting | Failed | Stopped, E::Start) => Starting,
            (from, event) => return Err(InvalidTransition { from, event }),
        };
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleEvent as E;
    use crate::domain::Lifecycle::*;

    #[test]
    fn a_crash_restarts_until_intensity_is_exceeded() {
        assert_eq!(Running.on(E::Crashed { give_up: false }), Ok(Restarting));
        assert_eq!(Restarting.on(E::Start), Ok(Starting));
        assert_eq!(Starting.on(E::Started), Ok(Running));
        assert_eq!(Running.on(E::Crashed { give_up: true }), Ok(Failed));
    }

    #[test]
    fn drain_ends_in_stopped() {
        assert_eq!(Running.on(E::Drain), Ok(Draining));
        assert_eq!(Draining.on(E::Exited), Ok(Stopped));
        assert_eq!(Restarting.on(E::Drain), Ok(Stopped));
        assert_eq!(Failed.on(E::Drain), Ok(Failed));
    }

    #[test]
    fn impossible_events_are_refused() {
        assert!(Stopped.on(E::Started).is_err());
        assert!(Failed.on(E::Crashed { give_up: false }).is_err());
        assert!(Draining.on(E::Start).is_err());
    }
}
