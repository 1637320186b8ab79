//! What a caller of the BrokerActor gets when a request cannot be served.

use super::alpaca::AlpacaError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The BrokerActor is down, restarting or gone: skip this tick, try the next.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The venue call failed; the error says whether repeating it can help.
    #[error(transparent)]
    Upstream(#[from] AlpacaError),
    /// herd refused the order before sending it (risk gate, halt); nothing left the process.
    #[error("order refused: {0}")]
    Refused(String),
    /// Shutting down: no new work is taken.
    #[error("broker is draining; no new work")]
    Draining,
    /// A panic was caught while serving the request.
    #[error("broker panicked: {0}")]
    Panicked(String),
}
