//! One brokerage account: cash, positions, orders, and the arithmetic of buying power.
//!
//! Margin model (Reg T-like, as Alpaca reports it): `equity = cash + long_market_value +
//! short_market_value` (short value negative); `initial_margin = gross exposure / multiplier`;
//! `buying_power = max(equity − initial_margin, 0) × multiplier − reserved`, where `reserved`
//! is what open orders that add exposure would cost. With multiplier 1 this is the cash.
//!
//! Invariants:
//! - A position's `qty` is signed (negative = short) and never zero (flat positions are removed).
//! - `client_order_id`s are unique within the account for all time, cancelled orders included.
//! - Orders are kept in submission order; indexes by id and client id point into that list.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::matching::Fill;
use super::order::{Amount, Order, OrderType, Side};

/// A position in one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub symbol: String,
    pub asset_id: Uuid,
    /// Signed shares: negative for a short position.
    pub qty: Decimal,
    pub avg_entry_price: Decimal,
}

/// Market values of an account at some prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Valuation {
    pub long_market_value: Decimal,
    /// Negative (or zero), as Alpaca reports it.
    pub short_market_value: Decimal,
    pub equity: Decimal,
}

impl Valuation {
    pub fn gross(&self) -> Decimal {
        self.long_market_value - self.short_market_value
    }
}

pub struct Account {
    pub id: Uuid,
    pub number: String,
    pub created_at: DateTime<Utc>,
    pub cash: Decimal,
    pub positions: BTreeMap<String, Position>,
    /// All orders ever placed, in submission order.
    pub orders: Vec<Order>,
    /// Orders another client placed that this simulator does not trade (multi-leg options
    /// orders), kept in the wire form Alpaca lists them in.
    pub foreign: Vec<serde_json::Value>,
    by_id: HashMap<Uuid, usize>,
    by_client: HashMap<String, usize>,
    next_seq: u64,
    /// Equity at the close of `equity_day` (Alpaca's `last_equity`).
    pub last_equity: Decimal,
    pub equity_day: NaiveDate,
}

impl Account {
    pub fn new(cash: Decimal, now: DateTime<Utc>, equity_day: NaiveDate) -> Self {
        let id = Uuid::new_v4();
        let digits: String = id.simple().to_string().chars().take(9).collect();
        Self {
            id,
            number: format!("SIM{}", digits.to_uppercase()),
            created_at: now,
            cash,
            positions: BTreeMap::new(),
            orders: Vec::new(),
            foreign: Vec::new(),
            by_id: HashMap::new(),
            by_client: HashMap::new(),
            next_seq: 0,
            last_equity: cash,
            equity_day,
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn client_id_used(&self, client_order_id: &str) -> bool {
        self.by_client.contains_key(client_order_id)
    }

    pub fn insert_order(&mut self, order: Order) {
        let i = self.orders.len();
        self.by_id.insert(order.id, i);
        self.by_client.insert(order.client_order_id.clone(), i);
        self.orders.push(order);
    }

    pub fn order(&self, id: Uuid) -> Option<&Order> {
        self.orders.get(*self.by_id.get(&id)?)
    }

    pub fn order_mut(&mut self, id: Uuid) -> Option<&mut Order> {
        self.orders.get_mut(*self.by_id.get(&id)?)
    }

    pub fn order_by_client(&self, client_order_id: &str) -> Option<&Order> {
        self.orders.get(*self.by_client.get(client_order_id)?)
    }

    /// Signed position in `symbol` (0 when flat).
    pub fn position_qty(&self, symbol: &str) -> Decimal {
        self.positions
            .get(symbol)
            .map(|p| p.qty)
            .unwrap_or(Decimal::ZERO)
    }

    /// Shares of `symbol` that open orders on `side` still want.
    pub fn open_qty(&self, symbol: &str, side: Side) -> Decimal {
        self.orders
            .iter()
            .filter(|o| o.status.is_open() && o.symbol == symbol && o.side == side)
            .map(|o| o.remaining().unwrap_or(Decimal::ZERO))
            .sum()
    }

    /// Shares of the position free to close: |qty| less what open closing orders hold.
    pub fn qty_available(&self, symbol: &str) -> Decimal {
        let qty = self.position_qty(symbol);
        let closing = if qty > Decimal::ZERO {
            Side::Sell
        } else {
            Side::Buy
        };
        (qty.abs() - self.open_qty(symbol, closing)).max(Decimal::ZERO)
    }

    /// Books a fill: cash, position and average entry price.
    pub fn apply_fill(&mut self, symbol: &str, asset_id: Uuid, side: Side, fill: &Fill) {
        let dq = side.sign() * fill.qty;
        self.cash -= dq * fill.price;
        let pos = self
            .positions
            .entry(symbol.to_string())
            .or_insert_with(|| Position {
                symbol: symbol.to_string(),
                asset_id,
                qty: Decimal::ZERO,
                avg_entry_price: fill.price,
            });
        let old = pos.qty;
        let new = old + dq;
        if old.is_zero() || old.is_sign_positive() == dq.is_sign_positive() {
            // Opening or adding: weighted average entry.
            let total = old.abs() + dq.abs();
            pos.avg_entry_price =
                ((old.abs() * pos.avg_entry_price + dq.abs() * fill.price) / total).round_dp(6);
        } else if new.abs() > Decimal::ZERO && new.is_sign_positive() != old.is_sign_positive() {
            // Flipped through zero: the remainder opened at this price.
            pos.avg_entry_price = fill.price;
        }
        pos.qty = new;
        if new.is_zero() {
            self.positions.remove(symbol);
        }
    }

    /// Market values at the prices `price_of` gives.
    pub fn valuation(&self, mut price_of: impl FnMut(&str) -> Decimal) -> Valuation {
        let mut long = Decimal::ZERO;
        let mut short = Decimal::ZERO;
        for p in self.positions.values() {
            let value = p.qty * price_of(&p.symbol);
            if p.qty > Decimal::ZERO {
                long += value;
            } else {
                short += value;
            }
        }
        Valuation {
            long_market_value: long,
            short_market_value: short,
            equity: self.cash + long + short,
        }
    }

    /// Shares of an order on `side` for `qty` that add exposure given the current position
    /// (the part beyond closing it).
    pub fn increasing_qty(&self, symbol: &str, side: Side, qty: Decimal) -> Decimal {
        let pos = self.position_qty(symbol);
        let closable = match side {
            Side::Buy => (-pos).max(Decimal::ZERO),
            Side::Sell => pos.max(Decimal::ZERO),
        };
        (qty - closable).max(Decimal::ZERO)
    }

    /// What open orders adding exposure would cost, priced by `estimate` (shares → price).
    pub fn reserved(&self, mut estimate: impl FnMut(&Order) -> Decimal) -> Decimal {
        self.orders
            .iter()
            .filter(|o| o.status.is_open())
            .map(|o| match (o.amount, o.resolved_qty) {
                (Amount::Notional(n), None) => n,
                _ => {
                    let rest = o.remaining().unwrap_or(Decimal::ZERO);
                    self.increasing_qty(&o.symbol, o.side, rest) * estimate(o)
                }
            })
            .sum()
    }
}

/// The price an order is expected to fill at, for reservations: its limit, else its stop,
/// else the current price.
pub fn expected_price(
    order_type: OrderType,
    limit: Option<Decimal>,
    stop: Option<Decimal>,
    current: Decimal,
) -> Decimal {
    match order_type {
        OrderType::Limit | OrderType::StopLimit => limit.unwrap_or(current),
        OrderType::Stop => stop.unwrap_or(current).max(current),
        OrderType::Market => current,
    }
}

/// `max(equity − initial_margin, 0) × multiplier`, before reservations.
pub fn buying_power_raw(v: &Valuation, multiplier: u32) -> Decimal {
    let m = Decimal::from(multiplier);
    let initial_margin = v.gross() / m;
    (v.equity - initial_margin).max(Decimal::ZERO) * m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().expect("decimal literal")
    }

    fn fill(qty: Decimal, price: Decimal) -> Fill {
        Fill {
            at: Utc::now(),
            qty,
            price,
        }
    }

    fn account() -> Account {
        Account::new(dec("10000"), Utc::now(), NaiveDate::MIN)
    }

    #[test]
    fn buys_average_in_and_sells_keep_the_entry_price() {
        let mut a = account();
        let id = Uuid::nil();
        a.apply_fill("X", id, Side::Buy, &fill(dec("10"), dec("100")));
        a.apply_fill("X", id, Side::Buy, &fill(dec("10"), dec("110")));
        assert_eq!(a.positions["X"].qty, dec("20"));
        assert_eq!(a.positions["X"].avg_entry_price, dec("105"));
        assert_eq!(a.cash, dec("7900"));
        a.apply_fill("X", id, Side::Sell, &fill(dec("5"), dec("120")));
        assert_eq!(a.positions["X"].avg_entry_price, dec("105"));
        a.apply_fill("X", id, Side::Sell, &fill(dec("15"), dec("120")));
        assert!(!a.positions.contains_key("X"));
        assert_eq!(a.cash, dec("10300"));
    }

    #[test]
    fn shorts_are_negative_and_value_negatively() {
        let mut a = account();
        a.apply_fill("X", Uuid::nil(), Side::Sell, &fill(dec("10"), dec("50")));
        assert_eq!(a.positions["X"].qty, dec("-10"));
        assert_eq!(a.cash, dec("10500"));
        let v = a.valuation(|_| dec("40"));
        assert_eq!(v.short_market_value, dec("-400"));
        assert_eq!(v.equity, dec("10100"));
        assert_eq!(v.gross(), dec("400"));
        // Multiplier 2: (10100 − 200) × 2.
        assert_eq!(buying_power_raw(&v, 2), dec("19800"));
    }

    #[test]
    fn cash_account_buying_power_is_cash() {
        let mut a = account();
        a.apply_fill("X", Uuid::nil(), Side::Buy, &fill(dec("10"), dec("100")));
        let v = a.valuation(|_| dec("130"));
        assert_eq!(buying_power_raw(&v, 1), a.cash);
    }

    #[test]
    fn only_the_part_beyond_closing_adds_exposure() {
        let mut a = account();
        a.apply_fill("X", Uuid::nil(), Side::Buy, &fill(dec("10"), dec("100")));
        assert_eq!(a.increasing_qty("X", Side::Sell, dec("15")), dec("5"));
        assert_eq!(a.increasing_qty("X", Side::Buy, dec("15")), dec("15"));
        assert_eq!(a.qty_available("X"), dec("10"));
    }
}
