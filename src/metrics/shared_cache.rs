//! The cache replicas share through Redis: bar-set lookups by outcome, and whether Redis is
//! answering.
//!
//! Invariant: a symbol's bar set counts once as a hit or a miss when it is looked up, and once
//! more when it was waited for (another replica was fetching it): a hit if that fetch came in
//! time, else a miss. Every failed Redis call (or call not made because the connection is
//! down) counts once as an error.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How a shared-cache lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedCacheOutcome {
    Hit,
    Miss,
    Error,
}

impl SharedCacheOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Cheap to clone: the handles are shared.
#[derive(Clone, Debug, Default)]
pub struct SharedCacheMetrics {
    requests: Family<OutcomeLabels, Counter>,
    up: Gauge,
}

impl SharedCacheMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "shared_cache_requests",
            "Bar sets looked up in the cache replicas share, and after waiting for another replica's fetch (hit, miss); failed Redis calls (error)",
            self.requests.clone(),
        );
        r.register(
            "shared_cache_up",
            "1 while Redis answers (or is not configured), 0 while herd fetches for itself",
            self.up.clone(),
        );
        // Rates and alerts need every outcome from the start.
        for outcome in [
            SharedCacheOutcome::Hit,
            SharedCacheOutcome::Miss,
            SharedCacheOutcome::Error,
        ] {
            let _ = self.requests.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        self.up.set(1);
    }

    pub fn count(&self, outcome: SharedCacheOutcome, n: u64) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc_by(n);
    }

    pub fn up(&self, up: bool) {
        self.up.set(i64::from(up));
    }
}
