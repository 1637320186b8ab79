//! Rounds of views: what a round's bars give each view, a round's one outcome for the venue's
//! health, and how the queue is cut into rounds.

use super::*;
use crate::domain::Timeframe;

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

fn window(len: usize) -> Arc<[crate::domain::Bar]> {
    Arc::from(vec![crate::domain::Bar::flat(Utc::now(), 100.0); len])
}

#[test]
fn a_view_the_cache_serves_whole_is_answered_even_when_the_rounds_fetch_failed() {
    let bars = RoundBars {
        cached: SymbolMap::from_iter([(sym("SPY"), window(3))]),
        fetched: Err(BrokerError::Unavailable("the venue is down".into())),
    };
    let cached_only = [sym("SPY")];
    assert!(bars.serves(&cached_only));
    assert_eq!(bars.of(&cached_only, 3).unwrap()[&sym("SPY")].len(), 3);
    let needs_the_fetch = [sym("SPY"), sym("QQQ")];
    assert!(!bars.serves(&needs_the_fetch));
    let error = bars.of(&needs_the_fetch, 3).unwrap_err();
    assert!(error.to_string().contains("the venue is down"), "{error}");
}

#[test]
fn a_view_gets_its_own_symbols_from_the_cache_and_the_fetch_and_no_others() {
    let bars = RoundBars {
        cached: SymbolMap::from_iter([(sym("SPY"), window(3)), (sym("IWM"), window(1))]),
        fetched: Ok(SymbolMap::from_iter([
            (sym("QQQ"), window(2)),
            (sym("DIA"), window(4)),
        ])),
    };
    let view = bars.of(&[sym("SPY"), sym("QQQ")], 3).unwrap();
    let mut got: Vec<_> = view.iter().map(|(s, b)| (s.to_string(), b.len())).collect();
    got.sort();
    assert_eq!(got, [("QQQ".to_owned(), 2), ("SPY".to_owned(), 3)]);
}

#[test]
fn a_view_holds_the_newest_bars_its_instance_asked_for_not_the_rounds_deepest() {
    let deep: Arc<[crate::domain::Bar]> = (0..5)
        .map(|i| crate::domain::Bar::flat(Utc::now(), f64::from(i)))
        .collect();
    let bars = RoundBars {
        cached: SymbolMap::from_iter([(sym("SPY"), Arc::clone(&deep))]),
        fetched: Ok(SymbolMap::from_iter([(sym("QQQ"), Arc::clone(&deep))])),
    };
    let view = bars.of(&[sym("SPY"), sym("QQQ")], 2).unwrap();
    for s in ["SPY", "QQQ"] {
        let closes: Vec<f64> = view[&sym(s)].iter().map(|b| b.close).collect();
        assert_eq!(closes, [3.0, 4.0], "{s}");
    }
    let whole = bars.of(&[sym("SPY")], 5).unwrap();
    assert!(
        Arc::ptr_eq(&whole[&sym("SPY")], &deep),
        "as deep as asked: shared"
    );
}

#[test]
fn a_round_is_one_outcome_for_the_venues_health_however_many_views_failed() {
    let down = || Err(BrokerError::Unavailable("the venue is down".into()));
    let failed: Vec<ViewReply> = (0..1000).map(|_| down()).collect();
    let (answered, error) = outcome(&failed);
    assert!(!answered);
    assert!(error.unwrap().to_string().contains("the venue is down"));
    let mixed = vec![Ok(MarketView::default()), down()];
    let (answered, error) = outcome(&mixed);
    assert!(answered, "a view got through: the venue answered");
    assert!(error.is_some(), "and a view failed");
    let through = [Ok(MarketView::default())];
    let (answered, error) = outcome(&through);
    assert!(answered && error.is_none());
}

fn ask(instance: &str, timeframe: Timeframe, session: Session) -> Asked {
    let (reply, _) = tokio::sync::oneshot::channel();
    Asked {
        ask: Ask {
            request: GetMarketView {
                instance: InstanceId::parse(instance).unwrap(),
                symbols: vec![sym("SPY")],
                needs: DataNeeds {
                    timeframe,
                    bars: 20,
                    account: false,
                    only_when_open: true,
                },
                guards: vec![],
                session,
                trace: Span::none(),
            },
            own: Own {
                positions: SymbolMap::default(),
                pending: SymbolMap::default(),
                guarded: HashMap::new(),
            },
            span: Span::none(),
        },
        reply,
    }
}

#[test]
fn a_round_is_split_by_series_in_the_order_the_views_came_and_empties_the_queue() {
    let queue = ViewQueue::default();
    let five = Timeframe::Minutes(5);
    assert!(
        queue.push(ask("a", five, Session::Regular)),
        "the first opens a round"
    );
    assert!(!queue.push(ask("b", Timeframe::Day, Session::Regular)));
    assert!(!queue.push(ask("c", five, Session::Regular)));
    assert!(!queue.push(ask("d", five, Session::Extended)));
    let round: Vec<(Series, Vec<String>)> = queue
        .take()
        .into_iter()
        .map(|(series, views)| {
            let ids = views
                .iter()
                .map(|v| v.ask.request.instance.to_string())
                .collect();
            (series, ids)
        })
        .collect();
    let series = |timeframe, session| Series { timeframe, session };
    assert_eq!(
        round,
        [
            (
                series(five, Session::Regular),
                vec!["a".to_owned(), "c".to_owned()]
            ),
            (
                series(Timeframe::Day, Session::Regular),
                vec!["b".to_owned()]
            ),
            (series(five, Session::Extended), vec!["d".to_owned()]),
        ]
    );
    assert!(queue.take().is_empty());
    assert!(
        queue.push(ask("e", five, Session::Regular)),
        "the next view opens the next round"
    );
}
