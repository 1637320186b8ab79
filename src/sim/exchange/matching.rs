//! Order matching against the market's price path.
//!
//! An order gets one "arrival" look at its first fill chance (`eligible_at`): a market order
//! fills there at the ask (buy) or bid (sell) plus slippage; a limit order fills there if the
//! quote is already through its limit; a stop triggers if the price is already through its
//! stop. IOC and FOK orders end there. After that the order walks the path segment by segment:
//! a limit fills where the path reaches its price (at the limit, or at the better open after a
//! gap); a stop triggers where the path crosses it and then fills like a market order (stop) or
//! rests as a limit (stop-limit).
//!
//! Invariants:
//! - In one minute an order fills at most `max_fill_share` of that minute's volume (at least
//!   one share for whole-share orders when the minute traded); the rest fills in later minutes
//!   while the order's condition holds, which is how large orders end up partially filled.
//! - A buy never fills above its limit, a sell never below.
//! - Fill prices are on the tick grid; aggressive fills round against the taker.

use chrono::{DateTime, Utc};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use super::order::{Amount, Order, OrderType, Side, Status, TimeInForce};
use crate::sim::market::{PathPoint, ceil_tick, floor_tick, round_tick, tick};

/// Trading costs and the volume cap, from the config.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    pub spread_bps: f64,
    pub slippage_bps: f64,
    pub max_fill_share: f64,
}

/// One execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    pub at: DateTime<Utc>,
    pub qty: Decimal,
    pub price: Decimal,
}

/// Bid and ask around a traded price: half the spread each side, on the tick grid, at least
/// one tick apart when there is a spread.
pub fn quote(price: f64, spread_bps: f64) -> (f64, f64) {
    if spread_bps <= 0.0 {
        let p = round_tick(price);
        return (p, p);
    }
    let half = price * spread_bps / 20_000.0;
    let bid = floor_tick(price - half);
    let mut ask = ceil_tick(price + half);
    if ask <= bid {
        ask = ceil_tick(bid * (1.0 + 1e-9) + tick(bid));
    }
    (bid, ask)
}

/// Price a taker pays (buy) or gets (sell) at traded price `price`: the far side of the
/// quote, plus slippage when `slip`.
fn taker_price(price: f64, side: Side, costs: &Costs, slip: bool) -> f64 {
    let (bid, ask) = quote(price, costs.spread_bps);
    let s = if slip {
        costs.slippage_bps / 10_000.0
    } else {
        0.0
    };
    match side {
        Side::Buy => ceil_tick(ask * (1.0 + s)),
        Side::Sell => floor_tick(bid * (1.0 - s)),
    }
}

/// A price on the tick grid as a decimal.
pub fn to_decimal(price: f64) -> Decimal {
    let dp = if price >= 1.0 { 2 } else { 4 };
    Decimal::from_f64(price)
        .unwrap_or(Decimal::ZERO)
        .round_dp(dp)
}

fn micros_to_time(t: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(t).unwrap_or_default()
}

/// Shares an order may fill in a minute of `volume`.
fn capacity(volume: u64, share: f64, fractional: bool) -> Decimal {
    if volume == 0 {
        return Decimal::ZERO;
    }
    let raw = volume as f64 * share;
    if fractional {
        Decimal::from_f64(raw).unwrap_or(Decimal::ZERO).round_dp(9)
    } else {
        Decimal::from_f64(raw.floor().max(1.0)).unwrap_or(Decimal::ONE)
    }
}

/// Matches `order` at its arrival point and then along `path` (consecutive points after the
/// arrival, or after where matching stopped last time). Records fills on the order and
/// returns them for the account.
pub fn run(
    order: &mut Order,
    arrival: Option<PathPoint>,
    path: &[PathPoint],
    costs: &Costs,
) -> Vec<Fill> {
    let mut fills = Vec::new();
    if let Some(p) = arrival {
        arrive(order, p, costs, &mut fills);
    }
    for w in path.windows(2) {
        if !order.status.is_open() {
            break;
        }
        step(order, w[0], w[1], costs, &mut fills);
    }
    fills
}

/// The first look at the order, at its first fill chance.
fn arrive(order: &mut Order, p: PathPoint, costs: &Costs, fills: &mut Vec<Fill>) {
    order.arrived = true;
    let limit = order.limit_price.and_then(|d| d.to_f64());
    let stop = order.stop_price.and_then(|d| d.to_f64());
    let (bid, ask) = quote(p.price, costs.spread_bps);
    if let Some(s) = stop {
        order.triggered = match order.side {
            Side::Buy => p.price >= s,
            Side::Sell => p.price <= s,
        };
    }
    let price = match (order.order_type, order.triggered) {
        (OrderType::Market, _) | (OrderType::Stop, true) => {
            Some(taker_price(p.price, order.side, costs, true))
        }
        (OrderType::Limit, _) | (OrderType::StopLimit, true) => {
            let l = limit.unwrap_or(0.0);
            match order.side {
                Side::Buy if ask <= l => Some(ask),
                Side::Sell if bid >= l => Some(bid),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(price) = price {
        let all_or_none = order.time_in_force == TimeInForce::Fok;
        fill(order, p, price, costs, all_or_none, fills);
    }
    if matches!(order.time_in_force, TimeInForce::Ioc | TimeInForce::Fok) && order.status.is_open()
    {
        let at = micros_to_time(p.t);
        order.status = Status::Canceled;
        order.canceled_at = Some(at);
        order.updated_at = at;
    }
}

/// One segment of the path, from `a` to `b`.
fn step(order: &mut Order, a: PathPoint, b: PathPoint, costs: &Costs, fills: &mut Vec<Fill>) {
    if b.volume == 0 {
        return;
    }
    let limit = order.limit_price.and_then(|d| d.to_f64());
    let stop = order.stop_price.and_then(|d| d.to_f64());
    let side = order.side;
    // Where the segment first reaches `level` going the order's way: (time, price).
    let reach = |level: f64, up: bool| -> Option<(i64, f64)> {
        let through = |x: f64| if up { x >= level } else { x <= level };
        if b.jump {
            return through(b.price).then_some((b.t, b.price));
        }
        if through(a.price) {
            return Some((a.t, a.price));
        }
        if through(b.price) {
            let f = (a.price - level) / (a.price - b.price);
            let t = a.t + ((b.t - a.t) as f64 * f.clamp(0.0, 1.0)) as i64;
            return Some((t, level));
        }
        None
    };
    if !order.triggered
        && let Some(s) = stop
        && matches!(order.order_type, OrderType::Stop | OrderType::StopLimit)
    {
        match reach(s, side == Side::Buy) {
            Some((t, price)) => {
                order.triggered = true;
                let at = PathPoint { t, price, ..b };
                if order.order_type == OrderType::Stop {
                    fill(
                        order,
                        at,
                        taker_price(price, side, costs, true),
                        costs,
                        false,
                        fills,
                    );
                    return;
                }
                // A stop-limit rests as a limit from the trigger on.
                let l = limit.unwrap_or(0.0);
                let within = match side {
                    Side::Buy => price <= l,
                    Side::Sell => price >= l,
                };
                if within {
                    fill(order, at, price, costs, false, fills);
                }
                return;
            }
            None => return,
        }
    }
    match (order.order_type, order.triggered) {
        (OrderType::Market, _) | (OrderType::Stop, true) => {
            let price = taker_price(b.price, side, costs, true);
            fill(order, b, price, costs, false, fills);
        }
        (OrderType::Limit, _) | (OrderType::StopLimit, true) => {
            let Some(l) = limit else { return };
            if let Some((t, price)) = reach(l, side == Side::Sell) {
                fill(
                    order,
                    PathPoint { t, price, ..b },
                    price,
                    costs,
                    false,
                    fills,
                );
            }
        }
        _ => {}
    }
}

/// Fills as much as the minute allows at `price` (f64 on the tick grid), at point `p`.
fn fill(
    order: &mut Order,
    p: PathPoint,
    price: f64,
    costs: &Costs,
    all_or_none: bool,
    fills: &mut Vec<Fill>,
) {
    let price = to_decimal(price);
    if price <= Decimal::ZERO {
        return;
    }
    let remaining = match (order.amount, order.resolved_qty) {
        (Amount::Notional(n), None) => {
            let q = (n / price).round_dp_with_strategy(9, RoundingStrategy::ToZero);
            order.resolved_qty = Some(q);
            q
        }
        _ => order.remaining().unwrap_or(Decimal::ZERO),
    };
    if remaining <= Decimal::ZERO {
        return;
    }
    if order.minute_used.0 != p.minute {
        order.minute_used = (p.minute, Decimal::ZERO);
    }
    let room = capacity(p.volume, costs.max_fill_share, order.fractional()) - order.minute_used.1;
    if room <= Decimal::ZERO || (all_or_none && room < remaining) {
        return;
    }
    let qty = remaining.min(room);
    let at = micros_to_time(p.t);
    order.minute_used.1 += qty;
    order.filled_qty += qty;
    order.filled_value += qty * price;
    order.updated_at = at;
    if order.remaining().is_some_and(|r| r <= Decimal::ZERO) {
        order.status = Status::Filled;
        order.filled_at = Some(at);
    } else {
        order.status = Status::PartiallyFilled;
    }
    fills.push(Fill { at, qty, price });
}

#[cfg(test)]
mod tests;
