//! Spawning the real `herd` binary for end-to-end tests: loopback port 0 everywhere, addresses
//! learned from its JSON log lines, SIGTERM through `kill`.
#![allow(dead_code)]
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod pg;

/// How long a test waits for something herd should do within moments. A wait limit, not a
/// performance assertion: reaching it means the behaviour is broken.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Herd {
    child: Child,
    lines: Receiver<Value>,
    /// Every log line so far, printed when a test fails.
    pub log: Arc<Mutex<Vec<String>>>,
    pub http: String,
    pub sim: Option<String>,
    /// The stdout and stderr readers, joined once the process has exited.
    readers: Vec<std::thread::JoinHandle<()>>,
    /// The working directory (config file, data directory), removed on drop unless it was
    /// lent by the test (`start_in`).
    _dir: Option<tempfile::TempDir>,
}

impl Herd {
    /// Starts `herd run --config <file with config_toml>` on 127.0.0.1:0.
    pub fn start(config_toml: &str, env: &[(&str, &str)]) -> Herd {
        let mut herd = Herd::launch(&["run"], config_toml, env);
        let listening = herd.wait_log(|v| v["message"] == "http listening");
        herd.http = format!("http://{}", listening["addr"].as_str().expect("addr"));
        herd.sim = herd
            .seen(|v| v["message"] == "simulator listening")
            .map(|v| format!("http://{}", v["addr"].as_str().unwrap_or_default()));
        herd
    }

    /// Starts `herd sim --port 0 <args>` alone; its address is in `sim`.
    pub fn start_sim(args: &[&str]) -> Herd {
        let mut all = vec!["sim", "--port", "0"];
        all.extend_from_slice(args);
        let mut sim = Herd::launch(&all, "", &[]);
        let listening = sim.wait_log(|v| v["message"] == "simulator listening");
        sim.sim = Some(format!(
            "http://{}",
            listening["addr"].as_str().expect("addr")
        ));
        sim
    }

    /// Starts `herd run` like [`Herd::start`], working in `dir`, which outlives the process: a
    /// second start in it finds what the first left (the data directory).
    pub fn start_in(dir: &std::path::Path, config_toml: &str, env: &[(&str, &str)]) -> Herd {
        let mut herd = Herd::launch_in(dir, None, &["run"], config_toml, env);
        let listening = herd.wait_log(|v| v["message"] == "http listening");
        herd.http = format!("http://{}", listening["addr"].as_str().expect("addr"));
        herd
    }

    /// Starts `herd <args> --config <file>` in `dir` (which outlives it) without waiting.
    pub fn launch_in_dir(
        dir: &std::path::Path,
        args: &[&str],
        config_toml: &str,
        env: &[(&str, &str)],
    ) -> Herd {
        Herd::launch_in(dir, None, args, config_toml, env)
    }

    /// Starts `herd <args> --config <file>` without waiting for anything.
    pub fn launch(args: &[&str], config_toml: &str, env: &[(&str, &str)]) -> Herd {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        Herd::launch_in(&path, Some(dir), args, config_toml, env)
    }

    fn launch_in(
        path: &std::path::Path,
        owned: Option<tempfile::TempDir>,
        args: &[&str],
        config_toml: &str,
        env: &[(&str, &str)],
    ) -> Herd {
        let dir = path;
        let config = dir.join("test.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
        cmd.args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERD__HTTP__BIND", "127.0.0.1")
            .env("HERD__HTTP__PORT", "0")
            .env("HERD__LOG__LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn herd");
        let (tx, lines) = channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        let out = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let sink = Arc::clone(&log);
        let err = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(format!("stderr: {line}"));
            }
        });
        Herd {
            child,
            lines,
            log,
            http: String::new(),
            sim: None,
            readers: vec![out, err],
            _dir: owned,
        }
    }

    /// A log line already written that matches `pred`, consumed or not.
    pub fn seen(&self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| pred(v))
    }

    /// The next log event matching `pred` (events already consumed are not seen again).
    pub fn wait_log(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no matching log line within {PATIENCE:?}\n{}", self.dump())
                }
                Err(RecvTimeoutError::Disconnected) => panic!("herd exited early\n{}", self.dump()),
            }
        }
    }

    pub fn dump(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, and for everything it wrote to be read.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "herd did not exit within {PATIENCE:?}\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Herd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it returns `Some`, or fails the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, herd: &Herd, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}\n{}",
            herd.dump()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What Prometheus sends: OpenMetrics preferred, the classic text format accepted.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
                                     text/plain;version=0.0.4;q=0.3,*/*;q=0.1";

/// Runs Prometheus' own linter, `promtool check metrics`, on a classic-format exposition and
/// fails with its findings. promtool comes from Debian's `prometheus` package, which
/// `./scripts/test` installs; a missing promtool fails the test rather than skipping it.
pub fn assert_promtool_accepts(text: &str) {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}); install Debian's `prometheus` or run ./scripts/test")
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\n--- exposition ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// Checks OpenMetrics text line by line: metadata, samples (`name{labels} value`), `# EOF` last.
pub fn assert_openmetrics(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "exposition must end with # EOF"
    );
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let kind = meta.split(' ').next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT"].contains(&kind),
                "bad metadata line: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line: {line}"));
        assert!(value.parse::<f64>().is_ok(), "bad sample value in: {line}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in: {line}");
        }
    }
}

/// `GET` a JSON document from herd or the simulator's control plane.
pub async fn get_json(url: &str) -> Option<serde_json::Value> {
    let response = reqwest::get(url).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// One instance's entry in herd's `/strategies`, if herd answers and lists it.
pub async fn strategy(herd: &Herd, id: &str) -> Option<serde_json::Value> {
    let body = get_json(&format!("{}/strategies", herd.http)).await?;
    body["strategies"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
}

/// The `client_order_id` herd derives from a decision's `name` for `instance`: a UUIDv5 of the
/// name in herd's namespace, after the instance's first 16 characters. Ids persist at the
/// venue, so this is a contract: a test that needs it says which name it expects.
pub fn client_order_id(instance: &str, name: &str) -> String {
    let namespace = uuid::Uuid::from_u128(0x6c2d_0e3a_8f4b_4c1e_9d7a_2b5e_1f30_7a44);
    let hash = uuid::Uuid::new_v5(&namespace, name.as_bytes())
        .simple()
        .to_string();
    let prefix: String = instance.chars().take(16).collect();
    format!("{prefix}-{}", &hash[..24])
}

/// Sets simulator faults (`{"orders": {...}}`, see README "Faults"); panics if refused.
pub async fn set_faults(sim: &str, faults: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{sim}/__sim/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "faults refused: {}",
        r.text().await.unwrap_or_default()
    );
}

pub async fn clear_faults(sim: &str) {
    let r = reqwest::Client::new()
        .delete(format!("{sim}/__sim/faults"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Requests the simulator served on `route` (e.g. `GET /v2/stocks/bars`).
pub async fn sim_requests(sim: &str, route: &str) -> u64 {
    let stats = get_json(&format!("{sim}/__sim/stats"))
        .await
        .expect("sim stats");
    stats["routes"][route]["requests"].as_u64().unwrap_or(0)
}

/// Waits until a request the simulator delays (its `latency` fault) has arrived there: the
/// moment a test knows an order is on the wire, not merely counted in flight by herd (which
/// counts it from before its journal write and its lease fence).
pub async fn wait_for_a_delayed_request(herd: &Herd, sim: &str) {
    eventually("a request held by the venue's latency", herd, || async {
        let stats = get_json(&format!("{sim}/__sim/stats")).await?;
        (stats["faults"]["delayed"].as_u64()? >= 1).then_some(())
    })
    .await;
}

/// A metric from `/metrics`: `name` sums every series of that name, `name{labels}` is the one
/// series with exactly those labels (0 when absent).
pub async fn metric(herd: &Herd, wanted: &str) -> f64 {
    sample(&metrics_text(herd).await, wanted)
}

/// One scrape of herd's `/metrics`, for figures that must come from the same instant.
pub async fn metrics_text(herd: &Herd) -> String {
    reqwest::get(format!("{}/metrics", herd.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One scrape of herd's `/metrics`, or `None` while herd does not answer (it may be exiting).
pub async fn try_metrics_text(herd: &Herd) -> Option<String> {
    reqwest::get(format!("{}/metrics", herd.http))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// `herd journal export` in `dir` (where `test.toml` is); returns its exit code, standard
/// output and standard error.
pub fn journal_export(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(["journal", "export", "--config", "test.toml"])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `wanted` in a scrape, as [`metric`] reads it.
pub fn sample(text: &str, wanted: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            *series == wanted
                || (!wanted.contains('{') && series.starts_with(&format!("{wanted}{{")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// The sum of every series of `name` in a scrape whose labels include `label` (`key="value"`),
/// whatever its other labels.
pub fn sample_labelled(text: &str, name: &str, label: &str) -> f64 {
    let prefix = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.contains(label))
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// `/health`'s body whatever its status (it answers 503 while halted or draining).
pub async fn health(herd: &Herd) -> serde_json::Value {
    reqwest::get(format!("{}/health", herd.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The environment that points herd at a simulator run as a separate process (`url`), as the
/// account of API key `key`.
pub fn venue_env<'a>(url: &'a str, key: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ALPACA_API_KEY", key),
        ("ALPACA_SECRET_KEY", "secret"),
        ("ALPACA_BASE_URL", url),
        ("ALPACA_DATA_URL", url),
    ]
}

/// herd's own orders (`/orders`), newest first.
pub async fn herd_orders(herd: &Herd) -> Vec<serde_json::Value> {
    let body = get_json(&format!("{}/orders?limit=1000", herd.http))
        .await
        .expect("orders");
    body["orders"].as_array().cloned().unwrap_or_default()
}

/// The simulator's orders for herd's embedded account, every status.
pub async fn venue_orders(sim: &str) -> Vec<serde_json::Value> {
    venue_orders_of(sim, herd::app::SIM_KEY).await
}

/// The simulator's orders of the account of API key `key`, every status.
pub async fn venue_orders_of(sim: &str, key: &str) -> Vec<serde_json::Value> {
    reqwest::Client::new()
        .get(format!("{sim}/v2/orders?status=all&limit=500"))
        .header("APCA-API-KEY-ID", key)
        .header("APCA-API-SECRET-KEY", key)
        .send()
        .await
        .unwrap()
        .json::<Vec<serde_json::Value>>()
        .await
        .unwrap()
}

/// A `momentum` instance `id` on SPY, QQQ and IWM that trades one share on almost any move,
/// ticking `every` (venue time): the quickest way to make herd place orders in a test.
pub fn eager_momentum(id: &str, every: &str) -> String {
    format!(
        r#"
[[strategies]]
id = "{id}"
kind = "momentum"
symbols = ["SPY", "QQQ", "IWM"]
every = "{every}"
[strategies.params]
threshold = 0.0001
position_size = 1
"#
    )
}

/// [`eager_momentum`] on the embedded simulator at 600×: the first ticks already trade.
pub fn fast_eager_momentum(id: &str) -> String {
    format!("[sim]\nspeed = 600.0\n{}", eager_momentum(id, "5m"))
}

/// A simulated minute in which the eager momentum instance buys on its first ticks. The
/// simulator otherwise starts at the wall-clock minute, and in a falling one the first
/// decisions are all holds: a test that needs an order pins this.
pub const BUYING_MINUTE: &str = "2026-03-02T17:30:00Z";

/// An admin token for tests (32 bytes, over the 16-byte minimum).
pub const ADMIN_TOKEN: &str = "an-admin-token-of-32-characters!";

/// One momentum instance on SPY with an hour-long schedule: it ticks once at start, then only
/// when told.
pub const ONE_QUIET_INSTANCE: &str = r#"
[sim]
speed = 60.0

[[strategies]]
id = "mom"
kind = "momentum"
symbols = ["SPY"]
every = "1h"
"#;
