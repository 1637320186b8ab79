//! Mean–variance mathematics for the portfolio optimizer: the mean and covariance of return
//! series, and long-only, fully invested weights that minimise variance or maximise the Sharpe
//! ratio.
//!
//! Both objectives reduce to one convex problem, `min yᵀΣy` subject to `aᵀy = 1, y ≥ 0`:
//! minimum variance with `a = 1` (then `w = y`), maximum Sharpe with `a = μ − r_f` (then
//! `w = y / Σy`, the classic change of variables, valid when some asset beats the risk-free
//! rate). It is solved by accelerated projected gradient (FISTA) with step `1/L`, `L` twice the
//! largest eigenvalue of Σ, and an exact projection onto the constraint set (a search over
//! the kinks of a piecewise-linear function, not an iteration); once the set of assets held
//! settles, the problem on that set has a closed form, which ends the iteration when the KKT
//! conditions confirm it (the "polishing" step of QP solvers such as OSQP).
//!
//! Invariants:
//! - Deterministic: the same inputs give the same weights, bit for bit (no random search).
//! - Weights are non-negative and sum to 1 (within 1e-9); weights below 1e-6 are dropped and
//!   the rest renormalised.
//! - An unsolvable case is a typed [`Unsolvable`], never NaN weights.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Mean returns and their sample covariance (÷(T−1)).
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
}

/// What the optimizer maximises or minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The highest (μ − r_f) / σ of a long-only, fully invested portfolio.
    MaxSharpe,
    /// The lowest variance of a long-only, fully invested portfolio.
    MinVariance,
}

/// Why no weights came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsolvable {
    #[error("fewer than two returns per asset")]
    TooFewReturns,
    #[error("the returns have no variance")]
    NoVariance,
    #[error(
        "no asset's mean return beats the risk-free rate: the maximum Sharpe ratio is not positive"
    )]
    NoExcessReturn,
    #[error("the returns are not finite")]
    NotFinite,
}

/// Mean and sample covariance of `returns`, one series per asset, all of one length.
pub fn moments(returns: &[Vec<f64>]) -> Result<Moments, Unsolvable> {
    let n = returns.len();
    let t = returns.first().map_or(0, Vec::len);
    if n == 0 || t < 2 || returns.iter().any(|r| r.len() != t) {
        return Err(Unsolvable::TooFewReturns);
    }
    if returns.iter().flatten().any(|r| !r.is_finite()) {
        return Err(Unsolvable::NotFinite);
    }
    let mean = DVector::from_fn(n, |i, _| returns[i].iter().sum::<f64>() / t as f64);
    let centered = DMatrix::from_fn(t, n, |row, col| returns[col][row] - mean[col]);
    let cov = centered.tr_mul(&centered) / (t - 1) as f64;
    Ok(Moments { mean, cov })
}

/// Long-only weights for `objective`; `risk_free` is per period, like the returns.
pub fn optimize(m: &Moments, objective: Objective, risk_free: f64) -> Result<Vec<f64>, Unsolvable> {
    let n = m.mean.len();
    let a = match objective {
        Objective::MinVariance => DVector::from_element(n, 1.0),
        Objective::MaxSharpe => m.mean.map(|mu| mu - risk_free),
    };
    if a.iter().all(|x| *x <= 0.0) {
        return Err(Unsolvable::NoExcessReturn);
    }
    let y = min_quadratic(&m.cov, &a)?;
    let total: f64 = y.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(Unsolvable::NoVariance);
    }
    let mut w: Vec<f64> = y.iter().map(|v| v / total).collect();
    for v in &mut w {
        if *v < 1e-6 {
            *v = 0.0;
        }
    }
    let kept: f64 = w.iter().sum();
    Ok(w.into_iter().map(|v| v / kept).collect())
}

/// Variance of a portfolio: wᵀΣw.
pub fn variance(cov: &DMatrix<f64>, w: &[f64]) -> f64 {
    let w = DVector::from_column_slice(w);
    (w.transpose() * cov * &w)[(0, 0)]
}

/// Per-period Sharpe ratio of a portfolio: (wᵀμ − r_f) / √(wᵀΣw); `None` without variance.
pub fn sharpe(m: &Moments, w: &[f64], risk_free: f64) -> Option<f64> {
    let v = variance(&m.cov, w);
    let ret: f64 = m.mean.iter().zip(w).map(|(mu, w)| mu * w).sum();
    (v > 0.0).then(|| (ret - risk_free) / v.sqrt())
}

const MAX_ITERATIONS: usize = 20_000;
const TOLERANCE: f64 = 1e-13;
/// Iterations the support must stay the same before the exact solve on it is tried (once per
/// settled support: if it fails, the next try waits for the support to change and settle).
const SETTLED: usize = 4;
/// How far a KKT multiplier may miss its condition (0 on the support, ≥ 0 off it), relative
/// to the size of the gradient, and still meet it: rounding, not a wrong support.
const KKT_SLACK: f64 = 1e-9;

/// `min yᵀΣy` subject to `aᵀy = 1, y ≥ 0`, by FISTA, finished exactly: once the support (the
/// `y_i > 0`) has settled, the problem restricted to it is an equality-constrained QP with a
/// closed form (see [`solve_on_support`]); when that answer is feasible and optimal, it is the
/// answer. Otherwise FISTA goes on, so a singular or wrongly guessed support costs only time.
fn min_quadratic(cov: &DMatrix<f64>, a: &DVector<f64>) -> Result<DVector<f64>, Unsolvable> {
    let n = a.len();
    let largest = cov
        .clone()
        .symmetric_eigenvalues()
        .iter()
        .copied()
        .fold(0.0, f64::max);
    if !(largest > 0.0 && largest.is_finite()) {
        return Err(Unsolvable::NoVariance);
    }
    let step = 1.0 / (2.0 * largest);
    // Every vector of the loop is allocated once: the loop runs on each decision.
    let mut kinks = Vec::with_capacity(n);
    let mut y = DVector::zeros(n);
    project(
        &DVector::from_element(n, 1.0 / n as f64),
        a,
        &mut y,
        &mut kinks,
    );
    let mut z = y.clone();
    let mut next = DVector::zeros(n);
    let mut descent = DVector::zeros(n);
    let mut t = 1.0f64;
    let mut support = vec![false; n];
    let mut settled = 0;
    for _ in 0..MAX_ITERATIONS {
        // next = project(z − step·∇), ∇ = 2Σz
        descent.copy_from(&z);
        descent.gemv(-2.0 * step, cov, &z, 1.0);
        project(&descent, a, &mut next, &mut kinks);
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let momentum = (t - 1.0) / t_next;
        let mut moved = 0.0f64;
        let mut same_support = true;
        for i in 0..n {
            let change = next[i] - y[i];
            moved = moved.max(change.abs());
            z[i] = next[i] + change * momentum;
            same_support &= support[i] == (next[i] > 0.0);
            support[i] = next[i] > 0.0;
        }
        std::mem::swap(&mut y, &mut next);
        t = t_next;
        if moved <= TOLERANCE * (1.0 + y.amax()) {
            break;
        }
        settled = if same_support { settled + 1 } else { 0 };
        if settled == SETTLED
            && let Some(exact) = solve_on_support(cov, a, &support)
        {
            return Ok(exact);
        }
    }
    Ok(y)
}

/// The optimum when `support` is the set of non-zero weights, if it is one. On the support
/// `F` the problem is `min y_Fᵀ Σ_FF y_F` s.t. `a_Fᵀ y_F = 1`, solved by
/// `y_F = Σ_FF⁻¹ a_F / (a_Fᵀ Σ_FF⁻¹ a_F)` with multiplier `λ = 2 / (a_Fᵀ Σ_FF⁻¹ a_F)`. It is
/// the optimum of the whole problem when every `y_F > 0` and the KKT multipliers
/// `(2Σy)_i − λ a_i` are zero on the support (to rounding) and not negative off it. `None` when
/// Σ_FF is not positive definite or a condition fails.
fn solve_on_support(
    cov: &DMatrix<f64>,
    a: &DVector<f64>,
    support: &[bool],
) -> Option<DVector<f64>> {
    let on: Vec<usize> = (0..support.len()).filter(|&i| support[i]).collect();
    let k = on.len();
    let sub = DMatrix::from_fn(k, k, |r, c| cov[(on[r], on[c])]);
    let a_on = DVector::from_fn(k, |r, _| a[on[r]]);
    let x = sub.cholesky()?.solve(&a_on);
    let scale = a_on.dot(&x);
    if !(scale > 0.0 && scale.is_finite()) || x.iter().any(|v| *v <= 0.0) {
        return None;
    }
    let mut y = DVector::zeros(a.len());
    for (r, &i) in on.iter().enumerate() {
        y[i] = x[r] / scale;
    }
    let lambda = 2.0 / scale;
    let gradient = cov * &y * 2.0;
    let size = gradient.amax().max(lambda * a.amax());
    // On the support the multiplier must be 0 (which also rejects the garbage an
    // ill-conditioned Σ_FF can give); off it, not negative.
    let optimal = (0..a.len()).all(|i| {
        let multiplier = gradient[i] - lambda * a[i];
        if support[i] {
            multiplier.abs() <= KKT_SLACK * size
        } else {
            multiplier >= -KKT_SLACK * size
        }
    });
    optimal.then_some(y)
}

/// The point of `{y ≥ 0, aᵀy = 1}` nearest `v`, written to `out`: `y = max(0, v + λa)` for the
/// λ that solves `g(λ) = aᵀy(λ) = 1`. `g` is continuous, piecewise linear and non-decreasing
/// (each active term adds `a_i²` to its slope), with a kink where a term switches on or off, at
/// `−v_i / a_i`. So the root is found exactly: evaluate `g` at the sorted kinks, take the first
/// segment that reaches 1, and solve the line there. Needs some `a_i > 0` (then `g` grows
/// without bound). `kinks` is scratch space.
fn project(v: &DVector<f64>, a: &DVector<f64>, out: &mut DVector<f64>, kinks: &mut Vec<f64>) {
    let g = |lambda: f64| {
        v.iter()
            .zip(a.iter())
            .map(|(vi, ai)| ai * (vi + lambda * ai).max(0.0))
            .sum::<f64>()
    };
    kinks.clear();
    kinks.extend(
        v.iter()
            .zip(a.iter())
            .filter(|(_, ai)| **ai != 0.0)
            .map(|(vi, ai)| -vi / ai),
    );
    kinks.sort_unstable_by(f64::total_cmp);
    // Slopes left of every kink (terms with a_i < 0 are on) and right of every kink (a_i > 0).
    let slope_of = |keep: fn(f64) -> bool| a.iter().filter(|ai| keep(**ai)).map(|ai| ai * ai).sum();
    let lambda = 'root: {
        let (Some(&first), Some(&last)) = (kinks.first(), kinks.last()) else {
            break 'root 0.0;
        };
        let mut before = (first, g(first));
        if before.1 >= 1.0 {
            // Without a negative a_i, g is 0 left of every kink and cannot reach 1 at the first.
            let left: f64 = slope_of(|ai| ai < 0.0);
            break 'root if left > 0.0 {
                first - (before.1 - 1.0) / left
            } else {
                first
            };
        }
        for &kink in &kinks[1..] {
            let here = (kink, g(kink));
            if here.1 >= 1.0 {
                let rise = here.1 - before.1;
                break 'root if rise > 0.0 {
                    before.0 + (1.0 - before.1) * (here.0 - before.0) / rise
                } else {
                    here.0
                };
            }
            before = here;
        }
        let right: f64 = slope_of(|ai| ai > 0.0);
        last + (1.0 - before.1) / right
    };
    for ((o, vi), ai) in out.iter_mut().zip(v.iter()).zip(a.iter()) {
        *o = (vi + lambda * ai).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn two_assets(mean: [f64; 2], var1: f64, var2: f64, cov12: f64) -> Moments {
        Moments {
            mean: DVector::from_column_slice(&mean),
            cov: DMatrix::from_row_slice(2, 2, &[var1, cov12, cov12, var2]),
        }
    }

    #[test]
    fn moments_match_known_answers() {
        // Python: statistics.fmean / variance / the sample covariance of the two series.
        let r1 = vec![0.01, -0.02, 0.015, 0.003, -0.007, 0.012];
        let r2 = vec![0.004, 0.001, -0.006, 0.008, 0.002, -0.003];
        let m = moments(&[r1, r2]).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(m.mean[0], 0.0021666666666666666) && close(m.mean[1], 0.001));
        assert!(close(m.cov[(0, 0)], 0.00017976666666666668));
        assert!(close(m.cov[(1, 1)], 2.48e-05));
        assert!(close(m.cov[(0, 1)], -2.1799999999999995e-05) && m.cov[(0, 1)] == m.cov[(1, 0)]);
    }

    #[test]
    fn minimum_variance_of_two_assets_matches_the_closed_form() {
        // w₁ = (σ₂² − σ₁₂) / (σ₁² + σ₂² − 2σ₁₂) = 0.084 / 0.118.
        let m = two_assets([0.0, 0.0], 0.04, 0.09, 0.006);
        let w = optimize(&m, Objective::MinVariance, 0.0).unwrap();
        assert!((w[0] - 0.084 / 0.118).abs() < 1e-9, "{w:?}");
        assert!((w[0] + w[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_exact_solve_accepts_only_an_optimal_support() {
        let ones = DVector::from_element(2, 1.0);
        let m = two_assets([0.0, 0.0], 0.04, 0.09, 0.006);
        let both = solve_on_support(&m.cov, &ones, &[true, true]).unwrap();
        assert!((both[0] - 0.084 / 0.118).abs() < 1e-12, "{both:?}");
        // Holding only the riskier asset is feasible but not optimal: its KKT multiplier for
        // the other asset is negative.
        assert_eq!(solve_on_support(&m.cov, &ones, &[false, true]), None);
        // Perfectly correlated twins: every split has the same variance, so whatever answer
        // comes out (closed form or FISTA) must have that variance, and the same one each time.
        let twins = two_assets([0.0, 0.0], 0.04, 0.04, 0.04);
        let w = optimize(&twins, Objective::MinVariance, 0.0).unwrap();
        assert!((w[0] + w[1] - 1.0).abs() < 1e-12, "{w:?}");
        assert!((variance(&twins.cov, &w) - 0.04).abs() < 1e-12, "{w:?}");
        assert_eq!(optimize(&twins, Objective::MinVariance, 0.0).unwrap(), w);
    }

    #[test]
    fn maximum_sharpe_of_two_assets_is_the_tangency_portfolio() {
        // Unconstrained tangency: w ∝ Σ⁻¹(μ − r_f) = (0.00078, 0.00074)/det: both positive, so
        // the long-only answer is the same.
        let m = two_assets([0.01, 0.02], 0.04, 0.09, 0.006);
        let w = optimize(&m, Objective::MaxSharpe, 0.0).unwrap();
        assert!((w[0] - 0.78 / 1.52).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn long_only_drops_an_asset_that_only_a_short_would_use() {
        // Asset 2 loses money and moves with asset 1: the unconstrained tangency shorts it.
        let m = two_assets([0.02, -0.01], 0.04, 0.04, 0.03);
        let w = optimize(&m, Objective::MaxSharpe, 0.0).unwrap();
        assert_eq!(w, vec![1.0, 0.0]);
    }

    #[test]
    fn unsolvable_cases_are_typed() {
        let losing = two_assets([-0.01, -0.02], 0.04, 0.09, 0.0);
        assert_eq!(
            optimize(&losing, Objective::MaxSharpe, 0.0),
            Err(Unsolvable::NoExcessReturn)
        );
        assert!(optimize(&losing, Objective::MinVariance, 0.0).is_ok());
        let flat = two_assets([0.01, 0.01], 0.0, 0.0, 0.0);
        assert_eq!(
            optimize(&flat, Objective::MinVariance, 0.0),
            Err(Unsolvable::NoVariance)
        );
        assert_eq!(moments(&[vec![0.1]]), Err(Unsolvable::TooFewReturns));
        assert_eq!(moments(&[vec![0.1, f64::NAN]]), Err(Unsolvable::NotFinite));
    }

    /// Returns of `n` assets over `t` periods, from a shared factor plus noise, as proptest draws.
    fn returns_strategy() -> impl Strategy<Value = Vec<Vec<f64>>> {
        (2usize..6, 12usize..60).prop_flat_map(|(n, t)| {
            prop::collection::vec(prop::collection::vec(-0.05f64..0.05, t), n)
        })
    }

    fn random_weights(seed: &[f64]) -> Vec<f64> {
        let raw: Vec<f64> = seed.iter().map(|x| x.abs() + 1e-3).collect();
        let total: f64 = raw.iter().sum();
        raw.iter().map(|x| x / total).collect()
    }

    proptest! {
        #[test]
        fn weights_are_non_negative_and_sum_to_one(returns in returns_strategy()) {
            let m = moments(&returns).unwrap();
            for objective in [Objective::MinVariance, Objective::MaxSharpe] {
                if let Ok(w) = optimize(&m, objective, 0.0) {
                    prop_assert!(w.iter().all(|x| *x >= 0.0));
                    prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                }
            }
        }

        #[test]
        fn the_projection_is_feasible_and_nearer_than_any_other_feasible_point(
            v in prop::collection::vec(-2.0f64..2.0, 1..8),
            a in prop::collection::vec(-1.0f64..1.0, 8),
            q in prop::collection::vec(0.0f64..1.0, 8),
        ) {
            let n = v.len();
            let mut a = DVector::from_column_slice(&a[..n]);
            a[0] = a[0].abs().max(0.1); // some a_i > 0, as the solver guarantees
            let v = DVector::from_column_slice(&v);
            let mut p = DVector::zeros(n);
            project(&v, &a, &mut p, &mut Vec::new());
            prop_assert!(p.iter().all(|x| *x >= 0.0));
            prop_assert!((a.dot(&p) - 1.0).abs() < 1e-9, "aᵀp = {}", a.dot(&p));
            // Another feasible point: non-negative on the a_i > 0 only, scaled onto aᵀq = 1.
            let q = DVector::from_fn(n, |i, _| if a[i] > 0.0 { q[i] } else { 0.0 });
            if a.dot(&q) > 1e-6 {
                let q = &q / a.dot(&q);
                prop_assert!((&v - &p).norm() <= (&v - &q).norm() + 1e-9);
            }
        }

        #[test]
        fn no_feasible_portfolio_beats_the_optimum(
            returns in returns_strategy(),
            draws in prop::collection::vec(prop::collection::vec(-1.0f64..1.0, 6), 20),
        ) {
            let m = moments(&returns).unwrap();
            let n = returns.len();
            let best_var = variance(&m.cov, &optimize(&m, Objective::MinVariance, 0.0).unwrap());
            let tangency = optimize(&m, Objective::MaxSharpe, 0.0).ok();
            for d in &draws {
                let w = random_weights(&d[..n]);
                prop_assert!(best_var <= variance(&m.cov, &w) * (1.0 + 1e-6) + 1e-15);
                if let (Some(t), Some(s)) = (&tangency, sharpe(&m, &w, 0.0)) {
                    let best = sharpe(&m, t, 0.0).unwrap();
                    prop_assert!(best >= s - 1e-6 * (1.0 + s.abs()), "{} < {}", best, s);
                }
            }
        }
    }
}
