//! Placing, cancelling and closing: the checks Alpaca makes before it takes an order, and the
//! order's initial state.
//!
//! Checks, in Alpaca's order: terms (422, code 40010001), client order id (422 when reused,
//! ever), available quantity and buying power (403, code 40310000).
//!
//! Invariant: a rejected request leaves no trace (no order, no used client order id).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::account::{self, Account, buying_power_raw};
use super::order::{Amount, Order, OrderJson, OrderType, Side, Status, TimeInForce};
use super::{Exchange, ExchangeError, asset_id, reservation_price, to_decimal};
use crate::sim::market::Market;

/// Longest client order id accepted (the current OpenAPI spec's limit).
pub const MAX_CLIENT_ORDER_ID: usize = 128;

/// Bounds that keep every product of quantities and prices far inside `Decimal`'s range
/// (whose overflow would panic), and well beyond any real order.
const MAX_QTY: i64 = 100_000_000;
const MAX_PRICE: i64 = 10_000_000;
const MAX_NOTIONAL: i64 = 1_000_000_000_000;

/// A parsed `POST /v2/orders` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub symbol: String,
    pub amount: Amount,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub extended_hours: bool,
    pub client_order_id: Option<String>,
}

fn invalid(msg: impl Into<String>) -> ExchangeError {
    ExchangeError::Invalid(msg.into())
}

/// Price must be positive and on the tick grid (cents from $1: Alpaca's sub-penny rule).
fn check_price(name: &str, price: Decimal) -> Result<(), ExchangeError> {
    if price <= Decimal::ZERO {
        return Err(invalid(format!("{name} must be > 0")));
    }
    if price > Decimal::from(MAX_PRICE) {
        return Err(invalid(format!("{name} must be <= {MAX_PRICE}")));
    }
    let dp = if price >= Decimal::ONE { 2 } else { 4 };
    if price.round_dp(dp) != price {
        return Err(invalid(format!(
            "invalid {name} {price}. sub-penny increment does not fulfill minimum pricing criteria"
        )));
    }
    Ok(())
}

impl NewOrder {
    /// A plain market day order for `qty` shares.
    pub fn market(symbol: &str, side: Side, qty: Decimal) -> Self {
        NewOrder {
            symbol: symbol.to_string(),
            amount: Amount::Qty(qty),
            side,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            limit_price: None,
            stop_price: None,
            extended_hours: false,
            client_order_id: None,
        }
    }

    /// Terms Alpaca refuses with 422.
    fn check_terms(&self) -> Result<(), ExchangeError> {
        let fractional = match self.amount {
            Amount::Qty(q) => {
                if q <= Decimal::ZERO {
                    return Err(invalid("qty must be > 0"));
                }
                if q > Decimal::from(MAX_QTY) {
                    return Err(invalid(format!("qty must be <= {MAX_QTY}")));
                }
                if q.normalize().scale() > 9 {
                    return Err(invalid("qty must have at most 9 decimal places"));
                }
                q.fract() != Decimal::ZERO
            }
            Amount::Notional(n) => {
                if n <= Decimal::ZERO {
                    return Err(invalid("notional must be > 0"));
                }
                if n > Decimal::from(MAX_NOTIONAL) {
                    return Err(invalid(format!("notional must be <= {MAX_NOTIONAL}")));
                }
                if n.round_dp(2) != n {
                    return Err(invalid("notional must have at most 2 decimal places"));
                }
                true
            }
        };
        if fractional && self.order_type != OrderType::Market {
            return Err(invalid("fractional orders must be market orders"));
        }
        if fractional && self.time_in_force != TimeInForce::Day {
            return Err(invalid("fractional orders must be DAY orders"));
        }
        let needs_limit = matches!(self.order_type, OrderType::Limit | OrderType::StopLimit);
        let needs_stop = matches!(self.order_type, OrderType::Stop | OrderType::StopLimit);
        match (needs_limit, self.limit_price) {
            (true, None) => return Err(invalid("limit_price is required")),
            (false, Some(_)) => {
                return Err(invalid(format!(
                    "limit_price is not allowed for {} orders",
                    type_name(self.order_type)
                )));
            }
            (true, Some(p)) => check_price("limit_price", p)?,
            (false, None) => {}
        }
        match (needs_stop, self.stop_price) {
            (true, None) => return Err(invalid("stop_price is required")),
            (false, Some(_)) => {
                return Err(invalid(format!(
                    "stop_price is not allowed for {} orders",
                    type_name(self.order_type)
                )));
            }
            (true, Some(p)) => check_price("stop_price", p)?,
            (false, None) => {}
        }
        if self.extended_hours
            && !(self.order_type == OrderType::Limit && self.time_in_force == TimeInForce::Day)
        {
            return Err(invalid("extended hours order must be DAY limit orders"));
        }
        if let Some(id) = &self.client_order_id
            && id.chars().count() > MAX_CLIENT_ORDER_ID
        {
            return Err(invalid(format!(
                "client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters"
            )));
        }
        Ok(())
    }
}

fn type_name(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "market",
        OrderType::Limit => "limit",
        OrderType::Stop => "stop",
        OrderType::StopLimit => "stop_limit",
    }
}

impl Exchange {
    /// Places an order for `key` at sim time `now`.
    pub fn submit(
        &mut self,
        key: &str,
        req: NewOrder,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Result<OrderJson, ExchangeError> {
        req.check_terms()?;
        self.advance(key, market, now);
        let settings = self.settings.clone();
        let account = self.account_raw(key, now);
        let client_order_id = req
            .client_order_id
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        if account.client_id_used(&client_order_id) {
            return Err(ExchangeError::DuplicateClientOrderId);
        }
        let price = to_decimal(market.price(&req.symbol, now));
        check_quantity(account, &req, settings.shorting)?;
        let cost = match req.amount {
            Amount::Notional(n) => n,
            Amount::Qty(q) => {
                account.increasing_qty(&req.symbol, req.side, q)
                    * account::expected_price(
                        req.order_type,
                        req.limit_price,
                        req.stop_price,
                        price,
                    )
            }
        };
        if cost > Decimal::ZERO {
            let valuation = account.valuation(|s| to_decimal(market.price(s, now)));
            let reserved = account.reserved(|o| reservation_price(o, market, now));
            let buying_power =
                (buying_power_raw(&valuation, settings.multiplier) - reserved).max(Decimal::ZERO);
            if cost > buying_power {
                return Err(ExchangeError::InsufficientBuyingPower {
                    buying_power: buying_power.round_dp(2),
                    cost_basis: cost.round_dp(2),
                });
            }
        }

        let hours = settings.hours;
        let open = hours.is_open(now);
        let active_at = if open { now } else { hours.next_open(now) };
        let eligible_at = active_at + settings.fill_delay;
        let expires_at = (req.time_in_force == TimeInForce::Day)
            .then(|| hours.current_or_next_session(now).close);
        let order = Order {
            id: Uuid::new_v4(),
            client_order_id,
            seq: account.next_seq(),
            asset_id: asset_id(&req.symbol),
            symbol: req.symbol,
            side: req.side,
            order_type: req.order_type,
            time_in_force: req.time_in_force,
            amount: req.amount,
            limit_price: req.limit_price,
            stop_price: req.stop_price,
            extended_hours: req.extended_hours,
            status: if open { Status::New } else { Status::Accepted },
            created_at: now,
            updated_at: now,
            submitted_at: now,
            filled_at: None,
            canceled_at: None,
            expired_at: None,
            failed_at: None,
            expires_at,
            filled_qty: Decimal::ZERO,
            filled_value: Decimal::ZERO,
            active_at,
            eligible_at,
            matched_until: eligible_at,
            arrived: false,
            triggered: false,
            minute_used: (0, Decimal::ZERO),
            resolved_qty: None,
        };
        let id = order.id;
        account.insert_order(order);
        // A zero fill delay may fill the order at once.
        self.order(key, id, market, now)
    }

    /// Cancels an open order: `Ok` (204) or why not.
    pub fn cancel(
        &mut self,
        key: &str,
        id: Uuid,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Result<OrderJson, ExchangeError> {
        let order = self
            .account(key, market, now)
            .order_mut(id)
            .ok_or(ExchangeError::OrderNotFound)?;
        if !order.status.is_open() {
            return Err(ExchangeError::NotCancelable(order.status.as_str()));
        }
        order.status = Status::Canceled;
        order.canceled_at = Some(now);
        order.updated_at = now;
        Ok(order.to_json())
    }

    /// Cancels every open order; one result per order.
    pub fn cancel_all(
        &mut self,
        key: &str,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Vec<(Uuid, Result<OrderJson, ExchangeError>)> {
        let ids: Vec<Uuid> = self
            .account(key, market, now)
            .orders
            .iter()
            .filter(|o| o.status.is_open())
            .map(|o| o.id)
            .collect();
        ids.into_iter()
            .map(|id| (id, self.cancel(key, id, market, now)))
            .collect()
    }

    /// Closes all or part of a position with a market order (`qty` shares or `percentage`).
    pub fn close_position(
        &mut self,
        key: &str,
        symbol: &str,
        qty: Option<Decimal>,
        percentage: Option<Decimal>,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Result<OrderJson, ExchangeError> {
        let account = self.account(key, market, now);
        let held = account.position_qty(symbol);
        if held.is_zero() {
            return Err(ExchangeError::PositionNotFound);
        }
        let wanted = match (qty, percentage) {
            (Some(_), Some(_)) => {
                return Err(invalid("only one of qty or percentage may be specified"));
            }
            (Some(q), None) if q <= Decimal::ZERO => return Err(invalid("qty must be > 0")),
            (Some(q), None) => q,
            (None, Some(p)) if p <= Decimal::ZERO || p > Decimal::ONE_HUNDRED => {
                return Err(invalid("percentage must be between 0 and 100"));
            }
            (None, Some(p)) => (held.abs() * p / Decimal::ONE_HUNDRED).round_dp(9),
            (None, None) => held.abs(),
        };
        let side = if held > Decimal::ZERO {
            Side::Sell
        } else {
            Side::Buy
        };
        self.submit(key, NewOrder::market(symbol, side, wanted), market, now)
    }

    /// Closes every position (after cancelling open orders when asked); one result each.
    pub fn close_all(
        &mut self,
        key: &str,
        cancel_orders: bool,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Vec<(String, Result<OrderJson, ExchangeError>)> {
        if cancel_orders {
            self.cancel_all(key, market, now);
        }
        let symbols: Vec<String> = self
            .account(key, market, now)
            .positions
            .keys()
            .cloned()
            .collect();
        symbols
            .into_iter()
            .map(|s| {
                let r = self.close_position(key, &s, None, None, market, now);
                (s, r)
            })
            .collect()
    }
}

/// Sells may not exceed the long position less held shares, buys the short one likewise (no
/// single order flips a position); opening a short needs shorting and whole shares.
fn check_quantity(account: &Account, req: &NewOrder, shorting: bool) -> Result<(), ExchangeError> {
    let Amount::Qty(qty) = req.amount else {
        return Ok(());
    };
    let held = account.position_qty(&req.symbol);
    let closing = match req.side {
        Side::Sell => held > Decimal::ZERO,
        Side::Buy => held < Decimal::ZERO,
    };
    let insufficient = |available: Decimal| ExchangeError::InsufficientQty {
        symbol: req.symbol.clone(),
        requested: qty.normalize(),
        available: available.normalize(),
        existing_qty: held.abs().normalize(),
        held_for_orders: (held.abs() - available).max(Decimal::ZERO).normalize(),
    };
    if closing {
        let available = account.qty_available(&req.symbol);
        if qty > available {
            return Err(insufficient(available));
        }
        return Ok(());
    }
    if req.side == Side::Sell {
        if !shorting {
            return Err(insufficient(Decimal::ZERO));
        }
        if qty.fract() != Decimal::ZERO {
            return Err(invalid("fractional orders cannot be sold short"));
        }
    }
    Ok(())
}
