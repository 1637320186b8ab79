//! The gateway every `/v2` request passes, in Alpaca's order: rate limit (per key, real time),
//! authentication, injected faults, the handler, then faults on the response; rate-limit
//! headers go on every response and every request is counted in the stats.
//!
//! Invariants:
//! - Faults before the handler leave no trace in the exchange; faults after it (malformed,
//!   lost) hit requests that took effect.
//! - No lock is held across an `.await` (latency and hangs sleep outside every lock).
//! - `/__sim` requests pass through untouched: the control plane is never faulted or limited.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, web};

use super::ApiKey;
use crate::sim::auth;
use crate::sim::faults::{After, Before, Group, LostAs, error_body, refusal_body};
use crate::sim::lock;
use crate::sim::ratelimit::{Api, Verdict, venue_minute};
use crate::sim::state::SimState;

/// A duplicate of a connection's socket (see [`super::on_connect`]).
#[derive(Clone)]
pub struct ConnFd(#[cfg(unix)] Arc<std::os::fd::OwnedFd>);

#[cfg(unix)]
pub fn remember_socket(conn: &dyn Any, ext: &mut Extensions) {
    use std::os::fd::AsFd;
    if let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Ok(fd) = sock.as_fd().try_clone_to_owned()
    {
        ext.insert(ConnFd(Arc::new(fd)));
    }
}

#[cfg(not(unix))]
pub fn remember_socket(_conn: &dyn Any, _ext: &mut Extensions) {}

/// Shuts the client's connection down at once; false when the socket is unknown.
#[cfg(unix)]
fn shut_connection(req: &HttpRequest) -> bool {
    let Some(ConnFd(fd)) = req.conn_data::<ConnFd>() else {
        return false;
    };
    match fd.try_clone() {
        Ok(dup) => std::net::TcpStream::from(dup)
            .shutdown(std::net::Shutdown::Both)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(not(unix))]
fn shut_connection(_req: &HttpRequest) -> bool {
    false
}

/// A response for a reset connection: the socket is already shut, or, failing that, the body
/// stream errors so the connection is aborted mid-response.
fn reset_response(req: &HttpRequest) -> HttpResponse {
    if shut_connection(req) {
        return HttpResponse::new(StatusCode::BAD_GATEWAY);
    }
    HttpResponse::Ok().streaming(futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    }))
}

fn json_response(status: u16, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .json(body)
}

fn group_of(path: &str) -> (Group, Api) {
    if path.starts_with("/v2/stocks") {
        (Group::Data, Api::Data)
    } else if path.starts_with("/v2/orders") {
        (Group::Orders, Api::Trading)
    } else {
        (Group::Trading, Api::Trading)
    }
}

fn set_rate_headers(res: &mut HttpResponse, verdict: Option<Verdict>) {
    let Some(v) = verdict else { return };
    let h = res.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", u64::from(v.limit)),
        ("x-ratelimit-remaining", u64::from(v.remaining)),
        ("x-ratelimit-reset", v.reset),
    ] {
        h.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// The gateway middleware.
pub async fn gateway(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = match req.app_data::<web::Data<SimState>>() {
        Some(s) if req.path().starts_with("/v2/") => s.clone(),
        _ => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body);
        }
    };
    let route = format!(
        "{} {}",
        req.method(),
        req.match_pattern()
            .unwrap_or_else(|| "(unmatched)".to_string())
    );
    if let Some(traceparent) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        lock(&state.stats).traced(&route, traceparent);
    }
    let (group, api) = group_of(req.path());
    let window = venue_minute(state.clock.speed());
    let verdict = lock(&state.limiter).check(
        &auth::claimed_key(req.headers()),
        api,
        Instant::now(),
        window,
    );

    let outcome = pass(&state, req, next, group, verdict).await?;
    let (req, mut res, reset) = outcome;
    set_rate_headers(&mut res, verdict);
    let status = if reset {
        "reset".to_string()
    } else {
        res.status().as_u16().to_string()
    };
    lock(&state.stats).record(&route, &status);
    Ok(ServiceResponse::new(req, res))
}

/// Runs the request through limits, auth, faults and the handler. Returns the response and
/// whether the connection was reset.
async fn pass(
    state: &SimState,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    group: Group,
    verdict: Option<Verdict>,
) -> Result<(HttpRequest, HttpResponse, bool), Error> {
    if verdict.is_some_and(|v| !v.allowed) {
        return Ok((
            req.request().clone(),
            json_response(429, error_body(429)),
            false,
        ));
    }
    match auth::check(req.headers(), &state.pinned) {
        Ok(key) => {
            req.extensions_mut().insert(ApiKey(key));
        }
        Err(e) => {
            let (status, body) = e.answer(matches!(group, Group::Data));
            return Ok((req.request().clone(), json_response(status, body), false));
        }
    }
    let plan = lock(&state.faults).decide(group, req.method().as_str());
    let fault = |kind: &str| lock(&state.stats).fault(kind);
    if !plan.latency.is_zero() {
        fault("delayed");
        actix_web::rt::time::sleep(plan.latency).await;
    }
    match plan.before {
        Before::Pass => {}
        Before::Throttle => {
            fault("throttle");
            return Ok((
                req.request().clone(),
                json_response(429, error_body(429)),
                false,
            ));
        }
        Before::Error(status) => {
            fault("error");
            return Ok((
                req.request().clone(),
                json_response(status, error_body(status)),
                false,
            ));
        }
        Before::Hang(d) => {
            fault("timeout");
            return Ok((req.request().clone(), hang(d).await, false));
        }
        Before::Reset => {
            fault("reset");
            let http = req.request().clone();
            let res = reset_response(&http);
            return Ok((http, res, true));
        }
    }
    let res = next.call(req).await?;
    let (http, res) = res.into_parts();
    match plan.after {
        After::Pass => Ok((http, res.map_into_boxed_body(), false)),
        After::Malformed => {
            fault("malformed");
            let status = res.status();
            let bytes = actix_web::body::to_bytes(res.into_body())
                .await
                .unwrap_or_default();
            Ok((http, malformed(status, &bytes), false))
        }
        After::Lost {
            how,
            status,
            hang: d,
        } => {
            fault("lost");
            match how {
                LostAs::Error => Ok((http, json_response(status, error_body(status)), false)),
                LostAs::Timeout => Ok((http, hang(d).await, false)),
                LostAs::Reset => {
                    let res = reset_response(&http);
                    Ok((http, res, true))
                }
                LostAs::Refused => Ok((http, json_response(403, refusal_body()), false)),
            }
        }
    }
}

/// Hangs for `d` (real time), then answers 504 — long after any sane client gave up.
async fn hang(d: Duration) -> HttpResponse {
    actix_web::rt::time::sleep(d).await;
    json_response(504, error_body(504))
}

/// The first half of the real body, declared as JSON: unparseable.
fn malformed(status: StatusCode, body: &Bytes) -> HttpResponse {
    let cut = body.slice(..body.len() / 2);
    let payload = if cut.is_empty() {
        Bytes::from_static(b"{\"")
    } else {
        cut
    };
    let status = if status == StatusCode::NO_CONTENT {
        StatusCode::OK
    } else {
        status
    };
    HttpResponse::build(status)
        .content_type("application/json")
        .body(payload)
}
