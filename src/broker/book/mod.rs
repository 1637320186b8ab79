//! herd's own record of the orders it placed, and each instance's position built from their
//! fills.
//!
//! The book outlives BrokerActor incarnations (the Supervisor rebuilds the actor, not this), so
//! a broker restart never forgets an order in flight or an instance's holdings; the journal
//! makes it outlive the process: every change is recorded there, in the order it happened,
//! and [`OrderBook::restore`] rebuilds the book from it at start.
//!
//! Invariants:
//! - One record per `client_order_id`: asking to place a decision that is already in the book
//!   returns the existing record instead of sending anything.
//! - A position changes only by the fill quantity the venue reports beyond what was already
//!   applied, so re-reading an order never double-counts a fill; that part's price is derived
//!   from the change of the venue's cumulative average fill price.
//! - An order the venue has called done (filled, canceled, expired, rejected) stays done: a
//!   reading that says it still works is an older one that arrived late, and is ignored.
//! - Orders that are not final are never evicted.
//! - What a view asks (an instance's working orders, herd's total in a symbol) is read from
//!   indexes (`records.rs`, `holdings.rs`), never by walking the book: the book keeps 10,000
//!   final orders, and every trading instance asks on every tick.
//! - Every change is handed to the journal while the book's lock is held, so the journal sees
//!   the changes of one order (and one holding) in the order they were made.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

mod holdings;
mod reconcile;
mod records;

pub use reconcile::{Mismatch, Reconciliation};

use super::alpaca::models::{Order, Position};
use super::lease::Lease;
use crate::domain::{
    ClientOrderId, Holding, InstanceId, OrderIntent, OrderStatus, Symbol, SymbolMap,
};
pub use crate::domain::{OrderRecord, OrderState};
use crate::journal::{Entry, Fill, Journal, Restored, Ticket, keys};
use holdings::Holdings;
use records::Records;

/// Final records kept in memory for `/orders`; older ones are dropped first.
const KEEP_FINAL: usize = 10_000;

#[derive(Default)]
struct BookInner {
    records: Records,
    /// Each instance's holding per symbol, built from its own fills.
    holdings: Holdings,
    /// The account's positions at the first reading, before any herd order could fill:
    /// positions herd did not make. `None` until the first reading.
    external: Option<SymbolMap<Decimal>>,
    /// Symbols whose account position differed from herd's expectation at the last reading.
    mismatched: BTreeSet<Symbol>,
    /// The reading of the account's positions last compared for a view (see
    /// [`OrderBook::first_sight`]); held, so its address cannot be reused by another.
    seen: Option<Arc<[Position]>>,
    /// P&L realized per venue day (New York date of the fill), recent days only.
    realized: BTreeMap<NaiveDate, RealizedDay>,
}

/// One venue day's realized P&L: each instance's, and all of them together (what the risk
/// gate reads for every order, so it is kept rather than summed per order).
#[derive(Default)]
struct RealizedDay {
    by_instance: HashMap<InstanceId, Decimal>,
    total: Decimal,
}

/// Days of realized P&L the book keeps (today's is what the risk gate reads).
const REALIZED_DAYS: i64 = 3;

/// The venue's trading day of a time: its New York date.
pub fn venue_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&chrono_tz::America::New_York).date_naive()
}

impl BookInner {
    fn add_realized(&mut self, instance: &InstanceId, at: DateTime<Utc>, pnl: Decimal) {
        if pnl.is_zero() {
            return;
        }
        let day = venue_day(at);
        let realized = self.realized.entry(day).or_default();
        *realized.by_instance.entry(instance.clone()).or_default() += pnl;
        realized.total += pnl;
        let oldest = day - chrono::Days::new(REALIZED_DAYS as u64);
        while self
            .realized
            .first_key_value()
            .is_some_and(|(d, _)| *d <= oldest)
        {
            self.realized.pop_first();
        }
    }
}

/// The result of [`OrderBook::begin`].
pub enum Begin {
    /// A new record in state `Submitting`: send it once its ticket is durable.
    New(OrderRecord, Option<Ticket>),
    /// The same decision is already in the book: do not send again.
    Existing(OrderRecord),
}

/// The insertion sequence of orders, one for every account's book: the journal keys orders by
/// it, so two books must never hand out the same number.
pub type OrderSeq = Arc<AtomicU64>;

pub struct OrderBook {
    /// A std mutex: every critical section is a few map operations, never held across `.await`.
    inner: Mutex<BookInner>,
    /// Where every change is recorded; `None` only in unit tests of the book itself.
    journal: Option<Journal>,
    seq: OrderSeq,
    /// The `herd_state` key of this account's positions herd did not make.
    external_key: String,
    /// Under leases, the account's: while this replica does not hold it, nothing is written to
    /// the journal the replicas share (the owner's record is the one that counts; this book
    /// is reloaded from it when the lease comes back).
    lease: Option<Lease>,
}

impl Default for OrderBook {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            journal: None,
            seq: OrderSeq::default(),
            external_key: keys::EXTERNAL.to_owned(),
            lease: None,
        }
    }
}

impl OrderBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// `account`'s book, every change recorded in `journal` while this replica holds `lease`,
    /// numbering orders from `seq`.
    pub fn journaled(journal: Journal, lease: &Lease, seq: OrderSeq) -> Self {
        Self {
            inner: Mutex::default(),
            journal: Some(journal),
            seq,
            external_key: keys::external(lease.account()),
            lease: Some(lease.clone()),
        }
    }

    /// Where changes are recorded now: nowhere while another replica may hold the lease.
    fn writer(&self) -> Option<&Journal> {
        let held = self.lease.as_ref().is_none_or(Lease::holds);
        self.journal.as_ref().filter(|_| held)
    }

    /// The next order's insertion sequence.
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel)
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Loads what the journal restored: orders (working and recent), every instance's ledger,
    /// and the positions herd did not make. Call before anything trades.
    pub fn restore(&self, restored: &Restored, owns: &dyn Fn(&InstanceId) -> bool) {
        let mut b = self.lock();
        for o in restored.orders.iter().filter(|o| owns(&o.record.instance)) {
            b.records.insert(o.seq, o.record.clone());
        }
        self.seq.fetch_max(restored.next_seq, Ordering::AcqRel);
        for (instance, symbol, holding) in restored.ledger.iter().filter(|(i, _, _)| owns(i)) {
            b.holdings
                .insert((instance.clone(), symbol.clone()), *holding);
        }
        for (instance, at, pnl) in restored.realized.iter().filter(|(i, _, _)| owns(i)) {
            b.add_realized(instance, *at, *pnl);
        }
        if let Some(text) = restored.state.get(&self.external_key) {
            match serde_json::from_str::<SymbolMap<Decimal>>(text) {
                Ok(external) => b.external = Some(external),
                Err(e) => tracing::warn!(
                    error = %e,
                    "the journal's record of positions herd did not make is unreadable; the next reading becomes it"
                ),
            }
        }
    }

    /// Forgets what this book held and loads `restored` instead: a replica taking the account
    /// over reads the journal the previous owner wrote. Call only while the account does not
    /// trade here (standby or reconciling).
    pub fn reload(&self, restored: &Restored, owns: &dyn Fn(&InstanceId) -> bool) {
        *self.lock() = BookInner::default();
        self.restore(restored, owns);
    }

    /// Records the order at `seq` as it stands now; `changed` adds a history row.
    fn journal_order(&self, b: &BookInner, seq: u64, changed: bool) -> Option<Ticket> {
        let journal = self.writer()?;
        let record = b.records.get(seq)?;
        Some(journal.record(Entry::Order {
            seq,
            record: Box::new(record.clone()),
            changed,
        }))
    }

    /// Adds orders rebuilt from the venue's history (a new or lost journal): each is recorded
    /// as it stands, with a fill for what it filled, so the ledgers follow.
    pub fn adopt(&self, records: Vec<OrderRecord>) {
        let mut b = self.lock();
        for record in records {
            if b.records.contains(&record.client_order_id) {
                continue;
            }
            let seq = self.next_seq();
            let filled = record.filled_qty;
            let price = record.filled_avg_price.unwrap_or_default();
            let key = (record.instance.clone(), record.symbol.clone());
            let signed = record.signed(filled);
            let (cid, at) = (record.client_order_id.clone(), record.updated_at);
            b.records.insert(seq, record);
            self.journal_order(&b, seq, true);
            if !filled.is_zero() {
                let (holding, realized) = b.holdings.fill(&key, signed, price);
                b.add_realized(&key.0, at, realized);
                self.journal_fill(&cid, &key, (signed, price, filled, realized), at, holding);
            }
        }
    }

    /// Records a fill: `(signed qty, price, the order's filled total, realized P&L)`.
    fn journal_fill(
        &self,
        cid: &ClientOrderId,
        (instance, symbol): &(InstanceId, Symbol),
        (qty, price, filled_total, realized): (Decimal, Decimal, Decimal, Decimal),
        at: DateTime<Utc>,
        holding: Holding,
    ) {
        if let Some(journal) = self.writer() {
            journal.record(Entry::Fill(Box::new(Fill {
                client_order_id: cid.as_str().to_owned(),
                instance: instance.clone(),
                symbol: symbol.clone(),
                qty,
                price,
                filled_total,
                realized,
                at,
                holding,
            })));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BookInner> {
        // A panic while holding the lock cannot leave a half-applied fill (updates are single
        // assignments after all checks), so a poisoned lock's data is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a decision about to be sent, or finds the record it already has.
    pub fn begin(
        &self,
        instance: &InstanceId,
        intent: &OrderIntent,
        client_order_id: ClientOrderId,
        lease_epoch: Option<u64>,
    ) -> Begin {
        let mut b = self.lock();
        if let Some(existing) = b.records.by_client_id(&client_order_id) {
            return Begin::Existing(existing.clone());
        }
        let now = Utc::now();
        let record = OrderRecord {
            instance: instance.clone(),
            client_order_id: client_order_id.clone(),
            order_id: None,
            symbol: intent.symbol.clone(),
            side: intent.side,
            qty: intent.qty,
            state: OrderState::Submitting,
            venue_status: None,
            submitted_at: None,
            filled_qty: Decimal::ZERO,
            filled_avg_price: None,
            decided_on: intent.decided_on,
            reason: intent.reason.clone(),
            error: None,
            created_at: now,
            updated_at: now,
            lease_epoch,
        };
        let seq = self.next_seq();
        b.records.insert(seq, record.clone());
        let ticket = self.journal_order(&b, seq, true);
        b.records.evict_final_beyond(KEEP_FINAL);
        Begin::New(record, ticket)
    }

    /// Applies what the venue says about one of herd's orders; returns the updated record and
    /// the newly filled quantity (0 when nothing new filled).
    pub fn apply_venue(
        &self,
        client_order_id: &ClientOrderId,
        order: &Order,
    ) -> Option<(OrderRecord, Decimal)> {
        let mut b = self.lock();
        let seq = b.records.seq_of(client_order_id)?;
        let (updated, newly_filled, fill_price, changed) = b.records.update(seq, |record| {
            // The venue said this order is done, and a done order never changes again: a
            // reading that says it works is older than that one (herd's readers — the
            // submission's answer, the listing, a lookup — may answer out of order). Taking it
            // would make the order work again in the book, and hold its symbol's lane and
            // reconciliation for nothing.
            if record.venue_status.is_some_and(OrderStatus::is_final) && !order.status.is_final() {
                return (record.clone(), Decimal::ZERO, Decimal::ZERO, false);
            }
            let newly_filled = (order.filled_qty - record.filled_qty).max(Decimal::ZERO);
            let fill_price = fill_price(record, order, newly_filled);
            let before = (
                record.state,
                record.venue_status,
                record.filled_qty,
                record.order_id.clone(),
            );
            record.order_id = Some(order.id.clone());
            record.venue_status = Some(order.status);
            record.submitted_at = Some(order.created_at);
            record.state = OrderState::from_venue(order.status);
            record.filled_qty = record.filled_qty.max(order.filled_qty);
            record.filled_avg_price = order.filled_avg_price.or(record.filled_avg_price);
            let changed = before
                != (
                    record.state,
                    record.venue_status,
                    record.filled_qty,
                    record.order_id.clone(),
                )
                || record.error.is_some();
            record.error = None;
            if changed {
                record.updated_at = Utc::now();
            }
            (record.clone(), newly_filled, fill_price, changed)
        })?;
        if changed {
            self.journal_order(&b, seq, true);
        }
        if !newly_filled.is_zero() {
            let key = (updated.instance.clone(), updated.symbol.clone());
            let signed = updated.signed(newly_filled);
            let (holding, realized) = b.holdings.fill(&key, signed, fill_price);
            // Venue time: the day the risk gate counts it in is the venue's.
            let at = order
                .filled_at
                .or(order.updated_at)
                .unwrap_or(order.created_at);
            b.add_realized(&key.0, at, realized);
            self.journal_fill(
                client_order_id,
                &key,
                (signed, fill_price, updated.filled_qty, realized),
                at,
                holding,
            );
        }
        Some((updated, newly_filled))
    }

    /// Changes the quantity of an order not sent yet, and says why in its reason; the ticket
    /// is the change's place in the journal.
    pub fn resize(
        &self,
        client_order_id: &ClientOrderId,
        qty: Decimal,
        note: &str,
    ) -> Option<(OrderRecord, Option<Ticket>)> {
        let mut b = self.lock();
        let seq = b.records.seq_of(client_order_id)?;
        let record = b.records.update(seq, |record| {
            record.qty = qty;
            record.reason = format!("{} ({note})", record.reason);
            record.updated_at = Utc::now();
            record.clone()
        })?;
        let ticket = self.journal_order(&b, seq, false);
        Some((record, ticket))
    }

    /// Marks an order refused, rejected or unknown, with the reason.
    pub fn mark(
        &self,
        client_order_id: &ClientOrderId,
        state: OrderState,
        error: String,
    ) -> Option<OrderRecord> {
        let mut b = self.lock();
        let seq = b.records.seq_of(client_order_id)?;
        let record = b.records.update(seq, |record| {
            record.state = state;
            record.error = Some(error);
            record.updated_at = Utc::now();
            record.clone()
        })?;
        self.journal_order(&b, seq, true);
        Some(record)
    }

    /// This instance's holdings and signed pending quantities for `symbols`.
    pub fn instance_view(
        &self,
        instance: &InstanceId,
        symbols: &[Symbol],
    ) -> (SymbolMap<Holding>, SymbolMap<Decimal>) {
        let b = self.lock();
        let positions = symbols
            .iter()
            .filter_map(|s| {
                let h = b.holdings.get(&(instance.clone(), s.clone()))?;
                Some((s.clone(), *h))
            })
            .collect();
        let mut pending: SymbolMap<Decimal> = SymbolMap::default();
        for r in b.records.working_of(instance) {
            *pending.entry(r.symbol.clone()).or_default() += r.signed(r.qty - r.filled_qty);
        }
        (positions, pending)
    }

    /// P&L realized on venue day `day`: by `instance`, and by every instance together.
    pub fn realized_on(&self, instance: &InstanceId, day: NaiveDate) -> (Decimal, Decimal) {
        let b = self.lock();
        b.realized
            .get(&day)
            .map_or((Decimal::ZERO, Decimal::ZERO), |d| {
                let own = d.by_instance.get(instance).copied().unwrap_or_default();
                (own, d.total)
            })
    }

    /// Every instance's holding in every symbol it has traded, by instance then symbol.
    pub fn holdings(&self) -> Vec<(InstanceId, Symbol, Holding)> {
        let mut all: Vec<_> = self
            .lock()
            .holdings
            .iter()
            .map(|((i, s), h)| (i.clone(), s.clone(), *h))
            .collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    pub fn get(&self, client_order_id: &ClientOrderId) -> Option<OrderRecord> {
        self.lock().records.by_client_id(client_order_id).cloned()
    }

    /// Orders a previous broker incarnation was still submitting: nobody will report their
    /// outcome, so they become `Unknown`, which the refresh looks up by `client_order_id`.
    /// Returns how many.
    pub fn orphan_submitting(&self) -> usize {
        let mut b = self.lock();
        let now = Utc::now();
        let orphaned: Vec<u64> = b
            .records
            .working()
            .filter(|(_, r)| r.state == OrderState::Submitting)
            .map(|(seq, _)| seq)
            .collect();
        for seq in &orphaned {
            b.records.update(*seq, |record| {
                record.state = OrderState::Unknown;
                record.error = Some("the broker restarted while submitting it".into());
                record.updated_at = now;
            });
        }
        for seq in &orphaned {
            self.journal_order(&b, *seq, true);
        }
        orphaned.len()
    }

    /// Records that are not final, oldest first: to be looked up at the venue.
    pub fn unsettled(&self) -> Vec<OrderRecord> {
        self.lock()
            .records
            .working()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The newest `limit` records matching `filter` that are older than the cursor `before`.
    pub fn page(&self, filter: &OrderFilter, limit: usize, before: Option<u64>) -> OrdersPage {
        let b = self.lock();
        let mut matching = b
            .records
            .older_than(before.unwrap_or(u64::MAX))
            .filter(|(_, r)| filter.matches(r));
        let orders: Vec<(u64, OrderRecord)> = matching
            .by_ref()
            .take(limit)
            .map(|(seq, r)| (seq, r.clone()))
            .collect();
        // A cursor only when there is more: the sequence of the oldest record on this page.
        let next = orders
            .last()
            .map(|(seq, _)| *seq)
            .filter(|_| matching.next().is_some());
        OrdersPage {
            orders: orders.into_iter().map(|(_, r)| r).collect(),
            next,
        }
    }
}

/// Which orders `/orders` lists; every field set must match.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub instance: Option<InstanceId>,
    pub symbol: Option<Symbol>,
    pub state: Option<OrderState>,
}

impl OrderFilter {
    fn matches(&self, r: &OrderRecord) -> bool {
        self.instance.as_ref().is_none_or(|i| *i == r.instance)
            && self.symbol.as_ref().is_none_or(|s| *s == r.symbol)
            && self.state.is_none_or(|s| s == r.state)
    }
}

/// One page of `/orders`, newest first; `next` is the cursor for the page after it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrdersPage {
    pub orders: Vec<OrderRecord>,
    pub next: Option<u64>,
}

/// The price of the part of an order that filled since it was last read: the venue reports the
/// average of all fills so far, so the new part's price is what moves that average. Without a
/// reported price (a venue quirk) the order's own average stands in, or the last one known.
fn fill_price(record: &OrderRecord, order: &Order, newly_filled: Decimal) -> Decimal {
    let now = order.filled_avg_price;
    let before = record.filled_avg_price.unwrap_or_default();
    match now {
        Some(avg) if !newly_filled.is_zero() => {
            let total = order.filled_qty * avg - record.filled_qty * before;
            let price = total / newly_filled;
            if price > Decimal::ZERO { price } else { avg }
        }
        Some(avg) => avg,
        None => before,
    }
}

#[cfg(test)]
mod tests;
