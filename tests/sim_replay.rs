//! CSV replay over real HTTP: intraday and daily files, the default start, continuation after
//! the data, and errors that name the file and line.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim_support/mod.rs"]
mod support;

use std::path::PathBuf;

use herd::sim::{SimConfig, SimServer};
use serde_json::Value;
use support::{Client, start};

/// A fresh directory under the system temp dir holding `files`.
fn csv_dir(name: &str, files: &[(&str, String)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herd-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("write csv");
    }
    dir
}

/// Two regular sessions of minute bars (2024-03-04 and 05), a gentle zig-zag.
fn minute_csv() -> String {
    let mut s = String::from("timestamp,open,high,low,close,volume,trade_count,vwap\n");
    for (day, open_utc) in [("2024-03-04", 14 * 60 + 30), ("2024-03-05", 14 * 60 + 30)] {
        let mut p = 100.0;
        for i in 0..390 {
            let m = open_utc + i;
            let c: f64 = p + if (i / 10) % 2 == 0 { 0.05 } else { -0.04 };
            s.push_str(&format!(
                "{day}T{:02}:{:02}:00Z,{p:.2},{:.2},{:.2},{c:.2},{},{},{:.2}\n",
                m / 60,
                m % 60,
                p.max(c) + 0.02,
                p.min(c) - 0.02,
                1000 + i,
                10,
                (p + c) / 2.0
            ));
            p = c;
        }
    }
    s
}

fn daily_csv() -> String {
    let mut s = String::from("date,open,high,low,close,volume\n");
    let mut d = chrono::NaiveDate::from_ymd_opt(2024, 2, 1).expect("date");
    let mut p = 50.0;
    while d <= chrono::NaiveDate::from_ymd_opt(2024, 3, 5).expect("date") {
        use chrono::Datelike;
        if d.weekday().number_from_monday() <= 5 {
            let c = p * 1.01;
            s.push_str(&format!(
                "{d},{p:.2},{:.2},{:.2},{c:.2},500000\n",
                c * 1.02,
                p * 0.97
            ));
            p = c;
        }
        d = d.succ_opt().expect("date");
    }
    s
}

fn replay_config(dir: PathBuf) -> SimConfig {
    SimConfig {
        speed: 0.0,
        csv_dir: Some(dir),
        market_hours: herd::sim::MarketHours::Regular,
        rate_limit: 0,
        ..SimConfig::default()
    }
}

#[actix_web::test]
async fn replays_intraday_and_daily_files() {
    let dir = csv_dir(
        "ok",
        &[
            ("SPY.csv", minute_csv()),
            ("AAPL.csv", daily_csv()),
            ("notes.txt", "ignored".into()),
        ],
    );
    let mut cfg = replay_config(dir);
    cfg.start = Some("2024-03-05T15:00:00Z".into());
    let sim = start(cfg).await;
    let c = Client::new(&sim);

    // Intraday rows come back as they were written.
    let r = c
        .get("/v2/stocks/SPY/bars?timeframe=1Min&start=2024-03-04T14:30:00Z&limit=3")
        .await;
    let bars = r.body["bars"].as_array().cloned().unwrap_or_default();
    assert_eq!(bars.len(), 3);
    assert_eq!(bars[0]["t"], "2024-03-04T14:30:00Z");
    assert_eq!(bars[0]["o"], 100.0);
    assert_eq!(bars[0]["v"], 1000);
    assert_eq!(bars[0]["n"], 10);
    // Only closed bars of the replayed day: 14:30 .. 14:59 on the 5th.
    let r = c
        .get("/v2/stocks/SPY/bars?timeframe=1Min&start=2024-03-05T00:00:00Z")
        .await;
    assert_eq!(r.body["bars"].as_array().map(Vec::len), Some(30));

    // Daily rows come back exactly as daily bars; their minutes reach the row's extremes.
    let r = c
        .get("/v2/stocks/AAPL/bars?timeframe=1Day&start=2024-03-01")
        .await;
    let days = r.body["bars"].as_array().cloned().unwrap_or_default();
    assert_eq!(days.len(), 2, "the 1st and the 4th; the 5th is still open");
    assert_eq!(days[0]["t"], "2024-03-01T05:00:00Z");
    let r = c
        .get("/v2/stocks/AAPL/bars?timeframe=1Min&start=2024-03-04T00:00:00Z&end=2024-03-04T23:59:00Z")
        .await;
    let minutes = r.body["bars"].as_array().cloned().unwrap_or_default();
    assert_eq!(minutes.len(), 390);
    let high = minutes
        .iter()
        .filter_map(|b| b["h"].as_f64())
        .fold(0.0, f64::max);
    assert_eq!(Value::from(high), days[1]["h"]);
    let vol: u64 = minutes.iter().filter_map(|b| b["v"].as_u64()).sum();
    assert_eq!(vol, 500000);

    // Nothing before the data; a symbol without a file stays synthetic.
    let r = c
        .get("/v2/stocks/SPY/bars?timeframe=1Day&start=2024-01-01&end=2024-03-01")
        .await;
    assert_eq!(r.body["bars"], serde_json::json!([]));
    let r = c.get("/v2/stocks/QQQ/bars/latest").await;
    assert!(r.body["bar"]["c"].is_f64());

    // Trading a replayed symbol fills on the replayed path.
    let order = serde_json::json!({"symbol": "SPY", "qty": 1, "side": "buy",
                                   "type": "market", "time_in_force": "day"});
    let id = c.post("/v2/orders", order).await.body["id"].clone();
    c.advance("1m").await;
    let r = c
        .get(&format!("/v2/orders/{}", id.as_str().unwrap_or_default()))
        .await;
    assert_eq!(r.body["status"], "filled");
    sim.stop().await;
}

#[actix_web::test]
async fn replay_continues_synthetically_after_the_data() {
    let dir = csv_dir("cont", &[("SPY.csv", minute_csv())]);
    let mut cfg = replay_config(dir);
    cfg.start = Some("2024-03-07T15:00:00Z".into());
    let sim = start(cfg).await;
    let c = Client::new(&sim);
    let r = c
        .get("/v2/stocks/SPY/bars?timeframe=1Day&start=2024-03-01")
        .await;
    let days = r.body["bars"].as_array().cloned().unwrap_or_default();
    let stamps: Vec<&str> = days.iter().filter_map(|b| b["t"].as_str()).collect();
    assert_eq!(
        stamps,
        [
            "2024-03-04T05:00:00Z",
            "2024-03-05T05:00:00Z",
            "2024-03-06T05:00:00Z"
        ]
    );
    // The continuation opens where the data closed.
    let last_close = days[1]["c"].as_f64().expect("close");
    let next_open = days[2]["o"].as_f64().expect("open");
    assert!((next_open / last_close - 1.0).abs() < 0.05);
    sim.stop().await;
}

#[actix_web::test]
async fn default_start_lies_inside_the_data() {
    let dir = csv_dir("start", &[("AAPL.csv", daily_csv())]);
    let sim = start(replay_config(dir)).await;
    let c = Client::new(&sim);
    let now = c.get("/__sim/clock").await.body["now"]
        .as_str()
        .map(String::from);
    // 2024-02-01 + a fifth of the 33-day span (6.6 days).
    assert_eq!(now.as_deref(), Some("2024-02-07T19:24:00.000000Z"));
    sim.stop().await;
}

#[actix_web::test]
async fn bad_files_stop_the_simulator_with_file_and_line() {
    let bad =
        "timestamp,open,high,low,close,volume\n2024-03-04,10,11,9,10,1\n2024-03-05,10,9,8,10,1\n";
    let dir = csv_dir("bad", &[("IWM.csv", bad.to_string())]);
    let addr = "127.0.0.1:0".parse().expect("addr");
    let err = match SimServer::start(replay_config(dir), addr).await {
        Ok(_) => panic!("must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("IWM.csv: line 3: high 9"), "{err}");
    let dir = csv_dir("name", &[("spy.csv", daily_csv())]);
    let err = match SimServer::start(replay_config(dir), addr).await {
        Ok(_) => panic!("must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("upper-case ticker"), "{err}");
    let empty = csv_dir("empty", &[]);
    assert!(SimServer::start(replay_config(empty), addr).await.is_err());
}
