//! Which replica drives which account: a lease per account in Redis, with fencing.
//!
//! With `lease.enabled`, every replica configures the same accounts and each account is driven
//! by the one replica holding its lease. A replica that holds no lease on an account is on
//! standby for it: its instances of that account do not tick and its broker sends no order for
//! it. Acquiring a lease bumps the account's epoch (a counter in Redis); the new owner reads
//! the shared journal again, settles what the previous owner left in flight, reconciles with
//! the venue, and only then lets the account's instances tick.
//!
//! Why Redis and not Kubernetes Lease objects: herd already depends on Redis for the shared
//! market-data cache, a Redis lease works the same under Compose, systemd or Kubernetes, and
//! the tests run it on loopback against a real server; a Kubernetes Lease would need an API
//! server in every test and RBAC in every deployment.
//!
//! Invariants (fencing):
//! - A lease is believed held only until `ttl` after the renewal request that confirmed it was
//!   *sent* (Redis expires it no earlier), minus `broker.call_timeout`: an order that passes
//!   [`Lease::fence`] reaches the venue while the lease is still this replica's, even if the
//!   process is then paused (SIGSTOP) or cut off from Redis. The clock is monotonic: a paused
//!   process wakes to find its lease expired, never extended.
//! - Every order sent under a lease carries its epoch into the journal; none is sent without
//!   a current lease.
//! - Even a fence that fails in some way no clock can see cannot duplicate an order: a
//!   decision's `client_order_id` is the same whichever replica sends it, and the venue refuses
//!   a second order with the same id.

mod keeper;
mod settings;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use keeper::{LeaseKeeper, Takeover};
pub use settings::LeaseSettings;

use crate::domain::AccountId;

/// Where an account stands with this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Leases are off: this replica drives every account it configures.
    Unleased,
    /// Another replica holds the lease, or nobody could be asked: no tick, no order.
    Standby,
    /// The lease is held; the journal and the venue are being reconciled before any tick.
    Reconciling,
    /// The lease is held and the account reconciled: instances tick, orders are sent.
    Owned,
}

/// The lease of one account as this replica holds it (cloning shares it).
#[derive(Clone)]
pub struct Lease(Arc<Inner>);

struct Inner {
    account: AccountId,
    /// An order must reach the venue within this of passing the fence.
    margin: Duration,
    view: Mutex<View>,
}

#[derive(Debug, Clone)]
struct View {
    state: LeaseState,
    epoch: Option<u64>,
    /// When Redis may expire the lease at the earliest (monotonic clock).
    expires: Option<Instant>,
    /// The last renewal (or acquisition) Redis confirmed.
    renewed: Option<Instant>,
}

/// Why an order may not be sent now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this replica does not hold the lease of account {account} ({state:?})")]
pub struct NotOwner {
    pub account: String,
    pub state: LeaseState,
}

/// An account's lease as `/health` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LeaseStatus {
    pub state: LeaseState,
    /// The epoch this replica holds the lease in.
    pub epoch: Option<u64>,
    /// Seconds since Redis last confirmed the lease (renewal lag).
    pub renewed_seconds_ago: Option<f64>,
}

impl Lease {
    /// An account no lease governs: always owned, never fenced.
    pub fn unleased(account: AccountId) -> Self {
        Self::with_state(account, LeaseState::Unleased, Duration::ZERO)
    }

    /// An account on standby until the keeper acquires its lease; `margin` is the longest an
    /// order may take to reach the venue (`broker.call_timeout`).
    pub fn standby(account: AccountId, margin: Duration) -> Self {
        Self::with_state(account, LeaseState::Standby, margin)
    }

    fn with_state(account: AccountId, state: LeaseState, margin: Duration) -> Self {
        Self(Arc::new(Inner {
            account,
            margin,
            view: Mutex::new(View {
                state,
                epoch: None,
                expires: None,
                renewed: None,
            }),
        }))
    }

    pub fn account(&self) -> &AccountId {
        &self.0.account
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.0.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this replica may still hold the lease (reconciling or owned, not past the time
    /// Redis may expire it): what it writes of the account to the shared journal then counts.
    pub fn holds(&self) -> bool {
        let v = self.view();
        match v.state {
            LeaseState::Unleased => true,
            LeaseState::Reconciling | LeaseState::Owned => {
                v.expires.is_some_and(|e| Instant::now() < e)
            }
            LeaseState::Standby => false,
        }
    }

    /// Whether the account's instances may tick now.
    pub fn may_tick(&self) -> bool {
        self.fence().is_ok()
    }

    /// The epoch to send an order under, `None` when leases are off; refused when this
    /// replica does not hold the lease, has not reconciled yet, or may lose it before an order
    /// sent now would reach the venue.
    pub fn fence(&self) -> Result<Option<u64>, NotOwner> {
        let v = self.view();
        let refuse = |state| NotOwner {
            account: self.0.account.to_string(),
            state,
        };
        match v.state {
            LeaseState::Unleased => Ok(None),
            LeaseState::Owned => {
                let safe = v
                    .expires
                    .is_some_and(|e| Instant::now() + self.0.margin < e);
                if safe {
                    Ok(v.epoch)
                } else {
                    Err(refuse(LeaseState::Standby))
                }
            }
            other => Err(refuse(other)),
        }
    }

    /// Why an order may not be sent now, as the lease stands (also when it moved to another
    /// epoch since the order was recorded).
    pub fn not_owner(&self) -> NotOwner {
        let state = match self.view().state {
            LeaseState::Owned | LeaseState::Unleased => LeaseState::Standby,
            other => other,
        };
        NotOwner {
            account: self.0.account.to_string(),
            state,
        }
    }

    pub fn status(&self) -> LeaseStatus {
        let v = self.view();
        LeaseStatus {
            state: v.state,
            epoch: v.epoch,
            renewed_seconds_ago: v.renewed.map(|r| r.elapsed().as_secs_f64()),
        }
    }

    /// Acquired in `epoch`, confirmed by a request sent at `sent`: reconciling until
    /// [`Lease::reconciled`].
    fn acquired(&self, epoch: u64, sent: Instant, ttl: Duration) {
        let mut v = self.view();
        v.state = LeaseState::Reconciling;
        v.epoch = Some(epoch);
        v.expires = Some(sent + ttl);
        v.renewed = Some(Instant::now());
    }

    /// The reconciliation after acquiring `epoch` finished: trade, unless the lease was lost
    /// meanwhile.
    fn reconciled(&self, epoch: u64) -> bool {
        let mut v = self.view();
        if v.state == LeaseState::Reconciling && v.epoch == Some(epoch) {
            v.state = LeaseState::Owned;
            true
        } else {
            false
        }
    }

    /// Redis confirmed the lease again, by a request sent at `sent`.
    fn renewed(&self, sent: Instant, ttl: Duration) {
        let mut v = self.view();
        v.expires = Some(sent + ttl);
        v.renewed = Some(Instant::now());
    }

    /// Lost (another replica holds it, or it expired): standby.
    fn lost(&self) {
        let mut v = self.view();
        v.state = LeaseState::Standby;
        v.epoch = None;
        v.expires = None;
    }

    /// The epoch held (reconciling or owned), for renewal.
    fn held(&self) -> Option<u64> {
        let v = self.view();
        matches!(v.state, LeaseState::Reconciling | LeaseState::Owned)
            .then_some(v.epoch)
            .flatten()
    }

    /// Whether a held lease has passed the time Redis may have expired it.
    fn expired(&self) -> bool {
        self.view().expires.is_some_and(|e| Instant::now() >= e)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod view_tests {
    use super::*;

    fn account() -> AccountId {
        AccountId::parse("a").unwrap()
    }

    #[test]
    fn an_unleased_account_is_always_driven() {
        let lease = Lease::unleased(account());
        assert_eq!(lease.fence(), Ok(None));
        assert!(lease.may_tick());
    }

    #[test]
    fn a_lease_is_traded_only_once_reconciled_and_while_safely_held() {
        let margin = Duration::from_secs(3);
        let lease = Lease::standby(account(), margin);
        assert!(lease.fence().is_err(), "standby");
        let now = Instant::now();
        lease.acquired(7, now, Duration::from_secs(10));
        assert_eq!(
            lease.fence().unwrap_err().state,
            LeaseState::Reconciling,
            "not before reconciling"
        );
        assert!(lease.holds(), "a reconciling owner writes its recovery");
        assert!(lease.reconciled(7));
        assert_eq!(lease.fence(), Ok(Some(7)));
        // Renewed by a request sent 8 s ago: 2 s left, less than an order may take.
        lease.renewed(now - Duration::from_secs(8), Duration::from_secs(10));
        assert!(lease.fence().is_err(), "too close to expiry to send");
        assert!(
            lease.holds(),
            "still held: what completes now is still recorded"
        );
        lease.lost();
        assert!(!lease.holds(), "standing by, nothing is recorded");
        assert!(!lease.reconciled(7), "a lost lease is not resumed");
        assert_eq!(lease.status().state, LeaseState::Standby);
    }
}
