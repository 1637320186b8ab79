//! Serving `GetMarketView`: the venue clock, then bars (cache first; misses join the timeframe's
//! open batch), positions and, if asked, the account, all shared between instances. The
//! positions reading also gives the venue's current price of what the instance and the books
//! it guards hold (`MarketView::marks`): stop-losses and P&L judge it.
//!
//! Views are answered in rounds: the requests the BrokerActor takes from its mailbox in one go
//! (every instance whose tick fell due at a bar's close asks at once: one or two rounds a cycle
//! at 1,000 instances) queue up, and one task per series of bars in them reads, once for all of
//! its views ([`ViewReader`]), the clock, the bars of every symbol they name (the cache, then
//! one request to the feed's batch) and the positions and account. A task, a clock reading, a
//! cache lookup per symbol and a place in the batch per instance-tick were most of what a view
//! cost. The views of one series waited for the same bars batch anyway, so a round couples
//! nothing that was not coupled; views of other series are read by tasks of their own.
//!
//! Invariant: however many instances tick within one `batch_window`, they cause one bars
//! request per timeframe in the steady state (a top-up; up to two more for symbols without a
//! window of the day, the second when some need a wider one), one clock, and one positions and
//! one account call per account.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tracing::Span;

use super::account_reading::{cap_to_account, current_prices, marks};
use super::batch::{BarsBySymbol, trimmed};
use super::cached::MarketCache;
use super::feed::MarketFeed;
use super::market::{self, Series};
use super::positions::observe_new_reading;
use super::{BrokerActor, BrokerDeps, BrokerError, OrderBook, Snapshots, VenueHealth, observe};
use crate::domain::{
    AccountId, AccountSnapshot, DataNeeds, ExitReason, GuardedBook, Holding, InstanceId,
    MarketView, Session, Symbol, SymbolMap, panic_message,
};
use crate::metrics::Metrics;
use crate::process::ProcessState;

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

type ViewReply = Result<MarketView, BrokerError>;

/// This instance's own holdings and working quantities, and its guarded instances' books, read
/// from the book up front.
struct Own {
    positions: SymbolMap<Holding>,
    pending: SymbolMap<Decimal>,
    guarded: HashMap<InstanceId, GuardedBook>,
}

/// A view to read: the request, what the book said, the view's span (a child of the tick's).
struct Ask {
    request: GetMarketView,
    own: Own,
    span: Span,
}

/// A view asked for, and where its answer goes.
struct Asked {
    ask: Ask,
    reply: OneshotSender<ViewReply>,
}

/// The views asked for since the last round began (see the module's doc).
#[derive(Default)]
pub(super) struct ViewQueue(Mutex<Vec<Asked>>);

impl ViewQueue {
    /// Queues a view; true when it is the first since the last round was taken.
    fn push(&self, asked: Asked) -> bool {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.push(asked);
        queue.len() == 1
    }

    /// The round: every view queued so far, by series (a round holds one or a few).
    fn take(&self) -> Vec<(Series, Vec<Asked>)> {
        let asked = {
            let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            // The next round is about as large: room for it now, not a doubling at a time.
            let room = queue.len();
            std::mem::replace(&mut *queue, Vec::with_capacity(room))
        };
        let series_of = |a: &Asked| Series {
            timeframe: a.ask.request.needs.timeframe,
            session: a.ask.request.session,
        };
        // Most rounds are of one series: kept as they are, not moved one by one.
        if let Some(first) = asked.first().map(series_of)
            && asked.iter().all(|a| series_of(a) == first)
        {
            return vec![(first, asked)];
        }
        let mut by_series: Vec<(Series, Vec<Asked>)> = Vec::new();
        for a in asked {
            let series = series_of(&a);
            match by_series.iter_mut().find(|(s, _)| *s == series) {
                Some((_, views)) => views.push(a),
                None => by_series.push((series, vec![a])),
            }
        }
        by_series
    }
}

/// The handler's answer to a `GetMarketView`: an error at once, or a place in the next round.
/// A response of its own because the round needs the reply's sender, which actix hands only to
/// a response (its `ResponseFuture` would spawn a task per view to await one).
pub struct ViewAnswer(Answer);

enum Answer {
    Now(ViewReply),
    Queued { ask: Ask, queue: Arc<ViewQueue> },
}

impl MessageResponse<BrokerActor, GetMarketView> for ViewAnswer {
    fn handle(self, ctx: &mut Context<BrokerActor>, tx: Option<OneshotSender<ViewReply>>) {
        // Sent without waiting for an answer: a view has no effect, so nothing is read.
        let Some(reply) = tx else { return };
        match self.0 {
            Answer::Now(result) => {
                let _ = reply.send(result);
            }
            Answer::Queued { ask, queue } => {
                // The round is a message to self: actix handles it once the mailbox has no
                // more, so it takes every view that arrived with this one.
                if queue.push(Asked { ask, reply }) {
                    ctx.notify(ReadRound);
                }
            }
        }
    }
}

impl Handler<GetMarketView> for BrokerActor {
    type Result = ViewAnswer;

    fn handle(&mut self, msg: GetMarketView, _: &mut Self::Context) -> Self::Result {
        if self.draining {
            return ViewAnswer(Answer::Now(Err(BrokerError::Draining)));
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
        ViewAnswer(Answer::Queued {
            ask: Ask {
                request: msg,
                own,
                span,
            },
            queue: Arc::clone(&self.view_queue),
        })
    }
}

/// Reads the views queued since the last round.
#[derive(Message)]
#[rtype(result = "()")]
struct ReadRound;

impl Handler<ReadRound> for BrokerActor {
    type Result = ();

    fn handle(&mut self, _: ReadRound, ctx: &mut Self::Context) {
        for (series, views) in self.view_queue.take() {
            let round = Round {
                reader: Arc::clone(&self.views),
                broker: ctx.address(),
                drain: self.deps.process.drain_signal(),
                health: Arc::clone(&self.health),
                process: Arc::clone(&self.deps.process),
                draining: self.draining,
            };
            actix::spawn(round.answer(series, views));
        }
    }
}

/// What a round's task needs besides its views.
struct Round {
    reader: Arc<ViewReader>,
    broker: Addr<BrokerActor>,
    drain: CancellationToken,
    health: Arc<Mutex<VenueHealth>>,
    process: Arc<ProcessState>,
    /// The broker was asked to drain after these views were queued.
    draining: bool,
}

impl Round {
    /// Reads the views of one series and answers each. The answers' senders are kept out of
    /// the read, so a drain or a panic still answers every view (with `Draining`, `Panicked`).
    async fn answer(self, series: Series, views: Vec<Asked>) {
        // The asks are collected in place, in the queue's own allocation: unzipped into two new
        // vectors, the larger was fresh memory every round (mimalloc returns a round's freed
        // pages to the system before the next), and faulting its pages in was most of herd's
        // page faults at 1,000 instances.
        let mut replies = Vec::with_capacity(views.len());
        let asks: Vec<Ask> = views
            .into_iter()
            .map(|a| {
                replies.push(a.reply);
                a.ask
            })
            .collect();
        let all = |error: BrokerError| replies.iter().map(|_| Err(error.clone())).collect();
        let results: Vec<ViewReply> = if self.draining {
            all(BrokerError::Draining)
        } else {
            tokio::select! {
                // A view has no effect: at the drain it is dropped, reads in flight included.
                () = self.drain.cancelled() => all(BrokerError::Draining),
                read = AssertUnwindSafe(self.reader.read_round(series, asks)).catch_unwind() => read.unwrap_or_else(|payload| {
                    let panic = panic_message(&*payload);
                    self.broker.do_send(ViewPanicked(panic.clone()));
                    all(BrokerError::Panicked(panic))
                }),
            }
        };
        let (answered, failed) = outcome(&results);
        if answered {
            observe(&self.health, &self.process, None);
        }
        if let Some(e) = failed {
            observe(&self.health, &self.process, Some(e));
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// A round's outcome for the venue's health: one, as its reads were made once for all its
/// views. Whether any view got through (the venue answered), and the first failure if any view
/// failed: a thousand views failing on one refused reading are one failure, not a thousand in
/// a row.
fn outcome(results: &[ViewReply]) -> (bool, Option<&BrokerError>) {
    let answered = results.iter().any(Result::is_ok);
    (answered, results.iter().find_map(|r| r.as_ref().err()))
}

/// What reading a view needs, shared by the rounds' tasks: every pending view used to be a
/// future in the BrokerActor's context, which actix polls all of at each wake-up, so a cycle of
/// N instances cost O(N²) polls. One per BrokerActor incarnation, behind an `Arc`.
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

    /// The views of a round (one series), in order, at one reading of the venue clock: nothing
    /// more while the market is closed for a kind that trades only when open; otherwise bars,
    /// the positions (own, capped by the account's) and the account, each read once for all.
    async fn read_round(self: Arc<Self>, series: Series, asks: Vec<Ask>) -> Vec<ViewReply> {
        let clock = match self.snapshots.clock().await {
            Ok(clock) => clock,
            Err(e) => {
                let e = BrokerError::from(e);
                return asks.iter().map(|_| Err(e.clone())).collect();
            }
        };
        let (now, open) = (clock.timestamp, clock.is_open);
        let reads = |ask: &Ask| open || !ask.request.needs.only_when_open;
        let bars = self
            .round_bars(series, asks.iter().filter(|a| reads(a)), now)
            .await;
        // A view that reads, and has its bars, is built: it takes the positions (and the account).
        let built = |a: &Ask| reads(a) && bars.serves(&a.request.symbols);
        let reading = asks.iter().any(built);
        // Read only when a view uses it: none does when the market is closed to all of them or
        // their bars failed.
        let held = if reading {
            let held = self.snapshots.positions().await.map_err(BrokerError::from);
            if let Ok(held) = &held {
                observe_new_reading(&self.account, &self.book, &self.metrics, held);
            }
            held
        } else {
            Ok(Arc::from([]))
        };
        let wants_account = asks.iter().any(|a| a.request.needs.account && built(a));
        let account = match &held {
            Ok(_) if wants_account => Some(
                self.snapshots
                    .account()
                    .await
                    .map_err(BrokerError::from)
                    .map(|a| AccountSnapshot {
                        equity: a.equity,
                        cash: a.cash,
                        buying_power: a.buying_power,
                    }),
            ),
            _ => None,
        };
        let book = &self.book;
        let prices = held.as_deref().map(current_prices).unwrap_or_default();
        asks.into_iter()
            .map(|ask| {
                let closed = !reads(&ask);
                // The view's span ends with its view.
                let Ask {
                    request,
                    own,
                    span: _view,
                } = ask;
                if closed {
                    return Ok(MarketView {
                        now,
                        market_open: open,
                        pending: own.pending,
                        guarded: own.guarded,
                        ..MarketView::default()
                    });
                }
                let bars = bars.of(&request.symbols, request.needs.bars)?;
                let held = held.clone()?;
                let account = match (&account, request.needs.account) {
                    (Some(account), true) => Some(account.clone()?),
                    _ => None,
                };
                let positions = cap_to_account(own.positions, &held, |s| book.expected_position(s));
                Ok(MarketView {
                    now,
                    market_open: open,
                    marks: marks(&positions, &own.guarded, &prices),
                    bars,
                    positions,
                    pending: own.pending,
                    account,
                    guarded: own.guarded,
                })
            })
            .collect()
    }

    /// The bars of every symbol the reading views of a round name, each looked up once at the
    /// deepest depth any of them asks for: cached ones at once, the rest through the feed's open
    /// batch of the series, linked to the ticks of the views that need them.
    async fn round_bars<'a>(
        &self,
        series: Series,
        asks: impl Iterator<Item = &'a Ask> + Clone,
        now: DateTime<Utc>,
    ) -> RoundBars {
        let depth = asks
            .clone()
            .map(|a| a.request.needs.bars)
            .max()
            .unwrap_or(0);
        // foldhash, as for `SymbolMap`: thousands of symbols a round.
        let mut named = foldhash::HashSet::default();
        let symbols: Vec<Symbol> = asks
            .clone()
            .flat_map(|a| &a.request.symbols)
            .filter(|s| named.insert(*s))
            .cloned()
            .collect();
        let (cached, misses) =
            market::cached_bars(&self.cache, &symbols, series, depth, now, self.settle);
        if misses.is_empty() {
            return RoundBars {
                cached,
                fetched: Ok(SymbolMap::default()),
            };
        }
        let missing: foldhash::HashSet<&Symbol> = misses.iter().collect();
        let ticks = asks
            .filter(|a| a.request.symbols.iter().any(|s| missing.contains(s)))
            .map(|a| a.request.trace.clone())
            .collect();
        let fetched = self.feed.bars(misses, series, depth, ticks).await;
        RoundBars { cached, fetched }
    }
}

/// A round's bars: those the cache had, and the fetch of the rest.
struct RoundBars {
    cached: BarsBySymbol,
    fetched: Result<BarsBySymbol, BrokerError>,
}

impl RoundBars {
    /// Whether every one of `symbols` has its bars (the fetch, if one was needed, succeeded).
    fn serves(&self, symbols: &[Symbol]) -> bool {
        self.fetched.is_ok() || symbols.iter().all(|s| self.cached.contains_key(s))
    }

    /// One view's bars: the newest `depth` of each of its own symbols, or the fetch's error if
    /// it needed the fetch. The round reads at the deepest depth any view asks for (and the
    /// cache may hold deeper windows); a view still holds only what its instance asked for, so
    /// a core that uses its whole window (volatility, VaR) does not decide differently because
    /// another instance on the same bars asked for more.
    fn of(&self, symbols: &[Symbol], depth: usize) -> Result<BarsBySymbol, BrokerError> {
        // Sized up front: collected, the map grows (and rehashes) on the way, once per view.
        let mut bars = SymbolMap::with_capacity_and_hasher(symbols.len(), Default::default());
        for s in symbols {
            let found = match (self.cached.get(s), &self.fetched) {
                (Some(cached), _) => Some(cached),
                (None, Ok(fetched)) => fetched.get(s),
                (None, Err(e)) => return Err(e.clone()),
            };
            if let Some(found) = found {
                bars.insert(s.clone(), trimmed(Some(found), depth));
            }
        }
        Ok(bars)
    }
}

/// A round's task panicked: the broker's state may be half-updated, so it stops for a restart.
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

#[cfg(test)]
mod tests;
