//! Momentum: buy when the price has risen more than `threshold` over the last `lookback`
//! closed bars, sell the position when it has fallen more than `threshold`.
//!
//! The rule of the momentum strategy herd replaces, with its bugs fixed:
//! - it uses the NEWEST `lookback` bars (the seed took the oldest 20 of a 2-hour window, so its
//!   "current" price was up to 20 minutes stale);
//! - "flat" is this instance's own position (a 404 from Alpaca is flat, never an error), and it
//!   never sells more than this instance holds;
//! - while one of its orders for a symbol is not final, it does nothing with that symbol, so a
//!   slow fill cannot turn into a second buy.
//!
//! Invariant: m = (c_last − c_first) / c_first over the window; both comparisons are strict.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Strategy;
use crate::domain::{
    Action, DataNeeds, Decision, MarketView, OrderIntent, Side, Symbol, Timeframe,
};

/// `[strategies.params]` of a `momentum` instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MomentumParams {
    /// Fractional move that triggers a trade (0.02 = 2 %).
    pub threshold: f64,
    /// Shares bought on a buy signal.
    pub position_size: Decimal,
    pub timeframe: Timeframe,
    /// Bars in the momentum window (the newest ones).
    pub lookback: usize,
}

impl Default for MomentumParams {
    fn default() -> Self {
        Self {
            threshold: 0.02,
            position_size: Decimal::from(10),
            timeframe: Timeframe::Minutes(5),
            lookback: 20,
        }
    }
}

impl MomentumParams {
    /// Range checks; the error is `.key = value: what is allowed`.
    pub fn check(&self) -> Result<(), String> {
        if !(self.threshold.is_finite() && self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(format!(
                ".threshold = {}: must be greater than 0 and less than 1 (0.02 = 2 %)",
                self.threshold
            ));
        }
        if self.position_size <= Decimal::ZERO {
            return Err(format!(
                ".position_size = {}: must be greater than 0",
                self.position_size
            ));
        }
        if !(2..=1000).contains(&self.lookback) {
            return Err(format!(
                ".lookback = {}: must be between 2 and 1000",
                self.lookback
            ));
        }
        Ok(())
    }
}

pub struct Momentum {
    symbols: Vec<Symbol>,
    params: MomentumParams,
}

impl Momentum {
    pub fn new(symbols: Vec<Symbol>, params: MomentumParams) -> Self {
        Self { symbols, params }
    }

    fn decide_one(&self, symbol: &Symbol, view: &MarketView) -> Decision {
        let bars = view.bars(symbol);
        let window = &bars[bars.len().saturating_sub(self.params.lookback)..];
        let decision = |signal, action| Decision {
            instance: None,
            symbol: symbol.clone(),
            signal,
            action,
        };
        let (Some(first), Some(last)) = (window.first(), window.last()) else {
            return decision(None, Action::NoData { have: 0, need: 2 });
        };
        if window.len() < 2 {
            return decision(
                None,
                Action::NoData {
                    have: window.len(),
                    need: 2,
                },
            );
        }
        if first.close <= 0.0 || !first.close.is_finite() || !last.close.is_finite() {
            return decision(
                None,
                Action::Hold {
                    reason: "invalid price in bars",
                },
            );
        }
        let momentum = (last.close - first.close) / first.close;
        let signal = Some(momentum);
        if view.has_pending(symbol) {
            return decision(
                signal,
                Action::Hold {
                    reason: "order pending",
                },
            );
        }
        let position = view.position(symbol);
        let order = |side, qty| {
            Action::Order(OrderIntent {
                symbol: symbol.clone(),
                side,
                qty,
                decided_on: last.time,
                reference_price: Some(last.close),
                reason: format!(
                    "momentum {momentum:.4} {} {}{}",
                    if side == Side::Buy { ">" } else { "<" },
                    if side == Side::Buy { "" } else { "-" },
                    self.params.threshold
                ),
            })
        };
        let up = momentum > self.params.threshold;
        let down = momentum < -self.params.threshold;
        let action = if up && position.is_zero() {
            order(Side::Buy, self.params.position_size)
        } else if down && position > Decimal::ZERO {
            order(Side::Sell, position)
        } else if up {
            Action::Hold {
                reason: "buy signal, but already holding",
            }
        } else if down {
            Action::Hold {
                reason: "sell signal, but no long position",
            }
        } else {
            Action::Hold {
                reason: "no signal",
            }
        };
        decision(signal, action)
    }
}

impl Strategy for Momentum {
    /// About 0.2 µs a tick at the default settings (BENCHMARKS.md, strategy cores).
    fn decides_inline(&self) -> bool {
        true
    }

    fn needs(&self) -> DataNeeds {
        DataNeeds {
            timeframe: self.params.timeframe,
            bars: self.params.lookback,
            account: false,
            only_when_open: true,
        }
    }

    fn decide(&mut self, view: &MarketView) -> Vec<Decision> {
        self.symbols
            .iter()
            .map(|s| self.decide_one(s, view))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::strategy::testing::{minute_bars as bars, sym, t0};

    fn spy() -> Symbol {
        sym("SPY")
    }

    fn view(closes: &[f64], position: i64) -> MarketView {
        let mut v = MarketView {
            market_open: true,
            ..MarketView::default()
        };
        v.bars.insert(spy(), bars(closes));
        let mut held = crate::domain::Holding::default();
        held.apply(Decimal::from(position), Decimal::from(100));
        v.positions.insert(spy(), held);
        v
    }

    fn decide(closes: &[f64], position: i64) -> Decision {
        let mut m = Momentum::new(vec![spy()], MomentumParams::default());
        m.decide(&view(closes, position)).remove(0)
    }

    #[test]
    fn buys_position_size_when_flat_and_momentum_above_threshold() {
        let d = decide(&[100.0, 101.0, 102.5], 0);
        let Action::Order(intent) = d.action else {
            panic!("expected an order, got {d:?}")
        };
        assert_eq!(intent.side, Side::Buy);
        assert_eq!(intent.qty, Decimal::from(10));
        assert_eq!(intent.decided_on, t0() + Duration::minutes(10));
        assert!((d.signal.unwrap() - 0.025).abs() < 1e-12);
    }

    #[test]
    fn sells_whole_own_position_when_long_and_momentum_below_minus_threshold() {
        let d = decide(&[100.0, 99.0, 97.5], 7);
        let Action::Order(intent) = d.action else {
            panic!("expected an order, got {d:?}")
        };
        assert_eq!(intent.side, Side::Sell);
        assert_eq!(intent.qty, Decimal::from(7));
    }

    #[test]
    fn holds_inside_the_band_and_at_exactly_the_threshold() {
        assert!(matches!(
            decide(&[100.0, 101.0], 0).action,
            Action::Hold { .. }
        ));
        // Strict comparison: exactly +2 % does not buy, exactly −2 % does not sell.
        assert!(matches!(
            decide(&[100.0, 102.0], 0).action,
            Action::Hold { .. }
        ));
        assert!(matches!(
            decide(&[100.0, 98.0], 5).action,
            Action::Hold { .. }
        ));
    }

    #[test]
    fn does_not_buy_when_already_long_nor_sell_when_flat_or_short() {
        assert!(matches!(
            decide(&[100.0, 105.0], 10).action,
            Action::Hold { .. }
        ));
        assert!(matches!(
            decide(&[100.0, 95.0], 0).action,
            Action::Hold { .. }
        ));
        assert!(matches!(
            decide(&[100.0, 95.0], -3).action,
            Action::Hold { .. }
        ));
    }

    #[test]
    fn fewer_than_two_bars_gives_no_decision() {
        assert_eq!(
            decide(&[100.0], 0).action,
            Action::NoData { have: 1, need: 2 }
        );
        assert_eq!(decide(&[], 0).action, Action::NoData { have: 0, need: 2 });
    }

    #[test]
    fn uses_the_newest_lookback_bars_not_the_oldest() {
        // 25 bars: the oldest 20 are flat, the newest 20 rise from 100 to 103.
        let mut closes = vec![100.0; 5];
        closes.extend((0..20).map(|i| 100.0 + 3.0 * f64::from(i) / 19.0));
        let d = decide(&closes, 0);
        assert!(
            matches!(d.action, Action::Order(ref o) if o.side == Side::Buy),
            "{d:?}"
        );
        assert!((d.signal.unwrap() - 0.03).abs() < 1e-9);
    }

    #[test]
    fn flat_prices_hold_with_a_zero_signal() {
        let d = decide(&[100.0; 20], 0);
        assert_eq!(d.signal, Some(0.0));
        assert_eq!(
            d.action,
            Action::Hold {
                reason: "no signal"
            }
        );
    }

    #[test]
    fn a_gap_in_the_bars_only_widens_the_window_and_dates_the_order_by_the_newest_bar() {
        // The window is counted in bars, not minutes: a session break between two bars leaves
        // the same closes in it, and the order is dated by the newest bar, after the gap.
        let mut gapped = bars(&[100.0, 100.5, 101.0, 102.5]).to_vec();
        for b in gapped.iter_mut().skip(2) {
            b.time += Duration::hours(17);
        }
        let newest = gapped[3].time;
        let mut v = view(&[], 0);
        v.bars.insert(spy(), gapped.into());
        let d = Momentum::new(vec![spy()], MomentumParams::default())
            .decide(&v)
            .remove(0);
        assert!((d.signal.unwrap() - 0.025).abs() < 1e-12);
        assert!(
            matches!(d.action, Action::Order(ref o) if o.side == Side::Buy && o.decided_on == newest),
            "{d:?}"
        );
    }

    #[test]
    fn holds_while_an_own_order_for_the_symbol_is_pending() {
        let mut v = view(&[100.0, 110.0], 0);
        v.pending.insert(spy(), Decimal::from(10));
        let mut m = Momentum::new(vec![spy()], MomentumParams::default());
        assert_eq!(
            m.decide(&v)[0].action,
            Action::Hold {
                reason: "order pending"
            }
        );
    }

    #[test]
    fn params_out_of_range_are_refused_with_the_key() {
        let bad = MomentumParams {
            threshold: -0.01,
            ..MomentumParams::default()
        };
        assert!(bad.check().unwrap_err().starts_with(".threshold = -0.01"));
        let bad = MomentumParams {
            position_size: Decimal::ZERO,
            ..MomentumParams::default()
        };
        assert!(bad.check().unwrap_err().starts_with(".position_size"));
    }
}
