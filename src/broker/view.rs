//! Serving `GetMarketView`: the venue clock, then bars (cache first; misses join the timeframe's
//! open batch), positions and, if asked, the account, all shared between instances.
//!
//! Invariant: however many instances tick within one `batch_window`, they cause at most one
//! bars request per timeframe (two when some symbols need a wider window), one clock, one
//! positions and one account call.

use actix::prelude::*;
use futures::future::Either;

use super::batch::BarsReply;
use super::market::{self, cap_to_account};
use super::{BrokerActor, BrokerError, guarded};
use crate::domain::{InstanceId, Symbol, Timeframe};
use crate::strategy::{AccountSnapshot, DataNeeds, MarketView};

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
        let GetMarketView {
            instance,
            symbols,
            needs,
        } = msg;
        let (own, pending) = self.deps.book.instance_view(&instance, &symbols);
        let snapshots = self.deps.snapshots.clone();
        let clock = guarded(async move { snapshots.clock().await });
        let view = clock
            .into_actor(self)
            .then(move |clock, act, ctx| -> Self::Result {
                let clock = match clock {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => return Box::pin(fut::ready(Err(e.into()))),
                    Err(panic) => {
                        act.die(ctx, panic.clone());
                        return Box::pin(fut::ready(Err(BrokerError::Panicked(panic))));
                    }
                };
                let mut view = MarketView {
                    now: clock.timestamp,
                    market_open: clock.is_open,
                    pending,
                    ..MarketView::default()
                };
                if !clock.is_open && needs.only_when_open {
                    return Box::pin(fut::ready(Ok(view)));
                }
                let bars = act.request_bars(symbols, needs, ctx);
                let snapshots = act.deps.snapshots.clone();
                let rest = async move {
                    view.bars = bars.await?;
                    let held = snapshots.positions().await?;
                    view.positions = cap_to_account(own, &held);
                    if needs.account {
                        let a = snapshots.account().await?;
                        view.account = Some(AccountSnapshot {
                            equity: a.equity,
                            cash: a.cash,
                            buying_power: a.buying_power,
                        });
                    }
                    Ok(view)
                };
                Box::pin(
                    guarded(rest)
                        .into_actor(act)
                        .map(|result, act, ctx| match result {
                            Ok(view) => view,
                            Err(panic) => {
                                act.die(ctx, panic.clone());
                                Err(BrokerError::Panicked(panic))
                            }
                        }),
                )
            });
        Box::pin(view.map(|result, act, _| {
            act.observe(result.as_ref().err());
            result
        }))
    }
}

impl BrokerActor {
    /// The newest `needs.bars` closed bars of each symbol: cached ones at once, the rest through
    /// the open batch of the timeframe (opening it, and scheduling its flush, if there is none).
    fn request_bars(
        &mut self,
        symbols: Vec<Symbol>,
        needs: DataNeeds,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = BarsReply> + use<> {
        let (mut hits, misses) =
            market::cached_bars(&self.deps.cache, &symbols, needs.timeframe, needs.bars);
        if misses.is_empty() {
            return Either::Left(std::future::ready(Ok(hits)));
        }
        let (reply, opened) = self.batcher.add(needs.timeframe, misses, needs.bars);
        if opened {
            let timeframe = needs.timeframe;
            ctx.run_later(self.deps.batch_window, move |act, ctx| {
                act.flush_bars(timeframe, ctx)
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

    /// Closes the open batch of `timeframe` and makes its one request.
    pub(super) fn flush_bars(&mut self, timeframe: Timeframe, ctx: &mut Context<Self>) {
        let Some((request, waiters)) = self.batcher.take(timeframe) else {
            return;
        };
        self.deps.metrics.bar_batch(waiters.len() as u64);
        let (gateway, snapshots, cache, speed) = (
            self.deps.gateway.clone(),
            self.deps.snapshots.clone(),
            self.deps.cache.clone(),
            self.deps.speed,
        );
        let fetch = async move {
            let now = snapshots.clock().await?.timestamp;
            market::fetch_bars(
                &gateway,
                &cache,
                speed,
                &request.symbols,
                request.timeframe,
                request.depth,
                now,
            )
            .await
        };
        ctx.spawn(
            guarded(fetch)
                .into_actor(self)
                .map(move |result, act, ctx| {
                    let reply: BarsReply = match result {
                        Ok(bars) => bars.map_err(BrokerError::from),
                        Err(panic) => {
                            act.die(ctx, panic.clone());
                            Err(BrokerError::Panicked(panic))
                        }
                    };
                    waiters.deliver(&reply);
                }),
        );
    }
}
