//! Market properties: reproducibility, aggregation, positivity, closed bars, paging, history,
//! and that the default market gives strategies the conditions they trade on.

use super::bar::ts_string;
use super::*;
use crate::sim::config::SimConfig;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid time")
        .with_timezone(&Utc)
}

fn market(cfg: &SimConfig, start: DateTime<Utc>) -> Market {
    Market::new(cfg.market(), start, Replay::default())
}

fn request(
    symbols: &[&str],
    tf: Timeframe,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BarsRequest {
    BarsRequest {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeframe: tf,
        start,
        end,
        limit: 10_000,
        desc: false,
        token: None,
        split_adjusted: false,
        empty_minutes: 0.0,
    }
}

fn all_bars(m: &mut Market, req: &BarsRequest, now: DateTime<Utc>) -> Vec<(String, Bar)> {
    let mut out = Vec::new();
    let mut req = req.clone();
    loop {
        let page = m.bars_page(&req, now);
        for (s, bars) in page.bars {
            out.extend(bars.into_iter().map(|b| (s.clone(), b)));
        }
        match page.next {
            Some(t) => req.token = Some(t),
            None => return out,
        }
    }
}

#[test]
fn same_seed_gives_the_same_bars_whatever_the_request_order() {
    let cfg = SimConfig::default();
    let start = utc("2024-05-08T15:17:00Z");
    let day = utc("2024-05-02T00:00:00Z");
    let q5 = request(&["SPY", "QQQ"], Timeframe::Minutes(5), day, start);
    let qd = request(&["SPY"], Timeframe::Day, utc("2024-01-01T00:00:00Z"), start);

    let mut a = market(&cfg, start);
    let a5 = all_bars(&mut a, &q5, start);
    let ad = all_bars(&mut a, &qd, start);

    let mut b = market(&cfg, start);
    let bd = all_bars(&mut b, &qd, start);
    let _ = b.price("QQQ", utc("2024-05-07T12:00:00Z"));
    let b5 = all_bars(&mut b, &q5, start);

    assert!(!a5.is_empty() && !ad.is_empty());
    assert_eq!(a5, b5);
    assert_eq!(ad, bd);

    let other = SimConfig {
        seed: 43,
        ..SimConfig::default()
    };
    let mut c = market(&other, start);
    assert_ne!(
        all_bars(&mut c, &q5, start),
        a5,
        "another seed, other prices"
    );
}

#[test]
fn a_closed_bar_never_changes_as_time_passes() {
    let cfg = SimConfig::default();
    let start = utc("2024-05-08T15:17:00Z");
    let mut m = market(&cfg, start);
    let q = request(
        &["IWM"],
        Timeframe::Minutes(15),
        utc("2024-05-08T00:00:00Z"),
        start,
    );
    let early = all_bars(&mut m, &q, start);
    let later_now = start + Duration::hours(3);
    let q_late = BarsRequest {
        end: later_now,
        ..q.clone()
    };
    let late = all_bars(&mut m, &q_late, later_now);
    assert!(late.len() > early.len());
    assert_eq!(&late[..early.len()], &early[..]);
}

#[test]
fn only_closed_bars_are_returned() {
    let cfg = SimConfig::default();
    let now = utc("2024-05-08T15:17:30Z");
    let mut m = market(&cfg, now);
    let q = request(
        &["SPY"],
        Timeframe::Minutes(5),
        utc("2024-05-08T14:00:00Z"),
        now,
    );
    let bars = all_bars(&mut m, &q, now);
    let last = bars.last().expect("bars").1;
    assert_eq!(ts_string(last.t), "2024-05-08T15:10:00Z");
    let q1 = request(
        &["SPY"],
        Timeframe::Minutes(1),
        utc("2024-05-08T15:00:00Z"),
        now,
    );
    let last1 = all_bars(&mut m, &q1, now).last().expect("bars").1;
    assert_eq!(ts_string(last1.t), "2024-05-08T15:16:00Z");
    // Today's daily bar is not closed yet.
    let qd = request(&["SPY"], Timeframe::Day, utc("2024-05-01T00:00:00Z"), now);
    let lastd = all_bars(&mut m, &qd, now).last().expect("bars").1;
    assert_eq!(ts_string(lastd.t), "2024-05-07T04:00:00Z");
}

#[test]
fn longer_bars_aggregate_the_minutes() {
    let cfg = SimConfig::default();
    let now = utc("2024-05-08T15:17:00Z");
    let mut m = market(&cfg, now);
    let from = utc("2024-05-08T13:00:00Z");
    let mins: Vec<Bar> = all_bars(
        &mut m,
        &request(&["QQQ"], Timeframe::Minutes(1), from, now),
        now,
    )
    .into_iter()
    .map(|(_, b)| b)
    .collect();
    let fives: Vec<Bar> = all_bars(
        &mut m,
        &request(&["QQQ"], Timeframe::Minutes(5), from, now),
        now,
    )
    .into_iter()
    .map(|(_, b)| b)
    .collect();
    for five in &fives {
        let inside: Vec<Bar> = mins
            .iter()
            .filter(|b| b.t >= five.t && b.t < five.t + 300)
            .copied()
            .collect();
        assert_eq!(inside.len(), 5);
        assert_eq!(Some(*five), bar::aggregate(five.t, &inside));
    }
    // A daily bar is the aggregate of its day's minutes.
    let date = NaiveDate::from_ymd_opt(2024, 5, 6).expect("date");
    let minutes = m.minutes_of("QQQ", date);
    assert_eq!(minutes.len(), 1440);
    assert_eq!(
        m.day_bar("QQQ", date),
        bar::aggregate(ny_midnight(date).timestamp(), &minutes)
    );
}

#[test]
fn regular_sessions_have_390_minutes_and_no_weekend_bars() {
    let cfg = SimConfig {
        market_hours: MarketHours::Regular,
        ..SimConfig::default()
    };
    let now = utc("2024-05-13T15:00:00Z");
    let mut m = market(&cfg, now);
    let sat = NaiveDate::from_ymd_opt(2024, 5, 11).expect("date");
    let fri = NaiveDate::from_ymd_opt(2024, 5, 10).expect("date");
    assert!(m.minutes_of("SPY", sat).is_empty());
    let bars = m.minutes_of("SPY", fri);
    assert_eq!(bars.len(), 390);
    assert_eq!(ts_string(bars[0].t), "2024-05-10T13:30:00Z");
    // Outside the session the price is the last close.
    let saturday_noon = utc("2024-05-11T16:00:00Z");
    assert_eq!(m.price("SPY", saturday_noon), bars[389].c);
    let q = request(
        &["SPY"],
        Timeframe::Minutes(60),
        utc("2024-05-10T00:00:00Z"),
        now,
    );
    let hours = all_bars(&mut m, &q, now);
    assert_eq!(
        ts_string(hours[0].1.t),
        "2024-05-10T13:00:00Z",
        "09:00 ET bucket"
    );
    assert_eq!(hours[0].1.v, bars[..30].iter().map(|b| b.v).sum::<u64>());
}

#[test]
fn history_reaches_back_far_enough_at_startup() {
    let cfg = SimConfig::default();
    let now = utc("2024-05-08T15:17:00Z");
    let mut m = market(&cfg, now);
    let daily = all_bars(
        &mut m,
        &request(&["SPY"], Timeframe::Day, now - Duration::days(400), now),
        now,
    );
    assert!(daily.len() >= 90, "{} daily bars", daily.len());
    let intraday = all_bars(
        &mut m,
        &request(
            &["SPY"],
            Timeframe::Minutes(5),
            now - Duration::days(10),
            now,
        ),
        now,
    );
    assert!(
        intraday.len() >= 10 * 288 - 10,
        "{} five-minute bars",
        intraday.len()
    );
    // Nothing before the first history day.
    let first = daily.first().expect("bars").1;
    assert!(first.t >= m.first_time().timestamp());
}

#[test]
fn prices_stay_positive_and_plausible_for_a_year() {
    let cfg = SimConfig::default();
    let now = utc("2024-05-08T15:17:00Z");
    let mut m = market(&cfg, now);
    for sym in ["SPY", "QQQ", "IWM", "TSLA", "ZZZZ"] {
        let start_price = m.params(sym).start_price;
        let daily = all_bars(
            &mut m,
            &request(&[sym], Timeframe::Day, now - Duration::days(365), now),
            now,
        );
        for (_, b) in daily {
            assert!(b.l > 0.0, "{sym} positive");
            let ratio = b.c / start_price;
            assert!(
                (0.4..2.5).contains(&ratio),
                "{sym} at {} is {ratio}x start",
                ts_string(b.t)
            );
        }
    }
}

#[test]
fn pages_split_across_symbols_and_join_to_the_whole() {
    let cfg = SimConfig::default();
    let now = utc("2024-05-08T15:17:00Z");
    let from = utc("2024-05-08T10:00:00Z");
    for desc in [false, true] {
        let mut m = market(&cfg, now);
        let whole = BarsRequest {
            desc,
            ..request(&["IWM", "QQQ", "SPY"], Timeframe::Minutes(5), from, now)
        };
        let first = m.bars_page(&whole, now);
        assert!(first.next.is_none(), "one page holds it all");
        let joined: Vec<(String, Bar)> = first
            .bars
            .into_iter()
            .flat_map(|(s, bars)| bars.into_iter().map(move |b| (s.clone(), b)))
            .collect();
        let paged = all_bars(
            &mut m,
            &BarsRequest {
                limit: 7,
                ..whole.clone()
            },
            now,
        );
        assert_eq!(paged, joined);
        // Symbols in order, each symbol's bars in the requested order.
        let spy: Vec<i64> = paged
            .iter()
            .filter(|(s, _)| s == "SPY")
            .map(|(_, b)| b.t)
            .collect();
        let mut sorted = spy.clone();
        sorted.sort();
        if desc {
            sorted.reverse();
        }
        assert_eq!(spy, sorted);
        assert_eq!(paged.first().map(|(s, _)| s.as_str()), Some("IWM"));
    }
}

#[test]
fn exact_page_boundary_has_no_empty_trailing_page() {
    let cfg = SimConfig::default();
    let now = utc("2024-05-08T15:17:00Z");
    let mut m = market(&cfg, now);
    let q = request(
        &["SPY"],
        Timeframe::Minutes(60),
        utc("2024-05-08T10:00:00Z"),
        now,
    );
    let n = m.bars_page(&q, now).bars[0].1.len();
    let page = m.bars_page(&BarsRequest { limit: n, ..q }, now);
    assert!(page.next.is_none());
}

/// Oldest-to-newest close change over the last `n` closed bars ending at `now`.
fn window_moves(m: &mut Market, sym: &str, now: DateTime<Utc>, n: usize) -> Vec<f64> {
    let q = BarsRequest {
        desc: true,
        limit: n,
        ..request(&[sym], Timeframe::Minutes(5), now - Duration::days(3), now)
    };
    let page = m.bars_page(&q, now);
    page.bars
        .first()
        .map(|(_, b)| b.iter().rev().map(|b| b.c).collect())
        .unwrap_or_default()
}

#[test]
fn default_market_makes_momentum_fire_within_fifty_sim_minutes() {
    // herd's acceptance: the default momentum instance (SPY, QQQ, IWM; 20 closed 5Min bars;
    // ±2 % between oldest and newest close) orders within 30 real seconds at speed 100, i.e.
    // within 50 sim minutes (10 new bars) of startup. Check that over many start times.
    let cfg = SimConfig::default();
    let starts = 1000;
    let mut fired = 0;
    for k in 0..starts {
        // Starts spread over two years and over the hours of the day.
        let start = utc("2023-01-03T00:00:00Z") + Duration::minutes(k * 17 * 60 + 7 * k);
        let mut m = market(&cfg, start);
        let hit = (0..=10).any(|step| {
            let now = start + Duration::minutes(5 * step);
            ["SPY", "QQQ", "IWM"].iter().any(|s| {
                let closes = window_moves(&mut m, s, now, 20);
                closes.len() == 20 && (closes[19] / closes[0] - 1.0).abs() >= 0.02
            })
        });
        fired += usize::from(hit);
    }
    assert!(
        fired * 100 >= starts as usize * 99,
        "momentum fired for {fired}/{starts} starts"
    );
}

#[test]
fn default_market_gives_mean_reversion_signals() {
    // z-score of the last close against the 20 closes before it: ±2 must happen regularly.
    let cfg = SimConfig::default();
    let start = utc("2024-03-05T12:00:00Z");
    let mut m = market(&cfg, start);
    let mut signals = 0;
    let checks = 200;
    for step in 0..checks {
        let now = start + Duration::minutes(5 * step);
        let closes = window_moves(&mut m, "SPY", now, 20);
        let mean = closes.iter().sum::<f64>() / 20.0;
        let sd = (closes.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / 20.0).sqrt();
        if sd > 0.0 && ((closes[19] - mean) / sd).abs() >= 2.0 {
            signals += 1;
        }
    }
    assert!(
        signals >= checks / 40,
        "{signals} z-score signals in {checks} bars"
    );
}

#[test]
fn a_bar_is_served_after_its_delay_provisional_first_then_final() {
    let cfg = SimConfig {
        bar_delay: crate::sim::value::SimDuration(std::time::Duration::from_secs(3)),
        bar_revision: crate::sim::value::SimDuration(std::time::Duration::from_secs(10)),
        ..SimConfig::default()
    };
    let start = utc("2024-05-08T15:00:00Z");
    let q = request(
        &["SPY"],
        Timeframe::Minutes(5),
        utc("2024-05-08T14:50:00Z"),
        start,
    );
    let at = |m: &mut Market, now: &str| {
        all_bars(m, &q, utc(now))
            .into_iter()
            .map(|(_, b)| b)
            .find(|b| b.t == utc("2024-05-08T14:55:00Z").timestamp())
    };
    let mut m = market(&cfg, start);
    // The 14:55 bar ends at 15:00: not served before 15:00:03, ...
    assert_eq!(at(&mut m, "2024-05-08T15:00:02Z"), None);
    // ... provisional until 15:00:13, ...
    let provisional = at(&mut m, "2024-05-08T15:00:05Z").expect("published");
    // ... then final, as a venue without delays serves it.
    let settled = at(&mut m, "2024-05-08T15:00:13Z").expect("final");
    let instant = at(
        &mut market(&SimConfig::default(), start),
        "2024-05-08T15:00:00Z",
    );
    assert_eq!(Some(settled), instant);
    assert_ne!(provisional.c, settled.c);
    assert!(provisional.v < settled.v);
    assert_eq!(provisional.o, settled.o);
}

#[test]
fn before_a_split_raw_bars_are_in_pre_split_prices_and_adjusted_ones_are_not() {
    let mut cfg = SimConfig::default();
    cfg.symbols.insert(
        "SPY".into(),
        SymbolParams {
            split_at: Some("2024-05-08T14:00:00Z".into()),
            split_ratio: Some(2.0),
            ..SymbolParams::default()
        },
    );
    let now = utc("2024-05-08T15:00:00Z");
    let q = request(
        &["SPY"],
        Timeframe::Minutes(5),
        utc("2024-05-08T13:30:00Z"),
        now,
    );
    let adjusted = all_bars(
        &mut market(&cfg, now),
        &BarsRequest {
            split_adjusted: true,
            ..q.clone()
        },
        now,
    );
    let raw = all_bars(&mut market(&cfg, now), &q, now);
    assert_eq!(adjusted.len(), raw.len());
    let split = utc("2024-05-08T14:00:00Z").timestamp();
    for ((_, a), (_, r)) in adjusted.iter().zip(&raw) {
        let factor = if a.t < split { 2.0 } else { 1.0 };
        assert!((r.c - a.c * factor).abs() < 1e-9, "{a:?} {r:?}");
    }
    assert!(raw.iter().any(|(_, b)| b.t < split) && raw.iter().any(|(_, b)| b.t >= split));
}

#[test]
fn on_a_thin_feed_some_minutes_have_no_bar_and_coarser_bars_are_built_from_the_rest() {
    let cfg = SimConfig::default();
    let now = utc("2024-05-08T15:00:00Z");
    let from = utc("2024-05-08T13:00:00Z");
    let fetch = |tf: Timeframe, share: f64| {
        let q = BarsRequest {
            empty_minutes: share,
            ..request(&["SPY"], tf, from, now)
        };
        all_bars(&mut market(&cfg, now), &q, now)
    };
    let (all, thin) = (
        fetch(Timeframe::Minutes(1), 0.0),
        fetch(Timeframe::Minutes(1), 0.5),
    );
    assert_eq!(all.len(), 120);
    assert!((40..80).contains(&thin.len()), "{}", thin.len());
    assert_eq!(
        thin,
        fetch(Timeframe::Minutes(1), 0.5),
        "the same gaps on every request"
    );
    // A five-minute bar on the thin feed trades only what its minutes with a bar traded.
    let volume = |bars: &[(String, Bar)]| bars.iter().map(|(_, b)| b.v).sum::<u64>();
    let (thick5, thin5) = (
        fetch(Timeframe::Minutes(5), 0.0),
        fetch(Timeframe::Minutes(5), 0.5),
    );
    assert!(volume(&thin5) < volume(&thick5));
    assert_eq!(volume(&thin5), volume(&thin));
}
