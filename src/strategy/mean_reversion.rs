//! Mean reversion: trade a close that lies far from the recent mean, expecting it to return.
//!
//! z = (P − mean) / σ over the newest `lookback` closes, the newest (P) included, σ the
//! population standard deviation. Flat: buy `position_size` at z ≤ −`entry_z`, sell short
//! `position_size` at z ≥ +`entry_z` (when `allow_short`). Holding: close the whole own position
//! once |z| ≤ `exit_z`, or at once when the price has moved `stop_loss` (a fraction of the entry
//! price) against it. All comparisons are inclusive.
//!
//! The rule of the mean-reversion strategy herd replaces, with its gaps closed:
//! - it uses the newest `lookback` bars, and "flat" is this instance's own position;
//! - a window without spread (σ = 0) holds and says so, instead of dividing by zero;
//! - an optional stop-loss (the seed held a losing short until z reverted, however far);
//! - while one of its orders for a symbol is not final, it does nothing with that symbol.

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use super::Strategy;
use super::indicators::zscore;
use crate::domain::{
    Action, DataNeeds, Decision, MarketView, OrderIntent, Side, Symbol, Timeframe,
};

/// `[strategies.params]` of a `mean_reversion` instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeanReversionParams {
    /// Closes in the window (the newest ones, the current included).
    pub lookback: usize,
    /// |z| at which a flat instance enters.
    pub entry_z: f64,
    /// |z| at or below which a position is closed.
    pub exit_z: f64,
    /// Shares bought or sold short on entry.
    pub position_size: Decimal,
    /// Whether z ≥ entry_z opens a short (the seed's rule) or is ignored.
    pub allow_short: bool,
    /// Close a position whose price moved this fraction of its entry price against it
    /// (0.05 = 5 %); unset, no stop.
    pub stop_loss: Option<f64>,
    pub timeframe: Timeframe,
}

impl Default for MeanReversionParams {
    fn default() -> Self {
        Self {
            lookback: 20,
            entry_z: 2.0,
            exit_z: 0.5,
            position_size: Decimal::from(100),
            allow_short: true,
            stop_loss: None,
            timeframe: Timeframe::Minutes(5),
        }
    }
}

impl MeanReversionParams {
    /// Range checks; the error is `.key = value: what is allowed`.
    pub fn check(&self) -> Result<(), String> {
        if !(3..=1000).contains(&self.lookback) {
            return Err(format!(
                ".lookback = {}: must be between 3 and 1000",
                self.lookback
            ));
        }
        if !(self.entry_z.is_finite() && self.entry_z > 0.0 && self.entry_z <= 10.0) {
            return Err(format!(
                ".entry_z = {}: must be greater than 0 and at most 10",
                self.entry_z
            ));
        }
        if !(self.exit_z.is_finite() && self.exit_z >= 0.0 && self.exit_z < self.entry_z) {
            return Err(format!(
                ".exit_z = {}: must be at least 0 and below entry_z ({})",
                self.exit_z, self.entry_z
            ));
        }
        if self.position_size <= Decimal::ZERO {
            return Err(format!(
                ".position_size = {}: must be greater than 0",
                self.position_size
            ));
        }
        if let Some(stop) = self.stop_loss
            && !(stop.is_finite() && stop > 0.0 && stop < 1.0)
        {
            return Err(format!(
                ".stop_loss = {stop}: must be greater than 0 and less than 1 (0.05 = 5 %)"
            ));
        }
        Ok(())
    }
}

pub struct MeanReversion {
    symbols: Vec<Symbol>,
    params: MeanReversionParams,
}

impl MeanReversion {
    pub fn new(symbols: Vec<Symbol>, params: MeanReversionParams) -> Self {
        Self { symbols, params }
    }

    fn decide_one(&self, symbol: &Symbol, view: &MarketView) -> Decision {
        let p = &self.params;
        let decision = |signal, action| Decision {
            instance: None,
            symbol: symbol.clone(),
            signal,
            action,
        };
        let bars = view.bars(symbol);
        let window = &bars[bars.len().saturating_sub(p.lookback)..];
        let Some(last) = window.last().filter(|_| window.len() >= p.lookback) else {
            let need = p.lookback;
            return decision(
                None,
                Action::NoData {
                    have: window.len(),
                    need,
                },
            );
        };
        let closes: Vec<f64> = window.iter().map(|b| b.close).collect();
        if closes.iter().any(|c| !c.is_finite() || *c <= 0.0) {
            let reason = "invalid price in bars";
            return decision(None, Action::Hold { reason });
        }
        let Some(z) = zscore(last.close, &closes) else {
            let reason = "zero variance: the window's closes are all equal";
            return decision(None, Action::Hold { reason });
        };
        let signal = Some(z);
        if view.has_pending(symbol) {
            let reason = "order pending";
            return decision(signal, Action::Hold { reason });
        }
        let order = |side, qty, reason: String| {
            Action::Order(OrderIntent {
                symbol: symbol.clone(),
                side,
                qty,
                decided_on: last.time,
                reference_price: Some(last.close),
                reason,
            })
        };
        let holding = view.holding(symbol);
        if !holding.qty.is_zero() {
            let close_side = if holding.qty > Decimal::ZERO {
                Side::Sell
            } else {
                Side::Buy
            };
            let qty = holding.qty.abs();
            let price = Decimal::from_f64(last.close).unwrap_or_default();
            let against = holding.adverse_move(price);
            if let Some(stop) = p.stop_loss.and_then(Decimal::from_f64)
                && against >= stop
            {
                let why = format!("stop loss: the price moved {against:.4} against the entry");
                return decision(signal, order(close_side, qty, why));
            }
            if z.abs() <= p.exit_z {
                let why = format!("z {z:.3} back within ±{}", p.exit_z);
                return decision(signal, order(close_side, qty, why));
            }
            let reason = "holding: z outside the exit band";
            return decision(signal, Action::Hold { reason });
        }
        let action = if z <= -p.entry_z {
            order(
                Side::Buy,
                p.position_size,
                format!("z {z:.3} <= -{}", p.entry_z),
            )
        } else if z >= p.entry_z && p.allow_short {
            order(
                Side::Sell,
                p.position_size,
                format!("z {z:.3} >= {}", p.entry_z),
            )
        } else if z >= p.entry_z {
            Action::Hold {
                reason: "short signal, but allow_short is off",
            }
        } else {
            Action::Hold {
                reason: "no signal",
            }
        };
        decision(signal, action)
    }
}

impl Strategy for MeanReversion {
    /// About 0.7 µs a tick at the default settings (BENCHMARKS.md, strategy cores).
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
    use crate::domain::Holding;
    use crate::strategy::testing::{minute_bars as bars, sym, t0};

    fn gld() -> Symbol {
        sym("GLD")
    }

    /// 19 closes alternating 100 ± 1, then `last`: mean ≈ 100, σ ≈ 1, so z tracks `last`.
    fn series(last: f64) -> Vec<f64> {
        let mut c: Vec<f64> = (0..19)
            .map(|i| if i % 2 == 0 { 99.0 } else { 101.0 })
            .collect();
        c.push(last);
        c
    }

    fn view(closes: &[f64], qty: i64, entry: f64) -> MarketView {
        let mut v = MarketView {
            market_open: true,
            ..MarketView::default()
        };
        v.bars.insert(gld(), bars(closes));
        let mut h = Holding::default();
        h.apply(Decimal::from(qty), Decimal::from_f64(entry).unwrap());
        v.positions.insert(gld(), h);
        v
    }

    fn decide_with(params: MeanReversionParams, v: &MarketView) -> Decision {
        MeanReversion::new(vec![gld()], params).decide(v).remove(0)
    }

    fn decide(closes: &[f64], qty: i64, entry: f64) -> Decision {
        decide_with(MeanReversionParams::default(), &view(closes, qty, entry))
    }

    fn order(d: &Decision) -> &OrderIntent {
        match &d.action {
            Action::Order(o) => o,
            other => panic!("expected an order, got {other:?} ({:?})", d.signal),
        }
    }

    #[test]
    fn the_zscore_is_the_newest_close_against_the_windows_mean_and_population_std() {
        // Known answer (Python statistics.pstdev): closes 1..=5, newest 5: z = (5−3)/√2.
        let params = MeanReversionParams {
            lookback: 5,
            ..MeanReversionParams::default()
        };
        let d = decide_with(params, &view(&[1.0, 2.0, 3.0, 4.0, 5.0], 0, 0.0));
        assert!((d.signal.unwrap() - std::f64::consts::SQRT_2).abs() < 1e-12);
    }

    #[test]
    fn flat_enters_long_below_minus_entry_and_short_above_plus_entry() {
        let buy = decide(&series(95.0), 0, 0.0);
        assert!(buy.signal.unwrap() <= -2.0, "{buy:?}");
        let o = order(&buy);
        assert_eq!((o.side, o.qty), (Side::Buy, Decimal::from(100)));
        assert_eq!(o.decided_on, t0() + Duration::minutes(95));
        let short = decide(&series(105.0), 0, 0.0);
        assert_eq!(order(&short).side, Side::Sell);
    }

    #[test]
    fn entry_is_inclusive_at_exactly_entry_z() {
        // Ten 100s and ten 102s: mean 101, σ 1, newest 102 → z exactly 1.
        let mut c = vec![100.0; 10];
        c.extend([102.0; 10]);
        let params = MeanReversionParams {
            entry_z: 1.0,
            exit_z: 0.5,
            ..MeanReversionParams::default()
        };
        let d = decide_with(params, &view(&c, 0, 0.0));
        assert_eq!(d.signal, Some(1.0));
        assert_eq!(order(&d).side, Side::Sell);
    }

    #[test]
    fn a_position_closes_when_z_returns_within_the_exit_band_and_holds_outside_it() {
        let long_exit = decide(&series(100.2), 40, 95.0);
        let o = order(&long_exit);
        assert_eq!((o.side, o.qty), (Side::Sell, Decimal::from(40)));
        let short_exit = decide(&series(100.2), -100, 105.0);
        let o = order(&short_exit);
        assert_eq!((o.side, o.qty), (Side::Buy, Decimal::from(100)));
        let still_out = decide(&series(98.0), 40, 95.0);
        assert!(
            matches!(still_out.action, Action::Hold { .. }),
            "{still_out:?}"
        );
    }

    #[test]
    fn a_stop_loss_closes_a_position_that_moved_against_it_however_far_z_is() {
        let params = MeanReversionParams {
            stop_loss: Some(0.05),
            ..MeanReversionParams::default()
        };
        // Short at 100, price now 106: 6 % against, z far outside the exit band.
        let d = decide_with(params.clone(), &view(&series(106.0), -100, 100.0));
        let o = order(&d);
        assert_eq!((o.side, o.qty), (Side::Buy, Decimal::from(100)));
        assert!(o.reason.starts_with("stop loss"), "{}", o.reason);
        // Without a stop (the seed) it keeps holding.
        let seed = decide(&series(106.0), -100, 100.0);
        assert!(matches!(seed.action, Action::Hold { .. }));
        // 4 % against: within the stop.
        let d = decide_with(params, &view(&series(104.0), -100, 100.0));
        assert!(matches!(d.action, Action::Hold { .. }));
    }

    #[test]
    fn zero_variance_holds_and_says_why() {
        let d = decide(&[100.0; 20], 0, 0.0);
        assert_eq!(d.signal, None);
        assert!(matches!(d.action, Action::Hold { reason } if reason.starts_with("zero variance")));
    }

    #[test]
    fn too_few_bars_and_pending_orders_decide_nothing() {
        assert_eq!(
            decide(&[100.0; 5], 0, 0.0).action,
            Action::NoData { have: 5, need: 20 }
        );
        let mut v = view(&series(95.0), 0, 0.0);
        v.pending.insert(gld(), Decimal::from(100));
        let d = decide_with(MeanReversionParams::default(), &v);
        assert_eq!(
            d.action,
            Action::Hold {
                reason: "order pending"
            }
        );
    }

    #[test]
    fn shorting_can_be_switched_off() {
        let params = MeanReversionParams {
            allow_short: false,
            ..MeanReversionParams::default()
        };
        let d = decide_with(params, &view(&series(105.0), 0, 0.0));
        assert!(matches!(d.action, Action::Hold { .. }), "{d:?}");
    }

    #[test]
    fn a_gap_in_the_bars_changes_nothing_but_the_window() {
        // The core reads closes, not times: a missing bar only shifts which closes are newest.
        let mut gapped = bars(&series(95.0)).to_vec();
        for b in gapped.iter_mut().skip(10) {
            b.time += Duration::hours(3);
        }
        let mut v = view(&series(95.0), 0, 0.0);
        v.bars.insert(gld(), gapped.into());
        let d = decide_with(MeanReversionParams::default(), &v);
        assert_eq!(order(&d).side, Side::Buy);
    }

    #[test]
    fn params_out_of_range_are_refused_with_the_key() {
        let cases = [
            (
                MeanReversionParams {
                    lookback: 2,
                    ..Default::default()
                },
                ".lookback = 2",
            ),
            (
                MeanReversionParams {
                    entry_z: 0.0,
                    ..Default::default()
                },
                ".entry_z = 0",
            ),
            (
                MeanReversionParams {
                    exit_z: 2.0,
                    ..Default::default()
                },
                ".exit_z = 2",
            ),
            (
                MeanReversionParams {
                    stop_loss: Some(1.5),
                    ..Default::default()
                },
                ".stop_loss = 1.5",
            ),
            (
                MeanReversionParams {
                    position_size: Decimal::ZERO,
                    ..Default::default()
                },
                ".position_size = 0",
            ),
        ];
        for (params, key) in cases {
            assert!(params.check().unwrap_err().starts_with(key), "{key}");
        }
        assert_eq!(MeanReversionParams::default().check(), Ok(()));
    }
}
