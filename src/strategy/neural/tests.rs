//! The neural core: what it asks of the workshop and when, what it holds without a model, and
//! how confidence becomes a decision and a size.

use std::sync::Arc;

use chrono::Duration;

use super::*;
use crate::domain::{Bar, Holding};
use crate::strategy::testing::{minute_bar as t, minute_bars as bars, sym};

fn aapl() -> Symbol {
    sym("AAPL")
}

/// A tiny network that trains in a fraction of a second.
fn params() -> NeuralForecastParams {
    NeuralForecastParams {
        history: 120,
        lookback: 12,
        horizon: 3,
        hidden: 8,
        dense: 6,
        dropout: 0.1,
        epochs: 12,
        batch_size: 16,
        learning_rate: 0.03,
        ..NeuralForecastParams::default()
    }
}

fn sine(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 100.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin())
        .collect()
}

fn view(closes: &[f64]) -> MarketView {
    let mut v = MarketView {
        market_open: true,
        ..MarketView::default()
    };
    v.bars.insert(aapl(), bars(closes));
    v
}

/// Runs the core's work the way the workshop would, without the disk.
fn run(work: Vec<Work>) -> Vec<Finished> {
    work.into_iter()
        .map(|w| match w {
            Work::Load { symbol, .. } => Finished {
                symbol,
                outcome: Ok(None),
            },
            Work::Train {
                symbol,
                closes,
                through,
                config,
            } => Finished {
                symbol,
                outcome: model::train(&closes, through, &config)
                    .map(|m| Some(Arc::new(m)))
                    .map_err(|e| e.to_string()),
            },
        })
        .collect()
}

/// A core whose model is trained on `closes`.
fn trained(closes: &[f64]) -> NeuralForecast {
    trained_with(closes, params())
}

fn trained_with(closes: &[f64], params: NeuralForecastParams) -> NeuralForecast {
    let mut core = NeuralForecast::new(vec![aapl()], params);
    let v = view(closes);
    core.decide(&v);
    for done in run(core.work()) {
        core.finished(done);
    }
    core.decide(&v);
    for done in run(core.work()) {
        core.finished(done);
    }
    core
}

#[test]
fn without_a_model_it_holds_asks_for_the_saved_one_then_trains() {
    let mut core = NeuralForecast::new(vec![aapl()], params());
    let v = view(&sine(120));
    let first = core.decide(&v);
    assert_eq!(
        first[0].action,
        Action::Hold {
            reason: "model not trained"
        }
    );
    let work = core.work();
    assert!(matches!(work.as_slice(), [Work::Load { .. }]), "{work:?}");
    assert!(
        core.decide(&v).len() == 1 && core.work().is_empty(),
        "nothing until the load answers"
    );
    core.finished(Finished {
        symbol: aapl(),
        outcome: Ok(None),
    });
    core.decide(&v);
    let work = core.work();
    let [
        Work::Train {
            closes, through, ..
        },
    ] = work.as_slice()
    else {
        panic!("expected a training, got {work:?}")
    };
    assert_eq!((closes.len(), *through), (120, t(119)));
    core.decide(&v);
    assert!(core.work().is_empty(), "one training at a time");
}

#[test]
fn a_loaded_model_is_not_retrained_until_retrain_every_has_passed() {
    let closes = sine(120);
    let mut core = trained(&closes);
    let mut v = view(&closes);
    core.decide(&v);
    assert!(core.work().is_empty(), "fresh model");
    // A day of 5-minute bars later (the default retrain_every is one day).
    let later: Vec<Bar> = bars(&closes)
        .iter()
        .map(|b| Bar {
            time: b.time + Duration::days(1),
            ..*b
        })
        .collect();
    v.bars.insert(aapl(), later.into());
    core.decide(&v);
    assert!(matches!(core.work().as_slice(), [Work::Train { .. }]));
}

#[test]
fn over_a_cycle_it_buys_from_flat_on_confident_rises_and_sells_all_on_falls_never_short() {
    let closes = sine(120);
    // This sine's returns have σ ≈ 0.9 %; its forecasts move up to ±4 %: confidences from 0.5
    // to about 0.78, so a floor of 0.6 lets both directions through.
    let mut core = trained_with(
        &closes,
        NeuralForecastParams {
            confidence_floor: 0.6,
            ..params()
        },
    );
    let (mut buys, mut sells) = (0, 0);
    for end in 60..120 {
        let mut v = view(&closes[..end]);
        let flat = core.decide(&v).remove(0);
        if let Action::Order(o) = &flat.action {
            assert_eq!(o.side, Side::Buy, "flat: a down forecast never sells short");
            assert!(flat.signal.unwrap() > 0.0);
            assert!(
                (Decimal::from(5)..=Decimal::from(50)).contains(&o.qty),
                "{o:?}"
            );
            buys += 1;
        }
        let mut held = Holding::default();
        held.apply(Decimal::from(7), Decimal::from(100));
        v.positions.insert(aapl(), held);
        let long = core.decide(&v).remove(0);
        match &long.action {
            Action::Order(o) => {
                assert_eq!((o.side, o.qty), (Side::Sell, Decimal::from(7)), "{long:?}");
                assert!(long.signal.unwrap() < 0.0);
                sells += 1;
            }
            Action::Hold { reason } => assert!(
                [
                    "forecast up, but already holding",
                    "confidence below the floor"
                ]
                .contains(reason),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        buys > 0 && sells > 0,
        "a full cycle holds both: {buys} buys, {sells} sells"
    );
}

#[test]
fn with_a_model_too_few_bars_decide_nothing_and_flat_prices_are_not_trusted() {
    let core = &mut trained(&sine(120));
    let few = core.decide(&view(&sine(11))).remove(0);
    assert_eq!(few.action, Action::NoData { have: 11, need: 12 });
    let flat = core.decide(&view(&[100.0; 120])).remove(0);
    assert_eq!(
        flat.action,
        Action::Hold {
            reason: "flat prices: confidence undefined"
        }
    );
}

#[test]
fn a_gap_in_the_bars_changes_nothing_but_the_dates() {
    // The network reads the newest closes in order; times only date the order.
    let closes = sine(120);
    let mut core = trained_with(
        &closes,
        NeuralForecastParams {
            confidence_floor: 0.6,
            ..params()
        },
    );
    let mut orders = 0;
    for end in 60..120 {
        let plain = core.decide(&view(&closes[..end])).remove(0);
        let mut v = view(&closes[..end]);
        let gapped: Vec<Bar> = v
            .bars(&aapl())
            .iter()
            .enumerate()
            .map(|(i, b)| Bar {
                time: if i >= end / 2 {
                    b.time + Duration::hours(17)
                } else {
                    b.time
                },
                ..*b
            })
            .collect();
        let newest = gapped[end - 1].time;
        v.bars.insert(aapl(), gapped.into());
        let gapped = core.decide(&v).remove(0);
        assert_eq!(plain.signal, gapped.signal);
        match (&plain.action, &gapped.action) {
            (Action::Order(a), Action::Order(b)) => {
                assert_eq!((a.side, a.qty), (b.side, b.qty));
                assert_eq!(b.decided_on, newest);
                orders += 1;
            }
            (a, b) => assert_eq!(a, b),
        }
    }
    assert!(orders > 0, "the dates of at least one order were checked");
}

#[test]
fn the_size_reaches_max_size_at_the_confidence_cap() {
    let p = NeuralForecastParams::default();
    assert_eq!(p.size(0.70), Decimal::from(5));
    assert_eq!(
        p.size(0.95),
        Decimal::from(50),
        "the seed's formula gave 43 here"
    );
    assert_eq!(
        p.size(0.825),
        Decimal::from(28),
        "halfway: 5 + 22.5, rounded"
    );
}

#[test]
fn params_out_of_range_are_refused_with_the_key() {
    let base = NeuralForecastParams::default();
    let cases = [
        (
            NeuralForecastParams {
                history: 70,
                ..base.clone()
            },
            ".history = 70",
        ),
        (
            NeuralForecastParams {
                hidden: 0,
                ..base.clone()
            },
            ".hidden = 0",
        ),
        (
            NeuralForecastParams {
                dropout: 0.95,
                ..base.clone()
            },
            ".dropout = 0.95",
        ),
        (
            NeuralForecastParams {
                confidence_floor: 0.96,
                ..base.clone()
            },
            ".confidence_floor = 0.96",
        ),
        (
            NeuralForecastParams {
                max_size: Decimal::ONE,
                ..base.clone()
            },
            ".max_size = 1",
        ),
        (
            NeuralForecastParams {
                retrain_every: HumanDuration(std::time::Duration::ZERO),
                ..base.clone()
            },
            ".retrain_every",
        ),
    ];
    for (p, key) in cases {
        assert!(
            p.check().unwrap_err().starts_with(key),
            "{key}: {:?}",
            p.check()
        );
    }
    assert_eq!(base.check(), Ok(()));
}
