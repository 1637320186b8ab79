//! All five strategy kinds in one process, trading overlapping symbols on one account: each
//! ticks without error, each instance's ledger is exactly the fills it received, and the
//! ledgers together are what the venue says the account holds.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Herd, eventually, get_json};
use rust_decimal::Decimal;
use serde_json::Value;

/// Momentum and mean reversion on SPY at hair triggers (mean reversion also shorts), an
/// optimizer holding SPY too, a tiny neural forecaster on SPY, and a risk manager with a
/// hair-trigger stop closing the others' positions as theirs: all trade within moments and
/// their positions net at the venue.
const KINDS: &str = r#"
[sim]
speed = 600.0

[[strategies]]
id = "mom"
kind = "momentum"
symbols = ["SPY", "QQQ"]
every = "5m"
[strategies.params]
threshold = 0.0001
position_size = 3

[[strategies]]
id = "mr"
kind = "mean_reversion"
symbols = ["SPY", "GLD"]
every = "5m"
[strategies.params]
lookback = 5
entry_z = 0.3
exit_z = 0.1
position_size = 2

[[strategies]]
id = "opt"
kind = "portfolio_optimizer"
symbols = ["SPY", "GLD", "TLT"]
every = "1d"
[strategies.params]
method = "min_variance"
lookback = 10
capital = 5000

[[strategies]]
id = "nf"
kind = "neural_forecast"
symbols = ["SPY", "AAPL"]
every = "5m"
[strategies.params]
history = 60
lookback = 10
horizon = 3
hidden = 6
dense = 4
epochs = 3
batch_size = 16
learning_rate = 0.03
confidence_floor = 0.5

[[strategies]]
id = "rm"
kind = "risk_manager"
every = "5m"
[strategies.params]
guard = ["mom", "mr", "nf"]
window = 10
min_observations = 5
stop_loss = 0.0005
"#;

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or_else(|_| panic!("not a decimal: {v}"))
}

/// Per (instance, symbol), the signed quantity of every fill herd recorded.
fn filled(orders: &[Value]) -> BTreeMap<(String, String), Decimal> {
    let mut out: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for o in orders {
        let qty = dec(&o["filled_qty"]);
        let signed = if o["side"] == "buy" { qty } else { -qty };
        let key = (
            o["instance"].as_str().unwrap().to_owned(),
            o["symbol"].as_str().unwrap().to_owned(),
        );
        *out.entry(key).or_default() += signed;
    }
    out.retain(|_, q| !q.is_zero());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn all_five_kinds_trade_one_account_and_every_ledger_matches_its_fills_and_the_venue() {
    // The simulator runs 600x, so ticks come every half second: lift the request quotas (real
    // time), which this test is not about.
    let unlimited = [
        ("HERD__SIM__START", common::BUYING_MINUTE),
        ("HERD__SIM__RATE_LIMIT", "0"),
        ("HERD__BROKER__LIMITER__REQUESTS_PER_MINUTE", "100000"),
        ("HERD__BROKER__DATA_LIMITER__REQUESTS_PER_MINUTE", "100000"),
    ];
    let herd = Herd::start(KINDS, &unlimited);
    let base = herd.http.clone();
    // Both kinds have traded, and at one reading nothing is in flight and everything agrees.
    let (orders, positions) = eventually("both kinds traded and reconcile", &herd, || async {
        let orders = common::herd_orders(&herd).await;
        let traded = |id: &str| {
            orders
                .iter()
                .any(|o| o["instance"] == id && o["state"] == "filled")
        };
        // Refused, rejected and canceled orders are final too; only working ones move ledgers.
        let working = |o: &Value| {
            ["submitting", "open", "unknown"].contains(&o["state"].as_str().unwrap_or(""))
        };
        // The risk manager's stops are the guarded instances' orders, with "stop loss" reasons.
        let stopped = orders.iter().any(|o| {
            o["reason"].as_str().unwrap_or("").starts_with("stop loss") && o["state"] == "filled"
        });
        let all = traded("mom") && traded("mr") && traded("opt") && stopped;
        if !all || orders.iter().any(working) {
            return None;
        }
        // `reconciled` means every symbol was compared and matched; the orders read again
        // after it must be the same fills, or an order came and filled in between.
        let positions = get_json(&format!("{base}/positions")).await?;
        let again = common::herd_orders(&herd).await;
        let settled = filled(&again) == filled(&orders) && !again.iter().any(working);
        (positions["reconciled"] == true && settled).then_some((orders, positions))
    })
    .await;

    let ledgers: BTreeMap<(String, String), Decimal> = positions["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let key = (
                h["instance"].as_str().unwrap().to_owned(),
                h["symbol"].as_str().unwrap().to_owned(),
            );
            (key, dec(&h["qty"]))
        })
        .filter(|(_, q)| !q.is_zero())
        .collect();
    assert_eq!(
        ledgers,
        filled(&orders),
        "each ledger is its own fills\n{positions}"
    );

    let mut herd_total: BTreeMap<String, Decimal> = BTreeMap::new();
    for ((_, symbol), q) in &ledgers {
        *herd_total.entry(symbol.clone()).or_default() += q;
    }
    herd_total.retain(|_, q| !q.is_zero());
    let account: BTreeMap<String, Decimal> = positions["account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["symbol"].as_str().unwrap().to_owned(), dec(&p["qty"])))
        .filter(|(_, q)| !q.is_zero())
        .collect();
    assert_eq!(
        herd_total, account,
        "the ledgers sum to the venue's positions\n{positions}"
    );

    let strategies = get_json(&format!("{base}/strategies")).await.unwrap();
    let kinds: Vec<&str> = strategies["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "momentum",
            "mean_reversion",
            "portfolio_optimizer",
            "neural_forecast",
            "risk_manager"
        ]
    );
    for s in strategies["strategies"].as_array().unwrap() {
        assert_eq!(s["last_error"], Value::Null, "{s}");
        assert!(s["ticks"].as_u64().unwrap() >= 1, "{s}");
        assert!(s["params"].is_object(), "{s}");
        assert!(!s["last_decisions"].as_array().unwrap().is_empty(), "{s}");
    }
    let rm = strategies["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "rm")
        .unwrap();
    assert!(rm["report"]["active"].is_array(), "{rm}");
    assert!(
        rm["report"]["figures"]["var_usd"].is_number() || rm["report"]["no_figures"].is_string(),
        "{rm}"
    );

    // A stop is the guarded instance's order, under an id whose name also names the risk
    // manager: it never takes the id of the instance's own decision on the same bar, symbol and
    // side (which would make it a repeat of that decision, never sent).
    let stops: Vec<&Value> = orders
        .iter()
        .filter(|o| o["reason"].as_str().unwrap_or("").starts_with("stop loss"))
        .collect();
    for o in stops {
        let text = |k: &str| o[k].as_str().unwrap().to_owned();
        let bar: chrono::DateTime<chrono::Utc> = text("decided_on").parse().unwrap();
        let own = format!(
            "{}|{}|{}|{}",
            text("instance"),
            text("symbol"),
            text("side"),
            bar.timestamp_millis()
        );
        let leg = if text("reason").ends_with("(opening leg)") {
            "|leg2"
        } else {
            ""
        };
        let expected = common::client_order_id(&text("instance"), &format!("{own}|by|rm{leg}"));
        assert_eq!(text("client_order_id"), expected, "{o}");
        let taken = common::client_order_id(&text("instance"), &format!("{own}{leg}"));
        assert_ne!(text("client_order_id"), taken, "{o}");
    }
}

/// A risk manager whose VaR limit any losing book breaches, set to halt.
const HALTING: &str = r#"
[sim]
speed = 600.0

[[strategies]]
id = "mom"
kind = "momentum"
symbols = ["SPY", "QQQ", "IWM"]
every = "5m"
[strategies.params]
threshold = 0.0001
position_size = 3

[[strategies]]
id = "rm"
kind = "risk_manager"
every = "5m"
[strategies.params]
guard = ["mom"]
timeframe = "5Min"
window = 12
min_observations = 5
max_var = 0.01
breach_action = "halted"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_breached_risk_manager_halts_trading_and_health_says_why() {
    let env = [
        ("HERD__SIM__START", common::BUYING_MINUTE),
        ("HERD__SIM__RATE_LIMIT", "0"),
        ("HERD__BROKER__LIMITER__REQUESTS_PER_MINUTE", "100000"),
        ("HERD__BROKER__DATA_LIMITER__REQUESTS_PER_MINUTE", "100000"),
    ];
    let herd = Herd::start(HALTING, &env);
    let base = herd.http.clone();
    let health = eventually("trading halted by the risk manager", &herd, || async {
        let h: Value = reqwest::get(format!("{base}/health"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (h["status"] == "halted").then_some(h)
    })
    .await;
    let why = health["halted"].as_str().unwrap();
    assert!(why.starts_with("rm: risk limits breached"), "{health}");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herd_trading_state{state=\"halted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herd_risk_alerts_total{instance=\"rm\",alert=\"max_var\"} 1"),
        "raised once, however long it stands\n{metrics}"
    );
    // Risk families appear only once a risk manager has run: lint them too.
    common::assert_promtool_accepts(&metrics);
}
