//! The HTTP server's metrics: requests by route template, method and status, their latency,
//! and requests refused by the inbound rate limiter.
//!
//! Invariant: `route` is a route template (`/strategies/{id}`) or `unmatched`, never a raw
//! path, and `method` is one of a fixed few: every label set is bounded.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

fn duration_histogram() -> Histogram {
    // 0.1 ms … ~1.6 s: ops endpoints answer from memory; a slow one is the news.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    rate_limited: Family<ClassLabels, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            rate_limited: Family::default(),
        }
    }
}

/// A bounded label for an HTTP method.
fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

impl HttpMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "http_requests",
            "HTTP requests served, by route template, method and status",
            self.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route template",
            Unit::Seconds,
            self.duration.clone(),
        );
        r.register(
            "http_rate_limited",
            "HTTP requests refused by the inbound rate limiter, by endpoint class",
            self.rate_limited.clone(),
        );
    }

    pub fn request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method_label(method),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// `class` is one of the limiter's endpoint classes.
    pub fn rate_limited(&self, class: &'static str) {
        self.rate_limited
            .get_or_create(&ClassLabels { class })
            .inc();
    }
}
