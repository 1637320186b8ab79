//! A condition that repeats is logged when it starts and then summarized, never once per
//! occurrence: an over-eager schedule (every instance's ticks overlapping all the time) skips
//! thousands of ticks, all counted, and the log stays small.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Herd;

#[tokio::test(flavor = "multi_thread")]
async fn an_over_eager_schedule_is_counted_not_logged_tick_by_tick() {
    // 50 instances, each asked to tick every simulated second: at 600× that is every 1.7 ms of
    // real time, far faster than a tick can finish.
    let mut config = format!(
        "[sim]\nspeed = 600.0\nstart = \"{}\"\n",
        common::BUYING_MINUTE
    );
    for i in 0..50 {
        config.push_str(&format!(
            "\n[[strategies]]\nid = \"eager{i}\"\nkind = \"momentum\"\nsymbols = [\"SPY\", \"QQQ\"]\nevery = \"1s\"\n"
        ));
    }
    let mut herd = Herd::start(&config, &[]);
    let started = Instant::now();
    let count = common::eventually("thousands of skipped ticks", &herd, || async {
        let text = common::try_metrics_text(&herd).await?;
        let n = common::sample_labelled(
            &text,
            "herd_strategy_ticks_total",
            "outcome=\"overlap_skipped\"",
        );
        (n >= 2000.0).then_some(n)
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let log = herd.log.lock().unwrap().clone();
    let skip_lines = log
        .iter()
        .filter(|l| l.contains("\"event\":\"ticks_skipped\""))
        .count();
    // Started once; a summary at most once a minute after that.
    let allowed = 1 + (seconds / 60.0).ceil() as usize;
    assert!(
        (1..=allowed).contains(&skip_lines),
        "{count} skipped ticks in {seconds:.1} s wrote {skip_lines} skip lines (allowed {allowed})"
    );
    // Everything else herd says in that time: start-up, one line per instance start and stop,
    // the orders it placed. Bounded, whatever the number of skipped ticks.
    assert!(
        log.len() < 50 * 4 + 200,
        "{} log lines for {count} skipped ticks in {seconds:.1} s",
        log.len()
    );
    let _ = Duration::ZERO;
}
