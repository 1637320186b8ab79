//! What strategies and the broker exchange, and what the operator allows.
//!
//! A strategy core reads a [`MarketView`] and answers [`Decision`]s; the broker places the
//! [`OrderIntent`]s among them while the [`Trading`] state allows. Both sides of that protocol
//! import these types from here, so neither lives in the other's room.
//!
//! Invariant: an [`OrderIntent`] carries everything its `client_order_id` is derived from
//! (instance aside): the same decision always names the same bar.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Bar, Holding, InstanceId, Side, Symbol, SymbolMap, Timeframe};

/// The market data a core needs on every tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataNeeds {
    pub timeframe: Timeframe,
    /// How many of the newest closed bars per symbol.
    pub bars: usize,
    /// Whether the account snapshot is needed.
    pub account: bool,
    /// Skip the tick while the market is closed (the seeds' clock check).
    pub only_when_open: bool,
}

/// Everything a core may look at, as of one moment of venue time.
#[derive(Debug, Clone, Default)]
pub struct MarketView {
    /// The venue's clock.
    pub now: DateTime<Utc>,
    pub market_open: bool,
    /// Closed bars per symbol, oldest first, newest last.
    pub bars: SymbolMap<Arc<[Bar]>>,
    /// This instance's own holding per symbol, from its own fills (quantity negative when short).
    pub positions: SymbolMap<Holding>,
    /// Signed quantity of this instance's orders that are not final yet.
    pub pending: SymbolMap<Decimal>,
    pub account: Option<AccountSnapshot>,
    /// The books of the instances this one guards (`Strategy::guards`), by instance.
    pub guarded: HashMap<InstanceId, GuardedBook>,
    /// The venue's current price of each symbol this instance or a book it guards holds, where
    /// the account holds it too (the positions reading's `current_price`). Fresher than any
    /// final bar: a daily bar is a day old all day. Stops and P&L are judged at it; decisions
    /// on signals stay on final bars.
    pub marks: SymbolMap<Decimal>,
}

/// A guarded instance's holdings and the signed quantity of its orders not yet final.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardedBook {
    pub positions: SymbolMap<Holding>,
    pub pending: SymbolMap<Decimal>,
}

impl MarketView {
    pub fn bars(&self, symbol: &Symbol) -> &[Bar] {
        self.bars.get(symbol).map_or(&[], |b| b)
    }

    /// This instance's signed quantity in `symbol` (0 when flat).
    pub fn position(&self, symbol: &Symbol) -> Decimal {
        self.holding(symbol).qty
    }

    pub fn holding(&self, symbol: &Symbol) -> Holding {
        self.positions.get(symbol).copied().unwrap_or_default()
    }

    /// The newest close of `symbol`, if there is a bar.
    pub fn last_close(&self, symbol: &Symbol) -> Option<f64> {
        self.bars(symbol).last().map(|b| b.close)
    }

    pub fn has_pending(&self, symbol: &Symbol) -> bool {
        self.pending.get(symbol).is_some_and(|q| !q.is_zero())
    }
}

/// Account figures as the broker last reported them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccountSnapshot {
    pub equity: Decimal,
    pub cash: Decimal,
    pub buying_power: Decimal,
}

/// What a core concluded about one symbol on one tick.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// The instance the decision is about when it is not the deciding one (a risk manager
    /// closing a guarded instance's position); its orders are that instance's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceId>,
    pub symbol: Symbol,
    /// The strategy's signal value (momentum, z-score, …) when it could compute one.
    pub signal: Option<f64>,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Order(OrderIntent),
    Hold {
        reason: &'static str,
    },
    /// Not enough bars to decide.
    NoData {
        have: usize,
        need: usize,
    },
}

/// An order a core wants placed. The broker derives its `client_order_id` from
/// (instance, symbol, side, `decided_on`), so the same decision can never become two orders.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrderIntent {
    /// Not written out: an intent is only ever written flattened into its [`Decision`], which
    /// names the symbol already, and a JSON object should name each key once (RFC 8259; a
    /// strict parser refuses a repeated one).
    #[serde(skip_serializing)]
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Decimal,
    /// Start time of the newest bar the decision was made on.
    pub decided_on: DateTime<Utc>,
    /// The price the decision saw (the newest close): the risk gate values the order with it.
    pub reference_price: Option<f64>,
    /// Why, for the order log.
    pub reason: String,
}

/// What the operator allows right now (the admin halt switch sets it). Ordered from the most to
/// the least permissive, so "tighter" is "greater".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TradingState {
    Active,
    /// Only orders that reduce exposure: wind down without opening anything new.
    Reducing,
    /// No order at all.
    Halted,
}

impl TradingState {
    pub const ALL: &[TradingState] = &[Self::Active, Self::Reducing, Self::Halted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Reducing => "reducing",
            Self::Halted => "halted",
        }
    }
}

/// The trading state and why it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trading {
    pub state: TradingState,
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn an_order_decision_names_each_key_once() {
        let symbol = Symbol::parse("SPY").unwrap();
        let decision = Decision {
            instance: None,
            symbol: symbol.clone(),
            signal: Some(0.5),
            action: Action::Order(OrderIntent {
                symbol,
                side: Side::Buy,
                qty: Decimal::ONE,
                decided_on: Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap(),
                reference_price: Some(100.0),
                reason: "momentum above threshold".to_owned(),
            }),
        };
        let text = serde_json::to_string(&decision).unwrap();
        // serde_json keeps the last of a repeated key, so count the keys in the text itself.
        let keys: Vec<&str> = text
            .split('"')
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[1].starts_with(':'))
            .map(|w| w[0])
            .collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(keys.len(), unique.len(), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["symbol"], "SPY");
        assert_eq!(value["action"], "order");
        assert_eq!(value["side"], "buy");
    }
}
