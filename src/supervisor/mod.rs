//! The Supervisor: starts every child from its spec, restarts abnormal exits with backoff
//! within a restart intensity, and runs the drain on shutdown.
//!
//! Design decisions: actix's own `Supervisor` neither restarts after a panic nor rebuilds state
//! (actix 0.13: a panic in a handler kills the actor's task, queued messages are lost, and its
//! restarts reuse the old actor value without limit or backoff), so herd supervises by
//! *watching* each incarnation's [`ExitNotifier`] and calling the spec's start function again,
//! which builds fresh state.
//!
//! Invariants:
//! - One-for-one: only the child that ended is restarted; its siblings never notice.
//! - More than `max_restarts` restarts within `restart_window` leaves the child `failed`; if it
//!   is essential (the BrokerActor) trading halts and the process reports unready, instead of
//!   crash-looping.
//! - Drain order: strategies (concurrently) → broker → cache → metrics, so every tick in flight
//!   can still reach the broker, and every order the broker completes is still counted.
//! - Exit notices of an older incarnation are ignored.

mod child;
mod control;
mod intensity;
mod lifecycle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use child::{ChildContext, ChildHandle, ChildRole, ChildSpec, StartFn};
pub use control::{ChildAction, ControlChild, ControlDone, ControlError};
pub use intensity::{RestartIntensity, backoff};
pub use lifecycle::{InvalidTransition, LifecycleEvent};

use crate::domain::{
    ChildId, Control, Drain, DrainAck, ExitNotifier, ExitReason, HumanDuration, InstanceStatus,
    InvalidSetting, Lifecycle, StatusBoard, Submitting, TradingState, panic_message, positive,
};
use crate::journal::{ActorStop, Entry, Journal, keys};
use crate::metrics::Metrics;
use crate::process::{HEARTBEAT, ProcessState};

/// `[supervisor]`: the restart policy of every supervised actor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    /// More restarts than this within `restart_window` leaves the child `failed`.
    pub max_restarts: u32,
    pub restart_window: HumanDuration,
    pub backoff_base: HumanDuration,
    pub backoff_cap: HumanDuration,
}

impl SupervisorSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        positive("supervisor.restart_window", self.restart_window)?;
        positive("supervisor.backoff_base", self.backoff_base)?;
        if self.backoff_cap < self.backoff_base {
            return Err(InvalidSetting::new(
                "supervisor.backoff_cap",
                format!("{:?}", self.backoff_cap.to_string()),
                format!(
                    "must be at least supervisor.backoff_base ({})",
                    self.backoff_base
                ),
            ));
        }
        Ok(())
    }
}

/// Restart policy shared by all children.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub window: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl From<&SupervisorSettings> for RestartPolicy {
    fn from(s: &SupervisorSettings) -> Self {
        Self {
            max_restarts: s.max_restarts,
            window: s.restart_window.get(),
            backoff_base: s.backoff_base.get(),
            backoff_cap: s.backoff_cap.get(),
        }
    }
}

struct Child {
    spec: ChildSpec,
    state: Lifecycle,
    incarnation: u64,
    intensity: RestartIntensity,
    /// Restarts over the process lifetime (the intensity forgets old ones).
    restarts: u64,
    /// Where to send `Drain`; `None` while no incarnation runs.
    drain: Option<Recipient<Drain>>,
    /// Where to send an operator's `Control` (strategy instances); `None` while none runs.
    control: Option<Recipient<Control>>,
    /// Whether the running incarnation has orders on their way, if it says (strategies).
    submitting: Option<Submitting>,
    /// The incarnation whose end is recorded: a stood-down instance's end is recorded at the
    /// drain, and its actor's own exit (if it ever comes) must not record it twice.
    ended: Option<u64>,
    /// An operator paused it; every incarnation starts paused until resumed.
    paused: bool,
    /// An operator asked for a restart of the running incarnation: start again once it has
    /// drained.
    restart_on_exit: bool,
    /// The scheduled restart, cancelled if a drain begins first.
    pending_restart: Option<SpawnHandle>,
    last_exit: Option<ExitReason>,
    /// Where the running (or last) incarnation of a strategy instance publishes its status.
    status: Option<StatusBoard>,
}

pub struct Supervisor {
    /// In start order; drain order is by role.
    children: Vec<Child>,
    /// Each child's index in `children`, by id: an operator's control names a child, and a
    /// search through 10,000 of them per request would be the one cost growing with them.
    by_id: HashMap<ChildId, usize>,
    policy: RestartPolicy,
    /// Once set, exits are final and nothing is restarted.
    draining: bool,
    process: Arc<ProcessState>,
    metrics: Arc<Metrics>,
    /// Where stops and paused instances are recorded, so both outlive the process.
    journal: Option<Journal>,
}

impl Supervisor {
    pub fn new(
        specs: Vec<ChildSpec>,
        policy: RestartPolicy,
        process: Arc<ProcessState>,
        metrics: Arc<Metrics>,
    ) -> Self {
        for spec in &specs {
            metrics.restarts_from_zero(&spec.id);
        }
        let by_id = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| (spec.id.clone(), i))
            .collect();
        let children = specs
            .into_iter()
            .map(|spec| Child {
                spec,
                state: Lifecycle::Starting,
                incarnation: 0,
                intensity: RestartIntensity::new(policy.max_restarts, policy.window),
                restarts: 0,
                drain: None,
                control: None,
                submitting: None,
                ended: None,
                paused: false,
                restart_on_exit: false,
                pending_restart: None,
                last_exit: None,
                status: None,
            })
            .collect();
        Self {
            children,
            by_id,
            policy,
            draining: false,
            process,
            metrics,
            journal: None,
        }
    }

    /// Records every stop and pause in `journal`; the instances in `paused` (paused in an
    /// earlier run) start paused.
    pub fn journaled(mut self, journal: Journal, paused: &[String]) -> Self {
        for child in &mut self.children {
            if child.spec.role.is_strategy() && paused.iter().any(|p| **p == *child.spec.id) {
                tracing::info!(child = %child.spec.id, "paused in an earlier run; starting paused");
                child.paused = true;
            }
        }
        self.journal = Some(journal);
        self
    }

    /// Records an operator's pause or resume, so a restarted herd keeps it.
    pub(super) fn journal_paused(&self, i: usize) {
        if let Some(journal) = &self.journal {
            let child = &self.children[i];
            journal.record(Entry::State {
                key: format!("{}{}", keys::PAUSED, child.spec.id),
                value: child.paused.then(|| "true".to_owned()),
            });
        }
    }

    fn transition(&mut self, i: usize, event: LifecycleEvent) {
        let child = &mut self.children[i];
        match child.state.on(event) {
            Ok(next) => {
                self.metrics.child_state(&child.spec.id, child.state, next);
                child.state = next;
            }
            Err(e) => {
                tracing::error!(child = %child.spec.id, error = %e, "invalid lifecycle transition")
            }
        }
    }

    fn start_child(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        if self.children[i].state != Lifecycle::Starting {
            self.transition(i, LifecycleEvent::Start);
        }
        let child = &mut self.children[i];
        child.pending_restart = None;
        child.incarnation += 1;
        child.status = None;
        let incarnation = child.incarnation;
        let id = child.spec.id.clone();
        let (exit, exited) = ExitNotifier::new();
        let start = &mut child.spec.start;
        // A panic while building the child's state must not take the Supervisor down; the
        // notifier is dropped in the unwind, so the watcher below sees a crash and backs off.
        let paused = child.paused;
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            start(ChildContext {
                id: id.clone(),
                incarnation,
                exit,
                paused,
            })
        }));
        match started {
            Ok(handle) => {
                self.children[i].drain = Some(handle.drain);
                self.children[i].control = handle.control;
                self.children[i].submitting = handle.submitting;
                self.children[i].status = handle.status;
                self.transition(i, LifecycleEvent::Started);
                tracing::info!(child = %id, incarnation, "child started");
            }
            Err(panic) => {
                tracing::error!(child = %id, panic = %panic_message(&*panic), "child failed to start");
            }
        }
        // A task of its own per child, reporting back by message: a future spawned in this
        // actor's context would be polled on every wake-up of the Supervisor (actix polls all of
        // a context's futures each time), so 10,000 children made every status report and
        // every exit cost 10,000 polls.
        let supervisor = ctx.address();
        actix::spawn(async move {
            let reason = exited.await.unwrap_or(ExitReason::Crashed);
            supervisor.do_send(ChildExited {
                i,
                incarnation,
                reason,
            });
        });
    }

    fn on_exit(&mut self, i: usize, incarnation: u64, reason: ExitReason, ctx: &mut Context<Self>) {
        let policy = self.policy;
        let child = &mut self.children[i];
        if child.incarnation != incarnation || child.ended == Some(incarnation) {
            return;
        }
        child.ended = Some(incarnation);
        child.drain = None;
        child.control = None;
        child.submitting = None;
        child.last_exit = Some(reason.clone());
        if let Some(journal) = &self.journal {
            journal.record(Entry::Stop(ActorStop {
                at: chrono::Utc::now(),
                child: child.spec.id.to_string(),
                incarnation,
                reason: reason.to_string(),
                abnormal: reason.is_abnormal(),
            }));
        }
        let restart_asked = std::mem::take(&mut child.restart_on_exit);
        let id = child.spec.id.clone();
        if !reason.is_abnormal() || self.draining {
            if reason.is_abnormal() {
                tracing::warn!(child = %id, reason = %reason, "child ended abnormally while draining");
                self.transition(i, LifecycleEvent::Crashed { give_up: false });
            } else {
                self.transition(i, LifecycleEvent::Exited);
                if restart_asked {
                    self.start_child(i, ctx);
                }
            }
            return;
        }
        match child.intensity.on_crash(Instant::now()) {
            Some(n) => {
                child.restarts += 1;
                let delay = backoff(n, policy.backoff_base, policy.backoff_cap);
                tracing::warn!(
                    child = %id, reason = %reason, restart_in_ms = delay.as_millis() as u64,
                    restarts_in_window = n, "child ended abnormally; restarting"
                );
                self.metrics.restart(&id);
                self.transition(i, LifecycleEvent::Crashed { give_up: false });
                let handle = ctx.run_later(delay, move |act, ctx| act.start_child(i, ctx));
                self.children[i].pending_restart = Some(handle);
            }
            None => {
                let essential = child.spec.role.is_essential();
                tracing::error!(
                    child = %id, reason = %reason, max_restarts = policy.max_restarts,
                    window_secs = policy.window.as_secs(), essential,
                    "child exceeded its restart intensity; left down as failed"
                );
                self.transition(i, LifecycleEvent::Crashed { give_up: true });
                if essential {
                    self.process.mark_essential_failed();
                    self.process.halt(format!("{id} failed: {reason}"));
                    self.metrics.trading_state(TradingState::Halted);
                }
            }
        }
    }

    fn view(&self) -> Vec<ChildView> {
        self.children
            .iter()
            .map(|c| ChildView {
                id: c.spec.id.to_string(),
                role: c.spec.role.clone(),
                state: c.state,
                incarnation: c.incarnation,
                restarts: c.restarts,
                last_exit: c.last_exit.as_ref().map(ToString::to_string),
                paused: c.spec.role.is_strategy().then_some(c.paused),
                status: c.status.as_ref().map(StatusBoard::read).unwrap_or_default(),
            })
            .collect()
    }
}

/// A child's incarnation ended (sent by its exit watcher).
#[derive(Message)]
#[rtype(result = "()")]
struct ChildExited {
    i: usize,
    incarnation: u64,
    reason: ExitReason,
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        self.on_exit(msg.i, msg.incarnation, msg.reason, ctx);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.process.beat();
        ctx.run_interval(HEARTBEAT, |act, _| act.process.beat());
        for i in 0..self.children.len() {
            self.start_child(i, ctx);
        }
    }
}

/// One child as `/strategies` and `/health` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildView {
    pub id: String,
    #[serde(flatten)]
    pub role: ChildRole,
    pub state: Lifecycle,
    pub incarnation: u64,
    pub restarts: u64,
    pub last_exit: Option<String>,
    /// Strategy instances: whether an operator paused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(flatten)]
    pub status: InstanceStatus,
}

#[derive(Message)]
#[rtype(result = "Vec<ChildView>")]
pub struct ListChildren;

impl Handler<ListChildren> for Supervisor {
    type Result = MessageResult<ListChildren>;

    fn handle(&mut self, _: ListChildren, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.view())
    }
}

/// Drains every child, phase by phase, within `deadline`.
#[derive(Message)]
#[rtype(result = "DrainReport")]
pub struct DrainAll {
    pub deadline: Instant,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    /// (phase, milliseconds) in drain order.
    pub phases: Vec<(&'static str, u64)>,
    /// Children that did not acknowledge before the deadline.
    pub unfinished: Vec<String>,
    pub orders_completed: u64,
}

/// A child to drain, and where to send `Drain` (`None` when no incarnation runs).
type DrainTarget = (ChildId, Option<Recipient<Drain>>);

const DRAIN_PHASES: &[&str] = &["strategies", "broker", "cache", "metrics"];

/// A phase that starts after the deadline still gets this long: the broker must be asked to
/// settle its orders even if a strategy overran, and an actor never asked is not "unfinished".
const LATE_PHASE_WINDOW: Duration = Duration::from_millis(50);

fn drain_phase(role: &ChildRole) -> &'static str {
    match role {
        ChildRole::Strategy { .. } => "strategies",
        ChildRole::Broker => "broker",
        ChildRole::Cache => "cache",
        ChildRole::Metrics => "metrics",
    }
}

impl Handler<DrainAll> for Supervisor {
    type Result = ResponseActFuture<Self, DrainReport>;

    fn handle(&mut self, msg: DrainAll, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let mut plan: Vec<(&'static str, Vec<DrainTarget>)> =
            DRAIN_PHASES.iter().map(|p| (*p, Vec::new())).collect();
        for i in 0..self.children.len() {
            if let Some(handle) = self.children[i].pending_restart.take() {
                ctx.cancel_future(handle);
            }
            self.transition(i, LifecycleEvent::Drain);
            let child = &self.children[i];
            // Nothing on its way: the drain signal already stopped its ticks and any order it
            // would still decide, so its end is recorded here, without a message.
            // (`submitting` is set only while an incarnation runs.)
            if child.submitting.as_ref().is_some_and(|s| !s.get()) {
                let incarnation = child.incarnation;
                self.on_exit(i, incarnation, ExitReason::Drained, ctx);
                continue;
            }
            let phase = drain_phase(&child.spec.role);
            if let Some((_, members)) = plan.iter_mut().find(|(p, _)| *p == phase) {
                members.push((child.spec.id.clone(), child.drain.clone()));
            }
        }
        let deadline = msg.deadline;
        let drain = async move {
            let mut report = DrainReport::default();
            for (phase, members) in plan {
                let started = Instant::now();
                let deadline = deadline.max(started + LATE_PHASE_WINDOW);
                // One deadline for the whole phase, not a timer per child: a phase may hold
                // 10,000 instances.
                let mut unanswered: Vec<Option<ChildId>> =
                    members.iter().map(|(id, _)| Some(id.clone())).collect();
                let mut acks: FuturesUnordered<_> = members
                    .into_iter()
                    .enumerate()
                    .map(|(i, (_, recipient))| async move {
                        let Some(recipient) = recipient else {
                            return (i, DrainAck::default());
                        };
                        match recipient.send(Drain).await {
                            Ok(ack) => (i, ack),
                            // The incarnation ended on its own meanwhile: nothing left to drain.
                            Err(_) => (i, DrainAck::default()),
                        }
                    })
                    .collect();
                while let Ok(Some((i, ack))) = tokio::time::timeout_at(deadline, acks.next()).await
                {
                    unanswered[i] = None;
                    report.orders_completed += ack.orders_completed;
                }
                report
                    .unfinished
                    .extend(unanswered.into_iter().flatten().map(|id| id.to_string()));
                report
                    .phases
                    .push((phase, started.elapsed().as_millis() as u64));
            }
            report
        };
        Box::pin(drain.into_actor(self))
    }
}

#[cfg(test)]
mod tests;
