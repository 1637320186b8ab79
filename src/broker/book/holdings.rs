//! Every instance's holding per symbol, and herd's total per symbol beside it, so what the
//! account should hold in a symbol is one lookup instead of a walk over every holding.
//!
//! Invariant: holdings change only through [`Holdings::insert`] and [`Holdings::fill`], which
//! move the symbol's total by the change of the holding's quantity; decimal arithmetic is
//! exact, so the total always equals the sum of the holdings.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::domain::{Holding, InstanceId, Symbol, SymbolMap};

/// Whose holding of what.
pub(super) type HoldingKey = (InstanceId, Symbol);

#[derive(Default)]
pub(super) struct Holdings {
    each: HashMap<HoldingKey, Holding>,
    /// The sum of every instance's quantity, by symbol.
    totals: SymbolMap<Decimal>,
}

impl Holdings {
    pub fn get(&self, key: &HoldingKey) -> Option<&Holding> {
        self.each.get(key)
    }

    /// Every holding, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&HoldingKey, &Holding)> {
        self.each.iter()
    }

    /// The sum of every instance's quantity of each symbol held or once held.
    pub fn totals(&self) -> &SymbolMap<Decimal> {
        &self.totals
    }

    /// The sum of every instance's quantity of `symbol`.
    pub fn total(&self, symbol: &Symbol) -> Decimal {
        self.totals.get(symbol).copied().unwrap_or_default()
    }

    /// Sets a holding as a journal recorded it.
    pub fn insert(&mut self, key: HoldingKey, holding: Holding) {
        let before = self.each.get(&key).map_or(Decimal::ZERO, |h| h.qty);
        *self.totals.entry(key.1.clone()).or_default() += holding.qty - before;
        self.each.insert(key, holding);
    }

    /// Applies a fill of `signed` shares at `price` to a holding; returns the holding after
    /// it and the P&L the fill realized.
    pub fn fill(
        &mut self,
        key: &HoldingKey,
        signed: Decimal,
        price: Decimal,
    ) -> (Holding, Decimal) {
        let holding = self.each.entry(key.clone()).or_default();
        let before = *holding;
        holding.apply(signed, price);
        let after = *holding;
        *self.totals.entry(key.1.clone()).or_default() += after.qty - before.qty;
        (after, after.realized_pnl - before.realized_pnl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbols_total_is_the_sum_of_every_instances_holding() {
        let mut holdings = Holdings::default();
        let key = |i: &str, s: &str| (InstanceId::parse(i).unwrap(), Symbol::parse(s).unwrap());
        let (spy, qqq) = (Symbol::parse("SPY").unwrap(), Symbol::parse("QQQ").unwrap());
        holdings.insert(
            key("a", "SPY"),
            Holding {
                qty: Decimal::from(5),
                avg_price: Decimal::from(100),
                realized_pnl: Decimal::ZERO,
            },
        );
        holdings.fill(&key("b", "SPY"), Decimal::from(3), Decimal::from(100));
        holdings.fill(&key("b", "QQQ"), Decimal::from(-2), Decimal::from(50));
        assert_eq!(holdings.total(&spy), Decimal::from(8));
        // Selling 5 at 110 closes a's holding at a profit of 50.
        let (after, realized) =
            holdings.fill(&key("a", "SPY"), Decimal::from(-5), Decimal::from(110));
        assert_eq!((after.qty, realized), (Decimal::ZERO, Decimal::from(50)));
        // A journal's later record of a holding replaces it.
        holdings.insert(
            key("b", "SPY"),
            Holding {
                qty: Decimal::from(1),
                ..Holding::default()
            },
        );
        assert_eq!(holdings.total(&spy), Decimal::from(1));
        assert_eq!(holdings.total(&qqq), Decimal::from(-2));
        for symbol in [&spy, &qqq] {
            let walked: Decimal = holdings
                .iter()
                .filter(|((_, s), _)| s == symbol)
                .map(|(_, h)| h.qty)
                .sum();
            assert_eq!(holdings.total(symbol), walked);
        }
    }
}
