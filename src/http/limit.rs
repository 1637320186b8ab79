//! Inbound rate limiting, per client address and endpoint class (GCRA, `governor`).
//!
//! Classes: `probe` (`/livez`, `/readyz`, their aliases and `/metrics`: generous, Kubernetes
//! and Prometheus poll them), `admin` (the admin API and the seeds' admin paths: strict) and
//! `read` (everything else). A refused request answers 429 with `Retry-After` and is counted
//! in `herd_http_rate_limited_total{class}`.
//!
//! Invariants:
//! - The client is the connection's peer address, never a forwarded-for header a client could
//!   forge; behind a proxy every client shares the proxy's budget (raise the limits there).
//! - A class whose limit is 0 is not limited.
//! - The per-address state is pruned of addresses that are back to a full budget, so many
//!   one-off clients do not grow it without bound.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

use super::admin::{ADMIN, SEED_CACHE_CLEAR, SEED_EXECUTE, SEED_RESET_BREAKER};
use super::ops::{LIVE, LIVEZ, METRICS, READY, READYZ};
use crate::domain::InvalidSetting;

/// `[http.rate_limit]`: requests per client address; 0 turns a class's limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub probes_per_second: u32,
    pub reads_per_second: u32,
    pub admin_per_minute: u32,
}

impl RateLimitSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        for (key, value, max) in [
            (
                "http.rate_limit.probes_per_second",
                self.probes_per_second,
                1_000_000,
            ),
            (
                "http.rate_limit.reads_per_second",
                self.reads_per_second,
                1_000_000,
            ),
            (
                "http.rate_limit.admin_per_minute",
                self.admin_per_minute,
                60_000,
            ),
        ] {
            if value > max {
                return Err(InvalidSetting::new(
                    key,
                    value,
                    format!("must be at most {max} (0 turns the limit off)"),
                ));
            }
        }
        Ok(())
    }
}

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointClass {
    Probe,
    Read,
    Admin,
}

impl EndpointClass {
    pub fn of(path: &str) -> Self {
        if [LIVEZ, LIVE, READYZ, READY, METRICS].contains(&path) {
            Self::Probe
        } else if path == ADMIN
            || path.starts_with("/admin/")
            || [SEED_EXECUTE, SEED_CACHE_CLEAR, SEED_RESET_BREAKER].contains(&path)
        {
            Self::Admin
        } else {
            Self::Read
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

/// Checks between prunes of the per-address state.
const PRUNE_EVERY: u64 = 10_000;

pub struct InboundLimiter {
    probe: Option<DefaultKeyedRateLimiter<IpAddr>>,
    read: Option<DefaultKeyedRateLimiter<IpAddr>>,
    admin: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
    clock: DefaultClock,
}

impl InboundLimiter {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let keyed = |quota: Option<Quota>| quota.map(DefaultKeyedRateLimiter::dashmap);
        let per_second = |n: u32| NonZeroU32::new(n).map(Quota::per_second);
        let per_minute = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        Self {
            probe: keyed(per_second(settings.probes_per_second)),
            read: keyed(per_second(settings.reads_per_second)),
            admin: keyed(per_minute(settings.admin_per_minute)),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `client` has used up `class`'s budget: how long until it may ask again.
    pub fn check(&self, class: EndpointClass, client: IpAddr) -> Result<(), Duration> {
        let limiter = match class {
            EndpointClass::Probe => &self.probe,
            EndpointClass::Read => &self.read,
            EndpointClass::Admin => &self.admin,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(probes: u32, reads: u32, admin: u32) -> RateLimitSettings {
        RateLimitSettings {
            probes_per_second: probes,
            reads_per_second: reads,
            admin_per_minute: admin,
        }
    }

    #[test]
    fn paths_fall_in_their_class() {
        assert_eq!(EndpointClass::of("/livez"), EndpointClass::Probe);
        assert_eq!(EndpointClass::of("/metrics"), EndpointClass::Probe);
        assert_eq!(
            EndpointClass::of("/admin/trading/halt"),
            EndpointClass::Admin
        );
        assert_eq!(EndpointClass::of("/execute"), EndpointClass::Admin);
        assert_eq!(EndpointClass::of("/strategies"), EndpointClass::Read);
        assert_eq!(EndpointClass::of("/administrator"), EndpointClass::Read);
    }

    #[test]
    fn each_address_has_its_own_budget_per_class_and_zero_is_no_limit() {
        let limiter = InboundLimiter::new(&settings(0, 2, 1));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..1000 {
            assert!(limiter.check(EndpointClass::Probe, a).is_ok());
        }
        assert!(limiter.check(EndpointClass::Read, a).is_ok());
        assert!(limiter.check(EndpointClass::Read, a).is_ok());
        let wait = limiter.check(EndpointClass::Read, a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limiter.check(EndpointClass::Read, b).is_ok(),
            "another address"
        );
        assert!(limiter.check(EndpointClass::Admin, a).is_ok());
        let wait = limiter.check(EndpointClass::Admin, a).unwrap_err();
        assert!(wait > Duration::from_secs(50), "one a minute: {wait:?}");
    }

    #[test]
    fn a_limit_past_the_maximum_is_refused_with_its_key() {
        let e = settings(0, 2_000_000, 1).check().unwrap_err();
        assert_eq!(e.key, "http.rate_limit.reads_per_second");
    }
}
