//! The shared cache against a real redis-server (`HERD_TEST_REDIS`, which `scripts/test`
//! starts): two replicas' claims and waits, depth and bar-set boundaries, settings errors.

use chrono::TimeZone;

use super::*;
use crate::domain::{Session, Timeframe};

fn settings(prefix: &str, fetch_lock: Duration) -> RedisSettings {
    RedisSettings {
        url: Secret::new(
            &std::env::var("HERD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        prefix: prefix.into(),
        timeout: HumanDuration(Duration::from_secs(2)),
        fetch_lock: HumanDuration(fetch_lock),
    }
}

/// Two replicas' views of one Redis, under a prefix of this test's own.
fn replicas(test: &str, fetch_lock: Duration) -> (SharedBars, SharedBars) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("herd-unit-{test}-{}-{nanos}", std::process::id());
    let one =
        || SharedBars::new(&settings(&prefix, fetch_lock), "iex", "all", Metrics::new()).unwrap();
    (one(), one())
}

fn symbols(names: &[&str]) -> Vec<Symbol> {
    names.iter().map(|n| Symbol::parse(n).unwrap()).collect()
}

const SERIES: Series = Series {
    timeframe: Timeframe::Minutes(5),
    session: Session::Regular,
};

fn newest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 17, 25, 0).unwrap()
}

fn bars(n: usize) -> Arc<[Bar]> {
    (0..n)
        .map(|i| Bar {
            time: newest() - chrono::TimeDelta::minutes(5 * i as i64),
            open: 100.0,
            high: 101.0,
            low: 99.0,
            close: 100.0 + i as f64,
            volume: 1000.0,
            trades: Some(10.0),
            vwap: None,
        })
        .rev()
        .collect()
}

/// A Redis that answers, or the test fails: it never passes for want of a server.
async fn assert_up(shared: &SharedBars) {
    let (_, missing) = shared.get(&symbols(&["SPY"]), SERIES, 1, newest()).await;
    assert_eq!(missing.len(), 1);
    assert_eq!(
        shared.health().state,
        "ok",
        "{:?}",
        shared.health().last_error
    );
}

#[tokio::test]
async fn one_replica_fetches_a_claimed_bar_set_and_the_other_reads_it() {
    let (a, b) = replicas("claim", Duration::from_secs(5));
    assert_up(&a).await;
    let (mine, theirs) = a.claim(symbols(&["SPY", "QQQ"]), SERIES, newest()).await;
    assert_eq!((mine.len(), theirs.len()), (2, 0));
    let (mine, theirs) = b
        .claim(symbols(&["SPY", "QQQ", "IWM"]), SERIES, newest())
        .await;
    assert_eq!(
        mine,
        symbols(&["IWM"]),
        "only the unclaimed symbol is b's to fetch"
    );
    assert_eq!(theirs, symbols(&["SPY", "QQQ"]));

    let fetched: SymbolMap<Arc<[Bar]>> = symbols(&["SPY", "QQQ"])
        .into_iter()
        .map(|s| (s, bars(20)))
        .collect();
    let writer = a.clone();
    let put = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        writer
            .put(&fetched, SERIES, 20, newest(), Duration::from_secs(30))
            .await;
    });
    let (arrived, missing) = b.wait_for(theirs, SERIES, 20, newest()).await;
    put.await.unwrap();
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(arrived.len(), 2);
    assert_eq!(&*arrived[&symbols(&["SPY"])[0]], &*bars(20));
    // Fewer bars than stored are cut to the newest; more than stored are a miss.
    let (hits, _) = b.get(&symbols(&["SPY"]), SERIES, 5, newest()).await;
    assert_eq!(&*hits[&symbols(&["SPY"])[0]], &bars(20)[15..]);
    let (hits, missing) = b.get(&symbols(&["SPY"]), SERIES, 21, newest()).await;
    assert!(hits.is_empty());
    assert_eq!(missing.len(), 1);
    // Another bar set (the next bar final) shares nothing with this one.
    let later = newest() + chrono::TimeDelta::minutes(5);
    let (hits, _) = b.get(&symbols(&["SPY"]), SERIES, 20, later).await;
    assert!(hits.is_empty());
}

#[tokio::test]
async fn a_claim_never_fulfilled_is_fetched_after_it_runs_out() {
    let (a, b) = replicas("stale", Duration::from_millis(150));
    assert_up(&a).await;
    a.claim(symbols(&["SPY"]), SERIES, newest()).await;
    let (_, theirs) = b.claim(symbols(&["SPY"]), SERIES, newest()).await;
    assert_eq!(theirs.len(), 1);
    // a died before storing: b waits out the claim, then fetches itself.
    let (arrived, missing) = b.wait_for(theirs, SERIES, 20, newest()).await;
    assert!(arrived.is_empty());
    assert_eq!(missing, symbols(&["SPY"]));
}

#[tokio::test]
async fn no_redis_shares_nothing_and_fetches_everything() {
    let off = SharedBars::off();
    assert_eq!(off.health().state, "off");
    let (hits, missing) = off.get(&symbols(&["SPY"]), SERIES, 20, newest()).await;
    assert!(hits.is_empty());
    assert_eq!(missing.len(), 1);
    let (mine, theirs) = off.claim(symbols(&["SPY"]), SERIES, newest()).await;
    assert_eq!((mine.len(), theirs.len()), (1, 0));
}

#[test]
fn settings_name_the_key_and_what_is_allowed() {
    let mut s = settings("herd", Duration::from_secs(2));
    assert!(s.check().is_ok());
    s.prefix = "two words".into();
    assert!(s.check().unwrap_err().to_string().contains("redis.prefix"));
    let mut s = settings("herd", Duration::ZERO);
    assert!(
        s.check()
            .unwrap_err()
            .to_string()
            .contains("redis.fetch_lock")
    );
    s = settings("herd", Duration::from_secs(2));
    s.url = Secret::new("http://not-redis");
    let e = s.check().unwrap_err().to_string();
    assert!(e.contains("redis.url") && !e.contains("not-redis"), "{e}");
}
