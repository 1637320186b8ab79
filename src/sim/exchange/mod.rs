//! The simulated brokerage: accounts (one per API key id), their orders and positions, and
//! order matching against the market.
//!
//! Time moves lazily: every request first calls [`Exchange::advance`], which replays what
//! happened to the account's open orders between the last request and now — activations at
//! the open, fills along the price path (stamped with the sim time they happened, not the time
//! of the request), expiries at the close. No background task is needed, and the outcome does
//! not depend on how often clients poll.
//!
//! Invariants:
//! - Fills of one account are booked in time order across its orders.
//! - An order's state is only changed here and in `matching`, and only forward in time.
//! - Everything runs under the simulator's single venue lock (see `sim::state`), so an order
//!   and its account never disagree.

mod account;
mod listing;
mod matching;
mod order;
mod submit;
mod wire;

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

pub use account::Account;
pub use listing::{OrderFilter, StatusFilter};
pub use matching::{Costs, Fill, quote, to_decimal};
pub use order::{Amount, Order, OrderJson, OrderType, Side, Status, TimeInForce};
pub use submit::NewOrder;

use super::calendar::MarketHours;
use super::market::{Market, PathPoint};

/// Business errors, each with the status and code Alpaca answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExchangeError {
    #[error("insufficient buying power")]
    InsufficientBuyingPower {
        buying_power: Decimal,
        cost_basis: Decimal,
    },
    #[error(
        "insufficient qty available for order (requested: {requested}, available: {available})"
    )]
    InsufficientQty {
        symbol: String,
        requested: Decimal,
        available: Decimal,
        existing_qty: Decimal,
        held_for_orders: Decimal,
    },
    #[error("client_order_id must be unique")]
    DuplicateClientOrderId,
    #[error("{0}")]
    Invalid(String),
    #[error("order not found")]
    OrderNotFound,
    #[error("position does not exist")]
    PositionNotFound,
    #[error("order is already in \"{0}\" state")]
    NotCancelable(&'static str),
}

/// Settings the exchange needs (`SimConfig::exchange` builds them).
#[derive(Debug, Clone)]
pub struct Settings {
    pub initial_cash: Decimal,
    pub multiplier: u32,
    pub shorting: bool,
    pub costs: Costs,
    pub fill_delay: TimeDelta,
    pub hours: MarketHours,
}

/// All accounts of the simulator.
pub struct Exchange {
    settings: Settings,
    /// Accounts by API key id, created on first use: each key is its own account, so tests
    /// and users sharing a simulator do not see each other's orders.
    accounts: HashMap<String, Account>,
}

/// Stable asset id of a symbol (the same in every run).
pub fn asset_id(symbol: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("herd-sim:asset:{symbol}").as_bytes(),
    )
}

impl Exchange {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            accounts: HashMap::new(),
        }
    }

    /// Keys of all accounts, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.accounts.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The account of `key`, created if new and brought up to `now`.
    pub fn account(&mut self, key: &str, market: &mut Market, now: DateTime<Utc>) -> &mut Account {
        self.advance(key, market, now);
        self.account_raw(key, now)
    }

    fn account_raw(&mut self, key: &str, now: DateTime<Utc>) -> &mut Account {
        let cash = self.settings.initial_cash;
        let day = self.settings.hours.last_closed_session(now).date;
        self.accounts
            .entry(key.to_string())
            .or_insert_with(|| Account::new(cash, now, day))
    }

    /// Brings the account of `key` up to `now`: activations, fills, expiries, and the
    /// `last_equity` snapshot at the last close.
    pub fn advance(&mut self, key: &str, market: &mut Market, now: DateTime<Utc>) {
        let settings = self.settings.clone();
        let account = self.account_raw(key, now);
        let last = settings.hours.last_closed_session(now);
        if account.equity_day < last.date {
            advance_orders(account, market, &settings, last.close);
            let close = last.close;
            account.last_equity = account
                .valuation(|s| to_decimal(market.price(s, close)))
                .equity;
            account.equity_day = last.date;
        }
        advance_orders(account, market, &settings, now);
    }
}

/// Runs the open orders of `account` up to `until` and books their fills in time order.
fn advance_orders(account: &mut Account, market: &mut Market, s: &Settings, until: DateTime<Utc>) {
    let mut fills: Vec<(DateTime<Utc>, u64, usize, Fill)> = Vec::new();
    for i in 0..account.orders.len() {
        if !account.orders[i].status.is_open() {
            continue;
        }
        if account.orders[i].status == Status::Accepted {
            if until < account.orders[i].active_at {
                continue;
            }
            activate(account, i, market, s);
            if !account.orders[i].status.is_open() {
                continue;
            }
        }
        let order = &mut account.orders[i];
        let end = order.expires_at.map_or(until, |e| e.min(until));
        if end >= order.eligible_at {
            let arrival = (!order.arrived).then(|| point(market, &order.symbol, order.eligible_at));
            let from = if order.arrived {
                order.matched_until
            } else {
                order.eligible_at
            };
            let path = market.path(&order.symbol, from, end);
            for f in matching::run(order, arrival, &path, &s.costs) {
                fills.push((f.at, order.seq, i, f));
            }
            order.matched_until = order.matched_until.max(end);
        }
        if let Some(e) = order.expires_at
            && e <= until
            && order.status.is_open()
        {
            order.status = Status::Expired;
            order.expired_at = Some(e);
            order.updated_at = e;
        }
    }
    fills.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    for (_, _, i, f) in fills {
        let (symbol, asset, side) = {
            let o = &account.orders[i];
            (o.symbol.clone(), o.asset_id, o.side)
        };
        account.apply_fill(&symbol, asset, side, &f);
    }
}

/// `accepted` → `new` at the open; `rejected` instead if the order no longer fits the buying
/// power at that moment (prices moved while the market was closed).
fn activate(account: &mut Account, i: usize, market: &mut Market, s: &Settings) {
    let at = account.orders[i].active_at;
    let adds = order_cost(account, &account.orders[i], market, at);
    let valuation = account.valuation(|sym| to_decimal(market.price(sym, at)));
    let reserved = account.reserved(|o| reservation_price(o, market, at));
    // `reserved` includes this order itself (it is open); it may use the rest.
    let available = account::buying_power_raw(&valuation, s.multiplier) - (reserved - adds);
    let order = &mut account.orders[i];
    order.updated_at = at;
    if adds > available {
        order.status = Status::Rejected;
        order.failed_at = Some(at);
    } else {
        order.status = Status::New;
    }
}

/// What the exposure-adding part of `o` is expected to cost at `at`.
fn order_cost(account: &Account, o: &Order, market: &mut Market, at: DateTime<Utc>) -> Decimal {
    match (o.amount, o.resolved_qty) {
        (Amount::Notional(n), None) => n,
        _ => {
            let rest = o.remaining().unwrap_or(Decimal::ZERO);
            account.increasing_qty(&o.symbol, o.side, rest) * reservation_price(o, market, at)
        }
    }
}

/// Price at which an open order's reservation is counted.
fn reservation_price(o: &Order, market: &mut Market, at: DateTime<Utc>) -> Decimal {
    let current = to_decimal(market.price(&o.symbol, at));
    account::expected_price(o.order_type, o.limit_price, o.stop_price, current)
}

/// The path point at `t`: the arrival of an order.
fn point(market: &mut Market, symbol: &str, t: DateTime<Utc>) -> PathPoint {
    PathPoint {
        t: t.timestamp_micros(),
        price: market.price(symbol, t),
        minute: t.timestamp().div_euclid(60) * 60,
        volume: market.minute_volume(symbol, t),
        jump: false,
    }
}

#[cfg(test)]
mod tests;
