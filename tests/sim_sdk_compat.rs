//! The official Python SDK (alpaca-py) against the simulator: runs
//! `$HERD_TEST_PYTHON tests/sdk/alpaca_py_compat.py <base_url>` (default `python3`) and
//! requires it to pass.
//!
//! alpaca-py must be installed first: `scripts/test` installs it into a virtualenv and sets
//! `HERD_TEST_PYTHON`. Without it this test FAILS, so a missing SDK can never pass silently.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim_support/mod.rs"]
mod support;

use std::process::Command;

use support::{frozen, start};

const INSTALL: &str = "scripts/test (or: python3 -m pip install -r tests/sdk/requirements.txt)";

/// The interpreter that has alpaca-py: `HERD_TEST_PYTHON`, as `scripts/test` sets it.
fn python() -> String {
    std::env::var("HERD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[actix_web::test]
async fn alpaca_py_works_against_the_simulator_unchanged() {
    let probe = Command::new(python())
        .args(["-c", "import alpaca, sys; print(alpaca.__file__)"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "alpaca-py is not importable ({}): run `{INSTALL}` before the tests",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ),
        Err(e) => panic!("python3 is not available ({e}): install Python 3 and run `{INSTALL}`"),
    }
    let cfg = herd::sim::SimConfig {
        max_page_size: 100,
        ..frozen()
    };
    let sim = start(cfg).await;
    let url = sim.base_url();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/alpaca_py_compat.py");
    // The script blocks; run it off the runtime thread so nothing else is held up.
    let out = actix_web::rt::task::spawn_blocking(move || {
        Command::new(python()).arg(script).arg(url).output()
    })
    .await
    .expect("joined")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    sim.stop().await;
    assert!(
        out.status.success(),
        "alpaca-py compatibility failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
