//! `cargo bench --bench load`: herd's own cost at N instances × M symbols, end to end.
//!
//! The simulator runs as a separate process with its rate limit off, and herd's quotas are
//! raised, so what is measured is herd: its CPU per instance-tick (from /proc, herd's process
//! only), its resident memory, the upstream requests one scheduling cycle costs (market data and
//! trading counted apart, at the simulator), and the drain. Momentum instances tick every 5
//! minutes of venue time on 5-minute bars; the simulator runs at 300×, so a cycle is one real
//! second. The instances never trade (a threshold of 99 %): the read path and the decisions
//! are what scales with instances; an order adds its POST (and, after any answer but success,
//! a lookup by client_order_id). Prints a Markdown table for BENCHMARKS.md.

// A benchmark is a test harness: a failed setup step panics with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Herd;

const SPEED: f64 = 300.0;
/// Real seconds one scheduling cycle (a 5-minute bar) lasts at `SPEED`.
const CYCLE: f64 = 300.0 / SPEED;
const MEASURED: Duration = Duration::from_secs(12);

/// (instances, symbols per instance, distinct symbols)
const SCENARIOS: &[(usize, usize, usize)] =
    &[(1, 3, 3), (100, 10, 100), (1000, 5, 500), (10_000, 5, 5000)];

/// Three-letter tickers: the simulator derives a market for any symbol.
fn symbol(i: usize) -> String {
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    format!("{}{}{}", letter(i / 676), letter(i / 26), letter(i))
}

fn config(instances: usize, per: usize, universe: usize) -> String {
    let mut c = String::from(
        "[http.rate_limit]\nprobes_per_second = 0\nreads_per_second = 0\n\n\
         [broker.limiter]\nrequests_per_minute = 100000\n\n\
         [broker.data_limiter]\nrequests_per_minute = 100000\n",
    );
    for i in 0..instances {
        let symbols: Vec<String> = (0..per)
            .map(|k| format!("\"{}\"", symbol((i * per + k) % universe)))
            .collect();
        c.push_str(&format!(
            "\n[[strategies]]\nid = \"m{i}\"\nkind = \"momentum\"\nsymbols = [{}]\nevery = \"5m\"\n[strategies.params]\nthreshold = 0.99\n",
            symbols.join(", ")
        ));
    }
    c
}

/// herd's CPU seconds so far (user + system) and resident memory in MiB, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    (ticks / 100.0, rss_kb / 1024.0)
}

/// Requests the simulator served, by route.
async fn served(sim: &str) -> BTreeMap<String, u64> {
    let stats = common::get_json(&format!("{sim}/__sim/stats"))
        .await
        .unwrap();
    stats["routes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(route, v)| (route.clone(), v["requests"].as_u64().unwrap_or(0)))
        .collect()
}

/// (market data, trading) requests between two readings.
fn split(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> (u64, u64) {
    let mut data = 0;
    let mut trading = 0;
    for (route, n) in after {
        let d = n - before.get(route).copied().unwrap_or(0);
        if route.contains("/v2/stocks") {
            data += d;
        } else if route.contains("/v2/") {
            trading += d;
        }
    }
    (data, trading)
}

async fn ticks(herd: &Herd) -> f64 {
    common::metric(herd, "herd_strategy_ticks_total").await
}

async fn scenario(instances: usize, per: usize, universe: usize) {
    let mut sim = Herd::launch(
        &[
            "sim",
            "--port",
            "0",
            "--speed",
            "300",
            "--start",
            common::BUYING_MINUTE,
        ],
        "[sim]\nrate_limit = 0\n",
        &[],
    );
    let listening = sim.wait_log(|v| v["message"] == "simulator listening");
    let url = format!("http://{}", listening["addr"].as_str().unwrap());
    let mut env = common::venue_env(&url, "load");
    env.push((
        "HERD__LOG__LEVEL",
        "warn,herd::app=info,herd::shutdown=info",
    ));
    let started = Instant::now();
    let mut herd = Herd::start(&config(instances, per, universe), &env);
    // Start-up until herd listens: journal, recovery, every actor's spec built.
    let start_s = started.elapsed().as_secs_f64();
    // Two cycles to warm up (first reads, caches), then the measured window.
    tokio::time::sleep(Duration::from_secs_f64(2.0 * CYCLE)).await;
    let pid = herd.pid();
    let (cpu0, _) = usage(pid);
    let ticks0 = ticks(&herd).await;
    let routes0 = served(&url).await;
    let t0 = Instant::now();
    tokio::time::sleep(MEASURED).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, rss) = usage(pid);
    let ticks1 = ticks(&herd).await;
    let routes1 = served(&url).await;
    let (data, trading) = split(&routes0, &routes1);
    if std::env::var_os("HERD_LOAD_ROUTES").is_some() {
        for (route, n) in &routes1 {
            let d = n - routes0.get(route).copied().unwrap_or(0);
            if d > 0 {
                eprintln!("{instances}: {route} {d}");
            }
        }
    }
    let cycles = elapsed / CYCLE;
    let instance_ticks = ticks1 - ticks0;
    herd.signal("TERM");
    let code = herd.wait_exit().code();
    let summary = herd.wait_log(|v| v["event"] == "shutdown_summary");
    println!(
        "| {instances} × {per} over {universe} | {start_s:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {rss:.0} | {:.1} | {} | {:?} |",
        instance_ticks / (instances as f64 * cycles),
        (cpu1 - cpu0) / instance_ticks.max(1.0) * 1e6,
        data as f64 / cycles,
        trading as f64 / cycles,
        rss * 1024.0 / instances as f64,
        summary["total_ms"],
        code,
    );
    drop(sim);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| instances × symbols | start s | ticks per instance per cycle | herd CPU µs per instance-tick | data requests per cycle | trading requests per cycle | RSS MiB | KiB per instance | drain ms | exit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let only: Option<usize> = std::env::var("HERD_LOAD_MAX")
        .ok()
        .and_then(|v| v.parse().ok());
    for &(n, per, universe) in SCENARIOS {
        if only.is_some_and(|max| n > max) {
            continue;
        }
        rt.block_on(scenario(n, per, universe));
    }
}
