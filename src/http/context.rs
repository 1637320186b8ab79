//! What every request passes through: the inbound rate limit, its request id, its server span,
//! the one shape of its error answer, its metrics, and a log line when it was slow.
//!
//! Invariants:
//! - Every response carries `X-Request-Id`: the client's when it is sane (1 to 64 characters of
//!   `A-Z a-z 0-9 . _ -`), else a fresh UUID; handlers read it as [`RequestId`].
//! - Every error answer, a handler's [`ApiError`] or actix's own (a malformed query, an unknown
//!   route), leaves in the shape `error.rs` defines, under an `error_id` that the log line
//!   carries too.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use uuid::Uuid;

use tracing::{Instrument, Span};

use super::error::ApiError;
use super::trace;
use super::{EndpointClass, OpsState};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const REQUEST_ID_MAX: usize = 64;

/// The request's id, in its extensions (`web::ReqData<RequestId>` in a handler).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client's id is kept only if it cannot forge a log line or a header.
fn is_sane(id: &str) -> bool {
    (1..=REQUEST_ID_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The middleware: wraps the whole app.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<web::Data<OpsState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let details = state.settings.error_details;
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let span = match EndpointClass::of(req.path()) {
        EndpointClass::Probe => Span::none(),
        _ => trace::server_span(&req, &id),
    };
    let res = match refused_by_limit(&state, &req) {
        Some(refusal) => req.error_response(refusal),
        // An `Err` here is a middleware's, not a handler's (actix turns those into responses):
        // it goes back as it is. The request cannot be cloned beforehand to render it: routing
        // needs the only reference.
        None => next
            .call(req)
            .instrument(span.clone())
            .await?
            .map_into_boxed_body(),
    };
    let mut res = match res.response().error() {
        Some(error) => {
            let api = error
                .as_error::<ApiError>()
                .cloned()
                .unwrap_or_else(|| from_actix(error, res.status()));
            let error_id = Uuid::new_v4().to_string();
            log_error(&res, &api, &id, &error_id);
            let rendered = api.render(&id, &error_id, details);
            res.into_response(rendered)
        }
        None => res,
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let elapsed = started.elapsed();
    let (route, method, status) = (route(&res), res.request().method(), res.status().as_u16());
    trace::record_status(&span, status);
    state
        .counters
        .http
        .request(&route, method.as_str(), status, elapsed);
    if elapsed > state.settings.slow_request.get() {
        tracing::warn!(
            event = "slow_request", request_id = %id, method = %method, route, status,
            elapsed_ms = elapsed.as_millis() as u64, "slow request"
        );
    }
    Ok(res)
}

/// A 429 when the client has used up its budget for this kind of endpoint.
fn refused_by_limit(state: &OpsState, req: &ServiceRequest) -> Option<ApiError> {
    let client = req.peer_addr()?.ip();
    let class = EndpointClass::of(req.path());
    let wait = state.limiter.check(class, client).err()?;
    state.counters.http.rate_limited(class.as_str());
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Some(
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many {} requests from {client}: try again in {seconds} s",
                class.as_str()
            ),
        )
        .retry_after(seconds.max(1)),
    )
}

/// The route template (`/admin/strategies/{id}/{action}`), never the raw path: a bounded
/// label, with no ids in it.
pub fn route<B>(res: &ServiceResponse<B>) -> String {
    res.request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// actix's own failure as an [`ApiError`]: a client's mistake says what it was; anything else
/// is internal, and its text is a detail.
fn from_actix(error: &Error, status: StatusCode) -> ApiError {
    if status.is_client_error() {
        ApiError::new(status, error.to_string())
    } else {
        ApiError::new(status, "internal error").detail(error)
    }
}

fn log_error(res: &ServiceResponse, api: &ApiError, request_id: &str, error_id: &str) {
    let (method, route) = (res.request().method().as_str(), route(res));
    let status = api.status.as_u16();
    let detail = api.detail.as_deref();
    if api.status.is_server_error() {
        tracing::warn!(
            event = "http_error", error_id, request_id, method, route, status,
            error = %api.message, detail, "request failed"
        );
    } else {
        tracing::info!(
            event = "http_error", error_id, request_id, method, route, status,
            error = %api.message, detail, "request refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_kept_only_when_it_cannot_forge_anything() {
        assert!(is_sane("a1B2-c3_d4.e5"));
        assert!(is_sane(&"x".repeat(64)));
        for bad in [
            "",
            "has space",
            "new\nline",
            "quote\"",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(!is_sane(bad), "{bad:?}");
        }
    }
}
