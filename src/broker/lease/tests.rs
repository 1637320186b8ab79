//! The lease keeper against a real redis-server (`HERD_TEST_REDIS`, which `scripts/test`
//! starts): one owner at a time, epochs that only grow, a lost lease noticed, a given-back
//! lease taken over at once, and no trading before the takeover's reconciliation.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::broker::RedisSettings;
use crate::domain::{HumanDuration, Secret};
use crate::metrics::Metrics;

fn redis(prefix: &str) -> RedisSettings {
    RedisSettings {
        url: Secret::new(
            &std::env::var("HERD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        prefix: prefix.into(),
        timeout: HumanDuration(Duration::from_secs(2)),
        fetch_lock: HumanDuration(Duration::from_secs(2)),
    }
}

fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("herd-unit-lease-{test}-{}-{nanos}", std::process::id())
}

fn account() -> AccountId {
    AccountId::parse("acct").unwrap()
}

/// A replica's keeper of one account's lease, reconciling with `takeover`.
fn keeper(prefix: &str, name: &str, ttl: Duration, takeover: Takeover) -> (LeaseKeeper, Lease) {
    let settings = LeaseSettings {
        enabled: true,
        ttl: HumanDuration(ttl),
        replica: name.into(),
    };
    let lease = Lease::standby(account(), Duration::from_millis(10));
    let keeper = LeaseKeeper::new(
        &settings,
        &redis(prefix),
        name.into(),
        vec![lease.clone()],
        takeover,
        Metrics::new(),
    )
    .unwrap();
    (keeper, lease)
}

/// A replica whose takeovers succeed, and how many it ran.
fn replica(prefix: &str, name: &str, ttl: Duration) -> (LeaseKeeper, Lease, Rc<Cell<u32>>) {
    let takeovers = Rc::new(Cell::new(0));
    let counted = Rc::clone(&takeovers);
    let takeover: Takeover = Rc::new(move |_, _| {
        counted.set(counted.get() + 1);
        Box::pin(async { Ok(()) })
    });
    let (keeper, lease) = keeper(prefix, name, ttl, takeover);
    (keeper, lease, takeovers)
}

/// Waits (bounded) until `lease` reaches `state`, driving nothing: the takeover runs in its own
/// task.
async fn until(lease: &Lease, state: LeaseState) {
    for _ in 0..200 {
        if lease.status().state == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("lease never {state:?}: {:?}", lease.status());
}

#[actix::test]
async fn one_replica_owns_an_account_and_trades_only_after_its_takeover() {
    let prefix = unique("one-owner");
    let (mut first, lease1, takeovers1) = replica(&prefix, "r1", Duration::from_secs(10));
    let (mut second, lease2, takeovers2) = replica(&prefix, "r2", Duration::from_secs(10));
    first.round(true).await;
    until(&lease1, LeaseState::Owned).await;
    assert_eq!(lease1.fence(), Ok(Some(1)));
    assert_eq!(takeovers1.get(), 1);
    second.round(true).await;
    assert_eq!(lease2.status().state, LeaseState::Standby);
    assert!(lease2.fence().is_err());
    assert_eq!(takeovers2.get(), 0);
    // Renewing keeps it, in the same epoch.
    first.round(true).await;
    assert_eq!(lease1.fence(), Ok(Some(1)));
}

#[actix::test]
async fn an_expired_lease_goes_to_another_replica_in_a_later_epoch() {
    let prefix = unique("expiry");
    let ttl = Duration::from_millis(300);
    let (mut first, lease1, _) = replica(&prefix, "r1", ttl);
    let (mut second, lease2, _) = replica(&prefix, "r2", ttl);
    first.round(true).await;
    until(&lease1, LeaseState::Owned).await;
    // The first replica stops renewing (as if paused); the second acquires once Redis expires
    // the lease.
    let mut acquired = false;
    for _ in 0..100 {
        second.round(true).await;
        if lease2.status().epoch.is_some() {
            acquired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        acquired,
        "the second replica never acquired the expired lease"
    );
    until(&lease2, LeaseState::Owned).await;
    assert_eq!(lease2.fence(), Ok(Some(2)), "a later epoch");
    // The paused replica wakes: its own clock already says the lease may be gone.
    assert!(lease1.fence().is_err(), "no order under an expired lease");
    first.round(true).await;
    assert_eq!(
        lease1.status().state,
        LeaseState::Standby,
        "it learns it lost"
    );
    assert_eq!(lease2.fence(), Ok(Some(2)));
}

#[actix::test]
async fn a_lease_given_back_at_the_drain_is_taken_over_at_once() {
    let prefix = unique("release");
    let (first, lease1, _) = replica(&prefix, "r1", Duration::from_secs(30));
    let (mut second, lease2, _) = replica(&prefix, "r2", Duration::from_secs(30));
    let (drain, release) = (CancellationToken::new(), CancellationToken::new());
    let running = actix::spawn(first.run(drain.clone(), release.clone()));
    until(&lease1, LeaseState::Owned).await;
    drain.cancel();
    release.cancel();
    running.await.unwrap();
    assert_eq!(lease1.status().state, LeaseState::Standby);
    second.round(true).await;
    until(&lease2, LeaseState::Owned).await;
    assert_eq!(lease2.fence(), Ok(Some(2)));
}

#[actix::test]
async fn a_failed_takeover_never_trades() {
    let prefix = unique("failed");
    let takeover: Takeover = Rc::new(|_, _| Box::pin(async { Err("journal unreadable".into()) }));
    let (mut keeper, lease) = keeper(&prefix, "r1", Duration::from_secs(10), takeover);
    keeper.round(true).await;
    until(&lease, LeaseState::Standby).await;
    assert!(lease.fence().is_err());
    assert_eq!(lease.status().epoch, None);
}

#[actix::test]
async fn a_takeover_cut_short_by_the_drain_never_trades_and_its_lease_is_given_back() {
    let prefix = unique("abandoned");
    // A reconciliation that never ends (a journal that hangs).
    let takeover: Takeover = Rc::new(|_, _| Box::pin(std::future::pending()));
    let (first, lease) = keeper(&prefix, "r1", Duration::from_secs(30), takeover);
    let (drain, release) = (CancellationToken::new(), CancellationToken::new());
    let running = actix::spawn(first.run(drain.clone(), release.clone()));
    until(&lease, LeaseState::Reconciling).await;
    drain.cancel();
    release.cancel();
    running.await.unwrap();
    assert!(lease.fence().is_err(), "never traded");
    // Given back, not left to expire in 30 s: another replica has it at once.
    let (mut second, lease2, _) = replica(&prefix, "r2", Duration::from_secs(30));
    second.round(true).await;
    until(&lease2, LeaseState::Owned).await;
    assert_eq!(lease2.fence(), Ok(Some(2)));
}

#[test]
fn settings_name_what_is_wrong() {
    let call_timeout = Duration::from_secs(3);
    let mut s = LeaseSettings {
        enabled: true,
        ttl: HumanDuration(Duration::from_secs(10)),
        replica: String::new(),
    };
    assert!(s.check(true, call_timeout).is_ok());
    let e = s.check(false, call_timeout).unwrap_err().to_string();
    assert!(
        e.starts_with("lease.enabled = true: needs redis.url"),
        "{e}"
    );
    s.ttl = HumanDuration(Duration::from_secs(5));
    let e = s.check(true, call_timeout).unwrap_err().to_string();
    assert!(
        e.starts_with("lease.ttl = \"5s\": must be between 9s"),
        "{e}"
    );
    assert_eq!(s.replica_name(Some("herd-0")), "herd-0");
    s.replica = "a b".into();
    s.ttl = HumanDuration(Duration::from_secs(10));
    assert!(s.check(true, call_timeout).is_err());
}
