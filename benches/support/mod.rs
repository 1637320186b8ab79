//! What the end-to-end benchmarks share: made-up tickers, a simulator without a quota, and a
//! process's CPU time and resident memory from /proc.
// Each bench uses part of it.
#![allow(dead_code)]

use crate::common::Herd;

/// Three-letter tickers: the simulator derives a market for any symbol.
pub fn symbol(i: usize) -> String {
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    format!("{}{}{}", letter(i / 676), letter(i / 26), letter(i))
}

/// `herd sim` as a separate process at `speed` from `start`, its rate limit off (what is
/// measured is the other side); returns it and its URL.
pub fn sim_without_quota(speed: &str, start: &str) -> (Herd, String) {
    let mut sim = Herd::launch(
        &["sim", "--port", "0", "--speed", speed, "--start", start],
        "[sim]\nrate_limit = 0\n",
        &[],
    );
    let listening = sim.wait_log(|v| v["message"] == "simulator listening");
    let url = format!("http://{}", listening["addr"].as_str().unwrap());
    (sim, url)
}

/// `pid`'s CPU seconds so far (user + system) and resident memory in MiB, from /proc.
pub fn usage(pid: u32) -> (f64, f64) {
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
