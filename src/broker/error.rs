//! What a caller of the BrokerActor gets when a request cannot be served.

use super::alpaca::AlpacaError;
use super::retry::RetryError;

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
    /// herd refused the order before sending it (risk gate, halt, quota, breaker): nothing
    /// left the process.
    #[error("order refused: {0}")]
    Refused(String),
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
