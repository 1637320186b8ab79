//! The server span of each request, continuing the caller's W3C trace context when it sent one.
//!
//! Invariants: a span is named by method and route template (`GET /strategies/{id}`), never by
//! the raw path; probes and `/metrics` get no span (a scrape every few seconds would bury the
//! traces an operator looks for); a 5xx marks the span as an error, a 4xx does not (the server
//! did its job; the OpenTelemetry HTTP conventions say the same).

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::Extractor;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// actix's headers (http 0.2) as a source of trace context.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The request's server span; its parent is the caller's `traceparent`, if valid.
pub fn server_span(req: &ServiceRequest, request_id: &str) -> Span {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str();
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = %route,
        url.path = req.path(),
        url.scheme = req.connection_info().scheme(),
        client.address = req.peer_addr().map(|a| a.ip().to_string()),
        request_id,
        http.response.status_code = Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(req.headers()))
    });
    // Fails only when traces are off (no OpenTelemetry layer): nothing to continue then.
    let _ = span.set_parent(parent);
    span
}

/// Records the answer's status on the span.
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}
