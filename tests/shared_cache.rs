//! The market-data cache replicas share through Redis, against a real redis-server
//! (`HERD_TEST_REDIS`, which `scripts/test` starts; a missing server fails the test) and a
//! `herd sim` run as a separate process: a second replica trading the same symbols reads the
//! first one's bars instead of asking the venue, three replicas cost the venue the bars
//! requests of one, and a Redis that does not answer leaves herd ready, fetching for itself,
//! and saying so.

// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Herd, eventually, health, metric, sim_requests};

const BARS: &str = "GET /v2/stocks/bars";

/// The test server's URL; a server that does not answer fails the test rather than skipping it.
fn redis_url() -> String {
    let url = std::env::var("HERD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str()).expect("HERD_TEST_REDIS is a Redis URL");
    let mut c = client.get_connection().unwrap_or_else(|e| {
        panic!("no Redis at {url} ({e}): run ./scripts/test, which starts one")
    });
    let pong: String = redis::cmd("PING").query(&mut c).expect("PING");
    assert_eq!(pong, "PONG");
    url
}

/// A key prefix no other test (or run) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("herd-test-{test}-{}-{nanos}", std::process::id())
}

fn momentum(id: &str) -> String {
    format!(
        "[[strategies]]\nid = \"{id}\"\nkind = \"momentum\"\nsymbols = [\"SPY\", \"QQQ\", \"IWM\"]\nevery = \"5m\"\n"
    )
}

const OK_TICK: &str = "herd_strategy_ticks_total";

async fn ticked(herd: &Herd, id: &str) {
    let series = format!("{OK_TICK}{{instance=\"{id}\",kind=\"momentum\",outcome=\"ok\"}}");
    eventually("an ok tick", herd, || async {
        (metric(herd, &series).await >= 1.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_replica_reads_the_bars_the_first_fetched() {
    let redis = redis_url();
    let prefix = unique_prefix("share");
    // Real time, 5 s after the 17:25 bar became final: the next is five minutes away, so both
    // replicas decide on the same bar set.
    let sim = Herd::start_sim(&["--speed", "1", "--start", "2026-03-02T17:30:20Z"]);
    let url = sim.sim.clone().unwrap();
    let shared = |key: &'static str| {
        let mut env = common::venue_env(&url, key);
        env.push(("HERD__REDIS__URL", redis.as_str()));
        env.push(("HERD__REDIS__PREFIX", prefix.as_str()));
        env
    };

    let first = Herd::start(&momentum("a"), &shared("key-a"));
    ticked(&first, "a").await;
    assert!(metric(&first, "herd_shared_cache_requests_total{outcome=\"miss\"}").await >= 3.0);
    let fetched = sim_requests(&url, BARS).await;
    assert!(fetched >= 1, "the first replica fetched its bars");

    let second = Herd::start(&momentum("b"), &shared("key-b"));
    ticked(&second, "b").await;
    assert_eq!(
        sim_requests(&url, BARS).await,
        fetched,
        "the second replica asked the venue for bars the first had shared"
    );
    assert_eq!(
        metric(&second, "herd_shared_cache_requests_total{outcome=\"hit\"}").await,
        3.0
    );
    assert_eq!(health(&second).await["shared_cache"]["state"], "ok");
}

/// Bars requests the venue serves while `replicas` herd processes, started one right after
/// the other on one simulator and one Redis prefix, each tick once on the same bar set.
async fn bars_requests_for(replicas: usize, redis: &str) -> u64 {
    let prefix = unique_prefix(&format!("replicas{replicas}"));
    let sim = Herd::start_sim(&["--speed", "1", "--start", "2026-03-02T17:30:20Z"]);
    let url = sim.sim.clone().unwrap();
    let keys: Vec<String> = (0..replicas).map(|r| format!("key-{r}")).collect();
    let herds: Vec<Herd> = keys
        .iter()
        .enumerate()
        .map(|(r, key)| {
            let mut env = common::venue_env(&url, key);
            env.push(("HERD__REDIS__URL", redis));
            env.push(("HERD__REDIS__PREFIX", prefix.as_str()));
            Herd::start(&momentum(&format!("r{r}")), &env)
        })
        .collect();
    for (r, herd) in herds.iter().enumerate() {
        ticked(herd, &format!("r{r}")).await;
    }
    sim_requests(&url, BARS).await
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_cost_the_venue_the_bars_requests_of_one() {
    let redis = redis_url();
    let one = bars_requests_for(1, &redis).await;
    let three = bars_requests_for(3, &redis).await;
    assert!(one >= 1);
    assert_eq!(
        three, one,
        "bars requests: {three} with three replicas, {one} with one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_redis_leaves_herd_ready_fetching_for_itself_and_degraded() {
    // Port 1 on loopback: nothing listens, every connection is refused at once.
    let env = [
        ("HERD__REDIS__URL", "redis://127.0.0.1:1"),
        ("HERD__SIM__START", common::BUYING_MINUTE),
    ];
    let herd = Herd::start(&format!("[sim]\nspeed = 600.0\n\n{}", momentum("m")), &env);
    let sim = herd.sim.clone().unwrap();
    ticked(&herd, "m").await;
    assert!(
        sim_requests(&sim, BARS).await >= 1,
        "bars came from the venue"
    );
    let ready = reqwest::get(format!("{}/readyz", herd.http)).await.unwrap();
    assert_eq!(ready.status(), 200, "readiness does not depend on Redis");
    let h = health(&herd).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["shared_cache"]["state"], "degraded", "{h}");
    assert!(h["shared_cache"]["last_error"].is_string(), "{h}");
    assert!(metric(&herd, "herd_shared_cache_requests_total{outcome=\"error\"}").await >= 1.0);
    assert_eq!(metric(&herd, "herd_shared_cache_up").await, 0.0);
}
