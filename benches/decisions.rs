//! What one tick of each strategy core costs, at the default config's settings and symbols, on
//! realistic windows: one decision per kind, one indicator update per bar, one neural forecast.
//! A core's `decide` is the whole of its tick's CPU work (bars arrive already fetched), so these
//! are the figures the goals in BENCHMARKS.md are about.
//!
//! `cargo bench --bench decisions` (add a filter, e.g. `-- indicator`, for one group).
//!
//! Each benchmark cycles through 64 views that slide one bar at a time over a seeded random
//! walk, so branch predictors and caches see a changing market, as on consecutive ticks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;
use rust_decimal::Decimal;

use herd::domain::{Bar, GuardedBook, Holding, InstanceId, MarketView, Symbol, SymbolMap};
use herd::strategy::indicators::{Ema, RollingStats, Sma, mean_std, zscore};
use herd::strategy::mean_reversion::{MeanReversion, MeanReversionParams};
use herd::strategy::momentum::{Momentum, MomentumParams};
use herd::strategy::neural::model::{NetConfig, train};
use herd::strategy::neural::{NeuralForecast, NeuralForecastParams};
use herd::strategy::portfolio::{Objective, moments, optimize};
use herd::strategy::portfolio_optimizer::{PortfolioOptimizer, PortfolioOptimizerParams};
use herd::strategy::risk_manager::{RiskManager, RiskManagerParams};
use herd::strategy::{Finished, Strategy};

/// Consecutive views each benchmark cycles through.
const VIEWS: usize = 64;

fn symbols(names: &[&str]) -> Vec<Symbol> {
    names.iter().map(|n| Symbol::parse(n).unwrap()).collect()
}

/// `n` bars of a geometric random walk (1 % per bar) from 100, `step` apart.
fn walk(seed: u64, n: usize, step: Duration) -> Vec<Bar> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let start = Utc.with_ymd_and_hms(2026, 1, 5, 14, 30, 0).unwrap();
    let mut close = 100.0f64;
    (0..n)
        .map(|i| {
            let z: f64 = rng.sample(StandardNormal);
            close *= (0.01 * z).exp();
            Bar {
                time: start + step * i as i32,
                open: close,
                high: close * 1.002,
                low: close * 0.998,
                close,
                volume: 1e5,
                trades: None,
                vwap: None,
            }
        })
        .collect()
}

/// `VIEWS` views of `window` bars per symbol, each one bar newer than the one before.
fn sliding_views(names: &[&str], window: usize, step: Duration) -> Vec<MarketView> {
    let series: Vec<(Symbol, Vec<Bar>)> = symbols(names)
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, walk(i as u64 + 1, window + VIEWS, step)))
        .collect();
    (0..VIEWS)
        .map(|k| {
            let bars: SymbolMap<Arc<[Bar]>> = series
                .iter()
                .map(|(s, all)| (s.clone(), all[k..k + window].into()))
                .collect();
            let now = bars.values().map(|b| b[b.len() - 1].time).max().unwrap();
            MarketView {
                now,
                market_open: true,
                bars,
                ..MarketView::default()
            }
        })
        .collect()
}

fn holding(qty: i64, price: i64) -> Holding {
    let mut h = Holding::default();
    h.apply(Decimal::from(qty), Decimal::from(price));
    h
}

/// Runs the core `make` builds on each view in turn. The core is built only when the
/// benchmark runs, so a filter skips the neural core's training.
fn tick<S: Strategy>(
    c: &mut Criterion,
    name: &str,
    decisions: usize,
    views: &[MarketView],
    make: impl FnOnce() -> S,
) {
    let mut make = Some(make);
    let mut core = None;
    let mut i = 0;
    c.bench_function(&format!("decide/{name}/{decisions}"), |b| {
        if core.is_none() {
            core = make.take().map(|make| make());
        }
        let Some(core) = core.as_mut() else {
            return;
        };
        b.iter(|| {
            i = (i + 1) % views.len();
            black_box(core.decide(black_box(&views[i])))
        })
    });
}

fn decisions(c: &mut Criterion) {
    let minutes = Duration::minutes(5);
    let days = Duration::days(1);

    let etfs = ["SPY", "QQQ", "IWM"];
    let momentum = MomentumParams::default();
    let views = sliding_views(&etfs, momentum.lookback, minutes);
    tick(c, "momentum", 3, &views, || {
        Momentum::new(symbols(&etfs), momentum)
    });

    let metals = ["GLD", "SLV", "TLT"];
    let reversion = MeanReversionParams::default();
    let mut views = sliding_views(&metals, reversion.lookback, minutes);
    for v in &mut views {
        v.positions
            .insert(Symbol::parse("SLV").unwrap(), holding(100, 100));
        v.positions
            .insert(Symbol::parse("TLT").unwrap(), holding(-100, 100));
    }
    tick(c, "mean_reversion", 3, &views, || {
        MeanReversion::new(symbols(&metals), reversion)
    });

    let seven = ["SPY", "QQQ", "IWM", "GLD", "TLT", "AAPL", "TSLA"];
    let optimizer = PortfolioOptimizerParams::default();
    let views = sliding_views(&seven, optimizer.lookback + 1, days);
    tick(c, "portfolio_optimizer", 7, &views, || {
        PortfolioOptimizer::new(symbols(&seven), optimizer)
    });

    // The default risk manager guards the four other instances: 13 positions in 9 symbols,
    // all entered at 100 while the walks wander, so on most ticks several are past the 2 %
    // stop: the costly case, an order and an alert each.
    let guarded: [(&str, &[(&str, i64)]); 4] = [
        ("momentum-etf", &[("SPY", 10), ("QQQ", 10)]),
        (
            "mean-reversion-metals",
            &[("GLD", 100), ("SLV", -100), ("TLT", -100)],
        ),
        (
            "neural-forecast",
            &[("AAPL", 20), ("TSLA", 5), ("NVDA", 50)],
        ),
        (
            "portfolio-optimizer",
            &[("SPY", 4), ("QQQ", 3), ("IWM", 9), ("GLD", 7), ("AAPL", 6)],
        ),
    ];
    let all = [
        "SPY", "QQQ", "IWM", "GLD", "SLV", "TLT", "AAPL", "TSLA", "NVDA",
    ];
    let risk = RiskManagerParams {
        guard: guarded.iter().map(|(id, _)| id.to_string()).collect(),
        ..RiskManagerParams::default()
    };
    let mut views = sliding_views(&all, risk.window + 1, days);
    for v in &mut views {
        for (id, book) in &guarded {
            let positions = book
                .iter()
                .map(|(s, q)| (Symbol::parse(s).unwrap(), holding(*q, 100)))
                .collect();
            let book = GuardedBook {
                positions,
                pending: SymbolMap::default(),
            };
            v.guarded.insert(InstanceId::parse(id).unwrap(), book);
        }
    }
    tick(c, "risk_manager", 13, &views, || {
        RiskManager::new(symbols(&all), risk)
    });

    let tech = ["AAPL", "TSLA", "NVDA"];
    let neural = NeuralForecastParams::default();
    let views = sliding_views(&tech, neural.history, minutes);
    tick(c, "neural_forecast", 3, &views, || {
        trained_core(&tech, &views)
    });
}

/// A neural core at the default settings with a model per symbol, trained through the newest
/// view's bars so that no retraining is due. One epoch: the weights' values do not change what
/// a forecast costs.
fn trained_core(names: &[&str], views: &[MarketView]) -> NeuralForecast {
    let params = NeuralForecastParams::default();
    let mut core = NeuralForecast::new(symbols(names), params.clone());
    core.decide(&views[0]);
    let newest = views[VIEWS - 1].now;
    for work in core.work() {
        let closes: Vec<f64> = views[0]
            .bars(work.symbol())
            .iter()
            .map(|b| b.close)
            .collect();
        let model = train(&closes, newest, &one_epoch(&params)).unwrap();
        core.finished(Finished {
            symbol: work.symbol().clone(),
            outcome: Ok(Some(Arc::new(model))),
        });
    }
    core
}

fn one_epoch(params: &NeuralForecastParams) -> NetConfig {
    NetConfig {
        epochs: 1,
        ..params.net()
    }
}

fn indicators(c: &mut Criterion) {
    let closes: Vec<f64> = walk(7, 4096, Duration::minutes(5))
        .iter()
        .map(|b| b.close)
        .collect();
    let mut group = c.benchmark_group("indicator_update");
    let mut i = 0;
    let mut next = move || {
        i = (i + 1) % closes.len();
        closes[i]
    };
    let mut sma = Sma::new(20);
    group.bench_function("sma_20", |b| {
        b.iter(|| black_box(sma.update(black_box(next()))))
    });
    let mut ema = Ema::new(20);
    group.bench_function("ema_20", |b| {
        b.iter(|| black_box(ema.update(black_box(next()))))
    });
    let mut stats = RollingStats::new(20);
    group.bench_function("rolling_mean_std_20", |b| {
        b.iter(|| black_box(stats.update(black_box(next()))))
    });
    group.finish();

    // What the stateless cores compute per decision instead of an incremental update.
    let window: Vec<f64> = walk(8, 20, Duration::minutes(5))
        .iter()
        .map(|b| b.close)
        .collect();
    let mut group = c.benchmark_group("indicator_window");
    group.bench_function("zscore_20", |b| {
        b.iter(|| black_box(zscore(black_box(window[19]), black_box(&window))))
    });
    group.bench_function("mean_std_20", |b| {
        b.iter(|| black_box(mean_std(black_box(&window))))
    });
    group.finish();
}

/// The optimizer's tick in parts: estimating the moments, then solving for the weights.
fn optimizer_parts(c: &mut Criterion) {
    let lookback = PortfolioOptimizerParams::default().lookback;
    let returns: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let closes: Vec<f64> = walk(20 + i, lookback + 1, Duration::days(1))
                .iter()
                .map(|b| b.close)
                .collect();
            herd::strategy::indicators::returns(&closes)
        })
        .collect();
    let mut group = c.benchmark_group("portfolio");
    group.bench_function("moments/7", |b| {
        b.iter(|| black_box(moments(black_box(&returns))))
    });
    let m = moments(&returns).unwrap();
    for (name, objective) in [
        ("max_sharpe", Objective::MaxSharpe),
        ("min_variance", Objective::MinVariance),
    ] {
        group.bench_function(format!("optimize/{name}/7"), |b| {
            b.iter(|| black_box(optimize(black_box(&m), objective, 0.02 / 252.0)))
        });
    }
    group.finish();
}

fn forecast(c: &mut Criterion) {
    let params = NeuralForecastParams::default();
    let closes: Vec<f64> = walk(9, params.history, Duration::minutes(5))
        .iter()
        .map(|b| b.close)
        .collect();
    let mut model = None;
    c.bench_function("neural_forecast/predict", |b| {
        let model =
            model.get_or_insert_with(|| train(&closes, Utc::now(), &one_epoch(&params)).unwrap());
        b.iter(|| black_box(model.predict(black_box(&closes))))
    });
}

fn one_tensor_thread() {
    // As `herd` itself does (see its main): one tensor thread per job. SAFETY: before any
    // benchmark runs, and no other thread exists yet.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn all(c: &mut Criterion) {
    one_tensor_thread();
    decisions(c);
    indicators(c);
    optimizer_parts(c);
    forecast(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
