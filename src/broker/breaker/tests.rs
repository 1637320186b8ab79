use std::sync::{Arc, Mutex};

use super::set::slot;
use super::*;
use tokio::time::advance;

/// The thresholds of `config/default.toml`; the retry tests share them.
pub(crate) fn config() -> BreakerConfig {
    BreakerConfig {
        error_threshold: 0.5,
        volume_threshold: 10,
        window: HumanDuration(Duration::from_secs(10)),
        buckets: 10,
        reset_timeout: HumanDuration(Duration::from_secs(30)),
        half_open_trials: 2,
        half_open_max: HumanDuration(Duration::from_secs(10)),
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Transition>>);

impl BreakerObserver for Recorder {
    fn on_transition(&self, t: &Transition) {
        self.0.lock().unwrap().push(t.clone());
    }
}

impl Recorder {
    fn steps(&self) -> Vec<(BreakerState, BreakerState, TransitionReason)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|t| (t.from, t.to, t.reason))
            .collect()
    }
}

const OP: Operation = Operation::Bars;

fn set_with(config: &BreakerConfig) -> (BreakerSet, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    (BreakerSet::new(config, recorder.clone()), recorder)
}

fn calls(set: &BreakerSet, outcomes: &[Outcome]) {
    for outcome in outcomes {
        set.acquire(OP).expect("admitted").record(*outcome);
    }
}

fn snapshot(set: &BreakerSet) -> BreakerSnapshot {
    set.snapshot()
        .into_iter()
        .find(|s| s.operation == OP)
        .unwrap()
}

/// Opens the breaker with ten failures.
fn trip(set: &BreakerSet) {
    calls(set, &[Outcome::Failure; 10]);
    assert_eq!(set.state(OP), BreakerState::Open);
}

use Outcome::{Failure, Ignored, Success};

#[tokio::test(start_paused = true)]
async fn breaker_stays_closed_until_volume_threshold_is_reached() {
    let (set, recorder) = set_with(&config());
    calls(&set, &[Failure; 9]);
    assert_eq!(
        set.state(OP),
        BreakerState::Closed,
        "9 calls < volume_threshold 10"
    );
    calls(&set, &[Failure]);
    assert_eq!(set.state(OP), BreakerState::Open);
    assert_eq!(
        recorder.steps(),
        [(
            BreakerState::Closed,
            BreakerState::Open,
            TransitionReason::FailureRate
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_when_error_rate_reaches_threshold() {
    let (set, _) = set_with(&config());
    calls(
        &set,
        &[
            Success, Failure, Success, Failure, Success, Failure, Success, Failure, Success,
        ],
    );
    assert_eq!(set.state(OP), BreakerState::Closed);
    // The tenth call makes it 5 of 10: exactly the threshold, which opens (≥).
    calls(&set, &[Failure]);
    assert_eq!(set.state(OP), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn breaker_stays_closed_below_error_threshold() {
    let (set, _) = set_with(&config());
    calls(&set, &[Success; 6]);
    calls(&set, &[Failure; 4]);
    assert_eq!(set.state(OP), BreakerState::Closed);
    assert_eq!((snapshot(&set).calls, snapshot(&set).failures), (10, 4));
}

#[tokio::test(start_paused = true)]
async fn old_failures_leave_the_window_bucket_by_bucket() {
    let (set, _) = set_with(&config());
    calls(&set, &[Failure; 5]);
    advance(Duration::from_secs(5)).await;
    calls(&set, &[Success; 4]);
    advance(Duration::from_secs(5)).await;
    // The bucket of the first five failures has left the 10 s window.
    assert_eq!((snapshot(&set).calls, snapshot(&set).failures), (4, 0));
    calls(&set, &[Failure; 5]);
    assert_eq!(set.state(OP), BreakerState::Closed, "9 calls in the window");
    advance(Duration::from_secs(10)).await;
    assert_eq!(snapshot(&set).calls, 0);
    calls(&set, &[Failure; 9]);
    assert_eq!(set.state(OP), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn open_breaker_refuses_until_reset_timeout_then_admits_trials() {
    let (set, _) = set_with(&config());
    trip(&set);
    let refused = set.acquire(OP).unwrap_err();
    assert_eq!(refused.state, BreakerState::Open);
    assert_eq!(refused.retry_in, Some(Duration::from_secs(30)));
    advance(Duration::from_secs(29)).await;
    assert_eq!(
        set.acquire(OP).unwrap_err().retry_in,
        Some(Duration::from_secs(1))
    );
    advance(Duration::from_secs(1)).await;
    let first = set.acquire(OP).expect("first trial");
    assert_eq!(set.state(OP), BreakerState::HalfOpen);
    let second = set.acquire(OP).expect("second trial");
    let third = set.acquire(OP).unwrap_err();
    assert_eq!(
        (third.state, third.retry_in),
        (BreakerState::HalfOpen, None)
    );
    first.record(Success);
    second.record(Success);
}

#[tokio::test(start_paused = true)]
async fn half_open_closes_with_a_fresh_window_when_all_trials_succeed() {
    let (set, recorder) = set_with(&config());
    trip(&set);
    advance(Duration::from_secs(30)).await;
    let (a, b) = (set.acquire(OP).unwrap(), set.acquire(OP).unwrap());
    a.record(Success);
    assert_eq!(set.state(OP), BreakerState::HalfOpen, "one trial still out");
    b.record(Success);
    assert_eq!(set.state(OP), BreakerState::Closed);
    assert_eq!(snapshot(&set).calls, 0);
    assert_eq!(
        recorder.steps()[1..],
        [
            (
                BreakerState::Open,
                BreakerState::HalfOpen,
                TransitionReason::ResetTimeout
            ),
            (
                BreakerState::HalfOpen,
                BreakerState::Closed,
                TransitionReason::TrialsSucceeded
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_reopens_with_a_fresh_reset_timer_on_a_failed_trial() {
    let (set, recorder) = set_with(&config());
    trip(&set);
    advance(Duration::from_secs(30)).await;
    let (a, b) = (set.acquire(OP).unwrap(), set.acquire(OP).unwrap());
    a.record(Success);
    b.record(Failure);
    assert_eq!(set.state(OP), BreakerState::Open);
    assert_eq!(
        set.acquire(OP).unwrap_err().retry_in,
        Some(Duration::from_secs(30))
    );
    let last = recorder.steps().pop().unwrap();
    assert_eq!(
        last,
        (
            BreakerState::HalfOpen,
            BreakerState::Open,
            TransitionReason::TrialFailed
        )
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_reopens_when_a_trial_never_reports_within_half_open_max() {
    let (set, recorder) = set_with(&config());
    trip(&set);
    advance(Duration::from_secs(30)).await;
    let stuck = set.acquire(OP).unwrap();
    let _also_stuck = set.acquire(OP).unwrap();
    advance(Duration::from_secs(10)).await;
    assert_eq!(set.acquire(OP).unwrap_err().state, BreakerState::Open);
    let last = recorder.steps().pop().unwrap();
    assert_eq!(
        last,
        (
            BreakerState::HalfOpen,
            BreakerState::Open,
            TransitionReason::HalfOpenTimeout
        )
    );
    // The late answer belongs to the old half-open: it must not close the breaker.
    stuck.record(Success);
    assert_eq!(set.state(OP), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn snapshot_reopens_a_half_open_past_its_bound() {
    let (set, _) = set_with(&config());
    trip(&set);
    advance(Duration::from_secs(30)).await;
    let _stuck = set.acquire(OP).unwrap();
    advance(Duration::from_secs(10)).await;
    assert_eq!(snapshot(&set).state, BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn dropped_permit_counts_as_ignored_and_frees_the_trial_slot() {
    let (set, _) = set_with(&config());
    drop(set.acquire(OP).unwrap());
    assert_eq!(snapshot(&set).calls, 0, "a cancelled call is not counted");
    trip(&set);
    advance(Duration::from_secs(30)).await;
    let (a, b) = (set.acquire(OP).unwrap(), set.acquire(OP).unwrap());
    assert!(set.acquire(OP).is_err(), "both trial slots taken");
    drop(a);
    assert_eq!(snapshot(&set).trials_in_flight, 1);
    let c = set
        .acquire(OP)
        .expect("the dropped trial's slot is free again");
    b.record(Success);
    c.record(Success);
    assert_eq!(set.state(OP), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn ignored_trial_neither_closes_nor_reopens() {
    let (set, _) = set_with(&config());
    trip(&set);
    advance(Duration::from_secs(30)).await;
    set.acquire(OP).unwrap().record(Ignored);
    set.acquire(OP).unwrap().record(Success);
    assert_eq!(
        set.state(OP),
        BreakerState::HalfOpen,
        "only one trial has succeeded"
    );
    set.acquire(OP).unwrap().record(Success);
    assert_eq!(set.state(OP), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_open_refuses_until_reset_even_after_reset_timeout() {
    let (set, recorder) = set_with(&config());
    set.force_open(OP);
    advance(Duration::from_secs(300)).await;
    let refused = set.acquire(OP).unwrap_err();
    assert_eq!(
        (refused.state, refused.retry_in),
        (BreakerState::ForcedOpen, None)
    );
    set.reset(OP);
    set.acquire(OP).expect("closed after reset").record(Success);
    assert_eq!(
        recorder.steps(),
        [
            (
                BreakerState::Closed,
                BreakerState::ForcedOpen,
                TransitionReason::Forced
            ),
            (
                BreakerState::ForcedOpen,
                BreakerState::Closed,
                TransitionReason::Reset
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn reset_all_closes_every_open_breaker() {
    let (set, _) = set_with(&config());
    trip(&set);
    set.force_open(Operation::SubmitOrder);
    set.reset_all();
    assert!(
        set.snapshot()
            .iter()
            .all(|s| s.state == BreakerState::Closed && s.calls == 0)
    );
}

#[tokio::test(start_paused = true)]
async fn outcome_of_a_permit_from_before_a_transition_is_dropped() {
    let (set, _) = set_with(&config());
    let slow = set.acquire(OP).unwrap();
    trip(&set);
    advance(Duration::from_secs(30)).await;
    let trial = set.acquire(OP).unwrap();
    slow.record(Failure);
    assert_eq!(
        set.state(OP),
        BreakerState::HalfOpen,
        "a closed-era failure is no trial"
    );
    trial.record(Success);
}

#[tokio::test(start_paused = true)]
async fn business_errors_never_open_the_breaker() {
    let (set, _) = set_with(&config());
    let op = OP;
    let answers = [
        AlpacaError::NotFound {
            op,
            message: "position does not exist".into(),
        },
        AlpacaError::Rejected {
            op,
            status: 422,
            code: Some(40010001),
            message: "bad".into(),
        },
        AlpacaError::Rejected {
            op,
            status: 403,
            code: Some(40310000),
            message: "buying power".into(),
        },
        AlpacaError::RateLimited {
            op,
            reset_at: None,
            quota_left: None,
        },
        AlpacaError::Unauthorized {
            op,
            status: 401,
            message: "keys".into(),
        },
    ];
    for _ in 0..4 {
        for answer in &answers {
            let outcome = set
                .acquire(OP)
                .unwrap()
                .record_result::<()>(&Err(answer.clone()));
            assert_eq!(outcome, Ignored, "{answer}");
        }
    }
    assert_eq!(
        (set.state(OP), snapshot(&set).calls),
        (BreakerState::Closed, 0)
    );
}

#[test]
fn venue_faults_are_failures() {
    let op = OP;
    let faults = [
        AlpacaError::Timeout {
            op,
            after: Duration::from_secs(3),
        },
        AlpacaError::Connect {
            op,
            detail: "refused".into(),
        },
        AlpacaError::Server {
            op,
            status: 503,
            message: "down".into(),
        },
        AlpacaError::Malformed {
            op,
            detail: "html".into(),
        },
    ];
    assert!(faults.iter().all(|e| Outcome::of_error(e) == Failure));
    assert_eq!(Outcome::of::<u8>(&Ok(1)), Success);
}

#[tokio::test(start_paused = true)]
async fn snapshot_serializes_for_health() {
    let (set, _) = set_with(&config());
    calls(&set, &[Success, Failure]);
    let json = serde_json::to_value(snapshot(&set)).unwrap();
    assert_eq!(json["operation"], "bars");
    assert_eq!(json["state"], "closed");
    assert_eq!(json["failure_rate"], 0.5);
    assert_eq!(json["calls"], 2);
}

#[test]
fn every_operation_has_its_own_breaker_slot() {
    let mut slots: Vec<usize> = Operation::ALL.iter().map(|op| slot(*op)).collect();
    slots.sort_unstable();
    assert_eq!(slots, (0..Operation::ALL.len()).collect::<Vec<_>>());
}

#[test]
fn config_check_names_the_key_and_what_is_allowed() {
    assert_eq!(config().check(), Ok(()));
    let bad = BreakerConfig {
        error_threshold: 1.5,
        ..config()
    };
    assert_eq!(
        bad.check().unwrap_err().to_string(),
        "broker.breaker.error_threshold = 1.5: must be between 0 (exclusive) and 1"
    );
    let nan = BreakerConfig {
        error_threshold: f64::NAN,
        ..config()
    };
    assert!(
        nan.check()
            .unwrap_err()
            .to_string()
            .starts_with("broker.breaker.error_threshold")
    );
    let zero = BreakerConfig {
        half_open_max: HumanDuration(Duration::ZERO),
        ..config()
    };
    assert_eq!(
        zero.check().unwrap_err().to_string(),
        "broker.breaker.half_open_max = \"0s\": must be longer than zero"
    );
    let fine = BreakerConfig {
        buckets: 20_000,
        ..config()
    };
    assert!(
        fine.check()
            .unwrap_err()
            .to_string()
            .starts_with("broker.breaker.buckets = 20000")
    );
}

#[test]
fn config_deserializes_from_toml_and_refuses_unknown_keys() {
    let text = r#"
        error_threshold = 0.5
        volume_threshold = 10
        window = "10s"
        buckets = 10
        reset_timeout = "30s"
        half_open_trials = 2
        half_open_max = "10s"
    "#;
    assert_eq!(toml::from_str::<BreakerConfig>(text).unwrap(), config());
    assert!(toml::from_str::<BreakerConfig>(&format!("{text}\ntimeout = \"3s\"")).is_err());
    assert!(
        toml::from_str::<BreakerConfig>("error_threshold = 0.5").is_err(),
        "no defaults"
    );
}
