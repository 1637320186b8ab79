//! Supervision and drain of the real process, with the `chaos` strategy kind.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Herd, eventually, get_json};
use serde_json::Value;

async fn instance(herd: &Herd, id: &str) -> Option<Value> {
    let body = get_json(&format!("{}/strategies", herd.http)).await?;
    body["strategies"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
}

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

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_turns_readyz_503_at_once_and_waits_for_the_tick_in_flight() {
    const TOKEN: &str = "a-token-for-the-drain-test";
    let env = [TICK_EVENTS, &[("HERD_ADMIN_TOKEN", TOKEN)]].concat();
    let mut herd = Herd::start(&slow_tick(1500, "20s"), &env);
    let http = herd.http.clone();
    eventually("ready", &herd, || async {
        let r = reqwest::get(format!("{http}/readyz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    wait_for_first_tick_to_start(&mut herd).await;
    herd.signal("TERM");
    let during = eventually("503 during the drain", &herd, || async {
        let r = reqwest::get(format!("{http}/readyz")).await.ok()?;
        (r.status() == 503).then_some(r.json::<Value>().await.ok()?)
    })
    .await;
    assert_eq!(during["phase"], "draining");
    // An operator cannot change anything during the drain, even with the right token.
    let admin = reqwest::Client::new()
        .post(format!("{http}/admin/strategies/slow/execute"))
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
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_past_its_deadline_names_the_actor_and_exits_non_zero() {
    let mut herd = Herd::start(&slow_tick(10_000, "300ms"), TICK_EVENTS);
    wait_for_first_tick_to_start(&mut herd).await;
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(1), "{}", herd.dump());
    let summary = herd.wait_log(|v| v["event"] == "shutdown_summary");
    assert!(
        summary["unfinished"]
            .as_str()
            .unwrap_or_default()
            .contains("slow"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_forces_an_immediate_exit() {
    let mut herd = Herd::start(&slow_tick(10_000, "20s"), TICK_EVENTS);
    wait_for_first_tick_to_start(&mut herd).await;
    herd.signal("TERM");
    herd.wait_log(|v| v["message"] == "shutdown: draining");
    herd.signal("INT");
    assert_eq!(herd.wait_exit().code(), Some(130), "{}", herd.dump());
}
