//! Rate limiting, request counters and the control endpoints, over real HTTP.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{Client, frozen, start};

#[actix_web::test]
async fn quota_per_key_with_headers_on_every_response_then_429() {
    let cfg = herd::sim::SimConfig {
        rate_limit: 5,
        ..frozen()
    };
    let sim = start(cfg).await;
    let c = Client::new(&sim);
    for expected_remaining in (0..5).rev() {
        let r = c.get("/v2/clock").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        let reset: u64 = r
            .header("x-ratelimit-reset")
            .and_then(|v| v.parse().ok())
            .expect("reset epoch seconds");
        assert!(reset > 1_700_000_000);
    }
    let r = c.get("/v2/account").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.body["code"], 42910000);
    // Market data has its own quota; another key has its own too.
    assert_eq!(
        c.get("/v2/stocks/bars/latest?symbols=SPY").await.status,
        StatusCode::OK
    );
    let other = Client::with_key(&sim, "other", "s");
    assert_eq!(other.get("/v2/clock").await.status, StatusCode::OK);
    // Refused requests carry the headers too.
    let anon = Client::anonymous(&sim).get("/v2/clock").await;
    assert_eq!(anon.status, StatusCode::FORBIDDEN);
    assert!(anon.header("x-ratelimit-limit").is_some());

    let stats = c.get("/__sim/stats").await.body;
    assert_eq!(stats["rate_limited"], 1);
    assert_eq!(stats["routes"]["GET /v2/clock"]["statuses"]["200"], 6);
    assert_eq!(stats["routes"]["GET /v2/account"]["statuses"]["429"], 1);
    sim.stop().await;
}

#[actix_web::test]
async fn stats_count_requests_per_route_and_reset() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    for _ in 0..3 {
        c.get("/v2/stocks/bars?symbols=SPY,QQQ&timeframe=5Min")
            .await;
    }
    c.get("/v2/orders/00000000-0000-4000-8000-000000000000")
        .await;
    let stats = c.get("/__sim/stats").await.body;
    assert_eq!(stats["routes"]["GET /v2/stocks/bars"]["requests"], 3);
    assert_eq!(
        stats["routes"]["GET /v2/orders/{id}"]["statuses"]["404"], 1,
        "routes are counted by pattern"
    );
    assert_eq!(stats["requests"], 4, "control requests are not counted");
    assert_eq!(
        c.delete("/__sim/stats").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.get("/__sim/stats").await.body["requests"], 0);
    sim.stop().await;
}

#[actix_web::test]
async fn state_shows_accounts_positions_and_symbols() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/v2/orders",
        json!({"symbol": "SPY", "qty": 2, "side": "buy", "type": "market", "time_in_force": "day"}),
    )
    .await;
    c.advance("5s").await;
    let s = Client::anonymous(&sim).get("/__sim/state").await;
    assert_eq!(s.status, StatusCode::OK, "control plane needs no key");
    let s = s.body;
    assert_eq!(s["clock"]["now"], "2024-05-08T15:17:05.000000Z");
    assert_eq!(s["clock"]["speed"], 0.0);
    assert_eq!(s["seed"], 42);
    assert_eq!(s["accounts"][0]["key_id"], "test-key");
    assert_eq!(s["accounts"][0]["positions"][0]["symbol"], "SPY");
    assert_eq!(s["accounts"][0]["orders"]["total"], 1);
    assert_eq!(s["symbols"][0]["symbol"], "SPY");
    assert!(s["symbols"][0]["price"].is_f64());
    assert_eq!(s["config"]["secret_key"], serde_json::Value::Null);
    sim.stop().await;
}

#[actix_web::test]
async fn clock_control_advances_and_changes_speed() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let r = c.advance("1h 30m").await;
    assert_eq!(r.body["now"], "2024-05-08T16:47:00.000000Z");
    assert_eq!(
        c.get("/v2/clock").await.body["timestamp"],
        "2024-05-08T12:47:00-04:00"
    );
    let r = c.post("/__sim/clock", json!({"speed": 1000.0})).await;
    assert_eq!(r.body["speed"], 1000.0);
    let r = c.post("/__sim/clock", json!({"speed": -1.0})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = c.post("/__sim/clock", json!({"advance": "soon"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    sim.stop().await;
}

#[actix_web::test]
async fn server_stops_and_frees_its_port() {
    let sim = start(frozen()).await;
    let addr = sim.local_addr();
    assert_eq!(sim.base_url(), format!("http://{addr}"));
    assert_eq!(sim.speed(), 0.0);
    sim.stop().await;
    assert!(
        reqwest::get(format!("http://{addr}/v2/clock"))
            .await
            .is_err()
    );
}

#[actix_web::test]
async fn a_running_clock_moves_bars_and_orders_forward_together() {
    // Speed 1_000_000: one real millisecond is about 17 sim minutes, so two requests apart
    // see time move. No real-time threshold is asserted, only order.
    let cfg = herd::sim::SimConfig {
        speed: 1_000_000.0,
        ..frozen()
    };
    let sim = start(cfg).await;
    let c = Client::new(&sim);
    let t1 = c.get("/v2/clock").await.body["timestamp"].clone();
    let o = c
        .post(
            "/v2/orders",
            json!({"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "gtc"}),
        )
        .await;
    let t2 = c.get("/v2/clock").await.body["timestamp"].clone();
    let parse = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).expect("time")
    };
    assert!(parse(&t2) > parse(&t1));
    let submitted = parse(&o.body["submitted_at"]);
    assert!(parse(&t1) <= submitted && submitted <= parse(&t2));
    let filled = c
        .get(&format!(
            "/v2/orders/{}",
            o.body["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(filled.body["status"], "filled");
    sim.stop().await;
}
