//! The market-data feed every account's broker reads bars through: one batch per series for
//! all instances of all accounts, so market data is fetched once however many accounts trade it.
//!
//! A view's bars that the cache does not hold join the open batch of their series; the request
//! that opens a batch starts its flush, a task of its own that waits `batch_window`, then makes
//! the one request (through the shared cache first) and answers every requester.
//!
//! Invariants:
//! - However many instances of however many accounts ask within one `batch_window`, a series
//!   costs one bars request in the steady state (a top-up; up to two more for symbols without
//!   a window of the day, the second when some need a wider one).
//! - Every requester gets an answer: the bars, the error, or `Draining` when the drain begins
//!   before the flush or during its request (a read has no effect, so nothing waits for it);
//!   no flush task outlives the drain signal.
//! - The feed outlives broker incarnations: a restarted broker never strands an open batch.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use opentelemetry::trace::TraceContextExt;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::BrokerError;
use super::batch::{BarBatcher, BarsBySymbol, BarsReply, BatchRequest, Waiters};
use super::market::{self, MarketData, Series};
use super::snapshots::Snapshots;
use crate::domain::{Symbol, panic_message};
use crate::metrics::Metrics;

/// Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct MarketFeed {
    market: MarketData,
    /// The venue clock a flush reads "now" from.
    clock: Snapshots,
    batcher: Arc<Mutex<BarBatcher>>,
    window: Duration,
    metrics: Arc<Metrics>,
    drain: CancellationToken,
}

impl MarketFeed {
    /// `market` reaches the venue with the keys and market-data quota of one account (the
    /// first); `drain` is the process's drain signal.
    pub fn new(
        market: MarketData,
        clock: Snapshots,
        window: Duration,
        metrics: Arc<Metrics>,
        drain: CancellationToken,
    ) -> Self {
        Self {
            market,
            clock,
            batcher: Arc::default(),
            window,
            metrics,
            drain,
        }
    }

    /// The newest `depth` final bars of each symbol, through the open batch of `series`, for
    /// the ticks whose spans are `ticks` (the batch's request links to them).
    pub async fn bars(
        &self,
        symbols: Vec<Symbol>,
        series: Series,
        depth: usize,
        ticks: Vec<Span>,
    ) -> Result<BarsBySymbol, BrokerError> {
        // No batch opens after the drain signal: a read has no effect, and the drain waits for
        // nothing that cannot change the account.
        if self.drain.is_cancelled() {
            return Err(BrokerError::Draining);
        }
        let (reply, opened) = self
            .batcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(series, symbols, depth, ticks);
        if opened {
            actix::spawn(self.clone().flush_after_window(series));
        }
        reply
            .await
            .unwrap_or_else(|_| Err(BrokerError::Unavailable("the bar batch was dropped".into())))
    }

    /// Waits out the batch window, closes the batch of `series`, makes its request.
    async fn flush_after_window(self, series: Series) {
        let drained = tokio::select! {
            () = self.drain.cancelled() => true,
            () = tokio::time::sleep(self.window) => false,
        };
        let taken = self
            .batcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(series);
        let Some((request, waiters)) = taken else {
            return;
        };
        if drained {
            waiters.deliver(&Err(BrokerError::Draining));
            return;
        }
        self.metrics.bar_batch(waiters.ticks().count() as u64);
        // The drain ends the fetch too: its requesters are ticks that will send nothing now.
        let reply = tokio::select! {
            () = self.drain.cancelled() => Err(BrokerError::Draining),
            reply = self.fetch(&request, &waiters) => reply,
        };
        waiters.deliver(&reply);
    }

    /// One batch's request, traced on its own and linked to every tick it serves.
    async fn fetch(&self, request: &BatchRequest, waiters: &Waiters) -> BarsReply {
        let span = tracing::info_span!(
            parent: None,
            "bars_batch",
            otel.name = "broker bars batch",
            timeframe = %request.series.timeframe,
            session = request.series.session.as_str(),
            symbols = request.symbols.len(),
            ticks = waiters.ticks().count(),
        );
        for tick in waiters.ticks() {
            span.add_link(tick.context().span().span_context().clone());
        }
        let fetch = async {
            let now = self.clock.clock().await?.timestamp;
            let bars = market::fetch_bars(
                &self.market,
                &request.symbols,
                request.series,
                request.depth,
                now,
            )
            .await?;
            Ok(bars)
        };
        AssertUnwindSafe(fetch.instrument(span))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| {
                let panic = panic_message(&*payload);
                tracing::error!(panic = %panic, "panic while fetching bars; the batch's ticks fail");
                Err(BrokerError::Panicked(panic))
            })
    }
}
