//! Several accounts in one herd process, on a `herd sim` run as a separate process (it keeps
//! one account per API key): each instance's orders go to its own account and nowhere else,
//! each account has its own broker, positions and health, and market data costs the venue the
//! same bars requests however many accounts trade the same symbols.

// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{Herd, eventually, get_json, health, metric, sim_requests, venue_orders_of};

const BARS: &str = "GET /v2/stocks/bars";

/// `ids` as accounts whose keys are in `<ID>_KEY` and `<ID>_SECRET`, each trading one eager
/// momentum instance `<id>-m` on the same symbols.
fn config(ids: &[&str]) -> String {
    let mut toml = String::new();
    for id in ids {
        let upper = id.to_uppercase();
        toml.push_str(&format!(
            "[[accounts]]\nid = \"{id}\"\nkey_id_env = \"{upper}_KEY\"\nsecret_key_env = \"{upper}_SECRET\"\n\n"
        ));
    }
    for id in ids {
        let instance = common::eager_momentum(&format!("{id}-m"), "5m");
        toml.push_str(&instance.replace(
            "kind = \"momentum\"",
            &format!("kind = \"momentum\"\naccount = \"{id}\""),
        ));
    }
    toml
}

/// The API key account `id` presents to the simulator.
fn key(id: &str) -> String {
    format!("key-{id}")
}

/// herd started on `sim` with the accounts `ids`; the keys come from the environment only.
fn start(sim: &str, ids: &[&str]) -> Herd {
    let names: Vec<(String, String)> = ids
        .iter()
        .flat_map(|id| {
            let upper = id.to_uppercase();
            [
                (format!("{upper}_KEY"), key(id)),
                (format!("{upper}_SECRET"), key(id)),
            ]
        })
        .collect();
    let mut env: Vec<(&str, &str)> = names
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("ALPACA_BASE_URL", sim));
    env.push(("ALPACA_DATA_URL", sim));
    Herd::start(&config(ids), &env)
}

async fn ticked(herd: &Herd, instance: &str) {
    let series = format!(
        "herd_strategy_ticks_total{{instance=\"{instance}\",kind=\"momentum\",outcome=\"ok\"}}"
    );
    eventually("an ok tick", herd, || async {
        (metric(herd, &series).await >= 1.0).then_some(())
    })
    .await;
}

/// Real time, at a minute in which the eager instance buys on its first tick.
fn venue() -> Herd {
    Herd::start_sim(&["--speed", "1", "--start", common::BUYING_MINUTE])
}

#[tokio::test(flavor = "multi_thread")]
async fn each_instance_trades_its_own_account_and_nothing_else() {
    let sim = venue();
    let url = sim.sim.clone().unwrap();
    let herd = start(&url, &["alpha", "beta"]);

    // Which instance placed each order herd knows of.
    let placed_by = || async {
        let body = get_json(&format!("{}/orders?limit=1000", herd.http))
            .await
            .expect("orders");
        body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let cid = o["client_order_id"].as_str().unwrap().to_owned();
                (cid, o["instance"].as_str().unwrap().to_owned())
            })
            .collect::<HashMap<_, _>>()
    };
    let (alpha, beta) = eventually("orders at the venue in both accounts", &herd, || async {
        let alpha = venue_orders_of(&url, &key("alpha")).await;
        let beta = venue_orders_of(&url, &key("beta")).await;
        (!alpha.is_empty() && !beta.is_empty()).then_some((alpha, beta))
    })
    .await;
    let instances = placed_by().await;
    for (account, orders) in [("alpha", &alpha), ("beta", &beta)] {
        for order in orders {
            let cid = order["client_order_id"].as_str().unwrap();
            assert_eq!(
                instances.get(cid).map(String::as_str),
                Some(format!("{account}-m").as_str()),
                "order {cid} at the venue in account {account}"
            );
        }
    }
    // No account holds another's orders: nothing reached the simulator under a third key.
    assert!(venue_orders_of(&url, herd::app::SIM_KEY).await.is_empty());

    let h = health(&herd).await;
    let accounts: Vec<&str> = h["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["alpha", "beta"], "{h}");
    assert_eq!(h["broker"]["account"], "alpha", "{h}");
    let children: Vec<&str> = h["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        children.contains(&"broker-alpha") && children.contains(&"broker-beta"),
        "{h}"
    );

    // Once beta's orders fill, its positions are its instance's alone.
    let beta_positions = eventually("beta's fills in its positions", &herd, || async {
        let report = get_json(&format!("{}/positions?account=beta", herd.http)).await?;
        let filled = !report["instances"].as_array()?.is_empty();
        filled.then_some(report)
    })
    .await;
    let holders: Vec<&str> = beta_positions["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert!(holders.iter().all(|i| *i == "beta-m"), "{beta_positions}");
    let unknown = reqwest::get(format!("{}/positions?account=gamma", herd.http))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body = unknown.text().await.unwrap();
    assert!(
        body.contains("alpha, beta"),
        "the answer names the accounts: {body}"
    );
    // Each account's breakers are its own series.
    assert_eq!(
        metric(
            &herd,
            "herd_breaker_state{account=\"beta\",operation=\"submit_order\",state=\"closed\"}"
        )
        .await,
        1.0
    );
}

/// Bars requests the venue serves while one herd process with `accounts` ticks once per
/// instance on one bar set.
async fn bars_requests_with(accounts: &[&str]) -> u64 {
    let sim = venue();
    let url = sim.sim.clone().unwrap();
    let herd = start(&url, accounts);
    for id in accounts {
        ticked(&herd, &format!("{id}-m")).await;
    }
    sim_requests(&url, BARS).await
}

#[tokio::test(flavor = "multi_thread")]
async fn market_data_is_fetched_once_for_all_accounts() {
    let one = bars_requests_with(&["solo"]).await;
    let three = bars_requests_with(&["a", "b", "c"]).await;
    assert!(one >= 1);
    assert_eq!(
        three, one,
        "bars requests: {three} with three accounts, {one} with one"
    );
}
