//! One instance's position in one symbol, as its own fills built it: quantity, average entry
//! price, and the profit or loss already realized.
//!
//! Invariants:
//! - `avg_price` is the volume-weighted price of the shares still held; it is 0 when flat and
//!   resets to the fill price when a fill flips the position through zero.
//! - Only the part of a fill that closes shares realizes P&L: `closed × (price − avg) × side`.

use rust_decimal::Decimal;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Holding {
    /// Signed: negative when short.
    pub qty: Decimal,
    /// Average entry price of the shares held (0 when flat).
    pub avg_price: Decimal,
    /// P&L of every share closed so far, in USD.
    pub realized_pnl: Decimal,
}

impl Holding {
    /// Applies a fill of `delta` shares (+ bought, − sold) at `price`.
    pub fn apply(&mut self, delta: Decimal, price: Decimal) {
        if delta.is_zero() {
            return;
        }
        let before = self.qty;
        let after = before + delta;
        if before.is_zero() || before.is_sign_negative() == delta.is_sign_negative() {
            let held = before.abs() + delta.abs();
            self.avg_price = (before.abs() * self.avg_price + delta.abs() * price) / held;
        } else {
            let closed = delta.abs().min(before.abs());
            let side = if before.is_sign_negative() {
                -Decimal::ONE
            } else {
                Decimal::ONE
            };
            self.realized_pnl += closed * (price - self.avg_price) * side;
            if after.is_zero() {
                self.avg_price = Decimal::ZERO;
            } else if after.is_sign_negative() != before.is_sign_negative() {
                self.avg_price = price;
            }
        }
        self.qty = after;
    }

    /// The P&L of the shares held, marked at `price`.
    pub fn unrealized_pnl(&self, price: Decimal) -> Decimal {
        self.qty * (price - self.avg_price)
    }

    /// How far `price` has moved against the position, as a fraction of the entry price (0 when
    /// flat or in profit): what a stop-loss compares with its limit.
    pub fn adverse_move(&self, price: Decimal) -> Decimal {
        if self.qty.is_zero() || self.avg_price.is_zero() {
            return Decimal::ZERO;
        }
        let against = if self.qty.is_sign_positive() {
            self.avg_price - price
        } else {
            price - self.avg_price
        };
        (against / self.avg_price).max(Decimal::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn fills(steps: &[(&str, &str)]) -> Holding {
        let mut h = Holding::default();
        for (qty, price) in steps {
            h.apply(d(qty), d(price));
        }
        h
    }

    #[test]
    fn buys_average_their_prices_and_a_partial_sale_realizes_against_the_average() {
        let h = fills(&[("10", "100"), ("10", "110")]);
        assert_eq!((h.qty, h.avg_price), (d("20"), d("105")));
        let h = fills(&[("10", "100"), ("10", "110"), ("-5", "120")]);
        assert_eq!(
            (h.qty, h.avg_price, h.realized_pnl),
            (d("15"), d("105"), d("75"))
        );
        assert_eq!(h.unrealized_pnl(d("100")), d("-75"));
    }

    #[test]
    fn a_short_gains_when_the_price_falls_and_flat_resets_the_average() {
        let h = fills(&[("-100", "50"), ("100", "45")]);
        assert_eq!(
            (h.qty, h.avg_price, h.realized_pnl),
            (d("0"), d("0"), d("500"))
        );
    }

    #[test]
    fn a_fill_through_zero_realizes_the_closed_part_and_opens_at_the_fill_price() {
        let h = fills(&[("10", "100"), ("-15", "90")]);
        assert_eq!(
            (h.qty, h.avg_price, h.realized_pnl),
            (d("-5"), d("90"), d("-100"))
        );
    }

    #[test]
    fn the_adverse_move_is_against_the_side_held_and_never_negative() {
        let long = fills(&[("10", "100")]);
        assert_eq!(long.adverse_move(d("95")), d("0.05"));
        assert_eq!(long.adverse_move(d("105")), d("0"));
        let short = fills(&[("-10", "100")]);
        assert_eq!(short.adverse_move(d("104")), d("0.04"));
        assert_eq!(Holding::default().adverse_move(d("1")), d("0"));
    }
}
