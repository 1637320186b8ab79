//! The HTTP contract of the real process, whatever the endpoint: request ids, one error shape
//! (without internals in production), inbound rate limits with `Retry-After`, CORS only for the
//! configured origins, request metrics by route template, and the read endpoints' parameters.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    ADMIN_TOKEN as TOKEN, Herd, ONE_QUIET_INSTANCE as ONE_INSTANCE, eventually, get_json, metric,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn first_tick_done(herd: &Herd) {
    eventually("the first tick", herd, || async {
        let mom = get_json(&format!("{}/strategies/mom", herd.http)).await?;
        (mom["ticks"].as_u64()? >= 1).then_some(())
    })
    .await;
}

async fn admin(herd: &Herd, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", herd.http))
        .header("X-Admin-Token", TOKEN)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_has_a_request_id_and_errors_one_shape_without_details_in_production() {
    let herd = Herd::start(
        ONE_INSTANCE,
        &[
            ("HERD_ADMIN_TOKEN", TOKEN),
            ("HERD__HTTP__ERROR_DETAILS", "false"),
        ],
    );
    let live = reqwest::get(format!("{}/livez", herd.http)).await.unwrap();
    let generated = live.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let forged = reqwest::Client::new()
        .get(format!("{}/livez", herd.http))
        .header("X-Request-Id", "two words")
        .send()
        .await
        .unwrap();
    assert_ne!(forged.headers()["x-request-id"], "two words");

    // An unknown route, a bad query and a failing read: one shape, no internals.
    let nowhere = reqwest::get(format!("{}/nowhere", herd.http))
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    let id = nowhere.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = nowhere.json().await.unwrap();
    assert_eq!(body["request_id"], id);
    assert_eq!(body["error"], "no route GET /nowhere");
    assert!(
        body["error_id"].as_str().is_some_and(|e| e.len() == 36),
        "{body}"
    );
    let bad = reqwest::get(format!("{}/orders?limit=lots", herd.http))
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Once the one tick has read the account, with the breaker open and the cached reading
    // gone, /positions must go upstream and fail.
    first_tick_done(&herd).await;
    admin(&herd, "/admin/breakers/positions/open").await;
    admin(&herd, "/admin/cache/clear").await;
    let failing = reqwest::get(format!("{}/positions", herd.http))
        .await
        .unwrap();
    assert_eq!(failing.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = failing.json().await.unwrap();
    assert_eq!(body["error"], "the account's positions cannot be read now");
    assert!(
        body.get("detail").is_none(),
        "no details in production: {body}"
    );
    let error_id = body["error_id"].as_str().unwrap();
    // The log line is read from herd's output by another thread: wait for it.
    let logged = eventually("the error logged under its id", &herd, || async {
        herd.seen(|v| v["error_id"] == error_id)
    })
    .await;
    assert!(
        logged["detail"].as_str().unwrap().contains("positions"),
        "the log has the details: {logged}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_production_an_error_body_carries_its_detail() {
    let herd = Herd::start(ONE_INSTANCE, &[("HERD_ADMIN_TOKEN", TOKEN)]);
    // Once the one tick has read the account, with the breaker open and the cached reading
    // gone, /positions must go upstream and fail.
    first_tick_done(&herd).await;
    admin(&herd, "/admin/breakers/positions/open").await;
    admin(&herd, "/admin/cache/clear").await;
    let failing = reqwest::get(format!("{}/positions", herd.http))
        .await
        .unwrap();
    let body: Value = failing.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("positions"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn past_its_budget_a_client_gets_429_with_retry_after_and_it_is_counted() {
    let herd = Herd::start(
        ONE_INSTANCE,
        &[
            ("HERD_ADMIN_TOKEN", TOKEN),
            ("HERD__HTTP__RATE_LIMIT__ADMIN_PER_MINUTE", "2"),
        ],
    );
    for _ in 0..2 {
        assert_eq!(
            admin(&herd, "/admin/breakers/reset").await.status(),
            StatusCode::OK
        );
    }
    let refused = admin(&herd, "/admin/breakers/reset").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("admin"), "{body}");
    // Other classes keep their own budget.
    assert!(
        get_json(&format!("{}/strategies", herd.http))
            .await
            .is_some()
    );
    assert_eq!(
        metric(&herd, r#"herd_http_rate_limited_total{class="admin"}"#).await,
        1.0
    );
    let served =
        r#"herd_http_requests_total{route="/admin/breakers/reset",method="POST",status="200"}"#;
    assert_eq!(metric(&herd, served).await, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_only_the_configured_origins() {
    let config = format!("{ONE_INSTANCE}\n[http]\ncors_origins = [\"https://ops.example.com\"]\n");
    let herd = Herd::start(&config, &[]);
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/strategies", herd.http),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .send()
    };
    let allowed = preflight("https://ops.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://ops.example.com"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let plain = Herd::start(ONE_INSTANCE, &[]);
    let r = reqwest::Client::new()
        .get(format!("{}/strategies", plain.http))
        .header("Origin", "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "none by default"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_and_its_orders_are_found_by_id_and_filters() {
    let config = format!(
        "[sim]\nspeed = 600.0\n{}",
        common::eager_momentum("eager", "5m")
    );
    let herd = Herd::start(&config, &[]);
    let one = get_json(&format!("{}/strategies/eager", herd.http))
        .await
        .unwrap();
    assert_eq!(
        (one["id"].as_str(), one["kind"].as_str()),
        (Some("eager"), Some("momentum"))
    );
    let missing = reqwest::get(format!("{}/strategies/nobody", herd.http))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let filled = eventually("two filled orders", &herd, || async {
        let page = get_json(&format!("{}/orders?instance=eager&state=filled", herd.http)).await?;
        (page["orders"].as_array()?.len() >= 2).then_some(page)
    })
    .await;
    assert!(
        filled["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "filled")
    );
    let first = get_json(&format!("{}/orders?limit=1", herd.http))
        .await
        .unwrap();
    let next = first["next"].as_u64().expect("a cursor when there is more");
    let second = get_json(&format!("{}/orders?limit=1&before={next}", herd.http))
        .await
        .unwrap();
    assert_ne!(
        first["orders"][0]["client_order_id"], second["orders"][0]["client_order_id"],
        "the next page starts after the first"
    );
    let none = get_json(&format!("{}/orders?instance=someone-else", herd.http))
        .await
        .unwrap();
    assert_eq!(none["orders"], json!([]));
    let bad = reqwest::get(format!("{}/orders?state=lost", herd.http))
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("state = \"lost\": must be one of"),
        "{body}"
    );
}
