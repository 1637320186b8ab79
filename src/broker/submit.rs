//! Placing an order so that no failure mode can place it twice.
//!
//! The order carries a deterministic `client_order_id`. After an answer that leaves the outcome
//! unknown (timeout, 5xx, connection error, unreadable body) herd looks the order up by that id
//! before anything else: found → adopt it; not found → resubmit with the SAME id; a 422
//! "client_order_id must be unique" → it landed after all: look it up and adopt it.
//!
//! Invariants:
//! - A POST is only ever repeated after the venue said it does not have the order (or answered
//!   429 before doing anything), and always with the same id, so even a late-landing first
//!   attempt makes the repeat a harmless 422.
//! - "Not sent" (the quota or the submit breaker refused) is a known outcome, never confused
//!   with "sent, answer lost".

use std::time::Duration;

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

pub async fn submit_idempotent(gateway: &Gateway, request: &OrderRequest) -> SubmitOutcome {
    let mut last_error: Option<AlpacaError> = None;
    for _ in 0..MAX_SUBMITS {
        let error = match gateway
            .submit_once(request)
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
        if let AlpacaError::RateLimited { reset_at, .. } = &error {
            // The venue answered before doing anything: not placed. Wait for the quota.
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
        tracing::warn!(
            client_order_id = %request.client_order_id, error = %error,
            "order submit outcome unknown; looking it up by client_order_id"
        );
        tokio::time::sleep(SETTLE).await;
        match lookup(gateway, &request.client_order_id).await {
            Ok(Some(order)) => return SubmitOutcome::Adopted(order),
            Ok(None) => last_error = Some(error),
            Err(e) => return SubmitOutcome::Unknown(e.to_string()),
        }
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
