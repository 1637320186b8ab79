use std::collections::VecDeque;
use std::sync::Arc;

use rand::SeedableRng;
use tokio::time::Instant;

use super::*;
use crate::broker::breaker::{self, LogTransitions};
use crate::broker::limiter::{LimiterConfig, MINUTE};
use crate::domain::BreakerState;

const OP: Operation = Operation::Bars;

/// The defaults recommended for `config/default.toml`.
fn config() -> RetryConfig {
    RetryConfig {
        base: HumanDuration(Duration::from_millis(200)),
        cap: HumanDuration(Duration::from_secs(2)),
        max_attempts: 3,
        max_rate_limit_wait: HumanDuration(Duration::from_secs(5)),
        budget_max_tokens: 10,
        budget_token_ratio: 0.1,
    }
}

/// A seeded policy, a fresh budget and breakers: what every driver test starts from.
fn guards(seed: u64) -> (RetryPolicy, RetryBudget, BreakerSet) {
    (
        RetryPolicy::seeded(&config(), seed),
        RetryBudget::from_config(&config()),
        breakers(),
    )
}

/// A 429 with the quota spent until `secs` from now.
fn limited_for(secs: i64) -> AlpacaError {
    AlpacaError::RateLimited {
        op: OP,
        reset_at: Some(Utc::now() + chrono::Duration::seconds(secs)),
        quota_left: None,
    }
}

fn breakers() -> BreakerSet {
    BreakerSet::new(&breaker::tests::config(), Arc::new(LogTransitions))
}

fn server_error() -> AlpacaError {
    AlpacaError::Server {
        op: OP,
        status: 503,
        message: "unavailable".into(),
    }
}

/// Runs a read whose attempts answer `script` in order; returns it and the calls made.
async fn run(
    policy: &RetryPolicy,
    budget: &RetryBudget,
    breakers: &BreakerSet,
    limiter: Option<&OutboundLimiter>,
    script: Vec<Result<u32, AlpacaError>>,
) -> (Retried<u32>, usize) {
    let mut script = VecDeque::from(script);
    let planned = script.len();
    let guards = ReadGuards {
        policy,
        budget,
        breakers,
        limiter,
    };
    let retried = retry_read(guards, ReadOp::Bars, || {
        std::future::ready(script.pop_front().expect("no more answers scripted"))
    })
    .await;
    (retried, planned - script.len())
}

#[test]
fn backoff_ceiling_doubles_from_base_up_to_cap() {
    let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
    let ceilings: Vec<_> = [0, 1, 2, 4, 5, 40]
        .map(|n| backoff_ceiling(base, cap, n))
        .into();
    let ms = |n| Duration::from_millis(n);
    assert_eq!(
        ceilings,
        [ms(100), ms(200), ms(400), ms(1600), ms(2000), ms(2000)]
    );
}

#[test]
fn full_jitter_draws_within_zero_and_the_ceiling() {
    let mut rng = SmallRng::seed_from_u64(42);
    let ceiling = Duration::from_millis(800);
    let draws: Vec<_> = (0..10_000)
        .map(|_| full_jitter(ceiling, &mut rng))
        .collect();
    assert!(draws.iter().all(|d| *d <= ceiling));
    // Full jitter spreads over the whole range, not a band near the ceiling.
    assert!(draws.iter().any(|d| *d < ceiling / 10));
    assert!(draws.iter().any(|d| *d > ceiling * 9 / 10));
    assert_eq!(full_jitter(Duration::ZERO, &mut rng), Duration::ZERO);
}

#[test]
fn a_seeded_policy_repeats_its_schedule() {
    let (a, b) = (
        RetryPolicy::seeded(&config(), 7),
        RetryPolicy::seeded(&config(), 7),
    );
    let schedule = |p: &RetryPolicy| (0..5).map(|n| p.backoff(n)).collect::<Vec<_>>();
    let first = schedule(&a);
    assert_eq!(first, schedule(&b));
    for (n, d) in first.iter().enumerate() {
        assert!(*d <= backoff_ceiling(config().base.get(), config().cap.get(), n as u32));
    }
}

#[test]
fn delay_waits_at_least_until_the_rate_limit_resets() {
    let policy = RetryPolicy::seeded(&config(), 1);
    let now = Utc::now();
    let limited = |secs| AlpacaError::RateLimited {
        op: OP,
        reset_at: Some(now + chrono::Duration::seconds(secs)),
        quota_left: None,
    };
    assert_eq!(
        policy.delay(&limited(3), 0, now),
        Ok(Duration::from_secs(3))
    );
    assert_eq!(
        policy.delay(&limited(60), 0, now),
        Err(GiveUp::RateLimitTooLong)
    );
    // A reset already past (clock skew) or absent: the jittered backoff alone.
    assert!(policy.delay(&limited(-5), 0, now).unwrap() <= config().base.get());
    let no_header = AlpacaError::RateLimited {
        op: OP,
        reset_at: None,
        quota_left: None,
    };
    assert!(policy.delay(&no_header, 0, now).unwrap() <= config().base.get());
}

#[test]
fn budget_stops_retries_at_half_its_tokens_and_refills_on_success() {
    let budget = RetryBudget::new(10, 0.1);
    assert!(budget.allows_retry());
    (0..4).for_each(|_| budget.on_failure());
    assert!(budget.allows_retry(), "6 tokens > 5");
    budget.on_failure();
    assert!(!budget.allows_retry(), "5 tokens is not more than half");
    (0..10).for_each(|_| budget.on_success());
    assert!(budget.allows_retry());
    assert!((budget.tokens() - 6.0).abs() < 1e-9);
    (0..100).for_each(|_| budget.on_success());
    assert!((budget.tokens() - 10.0).abs() < 1e-9, "never above max");
}

#[tokio::test(start_paused = true)]
async fn retry_read_retries_venue_faults_until_success() {
    let (policy, budget, breakers) = guards(3);
    let start = Instant::now();
    let timeout = AlpacaError::Timeout {
        op: OP,
        after: Duration::from_secs(3),
    };
    let (out, calls) = run(
        &policy,
        &budget,
        &breakers,
        None,
        vec![Err(server_error()), Err(timeout), Ok(7)],
    )
    .await;
    assert_eq!((out.result.unwrap(), out.retries, calls), (7, 2, 3));
    let longest = backoff_ceiling(config().base.get(), config().cap.get(), 0)
        + backoff_ceiling(config().base.get(), config().cap.get(), 1);
    assert!(
        start.elapsed() <= longest,
        "slept only the jittered backoffs"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_read_returns_business_answers_without_retrying() {
    let (policy, budget, breakers) = guards(3);
    let not_found = AlpacaError::NotFound {
        op: OP,
        message: "position does not exist".into(),
    };
    let (out, calls) = run(&policy, &budget, &breakers, None, vec![Err(not_found)]).await;
    let err = out.result.unwrap_err();
    assert_eq!(
        (err.failure().as_str(), out.retries, calls),
        ("not_retryable", 0, 1)
    );
    assert!(matches!(err.upstream(), Some(AlpacaError::NotFound { .. })));
    assert_eq!(budget.tokens(), 10.0, "a business answer costs no budget");
}

#[tokio::test(start_paused = true)]
async fn retry_read_stops_after_max_attempts() {
    let (policy, budget, breakers) = guards(3);
    let script = vec![
        Err(server_error()),
        Err(server_error()),
        Err(server_error()),
        Ok(1),
    ];
    let (out, calls) = run(&policy, &budget, &breakers, None, script).await;
    assert_eq!(
        (
            out.result.unwrap_err().failure().as_str(),
            out.retries,
            calls
        ),
        ("attempts_exhausted", 2, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn retry_read_stops_when_the_breaker_opens() {
    let (policy, budget) = (
        RetryPolicy::seeded(&config(), 3),
        RetryBudget::from_config(&config()),
    );
    let breakers = breakers();
    for _ in 0..9 {
        breakers
            .acquire(OP)
            .unwrap()
            .record(crate::broker::breaker::Outcome::Failure);
    }
    // This read's first failure is the tenth: the breaker opens and refuses the retry.
    let (out, calls) = run(
        &policy,
        &budget,
        &breakers,
        None,
        vec![Err(server_error()), Ok(1)],
    )
    .await;
    let err = out.result.unwrap_err();
    assert_eq!(
        (err.failure().as_str(), out.retries, calls),
        ("breaker_open", 0, 1)
    );
    assert!(matches!(err.upstream(), Some(AlpacaError::Server { .. })));
    assert_eq!(breakers.state(OP), BreakerState::Open);
    // While open, a read makes no call at all.
    let (out, calls) = run(&policy, &budget, &breakers, None, vec![Ok(1)]).await;
    assert_eq!(
        (out.result.unwrap_err().failure().as_str(), calls),
        ("breaker_open", 0)
    );
}

#[tokio::test(start_paused = true)]
async fn retry_read_stops_when_the_budget_is_spent_but_always_makes_the_first_call() {
    let (policy, breakers) = (RetryPolicy::seeded(&config(), 3), breakers());
    let budget = RetryBudget::new(10, 0.1);
    (0..10).for_each(|_| budget.on_failure());
    let (out, calls) = run(
        &policy,
        &budget,
        &breakers,
        None,
        vec![Err(server_error()), Ok(1)],
    )
    .await;
    assert_eq!(
        (
            out.result.unwrap_err().failure().as_str(),
            out.retries,
            calls
        ),
        ("budget_exhausted", 0, 1)
    );
    let (out, _) = run(&policy, &budget, &breakers, None, vec![Ok(5)]).await;
    assert_eq!(
        out.result.unwrap(),
        5,
        "the first attempt is never throttled"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_read_waits_for_the_rate_limit_reset_before_retrying() {
    let (policy, budget, breakers) = guards(3);
    let limited = limited_for(4);
    let start = Instant::now();
    let (out, calls) = run(&policy, &budget, &breakers, None, vec![Err(limited), Ok(9)]).await;
    assert_eq!((out.result.unwrap(), out.retries, calls), (9, 1, 2));
    // The backoff alone is at most 200 ms; the wait was the reset's (less the real
    // microseconds between building the error and reading the clock).
    assert!(start.elapsed() > Duration::from_secs(3) && start.elapsed() <= Duration::from_secs(4));
    assert_eq!(
        breakers
            .snapshot()
            .iter()
            .find(|s| s.operation == OP)
            .unwrap()
            .failures,
        0,
        "429 is not a venue fault"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_read_gives_up_at_once_when_the_reset_is_beyond_max_wait() {
    let (policy, budget, breakers) = guards(3);
    let limited = limited_for(50);
    let start = Instant::now();
    let (out, calls) = run(&policy, &budget, &breakers, None, vec![Err(limited), Ok(9)]).await;
    assert_eq!(
        (out.result.unwrap_err().failure().as_str(), calls),
        ("rate_limit_too_long", 1)
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn retry_read_fails_without_a_call_when_the_quota_is_saturated() {
    let (policy, budget, breakers) = guards(3);
    let limiter = OutboundLimiter::new(
        &LimiterConfig {
            requests_per_minute: 200,
            headroom: 0.9,
            read_share: 0.8,
            read_max_wait: HumanDuration(Duration::from_millis(10)),
            order_max_wait: HumanDuration(Duration::from_secs(10)),
        },
        MINUTE,
    );
    while limiter.try_acquire(RequestClass::Read).is_ok() {}
    let (out, calls) = run(&policy, &budget, &breakers, Some(&limiter), vec![Ok(1)]).await;
    assert_eq!(
        (out.result.unwrap_err().failure().as_str(), calls),
        ("saturated", 0)
    );
}

#[test]
fn read_ops_never_name_an_order_write() {
    let reads = [
        ReadOp::Clock,
        ReadOp::Account,
        ReadOp::Positions,
        ReadOp::Bars,
        ReadOp::GetOrder,
        ReadOp::OrderByClientId,
        ReadOp::ListOrders,
    ];
    assert!(
        reads
            .iter()
            .all(|r| !matches!(Operation::from(*r), Operation::SubmitOrder))
    );
}

#[test]
fn config_check_names_the_key_and_what_is_allowed() {
    assert_eq!(config().check(), Ok(()));
    let inverted = RetryConfig {
        cap: HumanDuration(Duration::from_millis(100)),
        ..config()
    };
    assert_eq!(
        inverted.check().unwrap_err().to_string(),
        "broker.retry.cap = \"100ms\": must be at least broker.retry.base (200ms)"
    );
    let none = RetryConfig {
        max_attempts: 0,
        ..config()
    };
    assert!(
        none.check()
            .unwrap_err()
            .to_string()
            .starts_with("broker.retry.max_attempts = 0")
    );
    let free = RetryConfig {
        budget_token_ratio: 0.0,
        ..config()
    };
    assert!(
        free.check()
            .unwrap_err()
            .to_string()
            .starts_with("broker.retry.budget_token_ratio = 0")
    );
    let text = r#"
        base = "200ms"
        cap = "2s"
        max_attempts = 3
        max_rate_limit_wait = "5s"
        budget_max_tokens = 10
        budget_token_ratio = 0.1
    "#;
    assert_eq!(toml::from_str::<RetryConfig>(text).unwrap(), config());
    assert!(
        toml::from_str::<RetryConfig>("base = \"1s\"").is_err(),
        "no defaults"
    );
}

#[test]
fn a_429_with_quota_left_is_backed_off_not_waited_out() {
    let policy = RetryPolicy::seeded(&config(), 1);
    let now = Utc::now();
    let limited = |left| AlpacaError::RateLimited {
        op: OP,
        reset_at: Some(now + chrono::Duration::seconds(50)),
        quota_left: Some(left),
    };
    // A throttle burst: the quota window's reset, 50 s away, is not what to wait for.
    assert!(policy.delay(&limited(120), 0, now).unwrap() <= config().base.get());
    // The quota itself is spent: wait for the reset, or give up when it is too far.
    assert_eq!(
        policy.delay(&limited(0), 0, now),
        Err(GiveUp::RateLimitTooLong)
    );
}
