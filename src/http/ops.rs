//! Ops endpoints: Kubernetes probes, health, metrics, strategy instances, orders, positions,
//! cache stats.
//!
//! Invariants:
//! - `/livez` reflects only the process itself (the Supervisor's event loop turns: its
//!   heartbeat); a venue outage never restarts herd. Venue reachability belongs to `/readyz`.
//! - `/readyz` reads [`ProcessState`](crate::process::ProcessState) atomically, so it turns 503
//!   the instant a drain starts.
//! - `/health` reports last-known state and never calls the venue per request; `/positions`
//!   reads the account through the broker's shared, cached snapshot.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::ACCEPT;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::OpsState;
use super::error::{ApiError, ErrorBody};
use crate::broker::{
    BrokerError, BrokerStatus, GetBrokerStatus, GetPositions, ListOrders, NotSent, OrderFilter,
    OrderState, OrdersPage, PositionsReport, SharedCacheHealth,
};
use crate::cache::{CacheStats, GetCacheStats};
use crate::domain::{AccountId, BreakerState, InstanceId, Lifecycle, Symbol, Venue};
use crate::metrics::{Exposition, RenderMetrics};
use crate::process::{HEARTBEAT_STALE, Phase};
use crate::supervisor::{ChildView, ListChildren};

pub const LIVEZ: &str = "/livez";
pub const LIVE: &str = "/live";
pub const READYZ: &str = "/readyz";
pub const READY: &str = "/ready";
pub const HEALTH: &str = "/health";
pub const METRICS: &str = "/metrics";
pub const STRATEGIES: &str = "/strategies";
pub const STRATEGY: &str = "/strategies/{id}";
pub const ORDERS: &str = "/orders";
pub const POSITIONS: &str = "/positions";
pub const CACHE_STATS: &str = "/cache/stats";

/// How long a handler waits for an actor before answering that it is unavailable.
pub(super) const ACTOR_TIMEOUT: Duration = Duration::from_secs(2);
const ORDERS_DEFAULT: usize = 100;
const ORDERS_MAX: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(LIVEZ, web::get().to(livez))
        .route(LIVE, web::get().to(live))
        .route(READYZ, web::get().to(readyz))
        .route(READY, web::get().to(ready))
        .route(HEALTH, web::get().to(health))
        .route(METRICS, web::get().to(metrics))
        .route(STRATEGIES, web::get().to(strategies))
        .route(STRATEGY, web::get().to(strategy))
        .route(ORDERS, web::get().to(orders))
        .route(POSITIONS, web::get().to(positions))
        .route(CACHE_STATS, web::get().to(cache_stats));
}

async fn children(state: &OpsState) -> Option<Vec<ChildView>> {
    state
        .supervisor
        .send(ListChildren)
        .timeout(ACTOR_TIMEOUT)
        .await
        .ok()
}

fn supervisor_silent() -> ApiError {
    ApiError::unavailable("the supervisor does not answer")
}

/// `/livez`: the process answers.
#[derive(Serialize, ToSchema)]
pub(super) struct Alive {
    alive: bool,
    uptime_seconds: f64,
}

/// Liveness: the Supervisor's event loop turned within the last few seconds (its heartbeat, one
/// atomic read: no message per probe). A venue outage never fails it.
#[utoipa::path(get, path = "/livez", tag = "probes",
    responses((status = 200, body = Alive, description = "OK"), (status = 503, body = ErrorBody, description = "the supervisor's event loop is stuck")))]
pub(super) async fn livez(state: web::Data<OpsState>) -> Result<HttpResponse, ApiError> {
    let uptime = state.process.started_at.elapsed().as_secs_f64();
    let silent = state.process.since_heartbeat();
    if silent > HEARTBEAT_STALE {
        return Err(ApiError::unavailable(format!(
            "the supervisor's event loop has not turned for {} ms",
            silent.as_millis()
        )));
    }
    Ok(HttpResponse::Ok().json(Alive {
        alive: true,
        uptime_seconds: uptime,
    }))
}

/// The seeds' liveness path: the same as `/livez`.
#[utoipa::path(get, path = "/live", tag = "probes",
    responses((status = 200, body = Alive, description = "OK"), (status = 503, body = ErrorBody, description = "the supervisor's event loop is stuck")))]
pub(super) async fn live(state: web::Data<OpsState>) -> Result<HttpResponse, ApiError> {
    livez(state).await
}

/// `/readyz`: whether herd should receive traffic, and why not.
#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    ready: bool,
    phase: Phase,
    venue_reached: bool,
    essential_failed: bool,
}

/// Readiness: running, the venue reached at start, no essential actor failed; 503 from the
/// instant a drain starts.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, body = Readiness, description = "OK"), (status = 503, body = Readiness, description = "not ready")))]
pub(super) async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let p = &state.process;
    let body = Readiness {
        ready: p.is_ready(),
        phase: p.phase(),
        venue_reached: p.venue_reached(),
        essential_failed: p.essential_failed(),
    };
    let status = if p.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(body)
}

/// The seeds' readiness path: the same as `/readyz`.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses((status = 200, body = Readiness, description = "OK"), (status = 503, body = Readiness, description = "not ready")))]
pub(super) async fn ready(state: web::Data<OpsState>) -> HttpResponse {
    readyz(state).await
}

/// `/health`: everything an operator looks at first.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok`, `degraded`, `halted`, `starting` or `draining`.
    status: &'static str,
    phase: Phase,
    venue: Venue,
    uptime_seconds: f64,
    halted: Option<String>,
    /// The first account's broker (the only account's, without `[[accounts]]`).
    broker: Option<BrokerStatus>,
    /// Every account's broker, the first included; `broker` is `null` while it restarts.
    accounts: Vec<AccountHealth>,
    children: Vec<ChildView>,
    cache: Option<CacheStats>,
    /// The market-data cache replicas share through Redis: `degraded` while Redis does not
    /// answer (herd then fetches for itself; readiness does not depend on it).
    shared_cache: SharedCacheHealth,
}

/// One account's broker as `/health` shows it.
#[derive(Serialize, ToSchema)]
pub(super) struct AccountHealth {
    account: AccountId,
    broker: Option<BrokerStatus>,
}

/// Last-known state of the process, the brokers, every supervised actor and the cache; never
/// calls the venue.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, body = Health, description = "ok or degraded"),
        (status = 503, body = Health, description = "starting, draining or halted")))]
pub(super) async fn health(state: web::Data<OpsState>) -> HttpResponse {
    let p = &state.process;
    let children = children(&state).await.unwrap_or_default();
    let mut accounts = Vec::new();
    for (account, slot) in state.brokers.iter() {
        let broker = match slot.get() {
            Some(b) => b.send(GetBrokerStatus).timeout(ACTOR_TIMEOUT).await.ok(),
            None => None,
        };
        accounts.push(AccountHealth {
            account: account.clone(),
            broker,
        });
    }
    let broker = accounts.first().and_then(|a| a.broker.clone());
    let halted = p.halted();
    let shared_cache = state.shared_bars.health();
    let degraded = shared_cache.state == "degraded"
        || children
            .iter()
            .any(|c| matches!(c.state, Lifecycle::Failed | Lifecycle::Restarting))
        || accounts.iter().any(|a| {
            a.broker.as_ref().is_none_or(|b| {
                b.health.consecutive_failures > 0
                    || b.breakers.iter().any(|br| br.state != BreakerState::Closed)
                    || b.journal.as_ref().is_some_and(|j| j.failing.is_some())
            })
        });
    let status = match p.phase() {
        Phase::Starting => "starting",
        Phase::Draining => "draining",
        Phase::Running if halted.is_some() => "halted",
        Phase::Running if degraded => "degraded",
        Phase::Running => "ok",
    };
    let code = if matches!(status, "ok" | "degraded") {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(code).json(Health {
        status,
        phase: p.phase(),
        venue: state.venue,
        uptime_seconds: p.started_at.elapsed().as_secs_f64(),
        halted,
        broker,
        accounts,
        children,
        cache: cache_stats_of(&state).await,
        shared_cache,
    })
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic text format for the
/// rest (curl, promtool).
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "the exposition", content(
        (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (String = "text/plain; version=0.0.4; charset=utf-8"))),
        (status = 503, body = ErrorBody, description = "metrics are restarting")))]
pub(super) async fn metrics(
    request: HttpRequest,
    state: web::Data<OpsState>,
) -> Result<HttpResponse, ApiError> {
    let format = Exposition::negotiate(
        request
            .headers()
            .get(ACCEPT)
            .and_then(|accept| accept.to_str().ok()),
    );
    let actor = state
        .metrics
        .get()
        .ok_or_else(|| ApiError::unavailable("metrics are restarting; try again"))?;
    let text = actor
        .send(RenderMetrics)
        .timeout(ACTOR_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable("metrics are unavailable").detail(e))?
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").detail(e)
        })?;
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .body(format.render(text)))
}

async fn instances(state: &OpsState) -> Result<Vec<ChildView>, ApiError> {
    Ok(children(state)
        .await
        .ok_or_else(supervisor_silent)?
        .into_iter()
        .filter(|c| c.role.is_strategy())
        .collect())
}

/// `/strategies`.
#[derive(Serialize, ToSchema)]
pub(super) struct StrategyList {
    strategies: Vec<ChildView>,
}

/// Every configured strategy instance: state, restarts, ticks, positions, last decisions.
#[utoipa::path(get, path = "/strategies", tag = "ops",
    responses((status = 200, body = StrategyList, description = "OK"), (status = 503, body = ErrorBody, description = "an actor is restarting or does not answer")))]
pub(super) async fn strategies(state: web::Data<OpsState>) -> Result<HttpResponse, ApiError> {
    let strategies = instances(&state).await?;
    Ok(HttpResponse::Ok().json(StrategyList { strategies }))
}

/// One strategy instance.
#[utoipa::path(get, path = "/strategies/{id}", tag = "ops",
    params(("id" = String, Path, description = "the instance id")),
    responses((status = 200, body = ChildView, description = "OK"), (status = 404, body = ErrorBody, description = "not found"),
        (status = 503, body = ErrorBody, description = "an actor is restarting or does not answer")))]
pub(super) async fn strategy(
    state: web::Data<OpsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let instance = instances(&state)
        .await?
        .into_iter()
        .find(|c| c.id == *id)
        .ok_or_else(|| ApiError::not_found(format!("no strategy instance {:?}", id.as_str())))?;
    Ok(HttpResponse::Ok().json(instance))
}

/// `/orders` query parameters, all optional, taken as text so that a bad one is named.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct OrdersQuery {
    /// Orders per page, 1 to 1000 (100 by default).
    limit: Option<String>,
    /// Only this instance's orders.
    instance: Option<String>,
    /// Only orders for this symbol.
    symbol: Option<String>,
    /// Only orders in this state: `submitting`, `open`, `filled`, `canceled`, `expired`,
    /// `rejected`, `refused` or `unknown`.
    state: Option<String>,
    /// The `next` cursor of the previous page.
    before: Option<String>,
}

impl OrdersQuery {
    fn parse(&self) -> Result<ListOrders, ApiError> {
        let bad = |name: &str, value: &str, allowed: &str| {
            ApiError::bad_request(format!("{name} = {value:?}: {allowed}"))
        };
        let limit = match self.limit.as_deref() {
            None => ORDERS_DEFAULT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=ORDERS_MAX).contains(n))
                .ok_or_else(|| {
                    bad(
                        "limit",
                        raw,
                        &format!("must be a whole number from 1 to {ORDERS_MAX}"),
                    )
                })?,
        };
        let instance = self
            .instance
            .as_deref()
            .map(|raw| InstanceId::parse(raw).map_err(|why| bad("instance", raw, &why)))
            .transpose()?;
        let symbol = self
            .symbol
            .as_deref()
            .map(|raw| Symbol::parse(raw).map_err(|why| bad("symbol", raw, &why)))
            .transpose()?;
        let state = self
            .state
            .as_deref()
            .map(|raw| {
                OrderState::parse(raw).ok_or_else(|| {
                    let all: Vec<_> = OrderState::ALL.iter().map(|s| s.as_str()).collect();
                    bad("state", raw, &format!("must be one of {}", all.join(", ")))
                })
            })
            .transpose()?;
        let before = self
            .before
            .as_deref()
            .map(|raw| {
                raw.parse::<u64>()
                    .map_err(|_| bad("before", raw, "must be the `next` of a previous page"))
            })
            .transpose()?;
        Ok(ListOrders {
            filter: OrderFilter {
                instance,
                symbol,
                state,
            },
            limit,
            before,
        })
    }
}

fn broker_restarting() -> ApiError {
    ApiError::unavailable("the broker is restarting; try again")
}

/// herd's orders, newest first, filtered and paged.
#[utoipa::path(get, path = "/orders", tag = "ops", params(OrdersQuery),
    responses((status = 200, body = OrdersPage, description = "OK"), (status = 400, body = ErrorBody, description = "a bad parameter, named"),
        (status = 503, body = ErrorBody, description = "an actor is restarting or does not answer")))]
pub(super) async fn orders(
    state: web::Data<OpsState>,
    query: web::Query<OrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = query.parse()?;
    // The journal holds every account's orders; the first account's broker reads it.
    let broker = state.brokers.first().ok_or_else(broker_restarting)?;
    let page = broker
        .send(request)
        .timeout(ACTOR_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable("the broker does not answer").detail(e))?;
    Ok(HttpResponse::Ok().json(page))
}

/// `/positions` query parameters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PositionsQuery {
    /// Which account (`accounts[].id`); the first configured by default.
    account: Option<String>,
}

/// One account's instance holdings, its positions, and whether they reconcile. Reads the
/// account's positions through its broker's shared snapshot (cached, one call for everyone).
#[utoipa::path(get, path = "/positions", tag = "ops", params(PositionsQuery),
    responses((status = 200, body = PositionsReport, description = "OK"), (status = 404, body = ErrorBody, description = "no such account"),
        (status = 409, body = ErrorBody, description = "another replica drives the account (leases)"),
        (status = 503, body = ErrorBody, description = "an actor is restarting or does not answer")))]
pub(super) async fn positions(
    state: web::Data<OpsState>,
    query: web::Query<PositionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let broker = match query.account.as_deref() {
        None => state.brokers.first(),
        Some(account) => state
            .brokers
            .slot(account)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no account {account:?}; configured: {}",
                    state.brokers.ids()
                ))
            })?
            .get(),
    }
    .ok_or_else(broker_restarting)?;
    let report = broker
        .send(GetPositions)
        .timeout(ACTOR_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable("the broker does not answer").detail(e))?
        .map_err(|e| match e {
            BrokerError::Refused(NotSent::NotOwner(not)) => ApiError::conflict(format!(
                "this replica stands by for account {:?}: ask the replica that holds its lease",
                not.account
            )),
            e => ApiError::unavailable("the account's positions cannot be read now").detail(e),
        })?;
    Ok(HttpResponse::Ok().json(report))
}

/// The CacheActor's answer; `None` while it restarts or does not answer in time.
async fn cache_stats_of(state: &OpsState) -> Option<CacheStats> {
    let actor = state.cache.get()?;
    actor.send(GetCacheStats).timeout(ACTOR_TIMEOUT).await.ok()
}

/// The market-data cache's size, hits, misses and evictions.
#[utoipa::path(get, path = "/cache/stats", tag = "ops",
    responses((status = 200, body = CacheStats, description = "OK"), (status = 503, body = ErrorBody, description = "an actor is restarting or does not answer")))]
pub(super) async fn cache_stats(state: web::Data<OpsState>) -> Result<HttpResponse, ApiError> {
    let stats = cache_stats_of(&state)
        .await
        .ok_or_else(|| ApiError::unavailable("the cache does not answer"))?;
    Ok(HttpResponse::Ok().json(stats))
}
