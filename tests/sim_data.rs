//! Market data endpoints over real HTTP: timeframes, sorting, errors, latest values and
//! snapshots.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::{Client, frozen, start};

fn times(bars: &Value) -> Vec<String> {
    bars.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["t"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn every_timeframe_form_and_descending_sort() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    for (tf, step_minutes) in [
        ("1Min", 1),
        ("5Min", 5),
        ("15Min", 15),
        ("1Hour", 60),
        ("2Hour", 120),
        ("30T", 30),
    ] {
        let r = c
            .get(&format!(
                "/v2/stocks/bars?symbols=SPY&timeframe={tf}&start=2024-05-07T00:00:00Z"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{tf}: {}", r.text);
        let ts = times(&r.body["bars"]["SPY"]);
        assert!(ts.len() > 3, "{tf}");
        let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("time");
        let step = parse(&ts[1]) - parse(&ts[0]);
        assert_eq!(step.num_minutes(), step_minutes, "{tf}");
    }
    let asc = c
        .get("/v2/stocks/SPY/bars?timeframe=1Day&start=2024-04-01")
        .await;
    let desc = c
        .get("/v2/stocks/SPY/bars?timeframe=1Day&start=2024-04-01&sort=desc")
        .await;
    let mut a = times(&asc.body["bars"]);
    let d = times(&desc.body["bars"]);
    a.reverse();
    assert_eq!(a, d);
    // Daily bars are stamped at New York midnight.
    assert_eq!(d[0], "2024-05-07T04:00:00Z");
    sim.stop().await;
}

#[actix_web::test]
async fn bad_data_requests_get_422() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    for url in [
        "/v2/stocks/bars?symbols=SPY&timeframe=7Day",
        "/v2/stocks/bars?symbols=SPY&timeframe=1Week",
        "/v2/stocks/bars?timeframe=1Min",
        "/v2/stocks/bars?symbols=SPY",
        "/v2/stocks/bars?symbols=SPY&timeframe=1Min&start=2024-05-08T00:00:00Z&end=2024-05-07T00:00:00Z",
        "/v2/stocks/bars?symbols=SPY&timeframe=1Min&limit=0",
        "/v2/stocks/bars?symbols=SPY&timeframe=1Min&page_token=zz",
        "/v2/stocks/bars?symbols=SPY&timeframe=1Min&start=yesterday",
        "/v2/stocks/bars?symbols=SPY&timeframe=1Min&sort=up",
        "/v2/stocks/bars?symbols=BTC/USD&timeframe=1Min",
    ] {
        let r = c.get(url).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            r.text
        );
        assert!(r.body["message"].is_string(), "{url}");
        assert!(r.body["code"].is_number(), "{url}");
    }
    // The old JS SDK sends page_token=null on the first page.
    let r = c
        .get("/v2/stocks/bars?symbols=SPY&timeframe=1Hour&page_token=null")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    sim.stop().await;
}

#[actix_web::test]
async fn latest_values_and_snapshots() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let r = c.get("/v2/stocks/trades/latest?symbols=SPY,QQQ").await;
    assert_eq!(r.status, StatusCode::OK);
    let t = &r.body["trades"]["SPY"];
    for key in ["t", "x", "p", "s", "c", "i", "z"] {
        assert!(t.get(key).is_some(), "trade has {key}");
    }
    assert!(r.body["trades"]["QQQ"]["p"].is_f64());
    let q = c.get("/v2/stocks/quotes/latest?symbols=SPY").await.body;
    let (bid, ask) = (
        q["quotes"]["SPY"]["bp"].as_f64().expect("bid"),
        q["quotes"]["SPY"]["ap"].as_f64().expect("ask"),
    );
    assert!(bid < ask);
    let b = c.get("/v2/stocks/bars/latest?symbols=SPY").await.body;
    assert_eq!(b["bars"]["SPY"]["t"], "2024-05-08T15:16:00Z");

    let single = c.get("/v2/stocks/QQQ/trades/latest").await.body;
    assert_eq!(single["symbol"], "QQQ");
    assert!(single["trade"]["p"].is_f64());
    assert!(c.get("/v2/stocks/QQQ/quotes/latest").await.body["quote"]["ap"].is_f64());
    assert!(c.get("/v2/stocks/QQQ/bars/latest").await.body["bar"]["c"].is_f64());

    let snaps = c.get("/v2/stocks/snapshots?symbols=SPY,IWM").await.body;
    for sym in ["SPY", "IWM"] {
        for key in [
            "latestTrade",
            "latestQuote",
            "minuteBar",
            "dailyBar",
            "prevDailyBar",
        ] {
            assert!(snaps[sym][key].is_object(), "{sym} {key}");
        }
    }
    assert_eq!(snaps["SPY"]["dailyBar"]["t"], "2024-05-08T04:00:00Z");
    assert_eq!(snaps["SPY"]["prevDailyBar"]["t"], "2024-05-07T04:00:00Z");
    let one = c.get("/v2/stocks/IWM/snapshot").await.body;
    assert_eq!(one["symbol"], "IWM");
    assert!(one["latestTrade"]["p"].is_f64());
    sim.stop().await;
}

#[actix_web::test]
async fn same_seed_same_prices_across_servers() {
    let url = "/v2/stocks/bars?symbols=SPY,TSLA&timeframe=15Min&start=2024-05-06T00:00:00Z";
    let a = start(frozen()).await;
    let b = start(frozen()).await;
    let ra = Client::new(&a).get(url).await;
    // Ask b for something else first: the order of requests must not matter.
    Client::new(&b)
        .get("/v2/stocks/bars?symbols=TSLA&timeframe=1Day&start=2024-01-01")
        .await;
    let rb = Client::new(&b).get(url).await;
    assert_eq!(ra.body, rb.body);
    a.stop().await;
    b.stop().await;
}

#[actix_web::test]
async fn assets_and_calendar() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let a = c.get("/v2/assets/QQQ").await.body;
    assert_eq!(a["symbol"], "QQQ");
    assert_eq!(a["exchange"], "NASDAQ");
    assert_eq!(a["tradable"], true);
    assert_eq!(c.get("/v2/assets/bad$").await.status, StatusCode::NOT_FOUND);
    let cal = c
        .get("/v2/calendar?start=2024-05-06&end=2024-05-12")
        .await
        .body;
    assert_eq!(
        cal.as_array().map(Vec::len),
        Some(7),
        "always open: every day"
    );
    assert_eq!(cal[0]["date"], "2024-05-06");
    sim.stop().await;
}
