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
