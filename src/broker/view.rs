//! Serving `GetMarketView`: the venue clock, then bars (cache first; misses join the timeframe's
//! open batch), positions and, if asked, the account, all shared between instances.
//!
//! A view is read in a task of its own ([`ViewReader`]): the clock, then the rest at that
//! clock's time; only joining a bars batch is a message to the actor.
//!
//! Invariant: however many instances tick within one `batch_window`, they cause at most one
//! bars request per timeframe (two when some symbols need a wider window), one clock, one
//! positions and one account call.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::prelude::*;
use futures::FutureExt;
use opentelemetry::trace::TraceContextExt;
use rust_decimal::Decimal;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::batch::{BarsBySymbol, BarsReply};
use super::cached::MarketCache;
use super::market::{self, MarketData, Series, cap_to_account};
use super::positions::observe_account;
use super::{BrokerActor, BrokerError, OrderBook, Snapshots, classify};
use crate::domain::{
    AccountSnapshot, DataNeeds, ExitReason, GuardedBook, Holding, InstanceId, MarketView, Session,
    Symbol, panic_message,
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
        let reader = ViewReader {
            snapshots: self.deps.snapshots.clone(),
            cache: self.deps.cache.clone(),
            book: Arc::clone(&self.deps.book),
            metrics: Arc::clone(&self.deps.metrics),
            broker: ctx.address(),
        };
        let broker = ctx.address();
        let drain = self.deps.process.drain_signal();
        Box::pin(async move {
            let read = AssertUnwindSafe(reader.read(msg, own).instrument(span)).catch_unwind();
            let result = tokio::select! {
                // A view has no effect: at the drain it is dropped, reads in flight included.
                () = drain.cancelled() => Err(BrokerError::Draining),
                read = read => read.unwrap_or_else(|payload| {
                    let panic = panic_message(&*payload);
                    broker.do_send(ViewPanicked(panic.clone()));
                    Err(BrokerError::Panicked(panic))
                }),
            };
            if let Some(outcome) = Observed::of(result.as_ref().err()) {
                broker.do_send(outcome);
            }
            result
        })
    }
}

/// What reading a view needs, moved into the view's own task: every pending view used to be a
/// future in the BrokerActor's context, which actix polls all of at each wake-up, so a cycle of
/// N instances cost O(N²) polls. Only joining a bars batch goes through the actor.
struct ViewReader {
    snapshots: Snapshots,
    cache: MarketCache,
    book: Arc<OrderBook>,
    metrics: Arc<Metrics>,
    broker: Addr<BrokerActor>,
}

impl ViewReader {
    /// The view at the venue clock's time: nothing more while the market is closed for a kind
    /// that trades only when open; otherwise bars, the positions (own, capped by the
    /// account's) and the account.
    async fn read(self, request: GetMarketView, own: Own) -> Result<MarketView, BrokerError> {
        let clock = self.snapshots.clock().await?;
        let needs = request.needs;
        let mut view = MarketView {
            now: clock.timestamp,
            market_open: clock.is_open,
            pending: own.pending,
            guarded: own.guarded,
            ..MarketView::default()
        };
        if !clock.is_open && needs.only_when_open {
            return Ok(view);
        }
        view.bars = self
            .bars(request.symbols, needs, request.session, request.trace)
            .await?;
        let held = self.snapshots.positions().await?;
        let book = &self.book;
        observe_account(book, &self.metrics, &held);
        view.positions = cap_to_account(own.positions, &held, |s| book.expected_position(s));
        if needs.account {
            let a = self.snapshots.account().await?;
            view.account = Some(AccountSnapshot {
                equity: a.equity,
                cash: a.cash,
                buying_power: a.buying_power,
            });
        }
        Ok(view)
    }

    /// The newest `needs.bars` closed bars of each symbol: cached ones at once, the rest through
    /// the open batch of the timeframe.
    async fn bars(
        &self,
        symbols: Vec<Symbol>,
        needs: DataNeeds,
        session: Session,
        tick: Span,
    ) -> Result<BarsBySymbol, BrokerError> {
        let series = Series {
            timeframe: needs.timeframe,
            session,
        };
        let (mut hits, misses) = market::cached_bars(&self.cache, &symbols, series, needs.bars);
        if misses.is_empty() {
            return Ok(hits);
        }
        let join = JoinBatch {
            series,
            symbols: misses,
            depth: needs.bars,
            tick,
        };
        let reply = self
            .broker
            .send(join)
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))??;
        let fetched = reply.await.unwrap_or_else(|_| {
            Err(BrokerError::Unavailable("the bar batch was dropped".into()))
        })?;
        hits.extend(fetched);
        Ok(hits)
    }
}

/// Adds symbols to the open batch of their series (opening it, and scheduling its flush, if
/// there is none); the answer is where the batch's bars will arrive.
#[derive(Message)]
#[rtype(result = "Result<oneshot::Receiver<BarsReply>, BrokerError>")]
struct JoinBatch {
    series: Series,
    symbols: Vec<Symbol>,
    depth: usize,
    tick: Span,
}

impl Handler<JoinBatch> for BrokerActor {
    type Result = Result<oneshot::Receiver<BarsReply>, BrokerError>;

    fn handle(&mut self, msg: JoinBatch, ctx: &mut Self::Context) -> Self::Result {
        if self.draining {
            return Err(BrokerError::Draining);
        }
        let JoinBatch {
            series,
            symbols,
            depth,
            tick,
        } = msg;
        let (reply, opened) = self.batcher.add(series, symbols, depth, tick);
        if opened {
            ctx.run_later(self.deps.batch_window, move |act, ctx| {
                act.flush_bars(series, ctx)
            });
        }
        Ok(reply)
    }
}

/// A view's outcome for the venue's health (see [`BrokerActor::observe`]).
#[derive(Message)]
#[rtype(result = "()")]
struct Observed {
    failed: bool,
    error: Option<String>,
}

impl Observed {
    /// `None` when the outcome says nothing about the venue (a saturated quota, the drain).
    fn of(error: Option<&BrokerError>) -> Option<Self> {
        let (failed, answered) = classify(error);
        (failed || answered).then(|| Observed {
            failed,
            error: error.filter(|_| failed).map(ToString::to_string),
        })
    }
}

impl Handler<Observed> for BrokerActor {
    type Result = ();

    fn handle(&mut self, msg: Observed, _: &mut Self::Context) {
        self.record_health(msg.failed, msg.error);
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

impl BrokerActor {
    /// Closes the open batch of `series` and makes its one request.
    pub(super) fn flush_bars(&mut self, series: Series, ctx: &mut Context<Self>) {
        let Some((request, waiters)) = self.batcher.take(series) else {
            return;
        };
        self.deps.metrics.bar_batch(waiters.len() as u64);
        // Its own trace, linked to every tick it serves: one request, many parents.
        let span = tracing::info_span!(
            parent: None,
            "bars_batch",
            otel.name = "broker bars batch",
            timeframe = %series.timeframe,
            session = series.session.as_str(),
            symbols = request.symbols.len(),
            ticks = waiters.len(),
        );
        for tick in waiters.ticks() {
            span.add_link(tick.context().span().span_context().clone());
        }
        let snapshots = self.deps.snapshots.clone();
        let market = MarketData {
            gateway: self.deps.gateway.clone(),
            cache: self.deps.cache.clone(),
            shared: self.deps.shared_bars.clone(),
            sessions: self.deps.sessions.clone(),
            speed: self.deps.speed,
            settle: self.deps.bar_settle,
        };
        let fetch = async move {
            let now = snapshots.clock().await?.timestamp;
            let bars = market::fetch_bars(
                &market,
                &request.symbols,
                request.series,
                request.depth,
                now,
            )
            .await?;
            Ok(bars)
        }
        .instrument(span);
        ctx.spawn(
            self.guard(fetch)
                .map(move |reply: BarsReply, _, _| waiters.deliver(&reply)),
        );
    }
}
