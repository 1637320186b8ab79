//! Every metric herd exports, defined in this one place, and the MetricsActor that owns the
//! registry and renders `/metrics` as OpenMetrics or classic Prometheus text.
//!
//! Invariants:
//! - Hot paths record through [`Metrics`]' shared atomic handles and never wait on the actor.
//! - Label values are bounded sets (operation, outcome, configured instance ids, child ids);
//!   order ids, symbols of arbitrary orders or error text never become labels. Outcomes and
//!   reasons are the typed values of [`labels`]; the rest are `domain` enums or configured ids.
//! - Names follow Prometheus conventions: the `herd_` prefix comes from the registry, counters get
//!   `_total` from prometheus-client, units are base units (seconds).

mod actor;
mod exposition;
mod http;
mod instance;
mod journal;
mod labels;
mod lease;
mod process;
mod series;
mod shared_cache;
mod traces;
mod work;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use actor::{MetricsActor, RenderMetrics};
pub use exposition::Exposition;
pub use http::HttpMetrics;
pub use instance::InstanceMetrics;
pub use journal::JournalMetrics;
pub use labels::{
    DecisionKind, OrderOutcome, ReadFailure, RefusalReason, RequestOutcome, RiskAlert, TickOutcome,
};
pub use lease::LeaseMetrics;
pub use shared_cache::{SharedCacheMetrics, SharedCacheOutcome};
pub use traces::{SpanDrop, TraceMetrics};
pub use work::{InQueue, WorkMetrics};

use series::{
    AccountClassLabels, AccountLabels, AccountOperationLabels, AlertLabels, BreakerStateLabels,
    BuildLabels, ChildLabels, ChildStateLabels, FailureLabels, InstanceLabels, OperationLabels,
    OrderLabels, ReasonLabels, RequestLabels, StateLabels, TickLabels, TransitionLabels,
};

use crate::domain::{
    AccountId, BreakerState, Lifecycle, Operation, RequestClass, Side, TradingState,
};

fn wait_histogram() -> Histogram {
    // 1 ms … ~16 s: limiter waits are usually zero, and bounded by order_max_wait.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~10 s: the OpenTelemetry advisory range for HTTP client durations.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// Shared handles to every metric. Cloning an `Arc<Metrics>` is how a component gets them.
pub struct Metrics {
    /// The HTTP server's requests, latency and rate-limit refusals.
    pub http: HttpMetrics,
    /// Tick durations, decisions, and the queues of work (orders in flight, model jobs).
    pub work: WorkMetrics,
    /// Spans exported to the OTLP collector, and spans dropped.
    pub traces: TraceMetrics,
    /// The journal writer's throughput, drops and failures.
    pub journal: JournalMetrics,
    /// The market-data cache replicas share through Redis.
    pub shared_cache: SharedCacheMetrics,
    pub lease: LeaseMetrics,
    ticks: Family<TickLabels, Counter>,
    orders: Family<OrderLabels, Counter>,
    broker_requests: Family<RequestLabels, Counter>,
    broker_latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    restarts: Family<ChildLabels, Counter>,
    child_state: Family<ChildStateLabels, Gauge>,
    build_info: Family<BuildLabels, Gauge>,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_evictions: Counter,
    breaker_state: Family<BreakerStateLabels, Gauge>,
    breaker_transitions: Family<TransitionLabels, Counter>,
    breaker_rejections: Family<AccountOperationLabels, Counter>,
    retries: Family<OperationLabels, Counter>,
    read_failures: Family<FailureLabels, Counter>,
    rows_skipped: Family<OperationLabels, Counter>,
    shared_reads: Family<OperationLabels, Counter>,
    limiter_wait: Family<AccountClassLabels, Histogram, fn() -> Histogram>,
    limiter_saturated: Family<AccountClassLabels, Counter>,
    orders_refused: Family<ReasonLabels, Counter>,
    bar_batches: Counter,
    bar_batch_requests: Counter,
    position_mismatches: Family<AccountLabels, Gauge>,
    trading_state: Family<StateLabels, Gauge>,
    risk_alerts: Family<AlertLabels, Counter>,
    risk_var: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    risk_drawdown: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let m = Self {
            http: HttpMetrics::default(),
            work: WorkMetrics::default(),
            traces: TraceMetrics::default(),
            journal: JournalMetrics::default(),
            shared_cache: SharedCacheMetrics::default(),
            lease: LeaseMetrics::default(),
            ticks: Family::default(),
            orders: Family::default(),
            broker_requests: Family::default(),
            broker_latency: Family::new_with_constructor(latency_histogram),
            restarts: Family::default(),
            child_state: Family::default(),
            build_info: Family::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_evictions: Counter::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            breaker_rejections: Family::default(),
            retries: Family::default(),
            read_failures: Family::default(),
            rows_skipped: Family::default(),
            shared_reads: Family::default(),
            limiter_wait: Family::new_with_constructor(wait_histogram),
            limiter_saturated: Family::default(),
            orders_refused: Family::default(),
            bar_batches: Counter::default(),
            bar_batch_requests: Counter::default(),
            position_mismatches: Family::default(),
            trading_state: Family::default(),
            risk_alerts: Family::default(),
            risk_var: Family::default(),
            risk_drawdown: Family::default(),
        };
        m.trading_state(TradingState::Active);
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Arc::new(m)
    }

    /// Registers every handle in a fresh registry (one per MetricsActor incarnation): herd's
    /// own under the `herd_` prefix, the standard `process_*` ones without it.
    pub fn registry(&self) -> Registry {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let r = root.sub_registry_with_prefix("herd");
        self.http.register(r);
        self.work.register(r);
        self.traces.register(r);
        self.journal.register(r);
        self.shared_cache.register(r);
        self.lease.register(r);
        r.register(
            "strategy_ticks",
            "Strategy ticks by instance and outcome",
            self.ticks.clone(),
        );
        r.register(
            "orders",
            "Orders by instance, side and outcome",
            self.orders.clone(),
        );
        r.register(
            "broker_requests",
            "Upstream broker requests by operation and outcome",
            self.broker_requests.clone(),
        );
        r.register_with_unit(
            "broker_request_duration",
            "Upstream broker request latency",
            prometheus_client::registry::Unit::Seconds,
            self.broker_latency.clone(),
        );
        r.register(
            "supervisor_restarts",
            "Restarts of supervised actors",
            self.restarts.clone(),
        );
        r.register(
            "child_state",
            "Lifecycle state of each supervised actor: one series per actor, its current state, value 1",
            self.child_state.clone(),
        );
        r.register(
            "cache_hits",
            "Cache lookups answered from the cache",
            self.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Cache lookups that went upstream",
            self.cache_misses.clone(),
        );
        r.register(
            "cache_evictions",
            "Expired cache entries removed",
            self.cache_evictions.clone(),
        );
        r.register(
            "breaker_state",
            "Circuit breaker state per operation (1 for the current state)",
            self.breaker_state.clone(),
        );
        r.register(
            "breaker_transitions",
            "Circuit breaker state changes",
            self.breaker_transitions.clone(),
        );
        r.register(
            "breaker_rejections",
            "Calls refused by an open circuit breaker",
            self.breaker_rejections.clone(),
        );
        r.register(
            "broker_retries",
            "Retried upstream reads",
            self.retries.clone(),
        );
        r.register(
            "broker_read_failures",
            "Upstream reads that failed for good, by reason",
            self.read_failures.clone(),
        );
        r.register(
            "broker_rows_skipped",
            "Rows of venue listings (orders, positions) herd could not read and skipped, by operation",
            self.rows_skipped.clone(),
        );
        r.register(
            "broker_shared_reads",
            "Reads served by joining an identical call already in flight",
            self.shared_reads.clone(),
        );
        r.register_with_unit(
            "limiter_wait",
            "Time spent waiting for the outbound rate limiter",
            prometheus_client::registry::Unit::Seconds,
            self.limiter_wait.clone(),
        );
        r.register(
            "limiter_saturated",
            "Requests not sent because the rate limiter had no token in time",
            self.limiter_saturated.clone(),
        );
        r.register(
            "orders_refused",
            "Orders refused before sending, by reason",
            self.orders_refused.clone(),
        );
        // Every reason from 0: a rate or an alert sees the first refusal of each.
        for reason in RefusalReason::ALL {
            let _ = self.orders_refused.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            });
        }
        r.register(
            "bar_batches",
            "Batched bars fetches",
            self.bar_batches.clone(),
        );
        r.register(
            "bar_batch_requests",
            "Instance bar requests served by batched fetches",
            self.bar_batch_requests.clone(),
        );
        r.register(
            "position_mismatches",
            "Symbols whose account position herd's fills and the positions it did not make do not explain",
            self.position_mismatches.clone(),
        );
        r.register(
            "trading_state",
            "What the risk gate lets through (1 for the current state)",
            self.trading_state.clone(),
        );
        r.register(
            "risk_alerts",
            "Alerts raised by risk managers, by instance and alert",
            self.risk_alerts.clone(),
        );
        r.register(
            "risk_value_at_risk_usd",
            "One-period historical VaR of the book each risk manager guards",
            self.risk_var.clone(),
        );
        r.register(
            "risk_drawdown",
            "Current drawdown of the book each risk manager guards (a fraction of its peak)",
            self.risk_drawdown.clone(),
        );
        r.register("build_info", "herd version", self.build_info.clone());
        root
    }

    pub fn order(&self, instance: &str, side: Side, outcome: OrderOutcome) {
        self.orders
            .get_or_create(&OrderLabels {
                instance: instance.to_owned(),
                side: side.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn broker_request(&self, op: Operation, outcome: RequestOutcome, elapsed: Duration) {
        let operation = op.as_str();
        let outcome = outcome.as_str();
        self.broker_requests
            .get_or_create(&RequestLabels { operation, outcome })
            .inc();
        self.broker_latency
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// A row of a venue listing herd could not read (an order another client placed in a shape
    /// herd does not trade), skipped so the rest of the page is used.
    pub fn row_skipped(&self, op: Operation) {
        self.rows_skipped
            .get_or_create(&OperationLabels {
                operation: op.as_str(),
            })
            .inc();
    }

    /// Starts `child`'s restart counter at 0, so a rate or an alert sees its first restart
    /// (a counter that appears only when it first counts has no earlier sample to compare).
    pub fn restarts_from_zero(&self, child: &str) {
        let _ = self.restarts.get_or_create(&ChildLabels {
            child: child.to_owned(),
        });
    }

    pub fn restart(&self, child: &str) {
        self.restarts
            .get_or_create(&ChildLabels {
                child: child.to_owned(),
            })
            .inc();
    }

    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    pub fn cache_evictions(&self, n: u64) {
        self.cache_evictions.inc_by(n);
    }

    /// (hits, misses, evictions) since the process started.
    pub fn cache_totals(&self) -> (u64, u64, u64) {
        (
            self.cache_hits.get(),
            self.cache_misses.get(),
            self.cache_evictions.get(),
        )
    }

    /// Sets `state` to 1 and the other states of `op`'s breaker of `account` to 0.
    pub fn breaker_state(&self, account: &AccountId, op: Operation, state: BreakerState) {
        for s in BreakerState::ALL {
            let labels = BreakerStateLabels {
                account: account.as_str().to_owned(),
                operation: op.as_str(),
                state: s.as_str(),
            };
            self.breaker_state
                .get_or_create(&labels)
                .set(i64::from(*s == state));
        }
    }

    pub fn breaker_transition(
        &self,
        account: &AccountId,
        op: Operation,
        from: BreakerState,
        to: BreakerState,
    ) {
        let labels = TransitionLabels {
            account: account.as_str().to_owned(),
            operation: op.as_str(),
            from: from.as_str(),
            to: to.as_str(),
        };
        self.breaker_transitions.get_or_create(&labels).inc();
    }

    pub fn breaker_rejection(&self, account: &AccountId, op: Operation) {
        self.breaker_rejections
            .get_or_create(&AccountOperationLabels {
                account: account.as_str().to_owned(),
                operation: op.as_str(),
            })
            .inc();
    }

    pub fn retries(&self, op: Operation, n: u32) {
        self.retries
            .get_or_create(&OperationLabels {
                operation: op.as_str(),
            })
            .inc_by(u64::from(n));
    }

    pub fn read_failure(&self, op: Operation, reason: ReadFailure) {
        let labels = FailureLabels {
            operation: op.as_str(),
            reason: reason.as_str(),
        };
        self.read_failures.get_or_create(&labels).inc();
    }

    pub fn shared_read(&self, op: Operation) {
        self.shared_reads
            .get_or_create(&OperationLabels {
                operation: op.as_str(),
            })
            .inc();
    }

    pub fn limiter_wait(&self, account: &AccountId, class: RequestClass, waited: Duration) {
        let account = account.as_str().to_owned();
        let class = class.as_str();
        self.limiter_wait
            .get_or_create(&AccountClassLabels { account, class })
            .observe(waited.as_secs_f64());
    }

    pub fn limiter_saturated(&self, account: &AccountId, class: RequestClass) {
        let account = account.as_str().to_owned();
        let class = class.as_str();
        self.limiter_saturated
            .get_or_create(&AccountClassLabels { account, class })
            .inc();
    }

    pub fn order_refused(&self, reason: RefusalReason) {
        let reason = reason.as_str();
        self.orders_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// One batched bars fetch that served `requests` instance requests.
    pub fn bar_batch(&self, requests: u64) {
        self.bar_batches.inc();
        self.bar_batch_requests.inc_by(requests);
    }

    /// How many symbols' account positions herd cannot explain at the last reading.
    pub fn position_mismatches(&self, account: &AccountId, symbols: usize) {
        let account = account.as_str().to_owned();
        self.position_mismatches
            .get_or_create(&AccountLabels { account })
            .set(i64::try_from(symbols).unwrap_or(i64::MAX));
    }

    /// Sets `state` to 1 and the other trading states to 0.
    pub fn trading_state(&self, state: TradingState) {
        for s in TradingState::ALL {
            let labels = StateLabels { state: s.as_str() };
            self.trading_state
                .get_or_create(&labels)
                .set(i64::from(*s == state));
        }
    }

    pub fn risk_alert(&self, instance: &str, alert: RiskAlert) {
        let labels = AlertLabels {
            instance: instance.to_owned(),
            alert: alert.as_str(),
        };
        self.risk_alerts.get_or_create(&labels).inc();
    }

    /// The figures a risk manager last computed for the book it guards.
    pub fn risk_figures(&self, instance: &str, var_usd: f64, drawdown: f64) {
        let labels = InstanceLabels {
            instance: instance.to_owned(),
        };
        self.risk_var.get_or_create(&labels).set(var_usd);
        self.risk_drawdown.get_or_create(&labels).set(drawdown);
    }

    /// Sets `state` to 1 and every other state of `child` to 0.
    /// Only the current state's series exists (value 1): with thousands of instances, a
    /// series per state and child would be most of `/metrics`. A state left is removed, so
    /// Prometheus marks it stale at once.
    /// A child moved from `from` to `to`: only its series for `to` exists afterwards. Touches
    /// two series, not one per state: the drain moves every child twice at once.
    pub fn child_state(&self, child: &str, from: Lifecycle, to: Lifecycle) {
        let mut labels = ChildStateLabels {
            child: child.to_owned(),
            state: from.as_str(),
        };
        if from != to {
            self.child_state.remove(&labels);
        }
        labels.state = to.as_str();
        self.child_state.get_or_create(&labels).set(1);
    }
}

#[cfg(test)]
mod tests;
