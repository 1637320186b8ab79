//! Errors of upstream calls, typed by what the caller does next.
//!
//! | variant | reads | order submit |
//! |---|---|---|
//! | `Timeout`, `Connect`, `Server`, `Malformed` | retry | outcome unknown: look the order up by client id |
//! | `RateLimited` | retry after the reset | not placed: safe to resubmit with the same id |
//! | `Rejected`, `NotFound` | report | final: record the rejection |
//! | `Unauthorized` | give up: configuration is wrong | give up |

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::Operation;
use crate::metrics::RequestOutcome;

/// The rate-limit headers of an answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimitHeaders {
    pub reset_at: Option<DateTime<Utc>>,
    pub remaining: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AlpacaError {
    #[error("{op}: no answer within {after:?}")]
    Timeout { op: Operation, after: Duration },
    #[error("{op}: connection failed: {detail}")]
    Connect { op: Operation, detail: String },
    #[error("{op}: venue error {status}: {message}")]
    Server {
        op: Operation,
        status: u16,
        message: String,
    },
    #[error("{op}: rate limited (429), quota resets at {reset_at:?}, {quota_left:?} requests left")]
    RateLimited {
        op: Operation,
        /// `X-Ratelimit-Reset`: when the quota window ends.
        reset_at: Option<DateTime<Utc>>,
        /// `X-Ratelimit-Remaining`: above 0, the 429 was a transient throttle, not the quota.
        quota_left: Option<u64>,
    },
    #[error("{op}: rejected with {status} (code {code:?}): {message}")]
    Rejected {
        op: Operation,
        status: u16,
        code: Option<u64>,
        message: String,
    },
    #[error("{op}: not found: {message}")]
    NotFound { op: Operation, message: String },
    #[error(
        "{op}: not authorised ({status}): {message}; check ALPACA_API_KEY / ALPACA_SECRET_KEY and the base URL"
    )]
    Unauthorized {
        op: Operation,
        status: u16,
        message: String,
    },
    #[error("{op}: unreadable answer: {detail}")]
    Malformed { op: Operation, detail: String },
}

impl AlpacaError {
    /// A read that failed this way may succeed if repeated.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Connect { .. }
                | Self::Server { .. }
                | Self::RateLimited { .. }
                | Self::Malformed { .. }
        )
    }

    /// For an order submit: the venue may or may not have the order.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Connect { .. }
                | Self::Server { .. }
                | Self::Malformed { .. }
        )
    }

    /// Alpaca's answer to a reused `client_order_id`: a 409 or 422 whose message names the
    /// client order id ("client_order_id must be unique" is the known wording, alpaca-py
    /// issue #260; the match does not depend on the rest of it). Not the code alone: 40010001
    /// is Alpaca's code for every invalid parameter (Alpaca-API issue #135: "order_id is
    /// missing"). Mistaking another refusal for this one is safe: it leads to a lookup, and a
    /// lookup that finds nothing leaves the order unknown until the refresh confirms it absent.
    pub fn is_duplicate_client_order_id(&self) -> bool {
        match self {
            Self::Rejected {
                status, message, ..
            } => {
                let message = message.to_ascii_lowercase();
                matches!(status, 409 | 422)
                    && (message.contains("client_order_id") || message.contains("client order id"))
            }
            _ => false,
        }
    }

    /// The bounded label of `herd_broker_requests_total{outcome}`.
    pub fn outcome(&self) -> RequestOutcome {
        match self {
            Self::Timeout { .. } => RequestOutcome::Timeout,
            Self::Connect { .. } => RequestOutcome::ConnectError,
            Self::Server { .. } => RequestOutcome::ServerError,
            Self::RateLimited { .. } => RequestOutcome::RateLimited,
            Self::Rejected { .. } => RequestOutcome::Rejected,
            Self::NotFound { .. } => RequestOutcome::NotFound,
            Self::Unauthorized { .. } => RequestOutcome::Unauthorized,
            Self::Malformed { .. } => RequestOutcome::Malformed,
        }
    }

    pub(super) fn from_transport(op: Operation, error: &reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            Self::Timeout { op, after: timeout }
        } else if error.is_decode() {
            Self::Malformed {
                op,
                detail: error.to_string(),
            }
        } else {
            // Walk the source chain: reqwest's top-level message alone says little.
            let mut detail = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            Self::Connect { op, detail }
        }
    }

    /// Classifies a non-2xx answer. Alpaca's body is `{"code":…, "message":…}`, but gateways
    /// send bodies without `code`, or HTML.
    pub(super) fn from_status(
        op: Operation,
        status: u16,
        body: &[u8],
        quota: RateLimitHeaders,
    ) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            code: Option<u64>,
            message: Option<String>,
        }
        let parsed = serde_json::from_slice::<Body>(body).ok();
        let code = parsed.as_ref().and_then(|b| b.code);
        let message = parsed
            .and_then(|b| b.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        match status {
            401 => Self::Unauthorized {
                op,
                status,
                message,
            },
            // 403 with an Alpaca code is a business refusal (buying power, quantity); a bare 403
            // is the gateway refusing the credentials.
            403 if code.is_none() => Self::Unauthorized {
                op,
                status,
                message,
            },
            404 => Self::NotFound { op, message },
            429 => Self::RateLimited {
                op,
                reset_at: quota.reset_at,
                quota_left: quota.remaining,
            },
            400..=499 => Self::Rejected {
                op,
                status,
                code,
                message,
            },
            _ => Self::Server {
                op,
                status,
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_typed_by_what_the_caller_does_next() {
        let op = Operation::SubmitOrder;
        let dup = AlpacaError::from_status(
            op,
            422,
            br#"{"code":40010001,"message":"client_order_id must be unique"}"#,
            RateLimitHeaders::default(),
        );
        assert!(dup.is_duplicate_client_order_id());
        assert!(!dup.is_retryable());
        // 40010001 is the code of every invalid parameter: not a duplicate by itself.
        let invalid = AlpacaError::from_status(
            op,
            422,
            br#"{"code":40010001,"message":"qty must be > 0"}"#,
            RateLimitHeaders::default(),
        );
        assert!(!invalid.is_duplicate_client_order_id());
        let conflict = AlpacaError::from_status(
            op,
            409,
            br#"{"message":"Client Order ID already exists"}"#,
            RateLimitHeaders::default(),
        );
        assert!(conflict.is_duplicate_client_order_id());
        let bp = AlpacaError::from_status(
            op,
            403,
            br#"{"code":40310000,"message":"insufficient buying power"}"#,
            RateLimitHeaders::default(),
        );
        assert!(matches!(bp, AlpacaError::Rejected { status: 403, .. }));
        let forbidden = AlpacaError::from_status(
            op,
            403,
            br#"{"message":"forbidden."}"#,
            RateLimitHeaders::default(),
        );
        assert!(matches!(forbidden, AlpacaError::Unauthorized { .. }));
        let html = AlpacaError::from_status(
            op,
            502,
            b"<html>bad gateway</html>",
            RateLimitHeaders::default(),
        );
        assert!(html.outcome_unknown() && html.is_retryable());
        assert!(matches!(
            AlpacaError::from_status(op, 429, b"", RateLimitHeaders::default()),
            AlpacaError::RateLimited { .. }
        ));
    }
}
