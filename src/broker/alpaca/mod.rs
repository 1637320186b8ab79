//! The Alpaca REST client: typed calls for clock, account, positions, orders and bars.
//!
//! Invariants:
//! - Every call is bounded by `call_timeout`: reqwest cancels the request itself (the seed's
//!   breaker timed out but left the HTTP request running).
//! - Every call is counted in `herd_broker_requests_total{operation,outcome}` and timed, here and
//!   only here.
//! - No call is retried here: retry policy belongs to the broker, which knows whether an
//!   operation is safe to repeat.

mod error;
pub mod models;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use opentelemetry_http::HeaderInjector;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use error::{AlpacaError, RateLimitHeaders};
use models::{Account, BarsPage, CalendarDay, Clock, Order, OrderRequest, Position};

use crate::domain::{Operation, Secret, Symbol, Timeframe};
use crate::metrics::{Metrics, RequestOutcome};

const KEY_HEADER: &str = "APCA-API-KEY-ID";
const SECRET_HEADER: &str = "APCA-API-SECRET-KEY";

/// Where and how to reach Alpaca (or the simulator).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub trading_url: String,
    pub data_url: String,
    pub key_id: Secret,
    pub secret_key: Secret,
    pub feed: String,
    /// Corporate-action adjustment of bars (`raw`, `split`, `dividend`, `all`).
    pub adjustment: String,
    pub call_timeout: Duration,
}

/// Cheap to clone: the connection pool is shared.
#[derive(Clone)]
pub struct AlpacaClient {
    http: reqwest::Client,
    endpoint: Arc<Endpoint>,
    metrics: Arc<Metrics>,
    /// Rows of listings already reported as unreadable.
    skipped: Arc<SeenOnce>,
}

/// Keys already seen, so a condition that repeats on every call is logged when it starts.
/// Bounded: past `SEEN_MAX` keys it forgets them all and may log each once more.
#[derive(Default)]
struct SeenOnce(std::sync::Mutex<std::collections::HashSet<String>>);

const SEEN_MAX: usize = 10_000;

impl SeenOnce {
    fn first_time(&self, key: &str) -> bool {
        let Ok(mut seen) = self.0.lock() else {
            return true;
        };
        if seen.contains(key) {
            return false;
        }
        if seen.len() >= SEEN_MAX {
            seen.clear();
        }
        seen.insert(key.to_owned());
        true
    }
}

/// Sort order of a bars query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

/// One multi-symbol bars query.
#[derive(Debug, Clone)]
pub struct BarsQuery {
    pub symbols: Vec<Symbol>,
    pub timeframe: Timeframe,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub sort: SortOrder,
}

impl AlpacaClient {
    pub fn new(endpoint: Endpoint, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(endpoint.call_timeout)
            .connect_timeout(endpoint.call_timeout)
            .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            endpoint: Arc::new(endpoint),
            metrics,
            skipped: Arc::default(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub async fn clock(&self) -> Result<Clock, AlpacaError> {
        self.get_json(Operation::Clock, self.trading("/v2/clock"), &[])
            .await
    }

    pub async fn account(&self) -> Result<Account, AlpacaError> {
        self.get_json(Operation::Account, self.trading("/v2/account"), &[])
            .await
    }

    /// The account's positions; a row herd cannot read is skipped (logged once, counted).
    pub async fn positions(&self) -> Result<Vec<Position>, AlpacaError> {
        let rows = self
            .get_json(Operation::Positions, self.trading("/v2/positions"), &[])
            .await?;
        Ok(self.readable_rows(Operation::Positions, rows, "symbol"))
    }

    pub async fn submit_order(&self, order: &OrderRequest) -> Result<Order, AlpacaError> {
        let request = self.http.post(self.trading("/v2/orders")).json(order);
        self.send_json(Operation::SubmitOrder, request).await
    }

    pub async fn order(&self, id: &str) -> Result<Order, AlpacaError> {
        let url = self.trading(&format!("/v2/orders/{id}"));
        self.get_json(Operation::GetOrder, url, &[]).await
    }

    /// The order with this `client_order_id`, or `None` if the venue never accepted one.
    pub async fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> Result<Option<Order>, AlpacaError> {
        let url = self.trading("/v2/orders:by_client_order_id");
        let query = [("client_order_id", client_order_id.to_owned())];
        match self.get_json(Operation::OrderByClientId, url, &query).await {
            Ok(order) => Ok(Some(order)),
            Err(AlpacaError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of a multi-symbol bars query; `page_token` continues a previous page. Paging is
    /// the caller's, so that every page passes the rate limiter and breaker like any call.
    pub async fn bars_page(
        &self,
        query: &BarsQuery,
        page_token: Option<&str>,
    ) -> Result<BarsPage, AlpacaError> {
        let symbols = query
            .symbols
            .iter()
            .map(Symbol::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let mut params = vec![
            ("symbols", symbols),
            ("timeframe", query.timeframe.to_string()),
            (
                "start",
                query
                    .start
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            ("limit", "10000".to_owned()),
            ("feed", self.endpoint.feed.clone()),
            // Alpaca's default is `raw`: a split inside the window would look like a crash.
            ("adjustment", self.endpoint.adjustment.clone()),
            (
                "sort",
                if query.sort == SortOrder::Asc {
                    "asc"
                } else {
                    "desc"
                }
                .to_owned(),
            ),
        ];
        if let Some(end) = query.end {
            params.push((
                "end",
                end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
        if let Some(token) = page_token {
            params.push(("page_token", token.to_owned()));
        }
        self.get_json(Operation::Bars, self.data("/v2/stocks/bars"), &params)
            .await
    }

    /// Orders of the account in `symbols`, newest last, submitted after `after` (venue time).
    /// The listing holds every client's orders: a row herd cannot read (a multi-leg order
    /// placed by another app) is skipped, logged once and counted, and never fails the page.
    pub async fn orders_after(
        &self,
        after: DateTime<Utc>,
        symbols: &[&str],
    ) -> Result<Vec<Order>, AlpacaError> {
        let mut query = vec![
            ("status", "all".to_owned()),
            (
                "after",
                after.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            ("direction", "asc".to_owned()),
            ("limit", "500".to_owned()),
        ];
        // Comma-joined, as alpaca-py 0.44.0 sends it (`TradingClient.get_orders`, client.py).
        if !symbols.is_empty() {
            query.push(("symbols", symbols.join(",")));
        }
        let rows = self
            .get_json(Operation::ListOrders, self.trading("/v2/orders"), &query)
            .await?;
        Ok(self.readable_rows(Operation::ListOrders, rows, "id"))
    }

    /// The rows of a listing herd can read. Each skipped row is counted; it is logged the first
    /// time its `key` field is seen (it is listed again on every refresh).
    fn readable_rows<T: DeserializeOwned>(
        &self,
        op: Operation,
        rows: Vec<serde_json::Value>,
        key: &str,
    ) -> Vec<T> {
        rows.into_iter()
            .filter_map(|row| match T::deserialize(&row) {
                Ok(item) => Some(item),
                Err(e) => {
                    self.metrics.row_skipped(op);
                    let id = match row.get(key) {
                        Some(serde_json::Value::String(text)) => text.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    if self.skipped.first_time(&id) {
                        tracing::warn!(
                            event = "venue_row_skipped", operation = op.as_str(), key = %id,
                            error = %e, "a venue listing has a row herd cannot read; skipping it"
                        );
                    }
                    None
                }
            })
            .collect()
    }

    /// The trading days from `start` to `end` (New York dates) with their regular session's
    /// open and close, early closes included; a date that does not trade is absent.
    pub async fn calendar(
        &self,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<CalendarDay>, AlpacaError> {
        let query = [("start", start.to_string()), ("end", end.to_string())];
        self.get_json(Operation::Calendar, self.trading("/v2/calendar"), &query)
            .await
    }

    fn trading(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.trading_url.trim_end_matches('/'))
    }

    fn data(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.data_url.trim_end_matches('/'))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        op: Operation,
        url: String,
        query: &[(&str, String)],
    ) -> Result<T, AlpacaError> {
        let request = self.http.get(url).query(query);
        self.send_json(op, request).await
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        op: Operation,
        request: reqwest::RequestBuilder,
    ) -> Result<T, AlpacaError> {
        let started = Instant::now();
        let span = client_span(op);
        let result = self
            .send(op, request, &span)
            .instrument(span.clone())
            .await
            .and_then(|body| {
                serde_json::from_slice(&body).map_err(|e| AlpacaError::Malformed {
                    op,
                    detail: e.to_string(),
                })
            });
        let outcome = result
            .as_ref()
            .map_or_else(AlpacaError::outcome, |_| RequestOutcome::Ok);
        if let Err(e) = &result {
            span.record("error.type", outcome.as_str());
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", e.to_string());
        }
        self.metrics.broker_request(op, outcome, started.elapsed());
        result
    }

    async fn send(
        &self,
        op: Operation,
        request: reqwest::RequestBuilder,
        span: &tracing::Span,
    ) -> Result<Vec<u8>, AlpacaError> {
        let timeout = self.endpoint.call_timeout;
        // The W3C trace context of this call, so the venue's side (or a proxy) joins the trace.
        let mut trace_headers = reqwest::header::HeaderMap::new();
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&cx, &mut HeaderInjector(&mut trace_headers));
        });
        let response = request
            .header(KEY_HEADER, self.endpoint.key_id.expose())
            .header(SECRET_HEADER, self.endpoint.secret_key.expose())
            .headers(trace_headers)
            .send()
            .await
            .map_err(|e| AlpacaError::from_transport(op, &e, timeout))?;
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        let quota = rate_limit_headers(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| AlpacaError::from_transport(op, &e, timeout))?;
        if (200..300).contains(&status) {
            Ok(body.to_vec())
        } else {
            Err(AlpacaError::from_status(op, status, &body, quota))
        }
    }
}

/// The method and URL template of an operation's request: a client span's name and
/// `url.template` (the template, never the URL, so ids do not multiply span names).
fn route_of(op: Operation) -> (&'static str, &'static str) {
    match op {
        Operation::Clock => ("GET", "/v2/clock"),
        Operation::Account => ("GET", "/v2/account"),
        Operation::Positions => ("GET", "/v2/positions"),
        Operation::Bars => ("GET", "/v2/stocks/bars"),
        Operation::SubmitOrder => ("POST", "/v2/orders"),
        Operation::GetOrder => ("GET", "/v2/orders/{order_id}"),
        Operation::OrderByClientId => ("GET", "/v2/orders:by_client_order_id"),
        Operation::ListOrders => ("GET", "/v2/orders"),
        Operation::Calendar => ("GET", "/v2/calendar"),
    }
}

/// One call to the venue as an OpenTelemetry client span, a child of the current span. Each
/// attempt of a retried read is its own call, so its own span.
fn client_span(op: Operation) -> tracing::Span {
    let (method, template) = route_of(op);
    tracing::info_span!(
        "upstream",
        otel.name = %format_args!("{method} {template}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        http.request.method = method,
        url.template = template,
        operation = op.as_str(),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// `X-Ratelimit-Reset` (epoch seconds at which the quota window resets) and
/// `X-Ratelimit-Remaining`.
fn rate_limit_headers(headers: &reqwest::header::HeaderMap) -> RateLimitHeaders {
    let number =
        |name: &str| -> Option<i64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    RateLimitHeaders {
        reset_at: number("x-ratelimit-reset").and_then(|secs| Utc.timestamp_opt(secs, 0).single()),
        remaining: number("x-ratelimit-remaining").and_then(|n| u64::try_from(n).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> AlpacaClient {
        let endpoint = Endpoint {
            trading_url: "http://127.0.0.1:9".into(),
            data_url: "http://127.0.0.1:9".into(),
            key_id: Secret::new("k"),
            secret_key: Secret::new("s"),
            feed: "iex".into(),
            adjustment: "all".into(),
            call_timeout: Duration::from_secs(1),
        };
        AlpacaClient::new(endpoint, Metrics::new()).unwrap()
    }

    #[test]
    fn a_row_herd_cannot_read_is_skipped_and_the_rest_of_the_page_used() {
        let rows = serde_json::json!([
            {"symbol": "SPY", "qty": "3", "avg_entry_price": "500"},
            {"symbol": "QQQ", "qty": "a lot", "avg_entry_price": "400"},
            {"symbol": "IWM", "qty": "-2", "avg_entry_price": "200"},
        ]);
        let rows: Vec<serde_json::Value> = serde_json::from_value(rows).unwrap();
        let c = client();
        let read: Vec<Position> = c.readable_rows(Operation::Positions, rows.clone(), "symbol");
        let symbols: Vec<&str> = read.iter().map(|p| p.symbol.as_str()).collect();
        assert_eq!(symbols, ["SPY", "IWM"]);
        // Reported once, however often it is listed.
        let _: Vec<Position> = c.readable_rows(Operation::Positions, rows, "symbol");
        assert!(!c.skipped.first_time("QQQ"));
    }

    #[test]
    fn a_key_is_reported_the_first_time_only() {
        let seen = SeenOnce::default();
        assert!(seen.first_time("a"));
        assert!(!seen.first_time("a"));
        assert!(seen.first_time("b"));
    }
}
