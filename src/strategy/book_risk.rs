//! Risk figures of a book of holdings, by historical simulation: today's quantities replayed
//! over the closes of a window, so every figure is about what is held now.
//!
//! P&L per period: `Σ qty · (close_t − close_{t−1})`. Value at risk at confidence `c`: sort the
//! P&L ascending, `k = ⌊(1 − c)·n⌋`, VaR = −P&L[k] (the loss exceeded in a share `1 − c` of
//! periods); CVaR = −mean(P&L[0..=k]), the mean of the losses at or beyond it. Both in USD and
//! as a fraction of the book's gross exposure. Drawdowns and the Sharpe ratio are of the equity
//! curve `exposure + cumulative P&L` over the window.
//!
//! Invariants:
//! - Pure and deterministic.
//! - VaR ≤ CVaR (the mean of the worst outcomes is at least as bad as the best of them).
//! - Fewer periods than asked for is an error that says how many there are.
//! - Holdings are replayed over the periods they all have bars for, never position by position.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::indicators::{Drawdown, drawdown, mean, returns, sample_std};
use crate::domain::Bar;

/// The closes of each series at the bar times every series has, oldest first. A venue may have
/// no bar for a period (on `iex`, a minute without trades): replaying holdings position by
/// position would then add up P&L of different periods, so the replay keeps only the periods
/// all holdings share.
///
/// A venue's window is already in time order, one bar a time, so the common times are found by
/// walking the series side by side (no set is built: sets of times were a third of a risk
/// manager's tick); a series out of order, or with a time twice, is put in order first and
/// keeps its first bar of each time.
pub fn closes_at_common_times(series: &[&[Bar]]) -> Vec<Vec<f64>> {
    let ordered: Vec<Cow<'_, [Bar]>> = series.iter().map(|bars| in_time_order(bars)).collect();
    let Some((first, rest)) = ordered.split_first() else {
        return Vec::new();
    };
    let mut common: Vec<DateTime<Utc>> = first.iter().map(|b| b.time).collect();
    for bars in rest {
        let mut times = bars.iter().map(|b| b.time).peekable();
        common.retain(|t| {
            while times.next_if(|u| u < t).is_some() {}
            times.next_if_eq(t).is_some()
        });
    }
    ordered
        .iter()
        .map(|bars| {
            // `common` is in order and every one of its times is in `bars`.
            let mut wanted = common.iter().peekable();
            bars.iter()
                .filter(|b| wanted.next_if_eq(&&b.time).is_some())
                .map(|b| b.close)
                .collect()
        })
        .collect()
}

/// `bars` strictly in time order: as they are when they already are, else sorted (stably) with
/// the first bar of each time kept.
fn in_time_order(bars: &[Bar]) -> Cow<'_, [Bar]> {
    if bars.windows(2).all(|w| w[0].time < w[1].time) {
        return Cow::Borrowed(bars);
    }
    let mut sorted = bars.to_vec();
    sorted.sort_by_key(|b| b.time);
    sorted.dedup_by_key(|b| b.time);
    Cow::Owned(sorted)
}

/// One holding replayed: its signed quantity and the closes of the window, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed<'a> {
    pub qty: f64,
    pub closes: &'a [f64],
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BookFigures {
    /// P&L periods the figures rest on.
    pub observations: usize,
    /// The confidence of VaR and CVaR (0.95).
    pub confidence: f64,
    /// Gross exposure now: Σ |qty · last close|.
    pub exposure: f64,
    pub var_usd: f64,
    pub cvar_usd: f64,
    /// VaR and CVaR over the gross exposure (0 when there is none).
    pub var: f64,
    pub cvar: f64,
    pub max_drawdown: f64,
    pub current_drawdown: f64,
    /// Annualised: mean over sample standard deviation of the equity curve's returns, × √periods
    /// a year; `None` when the curve does not move.
    pub sharpe: Option<f64>,
}

/// Why no figures came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too few observations: {have} periods, at least {need} needed")]
pub struct TooFew {
    pub have: usize,
    pub need: usize,
}

/// The figures of `book` over its shortest series (every series ends at the same period).
pub fn figures(
    book: &[Replayed<'_>],
    confidence: f64,
    min_observations: usize,
    periods_per_year: f64,
) -> Result<BookFigures, TooFew> {
    let len = book.iter().map(|h| h.closes.len()).min().unwrap_or(0);
    let periods = len.saturating_sub(1);
    let need = min_observations.max(2);
    if periods < need {
        return Err(TooFew {
            have: periods,
            need,
        });
    }
    fn tail<'a>(h: &Replayed<'a>, len: usize) -> &'a [f64] {
        &h.closes[h.closes.len() - len..]
    }
    let pnl: Vec<f64> = (1..len)
        .map(|t| {
            book.iter()
                .map(|h| h.qty * (tail(h, len)[t] - tail(h, len)[t - 1]))
                .sum()
        })
        .collect();
    let exposure: f64 = book
        .iter()
        .map(|h| (h.qty * tail(h, len)[len - 1]).abs())
        .sum();
    let mut sorted = pnl.clone();
    sorted.sort_by(f64::total_cmp);
    let k = (((1.0 - confidence) * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    let var_usd = -sorted[k];
    let cvar_usd = -mean(&sorted[..=k]).unwrap_or(0.0);
    let start = book
        .iter()
        .map(|h| (h.qty * tail(h, len)[0]).abs())
        .sum::<f64>();
    let mut equity = Vec::with_capacity(len);
    equity.push(start);
    for p in &pnl {
        let last = equity[equity.len() - 1];
        equity.push(last + p);
    }
    let Drawdown { max, current } = drawdown(&equity).unwrap_or(Drawdown {
        max: 0.0,
        current: 0.0,
    });
    let r = returns(&equity);
    let sharpe = match (mean(&r), sample_std(&r)) {
        (Some(m), Some(s)) if s > 0.0 => Some(m / s * periods_per_year.sqrt()),
        _ => None,
    };
    let of_exposure = |usd: f64| if exposure > 0.0 { usd / exposure } else { 0.0 };
    Ok(BookFigures {
        observations: periods,
        confidence,
        exposure,
        var_usd,
        cvar_usd,
        var: of_exposure(var_usd),
        cvar: of_exposure(cvar_usd),
        max_drawdown: max,
        current_drawdown: current,
        sharpe,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn holdings_are_replayed_over_the_periods_they_share() {
        let t =
            |m: i64| chrono::DateTime::<Utc>::from_timestamp(1_772_463_600 + 60 * m, 0).unwrap();
        let bar = |m: i64, close: f64| Bar::flat(t(m), close);
        // QQQ had no trade in minute 2: SPY's minute-2 close must not pair with QQQ's minute 3.
        let spy = [bar(0, 10.0), bar(1, 11.0), bar(2, 12.0), bar(3, 13.0)];
        let qqq = [bar(0, 20.0), bar(1, 21.0), bar(3, 23.0)];
        let aligned = closes_at_common_times(&[&spy, &qqq]);
        assert_eq!(
            aligned,
            vec![vec![10.0, 11.0, 13.0], vec![20.0, 21.0, 23.0]]
        );
    }

    #[test]
    fn var_and_cvar_of_a_known_book() {
        // 10 shares; closes give P&L per period of +10, −20, +5, −40, +15, −10, +30, −5, +20, −15,
        // +25 … (21 periods): sorted, the worst is −40, then −20, −15 …
        let closes: Vec<f64> = [
            100.0, 101.0, 99.0, 99.5, 95.5, 97.0, 96.0, 99.0, 98.5, 100.5, 99.0, 101.5, 101.0,
            102.0, 101.8, 102.5, 102.0, 103.0, 102.7, 103.5, 103.2, 104.0,
        ]
        .to_vec();
        let book = [Replayed {
            qty: 10.0,
            closes: &closes,
        }];
        let f = figures(&book, 0.95, 20, 252.0).unwrap();
        assert_eq!(f.observations, 21);
        // k = ⌊0.05 · 21⌋ = 1: VaR is the second-worst loss, CVaR the mean of the two worst.
        assert!((f.var_usd - 20.0).abs() < 1e-9, "{f:?}");
        assert!((f.cvar_usd - 30.0).abs() < 1e-9, "{f:?}");
        assert!((f.exposure - 1040.0).abs() < 1e-9);
        assert!((f.var - 20.0 / 1040.0).abs() < 1e-12);
        // Equity 1000 → … the deepest fall is from 1010 to 955.
        assert!((f.max_drawdown - 55.0 / 1010.0).abs() < 1e-12, "{f:?}");
        assert_eq!(f.current_drawdown, 0.0, "it ends at its peak");
    }

    #[test]
    fn a_short_book_loses_when_prices_rise() {
        let closes = [100.0, 110.0, 120.0];
        let f = figures(
            &[Replayed {
                qty: -1.0,
                closes: &closes,
            }],
            0.5,
            2,
            252.0,
        )
        .unwrap();
        assert!(f.var_usd > 0.0 && f.max_drawdown > 0.0, "{f:?}");
    }

    #[test]
    fn too_few_observations_says_how_many() {
        let closes = [100.0, 101.0, 102.0];
        let e = figures(
            &[Replayed {
                qty: 1.0,
                closes: &closes,
            }],
            0.95,
            20,
            252.0,
        )
        .unwrap_err();
        assert_eq!(e, TooFew { have: 2, need: 20 });
        assert_eq!(
            e.to_string(),
            "too few observations: 2 periods, at least 20 needed"
        );
    }

    /// The definition, by sets: each series' first close at each time all series have.
    fn closes_at_common_times_by_sets(series: &[&[Bar]]) -> Vec<Vec<f64>> {
        use std::collections::{BTreeMap, BTreeSet};
        let firsts: Vec<BTreeMap<DateTime<Utc>, f64>> = series
            .iter()
            .map(|bars| {
                let mut first = BTreeMap::new();
                for b in bars.iter() {
                    first.entry(b.time).or_insert(b.close);
                }
                first
            })
            .collect();
        let Some(mut common) = firsts
            .first()
            .map(|f| f.keys().copied().collect::<BTreeSet<_>>())
        else {
            return Vec::new();
        };
        for f in &firsts {
            common.retain(|t| f.contains_key(t));
        }
        firsts
            .iter()
            .map(|f| common.iter().map(|t| f[t]).collect())
            .collect()
    }

    proptest! {
        #[test]
        fn the_common_times_are_those_every_series_has_in_any_order(
            minutes in prop::collection::vec(prop::collection::vec(0i64..40, 0..30), 0..5),
            shuffle in any::<bool>(),
        ) {
            let t = |m: i64| chrono::DateTime::<Utc>::from_timestamp(1_772_463_600 + 60 * m, 0).unwrap();
            let series: Vec<Vec<Bar>> = minutes
                .iter()
                .enumerate()
                .map(|(i, ms)| {
                    let mut ms = ms.clone();
                    if !shuffle {
                        ms.sort_unstable();
                        ms.dedup();
                    }
                    // A close that tells which series, minute and place it came from.
                    ms.iter()
                        .enumerate()
                        .map(|(k, m)| Bar::flat(t(*m), (i * 10_000) as f64 + (*m * 100) as f64 + k as f64))
                        .collect()
                })
                .collect();
            let refs: Vec<&[Bar]> = series.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(closes_at_common_times(&refs), closes_at_common_times_by_sets(&refs));
        }

        #[test]
        fn var_never_exceeds_cvar(
            qty in -100.0f64..100.0,
            closes in prop::collection::vec(1.0f64..500.0, 3..80),
            confidence in 0.5f64..0.999,
        ) {
            let f = figures(&[Replayed { qty, closes: &closes }], confidence, 2, 252.0).unwrap();
            prop_assert!(f.var_usd <= f.cvar_usd + 1e-9, "{:?}", f);
            prop_assert!(f.max_drawdown >= f.current_drawdown);
        }
    }
}
