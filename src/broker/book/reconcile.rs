//! Comparing the account's positions at the venue with what herd's own fills explain.
//!
//! The venue is the source of truth for what the account holds; the book for which instance
//! holds what. Expected per symbol: the positions herd did not make (read once, at the first
//! reading ever — the account minus herd's own holdings — and kept in the journal) plus the sum of
//! every instance's holding. A difference is a mismatch: someone else traded the account, or a
//! fill was missed. It is reported, never silently overwritten.
//!
//! Invariants:
//! - A symbol with one of herd's orders still working is not compared: the venue may be
//!   mid-fill, and a difference then is the fill in transit, not a mismatch. Such a symbol is
//!   listed as unsettled, so "no mismatches" is never mistaken for "all compared".
//! - Views and orders compare a reading once ([`OrderBook::first_sight`]), however many of
//!   them share it.
//! - [`Reconciliation::changed`] is true only when the set of mismatched symbols changed since
//!   the previous reading, so a lasting mismatch is logged once, not on every tick.

use std::collections::BTreeSet;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Serialize;

use super::{OrderBook, Symbol};
use crate::broker::alpaca::models::Position;
use crate::domain::SymbolMap;
use crate::journal::Entry;

/// One symbol whose account position herd cannot explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub symbol: Symbol,
    /// What the venue says the account holds.
    pub account: Decimal,
    /// `external + herd`.
    pub expected: Decimal,
    /// The sum of every instance's holding.
    pub herd: Decimal,
    /// What the account held before herd traded.
    pub external: Decimal,
}

/// The outcome of one reading of the account's positions.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    pub mismatches: Vec<Mismatch>,
    /// Symbols not compared because one of herd's orders for them is still working.
    pub unsettled: Vec<Symbol>,
    /// The set of mismatched symbols differs from the previous reading's.
    pub changed: bool,
}

impl OrderBook {
    /// Compares a reading of the account's positions with herd's expectation (the first reading
    /// also records the positions herd did not make).
    pub fn reconcile(&self, held: &[Position]) -> Reconciliation {
        let account: SymbolMap<Decimal> = held
            .iter()
            .filter_map(|p| Some((Symbol::parse(&p.symbol).ok()?, p.qty)))
            .collect();
        let mut b = self.lock();
        let herd = b.holdings.totals().clone();
        let external = match &b.external {
            Some(external) => external.clone(),
            None => {
                // What the account holds beyond herd's own holdings (restored from the journal
                // or rebuilt from the venue's history) is what herd did not make.
                let mut external = account.clone();
                for (symbol, qty) in &herd {
                    *external.entry(symbol.clone()).or_default() -= *qty;
                }
                external.retain(|_, q| !q.is_zero());
                if let Some(journal) = self.writer() {
                    journal.record(Entry::State {
                        key: self.external_key.clone(),
                        value: serde_json::to_string(&external).ok(),
                    });
                }
                b.external = Some(external.clone());
                external
            }
        };
        let working: BTreeSet<Symbol> = b
            .records
            .working_any_order()
            .map(|r| r.symbol.clone())
            .collect();
        let symbols: BTreeSet<&Symbol> = account
            .keys()
            .chain(herd.keys())
            .chain(external.keys())
            .collect();
        let get = |m: &SymbolMap<Decimal>, s: &Symbol| m.get(s).copied().unwrap_or_default();
        let mismatches: Vec<Mismatch> = symbols
            .into_iter()
            .filter(|s| !working.contains(*s))
            .filter_map(|s| {
                let (acc, h, ext) = (get(&account, s), get(&herd, s), get(&external, s));
                (acc != ext + h).then(|| Mismatch {
                    symbol: s.clone(),
                    account: acc,
                    expected: ext + h,
                    herd: h,
                    external: ext,
                })
            })
            .collect();
        let now: BTreeSet<Symbol> = mismatches.iter().map(|m| m.symbol.clone()).collect();
        let changed = now != b.mismatched;
        b.mismatched = now;
        Reconciliation {
            mismatches,
            unsettled: working.into_iter().collect(),
            changed,
        }
    }

    /// Whether `held` is a reading of the account no view or order has compared yet (from now
    /// on it has). Every view and every order's risk inputs taken while a reading is cached
    /// share it, and the comparison walks every symbol the account and herd hold under the
    /// book's lock: once per view and order, N trading instances cost N² steps a cycle.
    /// Comparing the same reading again would add nothing: herd's accepted orders and fills
    /// invalidate the reading, so the next view or order reads the account afresh; and a
    /// reading is cached for half a second, so a symbol left out while an order for it worked
    /// is compared at the next reading.
    pub fn first_sight(&self, held: &Arc<[Position]>) -> bool {
        let mut b = self.lock();
        if b.seen.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, held)) {
            return false;
        }
        b.seen = Some(Arc::clone(held));
        true
    }

    /// What herd expects the account to hold in `symbol`: the positions it did not make plus
    /// every instance's holding.
    pub fn expected_position(&self, symbol: &Symbol) -> Decimal {
        let b = self.lock();
        let external = b
            .external
            .as_ref()
            .and_then(|e| e.get(symbol).copied())
            .unwrap_or_default();
        external + b.holdings.total(symbol)
    }

    /// The positions the account held before herd traded (empty before the first reading).
    pub fn external_positions(&self) -> Vec<(Symbol, Decimal)> {
        let b = self.lock();
        let mut all: Vec<_> = b
            .external
            .iter()
            .flatten()
            .filter(|(_, q)| !q.is_zero())
            .map(|(s, q)| (s.clone(), *q))
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::broker::alpaca::models::{Order, OrderStatus};
    use crate::domain::{ClientOrderId, InstanceId, OrderIntent, Side};

    fn held(positions: &[(&str, i64)]) -> Vec<Position> {
        positions
            .iter()
            .map(|(s, q)| {
                serde_json::from_value(serde_json::json!({
                    "symbol": s, "qty": q.to_string(), "avg_entry_price": "100"
                }))
                .unwrap()
            })
            .collect()
    }

    fn fill(book: &OrderBook, instance: &str, cid: &str, side: Side, qty: i64) {
        let intent = OrderIntent {
            symbol: Symbol::parse("SPY").unwrap(),
            side,
            qty: Decimal::from(qty),
            decided_on: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap(),
            reference_price: Some(100.0),
            reason: "test".into(),
        };
        let cid = ClientOrderId::new(cid.into());
        book.begin(
            &InstanceId::parse(instance).unwrap(),
            &intent,
            cid.clone(),
            None,
        );
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": "6f1c1f4e-0000-4000-8000-000000000001", "client_order_id": cid.as_str(),
            "symbol": "SPY", "qty": qty.to_string(), "filled_qty": qty.to_string(),
            "filled_avg_price": "100", "side": side.as_str(), "type": "market",
            "status": OrderStatus::Filled, "created_at": "2026-03-02T15:00:00Z"
        }))
        .unwrap();
        book.apply_venue(&cid, &order);
    }

    #[test]
    fn positions_herd_did_not_make_plus_every_instances_holding_reconcile() {
        let book = OrderBook::new();
        let first = book.reconcile(&held(&[("SPY", 5)]));
        assert!(
            first.mismatches.is_empty(),
            "the first reading is the baseline"
        );
        fill(&book, "a", "c1", Side::Buy, 10);
        fill(&book, "b", "c2", Side::Sell, 3);
        let spy = Symbol::parse("SPY").unwrap();
        assert_eq!(book.expected_position(&spy), Decimal::from(12));
        let fine = book.reconcile(&held(&[("SPY", 12)]));
        assert!(fine.mismatches.is_empty() && !fine.changed);
        assert_eq!(book.external_positions(), [(spy.clone(), Decimal::from(5))]);
    }

    #[test]
    fn a_difference_is_reported_once_when_it_appears_and_once_when_it_goes() {
        let book = OrderBook::new();
        book.reconcile(&[]);
        fill(&book, "a", "c1", Side::Buy, 10);
        let off = book.reconcile(&held(&[("SPY", 4)]));
        assert!(off.changed);
        assert_eq!(off.mismatches.len(), 1);
        let m = &off.mismatches[0];
        assert_eq!(
            (m.account, m.expected, m.herd),
            (Decimal::from(4), Decimal::from(10), Decimal::from(10))
        );
        assert!(
            !book.reconcile(&held(&[("SPY", 4)])).changed,
            "a lasting mismatch is news once"
        );
        let back = book.reconcile(&held(&[("SPY", 10)]));
        assert!(back.changed && back.mismatches.is_empty());
    }

    #[test]
    fn a_symbol_with_a_working_order_is_not_compared() {
        let book = OrderBook::new();
        book.reconcile(&[]);
        let intent = OrderIntent {
            symbol: Symbol::parse("SPY").unwrap(),
            side: Side::Buy,
            qty: Decimal::from(10),
            decided_on: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap(),
            reference_price: Some(100.0),
            reason: "test".into(),
        };
        let a = InstanceId::parse("a").unwrap();
        book.begin(&a, &intent, ClientOrderId::new("working".into()), None);
        let mid_fill = book.reconcile(&held(&[("SPY", 6)]));
        assert!(mid_fill.mismatches.is_empty());
        assert_eq!(
            mid_fill.unsettled,
            [Symbol::parse("SPY").unwrap()],
            "and it says which it did not compare"
        );
    }
}
