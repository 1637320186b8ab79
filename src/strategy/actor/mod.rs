//! The StrategyActor: one configured instance on its schedule.
//!
//! Each tick: ask the BrokerActor for this instance's [`MarketView`], run the pure core, hand
//! the resulting order intents to the broker, publish the instance's status for the Supervisor.
//!
//! Invariants:
//! - At most one tick is in flight: a tick that comes due while the previous one runs is
//!   skipped and counted (the seed's overlapping cycles each saw "flat" and bought).
//! - A core runs on tokio's blocking pool, so a slow or CPU-heavy one cannot stall the other
//!   actors sharing the arbiter — unless it says deciding takes microseconds
//!   ([`Strategy::decides_inline`]), when it runs on the actor's thread and saves the hand-off.
//! - A panic in the core is caught at this boundary, logged with the instance id, and turned
//!   into a stop with reason `Panicked`, which the Supervisor restarts with fresh state.
//! - An operator's `Control` pauses or resumes the schedule, or ticks now (never a second tick
//!   in flight: that is refused as busy).
//! - `Drain` stops the schedule; a tick in flight that has handed orders to the broker is
//!   finished first (the broker settles those orders), one still reading or deciding is
//!   abandoned at once — it has no effect yet — so a drain's cost does not grow with the number
//!   of instances waiting for market data. From the process's drain signal on, with or without
//!   a `Drain`, no tick starts, and a tick in flight ends at its next step (its view or its
//!   decisions coming back) without deciding or journaling anything, counted `abandoned`: the
//!   Supervisor asks only an instance whose `Submitting` flag is set, and records the others
//!   as drained. The acknowledgement's own completion stops the actor, because actix drops
//!   every pending reply once an actor is stopping.
//! - Skipped ticks are counted every time and logged when they start and once a minute after.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use futures::future::join_all;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Span;
use tracing::field::Empty;

mod control;
mod record;
mod report;

use self::record::decision_entry;
use super::schedule::Schedule;
use super::workshop::Workshop;
use super::{CoreReport, Finished, Strategy, StrategySpec, Work};
use crate::broker::lease::Lease;
use crate::broker::{BrokerActor, BrokerError, GetMarketView, SubmitOrder};
use crate::domain::{
    Action, ChildId, DataNeeds, Decision, ExitNotifier, ExitReason, InstanceId, InstancePosition,
    InstanceStatus, MarketView, OrderIntent, Repeats, Say, Slot, StatusBoard, Submitting,
    panic_message,
};
use crate::journal::Journal;
use crate::metrics::{DecisionKind, InstanceMetrics, Metrics, TickOutcome};

/// No tick at start when the schedule's first tick is due sooner than this (or than half a
/// period): a start tick, slower than most (cold caches), would still be running.
const START_TICK_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything an incarnation needs besides its fresh core.
pub struct StrategyDeps {
    pub spec: Arc<StrategySpec>,
    pub broker: Slot<BrokerActor>,
    pub metrics: Arc<Metrics>,
    /// When ticks fall due: on the venue clock's multiples of `every`, as each bar is final.
    pub schedule: Schedule,
    /// Where the core's heavy work (training) is done, shared by every instance.
    pub workshop: Arc<Workshop>,
    /// Where every decision is recorded (`None` in tests that run an instance alone).
    pub journal: Option<Journal>,
    /// Ticks skipped because the previous one still ran, across every instance: logged when it
    /// starts, then summarized once a minute (each is counted in the tick metric).
    pub skipped_ticks: Arc<Repeats>,
    /// Failed ticks across every instance (a venue down fails them all), logged the same way.
    pub failed_ticks: Arc<Repeats>,
    /// Whether this replica drives the instance's account: on standby a tick does nothing
    /// but count (the lease keeper logs the changes).
    pub lease: Lease,
    /// The process's drain signal: from then on no tick starts and no decision is sent, even
    /// before (or without) a `Drain` message (see [`Submitting`]).
    pub drain: CancellationToken,
}

/// How a tick ended, for metrics and the status report.
enum TickEnd {
    Done {
        orders: u64,
    },
    MarketClosed,
    Failed(String),
    /// Ended by the drain before any order (see [`TickOutcome::Abandoned`]).
    Abandoned,
}

pub struct StrategyActor {
    deps: StrategyDeps,
    /// `None` while the core is deciding on the blocking pool.
    core: Option<Box<dyn Strategy>>,
    needs: DataNeeds,
    /// The instances whose books the core watches (fixed for the core's life).
    guards: Vec<InstanceId>,
    id: ChildId,
    incarnation: u64,
    /// A tick is running; the next due tick is skipped.
    in_flight: bool,
    /// The tick in flight has handed orders to the broker: a drain waits for it. Before that a
    /// tick has no effect (it reads and decides), and a drain abandons it at once. Shared with
    /// the Supervisor, which asks only such an instance to drain.
    submitting: Submitting,
    /// When the tick in flight started.
    tick_started: Option<std::time::Instant>,
    /// The tick in flight's span (`Span::none()` between ticks): the root of its trace.
    tick_span: Span,
    /// Set by `Drain`: no new ticks.
    draining: bool,
    /// An operator paused the instance: scheduled ticks are skipped (`TickNow` still ticks).
    paused: bool,
    /// Fired when the tick in flight finishes, to release a waiting `Drain`.
    drain_waiter: Option<oneshot::Sender<()>>,
    /// The schedule, cancelled by `Drain`.
    timer: Option<SpawnHandle>,
    status: InstanceStatus,
    /// Where `status` is published after every tick, for the Supervisor.
    board: StatusBoard,
    /// This instance's series of the tick and decision metrics.
    metrics: InstanceMetrics,
    /// Work results that came back while the core was deciding, handed over when it returns.
    finished_while_deciding: Vec<Finished>,
    /// Tells the Supervisor why this incarnation ended.
    exit: ExitNotifier,
}

impl StrategyActor {
    pub fn new(
        deps: StrategyDeps,
        core: Box<dyn Strategy>,
        id: ChildId,
        incarnation: u64,
        exit: ExitNotifier,
    ) -> Self {
        let needs = core.needs();
        let guards = core.guards().to_vec();
        let metrics = InstanceMetrics::new(
            Arc::clone(&deps.metrics),
            id.as_ref(),
            deps.spec.kind.as_str(),
        );
        Self {
            deps,
            core: Some(core),
            needs,
            guards,
            id,
            incarnation,
            in_flight: false,
            submitting: Submitting::default(),
            tick_started: None,
            tick_span: Span::none(),
            draining: false,
            paused: false,
            drain_waiter: None,
            timer: None,
            status: InstanceStatus::default(),
            board: StatusBoard::default(),
            metrics,
            finished_while_deciding: Vec::new(),
            exit,
        }
    }

    /// Starts the incarnation paused (an operator paused an earlier one).
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Whether this incarnation has orders on their way, as the Supervisor reads it.
    pub fn submitting(&self) -> Submitting {
        self.submitting.clone()
    }

    /// Where this incarnation publishes its status, as the Supervisor reads it.
    pub fn status_board(&self) -> StatusBoard {
        self.board.clone()
    }

    /// Draining: asked by a `Drain`, or the process's drain signal alone.
    fn standing_down(&self) -> bool {
        self.draining || self.deps.drain.is_cancelled()
    }

    fn kind(&self) -> &'static str {
        self.deps.spec.kind.as_str()
    }

    /// A tick the schedule asks for: skipped while paused.
    fn scheduled_tick(&mut self, ctx: &mut Context<Self>) {
        if self.paused {
            tracing::debug!(instance = %self.id, "paused; scheduled tick skipped");
            return;
        }
        self.tick(ctx);
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.standing_down() {
            return;
        }
        if self.in_flight {
            self.metrics.tick(TickOutcome::OverlapSkipped);
            match self.deps.skipped_ticks.note() {
                Say::Started { earlier } => tracing::warn!(
                    event = "ticks_skipped", instance = %self.id, earlier_unreported = earlier,
                    "previous tick still running; skipping this one (further skips, of any instance, are summarized once a minute)"
                ),
                Say::Summary { count, over } => tracing::warn!(
                    event = "ticks_skipped",
                    skipped = count,
                    seconds = over.as_secs(),
                    "ticks skipped because the instance's previous tick was still running"
                ),
                Say::Quiet => {}
            }
            return;
        }
        if !self.deps.lease.may_tick() {
            self.metrics.tick(TickOutcome::Standby);
            return;
        }
        let Some(broker) = self.deps.broker.get() else {
            return self.finish(TickEnd::Failed("broker unavailable".into()));
        };
        self.in_flight = true;
        self.tick_started = Some(std::time::Instant::now());
        self.tick_span = tracing::info_span!(
            parent: None,
            "tick",
            otel.name = "strategy tick",
            otel.status_code = Empty,
            instance = %self.id,
            kind = self.kind(),
            incarnation = self.incarnation,
            outcome = Empty,
            orders = Empty,
        );
        {
            // Inside the entered span, not only its child: a filter that names the span
            // (`[tick{instance=…}]=debug`) matches the spans entered on this thread.
            let _in_tick = self.tick_span.enter();
            tracing::debug!(instance = %self.id, "tick started");
        }
        let request = GetMarketView {
            instance: self.deps.spec.id.clone(),
            symbols: self.deps.spec.symbols.clone(),
            needs: self.needs,
            guards: self.guards.clone(),
            session: self.deps.spec.session,
            trace: self.tick_span.clone(),
        };
        let fut = async move { flatten(broker.send(request).await) };
        ctx.spawn(
            fut.into_actor(self)
                .map(|view, act, ctx| act.on_view(view, ctx)),
        );
    }

    fn on_view(&mut self, view: Result<MarketView, BrokerError>, ctx: &mut Context<Self>) {
        // The drain began while this tick read (the broker ends such reads with an error), or
        // after its view was answered but before this actor's turn came: deciding now would
        // only journal decisions nothing will act on, and at 10,000 instances the deciding
        // kept the drain's thread busy for tens of milliseconds.
        if self.standing_down() {
            return self.finish(TickEnd::Abandoned);
        }
        let view = match view {
            Ok(v) => v,
            Err(e) => return self.finish(TickEnd::Failed(e.to_string())),
        };
        self.status.positions = positions_of(&view);
        if !view.market_open && self.needs.only_when_open {
            return self.finish(TickEnd::MarketClosed);
        }
        let Some(mut core) = self.core.take() else {
            return self.finish(TickEnd::Failed("strategy core is busy".into()));
        };
        let span =
            tracing::info_span!(parent: &self.tick_span, "decide", otel.name = "strategy decide");
        if core.decides_inline() {
            let decided = decide(core.as_mut(), &view, &span);
            return self.decided(core, decided, ctx);
        }
        let decide = tokio::task::spawn_blocking(move || {
            let decided = decide(core.as_mut(), &view, &span);
            (core, decided)
        });
        ctx.spawn(
            decide
                .into_actor(self)
                .map(|joined, act, ctx| match joined {
                    Ok((core, decided)) => act.decided(core, decided, ctx),
                    Err(e) => act.core_panicked(format!("blocking task failed: {e}"), ctx),
                }),
        );
    }

    /// The core is back from deciding: work results that came meanwhile, its report, the work
    /// it asked for, then its decisions.
    fn decided(&mut self, core: Box<dyn Strategy>, decided: Decided, ctx: &mut Context<Self>) {
        let (decisions, report, work) = match decided {
            Ok(done) => done,
            Err(message) => return self.core_panicked(message, ctx),
        };
        self.core = Some(core);
        if self.standing_down() {
            return self.finish(TickEnd::Abandoned);
        }
        for done in std::mem::take(&mut self.finished_while_deciding) {
            self.deliver(done, ctx);
        }
        if let Some(report) = report {
            self.on_report(report);
        }
        self.dispatch(work, ctx);
        self.on_decisions(decisions, ctx);
    }

    /// Hands the core's work to the workshop; each result comes back through `deliver`.
    fn dispatch(&mut self, work: Vec<Work>, ctx: &mut Context<Self>) {
        for job in work {
            let done = self.deps.workshop.run(&self.deps.spec.id, job);
            ctx.spawn(
                done.into_actor(self)
                    .map(|done, act, ctx| act.deliver(done, ctx)),
            );
        }
    }

    /// Gives a work result to the core, or keeps it until the core is back from deciding.
    fn deliver(&mut self, done: Finished, ctx: &mut Context<Self>) {
        let Some(core) = self.core.as_mut() else {
            self.finished_while_deciding.push(done);
            return;
        };
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| core.finished(done))) {
            self.core_panicked(panic_message(&*p), ctx);
        }
    }

    /// The core's state may be half-updated: stop, so the Supervisor builds a fresh one.
    fn core_panicked(&mut self, message: String, ctx: &mut Context<Self>) {
        tracing::error!(instance = %self.id, kind = self.kind(), panic = %message, "strategy core panicked");
        self.in_flight = false;
        self.exit.set(ExitReason::Panicked(message));
        ctx.stop();
    }

    fn on_decisions(&mut self, decisions: Vec<Decision>, ctx: &mut Context<Self>) {
        if let Some(journal) = &self.deps.journal {
            // One time for the tick's decisions, and one entry: they were made together.
            let at = Utc::now();
            let own = &self.deps.spec.id;
            journal.record_decisions(
                decisions
                    .iter()
                    .map(|d| decision_entry(own, d, at))
                    .collect(),
            );
        }
        let own = &self.deps.spec.id;
        let tick = self.tick_span.clone();
        let _in_tick = tick.enter();
        let intents: Vec<_> = decisions
            .iter()
            .filter_map(|d| {
                let intent = self.log_decision(d)?;
                // A decision about another instance (a risk manager's stop) is that instance's order.
                let instance = d.instance.clone().unwrap_or_else(|| own.clone());
                let span = tracing::info_span!(
                    "decision",
                    otel.name = "strategy decision",
                    instance = %instance,
                    symbol = %d.symbol,
                    side = %intent.side,
                    qty = %intent.qty,
                    signal = d.signal,
                );
                Some((instance, intent, span))
            })
            .collect();
        // Moved, not copied: the status goes into a report after every tick.
        self.status.last_decisions = decisions.into();
        if intents.is_empty() {
            return self.finish(TickEnd::Done { orders: 0 });
        }
        let Some(broker) = self.deps.broker.get() else {
            return self.finish(TickEnd::Failed("broker unavailable".into()));
        };
        // Set before anything is sent, on the thread the Supervisor reads it from: a drain
        // that finds it unset has nothing of this instance's to wait for.
        self.submitting.set(true);
        let decided_by = self.deps.spec.id.clone();
        let submits = intents.into_iter().map(move |(instance, intent, trace)| {
            let msg = SubmitOrder {
                instance,
                decided_by: decided_by.clone(),
                intent,
                trace,
            };
            let broker = broker.clone();
            async move { flatten(broker.send(msg).await) }
        });
        ctx.spawn(join_all(submits).into_actor(self).map(|results, act, _| {
            let mut orders = 0;
            let mut errors = Vec::new();
            for result in results {
                match result {
                    // Sent now; a decision already in the book (the same bar decided again)
                    // sent nothing and is not counted.
                    Ok(submitted) => orders += u64::from(submitted.sent),
                    // A refusal is the gate working, not the tick failing; the broker has
                    // logged and counted it, the instance's status shows the latest.
                    Err(BrokerError::Refused(why)) => {
                        act.status.refused += 1;
                        act.status.last_refusal = Some(why.to_string());
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            act.status.orders += orders;
            if errors.is_empty() {
                act.finish(TickEnd::Done { orders });
            } else {
                act.finish(TickEnd::Failed(errors.join("; ")));
            }
        }));
    }

    /// Logs and counts one decision; returns its order intent if it has one.
    fn log_decision(&self, d: &Decision) -> Option<OrderIntent> {
        let kind = match d.action {
            Action::Order(_) => DecisionKind::Order,
            Action::Hold { .. } => DecisionKind::Hold,
            Action::NoData { .. } => DecisionKind::NoData,
        };
        self.metrics.decision(kind);
        match &d.action {
            Action::Order(intent) => {
                tracing::info!(
                    instance = %self.id, symbol = %d.symbol, signal = d.signal,
                    side = %intent.side, qty = %intent.qty, "signal"
                );
                Some(intent.clone())
            }
            Action::Hold { reason } => {
                tracing::debug!(instance = %self.id, symbol = %d.symbol, signal = d.signal, reason, "hold");
                None
            }
            Action::NoData { have, need } => {
                tracing::info!(instance = %self.id, symbol = %d.symbol, have, need, "not enough bars");
                None
            }
        }
    }

    fn finish(&mut self, outcome: TickEnd) {
        self.in_flight = false;
        self.submitting.set(false);
        if let Some(started) = self.tick_started.take() {
            self.metrics.tick_duration(started.elapsed());
        }
        self.status.ticks += 1;
        self.status.last_tick_at = Some(Utc::now());
        let label = match &outcome {
            TickEnd::Done { .. } => TickOutcome::Ok,
            TickEnd::MarketClosed => TickOutcome::MarketClosed,
            TickEnd::Failed(_) => TickOutcome::Error,
            TickEnd::Abandoned => TickOutcome::Abandoned,
        };
        let span = std::mem::replace(&mut self.tick_span, Span::none());
        let _in_tick = span.enter();
        span.record("outcome", label.as_str());
        match outcome {
            TickEnd::Failed(error) => {
                span.record("otel.status_code", "ERROR");
                match self.deps.failed_ticks.note() {
                    Say::Started { earlier } => tracing::warn!(
                        event = "tick_failed", instance = %self.id, error = %error,
                        earlier_unreported = earlier,
                        "tick failed (further failures, of any instance, are summarized once a minute; /strategies has each instance's last error)"
                    ),
                    Say::Summary { count, over } => tracing::warn!(
                        event = "ticks_failed", failed = count, seconds = over.as_secs(),
                        latest_instance = %self.id, latest_error = %error, "ticks failed"
                    ),
                    Say::Quiet => {}
                }
                self.status.last_error = Some(error);
            }
            TickEnd::Done { orders } if orders > 0 => {
                span.record("orders", orders);
                tracing::info!(instance = %self.id, orders, "tick placed orders");
            }
            _ => {}
        }
        self.metrics.tick(label);
        self.board.publish(&self.status);
        if let Some(waiter) = self.drain_waiter.take() {
            let _ = waiter.send(());
        }
    }
}

/// A core's decisions, report and work from one tick, or the message of its panic.
type Decided = Result<(Vec<Decision>, Option<CoreReport>, Vec<Work>), String>;

/// Runs the core's `decide` under `catch_unwind` (a panic becomes its message) within `span`.
fn decide(core: &mut dyn Strategy, view: &MarketView, span: &Span) -> Decided {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _in_span = span.enter();
        let decisions = core.decide(view);
        (decisions, core.report(), core.work())
    }))
    .map_err(|p| panic_message(&*p))
}

/// The instance's holdings in `view`, each marked at the newest close the view has for it.
fn positions_of(view: &MarketView) -> Vec<InstancePosition> {
    let mut held: Vec<_> = view
        .positions
        .iter()
        .filter(|(_, h)| !h.qty.is_zero() || !h.realized_pnl.is_zero())
        .map(|(symbol, h)| {
            // The venue's current price: the newest close is a day old all day on daily bars.
            let price = view
                .marks
                .get(symbol)
                .copied()
                .or_else(|| view.last_close(symbol).and_then(Decimal::from_f64));
            InstancePosition::marked(symbol.clone(), *h, price)
        })
        .collect();
    held.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    held
}

/// A reply from another actor, with a closed mailbox typed as "unavailable".
fn flatten<T>(reply: Result<Result<T, BrokerError>, MailboxError>) -> Result<T, BrokerError> {
    reply.unwrap_or_else(|e| Err(BrokerError::Unavailable(e.to_string())))
}

impl Actor for StrategyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let period = self.deps.schedule.period();
        let first = self.deps.schedule.until_next(std::time::Instant::now());
        tracing::info!(
            instance = %self.id, kind = self.kind(), incarnation = self.incarnation,
            period_ms = period.as_millis() as u64, next_tick_ms = first.as_millis() as u64,
            "strategy instance started"
        );
        // Like the seeds: one tick at once — unless the schedule's first tick is due so soon
        // that the two would collide (the second skipped with a warning at every start); then
        // on the schedule, whose ticks fall as bars become final. The interval re-arms from its
        // deadline, so it does not drift from them.
        if first >= START_TICK_MARGIN.min(period / 2) {
            self.scheduled_tick(ctx);
        }
        self.timer = Some(ctx.run_later(first, move |act, ctx| {
            act.scheduled_tick(ctx);
            if !act.draining {
                act.timer = Some(ctx.run_interval(period, |act, ctx| act.scheduled_tick(ctx)));
            }
        }));
    }
}
