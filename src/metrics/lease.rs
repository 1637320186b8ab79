//! Account leases as this replica holds them: whether it drives each account, in which epoch,
//! and how long ago Redis last confirmed it.
//!
//! Invariant: the series exist only for accounts under a lease (`lease.enabled`); each is set
//! by the lease keeper's every round, so the renewal age never goes stale while herd runs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

/// Cheap to clone: the handles are shared.
#[derive(Clone, Debug, Default)]
pub struct LeaseMetrics {
    owned: Family<AccountLabels, Gauge>,
    epoch: Family<AccountLabels, Gauge>,
    renewal_age: Family<AccountLabels, Gauge<f64, AtomicU64>>,
}

impl LeaseMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "lease_owned",
            "1 while this replica holds the account's lease and has reconciled it (it trades the account), else 0",
            self.owned.clone(),
        );
        r.register(
            "lease_epoch",
            "The epoch of the account's lease this replica holds (0: none)",
            self.epoch.clone(),
        );
        r.register(
            "lease_renewal_age_seconds",
            "Seconds since Redis last confirmed this replica's lease of the account (renewal lag)",
            self.renewal_age.clone(),
        );
    }

    /// One account's lease as the keeper last saw it.
    pub fn set(&self, account: &str, owned: bool, epoch: Option<u64>, age: Option<f64>) {
        let labels = AccountLabels {
            account: account.to_owned(),
        };
        self.owned.get_or_create(&labels).set(i64::from(owned));
        let epoch = epoch.and_then(|e| i64::try_from(e).ok()).unwrap_or(0);
        self.epoch.get_or_create(&labels).set(epoch);
        self.renewal_age
            .get_or_create(&labels)
            .set(age.unwrap_or(0.0));
    }
}
