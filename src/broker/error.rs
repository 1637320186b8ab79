//! What a caller of the BrokerActor gets when a request cannot be served, typed by what it does
//! next: try again on the next tick, count a refusal, or look at the venue's answer.

use super::alpaca::AlpacaError;
use super::breaker::BreakerOpen;
use super::lease::NotOwner;
use super::limiter::Saturated;
use super::retry::RetryError;
use super::risk::Refusal;
use crate::journal::NotDurable;
use crate::metrics::RefusalReason;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The BrokerActor is down, restarting or gone: skip this tick, try the next.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A read failed after its retries, or was refused by a breaker or the quota.
    #[error(transparent)]
    Read(#[from] RetryError),
    /// An order submission's venue answer.
    #[error(transparent)]
    Upstream(#[from] AlpacaError),
    /// herd refused the order before sending it: nothing left the process.
    #[error("order refused: {0}")]
    Refused(#[from] NotSent),
    /// Shutting down: no new work is taken.
    #[error("broker is draining; no new work")]
    Draining,
    /// A panic was caught while serving the request.
    #[error("broker panicked: {0}")]
    Panicked(String),
}

impl BrokerError {
    /// The venue's answer behind this error, if a call was made.
    pub fn upstream(&self) -> Option<&AlpacaError> {
        match self {
            Self::Read(e) => e.upstream(),
            Self::Upstream(e) => Some(e),
            _ => None,
        }
    }
}

/// Why herd did not send an order. Each is the gate working, not the tick failing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotSent {
    /// The pre-trade risk gate said no.
    #[error(transparent)]
    Risk(#[from] Refusal),
    /// The account or positions the gate needs could not be read: fail closed.
    #[error("risk inputs unavailable: {0}")]
    RiskInputs(Box<BrokerError>),
    /// The submit breaker is open.
    #[error("not sent: {0}")]
    BreakerOpen(BreakerOpen),
    /// The order quota had no token in time.
    #[error("not sent: {0}")]
    Saturated(Saturated),
    /// Its intent could not be made durable: an order herd could forget is never sent.
    #[error("not sent: {0}")]
    Journal(NotDurable),
    /// herd began draining before the order's request was on the wire: a stop is a stop.
    #[error("not sent: herd is draining (shutting down)")]
    Draining,
    /// This replica does not hold the account's lease (or could lose it before the order
    /// arrived): another replica drives the account.
    #[error("not sent: {0}")]
    NotOwner(NotOwner),
}

impl NotSent {
    /// The bounded label of `herd_orders_refused_total{reason}`.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Self::Risk(refusal) => refusal.reason(),
            Self::RiskInputs(_) => RefusalReason::RiskInputsUnavailable,
            Self::BreakerOpen(_) => RefusalReason::BreakerOpen,
            Self::Saturated(_) => RefusalReason::RateLimitSaturated,
            Self::Journal(_) => RefusalReason::JournalUnavailable,
            Self::Draining => RefusalReason::Draining,
            Self::NotOwner(_) => RefusalReason::NotOwner,
        }
    }
}
