//! How herd lives with the real venue's quirks, each taught to the simulator so that a test can
//! prove herd handles it.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Herd, eventually, get_json, metric};
use serde_json::json;

fn trading() -> String {
    common::fast_eager_momentum("quirks")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_multi_leg_order_on_the_account_does_not_stop_herds_orders_settling() {
    let mut herd = Herd::start(&trading(), &[("HERD__SIM__START", common::BUYING_MINUTE)]);
    let sim = herd.sim.clone().unwrap();
    let base = herd.http.clone();
    // Another app on the same account places a multi-leg options order: Alpaca lists it with
    // empty strings for symbol, side and type, on every page herd reads to settle its orders.
    let placed = reqwest::Client::new()
        .post(format!("{sim}/__sim/foreign_orders"))
        .json(&json!({"key": herd::app::SIM_KEY, "kind": "mleg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 200);
    let foreign_id = placed.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // herd's own orders still settle: filled, as the venue says.
    eventually("an order of herd's filled", &herd, || async {
        let body = get_json(&format!("{base}/orders?state=filled")).await?;
        (!body["orders"].as_array()?.is_empty()).then_some(())
    })
    .await;
    // The foreign row was on the pages herd read to settle them ...
    assert!(common::sim_requests(&sim, "GET /v2/orders").await >= 1);
    // ... and no listing failed for it.
    assert_eq!(
        metric(&herd, "herd_broker_read_failures_total").await,
        0.0,
        "a listing failed"
    );
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    assert!(!foreign_id.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_for_an_order_the_venue_accepted_is_looked_up_and_the_order_adopted() {
    // The first order POST is placed at the venue, but answered 403 "insufficient buying power".
    let config = format!(
        "{}\n[sim.faults.orders]\nlost_response_rate = 1.0\nlost_response_as = \"refused\"\nmethods = [\"POST\"]\ncount = 1\n",
        trading()
    );
    let mut herd = Herd::start(&config, &[("HERD__SIM__START", common::BUYING_MINUTE)]);
    let sim = herd.sim.clone().unwrap();
    let base = herd.http.clone();
    let first = eventually("herd's first order settled", &herd, || async {
        let orders = common::herd_orders(&herd).await;
        let first = orders.last()?.clone();
        (first["state"] == "filled").then_some(first)
    })
    .await;
    let cid = first["client_order_id"].as_str().unwrap().to_owned();
    let at_venue = common::venue_orders_of(&sim, herd::app::SIM_KEY).await;
    assert_eq!(
        at_venue
            .iter()
            .filter(|o| o["client_order_id"] == cid.as_str())
            .count(),
        1,
        "{cid} placed once: {at_venue:?}"
    );
    // Every order herd holds is at the venue once, and the books agree.
    let positions = eventually("the books reconcile", &herd, || async {
        let p = get_json(&format!("{base}/positions")).await?;
        (p["reconciled"] == true).then_some(p)
    })
    .await;
    assert_eq!(positions["mismatches"].as_array().map_or(0, Vec::len), 0);
    assert!(
        herd.dump()
            .contains("looking it up by client_order_id before believing it"),
        "the refusal was checked"
    );
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_decision_is_made_on_a_bar_that_is_not_final() {
    // A frozen venue clock 5 s after a 5-minute boundary. The bar that ended then has been
    // published (after 3 s) but is still provisional (revised for 10 s): at the default settle
    // time of 15 s the newest final bar is the one before it.
    let config = trading().replace(
        "speed = 600.0",
        "speed = 0.0\nstart = \"2026-03-02T17:30:05Z\"\nbar_delay = \"3s\"\nbar_revision = \"10s\"",
    );
    let herd = Herd::start(&config, &[]);
    let base = herd.http.clone();
    let orders = eventually("the first tick's orders", &herd, || async {
        let body = get_json(&format!("{base}/orders")).await?;
        let orders = body["orders"].as_array()?.clone();
        (!orders.is_empty()).then_some(orders)
    })
    .await;
    for order in &orders {
        assert_eq!(
            order["decided_on"], "2026-03-02T17:20:00Z",
            "decided on the newest final bar, not the provisional 17:25 one: {order}"
        );
    }
    herd.signal("TERM");
}

/// A momentum instance whose 20-bar window holds a 2-for-1 split of SPY, on a calm market and a
/// frozen clock: its one tick decides at start.
const SPLIT: &str = r#"
[sim]
speed = 0.0
start = "2026-03-02T17:30:05Z"
regimes = false
[sim.symbols.SPY]
volatility = 0.01
split_at = "2026-03-02T16:30:00Z"
split_ratio = 2.0

[[strategies]]
id = "split"
kind = "momentum"
symbols = ["SPY"]
every = "5m"
[strategies.params]
threshold = 0.02
position_size = 1
"#;

/// The signal of the instance's first decision on SPY.
async fn first_signal(env: &[(&str, &str)]) -> f64 {
    let herd = Herd::start(SPLIT, env);
    let base = herd.http.clone();
    let signal = eventually("a decision on SPY", &herd, || async {
        let s = get_json(&format!("{base}/strategies/split")).await?;
        s["last_decisions"].as_array()?.first()?["signal"].as_f64()
    })
    .await;
    herd.signal("TERM");
    signal
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_inside_the_window_is_no_signal_with_adjusted_bars() {
    // herd's default, adjustment = all: the split is invisible.
    let adjusted = first_signal(&[]).await;
    assert!(adjusted.abs() < 0.02, "no move: {adjusted}");
    // Alpaca's own default, raw: the same window shows the split as a 50 % fall.
    let raw = first_signal(&[("HERD__BROKER__ADJUSTMENT", "raw")]).await;
    assert!(raw < -0.4, "a crash in raw prices: {raw}");
}

#[tokio::test(flavor = "multi_thread")]
async fn minutes_without_a_bar_on_iex_leave_windows_of_the_last_bars_and_an_aligned_replay() {
    // A third of the minutes have no bar on the iex feed herd asks for. Momentum decides on the
    // last 20 one-minute bars it has; the risk manager replays the bought book over the minutes
    // all its holdings share.
    let config = r#"
[sim]
speed = 600.0
iex_empty_minutes = 0.33

[[strategies]]
id = "thin"
kind = "momentum"
symbols = ["SPY", "QQQ", "IWM"]
every = "1m"
[strategies.params]
threshold = 0.0001
position_size = 1
timeframe = "1Min"

[[strategies]]
id = "guard"
kind = "risk_manager"
every = "1m"
[strategies.params]
guard = ["thin"]
timeframe = "1Min"
window = 30
min_observations = 10
max_drawdown = 0.5
"#;
    let herd = Herd::start(config, &[("HERD__SIM__START", common::BUYING_MINUTE)]);
    let base = herd.http.clone();
    eventually("momentum decided on the bars it has", &herd, || async {
        let s = get_json(&format!("{base}/strategies/thin")).await?;
        let decided = s["last_decisions"]
            .as_array()?
            .iter()
            .filter(|d| d["signal"].is_number())
            .count();
        (decided == 3).then_some(())
    })
    .await;
    let figures = eventually("the guard's figures of the held book", &herd, || async {
        let s = get_json(&format!("{base}/strategies/guard")).await?;
        let figures = &s["report"]["figures"];
        (figures["observations"].as_u64()? >= 10).then(|| figures.clone())
    })
    .await;
    assert!(figures["var_usd"].is_number(), "{figures}");
    herd.signal("TERM");
}

/// One symbol's morning as a CSV the simulator replays: from 08:00 New York time (13:00Z) the
/// pre-market climbs 10 %, then the regular session (from 14:30Z) is flat at 110.
fn premarket_csv(dir: &std::path::Path) {
    let mut rows = String::from("timestamp,open,high,low,close,volume\n");
    let start = chrono::DateTime::parse_from_rfc3339("2024-03-04T13:00:00Z").unwrap();
    for i in 0..120 {
        let t = start + chrono::Duration::minutes(i);
        let price = if i < 90 {
            100.0 + i as f64 * 0.11
        } else {
            110.0
        };
        rows.push_str(&format!(
            "{},{price:.2},{price:.2},{price:.2},{price:.2},1000\n",
            t.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    std::fs::write(dir.join("ZZZ.csv"), rows).unwrap();
}

/// The first decision of a momentum instance on ZZZ at 09:45 New York time, deciding on the
/// `session` given.
async fn morning_decision(session: &str) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    premarket_csv(data.path());
    let config = format!(
        r#"
[sim]
speed = 0.0
start = "2024-03-04T14:45:05Z"
market_hours = "regular"
csv_dir = "{}"

[[strategies]]
id = "morning"
kind = "momentum"
symbols = ["ZZZ"]
every = "5m"
session = "{session}"
[strategies.params]
threshold = 0.01
position_size = 1
timeframe = "1Min"
lookback = 30
"#,
        data.path().display()
    );
    let herd = Herd::start(&config, &[]);
    let base = herd.http.clone();
    let decision = eventually("the first decision", &herd, || async {
        let s = get_json(&format!("{base}/strategies/morning")).await?;
        s["last_decisions"].as_array()?.first().cloned()
    })
    .await;
    herd.signal("TERM");
    decision
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_decides_on_the_regular_session_unless_told_otherwise() {
    // Regular session, by the venue's calendar (09:30 open): the 14 flat bars so far today,
    // and the pre-market's climb no part of them.
    let regular = morning_decision("regular").await;
    assert_eq!(regular["signal"], 0.0, "{regular}");
    // Extended: the last 30 bars reach back into the pre-market, and its climb is a signal.
    let extended = morning_decision("extended").await;
    assert!(extended["signal"].as_f64().unwrap() > 0.01, "{extended}");
}
