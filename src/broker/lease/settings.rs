//! `[lease]`: whether replicas share accounts by lease, and how long a lease lasts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{HumanDuration, InvalidSetting};

/// `[lease]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// Replicas configure the same accounts and each account is driven by the one holding its
    /// lease (needs `redis.url`).
    pub enabled: bool,
    /// A replica that cannot renew stops sending an account's orders before this has passed
    /// since its last confirmed renewal; another replica takes over after it.
    pub ttl: HumanDuration,
    /// This replica's name in the leases; empty: `HOSTNAME` (a pod's name), else `herd-<pid>`.
    #[serde(default)]
    pub replica: String,
}

impl LeaseSettings {
    /// `redis_set`: whether `redis.url` is; `call_timeout`: `broker.call_timeout`, the longest
    /// an order may take to reach the venue after passing the fence.
    pub fn check(&self, redis_set: bool, call_timeout: Duration) -> Result<(), InvalidSetting> {
        if !self.enabled {
            return Ok(());
        }
        if !redis_set {
            return Err(InvalidSetting::new(
                "lease.enabled",
                "true",
                "needs redis.url: the leases live in Redis",
            ));
        }
        let ttl = self.ttl.get();
        let least = (call_timeout * 3).max(Duration::from_secs(3));
        if ttl < least || ttl > Duration::from_secs(300) {
            return Err(InvalidSetting::new(
                "lease.ttl",
                format!("{:?}", self.ttl.to_string()),
                format!(
                    "must be between {} (three times broker.call_timeout: renewals come every \
                     third of it, and an order must reach the venue within it) and \"5m\"",
                    HumanDuration(least)
                ),
            ));
        }
        if self.replica.contains(char::is_whitespace) || self.replica.len() > 100 {
            return Err(InvalidSetting::new(
                "lease.replica",
                format!("{:?}", self.replica),
                "must be at most 100 characters without spaces (empty: the host name)",
            ));
        }
        Ok(())
    }

    /// This replica's name: `lease.replica`, else `hostname`, else `herd-<pid>`.
    pub fn replica_name(&self, hostname: Option<&str>) -> String {
        if !self.replica.is_empty() {
            return self.replica.clone();
        }
        match hostname.map(str::trim).filter(|h| !h.is_empty()) {
            Some(host) => host.to_owned(),
            None => format!("herd-{}", std::process::id()),
        }
    }
}
