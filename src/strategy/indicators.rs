//! The indicators strategy cores compute, in one place: means and standard deviations, z-scores,
//! returns, moving averages and drawdowns.
//!
//! Two forms: functions over a window (what a core holding the newest bars calls each tick), and
//! incremental state ([`Sma`], [`Ema`], [`RollingStats`]) updated one value at a time in O(1)
//! where the math allows, for cores that keep a series across ticks.
//!
//! Invariants:
//! - Pure: no I/O, no clock, no randomness.
//! - A statistic that is undefined is `None`, never NaN or infinity: a mean of nothing, a
//!   standard deviation of fewer than two values (or one with a zero spread, for a z-score).
//! - Standard deviations are population (÷n) unless the name says `sample` (÷(n−1)).
//! - Each incremental form equals its window function over the same values (property tests).

use std::collections::VecDeque;

/// The arithmetic mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Mean and population standard deviation (two passes, for accuracy); `None` for no values.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    let m = mean(values)?;
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / values.len() as f64;
    Some((m, var.sqrt()))
}

/// Sample standard deviation (÷(n−1)); `None` for fewer than two values.
pub fn sample_std(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    Some(var.sqrt())
}

/// How many population standard deviations `value` lies from the mean of `window`; `None` when
/// the window has fewer than two values or no spread at all.
pub fn zscore(value: f64, window: &[f64]) -> Option<f64> {
    let (m, s) = mean_std(window)?;
    (window.len() >= 2 && s > 0.0 && s.is_finite()).then(|| (value - m) / s)
}

/// Simple returns `x[i] / x[i−1] − 1`; a step from a value that is not positive is skipped.
pub fn returns(values: &[f64]) -> Vec<f64> {
    values
        .windows(2)
        .filter(|w| w[0] > 0.0)
        .map(|w| w[1] / w[0] - 1.0)
        .collect()
}

/// The worst and the latest fall from a running peak, as fractions of that peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drawdown {
    pub max: f64,
    pub current: f64,
}

/// Drawdowns of a series of values (equity, or prices); `None` for no values.
pub fn drawdown(values: &[f64]) -> Option<Drawdown> {
    let mut peak = *values.first()?;
    let mut dd = Drawdown {
        max: 0.0,
        current: 0.0,
    };
    for &v in values {
        peak = peak.max(v);
        dd.current = if peak > 0.0 { (peak - v) / peak } else { 0.0 };
        dd.max = dd.max.max(dd.current);
    }
    Some(dd)
}

/// A simple moving average over the last `period` values, updated in O(1).
#[derive(Debug, Clone)]
pub struct Sma {
    period: usize,
    window: VecDeque<f64>,
    sum: f64,
}

impl Sma {
    /// `period` of at least 1.
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            window: VecDeque::with_capacity(period.max(1)),
            sum: 0.0,
        }
    }

    /// Adds a value; the average once `period` values were seen.
    pub fn update(&mut self, value: f64) -> Option<f64> {
        self.window.push_back(value);
        self.sum += value;
        if self.window.len() > self.period
            && let Some(old) = self.window.pop_front()
        {
            self.sum -= old;
        }
        (self.window.len() == self.period).then(|| self.sum / self.period as f64)
    }
}

/// An exponential moving average with `alpha = 2 / (period + 1)`, seeded with the first value.
#[derive(Debug, Clone)]
pub struct Ema {
    alpha: f64,
    value: Option<f64>,
}

impl Ema {
    /// `period` of at least 1.
    pub fn new(period: usize) -> Self {
        Self {
            alpha: 2.0 / (period.max(1) as f64 + 1.0),
            value: None,
        }
    }

    pub fn update(&mut self, value: f64) -> f64 {
        let next = match self.value {
            None => value,
            Some(prev) => self.alpha * value + (1.0 - self.alpha) * prev,
        };
        self.value = Some(next);
        next
    }
}

/// Mean and population standard deviation of the last `period` values, in amortized O(1):
/// Welford's update, with the value leaving the window removed the same way. Removals drift by
/// a few ulps of the largest value squared, so the state is recomputed exactly once per
/// `period` updates, and whenever the spread is within that noise (a flat window must give
/// exactly 0, or a z-score would divide by rounding residue).
#[derive(Debug, Clone)]
pub struct RollingStats {
    period: usize,
    window: VecDeque<f64>,
    mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
    /// The largest magnitude seen since the last exact recomputation: the scale of the drift.
    scale: f64,
    /// Updates since the last exact recomputation.
    since_exact: usize,
}

impl RollingStats {
    /// `period` of at least 1.
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            window: VecDeque::with_capacity(period.max(1) + 1),
            mean: 0.0,
            m2: 0.0,
            scale: 0.0,
            since_exact: 0,
        }
    }

    /// Adds a value; `(mean, std)` once `period` values were seen.
    pub fn update(&mut self, value: f64) -> Option<(f64, f64)> {
        self.window.push_back(value);
        self.scale = self.scale.max(value.abs());
        self.since_exact += 1;
        let n = self.window.len() as f64;
        let delta = value - self.mean;
        self.mean += delta / n;
        self.m2 += delta * (value - self.mean);
        if self.window.len() > self.period
            && let Some(old) = self.window.pop_front()
        {
            let n = self.window.len() as f64;
            let delta = old - self.mean;
            self.mean -= delta / n;
            self.m2 -= delta * (old - self.mean);
        }
        let n = self.window.len();
        if n < self.period {
            return None;
        }
        let noise = n as f64 * (self.scale * 1e-7).powi(2);
        if self.since_exact >= self.period || self.m2 <= noise {
            self.recompute();
        }
        Some((self.mean, (self.m2.max(0.0) / n as f64).sqrt()))
    }

    fn recompute(&mut self) {
        let n = self.window.len() as f64;
        self.mean = self.window.iter().sum::<f64>() / n;
        self.m2 = self.window.iter().map(|v| (v - self.mean).powi(2)).sum();
        self.scale = self.window.iter().fold(0.0, |m, v| m.max(v.abs()));
        self.since_exact = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Known answers computed independently (Python's `statistics`: fmean, pstdev, stdev).
    const SERIES: [f64; 10] = [
        100.0, 101.5, 99.8, 102.3, 103.1, 101.9, 104.2, 105.0, 103.7, 106.4,
    ];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn window_statistics_match_known_answers() {
        let (m, s) = mean_std(&SERIES).unwrap();
        assert!(close(m, 102.79) && close(s, 2.006215342379777), "{m} {s}");
        assert!(close(sample_std(&SERIES).unwrap(), 2.1147366528982086));
        let z = zscore(106.4, &SERIES[5..]).unwrap();
        assert!(close(z, 1.4554780222169454), "{z}");
        let r = returns(&SERIES);
        assert_eq!(r.len(), 9);
        assert!(close(r[0], 0.015) && close(r[8], 0.026036644165863043));
        let dd = drawdown(&[1.0, 1.1, 0.99, 1.05, 0.88, 0.95]).unwrap();
        assert!(close(dd.max, 0.2) && close(dd.current, 0.13636363636363646));
    }

    #[test]
    fn ema_matches_known_answer() {
        let mut e = Ema::new(5);
        let last = SERIES.iter().map(|v| e.update(*v)).last().unwrap();
        assert!(close(last, 104.45520499923795), "{last}");
    }

    #[test]
    fn undefined_statistics_are_none_not_nan() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean_std(&[]), None);
        assert_eq!(sample_std(&[1.0]), None);
        assert_eq!(zscore(1.0, &[1.0]), None);
        assert_eq!(zscore(5.0, &[2.0, 2.0, 2.0]), None, "no spread");
        assert_eq!(drawdown(&[]), None);
        assert!(returns(&[0.0, 1.0, 2.0]).iter().all(|r| r.is_finite()));
    }

    fn naive_sma(values: &[f64], period: usize) -> Option<f64> {
        (values.len() >= period).then(|| mean(&values[values.len() - period..]).unwrap_or(0.0))
    }

    fn naive_ema(values: &[f64], period: usize) -> f64 {
        let alpha = 2.0 / (period as f64 + 1.0);
        values[1..]
            .iter()
            .fold(values[0], |e, v| alpha * v + (1.0 - alpha) * e)
    }

    proptest! {
        #[test]
        fn sma_equals_the_mean_of_the_newest_period_values(
            values in prop::collection::vec(1.0f64..1000.0, 1..80),
            period in 1usize..25,
        ) {
            let mut sma = Sma::new(period);
            for (i, v) in values.iter().enumerate() {
                let got = sma.update(*v);
                let want = naive_sma(&values[..=i], period);
                prop_assert_eq!(got.is_some(), want.is_some());
                if let (Some(g), Some(w)) = (got, want) {
                    prop_assert!(close(g, w), "{} vs {}", g, w);
                }
            }
        }

        #[test]
        fn ema_equals_its_recursive_definition(
            values in prop::collection::vec(1.0f64..1000.0, 1..80),
            period in 1usize..25,
        ) {
            let mut ema = Ema::new(period);
            let got = values.iter().map(|v| ema.update(*v)).last().unwrap();
            prop_assert!(close(got, naive_ema(&values, period)));
        }

        #[test]
        fn rolling_stats_equal_the_window_statistics(
            values in prop::collection::vec(1.0f64..1000.0, 1..80),
            period in 1usize..25,
        ) {
            let mut stats = RollingStats::new(period);
            for (i, v) in values.iter().enumerate() {
                let got = stats.update(*v);
                let seen = &values[..=i];
                let want = (seen.len() >= period)
                    .then(|| mean_std(&seen[seen.len() - period..]))
                    .flatten();
                prop_assert_eq!(got.is_some(), want.is_some());
                if let (Some((gm, gs)), Some((wm, ws))) = (got, want) {
                    prop_assert!(close(gm, wm), "mean {} vs {}", gm, wm);
                    prop_assert!((gs - ws).abs() < 1e-6 * (1.0 + ws), "std {} vs {}", gs, ws);
                }
            }
        }

        #[test]
        fn a_zscore_is_finite_whenever_defined(
            window in prop::collection::vec(-1e6f64..1e6, 0..40),
            value in -1e6f64..1e6,
        ) {
            if let Some(z) = zscore(value, &window) {
                prop_assert!(z.is_finite());
            }
        }
    }
}
