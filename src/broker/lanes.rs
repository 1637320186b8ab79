//! One order per symbol at the venue at a time.
//!
//! Several instances may trade one symbol on one account. Orders for it sent together would
//! each be judged — by herd's risk gate, and by the venue's "no order through zero" rule — on
//! the account's position before the others filled: a buy can then cross a short that another
//! instance's sell just opened, and the venue refuses it. So an order takes its symbol's lane
//! before it reads the account, and keeps it until the order is final (or [`LANE_HOLD`] passed),
//! and the next order on that symbol reads the account after it.
//!
//! Invariants:
//! - A lane is held by at most one order; orders for other symbols never wait for it.
//! - A lane is always released: by the order turning final, by the hold limit, or by its
//!   holder being dropped (a cancelled future, a broker incarnation that died).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::book::{OrderBook, OrderRecord};
use crate::domain::{ClientOrderId, Symbol};

/// The longest an order keeps its symbol's lane waiting for its fill; a limit that rests longer
/// than this lets the next order through (the venue then judges it with the first still open).
pub const LANE_HOLD: Duration = Duration::from_secs(30);

/// Shared by broker incarnations, like the book: a restart must not let two orders for one
/// symbol out together.
#[derive(Clone, Default)]
pub struct OrderLanes {
    /// A std mutex: held only to find or add a lane, never across an `.await`.
    lanes: Arc<Mutex<HashMap<Symbol, Arc<AsyncMutex<()>>>>>,
}

/// Holding it is holding the symbol's lane.
pub type LaneTurn = OwnedMutexGuard<()>;

impl OrderLanes {
    /// Waits for `symbol`'s lane.
    pub async fn turn(&self, symbol: &Symbol) -> LaneTurn {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(lanes.entry(symbol.clone()).or_default())
        };
        lane.lock_owned().await
    }
}

/// The order's record once it is final, or `None` if it is not within `limit` (the broker's
/// refresh settles it meanwhile; this only watches the book).
pub async fn until_final(
    book: &OrderBook,
    cid: &ClientOrderId,
    poll: Duration,
    limit: Duration,
) -> Option<OrderRecord> {
    let step = (poll / 4).max(Duration::from_millis(5));
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let record = book.get(cid)?;
        if record.state.is_final() {
            return Some(record);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(step).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_order_per_symbol_and_other_symbols_pass() {
        let lanes = OrderLanes::default();
        let spy = Symbol::parse("SPY").unwrap();
        let gld = Symbol::parse("GLD").unwrap();
        let first = lanes.turn(&spy).await;
        let waiting = tokio::spawn({
            let (lanes, spy) = (lanes.clone(), spy.clone());
            async move { lanes.turn(&spy).await }
        });
        let _other = lanes.turn(&gld).await;
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a second SPY order waits for the first"
        );
        drop(first);
        let _second = waiting.await.unwrap();
    }
}
