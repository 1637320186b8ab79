//! Supervision and drain of the real process, with the `chaos` strategy kind.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Herd, eventually, get_json, strategy as instance};
use serde_json::Value;

const FAST_SUPERVISOR: &str = r#"
[sim]
speed = 600.0

[supervisor]
max_restarts = 100
restart_window = "60s"
backoff_base = "20ms"
backoff_cap = "80ms"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_instance_restarts_with_fresh_state_while_its_neighbour_keeps_ticking() {
    let config = format!(
        r#"{FAST_SUPERVISOR}
[[strategies]]
id = "chaos-3"
kind = "chaos"
every = "30s"
[strategies.params]
panic_every = 3

[[strategies]]
id = "steady"
kind = "momentum"
symbols = ["SPY"]
every = "30s"
"#
    );
    let herd = Herd::start(&config, &[]);
    let before = eventually("the neighbour ticks", &herd, || async {
        let s = instance(&herd, "steady").await?;
        (s["ticks"].as_u64()? >= 1).then_some(s["ticks"].as_u64()?)
    })
    .await;
    // Several restarts; on every observation the chaos counter is below 3, which a counter
    // carried over from the previous incarnation would not be.
    let max_seen = std::sync::atomic::AtomicU64::new(0);
    let chaos = eventually("three restarts of the chaos instance", &herd, || async {
        let c = instance(&herd, "chaos-3").await?;
        max_seen.fetch_max(
            c["ticks"].as_u64().unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        (c["restarts"].as_u64()? >= 3).then_some(c)
    })
    .await;
    let max_ticks_seen = max_seen.into_inner();
    assert!(
        max_ticks_seen <= 2,
        "a restarted core kept its tick counter: {max_ticks_seen}"
    );
    assert!(chaos["incarnation"].as_u64().unwrap() >= 3, "{chaos}");
    assert!(
        chaos["last_exit"]
            .as_str()
            .unwrap()
            .contains("chaos: planned panic on tick 3"),
        "{chaos}"
    );
    let steady = instance(&herd, "steady").await.unwrap();
    assert_eq!(steady["restarts"], 0, "{steady}");
    assert_eq!(steady["state"], "running");
    assert!(
        steady["ticks"].as_u64().unwrap() > before,
        "the neighbour stopped ticking: {steady}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_panicking_on_every_tick_ends_failed_and_the_process_stays_up() {
    let config = r#"
[sim]
speed = 600.0

[supervisor]
max_restarts = 2
restart_window = "60s"
backoff_base = "10ms"
backoff_cap = "20ms"

[[strategies]]
id = "always-panics"
kind = "chaos"
every = "30s"
[strategies.params]
panic_every = 1

[[strategies]]
id = "steady"
kind = "momentum"
symbols = ["SPY"]
every = "30s"
"#;
    let herd = Herd::start(config, &[]);
    let failed = eventually("the chaos instance failed", &herd, || async {
        let c = instance(&herd, "always-panics").await?;
        (c["state"] == "failed").then_some(c)
    })
    .await;
    assert_eq!(failed["restarts"], 2, "{failed}");

    let health = get_json(&format!("{}/health", herd.http)).await.unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let child = health["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "always-panics")
        .unwrap();
    assert_eq!(child["state"], "failed");

    let metrics = reqwest::get(format!("{}/metrics", herd.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herd_supervisor_restarts_total{child=\"always-panics\"} 2"),
        "restarts not counted:\n{metrics}"
    );
    assert!(
        metrics.contains("herd_child_state{child=\"always-panics\",state=\"failed\"} 1"),
        "{metrics}"
    );

    assert_eq!(
        reqwest::get(format!("{}/livez", herd.http))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{}/readyz", herd.http))
            .await
            .unwrap()
            .status(),
        200
    );
    let steady = instance(&herd, "steady").await.unwrap();
    assert_eq!(steady["state"], "running", "{steady}");
}

/// One chaos instance whose ticks take `sleep_ms`, so a tick is in flight when the signal comes.
fn slow_tick(sleep_ms: u64, grace: &str) -> String {
    format!(
        r#"
[sim]
speed = 600.0

[shutdown]
grace = "{grace}"

[[strategies]]
id = "slow"
kind = "chaos"
every = "1s"
[strategies.params]
sleep_ms = {sleep_ms}
"#
    )
}

/// The instance's first tick is in flight: it ticks at once on start, and logs (at debug) when
/// a tick starts.
async fn wait_for_first_tick_to_start(herd: &mut Herd) {
    herd.wait_log(|v| v["message"] == "tick started" && v["instance"] == "slow");
}

/// The strategy actor's debug events ("tick started"), everything else at info.
const TICK_EVENTS: &[(&str, &str)] = &[("HERD__LOG__LEVEL", "info,herd::strategy::actor=debug")];

/// herd with an order in flight at a venue that outlives it and takes `latency` to answer an
/// order; returns herd and the venue once the order is on the wire.
async fn with_an_order_in_flight(latency: &str, grace: &str, env: &[(&str, &str)]) -> (Herd, Herd) {
    let venue = Herd::start_sim(&["--speed", "600", "--start", common::BUYING_MINUTE]);
    let url = venue.sim.clone().unwrap();
    common::set_faults(
        &url,
        serde_json::json!({"orders": {"latency": latency, "methods": ["POST"]}}),
    )
    .await;
    let config = format!(
        "[shutdown]\ngrace = \"{grace}\"\n{}",
        common::eager_momentum("m", "5m")
    );
    let mut all = common::venue_env(&url, "drain-test");
    all.extend_from_slice(env);
    let herd = Herd::start(&config, &all);
    // On the wire, held by the venue: an order herd still holds (journal write, lease fence,
    // quota) would be dropped by the drain instead of awaited.
    common::wait_for_a_delayed_request(&herd, &url).await;
    (herd, venue)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_turns_readyz_503_at_once_and_waits_for_the_order_in_flight() {
    const TOKEN: &str = "a-token-for-the-drain-test";
    let (mut herd, _venue) =
        with_an_order_in_flight("1500ms", "20s", &[("HERD_ADMIN_TOKEN", TOKEN)]).await;
    let http = herd.http.clone();
    herd.signal("TERM");
    let during = eventually("503 during the drain", &herd, || async {
        let r = reqwest::get(format!("{http}/readyz")).await.ok()?;
        (r.status() == 503).then_some(r.json::<Value>().await.ok()?)
    })
    .await;
    assert_eq!(during["phase"], "draining");
    // An operator cannot change anything during the drain, even with the right token.
    let admin = reqwest::Client::new()
        .post(format!("{http}/admin/strategies/m/execute"))
        .header("X-Admin-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 503);
    let body: Value = admin.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("draining"),
        "{body}"
    );
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let summary = herd.wait_log(|v| v["event"] == "shutdown_summary");
    assert_eq!(summary["message"], "shutdown complete", "{summary}");
    assert!(
        summary["orders_completed"].as_u64().unwrap() >= 1,
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tick_still_deciding_does_not_hold_the_drain() {
    // A decision that would take 30 s, against a 5 s grace: it has no effect yet (no order), so
    // the drain abandons it instead of waiting past its deadline.
    let mut herd = Herd::start(&slow_tick(30_000, "5s"), TICK_EVENTS);
    wait_for_first_tick_to_start(&mut herd).await;
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let summary = herd.wait_log(|v| v["event"] == "shutdown_summary");
    assert_eq!(summary["message"], "shutdown complete", "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_past_its_deadline_names_the_actor_and_exits_non_zero() {
    // The venue answers the order in 10 s; the grace is 2 s.
    let (mut herd, _venue) = with_an_order_in_flight("10s", "2s", &[]).await;
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(1), "{}", herd.dump());
    let summary = herd.wait_log(|v| v["event"] == "shutdown_summary");
    assert!(
        summary["unfinished"]
            .as_str()
            .unwrap_or_default()
            .contains('m'),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_forces_an_immediate_exit() {
    let (mut herd, _venue) = with_an_order_in_flight("10s", "20s", &[]).await;
    herd.signal("TERM");
    herd.wait_log(|v| v["message"] == "shutdown: draining");
    herd.signal("INT");
    assert_eq!(herd.wait_exit().code(), Some(130), "{}", herd.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tick_in_flight_at_the_signal_is_abandoned_not_failed_and_decides_nothing() {
    // `m` buys at once and the venue holds the order 3 s, so the drain waits that long. `late`
    // (which only ever holds) starts a tick whose bars take 1 s to arrive, then SIGTERM: a tick
    // with no order yet ends there, counted abandoned, not failed, and decides nothing, even
    // though the drain goes on for seconds.
    let venue = Herd::start_sim(&["--speed", "600", "--start", common::BUYING_MINUTE]);
    let url = venue.sim.clone().unwrap();
    let held_orders = serde_json::json!({"latency": "3s", "methods": ["POST"]});
    common::set_faults(&url, serde_json::json!({ "orders": held_orders })).await;
    let config = format!(
        r#"
[shutdown]
grace = "20s"
{}
[[strategies]]
id = "late"
kind = "momentum"
symbols = ["DIA", "XLF"]
every = "5m"
[strategies.params]
threshold = 0.99
position_size = 1
"#,
        common::eager_momentum("m", "5m")
    );
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::venue_env(&url, "late-tick");
    env.extend_from_slice(TICK_EVENTS);
    let mut herd = Herd::start_in(dir.path(), &config, &env);
    common::wait_for_a_delayed_request(&herd, &url).await;
    common::set_faults(
        &url,
        serde_json::json!({ "orders": held_orders, "data": {"latency": "1s"} }),
    )
    .await;
    let slowed = chrono::Utc::now();
    herd.wait_log(|v| {
        v["message"] == "tick started"
            && v["instance"] == "late"
            && v["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .is_some_and(|t| t > slowed)
    });
    let signalled = chrono::Utc::now();
    herd.signal("TERM");
    // While the drain waits for m's order, late's tick is over: abandoned, not failed.
    let abandoned =
        "herd_strategy_ticks_total{instance=\"late\",kind=\"momentum\",outcome=\"abandoned\"}";
    eventually("late's tick counted abandoned", &herd, || async {
        let text = common::try_metrics_text(&herd).await?;
        (common::sample(&text, abandoned) >= 1.0).then_some(())
    })
    .await;
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    assert!(
        herd.seen(|v| v["event"] == "tick_failed" && v["instance"] == "late")
            .is_none(),
        "a tick ended by the drain was reported as failed\n{}",
        herd.dump()
    );
    let summary = herd.seen(|v| v["event"] == "shutdown_summary").unwrap();
    assert!(
        summary["orders_completed"].as_u64().unwrap() >= 1,
        "the drain did not wait for m's order, so it proves nothing: {summary}\n{}",
        herd.dump()
    );
    let from = signalled.to_rfc3339();
    let (code, out, err) = common::journal_export(
        dir.path(),
        &["--kind", "decisions", "--format", "jsonl", "--from", &from],
    );
    assert_eq!(code, Some(0), "{err}");
    let late: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|d| d["instance"] == "late")
        .collect();
    assert!(
        late.is_empty(),
        "decided after the signal: {late:?}\n{}",
        herd.dump()
    );
}
