//! The registry as rendered: one lifecycle series per child, its current state.

use super::*;

fn rendered(metrics: &Metrics) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
    text
}

#[test]
fn a_child_has_one_state_series_its_current_one() {
    let metrics = Metrics::new();
    metrics.child_state("m1", Lifecycle::Starting, Lifecycle::Running);
    metrics.child_state("m1", Lifecycle::Running, Lifecycle::Failed);
    let text = rendered(&metrics);
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("herd_child_state{"))
        .collect();
    assert_eq!(
        series,
        ["herd_child_state{child=\"m1\",state=\"failed\"} 1"]
    );
}

#[test]
fn an_instances_handles_count_into_its_series_and_make_only_the_ones_it_used() {
    let metrics = Metrics::new();
    let instance = InstanceMetrics::new(Arc::clone(&metrics), "m1", "momentum");
    instance.tick(TickOutcome::Ok);
    instance.tick(TickOutcome::Ok);
    instance.tick(TickOutcome::OverlapSkipped);
    for _ in 0..5 {
        instance.decision(DecisionKind::Hold);
    }
    instance.tick_duration(Duration::from_millis(3));
    // A second incarnation's handles count into the same series.
    let again = InstanceMetrics::new(Arc::clone(&metrics), "m1", "momentum");
    again.tick(TickOutcome::Ok);
    let text = rendered(&metrics);
    let lines = |prefix: &str| -> Vec<String> {
        let mut found: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        found.sort();
        found
    };
    assert_eq!(
        lines("herd_strategy_ticks_total{"),
        [
            "herd_strategy_ticks_total{instance=\"m1\",kind=\"momentum\",outcome=\"ok\"} 3",
            "herd_strategy_ticks_total{instance=\"m1\",kind=\"momentum\",outcome=\"overlap_skipped\"} 1",
        ]
    );
    assert_eq!(
        lines("herd_strategy_decisions_total{"),
        ["herd_strategy_decisions_total{instance=\"m1\",action=\"hold\"} 5"]
    );
    assert_eq!(
        lines("herd_strategy_tick_duration_seconds_count{"),
        ["herd_strategy_tick_duration_seconds_count{instance=\"m1\"} 1"]
    );
}
