//! Batching bar requests: everything asked for within one `batch_window` goes out as ONE
//! multi-symbol request per series (timeframe and session), and each requester gets its own symbols back.
//!
//! This is the pure bookkeeping; the [`super::MarketFeed`] schedules the flush and makes the
//! request.
//!
//! Invariants:
//! - Per series there is at most one open batch; the request that opens it is the one that
//!   schedules its flush.
//! - A batch fetches the union of its requesters' symbols at the deepest depth any of them
//!   asked for; each requester receives only its symbols, trimmed to its own depth.
//! - Every requester gets an answer: the fetched bars or the error, never silence (the seed's
//!   batcher overwrote a second request for a symbol and left the first hanging).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::Span;

use super::error::BrokerError;
use super::market::Series;
use crate::domain::{Bar, Symbol, SymbolMap};

/// Bars per symbol, oldest first.
pub type BarsBySymbol = SymbolMap<Arc<[Bar]>>;
pub type BarsReply = Result<BarsBySymbol, BrokerError>;

struct Waiter {
    symbols: Vec<Symbol>,
    depth: usize,
    reply: oneshot::Sender<BarsReply>,
    /// The spans of the ticks it asks for (a round of views asks for many), which the batch's
    /// request links to.
    ticks: Vec<Span>,
}

/// What one flush must fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    pub series: Series,
    pub symbols: Vec<Symbol>,
    pub depth: usize,
}

/// The requesters waiting on one flush.
pub struct Waiters(Vec<Waiter>);

impl Waiters {
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The spans of the ticks waiting on this batch.
    pub fn ticks(&self) -> impl Iterator<Item = &Span> {
        self.0.iter().flat_map(|w| &w.ticks)
    }

    /// Answers every requester from one fetch result.
    pub fn deliver(self, result: &BarsReply) {
        for w in self.0 {
            let answer = match result {
                Ok(all) => Ok(w
                    .symbols
                    .iter()
                    .map(|s| (s.clone(), trimmed(all.get(s), w.depth)))
                    .collect()),
                Err(e) => Err(e.clone()),
            };
            // A requester that gave up (its tick was cancelled) no longer listens: fine.
            let _ = w.reply.send(answer);
        }
    }
}

/// The newest `depth` of `bars`: the same allocation when it holds no more (as it usually
/// does; a thousand requesters each copying their windows was most of a cycle's copying).
pub(super) fn trimmed(bars: Option<&Arc<[Bar]>>, depth: usize) -> Arc<[Bar]> {
    match bars {
        Some(b) if b.len() <= depth => Arc::clone(b),
        Some(b) => Arc::from(&b[b.len() - depth..]),
        None => Arc::from(Vec::new()),
    }
}

#[derive(Default)]
struct Pending {
    symbols: BTreeSet<Symbol>,
    depth: usize,
    waiters: Vec<Waiter>,
}

#[derive(Default)]
pub struct BarBatcher {
    open: HashMap<Series, Pending>,
}

impl BarBatcher {
    /// Joins (or opens) the batch of `series`. Returns where the answer will come, and
    /// whether this request opened the batch (then the caller schedules its flush).
    pub fn add(
        &mut self,
        series: Series,
        symbols: Vec<Symbol>,
        depth: usize,
        ticks: Vec<Span>,
    ) -> (oneshot::Receiver<BarsReply>, bool) {
        let (reply, rx) = oneshot::channel();
        let opened = !self.open.contains_key(&series);
        let batch = self.open.entry(series).or_default();
        batch.symbols.extend(symbols.iter().cloned());
        batch.depth = batch.depth.max(depth);
        batch.waiters.push(Waiter {
            symbols,
            depth,
            reply,
            ticks,
        });
        (rx, opened)
    }

    /// Closes the batch of `series` for its flush.
    pub fn take(&mut self, series: Series) -> Option<(BatchRequest, Waiters)> {
        let p = self.open.remove(&series)?;
        let request = BatchRequest {
            series,
            symbols: p.symbols.into_iter().collect(),
            depth: p.depth,
        };
        Some((request, Waiters(p.waiters)))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use crate::domain::{Session, Timeframe};

    fn regular(timeframe: Timeframe) -> Series {
        Series {
            timeframe,
            session: Session::Regular,
        }
    }

    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn series(n: usize) -> Arc<[Bar]> {
        (0..n)
            .map(|i| Bar {
                time: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap()
                    + chrono::Duration::minutes(i as i64),
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: i as f64,
                volume: 1.0,
                trades: None,
                vwap: None,
            })
            .collect()
    }

    #[test]
    fn requests_in_one_window_become_one_fetch_of_the_union_at_the_deepest_depth() {
        let tf = regular(Timeframe::Minutes(5));
        let mut b = BarBatcher::default();
        let (mut first, opened) = b.add(tf, vec![sym("SPY"), sym("QQQ")], 20, vec![]);
        assert!(opened);
        let (mut second, opened) = b.add(tf, vec![sym("QQQ"), sym("IWM")], 50, vec![]);
        assert!(!opened, "the second request joins the open batch");
        let (request, waiters) = b.take(tf).unwrap();
        assert_eq!(request.symbols, vec![sym("IWM"), sym("QQQ"), sym("SPY")]);
        assert_eq!(request.depth, 50);
        assert_eq!(waiters.len(), 2);
        let fetched: BarsBySymbol = [sym("SPY"), sym("QQQ"), sym("IWM")]
            .into_iter()
            .map(|s| (s, series(50)))
            .collect();
        waiters.deliver(&Ok(fetched));
        let first = first.try_recv().unwrap().unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(
            first[&sym("SPY")].len(),
            20,
            "trimmed to this requester's depth"
        );
        assert_eq!(
            first[&sym("SPY")].last().unwrap().close,
            49.0,
            "the newest bars"
        );
        let second = second.try_recv().unwrap().unwrap();
        assert_eq!(second[&sym("IWM")].len(), 50);
        assert!(b.take(tf).is_none(), "the batch is closed");
    }

    #[test]
    fn every_requester_hears_the_error_and_other_timeframes_are_separate_batches() {
        let mut b = BarBatcher::default();
        let five_minutes = regular(Timeframe::Minutes(5));
        let (mut five, _) = b.add(five_minutes, vec![sym("SPY")], 20, vec![]);
        let (_, opened) = b.add(regular(Timeframe::Day), vec![sym("SPY")], 60, vec![]);
        assert!(opened, "another timeframe opens its own batch");
        let extended = Series {
            session: Session::Extended,
            ..five_minutes
        };
        let (_, opened) = b.add(extended, vec![sym("SPY")], 20, vec![]);
        assert!(opened, "another session too");
        let (_, waiters) = b.take(five_minutes).unwrap();
        waiters.deliver(&Err(BrokerError::Draining));
        assert!(matches!(
            five.try_recv().unwrap(),
            Err(BrokerError::Draining)
        ));
        assert!(b.take(five_minutes).is_none(), "taken once");
        for still_open in [extended, regular(Timeframe::Day)] {
            assert!(b.take(still_open).is_some(), "the others stay open");
        }
    }
}
