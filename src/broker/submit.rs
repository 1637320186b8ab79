//! Placing an order so that no failure mode can place it twice.
//!
//! The order carries a deterministic `client_order_id`. After an answer that leaves the outcome
//! unknown (timeout, 5xx, connection error, unreadable body) herd looks the order up by that id
//! before anything else: found → adopt it; not found → resubmit with the SAME id; a 422
//! "client_order_id must be unique" → it landed after all: look it up and adopt it.
//!
//! Invariant: a POST is only ever repeated after the venue said it does not have the order, and
//! always with the same id, so even a late-landing first attempt makes the repeat a harmless 422.

use std::time::Duration;

use super::alpaca::models::{Order, OrderRequest};
use super::alpaca::{AlpacaClient, AlpacaError};

/// Submissions of one order, at most (the first and two resubmissions after "not found").
const MAX_SUBMITS: u32 = 3;
/// Lookups after an unknown outcome before giving up for now (the periodic refresh goes on).
const MAX_LOOKUPS: u32 = 3;
/// Waits before lookups and resubmits: a request that is late at the venue may still land.
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
    /// Whether the venue has it is still unknown; the refresh loop keeps looking it up.
    Unknown(AlpacaError),
}

pub async fn submit_idempotent(client: &AlpacaClient, request: &OrderRequest) -> SubmitOutcome {
    let mut last_error = None;
    for _ in 0..MAX_SUBMITS {
        match client.submit_order(request).await {
            Ok(order) => return SubmitOutcome::Placed(order),
            Err(e) if e.is_duplicate_client_order_id() => {
                return match lookup(client, &request.client_order_id).await {
                    Ok(Some(order)) => SubmitOutcome::Adopted(order),
                    Ok(None) => SubmitOutcome::Unknown(e),
                    Err(lookup_error) => SubmitOutcome::Unknown(lookup_error),
                };
            }
            Err(AlpacaError::RateLimited { op, reset_at }) => {
                // Not placed: the venue answered before doing anything. Wait for the quota.
                let wait = reset_at
                    .and_then(|t| (t - chrono::Utc::now()).to_std().ok())
                    .unwrap_or(SETTLE)
                    .min(MAX_RATE_WAIT);
                last_error = Some(AlpacaError::RateLimited { op, reset_at });
                tokio::time::sleep(wait).await;
            }
            Err(e) if e.outcome_unknown() => {
                tracing::warn!(
                    client_order_id = %request.client_order_id, error = %e,
                    "order submit outcome unknown; looking it up by client_order_id"
                );
                tokio::time::sleep(SETTLE).await;
                match lookup(client, &request.client_order_id).await {
                    Ok(Some(order)) => return SubmitOutcome::Adopted(order),
                    Ok(None) => last_error = Some(e),
                    Err(lookup_error) => return SubmitOutcome::Unknown(lookup_error),
                }
            }
            Err(e) => return SubmitOutcome::Rejected(e),
        }
    }
    match last_error {
        Some(e @ AlpacaError::RateLimited { .. }) => SubmitOutcome::Rejected(e),
        Some(e) => SubmitOutcome::Unknown(e),
        None => SubmitOutcome::Unknown(AlpacaError::Malformed {
            op: super::alpaca::Operation::SubmitOrder,
            detail: "no attempt was made".into(),
        }),
    }
}

/// Looks an order up by client id, retrying answers that say nothing.
pub async fn lookup(
    client: &AlpacaClient,
    client_order_id: &str,
) -> Result<Option<Order>, AlpacaError> {
    let mut delay = SETTLE;
    let mut attempt = 1;
    loop {
        match client.order_by_client_id(client_order_id).await {
            Ok(found) => return Ok(found),
            Err(e) if e.is_retryable() && attempt < MAX_LOOKUPS => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
