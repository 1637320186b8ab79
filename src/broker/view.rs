//! Serving `GetMarketView`: the venue clock, then bars (cache first; misses join the timeframe's
//! open batch), positions and, if asked, the account, all shared between instances. For an
//! instance that guards others, the positions reading also gives the venue's current price of
//! what the guarded books hold (`MarketView::marks`), which their stop-losses judge.
//!
//! A view is read in a task of its own ([`ViewReader`]): the clock, then the rest at that
//! clock's time; bars the cache lacks come through the [`MarketFeed`] all accounts share.
//!
//! Invariant: however many instances tick within one `batch_window`, they cause one bars
//! request per timeframe in the steady state (a top-up; up to two more for symbols without a
//! window of the day, the second when some need a wider one), one clock, and one positions and
//! one account call per account.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use rust_decimal::Decimal;
use tracing::{Instrument, Span};

use super::batch::BarsBySymbol;
use super::cached::MarketCache;
use super::feed::MarketFeed;
use super::market::{self, Series, cap_to_account, guarded_marks};
use super::positions::observe_new_reading;
use super::{BrokerActor, BrokerDeps, BrokerError, OrderBook, Snapshots, observe};
use crate::domain::{
    AccountId, AccountSnapshot, DataNeeds, ExitReason, GuardedBook, Holding, InstanceId,
    MarketView, Session, Symbol, panic_message,
};
use crate::metrics::Metrics;

/// Asks for the market as one instance should see it.
#[derive(Message)]
#[rtype(result = "Result<MarketView, BrokerError>")]
pub struct GetMarketView {
    pub instance: InstanceId,
    pub symbols: Vec<Symbol>,
    pub needs: DataNeeds,
    /// Instances whose books the view carries too (a risk manager's guarded instances).
    pub guards: Vec<InstanceId>,
    /// Which intraday bars the instance decides on.
    pub session: Session,
    /// The tick's span: reading the view is traced as its child, and a bars batch that
    /// serves the tick links to it.
    pub trace: Span,
}

/// This instance's own holdings and working quantities, and its guarded instances' books, read
/// from the book up front.
struct Own {
    positions: HashMap<Symbol, Holding>,
    pending: HashMap<Symbol, Decimal>,
    guarded: HashMap<InstanceId, GuardedBook>,
}

impl Handler<GetMarketView> for BrokerActor {
    type Result = ResponseFuture<Result<MarketView, BrokerError>>;

    fn handle(&mut self, msg: GetMarketView, ctx: &mut Self::Context) -> Self::Result {
        if self.draining {
            return Box::pin(std::future::ready(Err(BrokerError::Draining)));
        }
        let book = &self.deps.book;
        let (positions, pending) = book.instance_view(&msg.instance, &msg.symbols);
        let guarded = msg
            .guards
            .iter()
            .map(|g| {
                let (positions, pending) = book.instance_view(g, &msg.symbols);
                (g.clone(), GuardedBook { positions, pending })
            })
            .collect();
        let own = Own {
            positions,
            pending,
            guarded,
        };
        let span = tracing::info_span!(
            parent: &msg.trace,
            "market_view",
            otel.name = "broker market_view",
            instance = %msg.instance,
            symbols = msg.symbols.len(),
        );
        let reader = Arc::clone(&self.views);
        let broker = ctx.address();
        let drain = self.deps.process.drain_signal();
        let (health, process) = (Arc::clone(&self.health), Arc::clone(&self.deps.process));
        // The view's future is built where it is awaited, never held in a local first: a
        // future moved after it is built keeps both places in the task's state, and this one
        // is boxed and copied for every instance-tick.
        Box::pin(async move {
            let result = tokio::select! {
                // A view has no effect: at the drain it is dropped, reads in flight included.
                () = drain.cancelled() => Err(BrokerError::Draining),
                read = AssertUnwindSafe(reader.read(msg, own).instrument(span)).catch_unwind() => read.unwrap_or_else(|payload| {
                    let panic = panic_message(&*payload);
                    broker.do_send(ViewPanicked(panic.clone()));
                    Err(BrokerError::Panicked(panic))
                }),
            };
            observe(&health, &process, result.as_ref().err());
            result
        })
    }
}

/// What reading a view needs, shared by the views' own tasks: every pending view used to be a
/// future in the BrokerActor's context, which actix polls all of at each wake-up, so a cycle of
/// N instances cost O(N²) polls. One per BrokerActor incarnation, behind an `Arc`: a copy per
/// view was a dozen reference counts to bump and half a kilobyte in every view's future.
pub(super) struct ViewReader {
    account: AccountId,
    feed: MarketFeed,
    snapshots: Snapshots,
    cache: MarketCache,
    book: Arc<OrderBook>,
    metrics: Arc<Metrics>,
    /// How long after its end a bar is final (`broker.bar_settle`).
    settle: std::time::Duration,
}

impl ViewReader {
    pub(super) fn new(deps: &BrokerDeps) -> Self {
        Self {
            account: deps.account.clone(),
            feed: deps.feed.clone(),
            snapshots: deps.snapshots.clone(),
            cache: deps.cache.clone(),
            book: Arc::clone(&deps.book),
            metrics: Arc::clone(&deps.metrics),
            settle: deps.bar_settle,
        }
    }

    /// The view at the venue clock's time: nothing more while the market is closed for a kind
    /// that trades only when open; otherwise bars, the positions (own, capped by the
    /// account's) and the account.
    ///
    /// Not an `async fn`: one keeps a second copy of each argument in its state. The view is
    /// built after the last read, so it is not held across them either.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn doubles its arguments in the boxed view future"
    )]
    fn read(
        self: Arc<Self>,
        request: GetMarketView,
        own: Own,
    ) -> impl Future<Output = Result<MarketView, BrokerError>> {
        async move {
            let clock = self.snapshots.clock().await?;
            let needs = request.needs;
            if !clock.is_open && needs.only_when_open {
                return Ok(MarketView {
                    now: clock.timestamp,
                    market_open: clock.is_open,
                    pending: own.pending,
                    guarded: own.guarded,
                    ..MarketView::default()
                });
            }
            let bars = self
                .bars(
                    request.symbols,
                    needs,
                    request.session,
                    clock.timestamp,
                    request.trace,
                )
                .await?;
            let held = self.snapshots.positions().await?;
            let book = &self.book;
            observe_new_reading(&self.account, book, &self.metrics, &held);
            let account = if needs.account {
                Some(self.snapshots.account().await?)
            } else {
                None
            };
            Ok(MarketView {
                now: clock.timestamp,
                market_open: clock.is_open,
                marks: guarded_marks(&own.guarded, &held),
                bars,
                positions: cap_to_account(own.positions, &held, |s| book.expected_position(s)),
                pending: own.pending,
                account: account.map(|a| AccountSnapshot {
                    equity: a.equity,
                    cash: a.cash,
                    buying_power: a.buying_power,
                }),
                guarded: own.guarded,
            })
        }
    }

    /// The newest `needs.bars` final bars of each symbol at venue time `now`: cached ones at
    /// once, the rest through the feed's open batch of the series.
    async fn bars(
        &self,
        symbols: Vec<Symbol>,
        needs: DataNeeds,
        session: Session,
        now: DateTime<Utc>,
        tick: Span,
    ) -> Result<BarsBySymbol, BrokerError> {
        let series = Series {
            timeframe: needs.timeframe,
            session,
        };
        let (mut hits, misses) =
            market::cached_bars(&self.cache, &symbols, series, needs.bars, now, self.settle);
        if misses.is_empty() {
            return Ok(hits);
        }
        let fetched = self.feed.bars(misses, series, needs.bars, tick).await?;
        hits.extend(fetched);
        Ok(hits)
    }
}

/// A view's task panicked: the broker's state may be half-updated, so it stops for a restart.
#[derive(Message)]
#[rtype(result = "()")]
struct ViewPanicked(String);

impl Handler<ViewPanicked> for BrokerActor {
    type Result = ();

    fn handle(&mut self, msg: ViewPanicked, ctx: &mut Self::Context) {
        tracing::error!(panic = %msg.0, "panic in the broker; stopping for a restart");
        self.exit.set(ExitReason::Panicked(msg.0));
        ctx.stop();
    }
}
