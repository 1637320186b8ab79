//! Order types, time in force, cancel, filters, and positions over real HTTP, with a frozen
//! sim clock moved explicitly (no sleeps).
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, frozen, start};

fn order(symbol: &str, side: &str, kind: &str, tif: &str, qty: Value) -> Value {
    json!({"symbol": symbol, "qty": qty, "side": side, "type": kind, "time_in_force": tif})
}

async fn price(c: &Client, symbol: &str) -> f64 {
    let r = c.get(&format!("/v2/stocks/{symbol}/trades/latest")).await;
    r.body["trade"]["p"].as_f64().expect("price")
}

#[actix_web::test]
async fn limit_orders_rest_then_cancel_with_204_and_422_afterwards() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let p = price(&c, "QQQ").await;
    let mut body = order("QQQ", "buy", "limit", "gtc", json!("2"));
    body["limit_price"] = json!(format!("{:.2}", p * 0.5));
    let r = c.post("/v2/orders", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["type"], "limit");
    assert_eq!(r.body["order_type"], "limit");
    let id = r.body["id"].as_str().expect("id").to_string();
    c.advance("10m").await;
    let open = c.get("/v2/orders").await;
    assert_eq!(open.body.as_array().map(Vec::len), Some(1));
    let r = c.delete(&format!("/v2/orders/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    let r = c.get(&format!("/v2/orders/{id}")).await;
    assert_eq!(r.body["status"], "canceled");
    assert!(r.body["canceled_at"].is_string());
    let r = c.delete(&format!("/v2/orders/{id}")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["message"], "order is already in \"canceled\" state");
    let r = c
        .delete("/v2/orders/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.get("/v2/orders/not-a-uuid").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    sim.stop().await;
}

#[actix_web::test]
async fn marketable_limits_fill_and_stops_trigger_as_the_path_moves() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let p = price(&c, "IWM").await;
    let mut buy = order("IWM", "buy", "limit", "day", json!(5));
    buy["limit_price"] = json!((p * 1.05 * 100.0).round() / 100.0);
    let r = c.post("/v2/orders", buy).await;
    c.advance("3s").await;
    let id = r.body["id"].as_str().expect("id");
    let r = c.get(&format!("/v2/orders/{id}")).await;
    assert_eq!(r.body["status"], "filled");
    let fill: f64 = r.body["filled_avg_price"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("avg price");
    assert!(fill <= p * 1.05, "a buy never fills above its limit");

    // Stops a hair under and over the market, and one far away. Each fills exactly when the
    // price path (as the minute bars show it) crossed its stop.
    let cents = |x: f64| (x * 100.0).round() / 100.0;
    let (under, over) = (cents(p * 0.999), cents(p * 1.001));
    let mut sell = order("IWM", "sell", "stop", "gtc", json!(1));
    sell["stop_price"] = json!(under);
    let mut buy = order("IWM", "buy", "stop", "gtc", json!(1));
    buy["stop_price"] = json!(over);
    let mut far = order("IWM", "sell", "stop", "gtc", json!(1));
    far["stop_price"] = json!(cents(p * 0.2));
    let sell_id = c.post("/v2/orders", sell).await.body["id"].clone();
    let buy_id = c.post("/v2/orders", buy).await.body["id"].clone();
    let far_id = c.post("/v2/orders", far).await.body["id"].clone();
    c.advance("12h").await;
    let status = |r: support::Reply| r.body["status"].as_str().unwrap_or("").to_string();
    let get = |id: &Value| format!("/v2/orders/{}", id.as_str().unwrap_or_default());
    assert_eq!(status(c.get(&get(&far_id)).await), "new");
    let bars = c
        .get("/v2/stocks/IWM/bars?timeframe=1Min&start=2024-05-08T15:17:00Z&limit=10000")
        .await;
    let bars = bars.body["bars"].as_array().cloned().unwrap_or_default();
    let low = bars
        .iter()
        .filter_map(|b| b["l"].as_f64())
        .fold(f64::MAX, f64::min);
    let high = bars
        .iter()
        .filter_map(|b| b["h"].as_f64())
        .fold(0.0, f64::max);
    let sold = status(c.get(&get(&sell_id)).await) == "filled";
    let bought = status(c.get(&get(&buy_id)).await) == "filled";
    assert_eq!(sold, low <= under, "sell stop {under}, low {low}");
    assert_eq!(bought, high >= over, "buy stop {over}, high {high}");
    assert!(sold || bought, "twelve hours move more than 0.1 %");
    let expected = 5 - i32::from(sold) + i32::from(bought);
    assert_eq!(
        c.get("/v2/positions/IWM").await.body["qty"],
        expected.to_string()
    );
    sim.stop().await;
}

#[actix_web::test]
async fn big_orders_fill_partially_and_day_orders_expire() {
    let cfg = herd::sim::SimConfig {
        market_hours: herd::sim::MarketHours::Regular,
        start: Some("2024-05-08T19:50:00Z".into()),
        max_fill_share: 0.0001,
        initial_cash: 1e9,
        ..frozen()
    };
    let sim = start(cfg).await;
    let c = Client::new(&sim);
    // Ten minutes before the close; SPY trades ~150k shares a minute, so 15 a minute fill.
    let r = c
        .post(
            "/v2/orders",
            order("SPY", "buy", "market", "day", json!(1000)),
        )
        .await;
    assert_eq!(r.body["status"], "new", "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    c.advance("2m").await;
    let r = c.get(&format!("/v2/orders/{id}")).await;
    assert_eq!(r.body["status"], "partially_filled");
    c.advance("20m").await;
    let r = c.get(&format!("/v2/orders/{id}")).await;
    assert_eq!(r.body["status"], "expired", "{}", r.text);
    let filled: f64 = r.body["filled_qty"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("qty");
    assert!(filled > 0.0 && filled < 1000.0);
    assert_eq!(r.body["expired_at"], "2024-05-08T20:00:00.000000Z");
    sim.stop().await;
}

#[actix_web::test]
async fn ioc_and_fok_end_at_their_first_chance() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let p = price(&c, "SPY").await;
    let mut ioc = order("SPY", "buy", "limit", "ioc", json!(1));
    ioc["limit_price"] = json!((p * 0.5 * 100.0).round() / 100.0);
    let ioc_id = c.post("/v2/orders", ioc).await.body["id"].clone();
    let fok = order("SPY", "buy", "market", "fok", json!(1));
    let fok_id = c.post("/v2/orders", fok).await.body["id"].clone();
    c.advance("3s").await;
    let get = |id: &Value| format!("/v2/orders/{}", id.as_str().unwrap_or_default());
    assert_eq!(c.get(&get(&ioc_id)).await.body["status"], "canceled");
    assert_eq!(c.get(&get(&fok_id)).await.body["status"], "filled");
    sim.stop().await;
}

#[actix_web::test]
async fn insufficient_buying_power_or_quantity_is_403() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let r = c
        .post(
            "/v2/orders",
            order("SPY", "buy", "market", "day", json!(100000)),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["code"], 40310000);
    assert_eq!(r.body["message"], "insufficient buying power");
    c.post("/v2/orders", order("SPY", "buy", "market", "day", json!(2)))
        .await;
    c.advance("3s").await;
    let r = c
        .post(
            "/v2/orders",
            order("SPY", "sell", "market", "day", json!(5)),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body["message"],
        "insufficient qty available for order (requested: 5, available: 2)"
    );
    sim.stop().await;
}

#[actix_web::test]
async fn bad_requests_get_alpaca_shaped_errors() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let r = c.call(reqwest::Method::POST, "/v2/orders", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], 40010000);
    for (body, needle) in [
        (
            json!({"symbol": "SPY", "side": "buy", "type": "market", "time_in_force": "day"}),
            "qty or notional",
        ),
        (
            order("SPY", "buy", "limit", "day", json!(1)),
            "limit_price is required",
        ),
        (
            order("SPY", "buy", "market", "gtc", json!("0.5")),
            "fractional orders must be DAY orders",
        ),
        (
            order("SPY", "buy", "trailing_stop", "day", json!(1)),
            "not supported",
        ),
        (
            order("spy!", "buy", "market", "day", json!(1)),
            "invalid symbol",
        ),
        (
            json!({"symbol": "SPY", "qty": 1, "side": "buy", "type": "limit", "limit_price": 10.123, "time_in_force": "day"}),
            "sub-penny",
        ),
    ] {
        let r = c.post("/v2/orders", body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.body["code"], 40010001);
        let msg = r.body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    let long_id = "x".repeat(129);
    let mut body = order("SPY", "buy", "market", "day", json!(1));
    body["client_order_id"] = json!(long_id);
    assert_eq!(
        c.post("/v2/orders", body.clone()).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    body["client_order_id"] = json!("y".repeat(128));
    assert_eq!(c.post("/v2/orders", body).await.status, StatusCode::OK);
    let r = c.get("/v2/nothing-here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["code"], 40410000);
    let r = c.call(reqwest::Method::PUT, "/v2/account", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.body["message"].is_string());
    sim.stop().await;
}

#[actix_web::test]
async fn order_list_filters() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let far = |sym: &str, side: &str, px: f64| {
        let mut o = order(sym, side, "limit", "gtc", json!(1));
        o["limit_price"] = json!(px);
        o
    };
    c.post("/v2/orders", far("SPY", "buy", 1.0)).await;
    c.advance("1m").await;
    let r2 = c.post("/v2/orders", far("QQQ", "buy", 1.0)).await;
    let t2 = r2.body["submitted_at"].as_str().expect("time").to_string();
    c.advance("1m").await;
    c.post("/v2/orders", far("IWM", "buy", 2.0)).await;
    let syms = |r: &support::Reply| -> Vec<String> {
        r.body
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| o["symbol"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(syms(&c.get("/v2/orders").await), ["IWM", "QQQ", "SPY"]);
    assert_eq!(
        syms(&c.get("/v2/orders?direction=asc").await),
        ["SPY", "QQQ", "IWM"]
    );
    assert_eq!(syms(&c.get("/v2/orders?limit=1").await), ["IWM"]);
    assert_eq!(
        syms(&c.get("/v2/orders?symbols=SPY,IWM").await),
        ["IWM", "SPY"]
    );
    assert_eq!(
        syms(&c.get(&format!("/v2/orders?after={t2}")).await),
        ["IWM"]
    );
    assert_eq!(
        syms(&c.get(&format!("/v2/orders?until={t2}")).await),
        ["SPY"]
    );
    assert_eq!(
        syms(&c.get("/v2/orders?side=sell").await),
        Vec::<String>::new()
    );
    assert_eq!(
        syms(&c.get("/v2/orders?status=closed").await),
        Vec::<String>::new()
    );
    assert_eq!(
        c.get("/v2/orders?limit=501").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = c.delete("/v2/orders").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body.as_array().map(Vec::len), Some(3));
    assert_eq!(r.body[0]["status"], 200);
    assert_eq!(syms(&c.get("/v2/orders?status=closed").await).len(), 3);
    sim.stop().await;
}

#[actix_web::test]
async fn positions_long_short_and_close() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    c.post(
        "/v2/orders",
        order("SPY", "buy", "market", "day", json!(10)),
    )
    .await;
    c.post(
        "/v2/orders",
        order("QQQ", "sell", "market", "day", json!(4)),
    )
    .await;
    c.advance("5s").await;
    let r = c.get("/v2/positions").await;
    let list = r.body.as_array().expect("list");
    assert_eq!(list.len(), 2);
    let qqq = list.iter().find(|p| p["symbol"] == "QQQ").expect("QQQ");
    assert_eq!(qqq["side"], "short");
    assert_eq!(qqq["qty"], "-4");
    for key in [
        "asset_id",
        "avg_entry_price",
        "market_value",
        "cost_basis",
        "unrealized_pl",
        "unrealized_plpc",
        "current_price",
        "lastday_price",
        "change_today",
        "qty_available",
    ] {
        assert!(qqq[key].is_string(), "{key}");
    }
    let a = c.get("/v2/account").await.body;
    assert!(
        a["short_market_value"]
            .as_str()
            .is_some_and(|s| s.starts_with('-'))
    );

    // By asset id, as alpaca-py allows.
    let asset = list[0]["asset_id"].as_str().expect("id").to_string();
    assert_eq!(
        c.get(&format!("/v2/positions/{asset}")).await.status,
        StatusCode::OK
    );

    let r = c.delete("/v2/positions/SPY?qty=4").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["side"], "sell");
    assert_eq!(r.body["qty"], "4");
    c.advance("5s").await;
    assert_eq!(c.get("/v2/positions/SPY").await.body["qty"], "6");
    let r = c.delete("/v2/positions/IWM").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["message"], "position does not exist");
    let r = c.delete("/v2/positions?cancel_orders=true").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body.as_array().map(Vec::len), Some(2));
    c.advance("5s").await;
    assert_eq!(c.get("/v2/positions").await.body, json!([]));
    sim.stop().await;
}

#[actix_web::test]
async fn each_key_is_its_own_account() {
    let sim = start(frozen()).await;
    let a = Client::with_key(&sim, "alice", "x");
    let b = Client::with_key(&sim, "bob", "y");
    let mut body = order("SPY", "buy", "market", "day", json!(1));
    body["client_order_id"] = json!("same-id");
    assert_eq!(
        a.post("/v2/orders", body.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(b.post("/v2/orders", body).await.status, StatusCode::OK);
    assert_ne!(
        a.get("/v2/account").await.body["id"],
        b.get("/v2/account").await.body["id"]
    );
    sim.stop().await;
}

#[actix_web::test]
async fn absurd_sizes_are_refused_not_overflowed() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    for qty in [json!("1e27"), json!(1e20)] {
        let r = c
            .post("/v2/orders", order("SPY", "buy", "market", "day", qty))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    }
    let mut o = order("SPY", "buy", "limit", "day", json!(1));
    o["limit_price"] = json!("99999999999999999999");
    assert_eq!(
        c.post("/v2/orders", o).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.get("/v2/account").await.status,
        StatusCode::OK,
        "still serving"
    );
    sim.stop().await;
}
