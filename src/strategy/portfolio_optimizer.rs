//! Portfolio optimizer: hold its symbols in mean–variance optimal weights and rebalance when
//! they drift.
//!
//! Each tick: simple returns of the newest `lookback` periods, aligned by bar time across the
//! symbols; their mean and covariance; long-only weights that maximise the Sharpe ratio or
//! minimise variance (`portfolio.rs`, a deterministic solver). The instance's book is its own:
//! its value is `capital` plus its realized and unrealized P&L, and a symbol's current weight is
//! its holding's value over that. When any weight is more than `rebalance_threshold` from its
//! target, it trades every symbol whose weight is more than `min_trade` off, in whole shares.
//!
//! The rule of the optimizer herd replaces, with its bugs fixed: a deterministic solver (not
//! 10,000 unseeded random draws), returns aligned by date (not by index), a daily Sharpe and an
//! annual risk-free rate made consistent, and weights of its own capital (not of the whole
//! account, which other strategies trade too).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};

use super::Strategy;
use super::indicators::returns;
use super::portfolio::{Objective, moments, optimize};
use crate::domain::{
    Action, Bar, DataNeeds, Decision, MarketView, OrderIntent, Side, Symbol, Timeframe,
};

/// `[strategies.params]` of a `portfolio_optimizer` instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortfolioOptimizerParams {
    /// `max_sharpe` or `min_variance`.
    pub method: Objective,
    /// Returns in the estimation window (it needs one bar more per symbol).
    pub lookback: usize,
    pub timeframe: Timeframe,
    /// USD this instance manages; its weights are of this plus its P&L.
    pub capital: Decimal,
    /// Rebalance when any weight is further than this from its target (0.05 = 5 points).
    pub rebalance_threshold: f64,
    /// On a rebalance, trade only symbols further than this from their target.
    pub min_trade: f64,
    /// Annual risk-free rate for the Sharpe ratio (0.02 = 2 %).
    pub risk_free_rate: f64,
}

impl Default for PortfolioOptimizerParams {
    fn default() -> Self {
        Self {
            method: Objective::MaxSharpe,
            lookback: 60,
            timeframe: Timeframe::Day,
            capital: Decimal::from(10_000),
            rebalance_threshold: 0.05,
            min_trade: 0.01,
            risk_free_rate: 0.02,
        }
    }
}

impl PortfolioOptimizerParams {
    /// Range checks; the error is `.key = value: what is allowed`.
    pub fn check(&self) -> Result<(), String> {
        if !(10..=1000).contains(&self.lookback) {
            return Err(format!(
                ".lookback = {}: must be between 10 and 1000",
                self.lookback
            ));
        }
        if self.capital <= Decimal::ZERO {
            return Err(format!(
                ".capital = {}: must be greater than 0",
                self.capital
            ));
        }
        let t = self.rebalance_threshold;
        if !(t.is_finite() && t > 0.0 && t < 1.0) {
            return Err(format!(
                ".rebalance_threshold = {t}: must be greater than 0 and less than 1 (0.05 = 5 points)"
            ));
        }
        let m = self.min_trade;
        if !(m.is_finite() && m >= 0.0 && m <= t) {
            return Err(format!(
                ".min_trade = {m}: must be at least 0 and at most rebalance_threshold ({t})"
            ));
        }
        let r = self.risk_free_rate;
        if !(r.is_finite() && (0.0..0.5).contains(&r)) {
            return Err(format!(
                ".risk_free_rate = {r}: must be at least 0 and below 0.5 (0.02 = 2 % a year)"
            ));
        }
        Ok(())
    }

    /// The risk-free rate per bar of `timeframe` (252 sessions of 6.5 hours a year).
    fn risk_free_per_period(&self) -> f64 {
        let periods = match self.timeframe {
            Timeframe::Day => 252.0,
            Timeframe::Hours(h) => 252.0 * 6.5 / f64::from(h),
            Timeframe::Minutes(m) => 252.0 * 390.0 / f64::from(m),
        };
        self.risk_free_rate / periods
    }
}

pub struct PortfolioOptimizer {
    symbols: Vec<Symbol>,
    params: PortfolioOptimizerParams,
}

impl PortfolioOptimizer {
    pub fn new(symbols: Vec<Symbol>, params: PortfolioOptimizerParams) -> Self {
        Self { symbols, params }
    }

    /// The same decision for every symbol.
    fn all(&self, action: &Action) -> Vec<Decision> {
        self.symbols
            .iter()
            .map(|s| Decision {
                instance: None,
                symbol: s.clone(),
                signal: None,
                action: action.clone(),
            })
            .collect()
    }

    /// Closes of every symbol at the newest `lookback + 1` bar times they all share (a bar with
    /// an unusable close counts as missing). A view's bars are sorted by time without
    /// duplicates (the broker's market data makes them so), so all symbols are walked newest
    /// first together, as in a merge: one pass, no lookups.
    fn aligned_closes(&self, view: &MarketView) -> Result<(Vec<Vec<f64>>, DateTime<Utc>), Action> {
        let need = self.params.lookback + 1;
        let usable = |b: &&Bar| b.close.is_finite() && b.close > 0.0;
        let bars: Vec<&[Bar]> = self.symbols.iter().map(|s| view.bars(s)).collect();
        let Some((first, others)) = bars.split_first() else {
            return Err(Action::NoData { have: 0, need });
        };
        // Per other symbol: how many of its bars are not newer than the time being matched.
        let mut ends: Vec<usize> = others.iter().map(|b| b.len()).collect();
        let mut times = Vec::with_capacity(need);
        let mut series = vec![Vec::with_capacity(need); self.symbols.len()];
        let mut row = Vec::with_capacity(self.symbols.len());
        for bar in first.iter().rev().filter(usable) {
            row.clear();
            row.push(bar.close);
            for (other, end) in others.iter().zip(&mut ends) {
                while *end > 0 && other[*end - 1].time > bar.time {
                    *end -= 1;
                }
                match other[..*end].last().filter(usable) {
                    Some(b) if b.time == bar.time => row.push(b.close),
                    _ => break,
                }
            }
            if row.len() < self.symbols.len() {
                continue;
            }
            times.push(bar.time);
            for (closes, close) in series.iter_mut().zip(&row) {
                closes.push(*close);
            }
            if times.len() == need {
                break;
            }
        }
        let (Some(&newest), true) = (times.first(), times.len() == need) else {
            let have = times.len();
            return Err(Action::NoData { have, need });
        };
        for closes in &mut series {
            closes.reverse();
        }
        Ok((series, newest))
    }
}

impl Strategy for PortfolioOptimizer {
    /// About 9 µs a tick at the default settings (BENCHMARKS.md, strategy cores).
    fn decides_inline(&self) -> bool {
        true
    }

    fn needs(&self) -> DataNeeds {
        DataNeeds {
            timeframe: self.params.timeframe,
            bars: self.params.lookback + 1,
            account: false,
            only_when_open: true,
        }
    }

    fn decide(&mut self, view: &MarketView) -> Vec<Decision> {
        let p = &self.params;
        let (closes, decided_on) = match self.aligned_closes(view) {
            Ok(c) => c,
            Err(action) => return self.all(&action),
        };
        let series: Vec<Vec<f64>> = closes.iter().map(|c| returns(c)).collect();
        let weights =
            match moments(&series).and_then(|m| optimize(&m, p.method, p.risk_free_per_period())) {
                Ok(w) => w,
                Err(why) => {
                    let reason = match why {
                        super::portfolio::Unsolvable::NoExcessReturn => {
                            "no weights: no symbol's mean return beats the risk-free rate"
                        }
                        super::portfolio::Unsolvable::NoVariance => {
                            "no weights: the returns have no variance"
                        }
                        _ => "no weights: the returns cannot be estimated",
                    };
                    return self.all(&Action::Hold { reason });
                }
            };
        if self.symbols.iter().any(|s| view.has_pending(s)) {
            let targets = self.all(&Action::Hold {
                reason: "rebalance in progress: an order is pending",
            });
            return with_targets(targets, &weights);
        }
        let prices: Vec<f64> = closes.iter().map(|c| c[c.len() - 1]).collect();
        let holdings: Vec<_> = self.symbols.iter().map(|s| view.holding(s)).collect();
        let value = p.capital.to_f64().unwrap_or(0.0)
            + holdings
                .iter()
                .zip(&prices)
                .map(|(h, price)| {
                    let qty = h.qty.to_f64().unwrap_or(0.0);
                    let avg = h.avg_price.to_f64().unwrap_or(0.0);
                    h.realized_pnl.to_f64().unwrap_or(0.0) + qty * (price - avg)
                })
                .sum::<f64>();
        if value <= 0.0 {
            let reason = "no capital left: realized and unrealized losses exceed it";
            return with_targets(self.all(&Action::Hold { reason }), &weights);
        }
        let current: Vec<f64> = holdings
            .iter()
            .zip(&prices)
            .map(|(h, price)| h.qty.to_f64().unwrap_or(0.0) * price / value)
            .collect();
        let drift = current
            .iter()
            .zip(&weights)
            .map(|(c, w)| (c - w).abs())
            .fold(0.0, f64::max);
        let mut decisions = Vec::with_capacity(self.symbols.len());
        for (i, symbol) in self.symbols.iter().enumerate() {
            let (target, now, price) = (weights[i], current[i], prices[i]);
            let gap = target - now;
            let shares = (gap.abs() * value / price).floor();
            let action = if drift <= p.rebalance_threshold {
                Action::Hold {
                    reason: "every weight within the rebalance threshold",
                }
            } else if gap.abs() <= p.min_trade || shares < 1.0 {
                Action::Hold {
                    reason: "within min_trade of its target",
                }
            } else {
                Action::Order(OrderIntent {
                    symbol: symbol.clone(),
                    side: if gap > 0.0 { Side::Buy } else { Side::Sell },
                    qty: Decimal::from_f64(shares).unwrap_or_default(),
                    decided_on,
                    reference_price: Some(price),
                    reason: format!("weight {now:.4} -> target {target:.4}"),
                })
            };
            decisions.push(Decision {
                instance: None,
                symbol: symbol.clone(),
                signal: Some(target),
                action,
            });
        }
        decisions
    }
}

/// Decisions with each symbol's target weight as its signal.
fn with_targets(mut decisions: Vec<Decision>, weights: &[f64]) -> Vec<Decision> {
    for (d, w) in decisions.iter_mut().zip(weights) {
        d.signal = Some(*w);
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Holding;
    use crate::strategy::testing::{daily_bars as bars, day, sym};

    /// Two symbols with independent-looking wiggles and the same upward drift.
    fn market(n: usize) -> MarketView {
        let a: Vec<f64> = (0..n)
            .map(|i| 100.0 * (1.0 + 0.001 * i as f64 + 0.01 * ((i * 7 % 5) as f64 - 2.0) / 2.0))
            .collect();
        let b: Vec<f64> = (0..n)
            .map(|i| 50.0 * (1.0 + 0.001 * i as f64 + 0.01 * ((i * 3 % 4) as f64 - 1.5) / 1.5))
            .collect();
        let mut v = MarketView {
            market_open: true,
            ..MarketView::default()
        };
        v.bars.insert(sym("AAA"), bars(&a));
        v.bars.insert(sym("BBB"), bars(&b));
        v
    }

    fn params(method: Objective) -> PortfolioOptimizerParams {
        PortfolioOptimizerParams {
            method,
            lookback: 20,
            ..PortfolioOptimizerParams::default()
        }
    }

    fn optimizer(method: Objective) -> PortfolioOptimizer {
        PortfolioOptimizer::new(vec![sym("AAA"), sym("BBB")], params(method))
    }

    fn orders(decisions: &[Decision]) -> Vec<&OrderIntent> {
        decisions
            .iter()
            .filter_map(|d| match &d.action {
                Action::Order(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn from_flat_it_buys_its_target_weights_of_its_capital_in_whole_shares() {
        let view = market(30);
        let decisions = optimizer(Objective::MinVariance).decide(&view);
        let targets: Vec<f64> = decisions.iter().map(|d| d.signal.unwrap()).collect();
        assert!((targets.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let bought = orders(&decisions);
        assert_eq!(bought.len(), 2, "{decisions:?}");
        for (o, w) in bought.iter().zip(&targets) {
            assert_eq!(o.side, Side::Buy);
            let price = o.reference_price.unwrap();
            let expected = (w * 10_000.0 / price).floor();
            assert_eq!(o.qty, Decimal::from_f64(expected).unwrap());
            assert_eq!(o.decided_on, day(29), "decided on the newest common bar");
        }
    }

    #[test]
    fn the_same_bars_give_the_same_weights() {
        let view = market(30);
        let a = optimizer(Objective::MaxSharpe).decide(&view);
        let b = optimizer(Objective::MaxSharpe).decide(&view);
        assert_eq!(a, b);
    }

    #[test]
    fn a_book_within_the_threshold_holds_and_one_that_drifted_rebalances() {
        let view = market(30);
        let mut opt = optimizer(Objective::MinVariance);
        let first = opt.decide(&view);
        let mut held = view.clone();
        for o in orders(&first) {
            let mut h = Holding::default();
            h.apply(
                o.qty,
                Decimal::from_f64(o.reference_price.unwrap()).unwrap(),
            );
            held.positions.insert(o.symbol.clone(), h);
        }
        let again = opt.decide(&held);
        assert!(orders(&again).is_empty(), "{again:?}");
        // Sell all of one symbol outside the optimizer: now far from its target.
        held.positions.remove(&sym("AAA"));
        let drifted = opt.decide(&held);
        let o = orders(&drifted);
        assert_eq!(o.len(), 1, "{drifted:?}");
        assert_eq!((o[0].symbol.as_str(), o[0].side), ("AAA", Side::Buy));
    }

    #[test]
    fn returns_are_aligned_by_time_not_by_position() {
        // BBB misses a day: only the times both have count, so 30 bars of AAA and 29 of BBB
        // leave 29 common times, one short of lookback + 1 = 30.
        let mut view = market(30);
        let gapped: Vec<Bar> = view
            .bars(&sym("BBB"))
            .iter()
            .copied()
            .filter(|b| b.time != day(10))
            .collect();
        view.bars.insert(sym("BBB"), gapped.into());
        let mut p = params(Objective::MinVariance);
        p.lookback = 29;
        let opt = || PortfolioOptimizer::new(vec![sym("AAA"), sym("BBB")], p.clone());
        let d = opt().decide(&view);
        assert_eq!(d[0].action, Action::NoData { have: 29, need: 30 });
        // A bar without a usable close is missing too.
        let mut broken = view.bars(&sym("AAA")).to_vec();
        broken[20].close = f64::NAN;
        view.bars.insert(sym("AAA"), broken.into());
        let d = opt().decide(&view);
        assert_eq!(d[0].action, Action::NoData { have: 28, need: 30 });
    }

    #[test]
    fn flat_prices_have_no_variance_and_hold_with_that_reason() {
        let mut flat = MarketView::default();
        flat.bars.insert(sym("AAA"), bars(&[100.0; 30]));
        flat.bars.insert(sym("BBB"), bars(&[50.0; 30]));
        // Minimum variance has nothing to minimise; maximum Sharpe stops earlier, as a zero
        // mean return cannot beat the risk-free rate.
        let cases = [
            (
                Objective::MinVariance,
                "no weights: the returns have no variance",
            ),
            (
                Objective::MaxSharpe,
                "no weights: no symbol's mean return beats the risk-free rate",
            ),
        ];
        for (method, why) in cases {
            let d = optimizer(method).decide(&flat);
            assert!(orders(&d).is_empty(), "{d:?}");
            assert_eq!(d[0].action, Action::Hold { reason: why }, "{method:?}");
        }
    }

    #[test]
    fn pending_orders_and_no_excess_return_hold_with_their_reasons() {
        let mut view = market(30);
        view.pending.insert(sym("BBB"), Decimal::ONE);
        let d = optimizer(Objective::MinVariance).decide(&view);
        assert!(orders(&d).is_empty());
        assert!(
            matches!(d[0].action, Action::Hold { reason } if reason.starts_with("rebalance in progress"))
        );
        let falling = |start: f64, rate: f64, k: usize| -> Vec<f64> {
            (0..30)
                .map(|i| start * rate.powi(i as i32) * (1.0 + 0.003 * (i % k) as f64))
                .collect()
        };
        let mut down = MarketView::default();
        down.bars.insert(sym("AAA"), bars(&falling(100.0, 0.99, 3)));
        down.bars.insert(sym("BBB"), bars(&falling(50.0, 0.985, 2)));
        let d = optimizer(Objective::MaxSharpe).decide(&down);
        assert!(
            matches!(d[0].action, Action::Hold { reason } if reason.contains("risk-free")),
            "{d:?}"
        );
    }

    #[test]
    fn params_out_of_range_are_refused_with_the_key() {
        let base = PortfolioOptimizerParams::default();
        let cases = [
            (
                PortfolioOptimizerParams {
                    lookback: 5,
                    ..base.clone()
                },
                ".lookback = 5",
            ),
            (
                PortfolioOptimizerParams {
                    capital: Decimal::ZERO,
                    ..base.clone()
                },
                ".capital = 0",
            ),
            (
                PortfolioOptimizerParams {
                    rebalance_threshold: 0.0,
                    ..base.clone()
                },
                ".rebalance_threshold = 0",
            ),
            (
                PortfolioOptimizerParams {
                    min_trade: 0.2,
                    ..base.clone()
                },
                ".min_trade = 0.2",
            ),
            (
                PortfolioOptimizerParams {
                    risk_free_rate: 0.9,
                    ..base.clone()
                },
                ".risk_free_rate = 0.9",
            ),
        ];
        for (params, key) in cases {
            assert!(params.check().unwrap_err().starts_with(key), "{key}");
        }
        assert_eq!(base.check(), Ok(()));
    }
}
