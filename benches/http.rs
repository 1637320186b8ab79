//! Load on the ops endpoints of a herd hosting 1,000 strategy instances: `/livez`, `/readyz`
//! and `/metrics` under `wrk` (Debian's `wrk` package), against the release binary on loopback.
//! wrk shares the machine's cores with herd and its embedded simulator, so the figures are a
//! floor. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo bench --bench http`

// A benchmark is a test harness: a failed setup step panics with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::Command;

use common::{Herd, eventually, metric};
use support::symbol;

const INSTANCES: usize = 1000;
const SYMBOLS: usize = 500;
const SECONDS: &str = "10s";
const OPENMETRICS: &str =
    "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3";

/// 1,000 momentum instances over 500 symbols (five each), rate limits off so the load is
/// served, not refused.
fn config() -> String {
    let mut c = String::from(
        "[http.rate_limit]\nprobes_per_second = 0\nreads_per_second = 0\n\n[sim]\nspeed = 100.0\n",
    );
    for i in 0..INSTANCES {
        let symbols: Vec<String> = (0..5)
            .map(|k| format!("\"{}\"", symbol((i * 5 + k) % SYMBOLS)))
            .collect();
        c.push_str(&format!(
            "\n[[strategies]]\nid = \"m{i}\"\nkind = \"momentum\"\nsymbols = [{}]\nevery = \"5m\"\n",
            symbols.join(", ")
        ));
    }
    c
}

/// What wrk reported: requests per second, and latency percentiles in milliseconds.
struct Run {
    rps: f64,
    p50: f64,
    p99: f64,
}

fn millis(text: &str) -> f64 {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap());
    let n: f64 = number.parse().unwrap();
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        other => panic!("unknown wrk unit {other}"),
    }
}

fn wrk(url: &str, threads: u32, connections: u32, header: Option<&str>) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        SECONDS,
        "--latency",
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk ({e}): apt-get install wrk"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("Non-2xx"),
        "wrk on {url}:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {prefix} in wrk's output:\n{text}"))
    };
    Run {
        rps: field("Requests/sec:").parse().unwrap(),
        p50: millis(&field("50%")),
        p99: millis(&field("99%")),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let herd = Herd::start(&config(), &[]);
    let base = herd.http.clone();
    runtime.block_on(eventually("every instance ticked", &herd, || async {
        (metric(&herd, "herd_strategy_ticks_total").await >= INSTANCES as f64).then_some(())
    }));
    let size = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .header("accept", "application/openmetrics-text")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len()
    });
    println!(
        "/metrics with {INSTANCES} instances: {} KB (OpenMetrics)\n",
        size / 1024
    );
    println!("| endpoint | wrk threads × connections | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (path, threads, connections, header, label) in [
        ("/livez", 2, 64, None, "`/livez`"),
        ("/readyz", 2, 64, None, "`/readyz`"),
        (
            "/metrics",
            1,
            1,
            Some(OPENMETRICS),
            "`/metrics` (OpenMetrics, one client)",
        ),
        (
            "/metrics",
            1,
            1,
            None,
            "`/metrics` (classic text, one client)",
        ),
        (
            "/metrics",
            2,
            8,
            Some(OPENMETRICS),
            "`/metrics` (OpenMetrics, 8 clients)",
        ),
    ] {
        let run = wrk(&format!("{base}{path}"), threads, connections, header);
        println!(
            "| {label} | {threads} × {connections} | {:.0} | {:.2} | {:.2} |",
            run.rps, run.p50, run.p99
        );
    }
    herd.signal("TERM");
}
