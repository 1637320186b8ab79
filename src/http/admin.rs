//! The admin API: what an operator may change, behind a token.
//!
//! Every action is a message to the actor that owns what it changes: the breakers and the
//! trading state to the BrokerActor, pause/resume/restart/tick-now to the Supervisor (which
//! relays to the instance), cache clearing to the CacheActor.
//!
//! Invariants:
//! - With no token configured the admin API is disabled: every call answers 403, saying how to
//!   enable it. It is never open.
//! - The token is compared in constant time (`subtle`); a missing or wrong token answers 401
//!   before anything else is looked at.
//! - While herd drains, admin calls answer 503.
//! - Every admin call, allowed or refused, is one `admin_audit` log event: client address,
//!   request id, action (method and route template), subject (the path's parameters) and
//!   result.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use futures::future::{Ready, join_all, ready};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::OpsState;
use super::context::{RequestId, route};
use super::error::{ApiError, ErrorBody};
use super::ops::ACTOR_TIMEOUT;
use crate::broker::{BreakerCommand, BreakerSnapshot, BrokerActor, CommandBreakers, SetTrading};
use crate::cache::ClearCache;
use crate::domain::{AccountId, Operation, Trading, TradingState};
use crate::journal::{AdminAction, Entry};
use crate::process::Phase;
use crate::supervisor::{
    ChildAction, ChildRole, ControlChild, ControlDone, ControlError, ListChildren,
};

pub const ADMIN: &str = "/admin";
pub const TOKEN_HEADER: &str = "x-admin-token";
/// The seeds' paths, kept as protected aliases.
pub const SEED_EXECUTE: &str = "/execute";
pub const SEED_CACHE_CLEAR: &str = "/cache/clear";
pub const SEED_RESET_BREAKER: &str = "/live/reset-circuit-breaker";
/// A reason longer than this is refused: it is logged and shown in `/health`.
const REASON_MAX: usize = 500;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(ADMIN)
            .wrap(from_fn(audit))
            .route("/breakers/reset", web::post().to(reset_breakers))
            .route(
                "/breakers/{operation}/{command}",
                web::post().to(command_breaker),
            )
            .route("/trading/{state}", web::post().to(set_trading))
            .route(
                "/strategies/{id}/{action}",
                web::post().to(control_strategy),
            )
            .route("/children/{id}/restart", web::post().to(restart_child))
            .route("/cache/clear", web::post().to(clear_cache)),
    );
    for (path, handler) in [
        (SEED_EXECUTE, web::post().to(execute_all)),
        (SEED_CACHE_CLEAR, web::post().to(seed_clear_cache)),
        (SEED_RESET_BREAKER, web::post().to(seed_reset_breakers)),
    ] {
        cfg.service(web::resource(path).wrap(from_fn(audit)).route(handler));
    }
}

/// An authorized operator: only a handler that takes one can change anything.
pub struct Operator {
    pub request_id: String,
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(req))
    }
}

fn authorize(req: &HttpRequest) -> Result<Operator, ApiError> {
    let state = req
        .app_data::<web::Data<OpsState>>()
        .ok_or_else(|| ApiError::unavailable("the admin API is not wired"))?;
    let expected = &state.settings.admin_token;
    if !expected.is_set() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin API is disabled: set HERD_ADMIN_TOKEN (or ADMIN_TOKEN) to a secret of at least 16 bytes and restart herd",
        ));
    }
    let Some(given) = presented_token(req.headers()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing admin token: send it as X-Admin-Token or Authorization: Bearer",
        )
        .challenge("Bearer"));
    };
    if !bool::from(expected.expose().as_bytes().ct_eq(given.as_bytes())) {
        return Err(
            ApiError::new(StatusCode::UNAUTHORIZED, "wrong admin token").challenge("Bearer")
        );
    }
    if state.process.phase() == Phase::Draining {
        return Err(ApiError::unavailable(
            "herd is draining: admin calls are refused until it has stopped",
        ));
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    Ok(Operator { request_id })
}

/// The token from `X-Admin-Token`, or from `Authorization: Bearer`.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(token.trim().to_owned());
    }
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Logs every admin call once it has an answer.
async fn audit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let client = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let res = next.call(req).await?;
    let subject: Vec<String> = res
        .request()
        .match_info()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let status = res.status();
    let refused = res.response().error().map(ToString::to_string);
    let action = format!("{} {}", res.request().method(), route(&res));
    if let Some(journal) = res
        .request()
        .app_data::<web::Data<OpsState>>()
        .and_then(|s| s.journal.as_ref())
    {
        journal.record(Entry::Admin(Box::new(AdminAction {
            at: chrono::Utc::now(),
            request_id: request_id.clone(),
            client: client.clone(),
            action: action.clone(),
            subject: subject.join(","),
            status: status.as_u16(),
            result: if status.is_success() {
                "done"
            } else {
                "refused"
            },
            error: refused.clone(),
        })));
    }
    tracing::info!(
        event = "admin_audit",
        client,
        request_id,
        action,
        subject = subject.join(","),
        status = status.as_u16(),
        result = if status.is_success() {
            "done"
        } else {
            "refused"
        },
        error = refused,
        "admin call"
    );
    Ok(res)
}

/// The first account's broker: it answers for what is the process's, not an account's.
fn broker(state: &OpsState) -> Result<actix::Addr<BrokerActor>, ApiError> {
    state
        .brokers
        .first()
        .ok_or_else(|| ApiError::unavailable("the broker is restarting; try again"))
}

/// Sends `command` to every account's broker (each has its own breakers).
async fn command_breakers(
    state: &OpsState,
    command: BreakerCommand,
    op: Operator,
) -> Result<HttpResponse, ApiError> {
    let mut accounts = Vec::new();
    for (account, slot) in state.brokers.iter() {
        let broker = slot.get().ok_or_else(|| {
            ApiError::unavailable(format!(
                "the broker of account {account:?} is restarting; try again"
            ))
        })?;
        let msg = CommandBreakers {
            command,
            by: op.request_id.clone(),
        };
        let breakers = broker
            .send(msg)
            .timeout(ACTOR_TIMEOUT)
            .await
            .map_err(|e| ApiError::unavailable("the broker does not answer").detail(e))?;
        accounts.push(AccountBreakers {
            account: account.clone(),
            breakers,
        });
    }
    let breakers = accounts
        .first()
        .map(|a| a.breakers.clone())
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(BreakersAnswer { breakers, accounts }))
}

/// What every admin route may answer instead of doing its work (as an [`ApiError`]; this type
/// only describes those answers to the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum AdminRefusal {
    /// No token, or a wrong one.
    #[response(status = 401)]
    Unauthorized(ErrorBody<'static>),
    /// The admin API is disabled: no token is configured.
    #[response(status = 403)]
    Disabled(ErrorBody<'static>),
    /// Too many admin requests from this client.
    #[response(status = 429)]
    RateLimited(ErrorBody<'static>),
    /// Draining, or the actor does not answer.
    #[response(status = 503)]
    Unavailable(ErrorBody<'static>),
}

/// Every breaker after the command.
#[derive(Serialize, ToSchema)]
pub(super) struct BreakersAnswer {
    /// The first account's breakers (the only account's, without `[[accounts]]`).
    breakers: Vec<BreakerSnapshot>,
    /// Every account's breakers, the first included.
    accounts: Vec<AccountBreakers>,
}

/// One account's breakers after a command.
#[derive(Serialize, ToSchema)]
pub(super) struct AccountBreakers {
    account: AccountId,
    breakers: Vec<BreakerSnapshot>,
}

/// Closes every circuit breaker.
#[utoipa::path(post, path = "/admin/breakers/reset", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    responses((status = 200, body = BreakersAnswer, description = "OK"),
        AdminRefusal))]
pub(super) async fn reset_breakers(
    op: Operator,
    state: web::Data<OpsState>,
) -> Result<HttpResponse, ApiError> {
    command_breakers(&state, BreakerCommand::ResetAll, op).await
}

/// Closes one operation's breaker (`reset`) or forces it open (`open`).
#[utoipa::path(post, path = "/admin/breakers/{operation}/{command}", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    params(("operation" = String, Path, description = "clock, account, positions, bars, submit_order, get_order, order_by_client_id, list_orders or calendar"),
        ("command" = String, Path, description = "reset or open")),
    responses((status = 200, body = BreakersAnswer, description = "OK"),
        (status = 404, body = ErrorBody, description = "no such operation or command"),
        AdminRefusal))]
pub(super) async fn command_breaker(
    op: Operator,
    state: web::Data<OpsState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (operation, command) = path.into_inner();
    let Some(operation) = Operation::parse(&operation) else {
        let known: Vec<_> = Operation::ALL.iter().map(|o| o.as_str()).collect();
        return Err(ApiError::not_found(format!(
            "no breaker {operation:?}; the breakers are {}",
            known.join(", ")
        )));
    };
    let command = match command.as_str() {
        "reset" => BreakerCommand::Reset(operation),
        "open" => BreakerCommand::Open(operation),
        other => {
            return Err(ApiError::not_found(format!(
                "no breaker command {other:?}; use reset or open"
            )));
        }
    };
    command_breakers(&state, command, op).await
}

/// Why the operator changes the trading state: logged, audited and shown in `/health`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonBody {
    /// 1 to 500 characters.
    reason: String,
}

/// The trading state after the change.
#[derive(Serialize, ToSchema)]
pub(super) struct TradingAnswer {
    trading: Trading,
}

/// The reason an operator gives, from a JSON body `{"reason": "..."}`.
fn reason_of(body: &[u8]) -> Result<String, ApiError> {
    const HOW: &str = r#"send a JSON body {"reason": "why"}"#;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "a reason is required: {HOW}"
        )));
    }
    let parsed: ReasonBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not {HOW}: {e}")))?;
    let reason = parsed.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > REASON_MAX {
        return Err(ApiError::bad_request(format!(
            "reason: must be 1 to {REASON_MAX} characters"
        )));
    }
    Ok(reason)
}

/// The risk gate's trading state: `halt` (no orders), `reduce` (only orders that reduce a
/// position) or `resume`.
#[utoipa::path(post, path = "/admin/trading/{state}", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    params(("state" = String, Path, description = "halt, reduce or resume")),
    request_body = ReasonBody,
    responses((status = 200, body = TradingAnswer, description = "OK"),
        (status = 400, body = ErrorBody, description = "no reason, or not 1 to 500 characters"),
        (status = 404, body = ErrorBody, description = "no such trading action"),
        AdminRefusal))]
pub(super) async fn set_trading(
    op: Operator,
    state: web::Data<OpsState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let target = match path.as_str() {
        "halt" => TradingState::Halted,
        "reduce" => TradingState::Reducing,
        "resume" => TradingState::Active,
        other => {
            return Err(ApiError::not_found(format!(
                "no trading action {other:?}; use halt, reduce or resume"
            )));
        }
    };
    let msg = SetTrading {
        state: target,
        reason: reason_of(&body)?,
        by: op.request_id,
    };
    let trading = broker(&state)?
        .send(msg)
        .timeout(ACTOR_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable("the broker does not answer").detail(e))?;
    Ok(HttpResponse::Ok().json(TradingAnswer { trading }))
}

fn action_of(name: &str) -> Result<ChildAction, ApiError> {
    match name {
        "pause" => Ok(ChildAction::Pause),
        "resume" => Ok(ChildAction::Resume),
        "restart" => Ok(ChildAction::Restart),
        "execute" => Ok(ChildAction::Execute),
        other => Err(ApiError::not_found(format!(
            "no instance action {other:?}; use pause, resume, restart or execute"
        ))),
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::Unknown(_) | ControlError::NotAStrategy(_) => {
                ApiError::not_found(message)
            }
            ControlError::NotRunning { .. } | ControlError::Refused { .. } => {
                ApiError::conflict(message)
            }
            ControlError::Draining => ApiError::unavailable(message),
        }
    }
}

async fn control(state: &OpsState, msg: ControlChild) -> Result<ControlDone, ApiError> {
    state
        .supervisor
        .send(msg)
        .timeout(ACTOR_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable("the supervisor does not answer").detail(e))?
        .map_err(ApiError::from)
}

/// A restart is under way when answered (202); the other actions are done (200).
fn answered(done: ControlDone) -> HttpResponse {
    if done.action == ChildAction::Restart {
        HttpResponse::Accepted().json(done)
    } else {
        HttpResponse::Ok().json(done)
    }
}

/// Pauses, resumes, restarts (drain, then start afresh; 202) or ticks one strategy instance now.
#[utoipa::path(post, path = "/admin/strategies/{id}/{action}", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the instance id"),
        ("action" = String, Path, description = "pause, resume, restart or execute")),
    responses((status = 200, body = ControlDone, description = "done"),
        (status = 202, body = ControlDone, description = "restart under way"),
        (status = 404, body = ErrorBody, description = "no such instance or action"),
        (status = 409, body = ErrorBody, description = "not running, or a tick is in flight"),
        AdminRefusal))]
pub(super) async fn control_strategy(
    _: Operator,
    state: web::Data<OpsState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = path.into_inner();
    let action = action_of(&action)?;
    let msg = ControlChild {
        id,
        action,
        strategy_only: true,
    };
    Ok(answered(control(&state, msg).await?))
}

/// Any child, the broker included (a broker left `failed` halts trading until brought back).
/// Restarts any supervised actor, the broker included (a broker left failed halts trading).
#[utoipa::path(post, path = "/admin/children/{id}/restart", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the child id, as /health lists it")),
    responses((status = 202, body = ControlDone, description = "restart under way"),
        (status = 404, body = ErrorBody, description = "no such child"),
        (status = 409, body = ErrorBody, description = "not running"),
        AdminRefusal))]
pub(super) async fn restart_child(
    _: Operator,
    state: web::Data<OpsState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let msg = ControlChild {
        id: path.into_inner(),
        action: ChildAction::Restart,
        strategy_only: false,
    };
    Ok(answered(control(&state, msg).await?))
}

/// An instance that did not tick, and why.
#[derive(Serialize, ToSchema)]
pub(super) struct NotTicked {
    id: String,
    why: String,
}

/// Which instances ticked.
#[derive(Serialize, ToSchema)]
pub(super) struct ExecuteAnswer {
    ticked: Vec<String>,
    not_ticked: Vec<NotTicked>,
}

/// The seeds' path: every strategy instance ticks now.
#[utoipa::path(post, path = "/execute", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    responses((status = 200, body = ExecuteAnswer, description = "OK"),
        AdminRefusal))]
pub(super) async fn execute_all(
    _: Operator,
    state: web::Data<OpsState>,
) -> Result<HttpResponse, ApiError> {
    let children = state
        .supervisor
        .send(ListChildren)
        .timeout(ACTOR_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable("the supervisor does not answer").detail(e))?;
    let asks = children
        .into_iter()
        .filter(|c| matches!(c.role, ChildRole::Strategy { .. }))
        .map(|c| {
            let msg = ControlChild {
                id: c.id.clone(),
                action: ChildAction::Execute,
                strategy_only: true,
            };
            let state = state.clone();
            async move { (c.id, control(&state, msg).await) }
        });
    let (mut ticked, mut not_ticked) = (Vec::new(), Vec::new());
    for (id, outcome) in join_all(asks).await {
        match outcome {
            Ok(_) => ticked.push(id),
            Err(e) => not_ticked.push(NotTicked { id, why: e.message }),
        }
    }
    Ok(HttpResponse::Ok().json(ExecuteAnswer { ticked, not_ticked }))
}

/// How many cache entries were removed.
#[derive(Serialize, ToSchema)]
pub(super) struct ClearedAnswer {
    cleared: usize,
}

/// Empties the market-data cache.
#[utoipa::path(post, path = "/admin/cache/clear", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    responses((status = 200, body = ClearedAnswer, description = "OK"),
        AdminRefusal))]
pub(super) async fn clear_cache(
    _: Operator,
    state: web::Data<OpsState>,
) -> Result<HttpResponse, ApiError> {
    let cache = state
        .cache
        .get()
        .ok_or_else(|| ApiError::unavailable("the cache is restarting; try again"))?;
    let cleared = cache
        .send(ClearCache)
        .timeout(ACTOR_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable("the cache does not answer").detail(e))?;
    Ok(HttpResponse::Ok().json(ClearedAnswer { cleared }))
}

/// The seeds' path for closing every breaker: the same as `POST /admin/breakers/reset`.
#[utoipa::path(post, path = "/live/reset-circuit-breaker", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    responses((status = 200, body = BreakersAnswer, description = "OK"),
        AdminRefusal))]
pub(super) async fn seed_reset_breakers(
    op: Operator,
    state: web::Data<OpsState>,
) -> Result<HttpResponse, ApiError> {
    reset_breakers(op, state).await
}

/// The seeds' path for emptying the cache: the same as `POST /admin/cache/clear`.
#[utoipa::path(post, path = "/cache/clear", tag = "admin", security(("admin_token" = []), ("bearer" = [])),
    responses((status = 200, body = ClearedAnswer, description = "OK"),
        AdminRefusal))]
pub(super) async fn seed_clear_cache(
    op: Operator,
    state: web::Data<OpsState>,
) -> Result<HttpResponse, ApiError> {
    clear_cache(op, state).await
}
