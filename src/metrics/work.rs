//! What the strategy instances and their queues are doing: how long each tick took, what each
//! decided, and how much work waits (orders in flight at the venue, model jobs queued or
//! running in the workshop).
//!
//! actix does not expose an actor's mailbox length, so the queues measured are herd's own:
//! a gauge moves when work enters or leaves one, through a guard that also counts work dropped
//! half-way (a cancelled future).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::DecisionKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    instance: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    state: &'static str,
}

fn tick_histogram() -> Histogram {
    // 1 ms … 16 s by fours: few buckets, as there is one histogram per instance and a
    // thousand instances must still render quickly.
    Histogram::new(exponential_buckets(0.001, 4.0, 8))
}

pub struct WorkMetrics {
    tick_duration: Family<InstanceLabels, Histogram, fn() -> Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    orders_in_flight: Gauge,
    workshop_jobs: Family<JobLabels, Gauge>,
}

impl Default for WorkMetrics {
    fn default() -> Self {
        Self {
            tick_duration: Family::new_with_constructor(tick_histogram),
            decisions: Family::default(),
            orders_in_flight: Gauge::default(),
            workshop_jobs: Family::default(),
        }
    }
}

/// Takes one off a gauge when dropped.
#[must_use = "the gauge goes down when this is dropped"]
pub struct InQueue(Gauge);

impl Drop for InQueue {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn enter(gauge: &Gauge) -> InQueue {
    gauge.inc();
    InQueue(gauge.clone())
}

impl WorkMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register_with_unit(
            "strategy_tick_duration",
            "Time from a tick's start to its end (view, decision and orders), by instance",
            Unit::Seconds,
            self.tick_duration.clone(),
        );
        r.register(
            "strategy_decisions",
            "Decisions per symbol, by instance and what they did",
            self.decisions.clone(),
        );
        r.register(
            "broker_orders_in_flight",
            "Orders being submitted to the venue now",
            self.orders_in_flight.clone(),
        );
        r.register(
            "workshop_jobs",
            "Model jobs (loading, training) queued for a core or running",
            self.workshop_jobs.clone(),
        );
        // Both states exist from the start (0), so a dashboard shows the empty workshop.
        for state in ["queued", "running"] {
            let _ = self.workshop_jobs.get_or_create(&JobLabels { state });
        }
    }

    /// The tick-duration histogram of `instance` (see `InstanceMetrics`).
    pub(super) fn tick_histogram(&self, instance: &str) -> Histogram {
        self.tick_duration
            .get_or_create(&InstanceLabels {
                instance: instance.to_owned(),
            })
            .clone()
    }

    /// The decision counter of `instance` and `kind` (see `InstanceMetrics`).
    pub(super) fn decision_counter(&self, instance: &str, kind: DecisionKind) -> Counter {
        self.decisions
            .get_or_create(&DecisionLabels {
                instance: instance.to_owned(),
                action: kind.as_str(),
            })
            .clone()
    }

    /// One more order at the venue until the guard drops.
    pub fn order_in_flight(&self) -> InQueue {
        enter(&self.orders_in_flight)
    }

    /// One more job waiting for a core until the guard drops.
    pub fn job_queued(&self) -> InQueue {
        enter(
            &self
                .workshop_jobs
                .get_or_create(&JobLabels { state: "queued" }),
        )
    }

    /// One more job running until the guard drops.
    pub fn job_running(&self) -> InQueue {
        enter(
            &self
                .workshop_jobs
                .get_or_create(&JobLabels { state: "running" }),
        )
    }
}
