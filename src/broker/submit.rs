//! Placing an order so that no failure mode can place it twice.
//!
//! The order carries a deterministic `client_order_id`. After ANY answer but success — a
//! timeout, 5xx, connection error, unreadable body, a 429 or a refusal — herd looks the order up
//! by that id before anything else: found → adopt it; not found → a refusal is believed, a 429
//! waits for the quota and an unknown outcome resubmits, both with the SAME id; a 422
//! "client_order_id must be unique" → it landed after all: look it up and adopt it.
//!
//! Invariants:
//! - A POST is only ever repeated after a lookup said the venue does not have the order, and
//!   always with the same id, so even a late-landing first attempt makes the repeat a harmless
//!   422. No order is recorded as rejected before such a lookup either.
//! - "Not sent" (the quota or the submit breaker refused) is a known outcome, never confused
//!   with "sent, answer lost".

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::alpaca::AlpacaError;
use super::alpaca::models::{Order, OrderRequest};
use super::error::NotSent;
use super::gateway::{Gateway, SubmitError};
use super::retry::RetryError;

/// Submissions of one order, at most (the first and two resubmissions after "not found").
const MAX_SUBMITS: u32 = 3;
/// Waits before a lookup or resubmit: a request that is late at the venue may still land.
const SETTLE: Duration = Duration::from_millis(100);
/// Longest wait for a rate-limit reset before leaving the order to the next tick.
const MAX_RATE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum SubmitOutcome {
    /// The venue accepted this submission.
    Placed(Order),
    /// The venue already had the order (an earlier attempt landed); adopted.
    Adopted(Order),
    /// The venue refused it on its merits.
    Rejected(AlpacaError),
    /// herd did not send it (quota or breaker); the decision was not executed.
    NotSent(NotSent),
    /// Whether the venue has it is still unknown; the refresh loop keeps looking it up.
    Unknown(String),
}

/// `stop` is the drain signal: an attempt still waiting for the quota when it fires is not sent
/// (after an unknown outcome, the order is then settled by lookup alone).
pub async fn submit_idempotent(
    gateway: &Gateway,
    request: &OrderRequest,
    stop: &CancellationToken,
) -> SubmitOutcome {
    let mut last_error: Option<AlpacaError> = None;
    for _ in 0..MAX_SUBMITS {
        let error = match gateway
            .submit_once(request, stop)
            .await
            .map_err(SubmitError::into_not_sent)
        {
            Ok(order) => return SubmitOutcome::Placed(order),
            Err(Ok(not_sent)) => {
                // After an unknown outcome the first attempt may have landed: find out first.
                return match last_error {
                    None => SubmitOutcome::NotSent(not_sent),
                    Some(_) => resolve(gateway, &request.client_order_id).await,
                };
            }
            Err(Err(venue)) => venue,
        };
        if error.is_duplicate_client_order_id() {
            return match lookup(gateway, &request.client_order_id).await {
                Ok(Some(order)) => SubmitOutcome::Adopted(order),
                Ok(None) => SubmitOutcome::Unknown(error.to_string()),
                Err(e) => SubmitOutcome::Unknown(e.to_string()),
            };
        }
        // Whatever the venue answered, it may hold the order: Alpaca has answered errors for
        // orders it accepted (alpaca-trade-api-js#255, Alpaca-API#270). Nothing is recorded as
        // rejected, and nothing is sent again, before a lookup says the venue does not have it.
        tracing::warn!(
            client_order_id = %request.client_order_id, error = %error,
            "order submit answered an error; looking it up by client_order_id before believing it"
        );
        tokio::time::sleep(SETTLE).await;
        match lookup(gateway, &request.client_order_id).await {
            Ok(Some(order)) => return SubmitOutcome::Adopted(order),
            Ok(None) => {}
            Err(e) => return SubmitOutcome::Unknown(e.to_string()),
        }
        if let AlpacaError::RateLimited { reset_at, .. } = &error {
            // Not placed: wait for the quota, then send again under the same id.
            let wait = reset_at
                .and_then(|t| (t - chrono::Utc::now()).to_std().ok())
                .unwrap_or(SETTLE)
                .min(MAX_RATE_WAIT);
            tokio::time::sleep(wait).await;
            last_error.get_or_insert(error);
            continue;
        }
        if !error.outcome_unknown() {
            return SubmitOutcome::Rejected(error);
        }
        last_error = Some(error);
    }
    match last_error {
        Some(e @ AlpacaError::RateLimited { .. }) => SubmitOutcome::Rejected(e),
        Some(e) => SubmitOutcome::Unknown(e.to_string()),
        None => SubmitOutcome::Unknown("no attempt was made".into()),
    }
}

/// After an unknown outcome, when herd cannot send again: the order's fate by lookup alone.
async fn resolve(gateway: &Gateway, client_order_id: &str) -> SubmitOutcome {
    match lookup(gateway, client_order_id).await {
        Ok(Some(order)) => SubmitOutcome::Adopted(order),
        Ok(None) => {
            SubmitOutcome::Unknown("not found at the venue yet; cannot resubmit now".into())
        }
        Err(e) => SubmitOutcome::Unknown(e.to_string()),
    }
}

/// Looks an order up by client id (a guarded read, retried within the read budget).
pub async fn lookup(gateway: &Gateway, client_order_id: &str) -> Result<Option<Order>, RetryError> {
    gateway.order_by_client_id(client_order_id).await
}
