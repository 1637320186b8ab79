//! What an operator's log filter selects in the real process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Herd;

/// Two instances that hold on every tick, at 600×: a tick every 100 ms of real time.
fn two_holding_instances() -> String {
    let mut config = "[sim]\nspeed = 600.0\n".to_owned();
    for (id, symbol) in [("watched", "SPY"), ("other", "QQQ")] {
        config.push_str(&format!(
            "\n[[strategies]]\nid = \"{id}\"\nkind = \"momentum\"\nsymbols = [\"{symbol}\"]\n\
             every = \"1m\"\n[strategies.params]\nthreshold = 0.99\n"
        ));
    }
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_naming_one_instances_tick_selects_all_its_debug_lines_and_no_others() {
    let env = [("HERD__LOG__LEVEL", "info,[tick{instance=watched}]=debug")];
    let mut herd = Herd::start(&two_holding_instances(), &env);
    // The line that opens a tick is the tick span's too, not only the lines inside it.
    for _ in 0..3 {
        herd.wait_log(|v| v["message"] == "tick started" && v["instance"] == "watched");
    }
    herd.wait_log(|v| v["level"] == "DEBUG" && v["instance"] == "watched" && v["symbol"] == "SPY");
    // The other instance ticks as often: its lines were there to be selected.
    common::eventually("the other instance ticks", &herd, || async {
        let other = common::strategy(&herd, "other").await?;
        (other["ticks"].as_u64()? >= 3).then_some(())
    })
    .await;
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let log = herd.dump();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines
            .iter()
            .all(|v| v["level"] != "DEBUG" || v["instance"] == "watched"),
        "a debug line outside the watched instance's ticks:\n{log}"
    );
}
