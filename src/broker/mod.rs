//! The BrokerActor: the only owner of broker I/O.
//!
//! Strategy instances ask it for a `MarketView` (`view.rs`) and hand it order intents
//! (`orders.rs`); it serves views from the cache, batched bars requests
//! and shared snapshots, places orders idempotently behind the risk gate, tracks them until
//! final, and keeps each instance's position in the [`OrderBook`].
//!
//! Design decisions:
//! - Handlers return futures that run *in the actor's context* (`ResponseActFuture`) without
//!   blocking its mailbox, so one slow venue call never serializes the others.
//! - Every handler future runs under `catch_unwind`: a panic becomes a typed error for the
//!   caller and an orderly stop that the Supervisor restarts, never a hang.
//! - What outlives an incarnation is passed in [`BrokerDeps`]: the order book (herd's record of
//!   its orders), the gateway with its breakers and quotas (venue health is not actor state: a
//!   restart must not hammer a failing venue afresh), the cache, the market-data feed all
//!   accounts share. The incarnation's own state — in-flight tracking, health counters — starts
//!   fresh.
//!
//! Invariants:
//! - Only this actor, through the [`Gateway`], talks to the broker.
//! - No order leaves the process while trading is halted, the risk gate refuses it, or the
//!   actor is draining.
//! - The drain acknowledges only when every submission in flight has reached a known state
//!   (views, bars batches included, are dropped at the drain signal: a read has no effect).

mod account_reading;
mod accounts;
pub mod alpaca;
mod batch;
mod book;
pub mod breaker;
mod cached;
mod dedup;
mod error;
mod feed;
mod gateway;
mod lanes;
pub mod lease;
mod legs;
pub mod limiter;
mod market;
mod operator;
mod order_id;
mod orders;
mod positions;
mod recovery;
pub mod retry;
pub mod risk;
mod sessions;
mod settings;
mod shared_bars;
mod snapshots;
mod submit;
mod takeover;
mod trading;
mod view;
mod windows;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde::Serialize;
use tokio_util::task::TaskTracker;

pub use accounts::{Account, AccountSettings, resolve as resolve_accounts};
pub use alpaca::{AlpacaClient, AlpacaError, Endpoint};
pub use book::{OrderBook, OrderFilter, OrderRecord, OrderSeq, OrderState, OrdersPage};
pub use breaker::BreakerSnapshot;
pub use cached::{CacheKey, CacheValue, MarketCache, MarketCacheActor};
pub use error::{BrokerError, NotSent};
pub use feed::MarketFeed;
pub use gateway::{Gateway, Quotas};
pub use lanes::OrderLanes;
pub use market::{MarketData, VenueSpeed};
pub use operator::{BreakerCommand, CommandBreakers, SetTrading};
pub use orders::{RefusalLog, SubmitOrder, Submitted};
pub use positions::{GetPositions, PositionsReport};
pub use recovery::{Recovery, recover};
pub use sessions::Sessions;
pub use settings::{BrokerSettings, LIVE_TRADING_HOST};
pub use shared_bars::{RedisSettings, SharedBars, SharedCacheHealth};
pub use snapshots::Snapshots;
pub use takeover::Reconciler;
pub use trading::TightenTrading;
pub use view::GetMarketView;
use view::{ViewQueue, ViewReader};

use lease::{Lease, LeaseStatus};
use order_id::order_ids;
use risk::RiskLimits;

use crate::domain::{
    AccountId, Drain, DrainAck, ExitNotifier, ExitReason, Slot, Trading, Venue, panic_message,
};
use crate::journal::{Journal, JournalStatus, OrderQuery};
use crate::metrics::Metrics;
use crate::process::ProcessState;

/// What the BrokerActor needs; everything in here outlives an incarnation.
#[derive(Clone)]
pub struct BrokerDeps {
    /// The account this broker trades.
    pub account: AccountId,
    /// Whether this replica drives the account (always, without `lease.enabled`).
    pub lease: Lease,
    pub gateway: Gateway,
    pub snapshots: Snapshots,
    pub cache: MarketCache,
    /// Bars, batched for every account's instances.
    pub feed: MarketFeed,
    pub book: Arc<OrderBook>,
    /// One order per symbol at the venue at a time (shared by incarnations, like the book).
    pub lanes: OrderLanes,
    pub process: Arc<ProcessState>,
    pub metrics: Arc<Metrics>,
    pub venue: Venue,
    pub speed: VenueSpeed,
    /// How often orders that are not final are looked up (real time).
    pub order_poll: Duration,
    /// A bar is final this long (venue time) after its interval ends.
    pub bar_settle: Duration,
    /// The venue's trading calendar, read as regular-session filters need it.
    pub sessions: Sessions,
    pub risk: RiskLimits,
    /// Refusals logged when a reason starts, then summarized (each is counted in a metric).
    pub refusals: Arc<RefusalLog>,
}

/// Where every account's BrokerActor is found, whichever incarnation runs; the first account's
/// first (its broker answers what is the same for all: `/orders` from the journal, the
/// process-wide trading state).
#[derive(Clone)]
pub struct Brokers(Arc<[(AccountId, Slot<BrokerActor>)]>);

impl Brokers {
    /// One slot per account, in the configuration's order; never empty.
    pub fn new(accounts: impl IntoIterator<Item = AccountId>) -> Self {
        let slots: Vec<_> = accounts.into_iter().map(|a| (a, Slot::default())).collect();
        Self(slots.into())
    }

    /// The first account's broker, or `None` while it restarts.
    pub fn first(&self) -> Option<Addr<BrokerActor>> {
        self.0.first().and_then(|(_, slot)| slot.get())
    }

    /// The slot of `account`'s broker.
    pub fn slot(&self, account: &str) -> Option<&Slot<BrokerActor>> {
        self.0
            .iter()
            .find(|(id, _)| id.as_str() == account)
            .map(|(_, slot)| slot)
    }

    /// Every account with its broker's slot.
    pub fn iter(&self) -> impl Iterator<Item = &(AccountId, Slot<BrokerActor>)> {
        self.0.iter()
    }

    /// The configured account ids, for an error that names them.
    pub fn ids(&self) -> String {
        let ids: Vec<&str> = self.0.iter().map(|(id, _)| id.as_str()).collect();
        ids.join(", ")
    }
}

/// Updates `health` from the outcome of a request: a failure (with its error), or an answer
/// from the venue; an outcome that says nothing about the venue (a saturated quota, the
/// drain) leaves it as it is.
fn observe(health: &Mutex<VenueHealth>, process: &ProcessState, error: Option<&BrokerError>) {
    let (failed, answered) = classify(error);
    if !(failed || answered) {
        return;
    }
    let mut health = health.lock().unwrap_or_else(PoisonError::into_inner);
    if failed {
        health.last_error = error.map(ToString::to_string);
        health.last_error_at = Some(Utc::now());
        health.consecutive_failures += 1;
    } else {
        // Any answer from the venue, a business refusal included, means it is up.
        health.last_ok_at = Some(Utc::now());
        health.consecutive_failures = 0;
        drop(health);
        process.mark_venue_reached();
    }
}

/// Last-known state of the venue connection, for `/health` (never probed per request).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
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
    /// Submissions that reached a known state after the process began draining (the drain
    /// summary reports them; most finish while the strategies' ticks are being waited for).
    completed_while_draining: u64,
    /// Orders not sent because the drain began first (summarized when the drain ends).
    dropped_while_draining: u64,
    /// Shared with the rounds of views, which record their outcomes here directly: a message
    /// per view (one per instance-tick) cost the broker's mailbox more than the update itself.
    health: Arc<Mutex<VenueHealth>>,
    /// What every round of views reads with.
    views: Arc<ViewReader>,
    /// The views asked for since the last round began.
    view_queue: Arc<ViewQueue>,
    /// Tells the Supervisor why this incarnation ended.
    exit: ExitNotifier,
}

impl BrokerActor {
    pub fn new(deps: BrokerDeps, exit: ExitNotifier) -> Self {
        Self {
            views: Arc::new(ViewReader::new(&deps)),
            view_queue: Arc::default(),
            deps,
            in_flight: TaskTracker::new(),
            draining: false,
            refreshing: false,
            completed_while_draining: 0,
            dropped_while_draining: 0,
            health: Arc::default(),
            exit,
        }
    }

    /// Updates the venue health from the outcome of a request.
    fn observe(&self, error: Option<&BrokerError>) {
        observe(&self.health, &self.deps.process, error);
    }

    /// Runs `fut` in this actor's context under `catch_unwind`: the one way the broker's
    /// handlers await work in the context (views are read in rounds, tasks of their own, under
    /// the same catch). A panic inside `fut` stops this incarnation (the Supervisor starts a
    /// fresh one) and reaches the caller as [`BrokerError::Panicked`], never as a hang.
    fn guard<T, F>(
        &self,
        fut: F,
    ) -> impl ActorFuture<Self, Output = Result<T, BrokerError>> + use<T, F>
    where
        T: 'static,
        F: Future<Output = Result<T, BrokerError>> + 'static,
    {
        AssertUnwindSafe(fut)
            .catch_unwind()
            .into_actor(self)
            .map(|caught, act, ctx| {
                caught.unwrap_or_else(|payload| {
                    let panic = panic_message(&*payload);
                    tracing::error!(panic = %panic, "panic in the broker; stopping for a restart");
                    act.exit.set(ExitReason::Panicked(panic.clone()));
                    ctx.stop();
                    Err(BrokerError::Panicked(panic))
                })
            })
    }
}

/// (failed, answered) for an outcome: whether it says the venue is failing, and whether the
/// venue answered at all. A saturated quota or a refusal says neither.
fn classify(error: Option<&BrokerError>) -> (bool, bool) {
    let failed = match error {
        None => false,
        Some(e) => match e.upstream() {
            Some(upstream) => {
                upstream.is_retryable() || matches!(upstream, AlpacaError::Unauthorized { .. })
            }
            // An open breaker means the venue has been failing.
            None => matches!(e, BrokerError::Read(retry::RetryError::BreakerOpen { .. })),
        },
    };
    let answered = error.is_none() || error.and_then(BrokerError::upstream).is_some();
    (failed, answered)
}

impl Actor for BrokerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let orphaned = self.deps.book.orphan_submitting();
        if orphaned > 0 {
            tracing::warn!(
                orphaned,
                "orders were being submitted when the broker restarted; looking them up"
            );
        }
        ctx.run_interval(self.deps.order_poll, |act, ctx| act.refresh_unsettled(ctx));
        // Orders left unsettled by an earlier incarnation are picked up at once.
        self.refresh_unsettled(ctx);
    }
}

/// Orders this process placed, newest first, one page at a time.
#[derive(Message)]
#[rtype(result = "OrdersPage")]
pub struct ListOrders {
    pub filter: OrderFilter,
    pub limit: usize,
    /// The cursor of the page before (its `next`); `None` for the newest page.
    pub before: Option<u64>,
}

impl Handler<ListOrders> for BrokerActor {
    type Result = ResponseFuture<OrdersPage>;

    /// From the journal, which holds every order however old; from the book (recent orders
    /// only) if the journal cannot be read.
    fn handle(&mut self, msg: ListOrders, _: &mut Self::Context) -> Self::Result {
        let book = Arc::clone(&self.deps.book);
        Box::pin(async move {
            let Some(journal) = book.journal().cloned() else {
                return book.page(&msg.filter, msg.limit, msg.before);
            };
            let query = OrderQuery {
                instance: msg.filter.instance.as_ref().map(|i| i.as_str().to_owned()),
                symbol: msg.filter.symbol.as_ref().map(|s| s.as_str().to_owned()),
                state: msg.filter.state.map(OrderState::as_str),
                limit: msg.limit,
                before: msg.before,
            };
            match journal.page(&query).await {
                Ok((orders, next)) => OrdersPage { orders, next },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read orders from the journal; answering from memory");
                    book.page(&msg.filter, msg.limit, msg.before)
                }
            }
        })
    }
}

/// The broker's last-known state, for `/health`.
#[derive(Message)]
#[rtype(result = "BrokerStatus")]
pub struct GetBrokerStatus;

#[derive(Debug, Clone, Serialize, MessageResponse, utoipa::ToSchema)]
pub struct BrokerStatus {
    pub account: AccountId,
    /// Whether this replica drives the account.
    pub lease: LeaseStatus,
    pub venue: Venue,
    pub trading_url: String,
    pub health: VenueHealth,
    pub trading: Trading,
    pub breakers: Vec<BreakerSnapshot>,
    pub quotas: Quotas,
    pub orders_in_flight: usize,
    pub unsettled_orders: usize,
    pub draining: bool,
    /// The journal's writer: its queue and, while writes fail, the error.
    pub journal: Option<JournalStatus>,
}

impl Handler<GetBrokerStatus> for BrokerActor {
    type Result = BrokerStatus;

    fn handle(&mut self, _: GetBrokerStatus, _: &mut Self::Context) -> BrokerStatus {
        BrokerStatus {
            account: self.deps.account.clone(),
            lease: self.deps.lease.status(),
            venue: self.deps.venue,
            trading_url: self.deps.gateway.client().endpoint().trading_url.clone(),
            health: self
                .health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            trading: (*self.deps.process.trading()).clone(),
            breakers: self.deps.gateway.breakers().snapshot(),
            quotas: self.deps.gateway.quotas(),
            orders_in_flight: self.in_flight.len(),
            unsettled_orders: self.deps.book.unsettled().len(),
            draining: self.draining,
            journal: self.deps.book.journal().map(Journal::status),
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
                .map(|(), act, ctx| {
                    if act.dropped_while_draining > 0 {
                        tracing::info!(
                            event = "orders_dropped_draining", dropped = act.dropped_while_draining,
                            "orders not sent because herd began draining first (refused in /orders with that reason)"
                        );
                    }
                    act.exit.set(ExitReason::Drained);
                    ctx.stop();
                    DrainAck {
                        orders_completed: act.completed_while_draining,
                    }
                }),
        )
    }
}
