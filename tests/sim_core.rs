//! The simulator's core endpoints over real HTTP: auth, clock, account, positions, orders with
//! client order ids, and multi-symbol bars with paging.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, frozen, start};

#[actix_web::test]
async fn missing_keys_are_forbidden_and_wrong_pinned_keys_unauthorized_or_forbidden_on_data() {
    let cfg = herd::sim::SimConfig {
        key_id: Some("pinned".into()),
        secret_key: Some(herd::sim::Redacted("s3cret".into())),
        ..frozen()
    };
    let sim = start(cfg).await;
    let r = Client::anonymous(&sim).get("/v2/account").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body, json!({"message": "forbidden."}));
    let r = Client::with_key(&sim, "pinned", "wrong")
        .get("/v2/account")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], 40110000);
    // The market-data API refuses a wrong key with a bare 403 and no code, as Alpaca's does.
    let r = Client::with_key(&sim, "pinned", "wrong")
        .get("/v2/stocks/bars?symbols=SPY&timeframe=1Min")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body, json!({"message": "forbidden"}));
    let r = Client::with_key(&sim, "pinned", "s3cret")
        .get("/v2/account")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    sim.stop().await;
}

#[actix_web::test]
async fn clock_reports_sim_time_in_new_york() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let r = c.get("/v2/clock").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["timestamp"], "2024-05-08T11:17:00-04:00");
    assert_eq!(r.body["is_open"], true);
    assert!(
        r.body["next_open"]
            .as_str()
            .is_some_and(|s| s.ends_with("-04:00"))
    );
    assert!(r.body["next_close"].is_string());

    let regular = herd::sim::SimConfig {
        market_hours: herd::sim::MarketHours::Regular,
        start: Some("2024-05-11T16:00:00Z".into()),
        ..frozen()
    };
    let sim2 = start(regular).await;
    let r = Client::new(&sim2).get("/v2/clock").await;
    assert_eq!(r.body["is_open"], false);
    assert_eq!(r.body["next_open"], "2024-05-13T09:30:00-04:00");
    assert_eq!(r.body["next_close"], "2024-05-13T16:00:00-04:00");
    sim.stop().await;
    sim2.stop().await;
}

#[actix_web::test]
async fn account_has_alpaca_fields_with_decimal_strings() {
    let sim = start(frozen()).await;
    let r = Client::new(&sim).get("/v2/account").await;
    assert_eq!(r.status, StatusCode::OK);
    let a = &r.body;
    assert_eq!(a["status"], "ACTIVE");
    assert_eq!(a["cash"], "100000");
    assert_eq!(a["equity"], "100000");
    assert_eq!(a["buying_power"], "200000");
    assert!(a["id"].as_str().is_some_and(|s| s.len() == 36));
    assert!(a["account_number"].is_string());
    assert_eq!(a["pattern_day_trader"], false);
    assert!(a["daytrade_count"].is_number());
    sim.stop().await;
}

#[actix_web::test]
async fn missing_position_gets_alpacas_404_body() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    assert_eq!(c.get("/v2/positions").await.body, json!([]));
    let r = c.get("/v2/positions/SPY").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        json!({"code": 40410000, "message": "position does not exist"})
    );
    sim.stop().await;
}

#[actix_web::test]
async fn market_order_lifecycle_and_client_order_ids() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let body = json!({
        "symbol": "SPY", "qty": 3, "side": "buy", "type": "market",
        "time_in_force": "day", "client_order_id": "momentum-SPY-1"
    });
    let r = c.post("/v2/orders", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let order = r.body.clone();
    assert_eq!(order["status"], "new");
    assert_eq!(order["qty"], "3");
    assert_eq!(order["filled_qty"], "0");
    assert_eq!(order["filled_avg_price"], Value::Null);
    for field in ["created_at", "updated_at", "submitted_at"] {
        assert!(order[field].is_string(), "{field} set");
    }
    let id = order["id"].as_str().expect("id").to_string();

    // Same client order id again: 422, and no second order.
    let r = c.post("/v2/orders", body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body,
        json!({"code": 40010001, "message": "client_order_id must be unique"})
    );

    // The fill happens after the fill delay of sim time.
    c.advance("5s").await;
    let r = c.get(&format!("/v2/orders/{id}")).await;
    assert_eq!(r.body["status"], "filled");
    assert_eq!(r.body["filled_qty"], "3");
    assert!(r.body["filled_avg_price"].is_string());
    assert!(r.body["filled_at"].is_string());

    let r = c
        .get("/v2/orders:by_client_order_id?client_order_id=momentum-SPY-1")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id.as_str());
    let r = c
        .get("/v2/orders:by_client_order_id?client_order_id=never-sent")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["code"], 40410000);

    let r = c.get("/v2/orders?status=all").await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    assert_eq!(c.get("/v2/orders").await.body, json!([]), "none open");

    let r = c.get("/v2/positions/SPY").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["qty"], "3");
    assert_eq!(r.body["side"], "long");
    assert_eq!(r.body["exchange"], "ARCA");
    let r = c.get("/v2/account").await;
    assert_ne!(r.body["cash"], "100000");
    sim.stop().await;
}

#[actix_web::test]
async fn multi_symbol_bars_page_until_a_null_token() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let base = "/v2/stocks/bars?symbols=SPY,QQQ,IWM&timeframe=5Min\
                &start=2024-05-08T12:00:00Z&end=2024-05-08T15:17:00Z";
    let whole = c.get(&format!("{base}&limit=10000")).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text);
    assert_eq!(whole.body["next_page_token"], Value::Null);
    let total: usize = ["IWM", "QQQ", "SPY"]
        .iter()
        .map(|s| whole.body["bars"][s].as_array().map_or(0, Vec::len))
        .sum();
    assert!(total > 100);

    let mut joined: Vec<(String, Value)> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &token {
            Some(t) => format!("{base}&limit=25&page_token={t}"),
            None => format!("{base}&limit=25"),
        };
        let r = c.get(&url).await;
        assert_eq!(r.status, StatusCode::OK);
        pages += 1;
        let bars = r.body["bars"].as_object().expect("bars map");
        let n: usize = bars
            .values()
            .map(|v| v.as_array().map_or(0, Vec::len))
            .sum();
        assert!(n <= 25);
        for (sym, list) in bars {
            for bar in list.as_array().expect("list") {
                for key in ["t", "o", "h", "l", "c", "v", "n", "vw"] {
                    assert!(bar.get(key).is_some(), "bar has {key}");
                }
                joined.push((sym.clone(), bar.clone()));
            }
        }
        match &r.body["next_page_token"] {
            Value::Null => break,
            Value::String(t) => token = Some(t.clone()),
            other => panic!("bad token {other}"),
        }
    }
    assert_eq!(pages, total.div_ceil(25));
    assert_eq!(joined.len(), total);
    // Oldest first within a symbol, and prices as numbers.
    let spy: Vec<&Value> = joined
        .iter()
        .filter(|(s, _)| s == "SPY")
        .map(|(_, b)| b)
        .collect();
    assert!(
        spy.windows(2)
            .all(|w| w[0]["t"].as_str() < w[1]["t"].as_str())
    );
    assert!(spy[0]["c"].is_f64());
    assert_eq!(
        spy.last().and_then(|b| b["t"].as_str()),
        Some("2024-05-08T15:10:00Z"),
        "only closed bars"
    );

    let single = c
        .get("/v2/stocks/SPY/bars?timeframe=1Hour&start=2024-05-08T00:00:00Z&limit=3")
        .await;
    assert_eq!(single.body["symbol"], "SPY");
    assert_eq!(single.body["bars"].as_array().map(Vec::len), Some(3));
    assert!(single.body["next_page_token"].is_string());
    sim.stop().await;
}

#[actix_web::test]
async fn history_is_there_at_startup() {
    let sim = start(frozen()).await;
    let c = Client::new(&sim);
    let r = c
        .get("/v2/stocks/bars?symbols=SPY&timeframe=1Day&start=2024-01-01T00:00:00Z")
        .await;
    let daily = r.body["bars"]["SPY"].as_array().map_or(0, Vec::len);
    assert!(daily >= 90, "{daily} daily bars");
    let r = c
        .get("/v2/stocks/bars?symbols=SPY&timeframe=1Min&start=2024-04-28T00:00:00Z&limit=10000")
        .await;
    assert_eq!(r.body["bars"]["SPY"].as_array().map(Vec::len), Some(10_000));
    assert!(r.body["next_page_token"].is_string());
    sim.stop().await;
}
