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
//!
//! `HERD_LOAD_TRADING=1` makes every instance trade instead (a threshold of 0.01 %, one share
//! a position, all on one account) and prints, under each row, the orders a cycle by outcome:
//! the order path's cost (the risk gate, the book, the journal's order rows, the settling
//! refresh) then shows in the CPU figure.
//!
//! Decision delay: ticks fall due as each bar becomes final (its end plus `broker.bar_settle`,
//! here 15 venue seconds, 50 ms real). After herd exits, its journal's decisions of the measured
//! window are exported, each placed on the venue clock (read from the simulator when the window
//! starts), and timed from the moment its bar became final: p50 and p99 over every decision,
//! and over each cycle's last decision.

// A benchmark is a test harness: a failed setup step panics with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::Herd;
use support::{symbol, usage};

const SPEED: f64 = 300.0;
/// Real seconds one scheduling cycle (a 5-minute bar) lasts at `SPEED`.
const CYCLE: f64 = 300.0 / SPEED;
/// The measured window (`HERD_LOAD_SECONDS` overrides it: a longer one averages over more
/// cycles when two builds are compared).
fn measured() -> Duration {
    let seconds = std::env::var("HERD_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    Duration::from_secs(seconds)
}

/// (instances, symbols per instance, distinct symbols)
const SCENARIOS: &[(usize, usize, usize)] =
    &[(1, 3, 3), (100, 10, 100), (1000, 5, 500), (10_000, 5, 5000)];

/// Venue time from a bar's end until herd counts it final (`broker.bar_settle`'s default).
const SETTLE_S: f64 = 15.0;
/// Venue seconds between ticks (`every = "5m"`).
const EVERY_S: f64 = 300.0;

/// Whether the instances trade (`HERD_LOAD_TRADING`).
fn instances_trade() -> bool {
    std::env::var_os("HERD_LOAD_TRADING").is_some()
}

fn config(instances: usize, per: usize, universe: usize) -> String {
    let params = if instances_trade() {
        "threshold = 0.0001\nposition_size = 1\n"
    } else {
        "threshold = 0.99\n"
    };
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
            "\n[[strategies]]\nid = \"m{i}\"\nkind = \"momentum\"\nsymbols = [{}]\nevery = \"5m\"\n[strategies.params]\n{params}",
            symbols.join(", ")
        ));
    }
    c
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

/// The simulator's clock now: its venue time, with the wall-clock instant of the reading.
async fn venue_clock(sim: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let before = Utc::now();
    let clock = common::get_json(&format!("{sim}/__sim/clock"))
        .await
        .unwrap();
    let after = Utc::now();
    let venue = clock["now"].as_str().unwrap().parse().unwrap();
    (venue, before + (after - before) / 2)
}

/// Real milliseconds from each decision's bar becoming final to the decision, with the cycle
/// (the boundary's index) it belongs to. `at` is the decision's wall time; the venue clock
/// read `venue` at wall time `wall`.
fn delays(
    decisions: &[DateTime<Utc>],
    (venue, wall): (DateTime<Utc>, DateTime<Utc>),
) -> Vec<(i64, f64)> {
    decisions
        .iter()
        .map(|at| {
            let real_s = (*at - wall).num_microseconds().unwrap() as f64 / 1e6;
            let venue_s = venue.timestamp_micros() as f64 / 1e6 + real_s * SPEED;
            let since = venue_s - SETTLE_S;
            let cycle = (since / EVERY_S).floor();
            let late_venue_s = since - cycle * EVERY_S;
            (cycle as i64, late_venue_s / SPEED * 1e3)
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// (p50, p99) of every delay and of each cycle's largest.
fn delay_figures(delays: &[(i64, f64)]) -> ((f64, f64), (f64, f64)) {
    let mut all: Vec<f64> = delays.iter().map(|d| d.1).collect();
    all.sort_by(f64::total_cmp);
    let mut last: BTreeMap<i64, f64> = BTreeMap::new();
    for &(cycle, ms) in delays {
        let e = last.entry(cycle).or_insert(ms);
        *e = e.max(ms);
    }
    let mut last: Vec<f64> = last.into_values().collect();
    last.sort_by(f64::total_cmp);
    (
        (percentile(&all, 0.5), percentile(&all, 0.99)),
        (percentile(&last, 0.5), percentile(&last, 0.99)),
    )
}

/// The decisions herd journaled from `from` to `to` (wall time), by `herd journal export`.
fn journaled_decisions(
    dir: &std::path::Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let (from, to) = (from.to_rfc3339(), to.to_rfc3339());
    let (code, out, err) = common::journal_export(
        dir,
        &[
            "--kind",
            "decisions",
            "--format",
            "jsonl",
            "--from",
            &from,
            "--to",
            &to,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["at"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

async fn ticks(herd: &Herd) -> f64 {
    common::metric(herd, "herd_strategy_ticks_total").await
}

/// herd's orders so far by outcome: (accepted, rejected by the venue, refused by herd, unknown).
async fn orders(herd: &Herd) -> [f64; 4] {
    let text = common::metrics_text(herd).await;
    ["accepted", "rejected", "refused", "unknown"].map(|outcome| {
        common::sample_labelled(
            &text,
            "herd_orders_total",
            &format!("outcome=\"{outcome}\""),
        )
    })
}

async fn scenario(instances: usize, per: usize, universe: usize) {
    let (sim, url) = support::sim_without_quota("300", common::BUYING_MINUTE);
    let mut env = common::venue_env(&url, "load");
    env.push((
        "HERD__LOG__LEVEL",
        "warn,herd::app=info,herd::shutdown=info",
    ));
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut herd = Herd::start_in(dir.path(), &config(instances, per, universe), &env);
    // Start-up until herd listens: journal, recovery, every actor's spec built.
    let start_s = started.elapsed().as_secs_f64();
    // Two cycles to warm up (first reads, caches), then the measured window.
    tokio::time::sleep(Duration::from_secs_f64(2.0 * CYCLE)).await;
    let pid = herd.pid();
    let (cpu0, _) = usage(pid);
    let ticks0 = ticks(&herd).await;
    let orders0 = orders(&herd).await;
    let routes0 = served(&url).await;
    let clock = venue_clock(&url).await;
    let t0 = Instant::now();
    tokio::time::sleep(measured()).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let window_end = Utc::now();
    let (cpu1, rss) = usage(pid);
    let ticks1 = ticks(&herd).await;
    let orders1 = orders(&herd).await;
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
    // Decisions past `journal.queue` (10,000 waiting) are dropped, not journaled: at 10,000
    // instances the delays are those of the decisions that were (a lower bound on the p99).
    let decided = journaled_decisions(dir.path(), clock.1, window_end);
    let timed = decided.len() as f64 / (instance_ticks * per as f64).max(1.0);
    let drain = format!(
        "{} ({} + {})",
        summary["total_ms"], summary["actors_ms"], summary["journal_ms"]
    );
    let ((all50, all99), (last50, last99)) = delay_figures(&delays(&decided, clock));
    println!(
        "| {instances} × {per} over {universe} | {start_s:.1} | {:.2} | {all50:.0} / {all99:.0} ({:.0} % timed) | {last50:.0} / {last99:.0} | {:.1} | {:.1} | {:.1} | {rss:.0} | {:.1} | {} | {} |",
        instance_ticks / (instances as f64 * cycles),
        timed * 100.0,
        (cpu1 - cpu0) / instance_ticks.max(1.0) * 1e6,
        data as f64 / cycles,
        trading as f64 / cycles,
        rss * 1024.0 / instances as f64,
        drain,
        code.map_or_else(|| "signal".to_string(), |c| c.to_string()),
    );
    if instances_trade() {
        let per_cycle = |k: usize| (orders1[k] - orders0[k]) / cycles;
        println!(
            "|   orders a cycle: {:.1} accepted, {:.1} rejected, {:.1} refused, {:.1} unknown | | | | | | | | | | | |",
            per_cycle(0),
            per_cycle(1),
            per_cycle(2),
            per_cycle(3)
        );
    }
    drop(sim);
}

/// What the default quotas allow: `SYMBOLS` distinct symbols (five per instance) on bars of `timeframe` with a
/// window of `lookback` bars, against the simulator's default quota (200 a venue minute) and
/// herd's default limiters. Returns the row for the quota table.
async fn quota_scenario(timeframe: &str, every: &str, minutes: f64, lookback: usize) {
    const SYMBOLS: usize = 500;
    const PER: usize = 5;
    const CYCLES: f64 = 4.0;
    // One cycle a real second; from 09:35 New York time, so that six cycles of hours stay in
    // the session.
    let speed = format!("{}", minutes * 60.0);
    let mut sim = Herd::launch(
        &[
            "sim",
            "--port",
            "0",
            "--speed",
            &speed,
            "--start",
            "2026-03-02T14:35:00Z",
        ],
        "",
        &[],
    );
    let listening = sim.wait_log(|v| v["message"] == "simulator listening");
    let url = format!("http://{}", listening["addr"].as_str().unwrap());
    let mut env = common::venue_env(&url, "quota");
    env.push(("HERD__LOG__LEVEL", "warn,herd::app=info"));
    let mut c = String::from("[http.rate_limit]\nprobes_per_second = 0\nreads_per_second = 0\n");
    for i in 0..SYMBOLS / PER {
        let symbols: Vec<String> = (0..PER)
            .map(|k| format!("\"{}\"", symbol(i * PER + k)))
            .collect();
        c.push_str(&format!(
            "\n[[strategies]]\nid = \"q{i}\"\nkind = \"momentum\"\nsymbols = [{}]\nevery = \"{every}\"\n[strategies.params]\nthreshold = 0.99\ntimeframe = \"{timeframe}\"\nlookback = {lookback}\n",
            symbols.join(", ")
        ));
    }
    let mut herd = Herd::start(&c, &env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let saturated0 = common::metric(&herd, "herd_limiter_saturated_total").await;
    let routes0 = served(&url).await;
    tokio::time::sleep(Duration::from_secs_f64(CYCLES)).await;
    let routes1 = served(&url).await;
    let saturated = common::metric(&herd, "herd_limiter_saturated_total").await - saturated0;
    let (data, _) = split(&routes0, &routes1);
    let per_cycle = data as f64 / CYCLES;
    // herd plans to use 90 % of the data quota (`broker.data_limiter.headroom`): 180 a minute.
    let cycles_per_minute = 1.0 / minutes;
    let max_symbols = 180.0 / cycles_per_minute / (per_cycle / SYMBOLS as f64);
    println!(
        "| {timeframe} | {lookback} | {per_cycle:.1} | {:.1} | {saturated} | {:.0} |",
        per_cycle * cycles_per_minute,
        max_symbols,
    );
    herd.signal("TERM");
    herd.wait_exit();
    drop(sim);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| instances × symbols | start s | ticks per instance per cycle | final bar → decision ms p50 / p99 | → cycle's last decision ms p50 / p99 | herd CPU µs per instance-tick | data requests per cycle | trading requests per cycle | RSS MiB | KiB per instance | drain ms (actors + journal) | exit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let only: Option<usize> = std::env::var("HERD_LOAD_MAX")
        .ok()
        .and_then(|v| v.parse().ok());
    let from: Option<usize> = std::env::var("HERD_LOAD_MIN")
        .ok()
        .and_then(|v| v.parse().ok());
    for &(n, per, universe) in SCENARIOS {
        if only.is_some_and(|max| n > max) || from.is_some_and(|min| n < min) {
            continue;
        }
        rt.block_on(scenario(n, per, universe));
    }
    if std::env::var_os("HERD_LOAD_NO_QUOTA").is_some() {
        return;
    }
    println!();
    println!(
        "| timeframe (and every) | lookback bars | data requests per cycle, 500 symbols | data requests per minute | limiter refusals | distinct symbols at which 180 a minute binds |"
    );
    println!("|---|---|---|---|---|---|");
    // Longer windows of longer bars span weeks, which the simulator synthesizes minute by
    // minute: the rows stop where that, not herd, would be measured.
    for (timeframe, every, minutes, lookback) in [
        ("1Min", "1m", 1.0, 20),
        ("1Min", "1m", 1.0, 200),
        ("5Min", "5m", 5.0, 20),
        ("5Min", "5m", 5.0, 200),
        ("15Min", "15m", 15.0, 20),
        ("1Hour", "1h", 60.0, 20),
    ] {
        rt.block_on(quota_scenario(timeframe, every, minutes, lookback));
    }
}
