//! Upstream requests per scheduling cycle as the number of strategy instances grows.
//!
//! Runs the real binary against its embedded simulator with 1, 10 and 100 momentum instances
//! (same symbols, same schedule), and counts at the simulator what each cycle cost. A cycle is
//! one tick of every instance. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo bench --bench upstream`

// A benchmark is a test harness: a failed setup step panics with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Herd, eventually, get_json, metric};

const ROUTES: &[(&str, &str)] = &[
    ("clock", "GET /v2/clock"),
    ("positions", "GET /v2/positions"),
    ("account", "GET /v2/account"),
    ("bars", "GET /v2/stocks/bars"),
    ("order lookups", "GET /v2/orders"),
    ("orders placed", "POST /v2/orders"),
];
/// Cycles measured per run, after a warm-up.
const CYCLES: f64 = 20.0;

fn config(instances: usize) -> String {
    let mut c = String::from("[sim]\nspeed = 600.0\n");
    for i in 0..instances {
        c.push_str(&format!(
            "\n[[strategies]]\nid = \"m{i}\"\nkind = \"momentum\"\nsymbols = [\"SPY\", \"QQQ\", \"IWM\"]\nevery = \"5m\"\n"
        ));
    }
    c
}

async fn ticks(herd: &Herd) -> f64 {
    metric(herd, "herd_strategy_ticks_total").await
}

async fn measure(instances: usize) -> Vec<String> {
    let herd = Herd::start(&config(instances), &[]);
    let sim = herd.sim.clone().expect("embedded simulator");
    let n = instances as f64;
    eventually("warm-up", &herd, || async {
        (ticks(&herd).await >= 3.0 * n).then_some(())
    })
    .await;
    reqwest::Client::new()
        .delete(format!("{sim}/__sim/stats"))
        .send()
        .await
        .expect("reset stats");
    let start = ticks(&herd).await;
    eventually("measured cycles", &herd, || async {
        (ticks(&herd).await >= start + CYCLES * n).then_some(())
    })
    .await;
    let cycles = (ticks(&herd).await - start) / n;
    let stats = get_json(&format!("{sim}/__sim/stats"))
        .await
        .expect("stats");
    let mut row = vec![instances.to_string(), format!("{cycles:.0}")];
    let mut reads = 0.0;
    for (name, route) in ROUTES {
        let count = stats["routes"][*route]["requests"].as_f64().unwrap_or(0.0);
        if *name != "orders placed" {
            reads += count;
        }
        row.push(format!("{:.2}", count / cycles));
    }
    row.push(format!("{:.2}", reads / cycles));
    herd.signal("TERM");
    row
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut header = vec!["instances", "cycles"];
    header.extend(ROUTES.iter().map(|(name, _)| *name));
    header.push("reads per cycle");
    println!("| {} |", header.join(" | "));
    println!("|{}|", vec!["---"; header.len()].join("|"));
    for instances in [1, 10, 100] {
        let row = runtime.block_on(measure(instances));
        println!("| {} |", row.join(" | "));
    }
}
