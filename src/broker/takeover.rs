//! Reconciling one account before its instances trade: at start, and again whenever this
//! replica acquires the account's lease (the previous owner's orders are in the shared journal).
//!
//! Invariant: an account's book holds the journal's rows of the account's own instances (rows
//! of instances no longer configured stay with the first account), its unsettled orders are
//! looked up at the venue, and the account's positions are compared, all before any tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::OrderBook;
use super::gateway::Gateway;
use super::recovery::recover;
use crate::domain::{AccountId, InstanceId};
use crate::journal::{Journal, Restored, keys};
use crate::metrics::Metrics;

/// What reconciling one account needs (cloning shares it).
#[derive(Clone)]
pub struct Reconciler {
    pub account: AccountId,
    /// The first account keeps the rows of instances no longer configured.
    pub first: bool,
    /// Which account each configured instance trades.
    pub owners: Arc<HashMap<InstanceId, AccountId>>,
    pub book: Arc<OrderBook>,
    pub gateway: Gateway,
    pub journal: Journal,
    pub metrics: Arc<Metrics>,
    /// How far back the venue's order history is read for an account the journal lacks.
    pub retention: Duration,
}

impl Reconciler {
    fn owns(&self, instance: &InstanceId) -> bool {
        match self.owners.get(instance) {
            Some(account) => *account == self.account,
            None => self.first,
        }
    }

    /// Loads `restored` into the book (replacing what it held) and reconciles with the venue.
    pub async fn reconcile(&self, restored: &Restored) {
        let owns = |i: &InstanceId| self.owns(i);
        self.book.reload(restored, &owns);
        let instances: Vec<InstanceId> = self
            .owners
            .iter()
            .filter(|(_, a)| **a == self.account)
            .map(|(i, _)| i.clone())
            .collect();
        let empty = restored.is_empty_for(&keys::external(&self.account), &owns);
        recover(
            &self.gateway,
            &self.book,
            &self.metrics,
            &instances,
            empty,
            self.retention,
        )
        .instrument(tracing::info_span!("account", account = %self.account))
        .await;
    }

    /// Takes the account over: the journal read again (the previous owner wrote it), then
    /// [`Reconciler::reconcile`].
    pub async fn take_over(&self) -> Result<(), String> {
        let restored = self.journal.restore().await?;
        self.reconcile(&restored).await;
        Ok(())
    }
}
