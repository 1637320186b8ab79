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
    /// USD lost today (equity vs last close's equity) at which only reducing orders pass.
    pub max_daily_loss: Option<Decimal>,
}

impl RiskLimits {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let limits = [
            ("broker.risk.max_order_value", self.max_order_value),
            (
                "broker.risk.max_position_per_symbol",
                self.max_position_per_symbol,
            ),
            (
                "broker.risk.max_position_per_instance",
                self.max_position_per_instance,
            ),
            ("broker.risk.max_daily_loss", self.max_daily_loss),
        ];
        for (key, value) in limits {
            if let Some(v) = value
                && v <= Decimal::ZERO
            {
                return Err(InvalidSetting::new(
                    key,
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
        let loss = -ctx.daily_pnl;
        if loss >= limit && !reducing {
            return Err(Refusal::MaxDailyLoss { loss, limit });
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
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn ctx(side: Side, qty: Decimal, instance: Decimal, account: Decimal) -> OrderContext {
        OrderContext {
            side,
            qty,
            price: Some(d("100")),
            instance_position: instance,
            account_position: account,
            daily_pnl: Decimal::ZERO,
        }
    }

    fn buy(qty: Decimal) -> OrderContext {
        ctx(Side::Buy, qty, Decimal::ZERO, Decimal::ZERO)
    }

    fn limits() -> RiskLimits {
        RiskLimits {
            max_order_value: Some(d("10000")),
            max_position_per_symbol: Some(d("50000")),
            max_position_per_instance: Some(d("25000")),
            max_daily_loss: Some(d("2000")),
        }
    }

    fn trading(state: TradingState) -> Trading {
        Trading {
            state,
            reason: None,
        }
    }

    fn refusal(ctx: &OrderContext, limits: &RiskLimits, state: &Trading) -> &'static str {
        check_order(ctx, limits, state)
            .unwrap_err()
            .reason()
            .as_str()
    }

    use TradingState::{Active, Halted, Reducing};

    #[test]
    fn halted_refuses_every_order_even_a_reducing_one() {
        let sell_long = ctx(Side::Sell, d("5"), d("10"), d("10"));
        assert!(sell_long.is_reducing());
        assert_eq!(
            refusal(&sell_long, &RiskLimits::default(), &trading(Halted)),
            "halted"
        );
        let why = Trading {
            state: Halted,
            reason: Some("broker failed: panicked".into()),
        };
        let refused = check_order(&sell_long, &RiskLimits::default(), &why).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "trading is halted: broker failed: panicked",
            "the operator reads why"
        );
    }

    #[test]
    fn non_positive_quantity_is_refused() {
        assert_eq!(
            refusal(&buy(d("0")), &limits(), &trading(Active)),
            "invalid_quantity"
        );
        assert_eq!(
            refusal(&buy(d("-3")), &limits(), &trading(Active)),
            "invalid_quantity"
        );
    }

    #[test]
    fn reducing_state_allows_only_orders_that_reduce_exposure() {
        let none = RiskLimits::default();
        let sell_long = ctx(Side::Sell, d("10"), d("10"), d("10"));
        let cover_short = ctx(Side::Buy, d("4"), d("-10"), d("-10"));
        assert_eq!(check_order(&sell_long, &none, &trading(Reducing)), Ok(()));
        assert_eq!(check_order(&cover_short, &none, &trading(Reducing)), Ok(()));
        let open = buy(d("1"));
        let add_to_long = ctx(Side::Buy, d("1"), d("10"), d("10"));
        let flip_to_short = ctx(Side::Sell, d("15"), d("10"), d("10"));
        for order in [open, add_to_long, flip_to_short] {
            assert_eq!(
                refusal(&order, &none, &trading(Reducing)),
                "reducing_only",
                "{order:?}"
            );
        }
    }

    #[test]
    fn closing_an_instance_long_on_a_flat_account_is_not_reducing() {
        // Another instance is short the same 10: selling would open a short at the venue.
        let order = ctx(Side::Sell, d("10"), d("10"), d("0"));
        assert!(!order.is_reducing());
        let refused = check_order(&order, &RiskLimits::default(), &trading(Reducing)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "trading is reducing-only: sell 10 would not reduce the position (instance 10, account 0)"
        );
    }

    #[test]
    fn max_order_value_refuses_above_the_limit_with_the_numbers() {
        let refused = check_order(&buy(d("123.45")), &limits(), &trading(Active)).unwrap_err();
        assert_eq!(refused.reason().as_str(), "max_order_value");
        assert_eq!(
            refused.to_string(),
            "order value 12,345.00 USD exceeds max_order_value 10,000.00"
        );
        assert_eq!(
            check_order(&buy(d("100")), &limits(), &trading(Active)),
            Ok(()),
            "exactly at the limit"
        );
    }

    #[test]
    fn max_order_value_applies_to_reducing_orders_too() {
        let dump = ctx(Side::Sell, d("500"), d("500"), d("500"));
        assert_eq!(
            refusal(&dump, &limits(), &trading(Active)),
            "max_order_value"
        );
    }

    #[test]
    fn an_order_needing_a_value_without_a_price_is_refused() {
        let mut order = buy(d("1"));
        order.price = None;
        assert_eq!(refusal(&order, &limits(), &trading(Active)), "no_price");
        order.price = Some(Decimal::ZERO);
        assert_eq!(refusal(&order, &limits(), &trading(Active)), "no_price");
        let only_positions = RiskLimits {
            max_order_value: None,
            max_daily_loss: None,
            ..limits()
        };
        assert_eq!(
            refusal(&order, &only_positions, &trading(Active)),
            "no_price"
        );
        // A reducing order needs no value under position limits.
        let mut sell_long = ctx(Side::Sell, d("5"), d("10"), d("10"));
        sell_long.price = None;
        assert_eq!(
            check_order(&sell_long, &only_positions, &trading(Active)),
            Ok(())
        );
        assert_eq!(
            check_order(&order, &RiskLimits::default(), &trading(Active)),
            Ok(()),
            "no limits, no price needed"
        );
    }

    #[test]
    fn account_wide_position_limit_counts_every_instance() {
        // This instance holds 50 shares, the account 498 (others hold the rest).
        let order = ctx(Side::Buy, d("5"), d("50"), d("498"));
        let refused = check_order(&order, &limits(), &trading(Active)).unwrap_err();
        assert_eq!(refused.reason().as_str(), "max_position_symbol");
        assert_eq!(
            refused.to_string(),
            "account position would be 503 shares, 50,300.00 USD, above max_position_per_symbol 50,000.00"
        );
    }

    #[test]
    fn instance_position_limit_caps_one_instance() {
        let order = ctx(Side::Buy, d("10"), d("245"), d("245"));
        assert_eq!(
            refusal(&order, &limits(), &trading(Active)),
            "max_position_instance"
        );
        let short = ctx(Side::Sell, d("10"), d("-245"), d("-245"));
        assert_eq!(
            refusal(&short, &limits(), &trading(Active)),
            "max_position_instance",
            "shorts count by size"
        );
    }

    #[test]
    fn reducing_orders_pass_position_limits_already_exceeded() {
        let no_order_cap = RiskLimits {
            max_order_value: None,
            ..limits()
        };
        let sell_long = ctx(Side::Sell, d("100"), d("900"), d("900"));
        let cover_short = ctx(Side::Buy, d("100"), d("-900"), d("-900"));
        assert_eq!(
            check_order(&sell_long, &no_order_cap, &trading(Active)),
            Ok(())
        );
        assert_eq!(
            check_order(&cover_short, &no_order_cap, &trading(Active)),
            Ok(())
        );
    }

    #[test]
    fn daily_loss_breach_refuses_new_exposure_but_allows_reducing() {
        let mut open = buy(d("1"));
        open.daily_pnl = d("-2000");
        let refused = check_order(&open, &limits(), &trading(Active)).unwrap_err();
        assert_eq!(refused.reason().as_str(), "max_daily_loss");
        assert_eq!(
            refused.to_string(),
            "daily loss 2,000.00 USD reaches max_daily_loss 2,000.00: only orders that reduce exposure are allowed"
        );
        let mut sell_long = ctx(Side::Sell, d("10"), d("10"), d("10"));
        sell_long.daily_pnl = d("-5000");
        assert_eq!(check_order(&sell_long, &limits(), &trading(Active)), Ok(()));
        open.daily_pnl = d("-1999.99");
        assert_eq!(
            check_order(&open, &limits(), &trading(Active)),
            Ok(()),
            "below the limit"
        );
        open.daily_pnl = d("30000");
        assert_eq!(
            check_order(&open, &limits(), &trading(Active)),
            Ok(()),
            "a profit is no loss"
        );
    }

    #[test]
    fn daily_pnl_is_equity_against_last_close() {
        assert_eq!(daily_pnl(d("98500.25"), d("100000")), d("-1499.75"));
    }

    #[test]
    fn usd_groups_thousands_and_keeps_two_decimals() {
        let cases = [
            (d("0"), "0.00"),
            (d("999.995"), "1,000.00"),
            (d("1234567.891"), "1,234,567.89"),
            (d("-12345"), "-12,345.00"),
            (d("-0.001"), "0.00"),
        ];
        for (value, text) in cases {
            assert_eq!(Usd(value).to_string(), text);
        }
    }

    #[test]
    fn reason_labels_are_a_bounded_distinct_set() {
        let refusals = [
            Refusal::Halted { why: None },
            Refusal::ReducingOnly {
                side: Side::Buy,
                qty: d("1"),
                instance_position: d("0"),
                account_position: d("0"),
            },
            Refusal::InvalidQuantity { qty: d("0") },
            Refusal::NoPrice,
            Refusal::MaxOrderValue {
                value: d("2"),
                limit: d("1"),
            },
            Refusal::MaxDailyLoss {
                loss: d("2"),
                limit: d("1"),
            },
            Refusal::MaxPositionSymbol {
                position_after: d("1"),
                value: d("2"),
                limit: d("1"),
            },
            Refusal::MaxPositionInstance {
                position_after: d("1"),
                value: d("2"),
                limit: d("1"),
            },
        ];
        let reasons: Vec<_> = refusals.iter().map(Refusal::reason).collect();
        for (i, r) in reasons.iter().enumerate() {
            assert!(!reasons[i + 1..].contains(r), "{r:?} twice");
        }
    }

    #[test]
    fn limits_deserialize_with_absent_keys_meaning_no_limit() {
        let parsed: RiskLimits =
            toml::from_str("max_order_value = 1000\nmax_daily_loss = \"250.50\"").unwrap();
        let expected = RiskLimits {
            max_order_value: Some(d("1000")),
            max_daily_loss: Some(d("250.50")),
            ..RiskLimits::default()
        };
        assert_eq!(parsed, expected);
        assert_eq!(
            toml::from_str::<RiskLimits>("").unwrap(),
            RiskLimits::default()
        );
        assert!(toml::from_str::<RiskLimits>("max_order_value_usd = 1").is_err());
        let negative = RiskLimits {
            max_position_per_symbol: Some(d("-5")),
            ..RiskLimits::default()
        };
        assert_eq!(
            negative.check().unwrap_err().to_string(),
            "broker.risk.max_position_per_symbol = -5: must be greater than zero (leave the key out for no limit)"
        );
        assert_eq!(limits().check(), Ok(()));
    }
}
