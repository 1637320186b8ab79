//! The control plane, outside Alpaca's namespace (no auth, no rate limit, no faults, not
//! counted in stats). JSON shapes are documented in README's "The simulator".
//!
//! - `GET /__sim/state`: clock, config, accounts with positions and order counts, symbols.
//! - `GET /__sim/stats`, `DELETE /__sim/stats`: request counters per route; reset.
//! - `GET|POST|DELETE /__sim/faults`: read, set (per group, or `all`), clear.
//! - `GET|POST /__sim/clock`: read; advance sim time and/or change speed.
//! - `POST /__sim/foreign_orders`: an order another client placed on an account (`mleg`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::ok_json;
use crate::sim::clock::rfc3339_micros;
use crate::sim::faults::{FaultSpec, Group};
use crate::sim::lock;
use crate::sim::market::round_tick;
use crate::sim::state::{SimState, Venue};
use crate::sim::stats::Stats;
use crate::sim::value::{SimDuration, check_range};

type Res = Result<HttpResponse, ApiError>;

fn clock_json(state: &SimState) -> Value {
    let now = state.clock.now();
    json!({
        "now": rfc3339_micros(now),
        "speed": state.clock.speed(),
        "is_open": state.config.market_hours.is_open(now),
        "market_hours": state.config.market_hours,
    })
}

pub async fn state(state: web::Data<SimState>) -> Res {
    let now = state.clock.now();
    let faults = faults_json(&state);
    let mut venue = state.venue();
    let Venue { market, exchange } = &mut *venue;
    let mut accounts = Vec::new();
    for key in exchange.keys() {
        let account = exchange.account_json(&key, market, now);
        let positions = exchange.positions_json(&key, market, now);
        let orders = &exchange.account(&key, market, now).orders;
        let open = orders.iter().filter(|o| o.status.is_open()).count();
        accounts.push(json!({
            "key_id": key,
            "account": account,
            "positions": positions,
            "orders": {"open": open, "total": orders.len()},
        }));
    }
    let symbols: Vec<Value> = market
        .known_symbols()
        .into_iter()
        .map(|s| {
            let price = round_tick(market.price(&s, now));
            let exchange = market.params(&s).exchange;
            json!({"symbol": s, "price": price, "exchange": exchange})
        })
        .collect();
    Ok(ok_json(&json!({
        "clock": clock_json(&state),
        "start": rfc3339_micros(state.start),
        "history_start": rfc3339_micros(market.first_time()),
        "seed": state.config.seed,
        "config": state.config,
        "accounts": accounts,
        "symbols": symbols,
        "faults": faults,
    })))
}

pub async fn stats(state: web::Data<SimState>) -> Res {
    let stats = lock(&state.stats).clone();
    Ok(ok_json(&stats))
}

pub async fn reset_stats(state: web::Data<SimState>) -> Res {
    *lock(&state.stats) = Stats::default();
    Ok(HttpResponse::NoContent().finish())
}

fn faults_json(state: &SimState) -> Value {
    let f = lock(&state.faults);
    let mut out = serde_json::Map::new();
    for g in Group::ALL {
        out.insert(g.name().into(), json!(f.spec(g)));
    }
    Value::Object(out)
}

pub async fn faults(state: web::Data<SimState>) -> Res {
    Ok(ok_json(&faults_json(&state)))
}

/// Body of `POST /__sim/faults`: each group given is replaced; `all` sets every group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    all: Option<FaultSpec>,
    trading: Option<FaultSpec>,
    data: Option<FaultSpec>,
    orders: Option<FaultSpec>,
}

pub async fn set_faults(state: web::Data<SimState>, body: web::Bytes) -> Res {
    let patch: FaultsPatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid faults: {e}")))?;
    let mut changes = Vec::new();
    if let Some(spec) = patch.all {
        for g in Group::ALL {
            changes.push((g, spec.clone()));
        }
    }
    for (g, spec) in [
        (Group::Trading, patch.trading),
        (Group::Data, patch.data),
        (Group::Orders, patch.orders),
    ] {
        if let Some(spec) = spec {
            changes.push((g, spec));
        }
    }
    for (g, spec) in &changes {
        spec.validate(&format!("faults.{}", g.name()))
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    {
        let mut f = lock(&state.faults);
        for (g, spec) in changes {
            f.set(g, spec);
        }
    }
    Ok(ok_json(&faults_json(&state)))
}

pub async fn clear_faults(state: web::Data<SimState>) -> Res {
    lock(&state.faults).clear();
    Ok(ok_json(&faults_json(&state)))
}

pub async fn clock(state: web::Data<SimState>) -> Res {
    Ok(ok_json(&clock_json(&state)))
}

/// Body of `POST /__sim/clock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    /// Moves sim time forward at once (humantime, e.g. "90m").
    advance: Option<SimDuration>,
    /// New speed (0 freezes).
    speed: Option<f64>,
}

pub async fn set_clock(state: web::Data<SimState>, body: web::Bytes) -> Res {
    let change: ClockChange = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid clock change: {e}")))?;
    if let Some(speed) = change.speed {
        check_range("speed", speed, 0.0, 1_000_000.0)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        state.clock.set_speed(speed);
    }
    if let Some(by) = change.advance {
        if by.0 > std::time::Duration::from_secs(366 * 86_400) {
            return Err(ApiError::invalid(
                "advance is limited to one year at a time",
            ));
        }
        state.clock.advance(by.0);
    }
    Ok(ok_json(&clock_json(&state)))
}

/// Body of `POST /__sim/foreign_orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForeignOrder {
    /// The API key id of the account.
    key: String,
    /// What another client placed: `mleg` (a multi-leg options order).
    kind: String,
}

/// Places an order on an account as another client of it would, for clients to prove they
/// live with orders they did not place and cannot read.
pub async fn place_foreign_order(state: web::Data<SimState>, body: web::Bytes) -> Res {
    let order: ForeignOrder = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid foreign order: {e}")))?;
    if order.kind != "mleg" {
        return Err(ApiError::invalid(format!(
            "kind = {:?}: the one foreign order kind is \"mleg\"",
            order.kind
        )));
    }
    if order.key.is_empty() {
        return Err(ApiError::invalid(
            "key: the account's API key id is required",
        ));
    }
    let id = state.with_venue(|ex, market, now| ex.place_foreign_mleg(&order.key, market, now));
    Ok(ok_json(&json!({ "id": id, "kind": "mleg" })))
}
