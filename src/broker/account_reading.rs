//! What a view takes from the account's positions reading: an instance's holdings bounded by
//! what the account holds, and the venue's current prices that mark them.
//!
//! Invariants:
//! - An instance sees its own position, never more than the account holds on that side, so it
//!   cannot try to sell shares the account does not have. That capping is logged when it starts
//!   and summarized once a minute (`CAPPED`, this module's one piece of shared state).
//! - A price is the venue's for the moment of the reading, and only for a symbol the account
//!   holds: a symbol it does not hold has none here (its instances' holdings net to zero).

use std::collections::HashMap;
use std::sync::LazyLock;

use rust_decimal::Decimal;

use super::alpaca::models::Position;
use crate::domain::{
    GuardedBook, Holding, InstanceId, REPEAT_SUMMARY, Repeats, Say, Symbol, SymbolMap,
};

/// An instance's own holdings as the account bears them out. While the account holds what herd
/// `expected` (its instances' holdings plus the positions it did not make), each holding stands
/// as its fills built it (two instances may hold opposite sides of one symbol, which nets at the
/// venue). When they differ — someone else
/// traded the account, or a fill was missed — an instance sees no more than the account holds
/// on its side, so it cannot try to sell shares the account does not have.
pub fn cap_to_account(
    own: SymbolMap<Holding>,
    held: &[Position],
    expected: impl Fn(&Symbol) -> Decimal,
) -> SymbolMap<Holding> {
    own.into_iter()
        .map(|(symbol, mut holding)| {
            let account = account_position(held, &symbol);
            if expected(&symbol) == account {
                return (symbol, holding);
            }
            let qty = holding.qty;
            let capped = if qty > Decimal::ZERO {
                qty.min(account.max(Decimal::ZERO))
            } else {
                qty.max(account.min(Decimal::ZERO))
            };
            if capped != qty {
                match CAPPED.note() {
                    Say::Started { earlier } => tracing::warn!(
                        event = "position_capped", symbol = %symbol, own = %qty, account = %account,
                        earlier_unreported = earlier,
                        "instance position exceeds the account's; using the account's (repeats are summarized once a minute)"
                    ),
                    Say::Summary { count, over } => tracing::warn!(
                        event = "position_capped", capped = count, seconds = over.as_secs(),
                        "instance positions exceeded the account's; the account's were used"
                    ),
                    Say::Quiet => {}
                }
                holding.qty = capped;
            }
            (symbol, holding)
        })
        .collect()
}

/// Every instance's view caps its positions on every tick while the account holds less than
/// herd expects (it was flattened from outside): process-wide, so that condition is two log
/// lines a minute, not one per instance and tick. The one piece of shared state in this module.
static CAPPED: LazyLock<Repeats> = LazyLock::new(|| Repeats::new(REPEAT_SUMMARY));

/// The venue's current price of each symbol the account holds, from a positions reading.
/// Alpaca's position carries it as `current_price`, "current asset price per share", optional
/// (alpaca-py 0.44.0, `alpaca/trading/models.py`, `Position`); the simulator sends its
/// market's price at the venue time of the reading. Built once per reading, for every view
/// that reads it.
pub fn current_prices(held: &[Position]) -> HashMap<&str, Decimal> {
    held.iter()
        .filter_map(|p| Some((p.symbol.as_str(), p.current_price?)))
        .collect()
}

/// The current price of each symbol an instance or a book it guards holds (`prices` from
/// [`current_prices`]). A symbol the account does not hold has none: its instances' holdings
/// net to zero there.
pub fn marks<'a>(
    own: &'a SymbolMap<Holding>,
    guarded: &'a HashMap<InstanceId, GuardedBook>,
    prices: &HashMap<&str, Decimal>,
) -> SymbolMap<Decimal> {
    let held = own.iter().filter(|(_, h)| !h.qty.is_zero()).map(|(s, _)| s);
    held.chain(guarded.values().flat_map(|book| book.positions.keys()))
        .filter_map(|symbol| Some((symbol.clone(), *prices.get(symbol.as_str())?)))
        .collect()
}

/// The account's signed position in `symbol` (0 when it holds none).
pub fn account_position(held: &[Position], symbol: &Symbol) -> Decimal {
    held.iter()
        .find(|p| p.symbol == symbol.as_str())
        .map_or(Decimal::ZERO, |p| p.qty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_position_is_capped_by_the_account_unless_herd_accounts_for_all_of_it() {
        let spy = Symbol::parse("SPY").unwrap();
        let held: Vec<Position> = serde_json::from_value(serde_json::json!([
            {"symbol":"SPY","qty":"4","avg_entry_price":"100"}
        ]))
        .unwrap();
        let own = |qty: i64| {
            let mut h = Holding::default();
            h.apply(Decimal::from(qty), Decimal::from(100));
            SymbolMap::from_iter([(spy.clone(), h)])
        };
        let unknown = |_: &Symbol| Decimal::from(99);
        assert_eq!(
            cap_to_account(own(10), &held, unknown)[&spy].qty,
            Decimal::from(4)
        );
        assert_eq!(
            cap_to_account(own(3), &held, unknown)[&spy].qty,
            Decimal::from(3)
        );
        assert_eq!(
            cap_to_account(own(3), &[], unknown)[&spy].qty,
            Decimal::ZERO
        );
        // Two instances, +10 and −6: the account's +4 is theirs, and each keeps its own side.
        let netted = |_: &Symbol| Decimal::from(4);
        assert_eq!(
            cap_to_account(own(-6), &held, netted)[&spy].qty,
            Decimal::from(-6)
        );
        assert_eq!(
            cap_to_account(own(10), &held, netted)[&spy].qty,
            Decimal::from(10)
        );
    }

    #[test]
    fn marks_are_the_current_prices_of_what_the_instance_and_its_guarded_books_hold() {
        let sym = |s: &str| Symbol::parse(s).unwrap();
        // The account holds SPY, TLT and GLD; GLD's reading has no current price.
        let held: Vec<Position> = serde_json::from_value(serde_json::json!([
            {"symbol":"SPY","qty":"4","avg_entry_price":"550","current_price":"592.5"},
            {"symbol":"TLT","qty":"10","avg_entry_price":"95","current_price":"94.8"},
            {"symbol":"GLD","qty":"1","avg_entry_price":"230"}
        ]))
        .unwrap();
        let prices = current_prices(&held);
        let holding = |qty: i64| {
            let mut h = Holding::default();
            h.apply(Decimal::from(qty), Decimal::from(100));
            h
        };
        // Its own SPY and GLD, a closed-out IWM (zero, with realized P&L), and QQQ the
        // account does not hold; a guarded instance's TLT.
        let own = SymbolMap::from_iter([
            (sym("SPY"), holding(4)),
            (sym("GLD"), holding(1)),
            (sym("IWM"), Holding::default()),
            (sym("QQQ"), holding(2)),
        ]);
        let guarded = HashMap::from([(
            InstanceId::parse("opt").unwrap(),
            GuardedBook {
                positions: SymbolMap::from_iter([(sym("TLT"), holding(10))]),
                pending: SymbolMap::default(),
            },
        )]);
        let marks = marks(&own, &guarded, &prices);
        assert_eq!(
            marks,
            SymbolMap::from_iter([
                (sym("SPY"), Decimal::new(5925, 1)),
                (sym("TLT"), Decimal::new(948, 1)),
            ])
        );
    }
}
