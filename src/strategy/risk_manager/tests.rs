//! The risk manager on known books: stops sent as the guarded instance's orders (and not
//! twice), figures of the guarded book with alerts raised once, and too few observations.

use super::*;
use crate::domain::{GuardedBook, Holding};
use crate::strategy::testing::{daily_bars as bars, sym};

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).unwrap()
}

fn params() -> RiskManagerParams {
    RiskManagerParams {
        guard: vec!["mom".into(), "mr".into()],
        window: 10,
        min_observations: 5,
        ..RiskManagerParams::default()
    }
}

/// SPY falling from 110 to 100 over 11 days; `mom` long 10 from 110, `mr` short 5 from 100,
/// `other` (not guarded) long 100 from 110.
fn view() -> MarketView {
    let closes: Vec<f64> = (0..11).map(|i| 110.0 - i as f64).collect();
    let mut v = MarketView::default();
    v.bars.insert(sym("SPY"), bars(&closes));
    for (who, qty, entry) in [("mom", 10, 110), ("mr", -5, 100), ("other", 100, 110)] {
        let mut h = Holding::default();
        h.apply(Decimal::from(qty), Decimal::from(entry));
        let book = GuardedBook {
            positions: [(sym("SPY"), h)].into_iter().collect(),
            pending: Default::default(),
        };
        v.guarded.insert(id(who), book);
    }
    v
}

fn manager(p: RiskManagerParams) -> RiskManager {
    RiskManager::new(vec![sym("SPY")], p)
}

#[test]
fn a_guarded_position_past_its_stop_is_closed_as_that_instances_order() {
    let mut rm = manager(params());
    let decisions = rm.decide(&view());
    let mom = decisions
        .iter()
        .find(|d| d.instance == Some(id("mom")))
        .unwrap();
    let Action::Order(o) = &mom.action else {
        panic!("expected a stop, got {mom:?}")
    };
    // Long from 110, now 100: 9.1 % against, past the 2 % stop.
    assert_eq!((o.side, o.qty), (Side::Sell, Decimal::from(10)));
    assert!(o.reason.starts_with("stop loss"));
    let mr = decisions
        .iter()
        .find(|d| d.instance == Some(id("mr")))
        .unwrap();
    assert!(
        matches!(mr.action, Action::Hold { .. }),
        "a short from 100 at 100 is fine"
    );
    assert!(
        decisions.iter().all(|d| d.instance != Some(id("other"))),
        "an instance it does not guard is not its business"
    );
}

/// The newest daily close is yesterday's all day: a position bought today is judged at the
/// venue's current price, where the account holds the symbol, not at that close.
#[test]
fn a_stop_judges_the_venues_current_price_not_yesterdays_close() {
    let mut rm = manager(params());
    let action_of = |decisions: &[Decision], who: &str| {
        decisions
            .iter()
            .find(|d| d.instance == Some(id(who)))
            .map(|d| d.action.clone())
            .unwrap()
    };
    // mom long 10 from 110 and the last close 100 (9.1 % against), but SPY trades at 109.5 now.
    let mut now = view();
    now.marks.insert(sym("SPY"), Decimal::new(1095, 1));
    let held = rm.decide(&now);
    assert!(
        matches!(action_of(&held, "mom"), Action::Hold { reason } if reason == "within the stop loss"),
        "{held:?}"
    );
    // mr short 5 from 100, a fine close of 100, but SPY trades at 103 now: 3 % against.
    now.marks.insert(sym("SPY"), Decimal::from(103));
    let stopped = rm.decide(&now);
    let Action::Order(o) = action_of(&stopped, "mr") else {
        panic!("expected mr's stop, got {stopped:?}")
    };
    assert_eq!((o.side, o.qty), (Side::Buy, Decimal::from(5)));
    assert_eq!(
        o.reference_price,
        Some(103.0),
        "the order's value is the current price's"
    );
    assert!(o.reason.contains("0.0300"), "{}", o.reason);
}

#[test]
fn a_short_past_its_stop_is_bought_back_and_a_symbol_without_bars_says_so() {
    // SPY rising from 100 to 110: `mr`, short 5 from 100, is 10 % against.
    let mut v = view();
    let rising: Vec<f64> = (0..11).map(|i| 100.0 + i as f64).collect();
    v.bars.insert(sym("SPY"), bars(&rising));
    let decisions = manager(params()).decide(&v);
    let mr = decisions
        .iter()
        .find(|d| d.instance == Some(id("mr")))
        .unwrap();
    let Action::Order(o) = &mr.action else {
        panic!("expected a stop, got {mr:?}")
    };
    assert_eq!((o.side, o.qty), (Side::Buy, Decimal::from(5)));
    assert!((mr.signal.unwrap() - 0.1).abs() < 1e-12, "{mr:?}");

    v.bars.remove(&sym("SPY"));
    let decisions = manager(params()).decide(&v);
    let mom = decisions
        .iter()
        .find(|d| d.instance == Some(id("mom")))
        .unwrap();
    assert_eq!(mom.action, Action::NoData { have: 0, need: 1 });
}

#[test]
fn a_stop_is_not_sent_again_while_the_instances_order_is_working() {
    let mut v = view();
    if let Some(book) = v.guarded.get_mut(&id("mom")) {
        book.pending.insert(sym("SPY"), Decimal::from(-10));
    }
    let decisions = manager(params()).decide(&v);
    let mom = decisions
        .iter()
        .find(|d| d.instance == Some(id("mom")))
        .unwrap();
    assert!(matches!(mom.action, Action::Hold { .. }), "{mom:?}");
}

#[test]
fn figures_are_of_the_guarded_book_and_alerts_are_raised_once() {
    let mut rm = manager(RiskManagerParams {
        max_drawdown: 0.01,
        breach_action: BreachAction::Reducing,
        ..params()
    });
    rm.decide(&view());
    let first = rm.report().unwrap();
    let details: serde_json::Value =
        serde_json::from_str(first.details.as_ref().unwrap().get()).unwrap();
    // Guarded: +10 and −5 SPY, a net long of 5 losing 5 USD a day.
    assert_eq!(details["figures"]["observations"], 10, "{details}");
    assert!(
        (details["figures"]["var_usd"].as_f64().unwrap() - 5.0).abs() < 1e-9,
        "{details}"
    );
    let raised: Vec<_> = first.raised.iter().map(|(a, _)| *a).collect();
    assert_eq!(raised, [RiskAlert::StopLoss, RiskAlert::MaxDrawdown]);
    assert_eq!(
        first.trading.as_ref().map(|t| t.0),
        Some(TradingState::Reducing)
    );
    rm.decide(&view());
    let second = rm.report().unwrap();
    assert!(
        second.raised.is_empty(),
        "a standing breach is not raised again"
    );
    assert_eq!(
        second.trading.map(|t| t.0),
        Some(TradingState::Reducing),
        "but still asked for"
    );
}

#[test]
fn too_few_observations_say_so_and_breach_nothing() {
    let mut rm = manager(RiskManagerParams {
        min_observations: 10,
        window: 50,
        ..params()
    });
    let mut v = view();
    v.bars.insert(sym("SPY"), bars(&[100.0, 99.0, 98.0]));
    rm.decide(&v);
    let report = rm.report().unwrap();
    let details: serde_json::Value =
        serde_json::from_str(report.details.as_ref().unwrap().get()).unwrap();
    assert_eq!(
        details["no_figures"],
        "too few observations: 2 periods, at least 10 needed"
    );
    assert_eq!(report.trading, None);
}

#[test]
fn params_out_of_range_are_refused_with_the_key() {
    let base = params();
    let cases = [
        (
            RiskManagerParams {
                guard: vec![],
                ..base.clone()
            },
            ".guard = []",
        ),
        (
            RiskManagerParams {
                guard: vec!["a b".into()],
                ..base.clone()
            },
            ".guard = \"a b\"",
        ),
        (
            RiskManagerParams {
                min_observations: 11,
                ..base.clone()
            },
            ".min_observations = 11",
        ),
        (
            RiskManagerParams {
                confidence: 1.0,
                ..base.clone()
            },
            ".confidence = 1",
        ),
        (
            RiskManagerParams {
                stop_loss: Some(0.0),
                ..base.clone()
            },
            ".stop_loss = 0",
        ),
        (
            RiskManagerParams {
                max_drawdown: 2.0,
                ..base.clone()
            },
            ".max_drawdown = 2",
        ),
        (
            RiskManagerParams {
                max_var: Some(Decimal::ZERO),
                ..base.clone()
            },
            ".max_var = 0",
        ),
    ];
    for (p, key) in cases {
        assert!(p.check().unwrap_err().starts_with(key), "{key}");
    }
    assert_eq!(base.check(), Ok(()));
}
