//! Starting the lease keeper when replicas share accounts (`lease.enabled`).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::StartError;
use crate::broker::Reconciler;
use crate::broker::lease::{Lease, LeaseKeeper, Takeover};
use crate::domain::AccountId;
use crate::metrics::Metrics;
use crate::process::ProcessState;
use crate::settings::Settings;

/// The lease keeper, when `lease.enabled`: acquiring an account's lease reconciles it (the
/// journal read again) before its instances tick.
pub(super) fn start_lease_keeper(
    settings: &Settings,
    reconcilers: Vec<(Lease, Reconciler)>,
    process: &ProcessState,
    metrics: &Arc<Metrics>,
) -> Result<Option<(CancellationToken, tokio::task::JoinHandle<()>)>, StartError> {
    if !settings.lease.enabled {
        return Ok(None);
    }
    let leases = reconcilers.iter().map(|(l, _)| l.clone()).collect();
    let by_account: HashMap<AccountId, Reconciler> = reconcilers
        .into_iter()
        .map(|(l, r)| (l.account().clone(), r))
        .collect();
    let takeover: Takeover = Rc::new(move |account: AccountId, _epoch: u64| {
        let reconciler = by_account.get(&account).cloned();
        Box::pin(async move {
            match reconciler {
                Some(r) => r.take_over().await,
                None => Err(format!("no account {account} in this replica")),
            }
        })
    });
    let replica = settings.lease.replica.clone();
    tracing::info!(event = "leases_on", replica = %replica, ttl = %settings.lease.ttl, "accounts are driven by lease; standing by until acquired");
    let keeper = LeaseKeeper::new(
        &settings.lease,
        &settings.redis,
        replica,
        leases,
        takeover,
        Arc::clone(metrics),
    )
    .map_err(|e| StartError::Redis(e.to_string()))?;
    let release = CancellationToken::new();
    let handle = actix::spawn(keeper.run(process.drain_signal(), release.clone()));
    Ok(Some((release, handle)))
}
