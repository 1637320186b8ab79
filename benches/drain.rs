//! How long the drain takes: SIGTERM to process exit, idle and with an order in flight.
//!
//! Runs the real binary; "in flight" uses a standalone simulator whose order POSTs take 500 ms,
//! and sends SIGTERM right after a decision. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo bench --bench drain`

// A benchmark is a test harness: a failed setup step panics with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Herd, eventually};

const RUNS: usize = 10;

/// (wall time from SIGTERM to exit, the drain's own `total_ms`).
fn stop(mut herd: Herd) -> (Duration, f64) {
    let sent = Instant::now();
    herd.signal("TERM");
    let status = herd.wait_exit();
    let wall = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{}", herd.dump());
    let summary = herd.wait_log(|v| v["event"] == "shutdown_summary");
    (wall, summary["total_ms"].as_f64().unwrap_or(f64::NAN))
}

async fn idle() -> (Duration, f64) {
    let herd = Herd::start("strategies = []\n", &[]);
    eventually("ready", &herd, || async {
        let r = reqwest::get(format!("{}/readyz", herd.http)).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    stop(herd)
}

async fn in_flight() -> (Duration, f64) {
    let venue = Herd::start_sim(&["--speed", "600", "--start", common::BUYING_MINUTE]);
    let url = venue.sim.clone().expect("sim address");
    common::set_faults(
        &url,
        serde_json::json!({"orders": {"latency": "500ms", "methods": ["POST"]}}),
    )
    .await;
    let env = common::venue_env(&url, "bench");
    let mut herd = Herd::start(&common::eager_momentum("m", "5m"), &env);
    herd.wait_log(|v| v["message"] == "signal");
    // On the wire (an order still queued at the signal is not sent, and not waited for).
    common::eventually("an order in flight", &herd, || async {
        (common::metric(&herd, "herd_broker_orders_in_flight").await >= 1.0).then_some(())
    })
    .await;
    stop(herd)
}

fn summary(name: &str, samples: &mut [(Duration, f64)]) {
    samples.sort_by_key(|s| s.0);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples[samples.len() / 2];
    let mut drain: Vec<f64> = samples.iter().map(|s| s.1).collect();
    drain.sort_by(f64::total_cmp);
    println!(
        "| {name} | {RUNS} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
        ms(samples[0].0),
        ms(median.0),
        ms(samples[samples.len() - 1].0),
        drain[drain.len() / 2],
        drain[drain.len() - 1],
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| scenario | runs | exit min ms | exit median ms | exit max ms | drain median ms | drain max ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut samples: Vec<_> = (0..RUNS).map(|_| runtime.block_on(idle())).collect();
    summary("idle", &mut samples);
    let mut samples: Vec<_> = (0..RUNS).map(|_| runtime.block_on(in_flight())).collect();
    summary("order in flight (venue takes 500 ms)", &mut samples);
}
