//! The Supervisor with real actix actors that panic on command, on paused tokio time: restart
//! backoffs, intensity windows and drain deadlines elapse exactly and at once.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::Supervisor;
use super::*;
use crate::domain::{ControlRefused, Slot};
use crate::metrics::Metrics;
use crate::process::ProcessState;

/// A child with a counter (to see whether state is fresh) that panics on request and takes an
/// operator's `Control` like a strategy instance.
struct Dummy {
    counter: u32,
    paused: bool,
    /// Answers `Drain` only after this long (to miss a deadline on purpose).
    drain_delay: Duration,
    exit: ExitNotifier,
}

impl Actor for Dummy {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u32")]
struct Bump;

impl Handler<Bump> for Dummy {
    type Result = u32;
    fn handle(&mut self, _: Bump, _: &mut Self::Context) -> u32 {
        self.counter += 1;
        self.counter
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Explode;

impl Handler<Explode> for Dummy {
    type Result = ();
    fn handle(&mut self, _: Explode, _: &mut Self::Context) {
        panic!("dummy exploded on request");
    }
}

impl Handler<Control> for Dummy {
    type Result = Result<(), ControlRefused>;
    fn handle(&mut self, msg: Control, _: &mut Self::Context) -> Self::Result {
        match msg {
            Control::Pause => self.paused = true,
            Control::Resume => self.paused = false,
            // Busy whenever the counter is odd: a way to see a refusal come back.
            Control::TickNow if self.counter % 2 == 1 => return Err(ControlRefused::Busy),
            Control::TickNow => self.counter += 1,
        }
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "bool")]
struct IsPaused;

impl Handler<IsPaused> for Dummy {
    type Result = bool;
    fn handle(&mut self, _: IsPaused, _: &mut Self::Context) -> bool {
        self.paused
    }
}

impl Handler<Drain> for Dummy {
    type Result = ResponseActFuture<Self, DrainAck>;
    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let delay = self.drain_delay;
        Box::pin(
            tokio::time::sleep(delay)
                .into_actor(self)
                .map(|(), act, ctx| {
                    act.exit.set(ExitReason::Drained);
                    ctx.stop();
                    DrainAck::default()
                }),
        )
    }
}

fn dummy_spec(id: &str, role: ChildRole, slot: Slot<Dummy>, drain_delay: Duration) -> ChildSpec {
    telling_dummy_spec(id, role, slot, drain_delay, None)
}

/// A dummy that, as a strategy instance, says through `submitting` whether it has orders on
/// their way.
fn telling_dummy_spec(
    id: &str,
    role: ChildRole,
    slot: Slot<Dummy>,
    drain_delay: Duration,
    submitting: Option<Submitting>,
) -> ChildSpec {
    let strategy = role.is_strategy();
    ChildSpec {
        id: id.into(),
        role,
        start: Box::new(move |c| {
            let addr = Dummy {
                counter: 0,
                paused: c.paused,
                drain_delay,
                exit: c.exit,
            }
            .start();
            slot.set(addr.clone());
            if strategy {
                let handle = ChildHandle::strategy(&addr);
                match submitting.clone() {
                    Some(s) => handle.with_submitting(s),
                    None => handle,
                }
            } else {
                ChildHandle::service(&addr)
            }
        }),
    }
}

fn policy(max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts,
        window: Duration::from_secs(60),
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(4),
    }
}

fn strategy_role() -> ChildRole {
    ChildRole::Strategy {
        kind: "momentum",
        params: serde_json::Value::Null,
        symbols: vec![],
    }
}

/// Waits (bounded) until `child` is in `state`; returns its view.
async fn until_state(sup: &Addr<Supervisor>, child: &str, state: Lifecycle) -> ChildView {
    for _ in 0..2000 {
        let views = sup.send(ListChildren).await.unwrap();
        if let Some(v) = views
            .into_iter()
            .find(|v| v.id == child && v.state == state)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{child} never reached {state:?}");
}

/// Waits (bounded) until the slot holds a live address.
async fn live(slot: &Slot<Dummy>) -> Addr<Dummy> {
    for _ in 0..2000 {
        if let Some(a) = slot.get() {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no live incarnation");
}

#[actix_web::test]
async fn a_panicking_child_is_restarted_with_fresh_state_and_siblings_are_untouched() {
    tokio::time::pause();
    let (a, b) = (Slot::default(), Slot::default());
    let specs = vec![
        dummy_spec("a", strategy_role(), a.clone(), Duration::ZERO),
        dummy_spec("b", strategy_role(), b.clone(), Duration::ZERO),
    ];
    let process = ProcessState::new();
    let sup = Supervisor::new(specs, policy(5), Arc::clone(&process), Metrics::new()).start();
    let first = live(&a).await;
    assert_eq!(first.send(Bump).await.unwrap(), 1);
    assert_eq!(first.send(Bump).await.unwrap(), 2);
    let sibling = live(&b).await;
    sibling.send(Bump).await.unwrap();

    assert!(
        first.send(Explode).await.is_err(),
        "the panicking call gets a typed error, not a hang"
    );
    let view = until_incarnation(&sup, "a", 2).await;
    assert_eq!(
        (view.restarts, view.last_exit.as_deref()),
        (1, Some("crashed (dropped without a reason)"))
    );
    let second = live(&a).await;
    assert_eq!(
        second.send(Bump).await.unwrap(),
        1,
        "a restart starts from fresh state"
    );
    assert_eq!(
        sibling.send(Bump).await.unwrap(),
        2,
        "the sibling kept its state and address"
    );
    assert!(!process.essential_failed());
}

async fn until_incarnation(sup: &Addr<Supervisor>, child: &str, n: u64) -> ChildView {
    for _ in 0..2000 {
        let views = sup.send(ListChildren).await.unwrap();
        if let Some(v) = views
            .into_iter()
            .find(|v| v.id == child && v.incarnation == n && v.state == Lifecycle::Running)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{child} never reached incarnation {n}");
}

#[actix_web::test]
async fn a_child_over_its_intensity_is_left_failed_while_the_rest_runs() {
    tokio::time::pause();
    let (a, b) = (Slot::default(), Slot::default());
    let specs = vec![
        dummy_spec("a", strategy_role(), a.clone(), Duration::ZERO),
        dummy_spec("b", strategy_role(), b.clone(), Duration::ZERO),
    ];
    let process = ProcessState::new();
    let sup = Supervisor::new(specs, policy(2), Arc::clone(&process), Metrics::new()).start();
    for n in 1..=3 {
        let addr = live(&a).await;
        let _ = addr.send(Explode).await;
        if n < 3 {
            until_incarnation(&sup, "a", n + 1).await;
        }
    }
    let failed = until_state(&sup, "a", Lifecycle::Failed).await;
    assert_eq!(failed.restarts, 2);
    assert!(a.get().is_none(), "a failed child has no live address");
    let sibling = live(&b).await;
    assert_eq!(sibling.send(Bump).await.unwrap(), 1);
    assert!(!process.essential_failed(), "a strategy is not essential");

    // An operator can bring it back.
    sup.send(control("a", ChildAction::Restart))
        .await
        .unwrap()
        .unwrap();
    let back = until_state(&sup, "a", Lifecycle::Running).await;
    assert_eq!(back.incarnation, 4);
}

fn control(id: &str, action: ChildAction) -> ControlChild {
    ControlChild {
        id: id.into(),
        action,
        strategy_only: false,
    }
}

#[actix_web::test]
async fn a_restart_of_a_running_child_drains_it_and_starts_fresh_state() {
    tokio::time::pause();
    let a = Slot::default();
    let specs = vec![dummy_spec("a", strategy_role(), a.clone(), Duration::ZERO)];
    let sup = Supervisor::new(specs, policy(5), ProcessState::new(), Metrics::new()).start();
    let first = live(&a).await;
    assert_eq!(first.send(Bump).await.unwrap(), 1);
    let done = sup
        .send(control("a", ChildAction::Restart))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.incarnation, 1, "answered once the restart began");
    let view = until_incarnation(&sup, "a", 2).await;
    assert_eq!(
        (view.restarts, view.last_exit.as_deref()),
        (0, Some("drained"))
    );
    let second = live(&a).await;
    assert_eq!(second.send(Bump).await.unwrap(), 1, "fresh state");
}

#[actix_web::test]
async fn a_pause_is_relayed_and_outlives_a_restart_and_tick_now_answers_for_the_instance() {
    tokio::time::pause();
    let (a, broker) = (Slot::default(), Slot::default());
    let specs = vec![
        dummy_spec("a", strategy_role(), a.clone(), Duration::ZERO),
        dummy_spec("broker", ChildRole::Broker, broker.clone(), Duration::ZERO),
    ];
    let sup = Supervisor::new(specs, policy(5), ProcessState::new(), Metrics::new()).start();
    let first = live(&a).await;
    let paused = sup
        .send(control("a", ChildAction::Pause))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paused.paused, Some(true));
    assert!(
        first.send(IsPaused).await.unwrap(),
        "relayed to the incarnation"
    );
    let _ = first.send(Explode).await;
    let view = until_incarnation(&sup, "a", 2).await;
    assert_eq!(view.paused, Some(true));
    assert!(
        live(&a).await.send(IsPaused).await.unwrap(),
        "the new one starts paused"
    );

    // Tick now: done, then refused by the instance (its counter is odd now), both answered.
    let ticked = sup.send(control("a", ChildAction::Execute)).await.unwrap();
    assert!(ticked.is_ok(), "{ticked:?}");
    let busy = sup.send(control("a", ChildAction::Execute)).await.unwrap();
    assert!(matches!(
        busy,
        Err(ControlError::Refused {
            why: ControlRefused::Busy,
            ..
        })
    ));
    let resumed = sup
        .send(control("a", ChildAction::Resume))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.paused, Some(false));

    let not_strategy = sup
        .send(control("broker", ChildAction::Pause))
        .await
        .unwrap();
    assert_eq!(
        not_strategy.unwrap_err(),
        ControlError::NotAStrategy("broker".into())
    );
    let unknown = sup
        .send(control("nope", ChildAction::Execute))
        .await
        .unwrap();
    assert_eq!(unknown.unwrap_err(), ControlError::Unknown("nope".into()));
}

#[actix_web::test]
async fn an_essential_child_over_its_intensity_halts_trading_and_unreadies_the_process() {
    tokio::time::pause();
    let broker = Slot::default();
    let specs = vec![dummy_spec(
        "broker",
        ChildRole::Broker,
        broker.clone(),
        Duration::ZERO,
    )];
    let process = ProcessState::new();
    process.mark_venue_reached();
    process.advance(crate::process::Phase::Running);
    assert!(process.is_ready());
    let sup = Supervisor::new(specs, policy(0), Arc::clone(&process), Metrics::new()).start();
    let _ = live(&broker).await.send(Explode).await;
    until_state(&sup, "broker", Lifecycle::Failed).await;
    assert!(process.essential_failed());
    assert!(process.halted().is_some_and(|why| why.contains("broker")));
    assert!(!process.is_ready());
}

#[actix_web::test]
async fn drain_stops_everyone_and_names_the_children_that_miss_the_deadline() {
    tokio::time::pause();
    let (fast, slow) = (Slot::default(), Slot::default());
    let specs = vec![
        dummy_spec("fast", strategy_role(), fast.clone(), Duration::ZERO),
        dummy_spec(
            "slow",
            strategy_role(),
            slow.clone(),
            Duration::from_secs(30),
        ),
    ];
    let sup = Supervisor::new(specs, policy(5), ProcessState::new(), Metrics::new()).start();
    live(&fast).await;
    live(&slow).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let report = sup.send(DrainAll { deadline }).await.unwrap();
    assert_eq!(report.unfinished, vec!["slow".to_owned()]);
    assert_eq!(report.phases.first().map(|p| p.0), Some("strategies"));
    until_state(&sup, "fast", Lifecycle::Stopped).await;
    // Nothing is restarted once draining, whatever ends afterwards.
    let refused = sup
        .send(control("fast", ChildAction::Restart))
        .await
        .unwrap();
    assert_eq!(refused.unwrap_err(), ControlError::Draining);
}

#[actix_web::test]
async fn at_the_drain_only_an_instance_with_orders_on_their_way_is_asked_and_awaited() {
    tokio::time::pause();
    let (idle, busy) = (Slot::default(), Slot::default());
    let (idle_flag, busy_flag) = (Submitting::default(), Submitting::default());
    busy_flag.set(true);
    // Both would answer a `Drain` only after the deadline.
    let late = Duration::from_secs(30);
    let specs = vec![
        telling_dummy_spec("idle", strategy_role(), idle.clone(), late, Some(idle_flag)),
        telling_dummy_spec("busy", strategy_role(), busy.clone(), late, Some(busy_flag)),
    ];
    let sup = Supervisor::new(specs, policy(5), ProcessState::new(), Metrics::new()).start();
    live(&idle).await;
    live(&busy).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let report = sup.send(DrainAll { deadline }).await.unwrap();
    // The idle one stood down without being asked (asked, it would have missed the deadline);
    // its end is recorded as drained all the same.
    assert_eq!(report.unfinished, vec!["busy".to_owned()]);
    let view = until_state(&sup, "idle", Lifecycle::Stopped).await;
    assert_eq!(view.last_exit.as_deref(), Some("drained"));
}
