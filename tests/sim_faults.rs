//! Fault injection over real HTTP: errors, throttling bursts, latency, timeouts, resets,
//! malformed bodies, and "accepted but the response is lost".
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim_support/mod.rs"]
mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{Client, frozen, start};

fn market_order(client_id: &str) -> serde_json::Value {
    json!({"symbol": "SPY", "qty": 1, "side": "buy", "type": "market",
           "time_in_force": "day", "client_order_id": client_id})
}

#[actix_web::test]
async fn injected_errors_are_alpaca_like_5xx_without_effect() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let r = c
        .post(
            "/__sim/faults",
            json!({"orders": {"error_rate": 1.0, "error_status": 503, "count": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["orders"]["count"], 1);
    let r = c.post("/v2/orders", market_order("e-1")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["code"], 50310000);
    // No order was placed, so the same id is still free.
    let r = c
        .get("/v2/orders:by_client_order_id?client_order_id=e-1")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        c.post("/v2/orders", market_order("e-1")).await.status,
        StatusCode::OK
    );
    // Other groups were never affected.
    assert_eq!(c.get("/v2/account").await.status, StatusCode::OK);
    sim.stop().await;
}

#[actix_web::test]
async fn lost_response_places_the_order_but_the_client_sees_an_error() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/__sim/faults",
        json!({"orders": {"lost_response_rate": 1.0, "methods": ["POST"], "count": 1}}),
    )
    .await;
    let r = c.post("/v2/orders", market_order("lost-1")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    // The order exists: lookup by client id finds it, and a resubmit is a duplicate.
    let r = c
        .get("/v2/orders:by_client_order_id?client_order_id=lost-1")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c.post("/v2/orders", market_order("lost-1")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let stats = c.get("/__sim/stats").await.body;
    assert_eq!(stats["faults"]["lost"], 1);
    sim.stop().await;
}

#[actix_web::test]
async fn lost_response_as_timeout_hangs_past_the_client_timeout() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/__sim/faults",
        json!({"orders": {"lost_response_rate": 1.0, "lost_response_as": "timeout",
                          "hang": "30s", "count": 1}}),
    )
    .await;
    let err = c
        .http
        .post(format!("{}/v2/orders", c.base))
        .header("APCA-API-KEY-ID", "test-key")
        .header("APCA-API-SECRET-KEY", "test-secret")
        .json(&market_order("t-1"))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout());
    let r = c
        .get("/v2/orders:by_client_order_id?client_order_id=t-1")
        .await;
    assert_eq!(r.status, StatusCode::OK, "the order was placed");
    sim.stop().await;
}

#[actix_web::test]
async fn timeouts_hang_without_effect() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/__sim/faults",
        json!({"data": {"timeout_rate": 1.0, "hang": "30s", "count": 1}}),
    )
    .await;
    let err = c
        .http
        .get(format!("{}/v2/stocks/bars/latest?symbols=SPY", c.base))
        .header("APCA-API-KEY-ID", "k")
        .header("APCA-API-SECRET-KEY", "s")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout());
    assert_eq!(
        c.get("/v2/stocks/bars/latest?symbols=SPY").await.status,
        StatusCode::OK
    );
    sim.stop().await;
}

#[actix_web::test]
async fn connection_resets_give_transport_errors() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/__sim/faults",
        json!({"trading": {"reset_rate": 1.0, "count": 1}}),
    )
    .await;
    let err = c
        .http
        .get(format!("{}/v2/account", c.base))
        .header("APCA-API-KEY-ID", "k")
        .header("APCA-API-SECRET-KEY", "s")
        .send()
        .await;
    let failed = match err {
        Err(e) => {
            eprintln!("reset seen as: {e:?}");
            true
        }
        Ok(res) => res.bytes().await.is_err(),
    };
    assert!(failed, "no complete response");
    assert_eq!(c.get("/v2/account").await.status, StatusCode::OK);
    let stats = c.get("/__sim/stats").await.body;
    assert_eq!(stats["routes"]["GET /v2/account"]["statuses"]["reset"], 1);
    sim.stop().await;
}

#[actix_web::test]
async fn malformed_bodies_do_not_parse() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/__sim/faults",
        json!({"trading": {"malformed_rate": 1.0, "count": 1}}),
    )
    .await;
    let r = c.get("/v2/account").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());
    assert!(!r.text.is_empty());
    sim.stop().await;
}

#[actix_web::test]
async fn throttle_bursts_then_recover() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/__sim/faults",
        json!({"data": {"throttle_rate": 1.0, "throttle_burst": 3, "count": 1}}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(c.get("/v2/stocks/bars/latest?symbols=SPY").await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::OK
        ]
    );
    assert_eq!(c.get("/__sim/stats").await.body["rate_limited"], 3);
    sim.stop().await;
}

#[actix_web::test]
async fn latency_is_added_and_faults_clear() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post("/__sim/faults", json!({"all": {"latency": "150ms"}}))
        .await;
    let faults = c.get("/__sim/faults").await.body;
    assert_eq!(faults["data"]["latency"], "150ms");
    let t = std::time::Instant::now();
    c.get("/v2/clock").await;
    // A lower bound only: the request cannot be faster than the injected latency.
    assert!(t.elapsed() >= Duration::from_millis(150));
    let r = c.delete("/__sim/faults").await;
    assert_eq!(r.body["trading"]["latency"], "0s");
    let r = c
        .post("/__sim/faults", json!({"orders": {"error_rate": 2.0}}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("sim.faults.orders.error_rate"))
    );
    let r = c.post("/__sim/faults", json!({"order": {}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown group");
    sim.stop().await;
}

#[actix_web::test]
async fn faults_from_config_apply_from_startup() {
    let mut cfg = frozen();
    cfg.faults.trading.error_rate = 1.0;
    cfg.faults.trading.methods = vec!["GET".into()];
    let sim = start(cfg).await;
    let c = Client::new(&sim);
    assert_eq!(
        c.get("/v2/account").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        c.get("/v2/clock").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        c.get("/v2/stocks/bars/latest?symbols=SPY").await.status,
        StatusCode::OK
    );
    sim.stop().await;
}
