//! Training time and memory of one neural_forecast model at the default settings (the seed's
//! network: two LSTM layers of 50 units, a 60-bar window, 50 epochs) on 500 closes, and the
//! time of one forecast. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo bench --bench training`

use std::time::Instant;

use chrono::Utc;
use herd::strategy::neural::NeuralForecastParams;
use herd::strategy::neural::model::train;

/// Peak resident memory of this process so far, from /proc (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    // As `herd` itself does (see its main): one tensor thread per job, and no /proc/cpuinfo
    // read per operation. SAFETY: first thing in main, no other thread yet.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let params = NeuralForecastParams::default();
    let cfg = params.net();
    // A random walk with a slow cycle, like 500 five-minute closes of a stock.
    let closes: Vec<f64> = (0..params.history)
        .map(|i| {
            let t = i as f64;
            100.0 + 3.0 * (t / 40.0).sin() + 0.5 * (t * 1.7).sin() + 0.01 * t
        })
        .collect();
    let before = peak_rss_mb().unwrap_or(0.0);
    println!("| run | training | train loss | forecast | peak RSS |");
    println!("|---|---|---|---|---|");
    for run in 1..=3 {
        let started = Instant::now();
        let Ok(model) = train(&closes, Utc::now(), &cfg) else {
            eprintln!("training failed");
            std::process::exit(1);
        };
        let trained = started.elapsed();
        let forecasts = 200;
        let started = Instant::now();
        for _ in 0..forecasts {
            let _ = model.predict(&closes);
        }
        let forecast = started.elapsed() / forecasts;
        println!(
            "| {run} | {:.2} s | {:.5} | {:.3} ms | {:.0} MB (+{:.0} MB) |",
            trained.as_secs_f64(),
            model.train_loss,
            forecast.as_secs_f64() * 1e3,
            peak_rss_mb().unwrap_or(0.0),
            peak_rss_mb().unwrap_or(0.0) - before
        );
    }
}
