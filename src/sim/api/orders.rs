//! Order endpoints: submit, list, get (by id or client order id), cancel one or all.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::ApiError;
use super::trading::multi_status_entry;
use super::{ApiKey, ok_json, order_body, query};
use crate::sim::exchange::{OrderFilter, Side, StatusFilter};
use crate::sim::state::SimState;

type Res = Result<HttpResponse, ApiError>;

/// Order ids must be UUIDs; Alpaca answers anything else with this 422.
fn order_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::invalid("order_id is missing"))
}

pub async fn submit(
    state: web::Data<SimState>,
    key: web::ReqData<ApiKey>,
    body: web::Bytes,
) -> Res {
    let order = order_body::parse(&body)?;
    let placed = state.with_venue(|ex, market, now| ex.submit(&key.0, order, market, now))?;
    Ok(ok_json(&placed))
}

pub async fn list(state: web::Data<SimState>, key: web::ReqData<ApiKey>, req: HttpRequest) -> Res {
    let p = query(&req)?;
    let status = match p.get("status") {
        None | Some("open") => StatusFilter::Open,
        Some("closed") => StatusFilter::Closed,
        Some("all") => StatusFilter::All,
        Some(other) => return Err(ApiError::invalid(format!("invalid status: {other}"))),
    };
    let side = match p.get("side") {
        None => None,
        Some("buy") => Some(Side::Buy),
        Some("sell") => Some(Side::Sell),
        Some(other) => return Err(ApiError::invalid(format!("invalid side: {other}"))),
    };
    let filter = OrderFilter {
        status,
        limit: p.int("limit", 1..=500, ApiError::invalid)?.unwrap_or(50) as usize,
        after: p.time("after", ApiError::invalid)?,
        until: p.time("until", ApiError::invalid)?,
        desc: p.direction("direction", true, ApiError::invalid)?,
        symbols: p.symbols("symbols", ApiError::invalid)?,
        side,
    };
    // `nested` only matters for multi-leg orders, which the simulator does not take.
    p.bool("nested", ApiError::invalid)?;
    Ok(ok_json(&state.with_venue(|ex, market, now| {
        ex.orders(&key.0, &filter, market, now)
    })))
}

pub async fn get(
    state: web::Data<SimState>,
    key: web::ReqData<ApiKey>,
    path: web::Path<String>,
) -> Res {
    let id = order_id(&path)?;
    Ok(ok_json(&state.with_venue(|ex, market, now| {
        ex.order(&key.0, id, market, now)
    })?))
}

pub async fn by_client_order_id(
    state: web::Data<SimState>,
    key: web::ReqData<ApiKey>,
    req: HttpRequest,
) -> Res {
    let p = query(&req)?;
    let client_id = p
        .get("client_order_id")
        .ok_or_else(|| ApiError::invalid("client_order_id is required"))?
        .to_string();
    Ok(ok_json(&state.with_venue(|ex, market, now| {
        ex.order_by_client_id(&key.0, &client_id, market, now)
    })?))
}

/// `DELETE /v2/orders/{id}`: 204 with no body, 404 if unknown, 422 if already final.
pub async fn cancel(
    state: web::Data<SimState>,
    key: web::ReqData<ApiKey>,
    path: web::Path<String>,
) -> Res {
    let id = order_id(&path)?;
    state.with_venue(|ex, market, now| ex.cancel(&key.0, id, market, now))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v2/orders`: 207 with `[{id, status, body}]`.
pub async fn cancel_all(state: web::Data<SimState>, key: web::ReqData<ApiKey>) -> Res {
    let body: Vec<Value> = state
        .with_venue(|ex, market, now| ex.cancel_all(&key.0, market, now))
        .into_iter()
        .map(|(id, r)| multi_status_entry(json!({"id": id}), r))
        .collect();
    Ok(HttpResponse::build(StatusCode::MULTI_STATUS).json(body))
}
