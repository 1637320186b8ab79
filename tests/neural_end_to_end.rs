//! The neural kind in the real process: it holds until its model is trained off the actor
//! threads, then forecasts; the weights are saved under the data directory and a restart loads
//! them instead of training again.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Herd, eventually, get_json};
use serde_json::Value;

/// A tiny network (it trains in well under a second) on one symbol.
const NEURAL: &str = r#"
[sim]
speed = 600.0

[[strategies]]
id = "nf"
kind = "neural_forecast"
symbols = ["AAPL"]
every = "5m"
[strategies.params]
history = 120
lookback = 12
horizon = 3
hidden = 8
dense = 6
epochs = 5
batch_size = 16
learning_rate = 0.03
retrain_every = "1d"
"#;

const PINNED: &[(&str, &str)] = &[("HERD__SIM__START", common::BUYING_MINUTE)];

/// The instance's decision for AAPL once it carries a forecast (the model is in use).
async fn forecasting(herd: &Herd) -> Value {
    eventually("a forecast from the model", herd, || async {
        let body = get_json(&format!("{}/strategies", herd.http)).await?;
        let nf = body["strategies"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == "nf")?
            .clone();
        let decision = nf["last_decisions"].as_array()?.first()?.clone();
        decision["signal"].is_number().then_some(nf)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn it_trains_once_saves_the_model_and_a_restart_loads_it_instead_of_training() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Herd::start_in(dir.path(), NEURAL, PINNED);
    first.wait_log(|v| {
        v["event"] == "model_trained" && v["path"].as_str().unwrap_or("").contains("nf")
    });
    let nf = forecasting(&first).await;
    assert!(
        nf["report"]["models"][0]["trained_through"].is_string(),
        "{nf}"
    );
    first.signal("TERM");
    assert_eq!(first.wait_exit().code(), Some(0), "{}", first.dump());
    let saved = dir.path().join("data/models/nf/AAPL.safetensors");
    assert!(saved.is_file(), "no model at {}", saved.display());

    let mut second = Herd::start_in(dir.path(), NEURAL, PINNED);
    second.wait_log(|v| v["event"] == "model_loaded");
    forecasting(&second).await;
    assert!(
        !second.dump().contains("\"event\":\"model_trained\""),
        "a restart retrained\n{}",
        second.dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_model_it_holds_with_the_reason() {
    // Daily bars, and a simulator with ten days of history: never the 24 closes a training
    // needs, so the instance never has a model and every tick says why it holds.
    let config = NEURAL
        .replace("history = 120", "history = 24")
        .replace("retrain_every", "timeframe = \"1Day\"\nretrain_every");
    let env = [PINNED[0], ("HERD__SIM__HISTORY_DAYS", "10")];
    let herd = Herd::start(&config, &env);
    let nf = eventually("two ticks", &herd, || async {
        let body = get_json(&format!("{}/strategies", herd.http)).await?;
        let nf = body["strategies"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == "nf")?
            .clone();
        (nf["ticks"].as_u64()? >= 2).then_some(nf)
    })
    .await;
    assert_eq!(nf["last_decisions"][0]["action"], "hold", "{nf}");
    assert_eq!(
        nf["last_decisions"][0]["reason"], "model not trained",
        "{nf}"
    );
    assert_eq!(nf["last_error"], Value::Null, "{nf}");
}
