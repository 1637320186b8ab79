//! The pre-trade risk gate: pure functions that decide whether an order may leave the process.
//!
//! The live-trading gate (live base URL without `ENABLE_LIVE_TRADING=true`) is not here: herd
//! refuses to start in that case (settings validation), so no order can reach this gate then.
//!
//! Invariants:
//! - [`check_order`] is pure: no I/O, no clock, no randomness; the same inputs always give the
//!   same answer, so every refusal is reproducible from its log line.
//! - A refused order is never sent; the caller logs and counts it with [`Refusal::reason`].
//! - An order that reduces exposure ([`OrderContext::is_reducing`]) passes the position limits,
//!   the daily-loss limit and the `Reducing` state: risk controls must never trap a position.
//!   Only `Halted` and `max_order_value` (a fat-finger guard on any single order) stop it.
//! - Values are USD at the price estimate; an order that needs a value and has no price is
//!   refused (`no_price`), never waved through.

use std::fmt;

use rust_decimal::Decimal;
use rust_decimal::prelude::{RoundingStrategy, Signed};
use serde::{Deserialize, Serialize};

use crate::domain::{InvalidSetting, Side, Trading, TradingState};
use crate::metrics::RefusalReason;

/// `[broker.risk]`: each limit is optional; an absent key means no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLimits {
    /// USD value of one order (qty × price estimate), either side: a fat-finger guard.
    /// `MAX_ORDER_VALUE_USD` in the seeds.
    pub max_order_value: Option<Decimal>,
    /// USD value of the account's position in one symbol after the order, summed over instances:
    /// what is actually at risk at the venue.
    pub max_position_per_symbol: Option<Decimal>,
    /// USD value of one instance's position in one symbol after the order: a runaway strategy
    /// cannot take the whole per-symbol allowance.
    pub max_position_per_instance: Option<Decimal>,
    /// USD lost today at which only reducing orders pass: the account's loss (equity vs last
    /// close's equity) or the loss herd's instances realized today, whichever is larger.
    pub max_daily_loss: Option<Decimal>,
    /// USD one instance realized as a loss today (from its journaled fills, so a restart does
    /// not forget it) at which only its reducing orders pass.
    pub max_daily_loss_per_instance: Option<Decimal>,
}

impl RiskLimits {
    /// `section` is where the limits sit in the configuration (`broker.risk`, `accounts[1].risk`).
    pub fn check(&self, section: &str) -> Result<(), InvalidSetting> {
        let limits = [
            ("max_order_value", self.max_order_value),
            ("max_position_per_symbol", self.max_position_per_symbol),
            ("max_position_per_instance", self.max_position_per_instance),
            ("max_daily_loss", self.max_daily_loss),
            (
                "max_daily_loss_per_instance",
                self.max_daily_loss_per_instance,
            ),
        ];
        for (key, value) in limits {
            if let Some(v) = value
                && v <= Decimal::ZERO
            {
                return Err(InvalidSetting::new(
                    format!("{section}.{key}"),
                    v,
                    "must be greater than zero (leave the key out for no limit)",
                ));
            }
        }
        Ok(())
    }
}

/// Everything the gate needs to judge one order; the broker fills it from its book and caches.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderContext {
    pub side: Side,
    /// Shares, positive.
    pub qty: Decimal,
    /// Estimated fill price per share (the last close); `None` when unknown.
    pub price: Option<Decimal>,
    /// This instance's position in the symbol, signed (short < 0). Include its orders still
    /// working, or two quick orders could each pass a limit that together they break.
    pub instance_position: Decimal,
    /// The account's position in the symbol at the venue, signed, working orders included.
    pub account_position: Decimal,
    /// Today's profit and loss, realized and unrealized ([`daily_pnl`]); a loss is negative.
    pub daily_pnl: Decimal,
    /// P&L every instance of herd realized today (the venue's day), from the journal.
    pub realized_today: Decimal,
    /// P&L this instance realized today.
    pub instance_realized_today: Decimal,
}

/// Today's P&L from the account: equity now minus equity at the last close.
pub fn daily_pnl(equity: Decimal, last_equity: Decimal) -> Decimal {
    equity - last_equity
}

/// Whether going from `before` to `after` adds exposure: a larger position, or a flip to the
/// other side (which opens a new position).
fn grows(before: Decimal, after: Decimal) -> bool {
    after.abs() > before.abs() || before.signum() * after.signum() < Decimal::ZERO
}

impl OrderContext {
    /// The order's effect on a position: + for a buy, − for a sell.
    pub fn signed_qty(&self) -> Decimal {
        match self.side {
            Side::Buy => self.qty,
            Side::Sell => -self.qty,
        }
    }

    /// The order shrinks this instance's own position (without flipping it) AND does not add
    /// exposure to the account: a sell of a long or a buy covering a short. Both, because an
    /// instance "closing" its long while the account is flat would open a short at the venue.
    pub fn is_reducing(&self) -> bool {
        let delta = self.signed_qty();
        !grows(self.instance_position, self.instance_position + delta)
            && !grows(self.account_position, self.account_position + delta)
    }
}

/// Why an order was refused. Display gives the numbers; `reason_label` is the bounded label of
/// `herd_orders_refused_total{reason}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("trading is halted{}", why.as_deref().map(|w| format!(": {w}")).unwrap_or_default())]
    Halted {
        /// What the operator (or the Supervisor, on losing the broker) said.
        why: Option<String>,
    },
    #[error(
        "trading is reducing-only: {side} {qty} would not reduce the position \
         (instance {instance_position}, account {account_position})"
    )]
    ReducingOnly {
        side: Side,
        qty: Decimal,
        instance_position: Decimal,
        account_position: Decimal,
    },
    #[error("quantity {qty} is not positive")]
    InvalidQuantity { qty: Decimal },
    #[error("no price estimate for the symbol: the order's value cannot be checked")]
    NoPrice,
    #[error("order value {} USD exceeds max_order_value {}", Usd(*.value), Usd(*.limit))]
    MaxOrderValue { value: Decimal, limit: Decimal },
    #[error(
        "daily loss {} USD reaches max_daily_loss {}: only orders that reduce exposure are allowed",
        Usd(*.loss), Usd(*.limit)
    )]
    MaxDailyLoss { loss: Decimal, limit: Decimal },
    #[error(
        "this instance realized a loss of {} USD today, reaching max_daily_loss_per_instance {}: \
         only its orders that reduce exposure are allowed",
        Usd(*.loss), Usd(*.limit)
    )]
    MaxDailyLossInstance { loss: Decimal, limit: Decimal },
    #[error(
        "account position would be {position_after} shares, {} USD, above max_position_per_symbol {}",
        Usd(*.value), Usd(*.limit)
    )]
    MaxPositionSymbol {
        position_after: Decimal,
        value: Decimal,
        limit: Decimal,
    },
    #[error(
        "instance position would be {position_after} shares, {} USD, above max_position_per_instance {}",
        Usd(*.value), Usd(*.limit)
    )]
    MaxPositionInstance {
        position_after: Decimal,
        value: Decimal,
        limit: Decimal,
    },
}

impl Refusal {
    /// The bounded label of `herd_orders_refused_total{reason}`.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Self::Halted { .. } => RefusalReason::Halted,
            Self::ReducingOnly { .. } => RefusalReason::ReducingOnly,
            Self::InvalidQuantity { .. } => RefusalReason::InvalidQuantity,
            Self::NoPrice => RefusalReason::NoPrice,
            Self::MaxOrderValue { .. } => RefusalReason::MaxOrderValue,
            Self::MaxDailyLoss { .. } => RefusalReason::MaxDailyLoss,
            Self::MaxDailyLossInstance { .. } => RefusalReason::MaxDailyLossInstance,
            Self::MaxPositionSymbol { .. } => RefusalReason::MaxPositionSymbol,
            Self::MaxPositionInstance { .. } => RefusalReason::MaxPositionInstance,
        }
    }
}

/// A USD amount as `12,345.00`: an operator reads refusals, not parsers.
struct Usd(Decimal);

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = self
            .0
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        let text = format!("{:.2}", rounded.abs());
        let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
        let mut grouped = String::with_capacity(int.len() + int.len() / 3);
        for (i, digit) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
            "-"
        } else {
            ""
        };
        write!(f, "{sign}{grouped}.{frac}")
    }
}

/// Decides whether an order may be sent. Checks run from the broadest switch to the narrowest
/// limit, so the reason given is the one the operator can act on first.
pub fn check_order(
    ctx: &OrderContext,
    limits: &RiskLimits,
    trading: &Trading,
) -> Result<(), Refusal> {
    let state = trading.state;
    if state == TradingState::Halted {
        return Err(Refusal::Halted {
            why: trading.reason.clone(),
        });
    }
    if ctx.qty <= Decimal::ZERO {
        return Err(Refusal::InvalidQuantity { qty: ctx.qty });
    }
    let reducing = ctx.is_reducing();
    if state == TradingState::Reducing && !reducing {
        return Err(Refusal::ReducingOnly {
            side: ctx.side,
            qty: ctx.qty,
            instance_position: ctx.instance_position,
            account_position: ctx.account_position,
        });
    }
    if let Some(limit) = limits.max_daily_loss {
        let loss = (-ctx.daily_pnl).max(-ctx.realized_today);
        if loss >= limit && !reducing {
            return Err(Refusal::MaxDailyLoss { loss, limit });
        }
    }
    if let Some(limit) = limits.max_daily_loss_per_instance {
        let loss = -ctx.instance_realized_today;
        if loss >= limit && !reducing {
            return Err(Refusal::MaxDailyLossInstance { loss, limit });
        }
    }
    let price = ctx.price.filter(|p| *p > Decimal::ZERO);
    if let Some(limit) = limits.max_order_value {
        let value = ctx.qty * price.ok_or(Refusal::NoPrice)?;
        if value > limit {
            return Err(Refusal::MaxOrderValue { value, limit });
        }
    }
    let delta = ctx.signed_qty();
    let position_limits = [
        (limits.max_position_per_symbol, ctx.account_position, true),
        (
            limits.max_position_per_instance,
            ctx.instance_position,
            false,
        ),
    ];
    for (limit, before, account_wide) in position_limits {
        let after = before + delta;
        let Some(limit) = limit.filter(|_| grows(before, after)) else {
            continue;
        };
        let value = after.abs() * price.ok_or(Refusal::NoPrice)?;
        if value > limit {
            let position_after = after;
            return Err(if account_wide {
                Refusal::MaxPositionSymbol {
                    position_after,
                    value,
                    limit,
                }
            } else {
                Refusal::MaxPositionInstance {
                    position_after,
                    value,
                    limit,
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
