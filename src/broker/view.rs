//! Serving `GetMarketView`: the venue clock, then bars (cache first; misses join the timeframe's
//! open batch), positions and, if asked, the account, all shared between instances.
//!
//! A view is built in two steps, each a method: [`Handler::handle`] reads the clock,
//! [`BrokerActor::view_at`] assembles the rest at that clock's time.
//!
//! Invariant: however many instances tick within one `batch_window`, they cause at most one
//! bars request per timeframe (two when some symbols need a wider window), one clock, one
//! positions and one account call.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::Either;
use opentelemetry::trace::TraceContextExt;
use rust_decimal::Decimal;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::alpaca::models::Clock;
use super::batch::BarsReply;
use super::market::{self, MarketData, Series, cap_to_account};
use super::positions::observe_account;
use super::{BrokerActor, BrokerError};
use crate::domain::{
    AccountSnapshot, DataNeeds, GuardedBook, Holding, InstanceId, MarketView, Session, Symbol,
};

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
    type Result = ResponseActFuture<Self, Result<MarketView, BrokerError>>;

    fn handle(&mut self, msg: GetMarketView, _: &mut Self::Context) -> Self::Result {
        if self.draining {
            return Box::pin(fut::ready(Err(BrokerError::Draining)));
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
        let snapshots = self.deps.snapshots.clone();
        let clock = async move { Ok(snapshots.clock().await?) }.instrument(span.clone());
        let view = self
            .guard(clock)
            .then(move |clock, act, ctx| match clock {
                Ok(clock) => act.view_at(clock, msg, own, span, ctx),
                Err(e) => Box::pin(fut::ready(Err(e))),
            })
            .map(|result, act, _| {
                act.observe(result.as_ref().err());
                result
            });
        Box::pin(view)
    }
}

impl BrokerActor {
    /// The view at `clock`: nothing more while the market is closed for a kind that trades only
    /// when open; otherwise bars, the positions (own, capped by the account's) and the account.
    fn view_at(
        &mut self,
        clock: Clock,
        request: GetMarketView,
        own: Own,
        span: Span,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<MarketView, BrokerError>> {
        let needs = request.needs;
        let mut view = MarketView {
            now: clock.timestamp,
            market_open: clock.is_open,
            pending: own.pending,
            guarded: own.guarded,
            ..MarketView::default()
        };
        if !clock.is_open && needs.only_when_open {
            return Box::pin(fut::ready(Ok(view)));
        }
        let bars = self.request_bars(request.symbols, needs, request.session, request.trace, ctx);
        let (snapshots, book) = (self.deps.snapshots.clone(), Arc::clone(&self.deps.book));
        let metrics = Arc::clone(&self.deps.metrics);
        Box::pin(
            self.guard(
                async move {
                    view.bars = bars.await?;
                    let held = snapshots.positions().await?;
                    observe_account(&book, &metrics, &held);
                    view.positions =
                        cap_to_account(own.positions, &held, |s| book.expected_position(s));
                    if needs.account {
                        let a = snapshots.account().await?;
                        view.account = Some(AccountSnapshot {
                            equity: a.equity,
                            cash: a.cash,
                            buying_power: a.buying_power,
                        });
                    }
                    Ok(view)
                }
                .instrument(span),
            ),
        )
    }

    /// The newest `needs.bars` closed bars of each symbol: cached ones at once, the rest through
    /// the open batch of the timeframe (opening it, and scheduling its flush, if there is none).
    fn request_bars(
        &mut self,
        symbols: Vec<Symbol>,
        needs: DataNeeds,
        session: Session,
        tick: Span,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = BarsReply> + use<> {
        let series = Series {
            timeframe: needs.timeframe,
            session,
        };
        let (mut hits, misses) =
            market::cached_bars(&self.deps.cache, &symbols, series, needs.bars);
        if misses.is_empty() {
            return Either::Left(std::future::ready(Ok(hits)));
        }
        let (reply, opened) = self.batcher.add(series, misses, needs.bars, tick);
        if opened {
            ctx.run_later(self.deps.batch_window, move |act, ctx| {
                act.flush_bars(series, ctx)
            });
        }
        Either::Right(async move {
            let fetched = reply.await.unwrap_or_else(|_| {
                Err(BrokerError::Unavailable("the bar batch was dropped".into()))
            })?;
            hits.extend(fetched);
            Ok(hits)
        })
    }

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
