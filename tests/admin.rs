//! The admin API of the real process: the token, the audit trail, and every action showing
//! where an operator looks (`/health`, `/strategies`, `/cache/stats`).
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    ADMIN_TOKEN as TOKEN, Herd, ONE_QUIET_INSTANCE as ONE_INSTANCE, eventually, get_json,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn post(herd: &Herd, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Answer {
    let mut request = reqwest::Client::new().post(format!("{}{path}", herd.http));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn admin(herd: &Herd, path: &str, body: Option<Value>) -> Answer {
    post(herd, path, &[("X-Admin-Token", TOKEN)], body).await
}

async fn instance(herd: &Herd, id: &str) -> Value {
    let body = get_json(&format!("{}/strategies", herd.http))
        .await
        .unwrap();
    body["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap()
}

fn breaker(health: &Value, operation: &str) -> String {
    health["broker"]["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["operation"] == operation)
        .map(|b| b["state"].as_str().unwrap().to_owned())
        .unwrap()
}

fn audits(herd: &Herd) -> Vec<Value> {
    herd.log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "admin_audit")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_configured_the_admin_api_is_disabled_not_open() {
    let herd = Herd::start(ONE_INSTANCE, &[]);
    let a = post(
        &herd,
        "/admin/trading/halt",
        &[("X-Admin-Token", TOKEN)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("HERD_ADMIN_TOKEN"),
        "says how to enable it: {}",
        a.body
    );
    let h = common::health(&herd).await;
    assert_eq!(h["broker"]["trading"]["state"], "active", "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_token_is_a_configuration_error_naming_the_key() {
    let mut herd = Herd::launch(&["run"], ONE_INSTANCE, &[("ADMIN_TOKEN", "short")]);
    let status = herd.wait_exit();
    assert_eq!(status.code(), Some(2), "{}", herd.dump());
    let log = herd.dump();
    assert!(log.contains("http.admin_token"), "{log}");
    assert!(log.contains("at least 16 bytes"), "{log}");
    assert!(
        !log.contains("short"),
        "the token itself is never printed: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_right_token_passes_and_every_call_is_audited() {
    let herd = Herd::start(ONE_INSTANCE, &[("HERD_ADMIN_TOKEN", TOKEN)]);
    let reason = Some(json!({ "reason": "audit test" }));
    let missing = post(&herd, "/admin/trading/halt", &[], reason.clone()).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    let wrong = [("X-Admin-Token", "an-admin-token-of-32-characters?")];
    let wrong = post(&herd, "/admin/trading/halt", &wrong, reason.clone()).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        common::health(&herd).await["broker"]["trading"]["state"],
        "active",
        "refused calls change nothing"
    );

    let bearer = format!("Bearer {TOKEN}");
    let halted = post(
        &herd,
        "/admin/trading/halt",
        &[
            ("Authorization", &bearer),
            ("X-Request-Id", "ops-ticket-42"),
        ],
        reason,
    )
    .await;
    assert_eq!(halted.status, StatusCode::OK, "{}", halted.body);
    assert_eq!(halted.headers["x-request-id"], "ops-ticket-42");

    // The audit line is written before the answer, but read from herd's stdout by another
    // thread: wait until it has arrived.
    let audited = eventually("three audit lines", &herd, || async {
        let audited = audits(&herd);
        (audited.len() >= 3).then_some(audited)
    })
    .await;
    let statuses: Vec<u64> = audited
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [401, 401, 200], "{audited:?}");
    let last = &audited[2];
    assert_eq!(last["client"], "127.0.0.1");
    assert_eq!(last["request_id"], "ops-ticket-42");
    assert_eq!(last["action"], "POST /admin/trading/{state}");
    assert_eq!(last["subject"], "state=halt");
    assert_eq!(last["result"], "done");
    assert_eq!(audited[0]["result"], "refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_admin_action_shows_where_the_operator_looks() {
    let herd = Herd::start(ONE_INSTANCE, &[("HERD_ADMIN_TOKEN", TOKEN)]);
    eventually("the first tick", &herd, || async {
        (instance(&herd, "mom").await["ticks"].as_u64()? >= 1).then_some(())
    })
    .await;

    // Breakers: one opened by hand shows open, a reset of all closes it.
    let opened = admin(&herd, "/admin/breakers/bars/open", None).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let h = common::health(&herd).await;
    assert_eq!(breaker(&h, "bars"), "forced_open");
    assert_eq!(h["status"], "degraded");
    assert_eq!(
        admin(&herd, "/admin/breakers/reset", None).await.status,
        StatusCode::OK
    );
    assert_eq!(breaker(&common::health(&herd).await, "bars"), "closed");
    let unknown = admin(&herd, "/admin/breakers/teleport/open", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body["error"]
            .as_str()
            .unwrap()
            .contains("submit_order"),
        "{}",
        unknown.body
    );

    // Trading: halt with a reason, /health says it and why; reduce; resume.
    let no_reason = admin(&herd, "/admin/trading/halt", None).await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    let reason = |r: &str| Some(json!({ "reason": r }));
    admin(&herd, "/admin/trading/halt", reason("maintenance window")).await;
    let h = common::health(&herd).await;
    assert_eq!(h["status"], "halted");
    assert!(
        h["halted"].as_str().unwrap().contains("maintenance window"),
        "{h}"
    );
    admin(&herd, "/admin/trading/reduce", reason("winding down")).await;
    assert_eq!(
        common::health(&herd).await["broker"]["trading"]["state"],
        "reducing"
    );
    let resumed = admin(&herd, "/admin/trading/resume", reason("done")).await;
    assert_eq!(
        resumed.body["trading"]["state"], "active",
        "{}",
        resumed.body
    );

    // An instance: paused (shown), nothing refills the cleared cache, a tick on demand runs
    // although paused, resumed; restarted into a new incarnation.
    let paused = admin(&herd, "/admin/strategies/mom/pause", None).await;
    assert_eq!(paused.body["paused"], true, "{}", paused.body);
    assert_eq!(instance(&herd, "mom").await["paused"], true);
    let cleared = admin(&herd, "/admin/cache/clear", None).await;
    assert!(
        cleared.body["cleared"].as_u64().unwrap() >= 1,
        "{}",
        cleared.body
    );
    let stats = get_json(&format!("{}/cache/stats", herd.http))
        .await
        .unwrap();
    assert_eq!(stats["entries"], 0, "{stats}");
    let ticks = instance(&herd, "mom").await["ticks"].as_u64().unwrap();
    let executed = admin(&herd, "/admin/strategies/mom/execute", None).await;
    assert_eq!(executed.status, StatusCode::OK, "{}", executed.body);
    eventually("the tick asked for", &herd, || async {
        (instance(&herd, "mom").await["ticks"].as_u64()? > ticks).then_some(())
    })
    .await;
    let resumed = admin(&herd, "/admin/strategies/mom/resume", None).await;
    assert_eq!(resumed.body["paused"], false, "{}", resumed.body);
    let restarted = admin(&herd, "/admin/strategies/mom/restart", None).await;
    assert_eq!(restarted.status, StatusCode::ACCEPTED, "{}", restarted.body);
    eventually("a new incarnation", &herd, || async {
        let mom = instance(&herd, "mom").await;
        (mom["incarnation"] == 2 && mom["state"] == "running").then_some(())
    })
    .await;

    // Only strategy instances under /admin/strategies; any child under /admin/children.
    let broker = admin(&herd, "/admin/strategies/broker/pause", None).await;
    assert_eq!(broker.status, StatusCode::NOT_FOUND, "{}", broker.body);
    let nobody = admin(&herd, "/admin/strategies/nobody/execute", None).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    let broker = admin(&herd, "/admin/children/broker/restart", None).await;
    assert_eq!(broker.status, StatusCode::ACCEPTED, "{}", broker.body);
    eventually("the broker's second incarnation", &herd, || async {
        let h = common::health(&herd).await;
        let b = h["children"]
            .as_array()?
            .iter()
            .find(|c| c["id"] == "broker")?
            .clone();
        (b["incarnation"] == 2 && b["state"] == "running").then_some(())
    })
    .await;

    // The seeds' paths, protected the same way.
    let ticked = admin(&herd, "/execute", None).await;
    assert_eq!(ticked.body["ticked"], json!(["mom"]), "{}", ticked.body);
    assert_eq!(
        post(&herd, "/execute", &[], None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin(&herd, "/cache/clear", None).await.status,
        StatusCode::OK
    );
    let reset = admin(&herd, "/live/reset-circuit-breaker", None).await;
    assert!(
        reset.body["breakers"].as_array().unwrap().len() >= 8,
        "{}",
        reset.body
    );
}
