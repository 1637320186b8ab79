//! One strategy instance's own series, looked up once per incarnation: a tick then updates
//! shared atomic handles instead of building a label set (an owned copy of the instance id)
//! and hashing it under the family's lock for each of its seven or so updates.
//!
//! Invariants:
//! - The handles of a label are indexed by its value's place in the label's `ALL`, which the
//!   `label_values!` declaration keeps in declaration order.
//! - A handle is taken from its family the first time its value is used, so a series
//!   exists exactly when it would without the handles (an instance that never orders has no
//!   `action="order"` series), and handles stay valid because herd never removes these series.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::series::TickLabels;
use super::{DecisionKind, Metrics, TickOutcome};

pub struct InstanceMetrics {
    metrics: Arc<Metrics>,
    instance: String,
    kind: &'static str,
    ticks: [OnceLock<Counter>; TickOutcome::ALL.len()],
    decisions: [OnceLock<Counter>; DecisionKind::ALL.len()],
    tick_duration: OnceLock<Histogram>,
}

impl InstanceMetrics {
    /// `kind` is the instance's `StrategyKind::as_str`.
    pub fn new(metrics: Arc<Metrics>, instance: &str, kind: &'static str) -> Self {
        Self {
            metrics,
            instance: instance.to_owned(),
            kind,
            ticks: std::array::from_fn(|_| OnceLock::new()),
            decisions: std::array::from_fn(|_| OnceLock::new()),
            tick_duration: OnceLock::new(),
        }
    }

    /// `herd_strategy_ticks_total{instance, kind, outcome}`.
    pub fn tick(&self, outcome: TickOutcome) {
        self.ticks[outcome as usize]
            .get_or_init(|| {
                self.metrics
                    .ticks
                    .get_or_create(&TickLabels {
                        instance: self.instance.clone(),
                        kind: self.kind,
                        outcome: outcome.as_str(),
                    })
                    .clone()
            })
            .inc();
    }

    /// `herd_strategy_decisions_total{instance, action}`.
    pub fn decision(&self, kind: DecisionKind) {
        self.decisions[kind as usize]
            .get_or_init(|| self.metrics.work.decision_counter(&self.instance, kind))
            .inc();
    }

    /// `herd_strategy_tick_duration_seconds{instance}`.
    pub fn tick_duration(&self, elapsed: Duration) {
        self.tick_duration
            .get_or_init(|| self.metrics.work.tick_histogram(&self.instance))
            .observe(elapsed.as_secs_f64());
    }
}
