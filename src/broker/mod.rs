//! The BrokerActor: the only owner of broker I/O.
//!
//! Strategy instances ask it for a [`MarketView`] and hand it [`OrderIntent`]s; it serves views
//! from the cache or the venue, places orders idempotently, tracks them until final, and keeps
//! each instance's position in the [`OrderBook`].
//!
//! Design decisions:
//! - Handlers return futures that run *in the actor's context* (`ResponseActFuture`) without
//!   blocking its mailbox, so one slow venue call never serializes the others.
//! - Every handler future runs under `catch_unwind`: a panic becomes a typed error for the
//!   caller and an orderly stop that the Supervisor restarts, never a hang.
//!
//! Invariants:
//! - Only this actor (through [`AlpacaClient`]) talks to the broker.
//! - No order leaves the process while trading is halted or the actor is draining.
//! - The drain acknowledges only when every submission in flight has reached a known state.

pub mod alpaca;
mod book;
pub mod breaker;
mod error;
pub mod limiter;
mod market;
mod order_id;
pub mod retry;
pub mod risk;
mod submit;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde::Serialize;
use tokio_util::task::TaskTracker;

pub use alpaca::{AlpacaClient, AlpacaError, Endpoint, Operation};
pub use book::{OrderBook, OrderRecord, OrderState};
pub use error::BrokerError;
pub use market::VenueSpeed;
pub use order_id::client_order_id;

use alpaca::models::OrderRequest;
use book::Begin;
use market::ViewRequest;
use submit::SubmitOutcome;

use crate::cache::{Cache, CacheKey};
use crate::domain::{InstanceId, Symbol};
use crate::metrics::Metrics;
use crate::process::ProcessState;
use crate::settings::Venue;
use crate::strategy::{DataNeeds, MarketView, OrderIntent};
use crate::supervisor::{Drain, DrainAck, ExitNotifier, ExitReason, panic_message};

/// How soon after a submission its fill is looked up (real time): the simulator and Alpaca
/// usually fill market orders within moments.
const FIRST_FILL_CHECK: Duration = Duration::from_millis(50);

/// What the BrokerActor needs; everything in here outlives an incarnation.
#[derive(Clone)]
pub struct BrokerDeps {
    pub client: AlpacaClient,
    pub cache: Cache,
    pub book: Arc<OrderBook>,
    pub process: Arc<ProcessState>,
    pub metrics: Arc<Metrics>,
    pub venue: Venue,
    pub speed: VenueSpeed,
    /// How often orders that are not final are looked up (real time).
    pub order_poll: Duration,
}

/// Last-known state of the venue connection, for `/health` (never probed per request).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VenueHealth {
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
}

pub struct BrokerActor {
    deps: BrokerDeps,
    /// Submissions not yet in a known state; the drain waits for it to empty.
    in_flight: TaskTracker,
    /// Set by `Drain`: new work is refused.
    draining: bool,
    /// A refresh of unsettled orders is running; the next interval skips instead of piling up.
    refreshing: bool,
    health: VenueHealth,
    /// Tells the Supervisor why this incarnation ended.
    exit: ExitNotifier,
}

impl BrokerActor {
    pub fn new(deps: BrokerDeps, exit: ExitNotifier) -> Self {
        Self {
            deps,
            in_flight: TaskTracker::new(),
            draining: false,
            refreshing: false,
            health: VenueHealth::default(),
            exit,
        }
    }

    fn observe<T>(&mut self, result: &Result<T, AlpacaError>) {
        match result {
            Ok(_) => {
                self.health.last_ok_at = Some(Utc::now());
                self.health.consecutive_failures = 0;
                self.deps.process.mark_venue_reached();
            }
            Err(e) if e.is_retryable() || matches!(e, AlpacaError::Unauthorized { .. }) => {
                self.health.last_error = Some(e.to_string());
                self.health.last_error_at = Some(Utc::now());
                self.health.consecutive_failures += 1;
            }
            // A business answer (404, 422, 403 with a code) means the venue is up.
            Err(_) => {
                self.health.last_ok_at = Some(Utc::now());
                self.deps.process.mark_venue_reached();
            }
        }
    }

    /// Looks up every order that is not final and applies what the venue says.
    fn refresh_unsettled(&mut self, ctx: &mut Context<Self>) {
        if self.refreshing {
            return;
        }
        let unsettled = self.deps.book.unsettled();
        if unsettled.is_empty() {
            return;
        }
        self.refreshing = true;
        let client = self.deps.client.clone();
        let fut = async move {
            let mut answers = Vec::with_capacity(unsettled.len());
            for record in unsettled {
                let answer = match &record.order_id {
                    Some(id) => client.order(id).await.map(Some),
                    None => submit::lookup(&client, record.client_order_id.as_str()).await,
                };
                answers.push((record, answer));
            }
            answers
        };
        ctx.spawn(guarded(fut).into_actor(self).map(|answers, act, ctx| {
            act.refreshing = false;
            let answers = match answers {
                Ok(a) => a,
                Err(panic) => return act.die(ctx, panic),
            };
            for (record, answer) in answers {
                act.observe(&answer);
                match answer {
                    Ok(Some(order)) => act.apply(&record.client_order_id, &order),
                    // Never reached the venue: the decision was not executed.
                    Ok(None) if record.state == OrderState::Unknown => {
                        act.deps.book.mark(
                            &record.client_order_id,
                            OrderState::Rejected,
                            "the venue has no order with this client_order_id".into(),
                        );
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(client_order_id = %record.client_order_id, error = %e, "order lookup failed"),
                }
            }
        }));
    }

    fn apply(&mut self, cid: &crate::domain::ClientOrderId, order: &alpaca::models::Order) {
        if let Some((record, filled)) = self.deps.book.apply_venue(cid, order)
            && !filled.is_zero()
        {
            self.deps.cache.invalidate(&CacheKey::Positions);
            self.deps.cache.invalidate(&CacheKey::Account);
            tracing::info!(
                    event = "order_fill", instance = %record.instance, client_order_id = %cid,
                    symbol = %record.symbol, side = %record.side, filled_qty = %filled,
                    total_filled = %record.filled_qty,
                    avg_price = record.filled_avg_price.map(tracing::field::display),
                    state = record.state.as_str(), "order filled"
            );
        }
    }

    /// A panic was caught: record it and stop, so the Supervisor restarts a fresh incarnation.
    fn die(&mut self, ctx: &mut Context<Self>, panic: String) {
        tracing::error!(panic = %panic, "panic in the broker; stopping for a restart");
        self.exit.set(ExitReason::Panicked(panic));
        ctx.stop();
    }
}

/// Runs a future, turning a panic inside it into an error with the panic's message.
async fn guarded<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|p| panic_message(&*p))
}

impl Actor for BrokerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.deps.order_poll, |act, ctx| act.refresh_unsettled(ctx));
        // Orders left unsettled by an earlier incarnation are picked up at once.
        self.refresh_unsettled(ctx);
    }
}

/// Asks for the market as one instance should see it.
#[derive(Message)]
#[rtype(result = "Result<MarketView, BrokerError>")]
pub struct GetMarketView {
    pub instance: InstanceId,
    pub symbols: Vec<Symbol>,
    pub needs: DataNeeds,
}

impl Handler<GetMarketView> for BrokerActor {
    type Result = ResponseActFuture<Self, Result<MarketView, BrokerError>>;

    fn handle(&mut self, msg: GetMarketView, _: &mut Self::Context) -> Self::Result {
        if self.draining {
            return Box::pin(fut::ready(Err(BrokerError::Draining)));
        }
        let (own_positions, pending) = self.deps.book.instance_view(&msg.instance, &msg.symbols);
        let request = ViewRequest {
            symbols: msg.symbols,
            needs: msg.needs,
            own_positions,
            pending,
        };
        let (client, cache, speed) = (
            self.deps.client.clone(),
            self.deps.cache.clone(),
            self.deps.speed,
        );
        let fut = async move { market::assemble(&client, &cache, speed, request).await };
        Box::pin(
            guarded(fut)
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(view) => {
                        act.observe(&view);
                        view.map_err(BrokerError::from)
                    }
                    Err(panic) => {
                        act.die(ctx, panic.clone());
                        Err(BrokerError::Panicked(panic))
                    }
                }),
        )
    }
}

/// Places one order intent of one instance.
#[derive(Message)]
#[rtype(result = "Result<OrderRecord, BrokerError>")]
pub struct SubmitOrder {
    pub instance: InstanceId,
    pub intent: OrderIntent,
}

impl Handler<SubmitOrder> for BrokerActor {
    type Result = ResponseActFuture<Self, Result<OrderRecord, BrokerError>>;

    fn handle(&mut self, msg: SubmitOrder, _: &mut Self::Context) -> Self::Result {
        let SubmitOrder { instance, intent } = msg;
        let side = intent.side.as_str();
        let refuse = |reason: String| -> Self::Result {
            Box::pin(fut::ready(Err(BrokerError::Refused(reason))))
        };
        if self.draining {
            return Box::pin(fut::ready(Err(BrokerError::Draining)));
        }
        if let Some(why) = self.deps.process.halted() {
            self.deps.metrics.order(instance.as_str(), side, "refused");
            return refuse(format!("trading is halted: {why}"));
        }
        if intent.qty <= rust_decimal::Decimal::ZERO {
            self.deps.metrics.order(instance.as_str(), side, "refused");
            return refuse(format!("quantity {} is not positive", intent.qty));
        }
        let cid = client_order_id(&instance, &intent.symbol, intent.side, intent.decided_on);
        let record = match self.deps.book.begin(&instance, &intent, cid.clone()) {
            Begin::Existing(record) => return Box::pin(fut::ready(Ok(record))),
            Begin::New(record) => record,
        };
        let request = OrderRequest {
            symbol: intent.symbol.to_string(),
            qty: intent.qty,
            side: intent.side,
            order_type: "market",
            time_in_force: "day",
            client_order_id: cid.to_string(),
        };
        let client = self.deps.client.clone();
        let fut = self
            .in_flight
            .track_future(async move { submit::submit_idempotent(&client, &request).await });
        Box::pin(guarded(fut).into_actor(self).map(move |outcome, act, ctx| {
            let outcome = match outcome {
                Ok(o) => o,
                Err(panic) => {
                    act.deps.book.mark(
                        &cid,
                        OrderState::Unknown,
                        format!("panic while submitting: {panic}"),
                    );
                    act.die(ctx, panic.clone());
                    return Err(BrokerError::Panicked(panic));
                }
            };
            let metrics = Arc::clone(&act.deps.metrics);
            let (label, result) = match outcome {
                SubmitOutcome::Placed(order) | SubmitOutcome::Adopted(order) => {
                    act.observe::<()>(&Ok(()));
                    act.apply(&cid, &order);
                    ctx.run_later(FIRST_FILL_CHECK, |act, ctx| act.refresh_unsettled(ctx));
                    ("accepted", Ok(()))
                }
                SubmitOutcome::Rejected(e) => {
                    act.observe::<()>(&Err(e.clone()));
                    act.deps
                        .book
                        .mark(&cid, OrderState::Rejected, e.to_string());
                    ("rejected", Err(e))
                }
                SubmitOutcome::Unknown(e) => {
                    act.observe::<()>(&Err(e.clone()));
                    act.deps.book.mark(&cid, OrderState::Unknown, e.to_string());
                    ("unknown", Err(e))
                }
            };
            metrics.order(instance.as_str(), side, label);
            let record = act.deps.book.get(&cid).unwrap_or(record);
            tracing::info!(
                event = "order", instance = %instance, client_order_id = %cid,
                order_id = record.order_id.as_deref(), symbol = %record.symbol, side = %record.side,
                qty = %record.qty, state = record.state.as_str(), reason = %record.reason,
                decided_on = %record.decided_on, error = record.error.as_deref(), "order placed"
            );
            result.map(|()| record).map_err(BrokerError::from)
        }))
    }
}

/// Orders this process placed, newest first.
#[derive(Message)]
#[rtype(result = "Vec<OrderRecord>")]
pub struct ListOrders {
    pub limit: usize,
}

impl Handler<ListOrders> for BrokerActor {
    type Result = MessageResult<ListOrders>;

    fn handle(&mut self, msg: ListOrders, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.deps.book.recent(msg.limit))
    }
}

/// The broker's last-known state, for `/health`.
#[derive(Message)]
#[rtype(result = "BrokerStatus")]
pub struct GetBrokerStatus;

#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct BrokerStatus {
    pub venue: Venue,
    pub trading_url: String,
    pub health: VenueHealth,
    pub orders_in_flight: usize,
    pub unsettled_orders: usize,
    pub draining: bool,
}

impl Handler<GetBrokerStatus> for BrokerActor {
    type Result = BrokerStatus;

    fn handle(&mut self, _: GetBrokerStatus, _: &mut Self::Context) -> BrokerStatus {
        BrokerStatus {
            venue: self.deps.venue,
            trading_url: self.deps.client.endpoint().trading_url.clone(),
            health: self.health.clone(),
            orders_in_flight: self.in_flight.len(),
            unsettled_orders: self.deps.book.unsettled().len(),
            draining: self.draining,
        }
    }
}

impl Handler<Drain> for BrokerActor {
    type Result = ResponseActFuture<Self, DrainAck>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let in_flight = self.in_flight.clone();
        let pending = in_flight.len() as u64;
        in_flight.close();
        tracing::info!(
            orders_in_flight = pending,
            "broker draining: waiting for orders in flight"
        );
        Box::pin(
            async move { in_flight.wait().await }
                .into_actor(self)
                .map(move |(), act, ctx| {
                    act.exit.set(ExitReason::Drained);
                    ctx.stop();
                    DrainAck {
                        orders_completed: pending,
                    }
                }),
        )
    }
}
