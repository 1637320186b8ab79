//! Prices on the real process: a risk manager's stop-loss judges a guarded position, and
//! `/strategies` marks an instance's holdings, at the venue's current price, not at the newest
//! final bar of the instance's series (for daily bars, yesterday's close, all day long).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Herd, eventually, strategy};
use serde_json::Value;

/// The simulator's 2026-03-03 at 10:00 New York: SPY trades 7.7 % above the previous daily
/// close (592.5 against 550.0), TLT within 0.5 % of it (94.8 against 95.0). An optimizer on
/// daily bars, ticking `every` (venue time; a venue minute is a real second at 60×), buys both
/// at its first tick.
fn optimizer_that_morning(every: &str) -> String {
    format!(
        r#"
[sim]
speed = 60.0
start = "2026-03-03T15:00:00Z"

[[strategies]]
id = "opt"
kind = "portfolio_optimizer"
symbols = ["SPY", "TLT"]
every = "{every}"
[strategies.params]
method = "min_variance"
lookback = 10
capital = 5000
"#
    )
}

/// A risk manager guarding the optimizer, on daily bars with a 5 % stop, ticking every venue
/// minute: on yesterday's close SPY's long would be 7.1 % against its entry, on the current
/// price it is about 0.
const GUARD: &str = r#"
[[strategies]]
id = "rm"
kind = "risk_manager"
every = "1m"
[strategies.params]
guard = ["opt"]
timeframe = "1Day"
window = 10
min_observations = 5
stop_loss = 0.05
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_position_bought_above_yesterdays_close_is_not_stopped_on_that_close() {
    // The optimizer ticks once that day.
    let herd = Herd::start(&(optimizer_that_morning("1d") + GUARD), &[]);
    eventually("the optimizer's SPY buy filled", &herd, || async {
        let orders = common::herd_orders(&herd).await;
        orders
            .iter()
            .any(|o| o["instance"] == "opt" && o["symbol"] == "SPY" && o["state"] == "filled")
            .then_some(())
    })
    .await;
    // Three ticks of the risk manager that saw the position (each reads the book afresh).
    let seen = strategy(&herd, "rm").await.unwrap()["ticks"]
        .as_u64()
        .unwrap();
    let rm = eventually("three risk manager ticks after the fill", &herd, || async {
        let rm = strategy(&herd, "rm").await?;
        (rm["ticks"].as_u64()? >= seen + 3).then_some(rm)
    })
    .await;
    let stops: Vec<Value> = common::herd_orders(&herd)
        .await
        .into_iter()
        .filter(|o| o["reason"].as_str().unwrap_or("").starts_with("stop loss"))
        .collect();
    assert!(stops.is_empty(), "stopped on a stale close: {stops:?}");
    let spy = rm["last_decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["instance"] == "opt" && d["symbol"] == "SPY")
        .cloned()
        .unwrap_or_else(|| panic!("no decision on opt's SPY: {rm}"));
    assert_eq!(spy["reason"], "within the stop loss", "{spy}");
    // Judged at the current price: a move since the entry, not the 7.1 % of yesterday's close.
    let against = spy["signal"].as_f64().unwrap();
    assert!(against.abs() < 0.05, "{spy}");
}

/// A decimal field of herd's JSON, which writes decimals as strings.
fn decimal(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn holdings_are_marked_at_the_venues_price_not_at_yesterdays_close() {
    // Rebalancing every venue minute, it holds what it bought at the ticks after the first
    // (its daily bars, and so its targets, do not change within the day).
    let herd = Herd::start(&optimizer_that_morning("1m"), &[]);
    let spy = eventually("the optimizer showing its SPY holding", &herd, || async {
        let opt = strategy(&herd, "opt").await?;
        opt["positions"]
            .as_array()?
            .iter()
            .find(|p| p["symbol"] == "SPY" && decimal(&p["qty"]).is_some_and(|q| q > 0.0))
            .cloned()
    })
    .await;
    let marked = decimal(&spy["last_price"]).unwrap();
    let bought = decimal(&spy["avg_price"]).unwrap();
    // Yesterday's close was 550.0; the fill, minutes ago, was at the venue's price then.
    assert!(
        marked / 550.0 - 1.0 > 0.04,
        "marked at yesterday's close: {spy}"
    );
    assert!((marked / bought - 1.0).abs() < 0.02, "{spy}");
    let pnl = decimal(&spy["unrealized_pnl"]).unwrap();
    let qty = decimal(&spy["qty"]).unwrap();
    assert!(
        (pnl - (marked - bought) * qty).abs() < 0.01,
        "P&L at the marked price: {spy}"
    );
}
