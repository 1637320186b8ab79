//! Trading API endpoints other than orders: account, clock, calendar, assets, positions.
//!
//! Invariant: every handler reads sim time once, so one response describes one instant.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::ApiError;
use super::params::symbol;
use super::{ApiKey, ok_json, query};
use crate::sim::calendar::{MarketHours, ny_date, ny_rfc3339};
use crate::sim::exchange::{Exchange, ExchangeError, OrderJson, asset_id};
use crate::sim::market::Market;
use crate::sim::state::SimState;

type Res = Result<HttpResponse, ApiError>;

pub async fn account(state: web::Data<SimState>, key: web::ReqData<ApiKey>) -> Res {
    Ok(ok_json(&state.with_venue(|ex, market, now| {
        ex.account_json(&key.0, market, now)
    })))
}

pub async fn clock(state: web::Data<SimState>) -> Res {
    let now = state.clock.now();
    let hours = state.config.market_hours;
    Ok(ok_json(&json!({
        "timestamp": ny_rfc3339(now),
        "is_open": hours.is_open(now),
        "next_open": ny_rfc3339(hours.next_open(now)),
        "next_close": ny_rfc3339(hours.next_close(now)),
    })))
}

/// `GET /v2/calendar?start=&end=` (dates; default: today and the next 30 days).
pub async fn calendar(state: web::Data<SimState>, req: HttpRequest) -> Res {
    let params = query(&req)?;
    let today = ny_date(state.clock.now());
    let date = |name: &str, default| -> Result<chrono::NaiveDate, ApiError> {
        params.get(name).map_or(Ok(default), |v| {
            chrono::NaiveDate::parse_from_str(v.get(..10).unwrap_or(v), "%Y-%m-%d")
                .map_err(|_| ApiError::invalid(format!("invalid {name}: {v:?}")))
        })
    };
    let start = date("start", today)?;
    let end = date("end", today + Duration::days(30))?;
    if (end - start).num_days() > 3660 {
        return Err(ApiError::invalid("calendar range is limited to ten years"));
    }
    let hours = state.config.market_hours;
    let (open, close) = match hours {
        MarketHours::Regular => ("09:30", "16:00"),
        MarketHours::Always => ("00:00", "23:59"),
    };
    let mut days = Vec::new();
    let mut d = start;
    while d <= end {
        if hours.is_trading_day(d) {
            days.push(json!({
                "date": d.to_string(),
                "open": open,
                "close": close,
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": hours.next_trading_day(d).to_string(),
            }));
        }
        d += Duration::days(1);
    }
    Ok(ok_json(&days))
}

pub async fn asset(state: web::Data<SimState>, path: web::Path<String>) -> Res {
    let sym = symbol(&path).map_err(|_| ApiError::not_found("asset not found"))?;
    let exchange = state.venue().market.params(&sym).exchange;
    Ok(ok_json(&json!({
        "id": asset_id(&sym),
        "class": "us_equity",
        "exchange": exchange,
        "symbol": sym,
        "name": sym,
        "status": "active",
        "tradable": true,
        "marginable": true,
        "maintenance_margin_requirement": 30,
        "shortable": true,
        "easy_to_borrow": true,
        "fractionable": true,
        "attributes": [],
    })))
}

pub async fn positions(state: web::Data<SimState>, key: web::ReqData<ApiKey>) -> Res {
    Ok(ok_json(&state.with_venue(|ex, market, now| {
        ex.positions_json(&key.0, market, now)
    })))
}

/// The symbol of the position a path segment names: a ticker, or the asset id of a position
/// the account holds (asset ids are derived from tickers, so only held ones can be resolved).
fn position_symbol(
    exchange: &mut Exchange,
    market: &mut Market,
    key: &str,
    segment: &str,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let not_found = || ApiError::not_found("position does not exist");
    let Ok(id) = Uuid::parse_str(segment) else {
        return symbol(segment).map_err(|_| not_found());
    };
    exchange
        .account(key, market, now)
        .positions
        .values()
        .find(|p| p.asset_id == id)
        .map(|p| p.symbol.clone())
        .ok_or_else(not_found)
}

pub async fn position(
    state: web::Data<SimState>,
    key: web::ReqData<ApiKey>,
    path: web::Path<String>,
) -> Res {
    let position = state.with_venue(|ex, market, now| {
        let sym = position_symbol(ex, market, &key.0, &path, now)?;
        Ok::<_, ApiError>(ex.position_json(&key.0, &sym, market, now)?)
    })?;
    Ok(ok_json(&position))
}

/// `DELETE /v2/positions/{symbol}?qty=|percentage=`: 200 with the closing order.
pub async fn close_position(
    state: web::Data<SimState>,
    key: web::ReqData<ApiKey>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Res {
    let params = query(&req)?;
    let qty = params.decimal("qty", ApiError::invalid)?;
    let percentage = params.decimal("percentage", ApiError::invalid)?;
    let order = state.with_venue(|ex, market, now| {
        let sym = position_symbol(ex, market, &key.0, &path, now)?;
        Ok::<_, ApiError>(ex.close_position(&key.0, &sym, qty, percentage, market, now)?)
    })?;
    Ok(ok_json(&order))
}

/// `DELETE /v2/positions?cancel_orders=`: 207 with one entry per position.
pub async fn close_all_positions(
    state: web::Data<SimState>,
    key: web::ReqData<ApiKey>,
    req: HttpRequest,
) -> Res {
    let params = query(&req)?;
    let cancel = params
        .bool("cancel_orders", ApiError::invalid)?
        .unwrap_or(false);
    let body: Vec<Value> = state
        .with_venue(|ex, market, now| ex.close_all(&key.0, cancel, market, now))
        .into_iter()
        .map(|(symbol, r)| multi_status_entry(json!({"symbol": symbol}), r))
        .collect();
    Ok(HttpResponse::build(StatusCode::MULTI_STATUS).json(body))
}

/// One entry of a 207 list: `{..., "status": <http>, "body": <order or error>}`.
pub fn multi_status_entry(mut head: Value, result: Result<OrderJson, ExchangeError>) -> Value {
    let (status, body) = match result {
        Ok(order) => (200, serde_json::to_value(order).unwrap_or(Value::Null)),
        Err(e) => {
            let e = ApiError::from(e);
            (e.status.as_u16(), e.body)
        }
    };
    if let Some(obj) = head.as_object_mut() {
        obj.insert("status".into(), json!(status));
        obj.insert("body".into(), body);
    }
    head
}
