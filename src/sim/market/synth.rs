//! Synthetic price generation for one (symbol, day): the day's regime plan, its daily return,
//! and its minute path.
//!
//! Model: log prices follow a random walk whose drift and volatility change by regime. A day is
//! cut into segments of 20–90 minutes, each in one regime: calm, trending up, trending down,
//! mean-reverting (an extra Ornstein–Uhlenbeck wiggle pinned to zero at the segment ends) or
//! volatile (with a mild drift). Trend directions lean against the trend already accumulated that day, so strong
//! intraday trends are common while daily moves stay plausible. Blocks of ten calendar days
//! share a mood (bull, bear, range) that tilts trend directions, so daily bars trend too.
//!
//! The day's plan alone gives its return (`DayPlan::base_return`), so the daily path is cheap.
//! The minute path is then a Brownian bridge from the day's open to its close: the noise is
//! drawn freely and corrected in proportion to its cumulative variance, which is the exact
//! conditional law of a Gaussian walk given its end point. Trends, wiggles and volatility
//! clusters therefore survive the bridge, and the day ends exactly at its planned close.
//!
//! Invariants:
//! - A plan and a path depend only on (seed, symbol, date, params, session length): see `rng`.
//! - Prices are positive (exponentials of finite logs, floored at one tick) and rounded to the
//!   tick (cents from $1, else 0.0001), so bars and fills agree on prices.
//! - Within a bar: `l <= min(o, c)`, `h >= max(o, c)`, `l <= vw <= h`, `v >= 1`, `n >= 1`.
//! - Consecutive minutes chain: a minute's open is the previous minute's close.

use chrono::{Datelike, NaiveDate};

use super::bar::Bar;
use super::params::{MINUTES_PER_YEAR, Params};
use super::rng::{KeyedRng, Stream};

/// Regime of a stretch of minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// Plain geometric Brownian motion (regimes switched off).
    Plain,
    Calm,
    TrendUp,
    TrendDown,
    MeanRevert,
    /// High volatility with a mild drift (half a trend) in the given direction.
    VolatileUp,
    VolatileDown,
}

impl Regime {
    fn vol_mult(self) -> f64 {
        match self {
            Regime::Plain => 1.0,
            Regime::Calm => 0.6,
            Regime::TrendUp | Regime::TrendDown => 0.8,
            Regime::MeanRevert => 0.9,
            Regime::VolatileUp | Regime::VolatileDown => 2.2,
        }
    }

    fn trend_sign(self) -> f64 {
        match self {
            Regime::TrendUp => 1.0,
            Regime::TrendDown => -1.0,
            Regime::VolatileUp => 0.5,
            Regime::VolatileDown => -0.5,
            _ => 0.0,
        }
    }

    fn volume_mult(self) -> f64 {
        match self {
            Regime::Plain | Regime::MeanRevert => 1.0,
            Regime::Calm => 0.7,
            Regime::TrendUp | Regime::TrendDown => 1.3,
            Regime::VolatileUp | Regime::VolatileDown => 1.8,
        }
    }
}

/// A run of minutes in one regime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: usize,
    pub len: usize,
    pub regime: Regime,
}

/// The random choices of one day that the daily path needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPlan {
    pub segments: Vec<Segment>,
    /// Deterministic log drift over the day (base drift plus trends).
    pub drift: f64,
    /// Variance of the day's total log noise.
    pub noise_var: f64,
    /// Standard normal fixing the day's total noise.
    pub z: f64,
    /// Overnight log gap before this day's open (0 when the market never closes).
    pub gap: f64,
}

impl DayPlan {
    /// Log return of the day before any reversion toward the anchor price.
    pub fn base_return(&self) -> f64 {
        self.drift + self.noise_var.sqrt() * self.z
    }
}

/// Day-to-day pull of log price back toward the anchor: keeps a long run's prices plausible
/// (a stationary spread of roughly ±25 % at default parameters) with little intraday effect.
pub const REVERSION_PER_DAY: f64 = 0.12;

/// Everything a plan or path depends on besides the date.
#[derive(Debug, Clone)]
pub struct GenCtx {
    pub seed: u64,
    pub symbol: String,
    pub params: Params,
    pub regimes: bool,
    /// Overnight gaps exist only when the market closes between sessions.
    pub gaps: bool,
}

impl GenCtx {
    fn sigma_minute(&self) -> f64 {
        self.params.volatility / MINUTES_PER_YEAR.sqrt()
    }

    fn drift_minute(&self) -> f64 {
        self.params.drift / MINUTES_PER_YEAR
    }

    fn trend_minute(&self) -> f64 {
        self.params.trend / 60.0
    }

    /// The plan of `date`, a session of `minutes` minutes.
    pub fn plan(&self, date: NaiveDate, minutes: usize) -> DayPlan {
        let day = day_number(date);
        let mut rng = KeyedRng::new(self.seed, &self.symbol, Stream::DayPlan, day);
        let segments = if self.regimes {
            self.segments(&mut rng, day, minutes)
        } else {
            vec![Segment {
                start: 0,
                len: minutes,
                regime: Regime::Plain,
            }]
        };
        let sigma = self.sigma_minute();
        let mut drift = self.drift_minute() * minutes as f64;
        let mut noise_var = 0.0;
        for s in &segments {
            drift += s.regime.trend_sign() * self.trend_minute() * s.len as f64;
            noise_var += (sigma * s.regime.vol_mult()).powi(2) * s.len as f64;
        }
        let z = rng.normal();
        // An overnight gap about as large as 90 minutes of trading.
        let gap_draw = rng.normal() * sigma * 90f64.sqrt();
        DayPlan {
            segments,
            drift,
            noise_var,
            z,
            gap: if self.gaps { gap_draw } else { 0.0 },
        }
    }

    fn segments(&self, rng: &mut KeyedRng, day: i64, minutes: usize) -> Vec<Segment> {
        // Mood of the ten-day block tilts trend directions: bull, bear or range.
        let mut block = KeyedRng::new(self.seed, &self.symbol, Stream::Block, day.div_euclid(10));
        let tilt = match block.weighted(&[0.3, 0.3, 0.4]) {
            0 => 0.08,
            1 => -0.08,
            _ => 0.0,
        };
        // calm, trend, mean-revert, volatile
        let weights = [0.1, 0.5, 0.15, 0.25];
        let trend = self.trend_minute();
        let mut out = Vec::new();
        let mut start = 0;
        // Trend move accumulated so far today: trends lean against it, so a day holds many
        // strong intraday trends (what momentum strategies need) without a runaway daily move.
        let mut cum = 0.0;
        while start < minutes {
            let mut len = rng.int(20, 90) as usize;
            if minutes - start < len + 20 {
                len = minutes - start;
            }
            let kind = rng.weighted(&weights);
            let p_up = (0.5 + tilt - 0.35 * (cum / 0.04f64).tanh()).clamp(0.1, 0.9);
            let up = rng.uniform() < p_up;
            let regime = match (kind, up) {
                (0, _) => Regime::Calm,
                (1, true) => Regime::TrendUp,
                (1, false) => Regime::TrendDown,
                (2, _) => Regime::MeanRevert,
                (_, true) => Regime::VolatileUp,
                (_, false) => Regime::VolatileDown,
            };
            cum += regime.trend_sign() * trend * len as f64;
            out.push(Segment { start, len, regime });
            start += len;
        }
        out
    }

    /// Minute bars of `date` from `open` to `close`, the first starting at `first_ts`.
    /// `reversion` is the day's log pull toward the anchor, spread evenly over the minutes.
    pub fn minute_bars(
        &self,
        date: NaiveDate,
        first_ts: i64,
        plan: &DayPlan,
        open: f64,
        close: f64,
        reversion: f64,
    ) -> Vec<Bar> {
        let n: usize = plan.segments.iter().map(|s| s.len).sum();
        if n == 0 {
            return Vec::new();
        }
        let mut rng = KeyedRng::new(self.seed, &self.symbol, Stream::DayPath, day_number(date));
        let sigma = self.sigma_minute();
        let base_drift = self.drift_minute();
        let trend = self.trend_minute();

        // Per-minute regime, drift and noise scale.
        let mut regime = Vec::with_capacity(n);
        for s in &plan.segments {
            regime.extend(std::iter::repeat_n(s.regime, s.len));
        }
        let scale: Vec<f64> = regime.iter().map(|r| sigma * r.vol_mult()).collect();

        // Free noise walk and its cumulative variance.
        let mut walk = vec![0.0; n + 1];
        let mut cumvar = vec![0.0; n + 1];
        for t in 0..n {
            walk[t + 1] = walk[t] + rng.normal() * scale[t];
            cumvar[t + 1] = cumvar[t] + scale[t] * scale[t];
        }
        // Deterministic part: base drift, trends and the day's reversion.
        let mut det = vec![0.0; n + 1];
        for t in 0..n {
            det[t + 1] =
                det[t] + base_drift + regime[t].trend_sign() * trend + reversion / n as f64;
        }
        // Bridge the noise so the day ends exactly at `close`.
        let target = close.ln() - open.ln() - det[n];
        let excess = walk[n] - target;
        let total_var = cumvar[n].max(f64::MIN_POSITIVE);
        let mut log_path: Vec<f64> = (0..=n)
            .map(|t| open.ln() + det[t] + walk[t] - excess * cumvar[t] / total_var)
            .collect();
        // Mean-reverting wiggles, pinned to zero at both segment ends.
        for s in plan
            .segments
            .iter()
            .filter(|s| s.regime == Regime::MeanRevert)
        {
            let theta = 0.08;
            let mut ou = vec![0.0; s.len + 1];
            for k in 0..s.len {
                ou[k + 1] = ou[k] * (1.0 - theta) + rng.normal() * sigma * 1.2;
            }
            let end = ou[s.len];
            for (k, v) in ou.iter().enumerate() {
                log_path[s.start + k] += v - end * k as f64 / s.len as f64;
            }
        }

        let avg_trade = 120.0;
        (0..n)
            .map(|t| {
                let o = round_tick(log_path[t].exp());
                let c = round_tick(log_path[t + 1].exp());
                let wick = scale[t] * 0.4;
                let h = round_tick(o.max(c) * (rng.normal().abs() * wick).exp()).max(o.max(c));
                let l = round_tick(o.min(c) * (-rng.normal().abs() * wick).exp())
                    .min(o.min(c))
                    .max(tick(o.min(c)));
                let shape = volume_profile(t, n, self.gaps);
                let noise = (rng.normal() * 0.45 - 0.1).exp();
                let v = (self.params.volume * shape * regime[t].volume_mult() * noise)
                    .round()
                    .max(1.0);
                let trades = (v / avg_trade).round().max(1.0);
                let vw = ((o + h + l + 3.0 * c) / 6.0 * 10_000.0).round() / 10_000.0;
                Bar {
                    t: first_ts + 60 * t as i64,
                    o,
                    h,
                    l,
                    c,
                    v: v as u64,
                    n: trades as u64,
                    vw: vw.clamp(l, h),
                }
            })
            .collect()
    }
}

/// Days since 1970-01-01: the date part of every stream key.
pub fn day_number(date: NaiveDate) -> i64 {
    // 719 163 is the day number of 1970-01-01 counted from 0001-01-01 (day 1).
    i64::from(date.num_days_from_ce()) - 719_163
}

/// Intraday volume shape: a U over a regular session (busy open and close), flat around the
/// clock.
fn volume_profile(t: usize, n: usize, regular: bool) -> f64 {
    if !regular {
        return 1.0;
    }
    let u = 2.0 * (t as f64 + 0.5) / n as f64 - 1.0;
    0.7 + 1.5 * u.powi(4)
}

/// Price increment: a cent from $1, else 0.0001 (Alpaca's sub-penny rule).
pub fn tick(price: f64) -> f64 {
    if price >= 1.0 { 0.01 } else { 0.0001 }
}

/// Rounds down to the tick (never below one tick); the epsilon absorbs binary noise such as
/// 99.99 / 0.01 = 9998.999….
pub fn floor_tick(price: f64) -> f64 {
    let per_unit = 1.0 / tick(price);
    ((price * per_unit + 1e-6).floor() / per_unit).max(1.0 / per_unit)
}

/// Rounds up to the tick.
pub fn ceil_tick(price: f64) -> f64 {
    let per_unit = 1.0 / tick(price);
    ((price * per_unit - 1e-6).ceil() / per_unit).max(1.0 / per_unit)
}

/// Rounds to the tick, never below one tick. Divides by the tick count rather than multiplying
/// by the tick so the result is the double nearest the decimal price (0.1235, not 0.12350…01).
pub fn round_tick(price: f64) -> f64 {
    let per_unit = 1.0 / tick(price);
    ((price * per_unit).round() / per_unit).max(1.0 / per_unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::market::SymbolParams;
    use crate::sim::market::params::resolve;

    fn ctx(regimes: bool) -> GenCtx {
        GenCtx {
            seed: 42,
            symbol: "SPY".into(),
            params: resolve("SPY", 42, &SymbolParams::default(), None),
            regimes,
            gaps: false,
        }
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 5, 6).expect("date")
    }

    #[test]
    fn segments_cover_the_day_exactly() {
        for minutes in [390, 1380, 1440, 1500] {
            let plan = ctx(true).plan(date(), minutes);
            let mut next = 0;
            for s in &plan.segments {
                assert_eq!(s.start, next);
                assert!(s.len > 0);
                next += s.len;
            }
            assert_eq!(next, minutes);
        }
    }

    #[test]
    fn bridge_ends_at_the_planned_close_and_bars_are_well_formed() {
        let c = ctx(true);
        let plan = c.plan(date(), 1440);
        let open = 500.0;
        let close = open * plan.base_return().exp();
        let bars = c.minute_bars(date(), 1_000_000_020, &plan, open, close, 0.0);
        assert_eq!(bars.len(), 1440);
        assert_eq!(bars[0].o, round_tick(open));
        assert_eq!(bars[1439].c, round_tick(close));
        for w in bars.windows(2) {
            assert_eq!(w[0].c, w[1].o, "minutes chain");
            assert_eq!(w[1].t - w[0].t, 60);
        }
        for b in &bars {
            assert!(
                b.l > 0.0 && b.l <= b.o.min(b.c) && b.h >= b.o.max(b.c),
                "{b:?}"
            );
            assert!(b.l <= b.vw && b.vw <= b.h, "{b:?}");
            assert!(b.v >= 1 && b.n >= 1);
        }
    }

    #[test]
    fn plain_mode_is_a_single_segment() {
        let plan = ctx(false).plan(date(), 390);
        assert_eq!(plan.segments.len(), 1);
        assert_eq!(plan.segments[0].regime, Regime::Plain);
    }

    #[test]
    fn ticks_follow_the_sub_penny_rule() {
        assert_eq!(round_tick(12.3456), 12.35);
        assert_eq!(round_tick(0.123456), 0.1235);
        assert_eq!(round_tick(0.0), 0.0001);
    }
}
