//! Request counters per route, readable at `GET /__sim/stats`.
//!
//! herd's broker tests assert things like "one bars request per batch window" by counting
//! here. A route is `METHOD pattern` (e.g. `GET /v2/stocks/bars`, `GET /v2/orders/{id}`).
//!
//! Invariants: every `/v2` request is counted exactly once, with the status the client got
//! (`reset` for dropped connections); control endpoints (`/__sim`) are not counted.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
pub struct RouteStats {
    pub requests: u64,
    /// Responses by status ("200", "429", ... or "reset").
    pub statuses: BTreeMap<String, u64>,
    /// The W3C `traceparent` of the latest request on this route that sent one: how a client
    /// checks that its traces reach the venue's side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_traceparent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// When counting started (wall clock; reset by `DELETE /__sim/stats`).
    pub since: DateTime<Utc>,
    pub requests: u64,
    /// 429s from the quota and from injected throttling.
    pub rate_limited: u64,
    /// Injected faults by kind: throttle, error, timeout, reset, malformed, lost, and delayed
    /// (counted when the request arrives, before its added latency: a client's test knows a
    /// request is on the wire and held there).
    pub faults: BTreeMap<String, u64>,
    /// Bars sent in answers to bars requests (either route): how a client checks that it asks
    /// only for the bars it lacks.
    pub bars_served: u64,
    pub routes: BTreeMap<String, RouteStats>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            since: Utc::now(),
            requests: 0,
            rate_limited: 0,
            faults: BTreeMap::new(),
            bars_served: 0,
            routes: BTreeMap::new(),
        }
    }
}

impl Stats {
    /// Counts a finished request on `route` with `status` (e.g. "200" or "reset").
    pub fn record(&mut self, route: &str, status: &str) {
        self.requests += 1;
        if status == "429" {
            self.rate_limited += 1;
        }
        let r = self.routes.entry(route.to_string()).or_default();
        r.requests += 1;
        *r.statuses.entry(status.to_string()).or_default() += 1;
    }

    /// Keeps the trace context a request on `route` carried.
    pub fn traced(&mut self, route: &str, traceparent: &str) {
        self.routes
            .entry(route.to_string())
            .or_default()
            .last_traceparent = Some(traceparent.to_owned());
    }

    pub fn fault(&mut self, kind: &str) {
        *self.faults.entry(kind.to_string()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_route_and_status() {
        let mut s = Stats::default();
        s.record("GET /v2/stocks/bars", "200");
        s.record("GET /v2/stocks/bars", "429");
        s.record("GET /v2/clock", "200");
        assert_eq!(s.requests, 3);
        assert_eq!(s.rate_limited, 1);
        let bars = &s.routes["GET /v2/stocks/bars"];
        assert_eq!(bars.requests, 2);
        assert_eq!(bars.statuses["429"], 1);
    }
}
