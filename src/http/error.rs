//! The one shape of an HTTP error answer: `{error, error_id, request_id}` (plus `detail`
//! outside production).
//!
//! Handlers return [`ApiError`]; the request-context middleware (`context.rs`) renders it with
//! the request's id, logs it under a fresh `error_id`, and renders any other failure (a bad
//! query string, an unknown route) in the same shape.
//!
//! Invariants:
//! - `error` is written for the caller and never carries internal details; those go in
//!   `detail`, which reaches the body only when `http.error_details` is on, and always the log.
//! - Every error body names its `error_id`, and the same id is in the log line.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// A failed request, as the caller is told.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// For the caller: what went wrong and what to do.
    pub message: String,
    /// For the operator: internal details (an actor's mailbox error, a venue's answer).
    pub detail: Option<String>,
    /// Seconds, for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
    /// A `WWW-Authenticate` challenge, for 401.
    pub challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: None,
            retry_after: None,
            challenge: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// Adds what the operator needs and the caller must not see in production.
    pub fn detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn challenge(mut self, scheme: &'static str) -> Self {
        self.challenge = Some(scheme);
        self
    }

    /// The response: the body, and the headers the status calls for.
    pub fn render(&self, request_id: &str, error_id: &str, details: bool) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(scheme) = self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme)));
        }
        response.json(ErrorBody {
            error: &self.message,
            error_id,
            request_id,
            detail: self.detail.as_deref().filter(|_| details),
        })
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong, for the caller.
    error: &'a str,
    /// The same id is in herd's log line about this error.
    error_id: &'a str,
    /// The request's `X-Request-Id`.
    request_id: &'a str,
    /// Internal details; only when `http.error_details` is on (never in production).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    /// Without the middleware (it renders the final body): no ids, no details.
    fn error_response(&self) -> HttpResponse {
        self.render("", "", false)
    }
}
