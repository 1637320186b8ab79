//! `cargo bench --bench simulator`: what the embedded simulator serves on its own.
//!
//! `herd sim` runs as a separate process (rate limit off, real-time clock in a regular session)
//! and this process drives it over loopback with 32 concurrent keep-alive connections, for 5 s
//! per workload: the clock (the HTTP floor), a bars request as one instance makes it, one as a
//! batch of 100 instances makes it, and orders. Reports requests/s, latency p50/p99 and
//! the simulator's CPU per request (from /proc; client and server share the machine, so the
//! rates are a floor). Prints a Markdown table for BENCHMARKS.md.

// A benchmark is a test harness: a failed setup step panics with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{symbol, usage};

const CONNECTIONS: usize = 32;
const RUN: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
enum Workload {
    Clock,
    /// A bars request of this many symbols, 5-minute bars over the last five hours.
    Bars(usize),
    Orders,
}

impl Workload {
    fn name(self) -> String {
        match self {
            Workload::Clock => "`GET /v2/clock`".into(),
            Workload::Bars(n) => {
                format!("`GET /v2/stocks/bars`, {n} symbols × 5 h of 5-minute bars (first page)")
            }
            Workload::Orders => "`POST /v2/orders`, limit, 1 share".into(),
        }
    }

    fn request(self, client: &reqwest::Client, url: &str, n: u64) -> reqwest::RequestBuilder {
        let authed = |r: reqwest::RequestBuilder| {
            r.header("APCA-API-KEY-ID", "bench")
                .header("APCA-API-SECRET-KEY", "secret")
        };
        match self {
            Workload::Clock => authed(client.get(format!("{url}/v2/clock"))),
            Workload::Bars(symbols) => {
                let list: Vec<String> = (0..symbols).map(symbol).collect();
                // Five hours before the simulator's start (`common::BUYING_MINUTE`).
                let start = "2026-03-02T12:30:00Z";
                authed(client.get(format!("{url}/v2/stocks/bars")).query(&[
                    ("symbols", list.join(",").as_str()),
                    ("timeframe", "5Min"),
                    ("start", start),
                    ("limit", "10000"),
                    ("feed", "iex"),
                    ("adjustment", "all"),
                ]))
            }
            Workload::Orders => {
                // Limit buys far under the market: accepted and left working, so buying power
                // (a dollar each) and the wash-trade rule never refuse one.
                authed(client.post(format!("{url}/v2/orders"))).json(&serde_json::json!({
                    "symbol": symbol((n % 500) as usize),
                    "qty": "1",
                    "side": "buy",
                    "type": "limit",
                    "limit_price": "1.00",
                    "time_in_force": "day",
                    "client_order_id": format!("bench-{n}"),
                }))
            }
        }
    }
}

async fn run(url: &str, pid: u32, workload: Workload) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let cpu0 = usage(pid).0;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            let (counter, failures) = (Arc::clone(&counter), Arc::clone(&failures));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < RUN {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    let answer = workload.request(&client, &url, n).send().await.unwrap();
                    let ok = answer.status().is_success();
                    answer.bytes().await.unwrap();
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_s = usage(pid).0 - cpu0;
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {} |",
        workload.name(),
        latencies.len() as f64 / elapsed,
        at(0.5),
        at(0.99),
        cpu_s / latencies.len() as f64 * 1e6,
        failures.load(Ordering::Relaxed),
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // A regular session in New York, at real speed, so that every request meets an open market.
    let (sim, url) = support::sim_without_quota("1", common::BUYING_MINUTE);
    let pid = sim.pid();
    println!(
        "| workload ({CONNECTIONS} connections, {} s) | requests/s | p50 ms | p99 ms | simulator CPU µs per request | non-2xx |",
        RUN.as_secs()
    );
    println!("|---|---|---|---|---|---|");
    for workload in [
        Workload::Clock,
        Workload::Bars(5),
        Workload::Bars(500),
        Workload::Orders,
    ] {
        rt.block_on(run(&url, pid, workload));
    }
    drop(sim);
}
